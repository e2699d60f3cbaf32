//! How rvbbit function calls run: per statement, distinct calls are served from the statement's memo,
//! then from the persistent result cache (one batched store read), and the rest run through the engine
//! concurrently, bounded by the provider's concurrency limit. Every run is a session under the statement's
//! caller id. Cache hits write nothing per hit: the statement counts them ([`HitSummary`]) and
//! records one `cache_hit` summary event when it ends (count, avoided cost, keys by digest and sample).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rvbbit_cascade::validate::{Options, validate_loaded};
use rvbbit_cascade::{Catalog, Severity, load_str};
use rvbbit_core::{CallerId, MicroUsd, SessionStatus, Timestamp};
use rvbbit_engine::{CancellationToken, Engine, Outcome, RunRequest, Sampling};
use rvbbit_store::{Store, WriterHandle};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::{OnceCell, Semaphore};

/// Version of the cache value layout and of the `rvbbit_udf` prompt; bump to invalidate old entries.
const CACHE_LAYOUT: u32 = 1;

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
    pub limits: crate::limits::Limits,
}

impl Settings {
    /// Defaults: concurrency 32, the built-in default model, the working directory, no extra roots.
    pub fn new(base_dir: PathBuf) -> Self {
        Settings {
            concurrency: 32,
            default_model: rvbbit_llm::DEFAULT_MODEL.to_owned(),
            base_dir,
            roots: Vec::new(),
            tables: BTreeMap::new(),
            confine_files: false,
            limits: crate::limits::Limits::default(),
        }
    }
}

/// A cascade ready to run from SQL: its run request template and content hash.
#[derive(Debug)]
pub(crate) struct LoadedCascade {
    template: RunRequest,
    /// SHA-256 of the file text.
    pub(crate) hash: String,
}

impl LoadedCascade {
    /// The cascade's id.
    pub(crate) fn cascade_id(&self) -> &str {
        &self.template.cascade.cascade_id
    }

    /// The last cell's `output_schema`: the shape of the cascade's final output, when it declares one.
    pub(crate) fn final_schema(&self) -> Option<&Value> {
        self.template
            .cascade
            .cells
            .last()
            .and_then(|c| c.output_schema.as_ref())
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
    permits: Arc<Semaphore>,
    udf: Arc<LoadedCascade>,
    /// Files, folders and object stores as tables.
    pub(crate) sources: Arc<crate::sources::Sources>,
    /// Every cascade run in flight, so an interrupted process can wait for them to record how they
    /// ended ([`crate::SqlRuntime::wait_for_runs`]).
    pub(crate) tasks: tokio_util::task::TaskTracker,
    /// The big-stack threads statements parse, plan and run on.
    pub(crate) stack: crate::stack::BigStack,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// The answer to one distinct call.
#[derive(Clone, Debug)]
pub(crate) enum Answer {
    /// The value (text for `rvbbit_udf`, the result document for `rvbbit_run`).
    Ok(Value),
    /// The call failed: a message with the error code, and for `rvbbit_run` the failure document.
    Failed { message: String, document: Value },
}

/// One distinct call to make.
#[derive(Debug)]
pub(crate) struct Call {
    /// The cache key (SHA-256 hex).
    pub(crate) key: String,
    /// Read and fill the persistent cache.
    pub(crate) cache: bool,
    /// What to run.
    pub(crate) kind: CallKind,
    /// Where the call came from (a MAP row: `{row_index, column, row_key}`), recorded as `source` in
    /// its run's invocation metadata.
    pub(crate) source: Option<Value>,
}

impl Call {
    /// Record where the call came from.
    pub(crate) fn with_source(mut self, source: Value) -> Call {
        self.source = Some(source);
        self
    }
}

/// What a call runs.
#[derive(Debug)]
pub(crate) enum CallKind {
    /// `rvbbit_udf`: the in-memory one-cell cascade.
    Udf {
        input: Value,
        model: Option<String>,
        sampling: Sampling,
    },
    /// `rvbbit_run`: a cascade file.
    Run {
        cascade: Arc<LoadedCascade>,
        input: Value,
        model: Option<String>,
    },
    /// `RVBBIT RUN` / `rvbbit_run_batch`: a cascade file run once over a table, which its `sql_data`
    /// cells see under `name` (session `batch-…`, never cached).
    Batch {
        cascade: Arc<LoadedCascade>,
        input: Value,
        model: Option<String>,
        name: String,
        table: Arc<dyn datafusion::catalog::TableProvider>,
    },
}

/// Counters of one statement.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) runs: AtomicU64,
    pub(crate) llm_calls: AtomicU64,
    pub(crate) cache_hits: AtomicU64,
    pub(crate) errors: AtomicU64,
    /// Calls not made because the statement's budget was spent.
    pub(crate) skipped: AtomicU64,
    pub(crate) cost_micros: AtomicI64,
    pub(crate) avoided_micros: AtomicI64,
}

/// How many keys a `cache_hit` summary event names in full (the rest by the digest).
pub(crate) const HIT_KEY_SAMPLE: usize = 8;

/// The cache hits of one statement, recorded as one `cache_hit` event when it ends: how many per
/// function, and the keys by reference (a SHA-256 over every hit key in the order served, plus the first
/// [`HIT_KEY_SAMPLE`] keys), so a statement of 100,000 hits writes one small event.
#[derive(Default)]
pub(crate) struct HitSummary {
    /// Hits of `rvbbit_udf`, `rvbbit_run` and `rvbbit_run_batch`.
    pub(crate) by_function: [u64; 3],
    /// SHA-256 over the hit keys, each followed by a newline.
    digest: Sha256,
    /// The first keys served.
    pub(crate) sample: Vec<String>,
}

impl std::fmt::Debug for HitSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HitSummary")
            .field("by_function", &self.by_function)
            .field("sample", &self.sample)
            .finish_non_exhaustive()
    }
}

