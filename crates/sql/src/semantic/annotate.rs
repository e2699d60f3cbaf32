//! `-- @` annotations (SQL interface spec §12 "Extras"): comment lines that set options of the next
//! semantic function call of the statement.
//!
//! ```sql
//! SELECT id FROM tickets
//! WHERE -- @ model: provider/big-model
//!       -- @ Be strict: a question about a refund is not a refund request.
//!       body MEANS 'refund request'
//! ```
//!
//! - They are found on the statement's tokens ([`lines`]), so a `-- @` inside a string or a quoted name
//!   is not one; a line is `-- @ key: value` (an option, [`KEYS`]) or `-- @ free text` (prepended to the
//!   call's prompt). A key that is not known is a notice naming it, and its line is ignored.
//! - Each line applies to the first semantic call (a SCALAR, ROW or AGGREGATE function, called by name
//!   or by operator) whose name or operator keyword comes after it ([`attach`]); an operator call's
//!   position is its keyword's (`dialect.rs`).
//! - An annotated call is renamed `name@k` (k = 1, 2, … in the statement) and planned with a function of
//!   its own: the definition with the model and text applied (its own cascade hash, so its own cache
//!   entries) and the options that override the session's settings ([`Overrides`]).
//! - Bounded: at most `rvbbit.max_annotations` lines per statement, each at most
//!   `rvbbit.max_annotation_bytes`; more is RVB-Q007 before anything is planned.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use datafusion::sql::parser::{CopyToSource, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::{Expr, Ident, ObjectNamePart, visit_expressions_mut};
use datafusion::sql::sqlparser::dialect::Dialect;
use datafusion::sql::sqlparser::tokenizer::{Location, Token, Tokenizer, Whitespace};
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::options::RvbbitOptions;

/// The option keys of a `-- @ key: value` line.
pub(crate) const KEYS: &[&str] = &["model", "cheap_model", "cheap_threshold", "batch_size", "cache"];

/// What the annotations of one call set.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Overrides {
    /// `model:` the model the call's cascade asks.
    pub(crate) model: Option<String>,
    /// `cheap_model:` a cheap model first (`Some(None)`: `off`).
    pub(crate) cheap_model: Option<Option<String>>,
    /// `cheap_threshold:` the confidence at which the cheap model's answer is kept.
    pub(crate) cheap_threshold: Option<f64>,
    /// `batch_size:` the most rows of one prompt.
    pub(crate) batch_size: Option<usize>,
    /// `cache:` serve and fill the result cache.
    pub(crate) cache: Option<bool>,
    /// The free-text lines, in order: prepended to the call's prompt.
    pub(crate) text: Vec<String>,
    /// The lines (1-based) of the annotations.
    pub(crate) lines: Vec<u64>,
}

impl Overrides {
    /// The session's settings with these on top.
    pub(crate) fn apply(&self, options: RvbbitOptions) -> RvbbitOptions {
        crate::with_clause::overlay(
            options,
            self.cheap_model.as_ref(),
            self.cheap_threshold,
            self.batch_size,
            self.cache,
        )
    }

    /// The free text, one line each, as it is prepended to the prompt.
    pub(crate) fn text(&self) -> String {
        self.text.join("\n")
    }

    /// How the call is shown in EXPLAIN and recorded in `sql_query_log.annotations`.
    pub(crate) fn describe(&self, call: &str, function: &str) -> Value {
        let mut out = json!({"call": call, "function": function, "lines": self.lines});
        if let Some(m) = &self.model {
            out["model"] = json!(m);
        }
        if let Some(c) = &self.cheap_model {
            out["cheap_model"] = json!(c.as_deref().unwrap_or("off"));
        }
        if let Some(c) = self.cheap_threshold {
            out["cheap_threshold"] = json!(c);
        }
        if let Some(k) = self.batch_size {
            out["batch_size"] = json!(k);
        }
        if let Some(c) = self.cache {
            out["cache"] = json!(c);
        }
        if !self.text.is_empty() {
            out["text"] = json!(self.text());
        }
        out
    }

