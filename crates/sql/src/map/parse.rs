//! The `RVBBIT MAP` / `RVBBIT RUN` statements (and `LARS` spellings), parsed with sqlparser's tokenizer
//! so string literals, comments and nested parentheses are handled like SQL, with errors at line/column.
//!
//! ```text
//! [EXPLAIN] [CREATE [TEMP] TABLE name AS]
//! RVBBIT MAP [PARALLEL n] [DISTINCT] 'cascade' [AS alias | AS (col type, ...)] USING (query) [WITH (k = v, ...)]
//! RVBBIT RUN 'cascade' USING (query) [WITH (k = v, ...)]
//! ```

use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

use crate::error::Error;

/// MAP or RUN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verb {
    /// One cascade run per row.
    Map,
    /// One cascade run over the whole result set.
    Run,
}

/// A parsed MAP/RUN statement.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct MapStatement {
    pub(crate) verb: Verb,
    pub(crate) explain: bool,
    /// `CREATE [TEMP] TABLE name AS`.
    pub(crate) create_table: Option<String>,
    pub(crate) parallel: Option<usize>,
    pub(crate) distinct: bool,
    pub(crate) cascade: String,
    /// `AS alias`.
    pub(crate) alias: Option<String>,
    /// `AS (col type, ...)`.
    pub(crate) typed: Vec<(String, String)>,
    /// The USING query, as written.
    pub(crate) using: String,
    pub(crate) options: Vec<(String, OptionValue)>,
}

/// A `WITH` option value.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum OptionValue {
    /// `'text'`, `"text"` or a bare word.
    Text(String),
    /// A number.
    Number(f64),
    /// `true` / `false`.
    Bool(bool),
}

