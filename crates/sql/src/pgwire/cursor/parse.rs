//! The cursor statements' grammar (PostgreSQL's): `DECLARE name [BINARY] [ASENSITIVE | INSENSITIVE]
//! [NO SCROLL] CURSOR [WITH HOLD | WITHOUT HOLD] FOR query`, `FETCH`/`MOVE [direction] [FROM | IN] name`
//! and `CLOSE name | ALL`. sqlparser does not parse MOVE and only some forms of the others, so a query
//! string holding one is split here, by its tokens, into statements; the other statements (and a
//! DECLARE's query) go through the usual parser.

// `ErrorInfo` is pgwire's own error message type, which the protocol layer consumes as is.
#![allow(clippy::result_large_err)]

use datafusion::sql::sqlparser::dialect::Dialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer, Word};
use pgwire::error::ErrorInfo;

use super::{Count, Fetch};
use crate::pgwire::errors::{error, state};
use crate::statements::Offsets;

/// PostgreSQL's longest identifier in bytes (NAMEDATALEN - 1); longer names are truncated, as there.
const NAME_BYTES: usize = 63;

/// One statement of a query string that holds a cursor statement.
#[derive(Debug)]
pub(crate) enum Piece<'a> {
    /// `DECLARE`: the cursor and the text of its query.
    Declare(Header, &'a str),
    /// `FETCH` / `MOVE`.
    Fetch(Fetch),
    /// `CLOSE name` / `CLOSE ALL` (None).
    Close(Option<String>),
    /// A cursor statement that is refused (syntax, or a form not served).
    Refused(Box<ErrorInfo>),
    /// Any other statement, as written.
    Other(&'a str),
}

/// What a DECLARE says about its cursor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) name: String,
    pub(crate) binary: bool,
    pub(crate) hold: bool,
}

/// A non-blank token and the byte offset where it starts.
struct Tok {
    token: Token,
    start: usize,
}

/// The statements of `sql` when one of them is a cursor statement (None: there is none, or the text
/// does not tokenize; the usual parser takes it).
pub(crate) fn split<'a>(sql: &'a str, dialect: &dyn Dialect) -> Option<Vec<Piece<'a>>> {
    // Most strings name none of the verbs: they are not tokenized a second time.
    let bytes = sql.as_bytes();
    let names = |verb: &str| {
        bytes
            .windows(verb.len())
            .any(|w| w.eq_ignore_ascii_case(verb.as_bytes()))
    };
    if !["declare", "fetch", "move", "close"].into_iter().any(names) {
        return None;
    }
    let tokens = Tokenizer::new(dialect, sql).tokenize_with_location().ok()?;
    let mut offsets = Offsets::new(sql);
    let mut statements: Vec<(usize, usize, Vec<Tok>)> = Vec::new();
    let mut start = 0;
    let mut current = Vec::new();
    for t in tokens {
        let at = offsets.at(t.span.start);
        match t.token {
            Token::SemiColon => {
                statements.push((start, at, std::mem::take(&mut current)));
                start = at + 1;
            }
            Token::Whitespace(_) | Token::EOF => {}
            token => current.push(Tok { token, start: at }),
        }
    }
    statements.push((start, sql.len(), current));
    let verb = |toks: &[Tok]| {
        toks.first()
            .and_then(|t| plain_word(&t.token))
            .map(str::to_ascii_uppercase)
    };
    let is_cursor = |toks: &[Tok]| {
        verb(toks).is_some_and(|v| matches!(v.as_str(), "DECLARE" | "FETCH" | "MOVE" | "CLOSE"))
    };
    if !statements.iter().any(|(_, _, toks)| is_cursor(toks)) {
        return None;
    }
    let pieces = statements
        .into_iter()
        .filter(|(_, _, toks)| !toks.is_empty())
        .map(|(start, end, toks)| {
            let text = sql.get(start..end).unwrap_or_default();
            match verb(&toks).as_deref() {
                Some("DECLARE") => match declare(&toks) {
                    Ok((header, at)) => Piece::Declare(header, sql.get(at..end).unwrap_or_default()),
                    Err(e) => Piece::Refused(Box::new(e)),
                },
                Some(v @ ("FETCH" | "MOVE")) => match fetch(&toks, v == "MOVE") {
                    Ok(f) => Piece::Fetch(f),
                    Err(e) => Piece::Refused(Box::new(e)),
                },
                Some("CLOSE") => match close(&toks) {
                    Ok(name) => Piece::Close(name),
                    Err(e) => Piece::Refused(Box::new(e)),
                },
                _ => Piece::Other(text),
            }
        })
        .collect();
    Some(pieces)
}

