//! The SQL tools LARS cascades use, over the SQL door: `list_sql_connections`, `sql_query`,
//! `sql_search` and `smart_sql_run`.
//!
//! Each call opens one SQL session ([`Door::open`]) that sees the configured `[sql.tables]` (when the
//! program registered the tools with its SQL settings, [`register_tools_with`]), the batch
//! run's table (`RVBBIT RUN`) and every earlier cell's table as `_<cell>`, exactly as `sql_data` does.
//! Statements are checked against the door's `[limits]` and must only read ([`read_only`]); results
//! are capped ([`capped`]) and say so with `truncated`. Inside a run the session's model calls
//! (`rvbbit_udf`, `smart_sql_run`'s writer) are children of the calling run.

mod connections;
mod query;
mod search;
mod smart;

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::TableProvider;
use datafusion::common::TableReference;
use datafusion::sql::sqlparser::ast::{SetExpr, Statement, visit_statements};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use rvbbit_engine::ChildRuns;
use rvbbit_engine::tools::{Registry, ToolContext, ToolError};
use serde_json::{Value, json};

use crate::batch_tables::BatchTables;
use crate::error::Error;
use crate::result::{QueryResult, json_rows};
use crate::runtime::Settings;
use crate::session::{SqlRuntime, SqlSession};
use crate::tool::SqlData;

pub use connections::ListSqlConnections;
pub use query::SqlQuery;
pub use search::SqlSearch;
pub use smart::SmartSqlRun;

/// The parser recursion the tools' statements are checked against (the SQL door's default).
const PARSER_RECURSION: usize = 50;

/// Rows a result carries when the call names no `limit`.
pub(crate) const DEFAULT_ROWS: usize = 200;

/// The most rows a result carries, whatever `limit` says.
pub(crate) const MAX_ROWS: usize = 1000;

/// The most bytes of JSON rows a result carries (rows past it are dropped and the result flagged).
pub(crate) const MAX_RESULT_BYTES: usize = 256 * 1024;

/// Add rvbbit-sql's tools to `registry`: `sql_data`, and the SQL tools over the SQL door (`sql_query`,
/// `sql_search`, `list_sql_connections`, `smart_sql_run`), which then see no configured
/// tables (use [`register_tools_with`] for those). Returns the handle on the tables batch runs share
/// with their `sql_data` cells: give it to [`SqlRuntime::new`] of the runtime built on this registry's
/// engine, so the cells of its `RVBBIT RUN` / `rvbbit_run_batch` runs see their table.
pub fn register_tools(registry: &mut Registry) -> BatchTables {
    let tables = BatchTables::new();
    registry.register(Arc::new(SqlData::new(tables.clone())));
    register(registry, &tables, None);
    tables
}

/// [`register_tools`], with the SQL tools over the SQL door's `settings`: its `[sql.tables]` are the
/// tables `sql_query`, `sql_search`, `list_sql_connections` and `smart_sql_run` see, its `[limits]`
/// bound their statements.
pub fn register_tools_with(registry: &mut Registry, settings: Settings) -> BatchTables {
    let tables = BatchTables::new();
    registry.register(Arc::new(SqlData::new(tables.clone())));
    register(registry, &tables, Some(settings));
    tables
}

/// Add the SQL tools to `registry`, over `settings` (the SQL door's `[sql.tables]` and `[limits]`).
fn register(registry: &mut Registry, tables: &BatchTables, settings: Option<Settings>) {
    let door = Door {
        tables: tables.clone(),
        settings: settings.map(Arc::new),
    };
    registry.register(Arc::new(ListSqlConnections::new(door.clone())));
    registry.register(Arc::new(SqlQuery::new(door.clone())));
    registry.register(Arc::new(SqlSearch::new(door.clone())));
    registry.register(Arc::new(SmartSqlRun::new(door)));
}

/// What the SQL tools share: the batch tables and the SQL door's settings.
#[derive(Clone, Debug, Default)]
pub(crate) struct Door {
    tables: BatchTables,
    settings: Option<Arc<Settings>>,
}

/// One tool call's SQL session and the tables it can query.
pub(crate) struct Opened {
    pub(crate) session: SqlSession,
    /// The calling run, when there is one (the session's model calls are its children).
    pub(crate) parent: Option<ChildRuns>,
    /// The tables a cascade may query, by source: (source, table name).
    pub(crate) tables: Vec<(Source, String)>,
    /// The configured tables' locations.
    pub(crate) locations: BTreeMap<String, String>,
}