    /// Set `key` to `value` (the line at `line`). Errors: a value out of range (RVB-Q004).
    fn set(&mut self, key: &str, value: &str, line: u64) -> Result<()> {
        let bad = |what: &str| Error::Argument {
            message: format!("the annotation `-- @ {key}: {value}` at line {line} is not valid: {what}"),
        };
        if value.is_empty() {
            return Err(bad("it has no value"));
        }
        match key {
            "model" => self.model = Some(value.to_owned()),
            "cheap_model" => {
                self.cheap_model = Some(match value.to_ascii_lowercase().as_str() {
                    "off" | "none" => None,
                    _ => Some(value.to_owned()),
                });
            }
            "cheap_threshold" => match value.parse::<f64>() {
                Ok(c) if (0.0..=1.0).contains(&c) => self.cheap_threshold = Some(c),
                _ => return Err(bad("use a confidence from 0 to 1")),
            },
            "batch_size" => match value.parse::<usize>() {
                Ok(k) if (1..=crate::options::MAX_BATCH_SIZE).contains(&k) => self.batch_size = Some(k),
                _ => {
                    return Err(bad(&format!(
                        "use a whole number of rows from 1 to {}",
                        crate::options::MAX_BATCH_SIZE
                    )));
                }
            },
            "cache" => match value.to_ascii_lowercase().as_str() {
                "on" | "true" | "yes" => self.cache = Some(true),
                "off" | "false" | "no" => self.cache = Some(false),
                _ => return Err(bad("use on or off")),
            },
            _ => return Err(bad("not an annotation key")),
        }
        Ok(())
    }
}

/// One `-- @` line: where it is and what follows the `@` (trimmed).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Line {
    pub(crate) at: Location,
    pub(crate) text: String,
}

/// The `-- @` lines of `sql`, checked against the limits (`max_count` lines, `max_bytes` each) and
/// their option values. A text that does not tokenize has none (the parser reports it).
/// Errors: over a limit (RVB-Q007); a bad value of a known key (RVB-Q004).
pub(crate) fn lines(
    sql: &str,
    dialect: &dyn Dialect,
    max_count: usize,
    max_bytes: usize,
) -> Result<Vec<Line>> {
    if !sql.contains('@') {
        return Ok(Vec::new());
    }
    let Ok(tokens) = Tokenizer::new(dialect, sql).tokenize_with_location() else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for token in tokens {
        let Token::Whitespace(Whitespace::SingleLineComment { comment, prefix }) = &token.token else {
            continue;
        };
        let Some(text) = (prefix == "--")
            .then(|| comment.trim_start().strip_prefix('@'))
            .flatten()
        else {
            continue;
        };
        let text = text.trim();
        if out.len() >= max_count {
            return Err(Error::Annotation {
                message: format!(
                    "the statement has more than {max_count} `-- @` annotation lines (the one at line {} is \
                     over the limit rvbbit.max_annotations = {max_count}); annotate fewer calls or \
                     `SET rvbbit.max_annotations` higher",
                    token.span.start.line
                ),
            });
        }
        if text.len() > max_bytes {
            return Err(Error::Annotation {
                message: format!(
                    "the `-- @` annotation at line {} has {} bytes, over the limit \
                     rvbbit.max_annotation_bytes = {max_bytes}; shorten it or `SET \
                     rvbbit.max_annotation_bytes` higher",
                    token.span.start.line,
                    text.len()
                ),
            });
        }
        // A bad value of a known key fails here, before anything is planned or asked.
        if let Some((key, value)) = key_value(text)
            && KEYS.contains(&key.as_str())
        {
            Overrides::default().set(&key, value, token.span.start.line)?;
        }
        out.push(Line {
            at: token.span.start,
            text: text.to_owned(),
        });
    }
    Ok(out)
}

/// Whether `sql` has a `-- @` annotation line (the wire sends such a statement to the session as
/// written, since rendering its parsed tree would drop the comments).
pub(crate) fn present(sql: &str, dialect: &dyn Dialect) -> bool {
    // A line with a bad value is one too (the session reports it).
    lines(sql, dialect, usize::MAX, usize::MAX).map_or(true, |l| !l.is_empty())
}

/// `key: value` when the line starts with a plain word and a colon.
fn key_value(text: &str) -> Option<(String, &str)> {
    let (key, value) = text.split_once(':')?;
    let key = key.trim();
    let word = key
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    word.then(|| (key.to_ascii_lowercase(), value.trim()))
}

/// One annotated call: its new name, the function's name and what its annotations set.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Annotated {
    /// `name@k`: the name the call is planned under.
    pub(crate) call: String,
    /// The function's (lower-case) name as called.
    pub(crate) function: String,
    pub(crate) overrides: Overrides,
}

