//! The session factory ([`SqlRuntime`]) and SQL sessions ([`SqlSession`]): DataFusion contexts with
//! rvbbit's functions and settings, executing one statement at a time under a fresh `sql-…` caller id.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::TableProvider;
use datafusion::logical_expr::async_udf::AsyncScalarUDF;
use datafusion::prelude::{SessionConfig, SessionContext};
use rvbbit_core::{CallerId, CostStatus, Event, EventKind, MicroUsd, Origin, SessionId};
use rvbbit_engine::Engine;
use rvbbit_store::{Store, WriterHandle};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::batch_tables::BatchTables;
use crate::error::{Error, Result};
use crate::limits::Limits;
use crate::map::Verb;
use crate::options::RvbbitOptions;
use crate::plan::Planner;
use crate::result::{QueryResult, StatementStats};
use crate::run_batch::{BATCH_NAMES, RunBatch};
use crate::runtime::{Runtime, Settings};
use crate::semantic::{Builtins, Callables, Dimensions, Operators, Registry, Stages};
use crate::shared::Shared;
use crate::sources::{READ_FUNCTIONS, ReadFunction, SessionSchema};
use crate::statement::Statement;
use crate::tables::{AllData, Checkpoints, Functions, Served, SessionView, Sessions, Signals, SqlQueryLog};
use crate::udf::{Kind, RUN_NAMES, RvbbitFunction, UDF_NAMES};

/// Builds SQL sessions that share one engine, store, result cache and concurrency limit.
#[derive(Clone, Debug)]
pub struct SqlRuntime {
    runtime: Arc<Runtime>,
    /// The built-in semantic SQL functions, loaded once.
    builtins: Arc<Builtins>,
}

