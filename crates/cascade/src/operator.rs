//! Operator templates of `sql_function.operators` (SQL interface spec §12.1): the syntax a SQL function
//! answers to, such as `{{ text }} MEANS {{ criterion }}` or `CONDENSE({{ text }})`.
//!
//! A template is a sequence of argument placeholders (`{{ name }}`: one declared argument, no dots or
//! filters), keywords (words of letters, digits and `_`, matched case-insensitively), the punctuation
//! `(`, `)` and `,`, and the comparison symbol `~`. [`parse`] reads one and classifies it:
//!
//! - [`Form::Infix`]: `{{ a }} KEYWORD [KEYWORD…] {{ b }}`, a binary operator (`x ALIGNS WITH y`);
//! - [`Form::Postfix`]: `{{ a }} KEYWORD [KEYWORD…]`, a predicate written after its argument;
//! - [`Form::Call`]: `NAME({{ a }}, {{ b }})`, a function-call spelling;
//! - [`Form::Stage`]: `THEN KEYWORD [KEYWORD | {{ arg }}]…`, a pipeline stage written after a whole
//!   query (`THEN ENRICH {{ prompt }} AS {{ column }}`, `THEN STATS`);
//! - [`Form::Other`]: any other sequence with a keyword (`ASK {{ prompt }} FROM {{ text }}`), checked
//!   but not yet SQL syntax.
//!
//! ```
//! use rvbbit_cascade::operator::{Form, parse};
//!
//! let t = parse("{{ text }} ALIGNS WITH {{ value }}").unwrap();
//! assert_eq!(t.form, Form::Infix { keywords: vec!["ALIGNS".into(), "WITH".into()] });
//! assert_eq!(t.args, ["text", "value"]);
//! assert!(parse("{{ text }} MEANS {{ input.x }}").is_err());
//! ```

/// SQL words an operator may not start with: the parser gives them their own meaning after an
/// expression (a template starting with one would change ordinary SQL).
pub const RESERVED: &[&str] = &[
    "AND",
    "OR",
    "NOT",
    "XOR",
    "IS",
    "IN",
    "LIKE",
    "ILIKE",
    "RLIKE",
    "REGEXP",
    "SIMILAR",
    "BETWEEN",
    "OVERLAPS",
    "COLLATE",
    "AT",
    "DIV",
    "MEMBER",
    "OPERATOR",
    "AS",
    "FROM",
    "WHERE",
    "GROUP",
    "ORDER",
    "HAVING",
    "LIMIT",
    "OFFSET",
    "UNION",
    "EXCEPT",
    "INTERSECT",
    "WINDOW",
    "QUALIFY",
    "ON",
    "USING",
    "JOIN",
    "THEN",
    "WHEN",
    "ELSE",
    "END",
    "ASC",
    "DESC",
    "NULLS",
    "FILTER",
    "OVER",
    "WITHIN",
];

/// A parsed operator template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    /// The template's form.
    pub form: Form,
    /// The arguments named by the placeholders, in template order.
    pub args: Vec<String>,
    /// The keywords and symbols, upper-cased, in order.
    pub words: Vec<String>,
}

/// The form of an operator template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Form {
    /// `{{ a }} KEYWORDS {{ b }}`.
    Infix {
        /// The operator's keywords, upper-cased (`["RELEVANCE", "TO"]`).
        keywords: Vec<String>,
    },
    /// `{{ a }} KEYWORDS`.
    Postfix {
        /// The operator's keywords, upper-cased.
        keywords: Vec<String>,
    },
    /// `NAME({{ a }}, …)`.
    Call {
        /// The function name, lower-cased.
        name: String,
    },
    /// `THEN KEYWORD [KEYWORD | {{ arg }}]…`: a pipeline stage after a query.
    Stage {
        /// The words and placeholders after `THEN`, in order: a keyword upper-cased, a placeholder as
        /// `None` (its name is the next of [`Template::args`]).
        pieces: Vec<Option<String>>,
    },
    /// Any other sequence (prefix forms): checked, not yet SQL syntax.
    Other,
}

/// Why a template does not parse: a message and the byte offset in the template where it went wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateError {
    /// What is wrong.
    pub message: String,
    /// Byte offset in the template.
    pub offset: usize,
}