impl MapStatement {
    /// The value of `WITH (name = …)`, if given.
    fn option(&self, name: &str) -> Option<&OptionValue> {
        self.options.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// "MAP option `name` must be …" (RVB-Q004).
    pub(crate) fn bad_option(&self, name: &str, want: &str) -> Error {
        let verb = match self.verb {
            Verb::Map => "MAP",
            Verb::Run => "RUN",
        };
        Error::Argument {
            message: format!("{verb} option `{name}` must be {want}"),
        }
    }

    /// A whole-number option of at least 1 (`limit`, `parallel`).
    pub(crate) fn whole_option(&self, name: &str) -> Result<Option<u64>, Error> {
        match self.option(name) {
            None => Ok(None),
            Some(OptionValue::Number(n)) if *n >= 1.0 && n.fract() == 0.0 => Ok(Some(*n as u64)),
            Some(_) => Err(self.bad_option(name, "a whole number of at least 1")),
        }
    }

    /// A `true`/`false` option.
    pub(crate) fn flag_option(&self, name: &str) -> Result<Option<bool>, Error> {
        match self.option(name) {
            None => Ok(None),
            Some(OptionValue::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(self.bad_option(name, "true or false")),
        }
    }

    /// `cache`: `true`/`false`, or a lifetime such as `'1h'` (cached, the new entries served for that
    /// long: `s`, `m`, `h`, `d` or `w`, at most a year). Returns (use the cache, the entries' lifetime in
    /// seconds).
    pub(crate) fn cache_option(&self) -> Result<(bool, Option<u64>), Error> {
        const YEAR: u64 = 366 * 86_400;
        let want = "true, false or a lifetime such as '30m', '1h' or '7d' (at most a year)";
        match self.option("cache") {
            None => Ok((true, None)),
            Some(OptionValue::Bool(b)) => Ok((*b, None)),
            Some(OptionValue::Text(t)) => {
                let secs = rvbbit_core::event::parse_duration_micros(t)
                    .and_then(|us| u64::try_from(us / 1_000_000).ok())
                    .filter(|s| (1..=YEAR).contains(s))
                    .ok_or_else(|| self.bad_option("cache", want))?;
                Ok((true, Some(secs)))
            }
            Some(_) => Err(self.bad_option("cache", want)),
        }
    }

    /// A text option that may not be blank; `want` describes it in the error.
    pub(crate) fn text_option(&self, name: &str, want: &str) -> Result<Option<String>, Error> {
        match self.option(name) {
            None => Ok(None),
            Some(OptionValue::Text(t)) if !t.trim().is_empty() => Ok(Some(t.clone())),
            Some(_) => Err(self.bad_option(name, want)),
        }
    }

    /// A dollar amount option (`budget_dollars`).
    pub(crate) fn dollars_option(&self, name: &str) -> Result<Option<f64>, Error> {
        match self.option(name) {
            None => Ok(None),
            Some(OptionValue::Number(d)) if *d >= 0.0 => Ok(Some(*d)),
            Some(_) => Err(self.bad_option(name, "a dollar amount such as 0.50")),
        }
    }
}

/// The options `WITH (...)` accepts.
pub(crate) const MAP_OPTIONS: &[&str] = &[
    "cache",
    "budget_dollars",
    "model",
    "parallel",
    "key",
    "result_column",
    "limit",
    "as_table",
    "errors",
    "dedupe_by",
    "infer_schema",
    "distributed",
];

/// The options `RVBBIT RUN … WITH (...)` accepts.
pub(crate) const RUN_OPTIONS: &[&str] = &["as_table", "limit", "model"];

struct Cursor {
    tokens: Vec<TokenWithSpan>,
    pos: usize,
}

fn syntax(at: &TokenWithSpan, message: &str) -> Error {
    let l = at.span.start;
    Error::Invalid {
        message: format!("{message} at Line: {}, Column: {}", l.line, l.column),
    }
}

impl Cursor {
    /// The next token that is not whitespace or a comment (EOF at the end).
    fn peek(&self) -> &TokenWithSpan {
        let mut i = self.pos;
        while let Some(t) = self.tokens.get(i) {
            if !matches!(t.token, Token::Whitespace(_)) {
                return t;
            }
            i += 1;
        }
        &EOF
    }

    fn next(&mut self) -> TokenWithSpan {
        while let Some(t) = self.tokens.get(self.pos) {
            self.pos += 1;
            if !matches!(t.token, Token::Whitespace(_)) {
                return t.clone();
            }
        }
        EOF.clone()
    }

    fn keyword(&self, word: &str) -> bool {
        matches!(&self.peek().token, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(word))
    }

    fn eat(&mut self, word: &str) -> bool {
        if self.keyword(word) {
            self.next();
            true
        } else {
            false
        }
    }

    fn expect_lparen(&mut self, what: &str) -> Result<(), Error> {
        let t = self.next();
        if t.token == Token::LParen {
            Ok(())
        } else {
            Err(syntax(
                &t,
                &format!("Expected `(` after {what}, found: {}", shown(&t.token)),
            ))
        }
    }

    /// The tokens up to the `)` matching an already consumed `(`, as text.
    fn balanced(&mut self, what: &str, open: &TokenWithSpan) -> Result<String, Error> {
        let mut depth = 1usize;
        let mut text = String::new();
        while let Some(t) = self.tokens.get(self.pos).cloned() {
            self.pos += 1;
            match t.token {
                Token::LParen => depth += 1,
                Token::RParen => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(text.trim().to_owned());
                    }
                }
                Token::EOF => break,
                _ => {}
            }
            text.push_str(&t.token.to_string());
        }
        Err(syntax(
            open,
            &format!("Unbalanced parentheses: the `(` of {what} is never closed"),
        ))
    }
}

static EOF: TokenWithSpan = TokenWithSpan {
    token: Token::EOF,
    span: datafusion::sql::sqlparser::tokenizer::Span::empty(),
};

fn shown(token: &Token) -> String {
    match token {
        Token::EOF => "end of statement".into(),
        other => format!("`{other}`"),
    }
}