impl HitSummary {
    fn add(&mut self, call: &Call) {
        let i = match call.kind {
            CallKind::Udf { .. } => 0,
            CallKind::Run { .. } => 1,
            CallKind::Batch { .. } => 2,
        };
        self.by_function[i] += 1;
        self.digest.update(call.key.as_bytes());
        self.digest.update(b"\n");
        if self.sample.len() < HIT_KEY_SAMPLE {
            self.sample.push(call.key.clone());
        }
    }

    /// The hits counted.
    pub(crate) fn count(&self) -> u64 {
        self.by_function.iter().sum()
    }

    /// The metadata of the summary event: `count`, `avoided_cost_micro_usd`, `functions` (hits per
    /// function name) and `keys` (`sha256` over every key, `sample` of the first ones).
    pub(crate) fn metadata(&self, avoided_micros: i64) -> Value {
        let mut functions = Map::new();
        for (name, n) in ["rvbbit_udf", "rvbbit_run", "rvbbit_run_batch"]
            .iter()
            .zip(self.by_function)
        {
            if n > 0 {
                functions.insert((*name).to_owned(), json!(n));
            }
        }
        json!({
            "summary": true,
            "count": self.count(),
            "avoided_cost_micro_usd": avoided_micros,
            "functions": functions,
            "keys": {
                "sha256": hex::encode(self.digest.clone().finalize()),
                "sample": self.sample,
            },
        })
    }
}

/// One SQL statement: its caller id, counters, memo of answers and loaded cascades.
#[derive(Debug)]
pub(crate) struct Statement {
    pub(crate) caller_id: CallerId,
    pub(crate) counters: Counters,
    memo: Mutex<HashMap<String, Arc<OnceCell<Answer>>>>,
    /// Final answers by argument tuple (see `udf::args_key`): later batches skip the cache key.
    answered: Mutex<HashMap<String, Answer>>,
    cascades: Mutex<HashMap<String, Result<Arc<LoadedCascade>, String>>>,
    pub(crate) first_error: Mutex<Option<String>>,
    /// The statement's cache hits, for its one `cache_hit` event.
    pub(crate) hits: Mutex<HitSummary>,
    /// `PARALLEL n` of a MAP statement: at most n of its calls at once (below the runtime's limit).
    pub(crate) parallel: std::sync::OnceLock<Arc<Semaphore>>,
    /// `budget_dollars` of a MAP statement, in micro-dollars: no new call starts once the statement's
    /// committed cost reached it.
    pub(crate) budget: std::sync::OnceLock<i64>,
    /// Messages for the user besides failures (a MAP input cut at its LIMIT).
    pub(crate) notes: Mutex<Vec<String>>,
    /// Cancelled when the statement is abandoned (its future dropped, as on a CancelRequest): its
    /// runs stop and are recorded as `cancelled`.
    pub(crate) cancel: CancellationToken,
    /// The invocation metadata every run of the statement records (spec §6: origin, trigger, query).
    pub(crate) metadata: Value,
    /// In a cascade's `sql_data` cell: the calling run, whose children the statement's runs are.
    pub(crate) parent: Option<rvbbit_engine::ChildRuns>,
}

