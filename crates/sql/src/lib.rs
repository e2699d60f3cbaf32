//! rvbbit's SQL door: a DataFusion session with rvbbit's LLM functions.
//!
//! [`SqlRuntime`] is the session factory: it holds the engine (provider, tools, event writer), the store
//! (the persistent result cache) and the concurrency limit, and makes [`SqlSession`]s. A session is a
//! DataFusion `SessionContext` with:
//!
//! - `rvbbit_udf(instructions, value [, model [, options]])` (aliases `rvbbit`, `lars_udf`, `lars`,
//!   `windlass_udf`): one LLM call per distinct `(instructions, value, model)`, run through the engine as
//!   a one-cell cascade built in memory; returns text, or NULL when the call failed.
//! - `rvbbit_run(cascade, inputs_json [, field])` (aliases `rvbbit_cascade_udf`, `lars_run`,
//!   `lars_cascade_udf`, `windlass_cascade_udf`): runs a cascade file; returns the result document as
//!   JSON text, or `final_output.<field>` / `state.<field>`.
//! - the `sql_data` tool for cascades ([`register_tools`]): a query over earlier cells' tables `_<cell>`;
//!   and the read-only SQL tools LARS cascades use (`sql_query`, `sql_search`, `list_sql_connections`,
//!   `smart_sql_run`) over the configured `[sql.tables]` ([`register_tools_with`]).
//! - the magic tables `sql_query_log` (one row per statement that used rvbbit functions) and `all_data`
//!   (one row per event), read from the store.
//! - the settings `rvbbit.udf_errors` (`null`, `raise`, `text`) and `rvbbit.cache` (`on`, `off`).
//!
//! Both functions are async and batched (`calls/`): per batch, rows with a NULL argument give NULL,
//! duplicate calls are made once, cache hits (one read-only store read per batch) are served without a
//! call and counted for the statement's one `cache_hit` summary event, and the rest run concurrently under [`Settings::concurrency`]. Each
//! statement ([`SqlSession::execute`]) gets a fresh caller id `sql-<woodland>` that every session it
//! starts carries, and ends with a `sql_query` event summarising it.
//!
//! This crate is the only one that depends on DataFusion; it owns no LLM logic (it calls the engine).
//!
//! ```no_run
//! # async fn demo() -> rvbbit_sql::Result<()> {
//! use rvbbit_engine::{Engine, tools::Registry};
//! use rvbbit_sql::{Settings, SqlRuntime};
//!
//! let mut registry = Registry::builtin();
//! let tables = rvbbit_sql::register_tools(&mut registry);
//! let runtime = SqlRuntime::new(Engine::new(registry), None, None, Settings::new(".".into()), tables)?;
//! let session = runtime.session();
//! let result = session.execute("SELECT rvbbit_udf('Translate to French', 'cat') AS fr").await?;
//! println!("{} row(s), {} call(s)", result.row_count(), result.stats.runs);
//! # Ok(()) }
//! ```

mod async_join;
mod batch_args;
mod batch_tables;
mod calls;
mod cascade;
mod compat;
mod error;
mod explain;
mod keys;
mod limits;
mod map;
mod options;
pub mod pgwire;
mod plan;
mod result;
mod run_batch;
mod runtime;
mod semantic;
mod session;
mod shared;
mod sources;
mod spending;
mod stack;
mod statement;
mod statements;
mod tables;
mod tool;
mod tools;
mod udf;
mod with_clause;

pub use batch_tables::BatchTables;
pub use datafusion;
pub use error::{Error, Result};
pub use limits::Limits;
pub use map::QueueSettings;
pub use options::{RvbbitOptions, UdfErrors};
pub use result::{QueryResult, StatementStats};
pub use runtime::Settings;
pub use semantic::{CaseResult, CaseStatus, check_expectation};
pub use session::{SqlRuntime, SqlSession};
pub use tool::SqlData;
pub use tools::{ListSqlConnections, SmartSqlRun, SqlQuery, SqlSearch, register_tools, register_tools_with};
pub use udf::{RUN_NAMES, UDF_NAMES};
