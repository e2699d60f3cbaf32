//! `VECTOR_SEARCH('query', 'table', 'column', k [, 'model'])` (also `VECTOR_SEARCH('query',
//! 'table.column', k [, 'model'])`), written out on the statement's tokens before it is parsed as the
//! subquery
//!
//! ```sql
//! (SELECT *, semantic_similarity("column", 'query' [, 'model']) AS score
//!  FROM "table" ORDER BY score DESC NULLS LAST LIMIT k)
//! ```
//!
//! so it goes wherever a table goes (`SELECT * FROM VECTOR_SEARCH(…) AS hits`). The search is exact: it
//! compares the query with every row's vector, which the result cache keeps, so a second search over
//! the same rows asks only for the query's vector (and not that either when it was asked before).
//! `k` is at most [`MAX_K`]; table and column are names (letters, digits, `_`, a schema with `.`).

use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer, Word};

use crate::error::{Error, Result};

/// The most rows one `VECTOR_SEARCH` returns.
pub(crate) const MAX_K: u64 = 10_000;

/// `sql` with each `VECTOR_SEARCH(…)` written out, or `None` when it has none.
pub(crate) fn rewrite(sql: &str) -> Result<Option<String>> {
    if !sql.to_ascii_uppercase().contains("VECTOR_SEARCH") {
        return Ok(None);
    }
    let Ok(tokens) = Tokenizer::new(&GenericDialect {}, sql).tokenize() else {
        return Ok(None);
    };
    let mut out = Vec::with_capacity(tokens.len());
    let mut changed = false;
    let mut i = 0;
    while i < tokens.len() {
        let is_call = matches!(&tokens[i], Token::Word(Word { value, quote_style: None, .. })
            if value.eq_ignore_ascii_case("VECTOR_SEARCH"))
            && next_significant(&tokens, i + 1).is_some_and(|n| tokens[n] == Token::LParen);
        if !is_call {
            out.push(tokens[i].to_string());
            i += 1;
            continue;
        }
        let open = next_significant(&tokens, i + 1).unwrap_or(i + 1);
        let (args, close) = arguments(&tokens, open)?;
        out.push(subquery(&args)?);
        changed = true;
        i = close + 1;
    }
    Ok(changed.then(|| out.concat()))
}

/// The position of the first token at or after `from` that is not whitespace or a comment.
fn next_significant(tokens: &[Token], from: usize) -> Option<usize> {
    (from..tokens.len()).find(|&i| !matches!(tokens[i], Token::Whitespace(_)))
}

/// One argument: a string or a number literal.
#[derive(Debug, PartialEq)]
enum Arg {
    Text(String),
    Number(String),
}

/// The literal arguments of the call whose `(` is at `open`, and the position of its `)`.
fn arguments(tokens: &[Token], open: usize) -> Result<(Vec<Arg>, usize)> {
    let mut args = Vec::new();
    let mut expect_arg = true;
    let mut i = open + 1;
    while i < tokens.len() {
        match &tokens[i] {
            Token::Whitespace(_) => {}
            Token::RParen if !expect_arg || args.is_empty() => return Ok((args, i)),
            Token::Comma if !expect_arg => expect_arg = true,
            Token::SingleQuotedString(s) if expect_arg => {
                args.push(Arg::Text(s.clone()));
                expect_arg = false;
            }
            Token::Number(n, _) if expect_arg => {
                args.push(Arg::Number(n.clone()));
                expect_arg = false;
            }
            other => return Err(usage(&format!("`{other}` is not a string or number literal"))),
        }
        i += 1;
    }
    Err(usage("the call is not closed"))
}

fn usage(why: &str) -> Error {
    Error::Invalid {
        message: format!(
            "VECTOR_SEARCH: {why}; write VECTOR_SEARCH('query', 'table', 'column', k [, 'model']) or \
             VECTOR_SEARCH('query', 'table.column', k [, 'model']), with literal arguments"
        ),
    }
}