/// Attach `lines` to the semantic calls of `statement` (`is_semantic(name)`: whether a lower-case
/// function name is one that takes annotations) and rename each annotated call `name@k`. Returns the
/// annotated calls and the notices (unknown keys, lines that precede no call).
/// Errors: a bad value of a known key (RVB-Q004).
pub(crate) fn attach(
    statement: &mut DfStatement,
    lines: &[Line],
    is_semantic: &dyn Fn(&str) -> bool,
) -> Result<(Vec<Annotated>, Vec<String>)> {
    if lines.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    // The semantic calls in visiting order, with their names and positions.
    let mut sites: Vec<(String, Location)> = Vec::new();
    visit(statement, &mut |name, ident| {
        if is_semantic(name) && ident.span.start.line > 0 {
            sites.push((name.to_owned(), ident.span.start));
        }
        None
    });
    let mut notices = Vec::new();
    // Site index → its overrides.
    let mut by_site: BTreeMap<usize, Overrides> = BTreeMap::new();
    for line in lines {
        let next = sites
            .iter()
            .enumerate()
            .filter(|(_, (_, at))| (at.line, at.column) > (line.at.line, line.at.column))
            .min_by_key(|(_, (_, at))| (at.line, at.column))
            .map(|(i, _)| i);
        let Some(site) = next else {
            notices.push(format!(
                "the `-- @` annotation at line {} is ignored: no semantic function call (SCALAR, ROW or \
                 AGGREGATE) follows it in the statement",
                line.at.line
            ));
            continue;
        };
        let overrides = by_site.entry(site).or_default();
        overrides.lines.push(line.at.line);
        match key_value(&line.text) {
            Some((key, value)) if KEYS.contains(&key.as_str()) => overrides.set(&key, value, line.at.line)?,
            Some((key, _)) => notices.push(format!(
                "the `-- @ {key}:` annotation at line {} is ignored: `{key}` is not an annotation key (the \
                 keys are {}); free text must not start with a word and a colon",
                line.at.line,
                KEYS.join(", ")
            )),
            None if line.text.is_empty() => {}
            None => overrides.text.push(line.text.clone()),
        }
    }
    let mut annotated = Vec::new();
    let mut calls: BTreeMap<usize, String> = BTreeMap::new();
    for (k, (site, overrides)) in by_site.into_iter().enumerate() {
        let function = sites[site].0.clone();
        let call = format!("{function}@{}", k + 1);
        calls.insert(site, call.clone());
        annotated.push(Annotated {
            call,
            function,
            overrides,
        });
    }
    let mut index = 0usize;
    visit(statement, &mut |name, ident| {
        if !(is_semantic(name) && ident.span.start.line > 0) {
            return None;
        }
        let renamed = calls.get(&index).cloned();
        index += 1;
        renamed
    });
    Ok((annotated, notices))
}