impl Statement {
    pub(crate) fn new(caller_id: CallerId) -> Self {
        Statement {
            caller_id,
            counters: Counters::default(),
            memo: Mutex::new(HashMap::new()),
            answered: Mutex::new(HashMap::new()),
            cascades: Mutex::new(HashMap::new()),
            first_error: Mutex::new(None),
            hits: Mutex::new(HitSummary::default()),
            parallel: std::sync::OnceLock::new(),
            budget: std::sync::OnceLock::new(),
            notes: Mutex::new(Vec::new()),
            cancel: CancellationToken::new(),
            metadata: Value::Object(serde_json::Map::new()),
            parent: None,
        }
    }

    /// Make the statement's runs children of the run calling `sql_data`.
    pub(crate) fn with_parent(mut self, parent: rvbbit_engine::ChildRuns) -> Statement {
        self.cancel = parent.cancel_token();
        self.parent = Some(parent);
        self
    }

    /// Set the invocation metadata of the statement's runs.
    pub(crate) fn with_metadata(mut self, metadata: Value) -> Statement {
        self.metadata = metadata;
        self
    }

    /// The memo cells of `calls` (one lock for the whole batch).
    fn cells(&self, calls: &[Call]) -> Vec<Arc<OnceCell<Answer>>> {
        let mut memo = self.memo.lock().unwrap_or_else(|p| p.into_inner());
        calls
            .iter()
            .map(|c| match memo.get(&c.key) {
                Some(cell) => cell.clone(),
                None => {
                    let cell = Arc::new(OnceCell::new());
                    memo.insert(c.key.clone(), cell.clone());
                    cell
                }
            })
            .collect()
    }

    /// The answer an earlier batch of this statement got for the same arguments.
    pub(crate) fn known_answer(&self, args: &str) -> Option<Answer> {
        let answered = self.answered.lock().unwrap_or_else(|p| p.into_inner());
        answered.get(args).cloned()
    }

    /// Remember a batch's answers by their arguments for the statement's later batches.
    pub(crate) fn remember_answers(&self, answers: impl IntoIterator<Item = (String, Answer)>) {
        let mut answered = self.answered.lock().unwrap_or_else(|p| p.into_inner());
        answered.extend(answers);
    }

    /// Count a failed call and keep the statement's first error for its NOTICE.
    pub(crate) fn note_error(&self, message: &str) {
        self.counters.errors.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_error.lock().unwrap_or_else(|p| p.into_inner());
        if first.is_none() {
            *first = Some(message.to_owned());
        }
    }
}