/// Where a table a tool sees comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// `[sql.tables]` of the configuration.
    Configured,
    /// An earlier cell's table (`_<cell>`).
    Cell,
    /// The table of the batch run the cascade is part of (`RVBBIT RUN`).
    Batch,
}

impl Source {
    /// The connection name `list_sql_connections` shows.
    pub(crate) fn connection(self) -> &'static str {
        match self {
            Source::Configured => "sql_tables",
            Source::Cell => "cells",
            Source::Batch => "batch",
        }
    }
}

impl Door {
    /// Open a session for the call `ctx`: the door's settings (configured tables and limits), the
    /// run's engine when there is a run (else an engine without a provider), and the batch and cell
    /// tables registered.
    pub(crate) fn open(&self, ctx: &ToolContext) -> Result<Opened, ToolError> {
        let parent = ctx.child_runs();
        let cwd = std::env::current_dir().unwrap_or_default();
        let mut settings = self
            .settings
            .as_deref()
            .cloned()
            .unwrap_or_else(|| Settings::new(cwd.clone()));
        // Tools read; a cascade never writes files through them.
        settings.queue = None;
        let engine = match &parent {
            Some(p) => {
                let engine = p.engine();
                settings.default_model = p.model().unwrap_or(engine.default_model()).to_owned();
                if settings.roots.is_empty() {
                    settings.roots = engine.roots().to_vec();
                }
                engine.clone()
            }
            None => rvbbit_engine::Engine::new(Registry::default()),
        };
        let locations = settings.tables.clone();
        let runtime = SqlRuntime::new(
            engine.clone(),
            engine.store().cloned(),
            engine.writer().cloned(),
            settings,
            self.tables.clone(),
        )
        .map_err(failed)?;
        let session = runtime.session_for(rvbbit_core::Origin::Sql, "cascade");
        let mut tables: Vec<(Source, String)> = locations
            .keys()
            .map(|name| (Source::Configured, name.clone()))
            .collect();
        for (name, table) in self.tables.shared_with(&ctx.session_id) {
            register_table(&session, &name, table)?;
            tables.push((Source::Batch, name));
        }
        for (cell, output) in &ctx.outputs {
            if let Some(table) = crate::tool::table_of(output)? {
                let name = format!("_{cell}");
                register_table(&session, &name, Arc::new(table))?;
                tables.push((Source::Cell, name));
            }
        }
        Ok(Opened {
            session,
            parent,
            tables,
            locations,
        })
    }
}

fn register_table(session: &SqlSession, name: &str, table: Arc<dyn TableProvider>) -> Result<(), ToolError> {
    session
        .context()
        .register_table(TableReference::bare(name.to_owned()), table)
        .map(|_| ())
        .map_err(|e| ToolError::Failed(format!("table `{name}`: {e}")))
}

impl Opened {
    /// Run `sql` (one statement) in the session: inside a run as its child, else on its own.
    pub(crate) async fn run(&self, sql: &str) -> Result<QueryResult, Error> {
        match &self.parent {
            Some(parent) => self.session.execute_in_run(sql, parent.clone()).await,
            None => self.session.execute(sql).await,
        }
    }

    /// Check `sql` (the door's text limits, then [`read_only`]) and run it; the rows capped at
    /// `limit`. Errors are the SQL door's (coded).
    pub(crate) async fn read(&self, sql: &str, limit: usize) -> Result<Value, Error> {
        let statement = read_only(sql, &self.session.limits())?;
        let result = self.run(&statement).await?;
        capped(&result, limit)
    }

    /// The columns of `table` as `[{name, type}]`, opening a configured table's files.
    pub(crate) async fn columns(&self, table: &str) -> Result<Vec<(String, String)>, Error> {
        let provider = self
            .session
            .context()
            .table_provider(TableReference::bare(table.to_owned()))
            .await
            .map_err(Error::from_datafusion)?;
        Ok(provider
            .schema()
            .fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().to_string()))
            .collect())
    }
}

/// A SQL error as a tool error, with its code first (`[RVB-Q002] …`).
pub(crate) fn failed(e: Error) -> ToolError {
    ToolError::Failed(format!("[{}] {e}", e.code().code))
}

