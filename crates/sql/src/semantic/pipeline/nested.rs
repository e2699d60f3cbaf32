//! THEN stages inside parentheses: a derived table (`SELECT * FROM (SELECT … THEN ENRICH 'x') s`), a
//! CTE's body, an `IN (…)` or a scalar subquery. Before the statement is planned, each outermost such
//! query runs as a pipeline of its own ([`expand`]), in the same statement (memo, cache, counters,
//! `rvbbit.max_calls`), and its result takes its place as a session table (`(SELECT * FROM
//! __rvbbit_stage_<n>)`), dropped once the statement is planned. Such a query runs on its own, so it
//! cannot name the outer query's columns or the statement's CTEs: that is RVB-Q009, as is `EXPLAIN`
//! of a statement holding one (its stages would have to run).

use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::TableReference;
use datafusion::datasource::MemTable;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use super::{misplaced, split};
use crate::error::{Error, Result};
use crate::plan::Planner;
use crate::semantic::tokens::top_level_thens;

/// Numbers the session tables of the subqueries' results.
static NEXT: AtomicU64 = AtomicU64::new(1);

/// A parenthesised query with stages of its own.
#[derive(Debug, PartialEq)]
struct Nested {
    /// The bytes of `( … )`, parentheses included.
    range: Range<usize>,
    /// The query and its stages, inside the parentheses.
    query: String,
    /// Where its `(` is (1-based line and column).
    line: u64,
    column: u64,
}

/// The outermost parenthesised queries of `sql` that have a `THEN` stage at their own level (outside
/// CASE … END), in order.
fn find(sql: &str) -> Vec<Nested> {
    if !sql.to_ascii_uppercase().contains("THEN") {
        return Vec::new();
    }
    let Ok(located) = Tokenizer::new(&GenericDialect {}, sql).tokenize_with_location() else {
        return Vec::new();
    };
    let tokens: Vec<Token> = located.iter().map(|t| t.token.clone()).collect();
    let at = |i: usize| {
        located
            .get(i)
            .map_or(sql.len(), |t| crate::with_clause::offset(sql, t.span.start))
    };
    let mut open = Vec::new();
    let mut found: Vec<(usize, usize)> = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        match token {
            Token::LParen => open.push(i),
            Token::RParen => {
                let Some(o) = open.pop() else { continue };
                let inner = &tokens[o + 1..i];
                let starts_query = inner
                    .iter()
                    .find(|t| !matches!(t, Token::Whitespace(_)))
                    .is_some_and(|t| {
                        matches!(t, Token::Word(w) if w.quote_style.is_none()
                            && ["SELECT", "WITH", "VALUES"].iter().any(|k| w.value.eq_ignore_ascii_case(k)))
                    });
                if starts_query && !top_level_thens(inner).is_empty() {
                    // An inner one found earlier is part of this one: this one runs it.
                    found.retain(|&(a, _)| a < o);
                    found.push((o, i));
                }
            }
            _ => {}
        }
    }
    found
        .into_iter()
        .map(|(o, c)| Nested {
            range: at(o)..at(c + 1),
            query: sql[at(o + 1)..at(c)].trim().to_owned(),
            line: located[o].span.start.line,
            column: located[o].span.start.column,
        })
        .collect()
}

/// What [`expand`] gives: the statement with each subquery's result in its place, and the session
/// tables holding them (to drop once the statement is planned).
pub(crate) type Expanded = (String, Vec<String>);

/// Run the parenthesised queries of `sql` that have stages and put their results in their place.
/// Errors: RVB-Q009 under `EXPLAIN` or when such a query names the outer statement; a stage's own
/// errors.
pub(crate) fn expand<'a>(
    planner: &'a Planner<'a>,
    sql: &'a str,
) -> Pin<Box<dyn Future<Output = Result<Expanded>> + Send + 'a>> {
    Box::pin(async move {
        let found = find(sql);
        if found.is_empty() {
            return Ok((sql.to_owned(), Vec::new()));
        }
        let stmt = planner.shared.statement();
        let explain = sql
            .trim_start()
            .get(..7)
            .is_some_and(|h| h.eq_ignore_ascii_case("explain"));
        if stmt.is_estimating() || explain {
            let n = &found[0];
            return Err(misplaced(&format!(
                "EXPLAIN cannot show the subquery with THEN stages at Line: {}, Column: {} without running \
                 its stages; EXPLAIN that query on its own (`EXPLAIN {} …`)",
                n.line,
                n.column,
                n.query.chars().take(40).collect::<String>().trim()
            )));
        }
        let mut out = String::with_capacity(sql.len());
        let mut last = 0;
        let mut tables: Vec<String> = Vec::new();
        for n in &found {
            match run_one(planner, &stmt, n).await {
                Ok(table) => {
                    out.push_str(&sql[last..n.range.start]);
                    out.push_str(&format!("(SELECT * FROM {table})"));
                    last = n.range.end;
                    tables.push(table);
                }
                Err(e) => {
                    drop_tables(planner, &tables);
                    return Err(e);
                }
            }
        }
        out.push_str(&sql[last..]);
        Ok((out, tables))
    })
}