/// Call `f` with the lower-case name and name part of every one-part function call of `statement`, in
/// visiting order; a name `f` returns replaces the call's name (quoted, with the same position).
fn visit(statement: &mut DfStatement, f: &mut dyn FnMut(&str, &Ident) -> Option<String>) {
    let mut each = |expr: &mut Expr| {
        if let Expr::Function(call) = expr
            && let [ObjectNamePart::Identifier(ident)] = call.name.0.as_mut_slice()
        {
            let name = ident.value.to_lowercase();
            if let Some(new) = f(&name, ident) {
                *ident = Ident {
                    value: new,
                    quote_style: Some('"'),
                    span: ident.span,
                };
            }
        }
        ControlFlow::<()>::Continue(())
    };
    // The visitor never breaks: the results carry nothing.
    let _ = match statement {
        DfStatement::Statement(s) => visit_expressions_mut(s.as_mut(), &mut each),
        DfStatement::CopyTo(copy) => match &mut copy.source {
            CopyToSource::Query(q) => visit_expressions_mut(q.as_mut(), &mut each),
            CopyToSource::Relation(_) => ControlFlow::Continue(()),
        },
        DfStatement::Explain(explain) => {
            visit(&mut explain.statement, f);
            ControlFlow::Continue(())
        }
        DfStatement::CreateExternalTable(_) | DfStatement::Reset(_) => ControlFlow::Continue(()),
    };
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::sql::parser::DFParserBuilder;
    use datafusion::sql::sqlparser::dialect::GenericDialect;

    use super::*;
    use crate::semantic::dialect::{Fixity, Operator, Operators, SemanticDialect};

    fn dialect() -> SemanticDialect {
        SemanticDialect::new(
            Box::new(GenericDialect {}),
            Arc::new(Operators::new(vec![Operator {
                keywords: vec!["MEANS".into()],
                function: "semantic_matches".into(),
                fixity: Fixity::Infix,
                predicate: true,
                positions: vec![0, 1],
            }])),
        )
    }

    fn run(sql: &str) -> Result<(String, Vec<Annotated>, Vec<String>)> {
        let d = dialect();
        let lines = lines(sql, &d, 8, 64)?;
        let mut statement = DFParserBuilder::new(sql)
            .with_dialect(&d)
            .build()
            .and_then(|mut p| p.parse_statements())
            .unwrap()
            .pop_front()
            .unwrap();
        let semantic = |n: &str| n == "semantic_matches" || n == "summarize";
        let (annotated, notices) = attach(&mut statement, &lines, &semantic)?;
        Ok((statement.to_string(), annotated, notices))
    }

    #[test]
    fn each_line_applies_to_the_next_semantic_call() {
        let (sql, annotated, notices) = run(
            "SELECT summarize(b), -- @ model: big/one\n  -- @ Be strict.\n  -- @ batch_size: 4\n  a MEANS 'x' \
             AS m\nFROM t WHERE -- @ cheap_model: off\n b MEANS 'y' AND upper(c) = 'Z'",
        )
        .unwrap();
        assert_eq!(
            sql,
            "SELECT summarize(b), \"semantic_matches@1\"(a, 'x') AS m FROM t WHERE \"semantic_matches@2\"(b, \
             'y') AND upper(c) = 'Z'"
        );
        assert!(notices.is_empty(), "{notices:?}");
        assert_eq!(annotated.len(), 2);
        let first = &annotated[0].overrides;
        assert_eq!(first.model.as_deref(), Some("big/one"));
        assert_eq!(first.text(), "Be strict.");
        assert_eq!(first.batch_size, Some(4));
        assert_eq!(first.lines, [1, 2, 3]);
        assert_eq!(annotated[1].overrides.cheap_model, Some(None));
        assert_eq!(annotated[1].call, "semantic_matches@2");
    }

    #[test]
    fn strings_are_not_annotations_and_unknown_keys_are_notices() {
        let (sql, annotated, notices) =
            run("SELECT '-- @ model: x' AS s, -- @ colour: red\n a MEANS 'x' FROM t -- @ trailing").unwrap();
        assert_eq!(
            sql,
            "SELECT '-- @ model: x' AS s, \"semantic_matches@1\"(a, 'x') FROM t"
        );
        assert_eq!(annotated[0].overrides.model, None);
        assert_eq!(notices.len(), 2, "{notices:?}");
        assert!(
            notices[0].contains("`colour` is not an annotation key"),
            "{}",
            notices[0]
        );
        assert!(
            notices[1].contains("at line 2 is ignored: no semantic function call"),
            "{}",
            notices[1]
        );
        let (unchanged, none, _) = run("SELECT a MEANS 'x' -- no annotation\nFROM t").unwrap();
        assert_eq!(unchanged, "SELECT semantic_matches(a, 'x') FROM t");
        assert!(none.is_empty());
    }

    #[test]
    fn bad_values_and_limits_are_coded_errors() {
        let bad = run("SELECT -- @ cheap_threshold: 2\n a MEANS 'x'").unwrap_err();
        assert_eq!(bad.code().code, "RVB-Q004");
        assert!(bad.to_string().contains("at line 1"), "{bad}");
        let many = "-- @ x\n".repeat(9) + "SELECT a MEANS 'x'";
        let err = run(&many).unwrap_err();
        assert_eq!(err.code().code, "RVB-Q007");
        assert!(err.to_string().contains("rvbbit.max_annotations = 8"), "{err}");
        let long = format!("-- @ {}\nSELECT a MEANS 'x'", "y".repeat(65));
        let err = run(&long).unwrap_err();
        assert!(
            err.to_string().contains("rvbbit.max_annotation_bytes = 64"),
            "{err}"
        );
    }
}
