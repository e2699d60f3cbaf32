//! The session factory ([`SqlRuntime`]) and SQL sessions ([`SqlSession`]): DataFusion contexts with
//! rvbbit's functions and settings, executing one statement at a time under a fresh `sql-…` caller id.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::logical_expr::async_udf::AsyncScalarUDF;
use datafusion::prelude::{SessionConfig, SessionContext};
use rvbbit_core::{CallerId, Event, EventKind, MicroUsd, Origin, SessionId};
use rvbbit_engine::Engine;
use rvbbit_store::{Store, WriterHandle};
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::calls::{Runtime, Settings, Statement};
use crate::error::{Error, Result};
use crate::options::RvbbitOptions;
use crate::udf::{Kind, RUN_NAMES, RvbbitFunction, UDF_NAMES};

/// Builds SQL sessions that share one engine, store, result cache and concurrency limit.
#[derive(Clone, Debug)]
pub struct SqlRuntime {
    runtime: Arc<Runtime>,
}

impl SqlRuntime {
    /// A runtime running calls through `engine` (with its provider, writer and default model), caching
    /// results in `store` (no persistent cache without one) and recording cache hits and statement
    /// summaries through `writer`.
    ///
    /// Errors: [`Error::Execution`] if the built-in `rvbbit_udf` cascade does not validate (a bug).
    pub fn new(
        engine: Engine,
        store: Option<Arc<dyn Store>>,
        writer: Option<WriterHandle>,
        settings: Settings,
    ) -> Result<SqlRuntime> {
        let runtime =
            Runtime::new(engine, store, writer, settings).map_err(|message| Error::Execution { message })?;
        Ok(SqlRuntime {
            runtime: Arc::new(runtime),
        })
    }

    /// A new session: its own tables and settings, the rvbbit functions and `rvbbit.*` settings.
    pub fn session(&self) -> SqlSession {
        let config = SessionConfig::new()
            .with_information_schema(true)
            .with_option_extension(RvbbitOptions::default());
        let ctx = SessionContext::new_with_config(config);
        let shared = Arc::new(Shared {
            runtime: self.runtime.clone(),
            current: Mutex::new(None),
        });
        for (kind, names) in [(Kind::Udf, UDF_NAMES), (Kind::Run, RUN_NAMES)] {
            for name in names {
                let f = RvbbitFunction::new(kind, name, shared.clone());
                ctx.register_udf(AsyncScalarUDF::new(Arc::new(f)).into_scalar_udf());
            }
        }
        SqlSession { ctx, shared }
    }
}

/// What the functions of one session share: the runtime and the statement being executed.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) runtime: Arc<Runtime>,
    current: Mutex<Option<Arc<Statement>>>,
}

impl Shared {
    /// The statement being executed, or a fresh one when the context is used directly.
    pub(crate) fn statement(&self) -> Arc<Statement> {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        current
            .get_or_insert_with(|| Arc::new(Statement::new(CallerId::new(Origin::Sql))))
            .clone()
    }

    fn set(&self, stmt: Option<Arc<Statement>>) {
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = stmt;
    }
}

/// One SQL session (a connection, a CLI invocation): own tables and settings, one statement at a time.
pub struct SqlSession {
    ctx: SessionContext,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for SqlSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlSession")
            .field("session_id", &self.ctx.session_id())
            .finish_non_exhaustive()
    }
}

/// Totals of one statement's rvbbit function calls.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StatementStats {
    /// Engine runs (sessions) made: distinct calls that missed the cache.
    pub runs: u64,
    /// Provider calls made by those runs.
    pub llm_calls: u64,
    /// Distinct calls served from the persistent result cache.
    pub cache_hits: u64,
    /// Calls that failed (NULL, `ERROR: …` or a failure document).
    pub errors: u64,
    /// Cost of the runs.
    pub cost: MicroUsd,
    /// What the cache hits would have cost.
    pub avoided_cost: MicroUsd,
}

/// The result of one statement.
#[derive(Debug)]
pub struct QueryResult {
    /// The columns.
    pub schema: SchemaRef,
    /// The rows.
    pub batches: Vec<RecordBatch>,
    /// The statement's caller id (every session it started carries it).
    pub caller_id: CallerId,
    /// Calls, cache hits, errors and cost.
    pub stats: StatementStats,
    /// Messages for the user (a PostgreSQL NOTICE on the wire, warnings on the CLI).
    pub notices: Vec<String>,
    /// Wall time.
    pub duration: Duration,
}