/// The word of an unquoted identifier or keyword.
fn plain_word(token: &Token) -> Option<&str> {
    match token {
        Token::Word(Word {
            value,
            quote_style: None,
            ..
        }) => Some(value),
        _ => None,
    }
}

fn is_word(tok: Option<&Tok>, word: &str) -> bool {
    tok.and_then(|t| plain_word(&t.token))
        .is_some_and(|w| w.eq_ignore_ascii_case(word))
}

fn syntax(what: &str, near: Option<&Tok>) -> ErrorInfo {
    let near = near.map_or_else(|| "end of input".to_owned(), |t| format!("\"{}\"", t.token));
    error(
        state::SYNTAX,
        format!("syntax error at or near {near}: {what}"),
        "",
    )
}

fn backward(form: &str) -> ErrorInfo {
    error(
        state::NOT_SUPPORTED,
        format!("{form} is not supported: cursors here only move forward"),
        "use FETCH [FORWARD] n | ALL | NEXT, or declare a new cursor to start over",
    )
}

/// A cursor name: an identifier (unquoted ones fold to lower case), truncated to 63 bytes.
fn name(tok: Option<&Tok>, what: &str) -> Result<String, ErrorInfo> {
    let Some(Tok {
        token: Token::Word(word),
        ..
    }) = tok
    else {
        return Err(syntax(what, tok));
    };
    let mut name = match word.quote_style {
        None => word.value.to_ascii_lowercase(),
        Some(_) => word.value.clone(),
    };
    if name.is_empty() {
        return Err(error(state::SYNTAX, "zero-length delimited identifier", ""));
    }
    if name.len() > NAME_BYTES {
        let mut end = NAME_BYTES;
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        name.truncate(end);
    }
    Ok(name)
}

/// `DECLARE …`: the header and the byte offset of the query after FOR.
fn declare(toks: &[Tok]) -> Result<(Header, usize), ErrorInfo> {
    let mut header = Header {
        name: name(toks.get(1), "DECLARE needs a cursor name")?,
        binary: false,
        hold: false,
    };
    let mut i = 2;
    loop {
        let Some(word) = toks.get(i).and_then(|t| plain_word(&t.token)) else {
            return Err(syntax("expected CURSOR", toks.get(i)));
        };
        match word.to_ascii_uppercase().as_str() {
            "BINARY" => header.binary = true,
            "ASENSITIVE" | "INSENSITIVE" => {}
            "NO" if is_word(toks.get(i + 1), "SCROLL") => i += 1,
            "SCROLL" => return Err(backward("DECLARE … SCROLL CURSOR")),
            "CURSOR" => break,
            _ => return Err(syntax("expected CURSOR", toks.get(i))),
        }
        i += 1;
    }
    i += 1;
    if is_word(toks.get(i + 1), "HOLD") {
        if is_word(toks.get(i), "WITH") {
            header.hold = true;
            i += 2;
        } else if is_word(toks.get(i), "WITHOUT") {
            i += 2;
        }
    }
    if !is_word(toks.get(i), "FOR") {
        return Err(syntax("expected FOR and the cursor's query", toks.get(i)));
    }
    let Some(query) = toks.get(i + 1) else {
        return Err(syntax("expected the cursor's query after FOR", None));
    };
    Ok((header, query.start))
}