/// Check `sql` against the door's text limits and refuse anything but one statement that only reads
/// (a query, `EXPLAIN` of one, `SHOW`, `DESCRIBE`): writes, DDL, `COPY`, `SET` and `SELECT … INTO`
/// anywhere in it (a data-modifying CTE included) are refused with RVB-Q005. Returns the statement
/// text (without a trailing `;`).
///
/// # Errors
/// [`Error::Limit`] over a limit, [`Error::Invalid`] when it does not parse or holds several
/// statements, [`Error::Refused`] when it would write.
pub(crate) fn read_only(sql: &str, limits: &crate::limits::Limits) -> Result<String, Error> {
    let dialect = PostgreSqlDialect {};
    limits.check_text(sql, &dialect, limits.parser_recursion(PARSER_RECURSION))?;
    let statements = Parser::new(&dialect)
        .with_recursion_limit(limits.parser_recursion(PARSER_RECURSION))
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_statements())
        .map_err(|e| Error::Invalid {
            message: format!("the statement does not parse, so it cannot be checked to only read: {e}"),
        })?;
    match statements.len() {
        0 => {
            return Err(Error::Invalid {
                message: "no SQL statement was given".into(),
            });
        }
        1 => {}
        n => {
            return Err(Error::Invalid {
                message: format!("one statement at a time, not {n}: run them one by one"),
            });
        }
    }
    let mut refused = None;
    // The visitor reaches nested statements too (`WITH x AS (INSERT …) SELECT …`, `EXPLAIN ANALYZE …`).
    let _flow = visit_statements(&statements, |s| {
        if let Some(what) = writes(s) {
            refused = Some(what);
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    });
    if let Some(what) = refused {
        return Err(Error::Refused {
            message: format!(
                "this SQL tool only reads: {what} is refused (the tool runs SELECT, WITH, VALUES, EXPLAIN, SHOW and DESCRIBE)"
            ),
        });
    }
    Ok(sql.trim().trim_end_matches(';').trim_end().to_owned())
}

/// What a statement would change, or `None` when it only reads.
fn writes(statement: &Statement) -> Option<String> {
    match statement {
        Statement::Query(q) => into_of(&q.body).then(|| "`SELECT … INTO`".to_owned()),
        Statement::Explain { .. }
        | Statement::ExplainTable { .. }
        | Statement::ShowTables { .. }
        | Statement::ShowColumns { .. }
        | Statement::ShowCreate { .. }
        | Statement::ShowFunctions { .. } => None,
        other => {
            let text = other.to_string();
            let verb: Vec<&str> = text.split_whitespace().take(2).collect();
            Some(format!("`{}`", verb.join(" ").to_uppercase()))
        }
    }
}

/// Whether a query body writes a table (`SELECT … INTO`).
fn into_of(body: &SetExpr) -> bool {
    match body {
        SetExpr::Select(select) => select.into.is_some(),
        SetExpr::Query(q) => into_of(&q.body),
        SetExpr::SetOperation { left, right, .. } => into_of(left) || into_of(right),
        _ => false,
    }
}

/// The result as a tool result: `{rows, columns, row_count, total_rows, truncated}`, at most `limit`
/// rows (at most [`MAX_ROWS`]) and [`MAX_RESULT_BYTES`] of JSON; `truncated` says rows were left out.
///
/// # Errors
/// [`Error::Execution`] for a value that cannot be written as JSON.
pub(crate) fn capped(result: &QueryResult, limit: usize) -> Result<Value, Error> {
    let limit = limit.clamp(1, MAX_ROWS);
    let total: usize = result.batches.iter().map(RecordBatch::num_rows).sum();
    // Only the rows kept are converted to JSON.
    let mut kept = Vec::new();
    let mut left = limit;
    for batch in &result.batches {
        if left == 0 {
            break;
        }
        let n = batch.num_rows().min(left);
        kept.push(batch.slice(0, n));
        left -= n;
    }
    let mut rows = json_rows(&kept)?;
    let mut bytes = 2;
    let mut fit = 0;
    for row in &rows {
        bytes += row.to_string().len() + 1;
        if bytes > MAX_RESULT_BYTES {
            break;
        }
        fit += 1;
    }
    rows.truncate(fit);
    let columns: Vec<&String> = result.schema.fields().iter().map(|f| f.name()).collect();
    Ok(json!({
        "rows": rows,
        "columns": columns,
        "row_count": rows.len(),
        "total_rows": total,
        "truncated": rows.len() < total,
    }))
}