impl QueryResult {
    /// Number of rows.
    pub fn row_count(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

impl SqlSession {
    /// The DataFusion context (register tables, inspect the catalog).
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// Execute one statement under a fresh `sql-…` caller id.
    ///
    /// Errors: [`Error::Invalid`] (parse or plan, with the position), [`Error::Execution`],
    /// [`Error::FunctionFailed`] (`rvbbit.udf_errors = 'raise'`), [`Error::Argument`].
    pub async fn execute(&self, sql: &str) -> Result<QueryResult> {
        let started = Instant::now();
        let stmt = Arc::new(Statement::new(CallerId::new(Origin::Sql)));
        self.shared.set(Some(stmt.clone()));
        let result = async {
            let df = self.ctx.sql(sql).await.map_err(Error::from_datafusion)?;
            let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
            let batches = df.collect().await.map_err(Error::from_datafusion)?;
            Ok::<_, Error>((schema, batches))
        }
        .await;
        self.shared.set(None);
        let c = &stmt.counters;
        let stats = StatementStats {
            runs: c.runs.load(Ordering::Relaxed),
            llm_calls: c.llm_calls.load(Ordering::Relaxed),
            cache_hits: c.cache_hits.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
            cost: MicroUsd::from_micros(c.cost_micros.load(Ordering::Relaxed)),
            avoided_cost: MicroUsd::from_micros(c.avoided_micros.load(Ordering::Relaxed)),
        };
        let duration = started.elapsed();
        let rows = result
            .as_ref()
            .map(|(_, b)| b.iter().map(RecordBatch::num_rows).sum::<usize>())
            .ok();
        self.log_statement(sql, &stmt, &stats, rows, duration, result.as_ref().err())
            .await;
        let (schema, batches) = result?;
        let mut notices = Vec::new();
        if stats.errors > 0 {
            let first = stmt
                .first_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
                .unwrap_or_default();
            notices.push(format!(
                "{} rvbbit function call(s) failed (NULL for rvbbit_udf, a failure document for rvbbit_run); \
                 first error: {first}; see `rvbbit sessions list --caller {}`",
                stats.errors, stmt.caller_id
            ));
        }
        Ok(QueryResult {
            schema,
            batches,
            caller_id: stmt.caller_id.clone(),
            stats,
            notices,
            duration,
        })
    }

    /// Record a `sql_query` event for a statement that reached rvbbit functions.
    async fn log_statement(
        &self,
        sql: &str,
        stmt: &Statement,
        stats: &StatementStats,
        rows: Option<usize>,
        duration: Duration,
        error: Option<&Error>,
    ) {
        if stats.runs + stats.cache_hits + stats.errors == 0 {
            return;
        }
        let Some(writer) = &self.shared.runtime.writer else {
            return;
        };
        let Ok(session) = stmt.caller_id.as_str().parse::<SessionId>() else {
            return;
        };
        let mut event = Event::new(EventKind::SqlQuery, session, 0);
        event.caller_id = Some(stmt.caller_id.clone());
        event.duration_us = Some(i64::try_from(duration.as_micros()).unwrap_or(i64::MAX));
        event.content = json!({"query": sql});
        let hash = hex::encode(Sha256::digest(sql.as_bytes()));
        event.metadata = json!({
            "query_hash": &hash[..16],
            "status": if error.is_some() { "error" } else { "completed" },
            "rows_output": rows,
            "runs": stats.runs,
            "llm_calls": stats.llm_calls,
            "cache_hits": stats.cache_hits,
            "errors": stats.errors,
            "total_cost_micro_usd": stats.cost.micros(),
            "avoided_cost_micro_usd": stats.avoided_cost.micros(),
        });
        if let Some(e) = error {
            event.error = Some(json!({"code": e.code().code, "message": e.to_string()}));
        }
        if let Err(e) = writer.event(event).await {
            tracing::warn!(error = %e, "sql_query event not recorded");
        }
    }
}
