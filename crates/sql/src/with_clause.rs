//! A statement's own options: a `WITH (key = value, …)` clause at the very end of a query (SQL interface
//! spec §12, issue 24), after its `THEN` stages if any:
//!
//! ```sql
//! SELECT id FROM tickets WHERE body MEANS 'refund request' WITH (cascade = 'provider/small-model')
//! ```
//!
//! - Found on the statement's tokens ([`split`]): only a `WITH (` at the top level whose `)` ends the
//!   statement (a `;` may follow) is one, so a `WITH` inside a string, a comment, parentheses or a
//!   leading CTE is never touched, and only after a query (`SELECT`, `WITH`, `VALUES`, `(`, an `EXPLAIN`
//!   of one, `CREATE … AS` and `INSERT … SELECT`); other statements keep their own `WITH (…)`.
//! - The options ([`KEYS`]) override the session's `rvbbit.*` settings for the statement; a call's
//!   `-- @` annotations override them in turn. An unknown key, a key given twice, a malformed clause or a
//!   value out of range or longer than [`MAX_VALUE_BYTES`] fails the statement before anything is
//!   planned or asked (RVB-Q008, naming the option and the choices).

use std::borrow::Cow;

use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer};
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::options::{MAX_BATCH_SIZE, RvbbitOptions};

/// The options of a statement's `WITH (…)`.
pub(crate) const KEYS: &[&str] = &["cascade", "cheap_threshold", "batch_size", "cache"];

/// The most bytes of one option's value (a model id, a lifetime).
pub(crate) const MAX_VALUE_BYTES: usize = 256;

/// The longest cache lifetime, in seconds (a year, as `RVBBIT MAP`'s).
const MAX_TTL_SECONDS: u64 = 366 * 86_400;

/// What a statement's `WITH (…)` sets.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct WithOptions {
    /// `cascade = 'provider/model'`: a cheap model first for BOOLEAN and label functions
    /// (`Some(None)`: `'off'`), as `rvbbit.semantic_cheap_model`.
    pub(crate) cheap_model: Option<Option<String>>,
    /// `cheap_threshold = 0.9`: as `rvbbit.semantic_confidence`.
    pub(crate) cheap_threshold: Option<f64>,
    /// `batch_size = 4`: as `rvbbit.semantic_batch_size`.
    pub(crate) batch_size: Option<usize>,
    /// `cache = true | false | '1h'`: as `rvbbit.cache`.
    pub(crate) cache: Option<bool>,
    /// `cache = '1h'`: the statement's new cache entries are served that many seconds.
    pub(crate) cache_ttl: Option<u64>,
}

/// `options` with the semantic settings a statement's `WITH (…)` or a call's `-- @` annotations set on
/// top (`None`: the session's value stays).
pub(crate) fn overlay(
    mut options: RvbbitOptions,
    cheap_model: Option<&Option<String>>,
    cheap_threshold: Option<f64>,
    batch_size: Option<usize>,
    cache: Option<bool>,
) -> RvbbitOptions {
    if let Some(cheap) = cheap_model {
        options.semantic_cheap_model = cheap.clone();
    }
    if let Some(c) = cheap_threshold {
        options.semantic_confidence = c;
    }
    if let Some(k) = batch_size {
        options.semantic_batch_size = Some(k);
    }
    if let Some(cache) = cache {
        options.cache = cache;
    }
    options
}

impl WithOptions {
    /// The session's settings with these on top.
    pub(crate) fn apply(&self, options: RvbbitOptions) -> RvbbitOptions {
        overlay(
            options,
            self.cheap_model.as_ref(),
            self.cheap_threshold,
            self.batch_size,
            self.cache,
        )
    }