impl SqlRuntime {
    /// A runtime running calls through `engine` (with its provider, writer and default model), caching
    /// results in `store` (no persistent cache without one) and recording cache hits and statement
    /// summaries through `writer`.
    ///
    /// Errors: [`Error::Execution`] if the built-in `rvbbit_udf` cascade or a built-in operator file does
    /// not validate (a bug).
    pub fn new(
        engine: Engine,
        store: Option<Arc<dyn Store>>,
        writer: Option<WriterHandle>,
        settings: Settings,
        batch_tables: BatchTables,
    ) -> Result<SqlRuntime> {
        let runtime = Runtime::new(engine, store, writer, settings, batch_tables)
            .map_err(|message| Error::Execution { message })?;
        let builtins = Builtins::load(&runtime.engine).map_err(|message| Error::Execution { message })?;
        Ok(SqlRuntime {
            runtime: Arc::new(runtime),
            builtins: Arc::new(builtins),
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
    /// The semantic functions of the working directory: the built-ins, then the `sql_function` files
    /// under `cascades/` (bounded by the limits).
    fn registry(&self) -> Registry {
        let runtime = &self.runtime;
        Registry::load(
            &self.builtins,
            &runtime.settings.base_dir,
            &runtime.settings.limits,
            &runtime.engine,
        )
    }

    /// Run the `test_cases` of every semantic function of the working directory (built-ins, then the
    /// files under `cascades/`), each case's `sql` in one fresh session, its first value checked against
    /// `expect` (`rvbbit sql --test-functions`).
    pub async fn test_functions(&self) -> Vec<crate::semantic::CaseResult> {
        let registry = self.registry();
        let session = self.session();
        let mut out = Vec::new();
        for case in crate::semantic::test_cases(&registry.functions) {
            let mut result = case.result;
            if let Some(sql) = &case.sql {
                match session.execute(sql).await {
                    Ok(r) => {
                        result.actual = r.first_value();
                        match crate::semantic::check_expectation(&case.expect, result.actual.as_deref()) {
                            Ok(()) => result.status = crate::semantic::CaseStatus::Passed,
                            Err(why) => {
                                result.status = crate::semantic::CaseStatus::Failed;
                                result.detail = why;
                            }
                        }
                    }
                    Err(e) => {
                        result.status = crate::semantic::CaseStatus::Failed;
                        result.detail = format!("[{}] {e}", e.code().code);
                    }
                }
            }
            out.push(result);
        }
        out
    }

    /// A new session whose statements are recorded as `cli`.
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
        ctx.add_optimizer_rule(Arc::new(crate::async_join::AsyncOutOfJoins));
        // The default schema: the session's own tables, then the configured `[sql.tables]`.
        let schema = Arc::new(SessionSchema::new(self.runtime.sources.clone()));
        if let Some(catalog) = ctx.catalog("datafusion") {
            // Replaces the fresh context's empty `public` schema; the old one is not needed.
            let _ = catalog.register_schema("public", schema.clone());
        }
        let shared = Arc::new(Shared::new(self.runtime.clone(), origin, protocol, schema));
        for (kind, names) in [(Kind::Udf, UDF_NAMES), (Kind::Run, RUN_NAMES)] {
            for name in names {
                let f = RvbbitFunction::new(kind, name, shared.clone());
                ctx.register_udf(AsyncScalarUDF::new(Arc::new(f)).into_scalar_udf());
            }
        }
        for name in BATCH_NAMES {
            let f = RunBatch::new(name, shared.clone());
            ctx.register_udf(AsyncScalarUDF::new(Arc::new(f)).into_scalar_udf());
        }
        crate::compat::register(&ctx);
        for (name, format) in READ_FUNCTIONS {
            ctx.register_udtf(
                name,
                Arc::new(ReadFunction::new(name, *format, self.runtime.sources.clone())),
            );
        }
        let (operators, dimensions, stages, callables) = self.semantic_functions(&ctx, &shared);
        // Magic tables over the store, each served by the one generic provider.
        let runtime = &self.runtime;
        let magic: [(&str, Arc<dyn TableProvider>); 6] = [
            (
                "sql_query_log",
                Arc::new(Served(SqlQueryLog::new(runtime.clone()))),
            ),
            ("all_data", Arc::new(Served(AllData::new(runtime.clone())))),
            (
                "sessions",
                Arc::new(Served(Sessions::new(runtime.clone(), SessionView::State))),
            ),
            (
                "cascade_runs",
                Arc::new(Served(Sessions::new(runtime.clone(), SessionView::Runs))),
            ),
            ("checkpoints", Arc::new(Served(Checkpoints::new(runtime.clone())))),
            ("signals", Arc::new(Served(Signals::new(runtime.clone())))),
        ];
        for (name, table) in magic {
            // A fresh name in a fresh context: registering cannot fail, and there is no earlier
            // table to return.
            let _ = ctx.register_table(name, table);
        }
        SqlSession {
            ctx,
            shared,
            operators,
            dimensions,
            stages,
            callables,
        }
    }

    /// Load the session's semantic SQL functions (built-ins, then `cascades/` of the working
    /// directory), register them and `rvbbit_functions`, and keep the loading warnings for the first
    /// statement. Returns the operator table of the session's dialect, its DIMENSION functions and its
    /// pipeline stages.
    fn semantic_functions(
        &self,
        ctx: &SessionContext,
        shared: &Arc<Shared>,
    ) -> (Arc<Operators>, Arc<Dimensions>, Arc<Stages>, Arc<Callables>) {
        let registry = self.registry();
        let mut warnings = registry.warnings.clone();
        warnings.extend(crate::semantic::register(ctx, &registry, shared));
        let stages = Arc::new(Stages::of(&registry.functions, &mut warnings));
        for warning in &warnings {
            tracing::warn!(warning = %warning, "Semantic SQL function not loaded");
        }
        shared.add_notes(warnings);
        let table = Served(Functions::new(registry.functions.clone()));
        // A fresh name in a fresh context: registering cannot fail, and there is no earlier table.
        let _ = ctx.register_table("rvbbit_functions", Arc::new(table));
        let dimensions = Arc::new(Dimensions::of(&registry.functions));
        let callables = Arc::new(Callables::new(&registry, shared));
        (registry.operators, dimensions, stages, callables)
    }
}

/// One SQL session (a connection, a CLI invocation): own tables and settings, one statement at a time.
pub struct SqlSession {
    ctx: SessionContext,
    shared: Arc<Shared>,
    /// The semantic operators the session's dialect parses.
    operators: Arc<Operators>,
    /// The DIMENSION functions of the session.
    dimensions: Arc<Dimensions>,
    /// The pipeline stages (`… THEN FILTER 'x'`).
    stages: Arc<Stages>,
    /// The semantic functions by name (`-- @` annotations, `pg_proc`).
    callables: Arc<Callables>,
}

impl std::fmt::Debug for SqlSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlSession")
            .field("session_id", &self.ctx.session_id())
            .finish_non_exhaustive()
    }
}

