//! The runtime every session of a [`SqlRuntime`](crate::SqlRuntime) shares ([`Runtime`]): the engine,
//! the store, the settings ([`Settings`]), the run permits, the sources of tables, the big-stack SQL
//! threads and the tables shared with batch runs. It is a handle passed explicitly (`Arc<Runtime>`) to
//! whatever needs it; nothing here is process-global.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rvbbit_core::{MicroUsd, SessionStatus};
use rvbbit_engine::Engine;
use rvbbit_store::{Store, WriterHandle};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::batch_tables::BatchTables;
use crate::cascade::{LoadedCascade, load_cascade_text, resolve};
use crate::limits::Limits;
use crate::sources::Sources;
use crate::stack::BigStack;
use crate::statement::Statement;

/// Engine runs in flight per unit of [`Settings::concurrency`]: while `concurrency` runs wait on the
/// provider, as many more set up and finish around them (issue 21: without it, each wave of calls waited
/// for the previous wave's bookkeeping, 1.22x the physical limit).
pub(crate) const RUN_WINDOW: usize = 2;

/// The in-memory cascade behind `rvbbit_udf`: one LLM cell, one turn. Its content hash is part of every
/// `rvbbit_udf` cache key, so editing this prompt misses the cache.
pub(crate) const UDF_CASCADE: &str = r#"cascade_id: sql_udf
description: One rvbbit_udf(instructions, value) call from SQL.
inputs_schema:
  instructions: What to do with the value.
  value: The value of the row.
cells:
  - name: udf
    instructions: |-
      {{ input.instructions }}

      Input: {{ input.value }}

      Reply with the result only: no explanation, no preamble, no markdown.
    rules:
      max_turns: 1
"#;

/// Settings of the SQL door, normally from configuration.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Most LLM requests in flight at once (`provider.max_concurrency`, enforced by the provider
    /// client). At least 1. The runtime keeps up to twice as many engine runs started,
    /// across all sessions, so a provider slot that frees finds the next request already prepared
    /// instead of waiting for a run to set up (no gap between waves of calls).
    pub concurrency: usize,
    /// The model used when a call names none (`default_model`); part of every cache key.
    pub default_model: String,
    /// The embedding model of `SIMILAR_TO`, `rvbbit_embed` and `VECTOR_SEARCH` when neither the call nor
    /// `rvbbit.embed_model` names one (`default_embed_model`).
    pub embed_model: Option<String>,
    /// Where relative cascade paths of `rvbbit_run` are resolved (normally the working directory).
    pub base_dir: PathBuf,
    /// More directories cascades may live in (`roots`); paths outside `base_dir` and these are refused.
    pub roots: Vec<PathBuf>,
    /// Tables every session sees (`[sql.tables]`): name → CSV, Parquet or JSON file, folder or URL
    /// (relative paths start at `base_dir`).
    pub tables: BTreeMap<String, String>,
    /// The network doors' file rule (`rvbbit serve`, `rvbbit serve sql`): files that statements name
    /// (`read_*`, `CREATE EXTERNAL TABLE`) must lie under `base_dir` or a root after following symbolic
    /// links; remote URLs and writes to files (`COPY … TO`, `INSERT INTO` a file table) are refused with
    /// RVB-Q005. `[sql.tables]` is the operator's and stays unrestricted. Off for `rvbbit sql`.
    pub confine_files: bool,
    /// Limits on client SQL (`[limits]` of `rvbbit.toml`): text size, statements per request,
    /// expression depth, pgwire connections. Over a limit: RVB-Q006.
    pub limits: Limits,
    /// The job queue distributed statements enqueue their rows on (`[queue]`); `None`: distributed
    /// statements fail with RVB-S030.
    pub queue: Option<crate::map::QueueSettings>,
}

impl Settings {
    /// Defaults: concurrency 32, the built-in default model, the working directory, no extra roots.
    pub fn new(base_dir: PathBuf) -> Self {
        Settings {
            concurrency: 32,
            default_model: rvbbit_llm::DEFAULT_MODEL.to_owned(),
            embed_model: None,
            base_dir,
            roots: Vec::new(),
            tables: BTreeMap::new(),
            confine_files: false,
            limits: Limits::default(),
            queue: None,
        }
    }
}

/// What earlier runs of a cascade cost (for `EXPLAIN`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CostHistory {
    /// Completed earlier runs of the same cascade content found.
    pub(crate) runs: u64,
    /// Their average cost.
    pub(crate) average: MicroUsd,
}