    /// The options as a JSON object (`sql_query_log`'s event metadata).
    pub(crate) fn describe(&self) -> Value {
        let mut out = json!({});
        if let Some(c) = &self.cheap_model {
            out["cascade"] = json!(c.as_deref().unwrap_or("off"));
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
        if let Some(t) = self.cache_ttl {
            out["cache_ttl_seconds"] = json!(t);
        }
        out
    }
}

/// `sql` without its trailing `WITH (…)` and the options it sets; `sql` itself and `None` when it has
/// none. Errors (RVB-Q008): an unknown or repeated key, a malformed clause, a bad or oversized value.
pub(crate) fn split(sql: &str) -> Result<(Cow<'_, str>, Option<WithOptions>)> {
    if !sql.to_ascii_uppercase().contains("WITH") {
        return Ok((Cow::Borrowed(sql), None));
    }
    let Ok(tokens) = Tokenizer::new(&GenericDialect {}, sql).tokenize_with_location() else {
        // Not ours if it does not even tokenize: the planner reports the error.
        return Ok((Cow::Borrowed(sql), None));
    };
    let Some((with_at, open, close)) = trailing_clause(&tokens) else {
        return Ok((Cow::Borrowed(sql), None));
    };
    let options = parse_options(&tokens[open + 1..close], &tokens[with_at])?;
    let cut = offset(sql, tokens[with_at].span.start);
    Ok((Cow::Owned(sql[..cut].trim_end().to_owned()), Some(options)))
}

/// The positions of the `WITH`, its `(` and its `)` when the statement ends with a top-level
/// `WITH ( … )` after a query.
fn trailing_clause(tokens: &[TokenWithSpan]) -> Option<(usize, usize, usize)> {
    let significant: Vec<usize> = (0..tokens.len())
        .filter(|&i| !matches!(tokens[i].token, Token::Whitespace(_) | Token::EOF))
        .collect();
    let mut end = significant.len();
    while end > 0 && tokens[significant[end - 1]].token == Token::SemiColon {
        end -= 1;
    }
    let significant = &significant[..end];
    let (&close, _) = significant.split_last()?;
    if tokens[close].token != Token::RParen {
        return None;
    }
    // Depths from the start: the `WITH` must be at depth 0 and its `(` must match the last `)`.
    let mut depth = 0usize;
    let mut open_at_zero = None;
    for (n, &i) in significant.iter().enumerate() {
        match tokens[i].token {
            Token::LParen => {
                if depth == 0 {
                    open_at_zero = Some(n);
                }
                depth += 1;
            }
            Token::RParen => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    let open_n = open_at_zero?;
    if depth != 0 || open_n == 0 {
        return None;
    }
    let with_n = open_n - 1;
    let is_with = matches!(&tokens[significant[with_n]].token,
        Token::Word(w) if w.quote_style.is_none() && w.keyword == Keyword::WITH);
    if !is_with || with_n == 0 {
        return None;
    }
    query_head(tokens, &significant[..with_n]).then_some((significant[with_n], significant[open_n], close))
}

/// Whether the tokens before the clause are a query (or a statement writing one's rows).
fn query_head(tokens: &[TokenWithSpan], before: &[usize]) -> bool {
    let word = |i: usize| match &tokens[i].token {
        Token::Word(w) if w.quote_style.is_none() => Some(w.keyword),
        _ => None,
    };
    let mut words = before.iter().copied();
    let Some(mut first) = words.next() else {
        return false;
    };
    while matches!(
        word(first),
        Some(Keyword::EXPLAIN | Keyword::ANALYZE | Keyword::VERBOSE)
    ) {
        let Some(next) = words.next() else { return false };
        first = next;
    }
    if tokens[first].token == Token::LParen {
        return true;
    }
    match word(first) {
        Some(Keyword::SELECT | Keyword::WITH | Keyword::VALUES | Keyword::INSERT) => true,
        // `CREATE [TEMP] TABLE|VIEW name AS <query>`: a top-level AS (not `CREATE TABLE t (a INT)`).
        Some(Keyword::CREATE) => {
            let mut depth = 0usize;
            before.iter().any(|&i| match &tokens[i].token {
                Token::LParen => {
                    depth += 1;
                    false
                }
                Token::RParen => {
                    depth = depth.saturating_sub(1);
                    false
                }
                _ => depth == 0 && word(i) == Some(Keyword::AS),
            })
        }
        _ => false,
    }
}

/// RVB-Q008 for the clause at `at`.
fn refused(at: &TokenWithSpan, message: &str) -> Error {
    let l = at.span.start;
    Error::StatementOption {
        message: format!(
            "{message} (in the statement's WITH (…) at Line: {}, Column: {})",
            l.line, l.column
        ),
    }
}

/// The options between the clause's parentheses.
fn parse_options(inside: &[TokenWithSpan], with: &TokenWithSpan) -> Result<WithOptions> {
    let items: Vec<&TokenWithSpan> = inside
        .iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_)))
        .collect();
    let known = || KEYS.join(", ");
    let mut options = WithOptions::default();
    let mut seen: Vec<String> = Vec::new();
    if items.is_empty() {
        return Err(refused(
            with,
            &format!("WITH () sets no option; the statement options are: {}", known()),
        ));
    }
    for entry in items.split(|t| t.token == Token::Comma) {
        let [key, eq, value] = entry else {
            let shown: String = entry
                .iter()
                .map(|t| t.token.to_string())
                .collect::<Vec<_>>()
                .join(" ");
            let shown: String = shown.chars().take(60).collect();
            return Err(refused(
                entry.first().copied().unwrap_or(with),
                &format!(
                    "expected `key = value`, got `{shown}`; the statement options are: {}",
                    known()
                ),
            ));
        };
        let name = match &key.token {
            Token::Word(w) => w.value.to_ascii_lowercase(),
            other => {
                return Err(refused(
                    key,
                    &format!(
                        "expected an option name, got `{other}`; the statement options are: {}",
                        known()
                    ),
                ));
            }
        };
        if !KEYS.contains(&name.as_str()) {
            let shown: String = name.chars().take(60).collect();
            return Err(refused(
                key,
                &format!(
                    "unknown statement option `{shown}`; the statement options are: {}",
                    known()
                ),
            ));
        }
        if seen.contains(&name) {
            return Err(refused(key, &format!("the option `{name}` is given twice")));
        }
        seen.push(name.clone());
        if eq.token != Token::Eq {
            return Err(refused(eq, &format!("expected `=` after `{name}`")));
        }
        set(&mut options, &name, value)?;
    }
    Ok(options)
}