/// The subquery for the call's arguments.
fn subquery(args: &[Arg]) -> Result<String> {
    let (query, table, column, k, model) = match args {
        [
            Arg::Text(q),
            Arg::Text(t),
            Arg::Text(c),
            Arg::Number(k),
            rest @ ..,
        ] => (q, t.clone(), c.clone(), k, rest),
        [Arg::Text(q), Arg::Text(tc), Arg::Number(k), rest @ ..] => {
            let (t, c) = tc
                .rsplit_once('.')
                .ok_or_else(|| usage(&format!("'{tc}' is not 'table.column'")))?;
            (q, t.to_owned(), c.to_owned(), k, rest)
        }
        _ => return Err(usage("the arguments do not match")),
    };
    let model = match model {
        [] => None,
        [Arg::Text(m)] => Some(m),
        _ => return Err(usage("only a model may follow k")),
    };
    let k: u64 = k
        .parse()
        .ok()
        .filter(|k| (1..=MAX_K).contains(k))
        .ok_or_else(|| usage(&format!("k must be a whole number from 1 to {MAX_K}, not {k}")))?;
    let table = quoted_name(&table)?;
    let column = quoted_name(&column)?;
    let model = model.map_or(String::new(), |m| format!(", {}", literal(m)));
    Ok(format!(
        "(SELECT *, semantic_similarity({column}, {}{model}) AS score FROM {table} \
         ORDER BY score DESC NULLS LAST LIMIT {k})",
        literal(query)
    ))
}

/// `name` (`a` or `schema.a`) with each part double-quoted; anything but letters, digits and `_` is
/// refused.
fn quoted_name(name: &str) -> Result<String> {
    let parts: Vec<&str> = name.split('.').collect();
    let ok = |p: &str| !p.is_empty() && p.chars().all(|c| c.is_alphanumeric() || c == '_');
    if parts.len() > 2 || !parts.iter().all(|p| ok(p)) {
        return Err(usage(&format!(
            "'{name}' is not a table or column name (letters, digits and _, with one optional schema)"
        )));
    }
    Ok(parts
        .iter()
        .map(|p| format!("\"{p}\""))
        .collect::<Vec<_>>()
        .join("."))
}

/// A SQL string literal of `text`.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_become_a_ranked_subquery() {
        let four = rewrite("SELECT name, score FROM VECTOR_SEARCH('red fruit', 'products', 'name', 3) v")
            .unwrap()
            .unwrap();
        assert_eq!(
            four,
            "SELECT name, score FROM (SELECT *, semantic_similarity(\"name\", 'red fruit') AS score FROM \
             \"products\" ORDER BY score DESC NULLS LAST LIMIT 3) v"
        );
        let three = rewrite("select * from vector_search('it''s', 's.t.c', 2, 'm/e')")
            .unwrap()
            .unwrap();
        assert!(
            three.contains("semantic_similarity(\"c\", 'it''s', 'm/e')"),
            "{three}"
        );
        assert!(three.contains("FROM \"s\".\"t\""), "{three}");
        assert_eq!(rewrite("SELECT 'VECTOR_SEARCH(1)'").unwrap(), None);
        assert_eq!(rewrite("SELECT 1").unwrap(), None);
    }

    #[test]
    fn bad_calls_say_how_to_write_them() {
        for (sql, why) in [
            ("SELECT * FROM VECTOR_SEARCH('q', 't', 'c', 0)", "k must be"),
            ("SELECT * FROM VECTOR_SEARCH('q', 't', 'c', 10001)", "k must be"),
            ("SELECT * FROM VECTOR_SEARCH('q', 't', 'c', 2.5)", "k must be"),
            (
                "SELECT * FROM VECTOR_SEARCH('q', 't; DROP', 'c', 2)",
                "not a table or column",
            ),
            ("SELECT * FROM VECTOR_SEARCH('q', 'tc', 2)", "not 'table.column'"),
            (
                "SELECT * FROM VECTOR_SEARCH(name, 't', 'c', 2)",
                "not a string or number",
            ),
            (
                "SELECT * FROM VECTOR_SEARCH('q', 't', 'c', 2, 'm', 'x')",
                "only a model",
            ),
            ("SELECT * FROM VECTOR_SEARCH('q', 't', 'c', 2", "not closed"),
            ("SELECT * FROM VECTOR_SEARCH()", "do not match"),
        ] {
            let err = rewrite(sql).unwrap_err().to_string();
            assert!(err.contains(why), "{sql}: {err}");
            assert!(err.contains("VECTOR_SEARCH('query'"), "{err}");
        }
    }
}