/// Parse `sql` as a MAP/RUN statement; `Ok(None)` when it is ordinary SQL.
pub(crate) fn parse(sql: &str) -> Result<Option<MapStatement>, Error> {
    let Ok(tokens) = Tokenizer::new(&GenericDialect {}, sql).tokenize_with_location() else {
        // Not our statement if it does not even tokenize: DataFusion reports the error.
        return Ok(None);
    };
    let mut c = Cursor { tokens, pos: 0 };
    let explain = c.eat("EXPLAIN");
    let Some(create_table) = create_table_prefix(&mut c) else {
        return Ok(None);
    };
    if !(c.eat("RVBBIT") || c.eat("LARS")) {
        return Ok(None);
    }
    let verb = verb(&mut c)?;
    let (parallel, distinct) = match verb {
        Verb::Map => map_modifiers(&mut c)?,
        Verb::Run => (None, false),
    };
    let cascade = cascade_path(&mut c)?;
    let (alias, typed) = if verb == Verb::Map && c.eat("AS") {
        alias_or_columns(&mut c)?
    } else {
        (None, Vec::new())
    };
    let using = using_query(&mut c)?;
    let options = if c.eat("WITH") {
        with_options(&mut c, verb)?
    } else {
        Vec::new()
    };
    statement_end(&mut c)?;
    Ok(Some(MapStatement {
        verb,
        explain,
        create_table,
        parallel,
        distinct,
        cascade,
        alias,
        typed,
        using,
        options,
    }))
}

/// `CREATE [TEMP] TABLE name AS` before `RVBBIT …`: `Some(Some(name))`; `Some(None)` without a CREATE;
/// `None` when the statement is another CREATE (not ours).
fn create_table_prefix(c: &mut Cursor) -> Option<Option<String>> {
    if !c.keyword("CREATE") {
        return Some(None);
    }
    // Only `CREATE [TEMP] TABLE x AS RVBBIT ...` is ours; look ahead without consuming.
    let save = c.pos;
    c.next();
    // TEMP is optional: whether it was there changes nothing (session tables are temporary anyway).
    let _ = c.eat("TEMP") || c.eat("TEMPORARY");
    if !c.eat("TABLE") {
        c.pos = save;
        return None;
    }
    let name = c.next();
    let Token::Word(w) = &name.token else {
        c.pos = save;
        return None;
    };
    let name = w.value.clone();
    if !c.eat("AS") || !(c.keyword("RVBBIT") || c.keyword("LARS")) {
        return None;
    }
    Some(Some(name))
}

/// MAP or RUN after RVBBIT.
fn verb(c: &mut Cursor) -> Result<Verb, Error> {
    if c.eat("MAP") {
        Ok(Verb::Map)
    } else if c.eat("RUN") {
        Ok(Verb::Run)
    } else {
        let t = c.next();
        Err(syntax(
            &t,
            &format!("Expected MAP or RUN after RVBBIT, found: {}", shown(&t.token)),
        ))
    }
}

/// `PARALLEL n` and `DISTINCT` of a MAP, in either order.
fn map_modifiers(c: &mut Cursor) -> Result<(Option<usize>, bool), Error> {
    let mut parallel = None;
    let mut distinct = false;
    for _ in 0..2 {
        if c.eat("PARALLEL") {
            let t = c.next();
            match &t.token {
                Token::Number(n, _) => match n.parse::<usize>() {
                    Ok(n) if n > 0 => parallel = Some(n),
                    _ => return Err(syntax(&t, "PARALLEL needs a whole number of at least 1")),
                },
                other => {
                    return Err(syntax(
                        &t,
                        &format!("Expected a number after PARALLEL, found: {}", shown(other)),
                    ));
                }
            }
        } else if c.eat("DISTINCT") {
            distinct = true;
        }
    }
    Ok((parallel, distinct))
}

/// The cascade path, a string literal.
fn cascade_path(c: &mut Cursor) -> Result<String, Error> {
    let t = c.next();
    let Token::SingleQuotedString(cascade) = t.token.clone() else {
        return Err(syntax(
            &t,
            &format!(
                "Expected cascade path as string literal ('path/to/cascade.yaml'), found: {}",
                shown(&t.token)
            ),
        ));
    };
    Ok(cascade)
}

/// A column of `AS (col type, ...)`: its name and its upper-case type name.
type TypedColumn = (String, String);