impl SqlSession {
    /// The DataFusion context (register tables, inspect the catalog).
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// The session's planner (context, settings, limits, file rule).
    pub(crate) fn planner(&self) -> Planner<'_> {
        Planner {
            ctx: &self.ctx,
            shared: &self.shared,
            operators: &self.operators,
            dimensions: &self.dimensions,
            stages: &self.stages,
            callables: &self.callables,
        }
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
            operators: self.operators.clone(),
            dimensions: self.dimensions.clone(),
            stages: self.stages.clone(),
            callables: self.callables.clone(),
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

    /// The semantic functions of this session (`pg_proc` lists them).
    pub(crate) fn semantic_functions(&self) -> &[Arc<crate::semantic::Definition>] {
        &self.callables.functions
    }

    /// The semantic operators of this session (the wire parses statements with them too).
    pub(crate) fn operators(&self) -> Arc<Operators> {
        self.operators.clone()
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
        self.with_plan(sql, |plan| Ok(plan.schema().as_arrow().clone()))
            .await
    }

    /// The types DataFusion infers for the `$n` placeholders of `sql` (by their id, `$1`; None where
    /// the context implies none), by planning it like [`Self::plan_schema`].
    pub(crate) async fn plan_parameter_types(&self, sql: &str) -> Result<HashMap<String, Option<DataType>>> {
        self.with_plan(sql, |plan| {
            plan.get_parameter_types().map_err(Error::from_datafusion)
        })
        .await
    }

    /// `read` of the plan of `sql` (checked against the limits, planned on the SQL threads, not run).
    async fn with_plan<T: Send + 'static>(
        &self,
        sql: &str,
        read: impl FnOnce(&datafusion::logical_expr::LogicalPlan) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let session = self.handle();
        let sql = sql.to_owned();
        self.shared
            .runtime
            .stack
            .run(async move { read(&session.planner().checked_plan(&sql).await?) })
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
        let stmt = Arc::new(stmt.with_cache_writes_behind());
        self.shared.set(Some(stmt.clone()));
        // Dropping this future mid-statement (a CancelRequest, a timeout) cancels the statement's
        // runs; a statement that ends normally leaves them alone.
        let abandoned = stmt.cancel.clone().drop_guard();
        let result = async {
            let planner = self.planner();
            planner.check_text(sql)?;
            if let Some(map) = crate::map::parse(sql)? {
                if map.verb == Verb::Run {
                    return crate::run_batch::execute_run(&planner, &stmt, map).await;
                }
                return crate::map::execute_map(&planner, &stmt, map).await;
            }
            // The statement's own `WITH (…)` options, taken off its end before stages are split.
            let (sql, with) = crate::with_clause::split(sql)?;
            if let Some(with) = with {
                stmt.set_options(with);
            }
            let desugared = crate::semantic::desugar(&sql)?;
            let sql = desugared.as_deref().unwrap_or(&sql);
            if let Some(pipeline) = crate::semantic::split_pipeline(sql, planner.stages)? {
                return crate::semantic::run_pipeline(&planner, &stmt, pipeline).await;
            }
            let df = planner.plan_and_check(sql).await?;
            let planned = Instant::now();
            let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
            let mut batches = df.collect().await.map_err(Error::from_datafusion)?;
            tracing::debug!(
                target: "rvbbit::timings",
                plan_ms = format!("{:.2}", (planned - started).as_secs_f64() * 1000.0),
                execute_ms = format!("{:.2}", planned.elapsed().as_secs_f64() * 1000.0),
                "SQL statement planned and executed"
            );
            if let Some(query) = crate::explain::explained_query(sql) {
                let lines = crate::explain::estimate_lines(&planner, query, &stmt).await;
                if !lines.is_empty() {
                    batches.push(crate::explain::estimate_batch(&schema, &lines)?);
                }
            }
            Ok::<_, Error>((schema, batches))
        }
        .await;
        stmt.cache_writes_done().await;
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
        let mut notices = self.shared.take_notes();
        notices.extend(
            stmt.notes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .cloned(),
        );
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
        if stats.runs + stats.llm_calls + stats.cache_hits + stats.errors + stats.skipped == 0 {
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
            "decided_by": stmt.decided(),
            "annotations": stmt.annotations(),
            "options": stmt.options().map(crate::with_clause::WithOptions::describe),
        });
        if let Some(e) = error {
            event.error = Some(json!({"code": e.code().code, "message": e.to_string()}));
        }
        if let Err(e) = writer.event(event).await {
            tracing::warn!(error = %e, "sql_query event not recorded");
        }
    }
}

/// Characters of a statement's text kept in its runs' invocation metadata.
const MAX_QUERY_IN_METADATA: usize = 4096;