/// A value's text: a string, a number or a word.
fn value_text(value: &TokenWithSpan, name: &str) -> Result<String> {
    let text = match &value.token {
        Token::SingleQuotedString(s) | Token::DoubleQuotedString(s) => s.clone(),
        Token::Number(n, _) => n.clone(),
        Token::Word(w) => w.value.clone(),
        other => {
            return Err(refused(
                value,
                &format!("`{name}` needs a value ('text', a number or a word), got `{other}`"),
            ));
        }
    };
    if text.len() > MAX_VALUE_BYTES {
        return Err(refused(
            value,
            &format!(
                "the value of `{name}` is {} bytes; an option value is at most {MAX_VALUE_BYTES} bytes",
                text.len()
            ),
        ));
    }
    if text.trim().is_empty() || text.chars().any(char::is_control) {
        return Err(refused(
            value,
            &format!("the value of `{name}` is blank or holds control characters"),
        ));
    }
    Ok(text)
}

/// Set option `name` from `value`.
fn set(options: &mut WithOptions, name: &str, value: &TokenWithSpan) -> Result<()> {
    let text = value_text(value, name)?;
    let bad = |want: &str| {
        let shown: String = text.chars().take(60).collect();
        refused(value, &format!("`{name}` cannot be '{shown}'; use {want}"))
    };
    match name {
        "cascade" => {
            options.cheap_model = Some(match text.trim().to_ascii_lowercase().as_str() {
                "off" | "none" => None,
                _ => Some(text.trim().to_owned()),
            });
        }
        "cheap_threshold" => match text.parse::<f64>() {
            Ok(c) if (0.0..=1.0).contains(&c) => options.cheap_threshold = Some(c),
            _ => return Err(bad("a confidence from 0 to 1")),
        },
        "batch_size" => match text.parse::<usize>() {
            Ok(k) if (1..=MAX_BATCH_SIZE).contains(&k) => options.batch_size = Some(k),
            _ => return Err(bad(&format!("a whole number of rows from 1 to {MAX_BATCH_SIZE}"))),
        },
        _ => match text.to_ascii_lowercase().as_str() {
            "true" | "on" => options.cache = Some(true),
            "false" | "off" => options.cache = Some(false),
            lifetime => {
                let secs = rvbbit_core::event::parse_duration_micros(lifetime)
                    .and_then(|us| u64::try_from(us / 1_000_000).ok())
                    .filter(|s| (1..=MAX_TTL_SECONDS).contains(s))
                    .ok_or_else(|| {
                        bad("true, false or a lifetime such as '30m', '1h' or '7d' (at most a year)")
                    })?;
                options.cache = Some(true);
                options.cache_ttl = Some(secs);
            }
        },
    }
    Ok(())
}