/// What follows a MAP's `AS`: an alias, or `(col type, ...)`.
fn alias_or_columns(c: &mut Cursor) -> Result<(Option<String>, Vec<TypedColumn>), Error> {
    let t = c.next();
    match &t.token {
        Token::Word(w) => Ok((Some(w.value.clone()), Vec::new())),
        Token::LParen => Ok((None, typed_columns(c)?)),
        other => Err(syntax(
            &t,
            &format!(
                "Expected an alias or `(col type, ...)` after AS, found: {}",
                shown(other)
            ),
        )),
    }
}

/// `col type, ...)` after the `(` of a MAP's `AS`: names and upper-case type names.
fn typed_columns(c: &mut Cursor) -> Result<Vec<TypedColumn>, Error> {
    let mut typed = Vec::new();
    loop {
        let name = c.next();
        let Token::Word(n) = &name.token else {
            return Err(syntax(
                &name,
                &format!("Expected a column name, found: {}", shown(&name.token)),
            ));
        };
        let ty = c.next();
        let Token::Word(ty_word) = &ty.token else {
            return Err(syntax(
                &ty,
                &format!("Expected a type after `{}`, found: {}", n.value, shown(&ty.token)),
            ));
        };
        typed.push((n.value.clone(), ty_word.value.to_ascii_uppercase()));
        let sep = c.next();
        match &sep.token {
            Token::Comma => {}
            Token::RParen => return Ok(typed),
            other => {
                return Err(syntax(
                    &sep,
                    &format!("Expected `,` or `)` in the column list, found: {}", shown(other)),
                ));
            }
        }
    }
}

/// `USING (query)`: the query's text.
fn using_query(c: &mut Cursor) -> Result<String, Error> {
    if !c.eat("USING") {
        let t = c.next();
        return Err(syntax(
            &t,
            &format!("Expected USING (SELECT ...), found: {}", shown(&t.token)),
        ));
    }
    let open = c.peek().clone();
    c.expect_lparen("USING")?;
    let using = c.balanced("USING", &open)?;
    if using.is_empty() {
        return Err(syntax(&open, "Expected USING (SELECT ...), found an empty query"));
    }
    Ok(using)
}

/// `(key = value, ...)` after WITH: the options, each checked against the verb's valid names.
fn with_options(c: &mut Cursor, verb: Verb) -> Result<Vec<(String, OptionValue)>, Error> {
    let mut options = Vec::new();
    let open = c.peek().clone();
    c.expect_lparen("WITH")?;
    let unclosed = || syntax(&open, "Unbalanced parentheses: the `(` of WITH is never closed");
    loop {
        let key = c.next();
        let key_name = match &key.token {
            Token::Word(w) => w.value.to_ascii_lowercase(),
            Token::RParen if options.is_empty() => break,
            Token::EOF => return Err(unclosed()),
            other => {
                return Err(syntax(
                    &key,
                    &format!("Expected 'key = value', got: {}", shown(other)),
                ));
            }
        };
        let (valid, verb_name) = match verb {
            Verb::Map => (MAP_OPTIONS, "MAP"),
            Verb::Run => (RUN_OPTIONS, "RUN"),
        };
        if !valid.contains(&key_name.as_str()) {
            return Err(syntax(
                &key,
                &format!(
                    "unknown {verb_name} option '{key_name}'; valid options: {}",
                    valid.join(", ")
                ),
            ));
        }
        let eq = c.next();
        if eq.token != Token::Eq {
            return Err(syntax(
                &eq,
                &format!("Expected 'key = value', got: `{key_name}` {}", shown(&eq.token)),
            ));
        }
        let value = option_value(c, &key_name)?;
        options.push((key_name, value));
        let sep = c.next();
        match &sep.token {
            Token::Comma => {}
            Token::RParen => break,
            Token::EOF => return Err(unclosed()),
            other => {
                return Err(syntax(
                    &sep,
                    &format!("Expected `,` or `)` between options, got: {}", shown(other)),
                ));
            }
        }
    }
    Ok(options)
}

