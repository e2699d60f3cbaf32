//! The session factory ([`SqlRuntime`]) and SQL sessions ([`SqlSession`]): DataFusion contexts with
//! rvbbit's functions and settings, executing one statement at a time under a fresh `sql-…` caller id.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use std::collections::HashMap;

use datafusion::arrow::array::{ArrayRef, StringArray};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::MemTable;
use datafusion::common::TableReference;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::async_udf::AsyncScalarUDF;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::DFParserBuilder;
use datafusion::sql::sqlparser::dialect::{Dialect, dialect_from_str};
use datafusion::sql::sqlparser::parser::ParserError;
use rvbbit_core::{CallerId, CostStatus, Event, EventKind, MicroUsd, Origin, SessionId};
use rvbbit_engine::Engine;
use rvbbit_store::{Store, WriterHandle};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::calls::{Answer, Runtime, Settings, Statement};
use crate::error::{Error, Result};
use crate::limits::Limits;
use crate::map::{MapStatement, Verb};
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

    /// Read `all_data` from `events` (the events sink, such as ClickHouse) instead of the store; a
    /// statement falls back to the store, with a warning in the log, when the sink fails.
    ///
    /// Errors: [`Error::Execution`] once a session has been opened (the runtime is shared from then on).
    pub fn with_events(mut self, events: Arc<dyn rvbbit_store::EventSink>) -> Result<SqlRuntime> {
        let Some(runtime) = Arc::get_mut(&mut self.runtime) else {
            return Err(Error::Execution {
                message: "the events sink must be given before the first SQL session".into(),
            });
        };
        runtime.events = Some(events);
        Ok(self)
    }

    /// Wait up to `grace` for the cascade runs still in flight, such as the runs of a statement that was
    /// abandoned (its future dropped), which stop and record `cancelled`. True when all ended in time.
    pub async fn wait_for_runs(&self, grace: Duration) -> bool {
        let tasks = &self.runtime.tasks;
        tasks.close();
        let done = tokio::time::timeout(grace, tasks.wait()).await.is_ok();
        tasks.reopen();
        done
    }

    /// The limits on client SQL (and pgwire connections) of this runtime.
    pub(crate) fn limits(&self) -> Limits {
        self.runtime.settings.limits
    }

    /// The big-stack threads' runtime (pgwire connections run there: their statement trees are
    /// cloned, printed and dropped recursively).
    pub(crate) fn sql_threads(&self) -> &tokio::runtime::Handle {
        self.runtime.stack.handle()
    }

    /// A new session for the command line (`sql-…` caller ids, protocol `cli`): its own tables and
    /// settings, the rvbbit functions and `rvbbit.*` settings.
    pub fn session(&self) -> SqlSession {
        self.session_for(Origin::Sql, "cli")
    }

    /// A new session whose statements get caller ids of `origin` (`sql-…` for pgwire and the CLI,
    /// `http-…` for the HTTP API) and record `protocol` (`cli`, `postgresql_wire`, `http`) in
    /// `sql_query_log`.
    pub fn session_for(&self, origin: Origin, protocol: &'static str) -> SqlSession {
        let config = SessionConfig::new()
            .with_information_schema(true)
            .with_option_extension(RvbbitOptions::default());
        let ctx = SessionContext::new_with_config_rt(config, self.runtime.sources.env());
        // The default schema: the session's own tables, then the configured `[sql.tables]`.
        let schema = Arc::new(crate::sources::SessionSchema::new(self.runtime.sources.clone()));
        if let Some(catalog) = ctx.catalog("datafusion") {
            let _ = catalog.register_schema("public", schema.clone());
        }
        let shared = Arc::new(Shared {
            runtime: self.runtime.clone(),
            current: Mutex::new(None),
            origin,
            protocol,
            schema,
        });
        for (kind, names) in [(Kind::Udf, UDF_NAMES), (Kind::Run, RUN_NAMES)] {
            for name in names {
                let f = RvbbitFunction::new(kind, name, shared.clone());
                ctx.register_udf(AsyncScalarUDF::new(Arc::new(f)).into_scalar_udf());
            }
        }
        for name in crate::batch::BATCH_NAMES {
            let f = crate::batch::RunBatch::new(name, shared.clone());
            ctx.register_udf(AsyncScalarUDF::new(Arc::new(f)).into_scalar_udf());
        }
        crate::compat::register(&ctx);
        for (name, format) in crate::sources::READ_FUNCTIONS {
            ctx.register_udtf(
                name,
                Arc::new(crate::sources::ReadFunction::new(
                    name,
                    *format,
                    self.runtime.sources.clone(),
                )),
            );
        }
        // Magic tables over the store. Registering a fresh name in a fresh context cannot fail.
        let _ = ctx.register_table(
            "sql_query_log",
            Arc::new(crate::magic::SqlQueryLog::new(self.runtime.clone())),
        );
        let _ = ctx.register_table(
            "all_data",
            Arc::new(crate::magic::AllData::new(self.runtime.clone())),
        );
        let _ = ctx.register_table(
            "sessions",
            Arc::new(crate::magic::Sessions::new(
                self.runtime.clone(),
                crate::magic::SessionView::State,
            )),
        );
        let _ = ctx.register_table(
            "cascade_runs",
            Arc::new(crate::magic::Sessions::new(
                self.runtime.clone(),
                crate::magic::SessionView::Runs,
            )),
        );
        let _ = ctx.register_table(
            "checkpoints",
            Arc::new(crate::magic::Checkpoints::new(self.runtime.clone())),
        );
        let _ = ctx.register_table(
            "signals",
            Arc::new(crate::magic::Signals::new(self.runtime.clone())),
        );
        SqlSession { ctx, shared }
    }
}