impl std::fmt::Display for TemplateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (at character {})", self.message, self.offset + 1)
    }
}

impl std::error::Error for TemplateError {}

/// One piece of a template.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Arg(String),
    Word(String),
    Punct(char),
}

/// Parse an operator template (see the module docs for the grammar).
///
/// Errors: a [`TemplateError`] for an unclosed or malformed placeholder, a character outside the
/// grammar, a template without keywords, or an infix/postfix operator starting with a [`RESERVED`] word.
pub fn parse(template: &str) -> Result<Template, TemplateError> {
    let pieces = tokenize(template)?;
    let args: Vec<String> = pieces
        .iter()
        .filter_map(|(p, _)| match p {
            Piece::Arg(a) => Some(a.clone()),
            _ => None,
        })
        .collect();
    let words: Vec<String> = pieces
        .iter()
        .filter_map(|(p, _)| match p {
            Piece::Word(w) => Some(w.clone()),
            Piece::Punct('~') => Some("~".to_owned()),
            _ => None,
        })
        .collect();
    if words.is_empty() {
        return Err(TemplateError {
            message:
                "an operator template needs at least one keyword, such as `{{ text }} MEANS {{ criterion }}`"
                    .into(),
            offset: 0,
        });
    }
    let form = classify(&pieces)?;
    Ok(Template { form, args, words })
}

fn classify(pieces: &[(Piece, usize)]) -> Result<Form, TemplateError> {
    let only_words = |slice: &[(Piece, usize)]| {
        !slice.is_empty() && slice.iter().all(|(p, _)| matches!(p, Piece::Word(_)))
    };
    let keywords = |slice: &[(Piece, usize)]| -> Vec<String> {
        slice
            .iter()
            .filter_map(|(p, _)| match p {
                Piece::Word(w) => Some(w.clone()),
                _ => None,
            })
            .collect()
    };
    if let Some(stage) = stage(pieces) {
        return Ok(stage);
    }
    let n = pieces.len();
    let starts_with_arg = matches!(pieces.first(), Some((Piece::Arg(_), _)));
    if starts_with_arg && n >= 2 {
        let ends_with_arg = matches!(pieces.last(), Some((Piece::Arg(_), _)));
        let middle = if ends_with_arg {
            &pieces[1..n - 1]
        } else {
            &pieces[1..]
        };
        if only_words(middle) {
            let (first, at) = match &middle[0] {
                (Piece::Word(w), at) => (w.as_str(), *at),
                _ => ("", 0),
            };
            if RESERVED.contains(&first) {
                return Err(TemplateError {
                    message: format!(
                        "`{first}` already has a meaning in SQL after an expression; start the operator \
                         with another word"
                    ),
                    offset: at,
                });
            }
            let keywords = keywords(middle);
            return Ok(if ends_with_arg && n >= 3 {
                Form::Infix { keywords }
            } else {
                Form::Postfix { keywords }
            });
        }
    }
    if let [(Piece::Word(name), _), (Piece::Punct('('), _), rest @ ..] = pieces
        && let [inner @ .., (Piece::Punct(')'), _)] = rest
        && is_arg_list(inner)
    {
        return Ok(Form::Call {
            name: name.to_lowercase(),
        });
    }
    Ok(Form::Other)
}