/// Run one subquery's pipeline and keep its result as a session table; its name.
async fn run_one(
    planner: &Planner<'_>,
    stmt: &Arc<crate::statement::Statement>,
    n: &Nested,
) -> Result<String> {
    let Some(pipeline) = split(&n.query, planner.stages)? else {
        return Err(Error::Execution {
            message: "a subquery with THEN stages has none when split; this is a bug".into(),
        });
    };
    if pipeline.target.is_some() {
        return Err(misplaced(&format!(
            "the subquery at Line: {}, Column: {} is not a query",
            n.line, n.column
        )));
    }
    let (schema, batches) = super::run(planner, stmt, pipeline)
        .await
        .map_err(|e| alone(e, n))?;
    hold(planner, schema, batches)
}

/// Keep `batches` as a new session table (`__rvbbit_stage_<n>`); its name.
pub(super) fn hold(planner: &Planner<'_>, schema: SchemaRef, batches: Vec<RecordBatch>) -> Result<String> {
    let table = format!("__rvbbit_stage_{}", NEXT.fetch_add(1, Ordering::Relaxed));
    let mem = MemTable::try_new(schema, vec![batches]).map_err(|e| Error::Execution {
        message: e.to_string(),
    })?;
    planner
        .ctx
        .register_table(TableReference::bare(table.as_str()), Arc::new(mem))
        .map_err(Error::from_datafusion)?;
    Ok(table)
}

/// A subquery's planning error that comes from it running on its own (an unknown column or table:
/// the outer query's, or a CTE's) as RVB-Q009 saying so; any other error as it is.
fn alone(e: Error, n: &Nested) -> Error {
    let message = e.to_string();
    let lower = message.to_ascii_lowercase();
    let unknown =
        lower.contains("not found") || lower.contains("no field named") || lower.contains("does not exist");
    if !matches!(e, Error::Invalid { .. }) || !unknown {
        return e;
    }
    misplaced(&format!(
        "the subquery with THEN stages at Line: {}, Column: {} runs on its own, before the statement, so it \
         cannot name the outer query's columns or the statement's CTEs ({message}); make a table of what it \
         needs first, or move the stages to the end of the statement",
        n.line, n.column
    ))
}

/// Drop the session tables of subqueries' results.
pub(crate) fn drop_tables(planner: &Planner<'_>, tables: &[String]) {
    for table in tables {
        // The table was registered by this statement; a failure to drop it leaves an unused table.
        let _ = planner.ctx.deregister_table(TableReference::bare(table.as_str()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_parenthesised_queries_with_their_own_stages_are_found() {
        let sql = "SELECT * FROM (SELECT CASE WHEN a THEN 1 END FROM t) x, \
                   (select 'it''s' AS s FROM (SELECT 1 THEN PASS) y THEN FILTER 'z') w \
                   WHERE id IN (VALUES (1) THEN SAMPLE 1) AND 'THEN (SELECT 1 THEN PASS)' <> ''";
        let found = find(sql);
        let queries: Vec<&str> = found.iter().map(|n| n.query.as_str()).collect();
        assert_eq!(
            queries,
            [
                "select 'it''s' AS s FROM (SELECT 1 THEN PASS) y THEN FILTER 'z'",
                "VALUES (1) THEN SAMPLE 1"
            ]
        );
        assert_eq!(&sql[found[0].range.clone()][..8], "(select ");
        assert_eq!((found[0].line, found[0].column), (1, 57));
        assert!(find("SELECT CASE WHEN (a) THEN (1) END").is_empty());
    }
}