impl Runtime {
    pub(crate) fn new(
        engine: Engine,
        store: Option<Arc<dyn Store>>,
        writer: Option<WriterHandle>,
        settings: Settings,
    ) -> Result<Runtime, String> {
        let udf = load_cascade_text(Path::new("<rvbbit_udf>"), UDF_CASCADE, &engine)?;
        let mut sources = crate::sources::Sources::new(settings.base_dir.clone(), settings.tables.clone())?;
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
            tasks: tokio_util::task::TaskTracker::new(),
            stack: crate::stack::BigStack::new()?,
        })
    }

    /// The cache key and call of `rvbbit_udf(instructions, value, model)`.
    /// The sampling settings (temperature 0 unless overridden, spec §2) are part of the key.
    pub(crate) fn udf_call(
        &self,
        instructions: &str,
        value: &str,
        model: Option<&str>,
        sampling: Sampling,
        cache: bool,
    ) -> Call {
        let key = udf_key(&UdfKey {
            cascade: &self.udf.hash,
            function: "rvbbit_udf",
            instructions,
            layout: CACHE_LAYOUT,
            max_tokens: sampling.max_tokens,
            model: model.unwrap_or(&self.settings.default_model),
            temperature: sampling.temperature,
            value,
        });
        Call {
            key,
            cache,
            kind: CallKind::Udf {
                input: json!({"instructions": instructions, "value": value}),
                model: model.map(str::to_owned),
                sampling,
            },
            source: None,
        }
    }

    /// The cache key and call of `rvbbit_run(cascade, inputs)`.
    pub(crate) fn run_call(
        &self,
        cascade: Arc<LoadedCascade>,
        input: Value,
        model: Option<&str>,
        cache: bool,
    ) -> Call {
        let effective = model.unwrap_or(&self.settings.default_model);
        let key = cache_key(&json!({
            "fn": "rvbbit_run",
            "layout": CACHE_LAYOUT,
            "cascade": cascade.hash,
            "inputs": input,
            "model": effective,
        }));
        Call {
            key,
            cache,
            kind: CallKind::Run {
                cascade,
                input,
                model: model.map(str::to_owned),
            },
            source: None,
        }
    }

    /// A `RVBBIT RUN` / `rvbbit_run_batch` call: `cascade` once over `table` (named `name` for its
    /// `sql_data` cells); `rows_hash` identifies the rows, so identical batches in a statement run once.
    pub(crate) fn batch_call(
        &self,
        cascade: Arc<LoadedCascade>,
        input: Value,
        model: Option<&str>,
        (name, table, rows_hash): (String, Arc<dyn datafusion::catalog::TableProvider>, String),
    ) -> Call {
        let key = cache_key(&json!({
            "fn": "rvbbit_run_batch",
            "cascade": cascade.hash,
            "inputs": input,
            "rows": rows_hash,
            "model": model.unwrap_or(&self.settings.default_model),
        }));
        Call {
            key,
            cache: false,
            kind: CallKind::Batch {
                cascade,
                input,
                model: model.map(str::to_owned),
                name,
                table,
            },
            source: None,
        }
    }

    /// The average cost of earlier completed runs of `cascade` (same content hash) in the store, from the
    /// newest 200 sessions of its cascade id; `None` without a store or history. Reads only.
    pub(crate) async fn cost_history(&self, cascade: &LoadedCascade) -> Option<CostHistory> {
        let store = self.store.as_ref()?;
        if let Some(writer) = &self.writer {
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

    /// How many of `calls` the persistent cache would answer now (one read; nothing is logged).
    pub(crate) async fn cached_count(&self, calls: &[Call]) -> u64 {
        let Some(store) = &self.store else { return 0 };
        let keys: Vec<String> = calls.iter().filter(|c| c.cache).map(|c| c.key.clone()).collect();
        if keys.is_empty() {
            return 0;
        }
        match store.cache_get_many(&keys, Timestamp::now()).await {
            Ok(found) => found
                .iter()
                .flatten()
                .filter(|e| e.value.get("layout").and_then(Value::as_u64) == Some(u64::from(CACHE_LAYOUT)))
                .count() as u64,
            Err(_) => 0,
        }
    }

    /// Load (once per statement) the cascade named by `reference`, resolved inside the base directory or
    /// a configured root. Errors are messages for the failure document.
    pub(crate) fn cascade(&self, stmt: &Statement, reference: &str) -> Result<Arc<LoadedCascade>, String> {
        let mut cascades = stmt.cascades.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(found) = cascades.get(reference) {
            return found.clone();
        }
        // Messages name the cascade as the caller wrote it, never the resolved path on this machine.
        let loaded = self.resolve(reference).and_then(|path| {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("Cascade {reference} cannot be read: {}", e.kind()))?;
            load_cascade_text(&path, &text, &self.engine)
                .map(Arc::new)
                .map_err(|e| e.replace(&path.display().to_string(), reference))
        });
        cascades.insert(reference.to_owned(), loaded.clone());
        loaded
    }

    fn resolve(&self, reference: &str) -> Result<PathBuf, String> {
        let given = Path::new(reference);
        let mut bases = vec![self.settings.base_dir.clone()];
        bases.extend(self.settings.roots.iter().cloned());
        let allowed: Vec<PathBuf> = bases.iter().filter_map(|b| b.canonicalize().ok()).collect();
        for base in &bases {
            let joined = if given.is_absolute() {
                given.to_path_buf()
            } else {
                base.join(given)
            };
            // `name` finds `name.yaml`, `.yml` or `.json`; a name with an extension is taken as written.
            let mut candidates = vec![joined.clone()];
            if joined.extension().is_none() {
                for ext in ["yaml", "yml", "json"] {
                    candidates.push(joined.with_extension(ext));
                }
            }
            for candidate in candidates {
                let Ok(real) = candidate.canonicalize() else {
                    continue;
                };
                if !real.is_file() {
                    continue;
                }
                if !allowed.iter().any(|a| real.starts_with(a)) {
                    return Err(format!(
                        "Cascade {reference} is outside the working directory and the configured roots"
                    ));
                }
                return Ok(real);
            }
        }
        Err(format!(
            "Cascade not found: {reference} (looked in the working directory and the configured roots, \
             also with .yaml, .yml and .json)"
        ))
    }

    /// Answer distinct `calls` (in order): memo, then the persistent cache, then concurrent runs.
    pub(crate) async fn answer(&self, stmt: &Arc<Statement>, calls: Vec<Call>) -> Vec<Answer> {
        let cells = stmt.cells(&calls);
        // The persistent cache, in one read for the whole batch that writes nothing: the hits are
        // counted here and recorded once, when the statement ends.
        let wanted: Vec<usize> = (0..calls.len())
            .filter(|&i| calls[i].cache && !cells[i].initialized())
            .collect();
        if let Some(store) = &self.store
            && !wanted.is_empty()
        {
            let keys: Vec<String> = wanted.iter().map(|&i| calls[i].key.clone()).collect();
            match store.cache_peek_many(&keys, Timestamp::now()).await {
                Ok(found) => self.serve_hits(stmt, &calls, &cells, &wanted, found),
                Err(e) => tracing::warn!(error = %e, "Result cache unreadable; running the calls"),
            }
        }
        // Calls answered already (memo or cache) need no future; the rest run concurrently.
        let mut known: Vec<Option<Answer>> = cells.iter().map(|c| c.get().cloned()).collect();
        let open: Vec<usize> = (0..calls.len()).filter(|&i| known[i].is_none()).collect();
        let futures = open.iter().map(|&i| {
            let (call, cell) = (&calls[i], &cells[i]);
            async move { cell.get_or_init(|| self.execute(stmt, call)).await.clone() }
        });
        let ran = futures::future::join_all(futures).await;
        for (i, answer) in open.into_iter().zip(ran) {
            known[i] = Some(answer);
        }
        known
            .into_iter()
            .map(|a| {
                a.unwrap_or_else(|| {
                    let message = "a call of the batch got no answer; this is a bug".to_owned();
                    Answer::Failed {
                        document: json!({"error": message, "status": "failed"}),
                        message,
                    }
                })
            })
            .collect()
    }

    /// Serve the entries found for `wanted` calls: set their memo cells and count the hits (one lock).
    fn serve_hits(
        &self,
        stmt: &Statement,
        calls: &[Call],
        cells: &[Arc<OnceCell<Answer>>],
        wanted: &[usize],
        found: Vec<Option<rvbbit_store::CacheEntry>>,
    ) {
        let mut avoided_total = 0i64;
        let mut served = 0u64;
        let mut hits = stmt.hits.lock().unwrap_or_else(|p| p.into_inner());
        for (&i, entry) in wanted.iter().zip(found) {
            let Some((answer, avoided)) = entry.and_then(|e| cached_answer(e.value)) else {
                continue;
            };
            // Another batch of the statement may have set it meanwhile: same answer, counted there.
            if cells[i].set(answer).is_ok() {
                hits.add(&calls[i]);
                served += 1;
                avoided_total = avoided_total.saturating_add(avoided);
            }
        }
        drop(hits);
        stmt.counters.cache_hits.fetch_add(served, Ordering::Relaxed);
        stmt.counters
            .avoided_micros
            .fetch_add(avoided_total, Ordering::Relaxed);
    }

    /// Run one call through the engine; successes go to the persistent cache.
    async fn execute(&self, stmt: &Statement, call: &Call) -> Answer {
        let (loaded, input, model, prefix) = match &call.kind {
            CallKind::Udf { input, model, .. } => (&self.udf, input, model, "udf"),
            CallKind::Run {
                cascade,
                input,
                model,
            } => (cascade, input, model, "udf"),
            CallKind::Batch {
                cascade,
                input,
                model,
                ..
            } => (cascade, input, model, "batch"),
        };
        let mut request = loaded.template.clone();
        request.input = input.clone();
        request.caller_id = stmt.caller_id.clone();
        request.model = model.clone();
        if let CallKind::Udf { sampling, .. } = &call.kind {
            request.sampling = *sampling;
        }
        request.cancel = stmt.cancel.child_token();
        request.metadata = stmt.metadata.clone();
        if let (Some(source), Some(m)) = (&call.source, request.metadata.as_object_mut()) {
            m.insert("source".into(), source.clone());
        }
        // Spec §2/§3/§5: SQL function sessions are `udf-<woodland>`, batch runs `batch-<woodland>`.
        request.session_id = format!("{prefix}-{}", rvbbit_core::woodland_name()).parse().ok();
        // A batch run's table, visible to its `sql_data` cells while it runs.
        let _table = match (&call.kind, &request.session_id) {
            (CallKind::Batch { name, table, .. }, Some(id)) => {
                Some(crate::batch::share(id, name, table.clone()))
            }
            _ => None,
        };
        let started = Instant::now();
        // Only the run holds a permit (waiting duplicates and the cache write do not); the semaphore is
        // never closed, so `acquire` cannot fail.
        let local = match stmt.parallel.get() {
            Some(p) => p.acquire().await.ok(),
            None => None,
        };
        let permit = self.permits.acquire().await.ok();
        // Stop when the next call, at the average cost of the calls so far, would pass the budget.
        let spent = stmt.counters.cost_micros.load(Ordering::Relaxed);
        let runs = i64::try_from(stmt.counters.runs.load(Ordering::Relaxed)).unwrap_or(i64::MAX);
        let next = if runs > 0 { spent / runs } else { 0 };
        if let Some(&budget) = stmt.budget.get()
            && spent.saturating_add(next) > budget
        {
            stmt.counters.skipped.fetch_add(1, Ordering::Relaxed);
            let message = format!(
                "not run: the statement's budget of ${} is spent",
                MicroUsd::from_micros(budget).to_decimal_string()
            );
            return Answer::Failed {
                document: json!({"error": message, "status": "skipped"}),
                message,
            };
        }
        // The run is its own task: when the statement is abandoned mid-way, its token cancels the run,
        // which still records its `cancelled` status instead of vanishing as `running`.
        let engine = self.engine.clone();
        let parent = stmt.parent.clone();
        let task = self.tasks.spawn(async move {
            match parent {
                // Inside a cascade (`sql_data`): a child of the calling run.
                Some(parent) => parent.run(request, "sql_data").await.map_err(|e| e.to_string()),
                None => Ok(engine.run(request).await),
            }
        });
        let outcome = match task.await.map_err(|e| e.to_string()).and_then(|r| r) {
            Ok(outcome) => outcome,
            Err(e) => {
                drop(permit);
                drop(local);
                let message = format!("the cascade run stopped unexpectedly: {e}");
                stmt.note_error(&message);
                return Answer::Failed {
                    document: json!({"error": message, "status": "failed"}),
                    message,
                };
            }
        };
        drop(permit);
        drop(local);
        stmt.counters.runs.fetch_add(1, Ordering::Relaxed);
        stmt.counters
            .llm_calls
            .fetch_add(u64::from(outcome.llm_calls), Ordering::Relaxed);
        stmt.counters
            .cost_micros
            .fetch_add(outcome.cost.micros(), Ordering::Relaxed);
        tracing::debug!(session = %outcome.session_id, ms = started.elapsed().as_millis(), "SQL call ran");
        let answer = match &call.kind {
            CallKind::Udf { .. } => udf_answer(&outcome),
            CallKind::Run { .. } | CallKind::Batch { .. } => run_answer(&outcome),
        };
        match &answer {
            Answer::Ok(value) if call.cache => self.cache_put(call, value, &outcome).await,
            Answer::Ok(_) => {}
            Answer::Failed { message, .. } => stmt.note_error(message),
        }
        answer
    }

    async fn cache_put(&self, call: &Call, value: &Value, outcome: &Outcome) {
        let Some(store) = &self.store else { return };
        let stored = json!({
            "layout": CACHE_LAYOUT,
            "value": value,
            "session_id": outcome.session_id.as_str(),
            "cascade_id": outcome.cascade_id,
            "cost_micro_usd": outcome.cost.micros(),
        });
        if let Err(e) = store.cache_put(&call.key, &stored, Timestamp::now(), None).await {
            tracing::warn!(error = %e, "Result not cached");
        }
    }
}