/// `THEN KEYWORD …` with keywords and placeholders only: a pipeline stage.
fn stage(pieces: &[(Piece, usize)]) -> Option<Form> {
    let [(Piece::Word(then), _), (Piece::Word(_), _), ..] = pieces else {
        return None;
    };
    if then != "THEN" {
        return None;
    }
    let rest = pieces[1..]
        .iter()
        .map(|(p, _)| match p {
            Piece::Word(w) => Some(Some(w.clone())),
            Piece::Arg(_) => Some(None),
            Piece::Punct(_) => None,
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Form::Stage { pieces: rest })
}

/// `{{ a }}, {{ b }}` (or nothing).
fn is_arg_list(pieces: &[(Piece, usize)]) -> bool {
    pieces.is_empty()
        || pieces.iter().enumerate().all(|(i, (p, _))| {
            if i % 2 == 0 {
                matches!(p, Piece::Arg(_))
            } else {
                matches!(p, Piece::Punct(','))
            }
        }) && pieces.len() % 2 == 1
}

fn tokenize(template: &str) -> Result<Vec<(Piece, usize)>, TemplateError> {
    let mut out = Vec::new();
    let bytes = template.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if template[i..].starts_with("{{") {
            let Some(close) = template[i..].find("}}") else {
                return Err(TemplateError {
                    message: "`{{` is not closed; write a placeholder as `{{ name }}`".into(),
                    offset: i,
                });
            };
            let inner = template[i + 2..i + close].trim();
            if !is_name(inner) {
                return Err(TemplateError {
                    message: format!(
                        "`{{{{ {inner} }}}}` must name one argument (letters, digits and `_`), such as \
                         `{{{{ text }}}}`"
                    ),
                    offset: i,
                });
            }
            out.push((Piece::Arg(inner.to_owned()), i));
            i += close + 2;
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            out.push((Piece::Word(template[start..i].to_uppercase()), start));
        } else if matches!(c, b'(' | b')' | b',' | b'~') {
            out.push((Piece::Punct(char::from(c)), i));
            i += 1;
        } else {
            let shown = template[i..].chars().next().unwrap_or(' ');
            return Err(TemplateError {
                message: format!(
                    "`{shown}` cannot appear in an operator template; use keywords, `{{{{ arg }}}}` \
                     placeholders, `(`, `)`, `,` and `~`"
                ),
                offset: i,
            });
        }
    }
    Ok(out)
}

fn is_name(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn infix(words: &[&str]) -> Form {
        Form::Infix {
            keywords: words.iter().map(|w| (*w).to_owned()).collect(),
        }
    }

    #[test]
    fn forms_are_recognised() {
        let t = parse("{{ text }} MEANS {{ criterion }}").unwrap();
        assert_eq!(t.form, infix(&["MEANS"]));
        assert_eq!(t.args, ["text", "criterion"]);
        assert_eq!(
            parse("{{a}} relevance to {{b}}").unwrap().form,
            infix(&["RELEVANCE", "TO"])
        );
        assert_eq!(
            parse("{{ text }} IS_SPAM").unwrap().form,
            Form::Postfix {
                keywords: vec!["IS_SPAM".into()]
            }
        );
        let call = parse("SMART_TRANSLATE({{ text }}, {{ lang }})").unwrap();
        assert_eq!(
            call.form,
            Form::Call {
                name: "smart_translate".into()
            }
        );
        assert_eq!(call.args, ["text", "lang"]);
        assert_eq!(
            parse("then enrich {{ prompt }} as {{ column }}").unwrap().form,
            Form::Stage {
                pieces: vec![Some("ENRICH".into()), None, Some("AS".into()), None]
            }
        );
        assert_eq!(
            parse("THEN STATS").unwrap().form,
            Form::Stage {
                pieces: vec![Some("STATS".into())]
            }
        );
        assert_eq!(parse("THEN {{ a }}").unwrap().form, Form::Other);
        assert_eq!(parse("THEN F({{ a }})").unwrap().form, Form::Other);
        assert_eq!(parse("ASK {{ p }} FROM {{ t }}").unwrap().form, Form::Other);
        assert_eq!(parse("{{ a }} ~ {{ b }}").unwrap().form, Form::Other);
    }

    #[test]
    fn broken_templates_say_where() {
        let e = parse("{{ text } MEANS {{ c }}").unwrap_err();
        assert_eq!(e.offset, 0);
        let e = parse("{{ text }} MEANS {{ input.c }}").unwrap_err();
        assert_eq!(e.offset, 17, "{e}");
        let e = parse("{{ a }} >= {{ b }}").unwrap_err();
        assert_eq!(e.offset, 8);
        assert!(parse("{{ a }} {{ b }}").is_err());
        assert!(parse("").is_err());
        let e = parse("{{ a }} AND {{ b }}").unwrap_err();
        assert!(e.message.contains("`AND`"), "{e}");
        assert!(parse("{{ a }} not means {{ b }}").is_err());
    }
}