/// What the runtime shares between sessions.
pub(crate) struct Runtime {
    pub(crate) engine: Engine,
    pub(crate) store: Option<Arc<dyn Store>>,
    /// Where `all_data` reads events when there is an events sink (`[store.events] url`); the store is
    /// the fallback when the sink fails.
    pub(crate) events: Option<Arc<dyn rvbbit_store::EventSink>>,
    pub(crate) writer: Option<WriterHandle>,
    pub(crate) settings: Settings,
    /// Engine runs in flight across all sessions (see [`RUN_WINDOW`]).
    pub(crate) permits: Arc<Semaphore>,
    /// The in-memory cascade behind `rvbbit_udf`.
    pub(crate) udf: Arc<LoadedCascade>,
    /// The tables batch runs share with their `sql_data` cells.
    pub(crate) batch_tables: BatchTables,
    /// Files, folders and object stores as tables.
    pub(crate) sources: Arc<Sources>,
    /// Every cascade run in flight, so an interrupted process can wait for them to record how they
    /// ended (`SqlRuntime::wait_for_runs`).
    pub(crate) tasks: tokio_util::task::TaskTracker,
    /// The big-stack threads statements parse, plan and run on.
    pub(crate) stack: BigStack,
    /// The job queue of distributed statements, opened by the first one.
    pub(crate) queue: tokio::sync::OnceCell<Arc<dyn rvbbit_store::Queue>>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// A runtime over `engine` and `store`; errors are messages (the built-in cascade is invalid, a
    /// configured table cannot be opened, the SQL threads cannot start).
    pub(crate) fn new(
        engine: Engine,
        store: Option<Arc<dyn Store>>,
        writer: Option<WriterHandle>,
        settings: Settings,
        batch_tables: BatchTables,
    ) -> Result<Runtime, String> {
        let udf = load_cascade_text(Path::new("<rvbbit_udf>"), UDF_CASCADE, &engine)?;
        let mut sources = Sources::new(settings.base_dir.clone(), settings.tables.clone())?;
        if settings.confine_files {
            let mut allowed = vec![settings.base_dir.clone()];
            allowed.extend(settings.roots.iter().cloned());
            sources = sources.confined_to(&allowed);
        }
        Ok(Runtime {
            sources: Arc::new(sources),
            permits: Arc::new(Semaphore::new(
                settings.concurrency.max(1).saturating_mul(RUN_WINDOW),
            )),
            engine,
            store,
            events: None,
            writer,
            settings,
            udf: Arc::new(udf),
            batch_tables,
            tasks: tokio_util::task::TaskTracker::new(),
            stack: BigStack::new()?,
            queue: tokio::sync::OnceCell::new(),
        })
    }

    /// The average cost of earlier completed runs of `cascade` (same content hash) in the store, from the
    /// newest 200 sessions of its cascade id; `None` without a store or history. Reads only.
    pub(crate) async fn cost_history(&self, cascade: &LoadedCascade) -> Option<CostHistory> {
        let store = self.store.as_ref()?;
        if let Some(writer) = &self.writer {
            // A failed flush (logged by the writer) only leaves the newest events unread; the read goes on.
            let _ = writer.flush().await;
        }
        let sessions = store
            .sessions(&rvbbit_store::SessionFilter {
                cascade_id: Some(cascade.cascade_id().to_owned()),
                status: Some(SessionStatus::Completed),
                limit: Some(200),
                ..rvbbit_store::SessionFilter::default()
            })
            .await
            .ok()?;
        let costs: Vec<i64> = sessions
            .iter()
            .filter(|s| {
                s.session.cascade_hash.as_deref() == Some(cascade.hash.as_str())
                    || s.session
                        .cascade_text
                        .as_ref()
                        .is_some_and(|t| hex::encode(Sha256::digest(t.as_bytes())) == cascade.hash)
            })
            .map(|s| s.cost.micros())
            .collect();
        if costs.is_empty() {
            return None;
        }
        let runs = costs.len() as u64;
        let total: i64 = costs.iter().sum();
        Some(CostHistory {
            runs,
            average: MicroUsd::from_micros(total / costs.len() as i64),
        })
    }

    /// Load (once per statement) the cascade named by `reference`, resolved inside the base directory or
    /// a configured root. Errors are messages for the failure document.
    pub(crate) fn cascade(&self, stmt: &Statement, reference: &str) -> Result<Arc<LoadedCascade>, String> {
        let mut cascades = stmt.cascades.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(found) = cascades.get(reference) {
            return found.clone();
        }
        // Messages name the cascade as the caller wrote it, never the resolved path on this machine.
        let loaded = resolve(&self.settings.base_dir, &self.settings.roots, reference).and_then(|path| {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("Cascade {reference} cannot be read: {}", e.kind()))?;
            load_cascade_text(&path, &text, &self.engine)
                .map(Arc::new)
                .map_err(|e| e.replace(&path.display().to_string(), reference))
        });
        cascades.insert(reference.to_owned(), loaded.clone());
        loaded
    }
}
