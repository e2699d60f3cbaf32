//! The `sql_data` tool for cascades: run a SQL query over the tables of earlier cells.
//!
//! Every earlier cell whose output is a table (`{rows: [...], ...}`, as `sql_data`, `bash_data` and
//! `python_data` return) is registered as the table `_<cell>` (the corpus's convention), so results pass
//! from cell to cell. The query's result is returned as a table `{rows, columns, row_count}`; a query of
//! several statements runs them in order and returns the last one's (`statements.rs`). Inside a run
//! the query may call `rvbbit_udf` and `rvbbit_run` (the corpus's per-row cascades); their runs are child
//! sessions of the calling run, under its caller id.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::MemTable;
use datafusion::common::TableReference;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use rvbbit_engine::tools::{SideEffect, Tool, ToolContext, ToolError};
use serde_json::{Value, json};

use crate::batch_tables::BatchTables;
use crate::error::Error;
use crate::limits::Limits;
use crate::result::{json_rows, rows_table};
use crate::runtime::Settings;
use crate::session::{SqlRuntime, SqlSession};

/// The parser recursion `sql_data`'s statements are checked against (the SQL door's default).
const PARSER_RECURSION: usize = 50;

/// `sql_data`: a SQL query (DataFusion dialect) over the tables of earlier cells.
#[derive(Clone, Debug, Default)]
pub struct SqlData {
    /// The tables batch runs share with their cells (`RVBBIT RUN`), by session id.
    tables: BatchTables,
}

impl SqlData {
    /// The tool, seeing the batch tables shared through `tables`.
    pub fn new(tables: BatchTables) -> Self {
        SqlData { tables }
    }
}

#[async_trait]
impl Tool for SqlData {
    fn name(&self) -> &str {
        "sql_data"
    }

    fn description(&self) -> &str {
        "Run a SQL query (several statements separated by `;` run in order; the last one's result is returned). Earlier cells' tables are available as `_<cell name>`. Returns {rows, columns, row_count}."
    }

    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "The SQL query."},
                "materialize": {"type": "boolean", "description": "Accepted for compatibility: results are always available to later cells as `_<cell>`."}
            },
            "required": ["query"]
        })
    }

    fn side_effect(&self) -> SideEffect {
        SideEffect::Pure
    }

    async fn execute(&self, args: Value, ctx: &ToolContext) -> Result<Value, ToolError> {
        let query = args
            .get("query")
            .and_then(Value::as_str)
            .ok_or_else(|| ToolError::InvalidArguments("`query` is required and must be a string".into()))?;
        let failed = |e: Error| ToolError::Failed(format!("[{}] {e}", e.code().code));
        // Inside a run, a full SQL session: `rvbbit_udf` / `rvbbit_run` work, and their runs are children
        // of this one. Called directly (no run), DataFusion with the DuckDB helpers only.
        let sql_session = match ctx.child_runs() {
            Some(parent) => Some((cascade_session(&parent, &self.tables).map_err(failed)?, parent)),
            None => None,
        };
        let plain;
        let session = match &sql_session {
            Some((s, _)) => s.context(),
            None => {
                plain = SessionContext::new();
                crate::compat::register(&plain);
                &plain
            }
        };
        // A batch run's table (`RVBBIT RUN`), under the name the run's input gives.
        for (name, table) in self.tables.shared_with(&ctx.session_id) {
            session
                .register_table(TableReference::bare(name.clone()), table)
                .map_err(|e| ToolError::Failed(format!("table `{name}`: {e}")))?;
        }
        for (cell, output) in &ctx.outputs {
            if let Some(table) = table_of(output)? {
                session
                    .register_table(TableReference::bare(format!("_{cell}")), Arc::new(table))
                    .map_err(|e| ToolError::Failed(format!("table `_{cell}`: {e}")))?;
            }
        }
        // Several statements run in order in the one session (a table one creates is there for the
        // next); the last one's result is the cell's. Counted against `limits.sql_statements` first.
        let limits = sql_session
            .as_ref()
            .map_or_else(Limits::default, |(s, _)| s.limits());
        let dialect = PostgreSqlDialect {};
        limits
            .check_text(query, &dialect, limits.parser_recursion(PARSER_RECURSION))
            .map_err(failed)?;
        let statements = crate::statements::split(query, &dialect);
        let mut last = None;
        for statement in statements {
            last = Some(match &sql_session {
                Some((s, parent)) => {
                    let result = s
                        .execute_in_run(statement, parent.clone())
                        .await
                        .map_err(failed)?;
                    (result.schema, result.batches)
                }
                None => {
                    let run = async {
                        let df = session.sql(statement).await?;
                        let schema = Arc::new(df.schema().as_arrow().clone());
                        let batches = df.collect().await?;
                        Ok::<_, datafusion::error::DataFusionError>((schema, batches))
                    };
                    run.await.map_err(|e| failed(Error::from_datafusion(e)))?
                }
            });
        }
        let Some((schema, batches)) = last else {
            return Err(ToolError::InvalidArguments(
                "`query` holds no SQL statement".into(),
            ));
        };
        let rows = json_rows(&batches).map_err(|e| ToolError::Failed(e.to_string()))?;
        let columns: Vec<&String> = schema.fields().iter().map(|f| f.name()).collect();
        Ok(json!({"row_count": rows.len(), "rows": rows, "columns": columns}))
    }
}

/// A SQL session for a `sql_data` cell of the run behind `parent`: its engine (provider, writer, store as
/// the result cache), cascades for `rvbbit_run` found next to the calling cascade, in the working
/// directory or the configured roots, and the run's model override as the default model.
fn cascade_session(parent: &rvbbit_engine::ChildRuns, tables: &BatchTables) -> Result<SqlSession, Error> {
    let engine = parent.engine();
    let cwd = std::env::current_dir().unwrap_or_default();
    let base = parent
        .cascade_file()
        .and_then(std::path::Path::parent)
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| cwd.clone(), std::path::Path::to_path_buf);
    let mut settings = Settings::new(base);
    settings.default_model = parent.model().unwrap_or(engine.default_model()).to_owned();
    settings.roots = engine.roots().to_vec();
    settings.roots.push(cwd);
    let runtime = SqlRuntime::new(
        engine.clone(),
        engine.store().cloned(),
        engine.writer().cloned(),
        settings,
        tables.clone(),
    )?;
    Ok(runtime.session_for(rvbbit_core::Origin::Sql, "cascade"))
}

/// An output that is a table (an object with a `rows` array of objects) as an in-memory table.
pub(crate) fn table_of(output: &Value) -> Result<Option<MemTable>, ToolError> {
    let Some(rows) = output.get("rows").and_then(Value::as_array) else {
        return Ok(None);
    };
    if !rows.iter().all(Value::is_object) {
        return Ok(None);
    }
    let columns: Vec<String> = output
        .get("columns")
        .and_then(Value::as_array)
        .map(|c| c.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default();
    rows_table(rows, &columns).map(Some)
}