/// Load and validate a cascade text; the first error is the message.
fn load_cascade_text(path: &Path, text: &str, engine: &Engine) -> Result<LoadedCascade, String> {
    let mut catalog = Catalog::builtin();
    engine.registry().fill_catalog(&mut catalog);
    let loaded = load_str(path, text);
    let report = validate_loaded(loaded, &mut catalog, &Options::default());
    if let Some(d) = report
        .diagnostics()
        .iter()
        .find(|d| d.severity == Severity::Error)
    {
        return Err(format!(
            "Cascade {} is invalid: [{}] {}",
            path.display(),
            d.code.code,
            d.message
        ));
    }
    let Some(cascade) = report.loaded.document.as_ref().and_then(|d| d.cascade().cloned()) else {
        return Err(format!("{} is a tool definition, not a cascade", path.display()));
    };
    let mut template = RunRequest::new(cascade);
    template.cascade_file = path.is_file().then(|| path.to_path_buf());
    template.cascade_text = Some(text.to_owned());
    Ok(LoadedCascade {
        template,
        hash: hex::encode(Sha256::digest(text.as_bytes())),
    })
}

/// A cache entry as an answer and the cost it avoids, or `None` when it is of another layout or
/// unreadable (the call then runs).
fn cached_answer(mut stored: Value) -> Option<(Answer, i64)> {
    if stored.get("layout").and_then(Value::as_u64) != Some(u64::from(CACHE_LAYOUT)) {
        return None;
    }
    let avoided = stored.get("cost_micro_usd").and_then(Value::as_i64).unwrap_or(0);
    let value = stored.get_mut("value")?.take();
    Some((Answer::Ok(value), avoided))
}