/// `FETCH` / `MOVE [direction] [FROM | IN] name`, forward forms only.
fn fetch(toks: &[Tok], moving: bool) -> Result<Fetch, ErrorInfo> {
    let verb = if moving { "MOVE" } else { "FETCH" };
    let Some((last, rest)) = toks.split_last() else {
        return Err(syntax("expected a cursor name", None));
    };
    let name = name(Some(last).filter(|_| !rest.is_empty()), "expected a cursor name")?;
    let mut direction = rest.get(1..).unwrap_or_default();
    if let Some((from, before)) = direction.split_last()
        && (is_word(Some(from), "FROM") || is_word(Some(from), "IN"))
    {
        direction = before;
    }
    let words: Vec<String> = direction
        .iter()
        .map(|t| plain_word(&t.token).map_or_else(String::new, str::to_ascii_uppercase))
        .collect();
    let first = words.first().map(String::as_str).unwrap_or_default();
    let count = match (first, direction.len()) {
        (_, 0) | ("NEXT" | "FORWARD", 1) => Count::Rows(1),
        ("ALL", 1) => Count::All,
        ("FORWARD", 2) if words[1] == "ALL" => Count::All,
        ("FORWARD", _) => count(verb, &direction[1..])?,
        ("PRIOR" | "FIRST" | "LAST" | "BACKWARD" | "ABSOLUTE" | "RELATIVE", _) => {
            return Err(backward(&format!("{verb} {first}")));
        }
        _ => count(verb, direction)?,
    };
    Ok(Fetch { name, count, moving })
}

/// A forward row count: an integer, optionally signed (negative counts and 0 go backward or stay).
fn count(verb: &str, toks: &[Tok]) -> Result<Count, ErrorInfo> {
    let (negative, number) = match toks {
        [
            Tok {
                token: Token::Number(n, _),
                ..
            },
        ] => (false, n),
        [
            sign,
            Tok {
                token: Token::Number(n, _),
                ..
            },
        ] if matches!(sign.token, Token::Plus | Token::Minus) => (sign.token == Token::Minus, n),
        _ => {
            return Err(syntax(
                &format!("{verb} expects a row count, ALL, NEXT or FORWARD"),
                toks.first(),
            ));
        }
    };
    if !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(syntax(
            &format!("{verb}'s row count must be an integer"),
            toks.last(),
        ));
    }
    let Ok(rows) = number.parse::<u64>() else {
        return Err(error(
            state::OUT_OF_RANGE,
            format!("{verb} row count {number} is out of range"),
            "use ALL for every remaining row",
        ));
    };
    if negative && rows > 0 {
        return Err(backward(&format!("{verb} -{number} (backward)")));
    }
    if rows == 0 {
        return Err(error(
            state::NOT_SUPPORTED,
            format!("{verb} 0 (re-reading the current row) is not supported"),
            "use FETCH [FORWARD] n with n ≥ 1, or ALL",
        ));
    }
    Ok(Count::Rows(rows))
}