/// The `limit` argument: a positive integer, at most [`MAX_ROWS`]; `default` when absent.
pub(crate) fn limit_arg(args: &Value, default: usize) -> Result<usize, ToolError> {
    match args.get("limit") {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_u64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            .filter(|n| *n >= 1)
            .map(|n| usize::try_from(n).unwrap_or(MAX_ROWS).min(MAX_ROWS))
            .ok_or_else(|| {
                ToolError::InvalidArguments(format!("`limit` must be a whole number from 1 to {MAX_ROWS}"))
            }),
    }
}

/// A string argument under any of `keys` (LARS's spellings), trimmed and non-empty.
pub(crate) fn text_arg<'a>(args: &'a Value, keys: &[&str]) -> Option<&'a str> {
    keys.iter()
        .find_map(|k| args.get(*k).and_then(Value::as_str))
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// A list of table names: `tables` as a list or a comma-separated string.
pub(crate) fn tables_arg(args: &Value) -> Vec<String> {
    match args.get("tables").or_else(|| args.get("table")) {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect(),
        Some(Value::String(s)) => s
            .split(',')
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .collect(),
        _ => Vec::new(),
    }
}

/// `name` quoted as a SQL identifier.
pub(crate) fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::Limits;

    #[test]
    fn only_statements_that_read_pass() {
        let limits = Limits::default();
        for ok in [
            "SELECT 1",
            "select * from t where a = 'DROP TABLE x';",
            "WITH a AS (SELECT 1 AS x) SELECT x FROM a",
            "VALUES (1), (2)",
            "EXPLAIN SELECT 1",
            "SHOW TABLES",
        ] {
            assert!(read_only(ok, &limits).is_ok(), "{ok}");
        }
        for (bad, what) in [
            ("INSERT INTO t VALUES (1)", "INSERT INTO"),
            ("DROP TABLE t", "DROP TABLE"),
            ("CREATE TABLE x AS SELECT 1", "CREATE TABLE"),
            ("COPY (SELECT 1) TO 'out.csv'", "COPY"),
            ("SELECT 1 INTO t2", "SELECT … INTO"),
            ("UPDATE t SET a = 1", "UPDATE"),
            ("DELETE FROM t", "DELETE FROM"),
            ("SET x = 1", "SET"),
            ("EXPLAIN ANALYZE INSERT INTO t VALUES (1)", "INSERT INTO"),
        ] {
            let err = read_only(bad, &limits).unwrap_err();
            assert_eq!(err.code().code, "RVB-Q005", "{bad}");
            assert!(err.to_string().contains(what), "{bad}: {err}");
        }
        assert_eq!(
            read_only("SELECT 1; DROP TABLE t", &limits)
                .unwrap_err()
                .code()
                .code,
            "RVB-Q001"
        );
        assert_eq!(read_only("SELEC 1", &limits).unwrap_err().code().code, "RVB-Q001");
    }

    /// A tool's query is held to the SQL door's limits before it is parsed: one byte over
    /// `limits.sql_query_bytes`, or nested deeper than the parser's bound, is a limit error naming it.
    #[test]
    fn a_query_over_the_doors_limits_is_refused_before_parsing() {
        let limits = Limits {
            query_bytes: 16,
            ..Limits::default()
        };
        assert!(read_only("SELECT 123456789", &limits).is_ok());
        let err = read_only("SELECT 1234567890", &limits).unwrap_err();
        assert!(matches!(err, Error::Limit { .. }), "{err}");
        assert!(err.to_string().contains("limits.sql_query_bytes = 16"), "{err}");
        let deep = format!("SELECT {}1{}", "(".repeat(5000), ")".repeat(5000));
        let err = read_only(&deep, &Limits::default()).unwrap_err();
        assert!(matches!(err, Error::Limit { .. }), "{err}");
    }

    #[test]
    fn limits_and_table_lists_are_read_as_lars_writes_them() {
        assert_eq!(limit_arg(&json!({}), 7).unwrap(), 7);
        assert_eq!(limit_arg(&json!({"limit": "5"}), 7).unwrap(), 5);
        assert_eq!(limit_arg(&json!({"limit": 999_999}), 7).unwrap(), MAX_ROWS);
        assert!(limit_arg(&json!({"limit": 0}), 7).is_err());
        assert_eq!(tables_arg(&json!({"tables": "a, b"})), ["a", "b"]);
        assert_eq!(tables_arg(&json!({"tables": ["a"]})), ["a"]);
        assert_eq!(quoted("we\"ird"), "\"we\"\"ird\"");
    }
}