fn failure_message(outcome: &Outcome) -> String {
    match &outcome.error {
        Some(e) => format!("[{}] {e}", e.code().code),
        None => format!("the run ended {}", outcome.status),
    }
}

fn udf_answer(outcome: &Outcome) -> Answer {
    if outcome.status != SessionStatus::Completed {
        let message = failure_message(outcome);
        return Answer::Failed {
            document: json!({"error": message, "status": "failed", "session_id": outcome.session_id.as_str()}),
            message,
        };
    }
    let text = match &outcome.output {
        Value::String(s) => s.trim().to_owned(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    Answer::Ok(Value::String(text))
}

fn run_answer(outcome: &Outcome) -> Answer {
    let completed = outcome.status == SessionStatus::Completed;
    // A cell that answered with JSON text (an LLM told to "return only JSON") is data: its value is
    // the parsed JSON, so `json_extract_string(doc, '$.outputs.cell.field')` reaches into it.
    let outputs: serde_json::Map<String, Value> = outcome
        .outputs
        .iter()
        .map(|(cell, output)| (cell.clone(), parsed_if_json(output)))
        .collect();
    let mut doc = json!({
        "outputs": outputs,
        "state": outcome.state,
        "status": if completed { "success" } else { "failed" },
        "session_id": outcome.session_id.as_str(),
        "has_errors": !completed,
        "final_output": outcome.output,
        "cost_usd": outcome.cost.to_decimal_string(),
    });
    if completed {
        return Answer::Ok(doc);
    }
    let message = failure_message(outcome);
    if let Some(map) = doc.as_object_mut() {
        map.insert("error".into(), Value::String(message.clone()));
    }
    Answer::Failed {
        message,
        document: doc,
    }
}

/// `output` parsed when it is text holding one JSON object or array (surrounding white space allowed),
/// else unchanged.
fn parsed_if_json(output: &Value) -> Value {
    if let Value::String(text) = output {
        let t = text.trim();
        if ((t.starts_with('{') && t.ends_with('}')) || (t.starts_with('[') && t.ends_with(']')))
            && let Ok(v) = serde_json::from_str::<Value>(t)
        {
            return v;
        }
    }
    output.clone()
}

/// The fields of an `rvbbit_udf` cache key, in sorted order: serialised as they stand they give the same
/// text as [`canonical`] of the same object, without building it (one per distinct row).
#[derive(serde::Serialize)]
struct UdfKey<'a> {
    cascade: &'a str,
    #[serde(rename = "fn")]
    function: &'static str,
    instructions: &'a str,
    layout: u32,
    max_tokens: Option<u32>,
    model: &'a str,
    temperature: Option<f64>,
    value: &'a str,
}

/// SHA-256 hex of an `rvbbit_udf` key: equal to `cache_key` of the same fields as a JSON object.
fn udf_key(fields: &UdfKey<'_>) -> String {
    let mut hasher = HashWriter(Sha256::new());
    match serde_json::to_writer(&mut hasher, fields) {
        Ok(()) => hex::encode(hasher.0.finalize()),
        // Serialising strings and numbers into a hasher cannot fail; should it, the slow path gives the
        // same key (and a value it cannot build gets a key of its own: a miss, never another's answer).
        Err(_) => serde_json::to_value(fields).map_or_else(
            |_| format!("unkeyable-{}", rvbbit_core::woodland_name()),
            |v| cache_key(&v),
        ),
    }
}

/// Feeds what is written into a SHA-256.
struct HashWriter(Sha256);

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// SHA-256 hex of the canonical JSON (object keys sorted at every level) of `value`.
pub(crate) fn cache_key(value: &Value) -> String {
    hex::encode(Sha256::digest(canonical(value).to_string().as_bytes()))
}

/// `value` with every object's keys sorted, so equal inputs give equal keys whatever their order.
pub(crate) fn canonical(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for k in keys {
                out.insert(k.clone(), canonical(&map[k]));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_keys_ignore_order() {
        let a = json!({"b": 1, "a": {"y": [1, {"d": 2, "c": 3}], "x": null}});
        let b = json!({"a": {"x": null, "y": [1, {"c": 3, "d": 2}]}, "b": 1});
        assert_eq!(cache_key(&a), cache_key(&b));
        assert_ne!(cache_key(&a), cache_key(&json!({"b": 2})));
    }

    /// The direct `rvbbit_udf` key is the key earlier versions computed, so existing caches still hit.
    #[test]
    fn udf_key_equals_the_canonical_key() {
        let cases = [
            ("Tag", "v1", "m/x", Some(0.0), None),
            (
                "Say \"hi\"\n\ttwice",
                "naïve — ünïcode \u{1f600} \\ \u{7}",
                "",
                Some(1.25),
                Some(7),
            ),
            ("", "", "model", None, Some(u32::MAX)),
            ("x", "y", "z", Some(2.0), Some(1)),
        ];
        for (instructions, value, model, temperature, max_tokens) in cases {
            let slow = cache_key(&json!({
                "fn": "rvbbit_udf",
                "layout": CACHE_LAYOUT,
                "cascade": "abc123",
                "instructions": instructions,
                "value": value,
                "model": model,
                "temperature": temperature,
                "max_tokens": max_tokens,
            }));
            let fast = udf_key(&UdfKey {
                cascade: "abc123",
                function: "rvbbit_udf",
                instructions,
                layout: CACHE_LAYOUT,
                max_tokens,
                model,
                temperature,
                value,
            });
            assert_eq!(fast, slow, "{instructions:?} {value:?}");
        }
    }

    #[test]
    fn a_hit_summary_names_keys_by_reference() {
        let call = |key: &str| Call {
            key: key.to_owned(),
            cache: true,
            kind: CallKind::Udf {
                input: Value::Null,
                model: None,
                sampling: Sampling::default(),
            },
            source: None,
        };
        let mut summary = HitSummary::default();
        for i in 0..100 {
            summary.add(&call(&format!("k{i}")));
        }
        let meta = summary.metadata(1234);
        assert_eq!(meta["count"], 100);
        assert_eq!(meta["avoided_cost_micro_usd"], 1234);
        assert_eq!(meta["functions"], json!({"rvbbit_udf": 100}));
        assert_eq!(
            meta["keys"]["sample"].as_array().map(Vec::len),
            Some(HIT_KEY_SAMPLE)
        );
        let mut expected = Sha256::new();
        for i in 0..100 {
            expected.update(format!("k{i}\n").as_bytes());
        }
        assert_eq!(meta["keys"]["sha256"], hex::encode(expected.finalize()));
    }
}