/// The byte offset of `at` (1-based line and character column) in `sql`.
pub(crate) fn offset(sql: &str, at: Location) -> usize {
    let mut line = 1u64;
    let mut column = 1u64;
    for (i, c) in sql.char_indices() {
        if line == at.line && column == at.column {
            return i;
        }
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    sql.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(sql: &str) -> (String, Option<WithOptions>) {
        let (rest, options) = split(sql).unwrap();
        (rest.into_owned(), options)
    }

    #[test]
    fn a_trailing_clause_after_a_query_is_the_statement_s() {
        let (rest, o) = options(
            "SELECT 'it''s', x MEANS 'WITH (cascade = 1)' -- WITH (cache = false)\nFROM t\n  WITH (cascade = 'cheap/m', \
             cache = '1h', batch_size = 4, cheap_threshold = 0.9);",
        );
        assert_eq!(
            rest,
            "SELECT 'it''s', x MEANS 'WITH (cascade = 1)' -- WITH (cache = false)\nFROM t"
        );
        let o = o.unwrap();
        assert_eq!(o.cheap_model, Some(Some("cheap/m".to_owned())));
        assert_eq!(o.cache, Some(true));
        assert_eq!(o.cache_ttl, Some(3600));
        assert_eq!(o.batch_size, Some(4));
        assert_eq!(o.cheap_threshold, Some(0.9));
        let (rest, o) = options("EXPLAIN SELECT é FROM t THEN FILTER 'x' with (cascade = off)");
        assert_eq!(rest, "EXPLAIN SELECT é FROM t THEN FILTER 'x'");
        assert_eq!(o.unwrap().cheap_model, Some(None));
        let (rest, o) = options("CREATE TABLE s AS SELECT 1 WITH (cache = false)");
        assert_eq!(rest, "CREATE TABLE s AS SELECT 1");
        assert_eq!(o.unwrap().cache, Some(false));
    }

    #[test]
    fn other_withs_are_left_alone() {
        for sql in [
            "WITH t AS (SELECT 1) SELECT * FROM t",
            "SELECT * FROM (SELECT 1 WITH (cache = false)) s",
            "SELECT 'x WITH (cascade = 1)'",
            "SELECT 1 -- WITH (cascade = 'x')",
            "CREATE TABLE t (a INT) WITH (fillfactor = 70)",
            "COPY t TO 'f.csv' WITH (format = csv)",
            "SELECT f(1) WITH (cache = false) + 1",
            "WITH (cache = false)",
        ] {
            let (rest, o) = options(sql);
            assert_eq!((rest.as_str(), o), (sql, None), "{sql}");
        }
    }

    #[test]
    fn bad_clauses_are_refused_naming_the_options() {
        let error = |sql: &str| split(sql).unwrap_err().to_string();
        let e = error("SELECT 1 WITH (casacde = 'm')");
        assert!(e.contains("unknown statement option `casacde`"), "{e}");
        assert!(e.contains("cascade, cheap_threshold, batch_size, cache"), "{e}");
        assert!(e.contains("Line: 1, Column: 16"), "{e}");
        assert!(error("SELECT 1 WITH ()").contains("sets no option"));
        assert!(error("SELECT 1 WITH (cascade)").contains("expected `key = value`"));
        assert!(error("SELECT 1 WITH (cascade = 'a', cascade = 'b')").contains("given twice"));
        assert!(error("SELECT 1 WITH (cheap_threshold = 2)").contains("from 0 to 1"));
        assert!(error("SELECT 1 WITH (batch_size = 0)").contains("from 1 to 1000"));
        assert!(error("SELECT 1 WITH (cache = '2y')").contains("lifetime"));
        assert!(error("SELECT 1 WITH (cascade = '')").contains("blank"));
        let long = format!("SELECT 1 WITH (cascade = '{}')", "m".repeat(300));
        assert!(error(&long).contains("at most 256 bytes"));
        let e = split("SELECT 1 WITH (x = 1)").unwrap_err();
        assert_eq!(e.code().code, "RVB-Q008");
    }
}