/// `CLOSE name` / `CLOSE ALL`.
fn close(toks: &[Tok]) -> Result<Option<String>, ErrorInfo> {
    if toks.len() > 2 {
        return Err(syntax("CLOSE takes one cursor name or ALL", toks.get(2)));
    }
    if is_word(toks.get(1), "ALL") {
        return Ok(None);
    }
    name(toks.get(1), "CLOSE needs a cursor name or ALL").map(Some)
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;

    use super::*;

    fn pieces(sql: &str) -> Vec<Piece<'_>> {
        split(sql, &PostgreSqlDialect {}).unwrap()
    }

    fn fetch_of(sql: &str) -> Result<Fetch, ErrorInfo> {
        match pieces(sql).pop().unwrap() {
            Piece::Fetch(f) => Ok(f),
            Piece::Refused(e) => Err(*e),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn only_strings_with_a_cursor_statement_are_split() {
        assert!(split("SELECT 1; SELECT 'fetch'", &PostgreSqlDialect {}).is_none());
        let p = pieces(
            "BEGIN; DECLARE \"Big;One\" BINARY NO SCROLL CURSOR WITH HOLD FOR SELECT ';' -- x\n; FETCH 2 big",
        );
        assert_eq!(p.len(), 3);
        assert!(matches!(p[0], Piece::Other("BEGIN")));
        let Piece::Declare(h, query) = &p[1] else {
            panic!("{:?}", p[1])
        };
        assert_eq!(
            *h,
            Header {
                name: "Big;One".into(),
                binary: true,
                hold: true
            }
        );
        assert_eq!(*query, "SELECT ';' -- x\n");
    }

    #[test]
    fn statements_split_at_byte_offsets_past_multibyte_text() {
        let p = pieces("SELECT 'é→'\n  ;  FETCH 1 FROM c; SELECT '«;»'");
        assert!(matches!(p[0], Piece::Other("SELECT 'é→'\n  ")), "{p:?}");
        assert!(matches!(p[2], Piece::Other(" SELECT '«;»'")), "{p:?}");
    }

    #[test]
    fn fetch_forms() {
        let rows = |sql: &str| fetch_of(sql).map(|f| (f.name, f.count, f.moving));
        assert_eq!(rows("FETCH c").unwrap(), ("c".into(), Count::Rows(1), false));
        assert_eq!(
            rows("fetch forward 10 from \"C\"").unwrap(),
            ("C".into(), Count::Rows(10), false)
        );
        assert_eq!(rows("FETCH ALL IN c").unwrap().1, Count::All);
        assert_eq!(rows("FETCH FORWARD ALL c").unwrap().1, Count::All);
        assert_eq!(rows("FETCH NEXT FROM c").unwrap().1, Count::Rows(1));
        assert_eq!(rows("MOVE +3 c").unwrap(), ("c".into(), Count::Rows(3), true));
        assert_eq!(
            rows("FETCH 9223372036854775807 c").unwrap().1,
            Count::Rows(9_223_372_036_854_775_807)
        );
        assert_eq!(rows("FETCH 99999999999999999999999 c").unwrap_err().code, "22003");
        assert_eq!(rows("FETCH PRIOR FROM c").unwrap_err().code, "0A000");
        assert_eq!(rows("FETCH BACKWARD 2 FROM c").unwrap_err().code, "0A000");
        assert_eq!(rows("FETCH -1 FROM c").unwrap_err().code, "0A000");
        assert_eq!(rows("MOVE 0 IN c").unwrap_err().code, "0A000");
        assert_eq!(rows("FETCH 1.5 FROM c").unwrap_err().code, "42601");
        assert_eq!(rows("FETCH").unwrap_err().code, "42601");
        assert_eq!(rows("FETCH 2 3 c").unwrap_err().code, "42601");
        let long = format!("FETCH \"{}\"", "é".repeat(40));
        assert_eq!(rows(&long).unwrap().0.len(), 62);
    }

    #[test]
    fn declare_and_close_errors() {
        let refused = |sql: &str| match pieces(sql).pop().unwrap() {
            Piece::Refused(e) => e.code,
            other => panic!("{other:?}"),
        };
        assert_eq!(refused("DECLARE c SCROLL CURSOR FOR SELECT 1"), "0A000");
        assert_eq!(refused("DECLARE c CURSOR SELECT 1"), "42601");
        assert_eq!(refused("DECLARE c CURSOR FOR"), "42601");
        assert_eq!(refused("DECLARE \"\" CURSOR FOR SELECT 1"), "42601");
        assert_eq!(refused("CLOSE a b"), "42601");
        assert!(matches!(pieces("CLOSE ALL").pop(), Some(Piece::Close(None))));
        assert!(matches!(pieces("close \"ALL\"").pop(), Some(Piece::Close(Some(n))) if n == "ALL"));
    }
}
