//! Splitting a query string into classified statements (`classify.rs`) under the runtime's limits; a
//! string holding a cursor statement is split by its tokens first (`cursor/parse.rs`).

// `ErrorInfo` is pgwire's own error message type, which the protocol layer consumes as is; a statement
// fails at most once, so its size on the error path does not matter.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::sql::sqlparser::ast::Statement;
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use pgwire::error::ErrorInfo;

use super::classify::{Declare, Kind, Refusal, Sql, classify, parsed_sql};
use super::cursor::{self, Header, Piece};
use super::errors::{error, state};
use crate::limits::Limits;
use crate::semantic::{Operators, SemanticDialect};

/// Split and classify a query string. A string sqlparser cannot parse is one statement for the session
/// as it is (RVBBIT MAP, or an error the session reports with its position).
#[cfg(test)]
pub(crate) fn parse(sql: &str) -> Vec<Kind> {
    parse_checked(sql, &Limits::default(), Arc::default()).unwrap_or_default()
}

/// Split and classify a query string under `limits`: the text's size and statement count are checked before parsing, each
/// parsed statement's depth before it is rewritten (a too-deep tree is taken apart, never recursed
/// into). Call it on the SQL threads (parsing recurses up to the parser's recursion limit).
///
/// Errors: SQLSTATE 54000 (size, count) or 54001 (depth), with the rvbbit code RVB-Q006.
pub(crate) fn parse_checked(
    sql: &str,
    limits: &Limits,
    operators: Arc<Operators>,
) -> Result<Vec<Kind>, ErrorInfo> {
    let sql = super::known::substitute(sql).unwrap_or(sql);
    // PostgreSQL with the session's semantic operators: a statement using them parses into calls of
    // their functions, bound and rendered like any other.
    let dialect = SemanticDialect::new(Box::new(PostgreSqlDialect {}), operators);
    let recursion = limits.parser_recursion(PARSER_RECURSION);
    let checked = Checked {
        limits,
        dialect: &dialect,
        recursion,
    };
    if sql.trim().trim_end_matches(';').trim().is_empty() {
        return Ok(Vec::new());
    }
    limits
        .check_text(sql, &dialect, recursion)
        .map_err(|e| super::errors::from_sql_error(&e, sql))?;
    // A string holding a cursor statement is split by its tokens (sqlparser does not parse them all).
    if let Some(pieces) = cursor::split(sql, &dialect) {
        let mut kinds = Vec::new();
        for piece in pieces {
            match piece {
                Piece::Other(text) => kinds.extend(checked.parse(text)?),
                Piece::Declare(header, query) => kinds.push(declare(header, checked.parse(query)?)),
                Piece::Fetch(fetch) => kinds.push(Kind::Fetch(fetch)),
                Piece::Close(name) => kinds.push(Kind::Close(name)),
                Piece::Refused(e) => kinds.push(Refusal::of(*e)),
            }
        }
        return Ok(kinds);
    }
    checked.parse(sql)
}

/// The parser under the limits (the text's size and count are checked already).
struct Checked<'a> {
    limits: &'a Limits,
    dialect: &'a SemanticDialect,
    recursion: usize,
}