/// What the functions of one session share: the runtime and the statement being executed.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) runtime: Arc<Runtime>,
    current: Mutex<Option<Arc<Statement>>>,
    /// What kind of caller ids this session's statements get.
    origin: Origin,
    /// Recorded in each `sql_query` event.
    protocol: &'static str,
    /// The session's default schema (its own tables).
    schema: Arc<crate::sources::SessionSchema>,
}

impl Shared {
    /// The statement being executed, or a fresh one when the context is used directly.
    pub(crate) fn statement(&self) -> Arc<Statement> {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        current
            .get_or_insert_with(|| Arc::new(Statement::new(CallerId::new(self.origin))))
            .clone()
    }

    /// The session's default schema (where `RVBBIT RUN` registers its table).
    pub(crate) fn schema(&self) -> Arc<crate::sources::SessionSchema> {
        self.schema.clone()
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
    /// Calls not made because a MAP statement's `budget_dollars` was spent (their rows get NULL).
    pub skipped: u64,
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

    pub(crate) fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Execute one statement under a fresh caller id (`sql-…`, or `http-…` for an HTTP session).
    ///
    /// Errors: [`Error::Invalid`] (parse or plan, with the position), [`Error::Execution`],
    /// [`Error::FunctionFailed`] (`rvbbit.udf_errors = 'raise'`), [`Error::Argument`].
    /// The statement is checked against [`Settings::limits`](crate::Settings::limits) before it is
    /// planned ([`Error::Limit`]) and parses, plans and runs on the runtime's big-stack threads.
    /// Dropping the future cancels the statement and its runs.
    pub async fn execute(&self, sql: &str) -> Result<QueryResult> {
        let caller_id = CallerId::new(self.shared.origin);
        let metadata = self.metadata(sql, &caller_id);
        let stmt = Statement::new(caller_id).with_metadata(metadata);
        self.execute_on_sql_threads(sql, stmt).await
    }

    /// A second handle on this session (the same context and state), to move onto the SQL threads.
    fn handle(&self) -> SqlSession {
        SqlSession {
            ctx: self.ctx.clone(),
            shared: self.shared.clone(),
        }
    }

    async fn execute_on_sql_threads(&self, sql: &str, stmt: Statement) -> Result<QueryResult> {
        let session = self.handle();
        let sql = sql.to_owned();
        self.shared
            .runtime
            .stack
            .run(async move { session.execute_statement(&sql, stmt).await })
            .await
    }

    /// The limits on client SQL of this session's runtime.
    pub(crate) fn limits(&self) -> Limits {
        self.shared.runtime.settings.limits
    }

    /// Run the blocking `f` on the runtime's big-stack threads (parsing client SQL).
    pub(crate) async fn on_sql_thread<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T> {
        self.shared.runtime.stack.run_blocking(f).await
    }

    /// The columns `sql` would return, by planning it (checked against the limits, on the SQL
    /// threads) without running it.
    pub(crate) async fn plan_schema(&self, sql: &str) -> Result<Schema> {
        let session = self.handle();
        let sql = sql.to_owned();
        self.shared
            .runtime
            .stack
            .run(async move {
                let plan = session.checked_plan(&sql).await?;
                Ok(plan.schema().as_arrow().clone())
            })
            .await
    }

    /// Execute one statement of a cascade's `sql_data` cell: its runs (`rvbbit_udf`, `rvbbit_run`) are
    /// children of the calling run, under its caller id, cancelled with it.
    pub(crate) async fn execute_in_run(
        &self,
        sql: &str,
        parent: rvbbit_engine::ChildRuns,
    ) -> Result<QueryResult> {
        let caller_id = parent.caller_id().clone();
        let mut metadata = self.metadata(sql, &caller_id);
        metadata["parent_session_id"] = json!(parent.session_id());
        let stmt = Statement::new(caller_id)
            .with_metadata(metadata)
            .with_parent(parent);
        self.execute_on_sql_threads(sql, stmt).await
    }

    /// The invocation metadata of a statement's runs (spec §6).
    fn metadata(&self, sql: &str, caller_id: &CallerId) -> Value {
        let protocol = self.shared.protocol;
        let hash = hex::encode(Sha256::digest(sql.as_bytes()));
        let shown: String = sql.chars().take(MAX_QUERY_IN_METADATA).collect();
        json!({
            "origin": caller_id.as_str().split('-').next().unwrap_or("sql"),
            "triggered_by": match protocol {
                "postgresql_wire" => "postgres_server",
                "http" => "http_api",
                other => other,
            },
            "invocation_timestamp": rvbbit_core::Timestamp::now(),
            "sql": {"query": shown, "query_hash": &hash[..16], "protocol": protocol},
        })
    }

    async fn execute_statement(&self, sql: &str, stmt: Statement) -> Result<QueryResult> {
        let started = Instant::now();
        let stmt = Arc::new(stmt);
        self.shared.set(Some(stmt.clone()));
        // Dropping this future mid-statement (a CancelRequest, a timeout) cancels the statement's
        // runs; a statement that ends normally leaves them alone.
        let abandoned = stmt.cancel.clone().drop_guard();
        let result = async {
            self.check_text(sql)?;
            if let Some(map) = crate::map::parse(sql)? {
                if map.verb == Verb::Run {
                    return self.execute_run(&stmt, map).await;
                }
                return self.execute_map(&stmt, map).await;
            }
            let df = self.plan_and_check(sql).await?;
            let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
            let batches = df.collect().await.map_err(Error::from_datafusion)?;
            Ok::<_, Error>((schema, batches))
        }
        .await;
        abandoned.disarm();
        self.shared.set(None);
        let c = &stmt.counters;
        let stats = StatementStats {
            runs: c.runs.load(Ordering::Relaxed),
            llm_calls: c.llm_calls.load(Ordering::Relaxed),
            cache_hits: c.cache_hits.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
            skipped: c.skipped.load(Ordering::Relaxed),
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
        let mut notices: Vec<String> = stmt.notes.lock().unwrap_or_else(|p| p.into_inner()).clone();
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
        if stats.skipped > 0 {
            notices.push(format!(
                "budget reached: {} call(s) were not made (NULL in the result column); the statement \
                 spent ${}",
                stats.skipped,
                stats.cost.to_decimal_string()
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
        if stats.runs + stats.cache_hits + stats.errors + stats.skipped == 0 {
            return;
        }
        let Some(writer) = &self.shared.runtime.writer else {
            return;
        };
        let Ok(session) = stmt.caller_id.as_str().parse::<SessionId>() else {
            return;
        };
        if stats.cache_hits > 0 {
            // One event for all of the statement's hits, however many rows they served.
            let mut hit = Event::new(EventKind::CacheHit, session.clone(), 0);
            hit.caller_id = Some(stmt.caller_id.clone());
            hit.cost = Some(MicroUsd::ZERO);
            hit.cost_status = CostStatus::Exact;
            hit.metadata = stmt
                .hits
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .metadata(stats.avoided_cost.micros());
            if let Err(e) = writer.event(hit).await {
                tracing::warn!(error = %e, "cache_hit event not recorded");
            }
        }
        let mut event = Event::new(EventKind::SqlQuery, session, 0);
        event.caller_id = Some(stmt.caller_id.clone());
        event.duration_us = Some(i64::try_from(duration.as_micros()).unwrap_or(i64::MAX));
        event.content = json!({"query": sql});
        event.metadata = json!({
            // Computed once for the statement, with the runs' invocation metadata.
            "query_hash": stmt.metadata["sql"]["query_hash"],
            "protocol": self.shared.protocol,
            "status": if error.is_some() { "error" } else { "completed" },
            "rows_output": rows,
            "runs": stats.runs,
            "llm_calls": stats.llm_calls,
            "cache_hits": stats.cache_hits,
            "errors": stats.errors,
            "skipped": stats.skipped,
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

impl SqlSession {
    /// The `rvbbit.*` settings in force in this session.
    pub(crate) fn rvbbit_options(&self) -> RvbbitOptions {
        self.ctx
            .state()
            .config()
            .options()
            .extensions
            .get::<RvbbitOptions>()
            .cloned()
            .unwrap_or_default()
    }

    /// Plan ordinary SQL ([`SqlSession::checked_plan`]) and make it a DataFrame (DDL runs here).
    pub(crate) async fn plan_and_check(&self, sql: &str) -> Result<datafusion::dataframe::DataFrame> {
        let plan = self.checked_plan(sql).await?;
        self.ctx
            .execute_logical_plan(plan)
            .await
            .map_err(Error::from_datafusion)
    }

    /// The session's SQL dialect (`datafusion.sql_parser.dialect`) and parser recursion limit
    /// (`datafusion.sql_parser.recursion_limit`, capped by the limits).
    fn dialect(&self) -> Result<(Box<dyn Dialect>, usize)> {
        let state = self.ctx.state();
        let options = &state.config().options().sql_parser;
        let dialect = dialect_from_str(options.dialect).ok_or_else(|| Error::Argument {
            message: format!(
                "the SQL dialect `{}` (datafusion.sql_parser.dialect) is not known; use generic or \
                 postgresql",
                options.dialect.as_ref()
            ),
        })?;
        let recursion = self.limits().parser_recursion(options.recursion_limit.get());
        Ok((dialect, recursion))
    }

    /// Refuse a text over `limits.sql_query_bytes` or `limits.sql_statements`, before parsing.
    fn check_text(&self, sql: &str) -> Result<()> {
        let (dialect, recursion) = self.dialect()?;
        self.limits().check_text(sql, dialect.as_ref(), recursion)
    }

    /// Parse one statement, check its depth against the limits, then plan it; in a network door's
    /// session vet the files it names and check the plan against the file rule
    /// ([`Settings::confine_files`]) before anything runs (DataFusion runs DDL while executing the plan).
    async fn checked_plan(&self, sql: &str) -> Result<datafusion::logical_expr::LogicalPlan> {
        let limits = self.limits();
        let mut statements = {
            // The dialect is not `Send`: it is gone before the first await.
            let (dialect, recursion) = self.dialect()?;
            limits.check_text(sql, dialect.as_ref(), recursion)?;
            DFParserBuilder::new(sql)
                .with_dialect(dialect.as_ref())
                .with_recursion_limit(recursion)
                .build()
                .and_then(|mut parser| parser.parse_statements())
                .map_err(|e| match e {
                    DataFusionError::SQL(e, _) if matches!(*e, ParserError::RecursionLimitExceeded) => {
                        limits.parser_too_deep(recursion)
                    }
                    other => Error::from_datafusion(other),
                })?
        };
        // Every statement is checked (and a deep one taken apart) before any is dropped.
        let mut checked = Ok(());
        for statement in statements.iter_mut() {
            if let Err(e) = limits.check_statement(statement) {
                checked = Err(e);
            }
        }
        checked?;
        if statements.len() > 1 {
            return Err(Error::Invalid {
                message: "one statement at a time: this text holds several; send them one by one".into(),
            });
        }
        let Some(mut statement) = statements.pop_front() else {
            return Err(Error::Invalid {
                message: "no SQL statement was provided".into(),
            });
        };
        let sources = &self.shared.runtime.sources;
        if sources.is_confined() {
            sources.vet_statement(&mut statement)?;
        }
        let plan = self
            .ctx
            .state()
            .statement_to_plan(statement)
            .await
            .map_err(Error::from_datafusion)?;
        sources.check_plan(&plan)?;
        Ok(plan)
    }

    /// Execute a parsed `RVBBIT MAP` (natively: the USING rows → concurrent cascade runs → the rows plus a
    /// result column), its `EXPLAIN`, or its `CREATE TABLE … AS` form.
    async fn execute_map(
        &self,
        stmt: &Arc<Statement>,
        map: MapStatement,
    ) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        let limit = map
            .whole_option("limit")?
            .unwrap_or(self.rvbbit_options().map_default_limit);
        let cache = map.flag_option("cache")?.unwrap_or(true);
        let model = map.text_option("model", "a string")?;
        let parallel = match map.whole_option("parallel")? {
            Some(n) => Some(usize::try_from(n).unwrap_or(usize::MAX)),
            None => map.parallel,
        };
        if let Some(n) = parallel {
            let _ = stmt.parallel.set(Arc::new(tokio::sync::Semaphore::new(n)));
        }
        if let Some(d) = map.dollars_option("budget_dollars")? {
            let micros = MicroUsd::from_usd_f64(d)
                .ok_or_else(|| map.bad_option("budget_dollars", "a dollar amount"))?;
            let _ = stmt.budget.set(micros.micros());
        }
        let column_name = "a column name of the USING query, such as 'id'";
        let key = map.text_option("key", column_name)?;
        let dedupe_by = map.text_option("dedupe_by", column_name)?;
        let errors_want = "'null' (the default) or 'column'";
        let error_column = match map.text_option("errors", errors_want)? {
            None => false,
            Some(t) if t.eq_ignore_ascii_case("column") => true,
            Some(t) if t.eq_ignore_ascii_case("null") => false,
            Some(_) => return Err(map.bad_option("errors", errors_want)),
        };
        let infer_schema = map.flag_option("infer_schema")?.unwrap_or(false);
        if infer_schema && !map.typed.is_empty() {
            return Err(Error::Argument {
                message: "MAP has both `AS (col type, ...)` and `WITH (infer_schema = true)`; keep one"
                    .into(),
            });
        }
        let result_column = match &map.alias {
            Some(alias) => alias.clone(),
            None => map
                .text_option("result_column", "a column name such as 'tag'")?
                .unwrap_or_else(|| "result".to_owned()),
        };
        // Typed columns are checked before anything runs.
        let mut typed = Vec::with_capacity(map.typed.len());
        for (name, ty) in &map.typed {
            let target = sql_type(ty).ok_or_else(|| Error::Argument {
                message: format!(
                    "unknown column type `{ty}` for `{name}`; use VARCHAR, TEXT, JSON, BIGINT, INTEGER, DOUBLE or BOOLEAN"
                ),
            })?;
            typed.push((name.clone(), target));
        }
        let runtime = &self.shared.runtime;
        // The cascade path is a literal: a missing or invalid cascade fails the statement before any call.
        let cascade = runtime
            .cascade(stmt, &map.cascade)
            .map_err(|message| Error::Invalid { message })?;
        if infer_schema {
            typed = inferred_columns(&cascade)?;
        }
        // The last cell's `output_schema` makes the (untyped) result column JSON.
        let json_result = cascade.final_schema().is_some();
        let select = if map.distinct {
            "SELECT DISTINCT *"
        } else {
            "SELECT *"
        };
        let input_sql = format!(
            "{select} FROM ({}) AS rvbbit_input LIMIT {}",
            map.using,
            limit + 1
        );
        let df = self.plan_and_check(&input_sql).await?;
        let input_schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let batches = df.collect().await.map_err(Error::from_datafusion)?;
        let mut input = concat_batches(&input_schema, &batches).map_err(|e| Error::Execution {
            message: e.to_string(),
        })?;
        let truncated = input.num_rows() as u64 > limit;
        if truncated {
            input = input.slice(0, usize::try_from(limit).unwrap_or(usize::MAX));
            stmt.notes.lock().unwrap_or_else(|p| p.into_inner()).push(format!(
                "the USING query has more than {limit} rows; only the first {limit} were mapped \
                 (raise it with WITH (limit = n) or SET rvbbit.map_default_limit)"
            ));
        }
        // `key`: rows with the same (non-NULL) value in that column share the first such row's run.
        let key = key.map(|k| column_named(&input_schema, "key", &k)).transpose()?;
        // `dedupe_by`: keep the first row of each value of that column (DISTINCT ON), in input order.
        if let Some(column) = dedupe_by {
            let column = column_named(&input_schema, "dedupe_by", &column)?;
            input = first_row_per_value(&input, &column)?;
        }
        let rows = crate::format::json_rows(std::slice::from_ref(&input))?;
        let mut calls = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut by_key: HashMap<String, usize> = HashMap::new();
        let mut slots = Vec::with_capacity(rows.len());
        for (row_index, row) in rows.into_iter().enumerate() {
            let row_value = key.as_ref().and_then(|k| row.get(k)).filter(|v| !v.is_null());
            let row_key = row_value.map(Value::to_string);
            if let Some(&i) = row_key.as_ref().and_then(|k| by_key.get(k)) {
                slots.push(i);
                continue;
            }
            // Where the run came from, in its session's invocation metadata (spec §6 `source`).
            let mut source = json!({"row_index": row_index});
            if let (Some(k), Some(v)) = (&key, row_value) {
                source["column"] = json!(k);
                source["row_key"] = v.clone();
            }
            let call = runtime
                .run_call(cascade.clone(), row, model.as_deref(), cache)
                .with_source(source);
            let next = calls.len();
            let i = *index.entry(call.key.clone()).or_insert(next);
            if i == next {
                calls.push(call);
            }
            if let Some(k) = row_key {
                by_key.insert(k, i);
            }
            slots.push(i);
        }

        if map.explain {
            let cached = if cache {
                runtime.cached_count(&calls).await
            } else {
                0
            };
            let to_make = calls.len() as u64 - cached.min(calls.len() as u64);
            let history = runtime.cost_history(&cascade).await;
            let lines = [
                format!("RVBBIT MAP '{}' AS {result_column}", map.cascade),
                format!("  input: {input_sql}"),
                format!(
                    "  rows: {}{}",
                    slots.len(),
                    if truncated {
                        format!(" (cut at LIMIT {limit})")
                    } else {
                        String::new()
                    }
                ),
                format!(
                    "  distinct cascade runs: at most {} (cache {}; hits are free)",
                    calls.len(),
                    if cache { "on" } else { "off" }
                ),
                format!(
                    "  cached: {cached} of {} distinct run(s) are in the result cache{}",
                    calls.len(),
                    if cache { "" } else { " (not read: cache = false)" }
                ),
                format!(
                    "  concurrency: {}",
                    parallel.unwrap_or(runtime.settings.concurrency)
                ),
                crate::batch::estimate_line(to_make, history),
                "  EXPLAIN made no LLM call".to_owned(),
            ];
            return crate::batch::plan_lines(&lines);
        }

        let answers = runtime.answer(stmt, calls).await;
        let finals: Vec<Option<Value>> = slots
            .iter()
            .map(|&i| match &answers[i] {
                Answer::Ok(doc) => doc.get("final_output").cloned().filter(|v| !v.is_null()),
                Answer::Failed { .. } => None,
            })
            .collect();
        // `errors = 'column'`: why a row's result is NULL (a failed or skipped run), else NULL.
        let row_errors: Option<StringArray> = error_column.then(|| {
            slots
                .iter()
                .map(|&i| match &answers[i] {
                    Answer::Ok(_) => None,
                    Answer::Failed { message, .. } => Some(message.clone()),
                })
                .collect()
        });
        let mut fields: Vec<Field> = input_schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        let mut columns: Vec<ArrayRef> = input.columns().to_vec();
        if typed.is_empty() {
            let text: StringArray = finals
                .iter()
                .map(|v| {
                    v.as_ref().map(|v| match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                })
                .collect();
            fields.push(if json_result {
                crate::format::json_field(&result_column)
            } else {
                Field::new(&result_column, DataType::Utf8, true)
            });
            columns.push(Arc::new(text));
        } else {
            for (name, target) in typed {
                let text: StringArray = finals
                    .iter()
                    .map(|v| {
                        v.as_ref().and_then(|v| v.get(&name)).and_then(|x| match x {
                            Value::Null => None,
                            Value::String(s) => Some(s.clone()),
                            other => Some(other.to_string()),
                        })
                    })
                    .collect();
                let array = datafusion::arrow::compute::cast_with_options(
                    &text,
                    &target,
                    &datafusion::arrow::compute::CastOptions {
                        safe: true,
                        ..Default::default()
                    },
                )
                .map_err(|e| Error::Execution {
                    message: e.to_string(),
                })?;
                fields.push(Field::new(&name, target, true));
                columns.push(array);
            }
        }
        if let Some(errors) = row_errors {
            fields.push(Field::new(format!("{result_column}_error"), DataType::Utf8, true));
            columns.push(Arc::new(errors));
        }
        let schema = Arc::new(Schema::new(fields));
        let batch = RecordBatch::try_new(schema.clone(), columns).map_err(|e| Error::Execution {
            message: e.to_string(),
        })?;
        let as_table = map.text_option("as_table", "a table name such as 'tagged'")?;
        if let Some(table) = map.create_table.as_ref().or(as_table.as_ref()) {
            let mem = MemTable::try_new(schema.clone(), vec![vec![batch.clone()]]).map_err(|e| {
                Error::Execution {
                    message: e.to_string(),
                }
            })?;
            if map.create_table.is_none() {
                // `as_table` replaces an earlier result of the same name.
                let _ = self.ctx.deregister_table(TableReference::bare(table.clone()));
            }
            self.ctx
                .register_table(TableReference::bare(table.clone()), Arc::new(mem))
                .map_err(Error::from_datafusion)?;
            if map.create_table.is_some() {
                let empty = Arc::new(Schema::empty());
                return Ok((empty, Vec::new()));
            }
        }
        Ok((schema, vec![batch]))
    }
}

/// Characters of a statement's text kept in its runs' invocation metadata.
const MAX_QUERY_IN_METADATA: usize = 4096;

/// The column of `schema` named `name` (exactly, else ignoring case) for MAP option `option`.
fn column_named(schema: &Schema, option: &str, name: &str) -> Result<String> {
    let fields = schema.fields();
    let found = fields
        .iter()
        .find(|f| f.name() == name)
        .or_else(|| fields.iter().find(|f| f.name().eq_ignore_ascii_case(name)));
    match found {
        Some(f) => Ok(f.name().clone()),
        None => {
            let names: Vec<&str> = fields.iter().map(|f| f.name().as_str()).collect();
            Err(Error::Argument {
                message: format!(
                    "MAP option `{option}` names `{name}`, which is not a column of the USING query \
                     (its columns: {})",
                    names.join(", ")
                ),
            })
        }
    }
}

/// The first row of each distinct value of `column` (NULLs count as one value), in input order.
fn first_row_per_value(batch: &RecordBatch, column: &str) -> Result<RecordBatch> {
    let failed = |e: datafusion::arrow::error::ArrowError| Error::Execution {
        message: e.to_string(),
    };
    let values = batch.column_by_name(column).ok_or_else(|| Error::Execution {
        message: format!("column `{column}` disappeared from the USING rows"),
    })?;
    let formatter = datafusion::arrow::util::display::ArrayFormatter::try_new(
        values.as_ref(),
        &datafusion::arrow::util::display::FormatOptions::default(),
    )
    .map_err(failed)?;
    let mut seen = std::collections::HashSet::new();
    let mut keep = Vec::new();
    for row in 0..batch.num_rows() {
        let value = if values.is_null(row) {
            None
        } else {
            Some(formatter.value(row).to_string())
        };
        if seen.insert(value) {
            keep.push(u32::try_from(row).unwrap_or(u32::MAX));
        }
    }
    let indices = datafusion::arrow::array::UInt32Array::from(keep);
    let columns = batch
        .columns()
        .iter()
        .map(|c| datafusion::arrow::compute::take(c.as_ref(), &indices, None))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(failed)?;
    RecordBatch::try_new(batch.schema(), columns).map_err(failed)
}

/// `WITH (infer_schema = true)`: typed result columns from the properties of the last cell's
/// `output_schema` (string → VARCHAR, integer → BIGINT, number → DOUBLE, boolean → BOOLEAN, array and
/// object → JSON text).
fn inferred_columns(cascade: &crate::calls::LoadedCascade) -> Result<Vec<(String, DataType)>> {
    let missing = || Error::Argument {
        message: format!(
            "MAP option `infer_schema` needs an `output_schema` with `properties` on the last cell of \
             cascade `{}`; add one, or name the columns with AS (col type, ...)",
            cascade.cascade_id()
        ),
    };
    let schema = cascade.final_schema().ok_or_else(missing)?;
    let properties = schema
        .get("properties")
        .and_then(Value::as_object)
        .filter(|p| !p.is_empty())
        .ok_or_else(missing)?;
    Ok(properties
        .iter()
        .map(|(name, spec)| {
            let ty = match spec.get("type").and_then(Value::as_str) {
                Some("integer") => DataType::Int64,
                Some("number") => DataType::Float64,
                Some("boolean") => DataType::Boolean,
                _ => DataType::Utf8,
            };
            (name.clone(), ty)
        })
        .collect())
}

fn sql_type(name: &str) -> Option<DataType> {
    match name {
        "VARCHAR" | "TEXT" | "STRING" | "JSON" => Some(DataType::Utf8),
        "BIGINT" | "INTEGER" | "INT" => Some(DataType::Int64),
        "DOUBLE" | "FLOAT" | "REAL" => Some(DataType::Float64),
        "BOOLEAN" | "BOOL" => Some(DataType::Boolean),
        _ => None,
    }
}