/// The value of option `key_name`: text, a number or a boolean.
fn option_value(c: &mut Cursor, key_name: &str) -> Result<OptionValue, Error> {
    let v = c.next();
    match &v.token {
        Token::SingleQuotedString(s) | Token::DoubleQuotedString(s) => Ok(OptionValue::Text(s.clone())),
        Token::Number(n, _) => match n.parse::<f64>() {
            Ok(f) => Ok(OptionValue::Number(f)),
            Err(_) => Err(syntax(&v, &format!("`{n}` is not a number"))),
        },
        Token::Word(w) if w.value.eq_ignore_ascii_case("true") => Ok(OptionValue::Bool(true)),
        Token::Word(w) if w.value.eq_ignore_ascii_case("false") => Ok(OptionValue::Bool(false)),
        Token::Word(w) => Ok(OptionValue::Text(w.value.clone())),
        other => Err(syntax(
            &v,
            &format!("Expected a value for `{key_name}`, got: {}", shown(other)),
        )),
    }
}

/// Only whitespace and `;` may follow the statement.
fn statement_end(c: &mut Cursor) -> Result<(), Error> {
    loop {
        let t = c.next();
        match &t.token {
            Token::EOF => return Ok(()),
            Token::SemiColon => {}
            other => {
                return Err(syntax(
                    &t,
                    &format!(
                        "Unexpected {} after the statement; only `;` may follow",
                        shown(other)
                    ),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every grammar form of the spec (§4/§5), parsed: one snapshot line per form.
    #[test]
    fn every_grammar_form_parses() {
        let forms = [
            "RVBBIT MAP 'tag.yaml' USING (SELECT name FROM products)",
            "rvbbit map 'tag.yaml' using (select 1 as x);",
            "LARS MAP 'tag.yaml' USING (SELECT 1)",
            "RVBBIT MAP PARALLEL 8 'tag.yaml' USING (SELECT 1)",
            "RVBBIT MAP DISTINCT 'tag.yaml' USING (SELECT 1)",
            "RVBBIT MAP PARALLEL 4 DISTINCT 'tag.yaml' AS brand USING (SELECT 1)",
            "RVBBIT MAP 'tag.yaml' AS (brand VARCHAR, score DOUBLE, n BIGINT) USING (SELECT 1)",
            "RVBBIT MAP 'tag.yaml' USING (SELECT 1) WITH (cache = false, budget_dollars = 2.5, model = 'a/b')",
            "RVBBIT MAP 'tag.yaml' USING (SELECT 1) WITH (parallel = 3, key = 'id', result_column = 'out', limit = 50, as_table = 't')",
            "RVBBIT MAP 'tag.yaml' USING (SELECT 1) WITH (errors = 'column', dedupe_by = 'id', infer_schema = true)",
            "RVBBIT MAP 'tag.yaml' USING (\n  SELECT ')' AS p, (1 + (2)) AS q -- a ) in a comment\n  FROM t\n)",
            "EXPLAIN RVBBIT MAP 'tag.yaml' USING (SELECT 1)",
            "CREATE TABLE tagged AS RVBBIT MAP 'tag.yaml' USING (SELECT 1)",
            "CREATE TEMP TABLE tagged AS RVBBIT MAP 'tag.yaml' USING (SELECT 1)",
            "CREATE TEMPORARY TABLE tagged AS LARS MAP 'tag.yaml' USING (SELECT 1)",
            "RVBBIT RUN 'batch.yaml' USING (SELECT * FROM orders)",
            "LARS RUN 'batch.yaml' USING (SELECT 1) WITH (as_table = 'orders_batch', limit = 10, model = 'x/y')",
            "EXPLAIN RVBBIT RUN 'batch.yaml' USING (SELECT 1)",
            "CREATE TABLE out AS RVBBIT RUN 'batch.yaml' USING (SELECT 1)",
            // Not ours: ordinary SQL goes to DataFusion.
            "SELECT 'RVBBIT MAP' AS s",
            "CREATE TABLE t AS SELECT 1",
            "EXPLAIN SELECT 1",
        ];
        let mut out = String::new();
        for sql in forms {
            let parsed = parse(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
            out.push_str(&format!("{}\n  => {parsed:?}\n\n", sql.replace('\n', "\\n")));
        }
        insta::assert_snapshot!(out);
    }
}