impl Checked<'_> {
    /// Parse and classify statements ([`Checked::parse_plain`]). A query that ends with its own
    /// `WITH (…)` options (semantic SQL) is parsed without them, so its `$n` parameters bind like any
    /// query's, and they are put back after it when it is rendered; a clause the session would refuse
    /// stays in the text (the session reports it).
    fn parse(&self, sql: &str) -> Result<Vec<Kind>, ErrorInfo> {
        if let Ok((body, Some(_))) = crate::with_clause::split(sql) {
            let clause = sql[body.len()..].trim().trim_end_matches(';').trim().to_owned();
            if let Ok(mut kinds) = self.parse_plain(&body)
                && let [Kind::Sql(one)] = kinds.as_mut_slice()
                && one.ast.is_some()
            {
                one.suffix = Some(clause);
                return Ok(kinds);
            }
        }
        self.parse_plain(sql)
    }

    /// Parse and classify statements; each parsed statement's depth is checked before it is rewritten
    /// (a too-deep tree is taken apart, never recursed into).
    fn parse_plain(&self, sql: &str) -> Result<Vec<Kind>, ErrorInfo> {
        let trimmed = sql.trim().trim_end_matches(';').trim();
        if trimmed.is_empty() {
            return Ok(Vec::new());
        }
        let refuse = |e: crate::error::Error| super::errors::from_sql_error(&e, sql);
        let parsed = Parser::new(self.dialect)
            .with_recursion_limit(self.recursion)
            .try_with_sql(sql)
            .and_then(|mut p| p.parse_statements());
        match parsed {
            Ok(mut statements) if !statements.is_empty() => {
                // Every statement is checked (and a deep one taken apart) before any is dropped.
                let mut checked = Ok(());
                for statement in &mut statements {
                    if let Err(e) = self.limits.check_tree(statement) {
                        checked = Err(e);
                    }
                }
                checked.map_err(refuse)?;
                if crate::semantic::has_annotations(sql, self.dialect) {
                    return annotated(trimmed, statements);
                }
                Ok(statements.into_iter().map(classify).collect())
            }
            _ if is_copy_stream(trimmed) => Ok(vec![Refusal::of(error(
                state::SYNTAX,
                "this COPY statement is not understood",
                "COPY (query) TO STDOUT [WITH (FORMAT text|csv|binary, HEADER, DELIMITER 'c', NULL 's')], or COPY table [(columns)] FROM STDIN [WITH (…)]",
            ))]),
            _ => Ok(vec![Kind::Sql(Sql {
                ast: None,
                text: trimmed.to_owned(),
                reads_catalog: false,
                params: 0,
                casts: BTreeMap::new(),
                calls_settings: false,
                annotated: false,
                suffix: None,
            })]),
        }
    }
}

/// A statement with `-- @` annotations (semantic SQL): the session gets its text as written, since the
/// parsed tree has no comments; its `$n` parameters are bound on the text's tokens, and the tree infers
/// their types. Errors: several statements in one string (each must come alone).
fn annotated(text: &str, mut statements: Vec<Statement>) -> Result<Vec<Kind>, ErrorInfo> {
    if statements.len() > 1 {
        return Err(error(
            state::NOT_SUPPORTED,
            "a query string with `-- @` annotations must hold one statement",
            "send the annotated statement on its own",
        ));
    }
    let Some(statement) = statements.pop() else {
        return Ok(Vec::new());
    };
    let mut sql = parsed_sql(statement);
    sql.text = text.to_owned();
    sql.annotated = true;
    sql.calls_settings = false;
    Ok(vec![Kind::Sql(sql)])
}

/// A DECLARE of `header` over the statements its query text parsed into: one query (SELECT, VALUES,
/// or text only the session parses, which reports its own syntax error when planned).
fn declare(header: Header, mut kinds: Vec<Kind>) -> Kind {
    match (kinds.pop(), kinds.is_empty()) {
        (Some(Kind::Sql(sql)), true) if matches!(sql.ast.as_deref(), None | Some(Statement::Query(_))) => {
            Kind::Declare(Box::new(Declare { header, sql }))
        }
        (Some(Kind::Refused(refusal)), true) => Kind::Refused(refusal),
        _ => Refusal::of(error(
            state::SYNTAX,
            "DECLARE CURSOR needs one SELECT or VALUES query after FOR",
            "DECLARE name CURSOR FOR SELECT …",
        )),
    }
}

/// sqlparser's default recursion limit (what `Parser::parse_sql` uses).
const PARSER_RECURSION: usize = 50;

/// A `COPY` through the client's stdin/stdout (what sqlparser could not parse, by its words).
fn is_copy_stream(sql: &str) -> bool {
    let upper = sql.to_ascii_uppercase();
    upper.starts_with("COPY")
        && upper
            .split(|c: char| !c.is_ascii_alphanumeric())
            .any(|w| w == "STDIN" || w == "STDOUT")
}
