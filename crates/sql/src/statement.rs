//! One SQL statement's state ([`Statement`]): its caller id, counters, memo of answers, loaded cascades,
//! `PARALLEL` limit and budget, cache hits ([`HitSummary`]) and notes for the user; and the answer of one
//! distinct call ([`Answer`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rvbbit_core::CallerId;
use rvbbit_engine::CancellationToken;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::{OnceCell, Semaphore};

use crate::cascade::LoadedCascade;
use crate::options::RvbbitOptions;
use crate::with_clause::WithOptions;

/// The answer to one distinct call.
#[derive(Clone, Debug)]
pub(crate) enum Answer {
    /// The value (text for `rvbbit_udf`, the result document for `rvbbit_run`).
    Ok(Value),
    /// The call failed: a message with the error code, and for `rvbbit_run` the failure document.
    Failed { message: String, document: Value },
}

/// Counters of one statement.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Runs admitted against `rvbbit.max_calls`.
    pub(crate) admitted: AtomicU64,
    pub(crate) runs: AtomicU64,
    pub(crate) llm_calls: AtomicU64,
    pub(crate) cache_hits: AtomicU64,
    pub(crate) errors: AtomicU64,
    /// Calls not made because the statement's budget was spent.
    pub(crate) skipped: AtomicU64,
    pub(crate) cost_micros: AtomicI64,
    pub(crate) avoided_micros: AtomicI64,
    /// Row jobs enqueued by a distributed statement, against `rvbbit.distributed_max_rows`.
    pub(crate) distributed: AtomicU64,
}

/// How many keys a `cache_hit` summary event names in full (the rest by the digest).
pub(crate) const HIT_KEY_SAMPLE: usize = 8;

/// The cache hits of one statement, recorded as one `cache_hit` event when it ends: how many per
/// function, and the keys by reference (a SHA-256 over every hit key in the order served, plus the first
/// [`HIT_KEY_SAMPLE`] keys), so a statement of 100,000 hits writes one small event.
#[derive(Default)]
pub(crate) struct HitSummary {
    /// Hits of `rvbbit_udf`, `rvbbit_run`, `rvbbit_run_batch` and embeddings.
    pub(crate) by_function: [u64; 4],
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
    /// Count a hit of the function at `function` (0 `rvbbit_udf`, 1 `rvbbit_run`, 2 `rvbbit_run_batch`,
    /// 3 an embedding)
    /// with the cache key `key`.
    pub(crate) fn add(&mut self, function: usize, key: &str) {
        if let Some(n) = self.by_function.get_mut(function) {
            *n += 1;
        }
        self.digest.update(key.as_bytes());
        self.digest.update(b"\n");
        if self.sample.len() < HIT_KEY_SAMPLE {
            self.sample.push(key.to_owned());
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
        for (name, n) in ["rvbbit_udf", "rvbbit_run", "rvbbit_run_batch", "embedding"]
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

/// What one function of an `EXPLAIN`ed statement would do.
#[derive(Clone, Debug, Default)]
pub(crate) struct Estimate {
    /// Rows (or groups) with their arguments.
    pub(crate) rows: u64,
    /// Distinct argument tuples (or values).
    pub(crate) distinct: u64,
    /// Of those, already in the result cache.
    pub(crate) cached: u64,
    /// Calls to make.
    pub(crate) calls: u64,
    /// The most rows one call asks.
    pub(crate) rows_per_call: u64,
    /// Bytes of the prompts, roughly.
    pub(crate) prompt_bytes: u64,
    /// The function's one-row cascade, for the cost history.
    pub(crate) cascade: Option<Arc<LoadedCascade>>,
    /// How a cheap model first and the function's model split the rows, when one is set.
    pub(crate) stages: Option<String>,
}

/// One SQL statement: its caller id, counters, memo of answers and loaded cascades.
#[derive(Debug)]
pub(crate) struct Statement {
    pub(crate) caller_id: CallerId,
    pub(crate) counters: Counters,
    memo: Mutex<HashMap<String, Arc<OnceCell<Answer>>>>,
    /// Final answers by argument tuple (see `udf::args_key`): later batches skip the cache key.
    answered: Mutex<HashMap<String, Answer>>,
    /// Cascades loaded by the statement, by reference (a failure is kept as its message).
    pub(crate) cascades: Mutex<HashMap<String, Result<Arc<LoadedCascade>, String>>>,
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
    /// Under `EXPLAIN`: what each function would do, by name; its functions make no call.
    estimates: Option<Mutex<std::collections::BTreeMap<String, Estimate>>>,
    /// Rows of semantic functions decided per model, when a cheap model was asked first.
    decided: Mutex<std::collections::BTreeMap<String, u64>>,
    /// The statement's annotated calls (`-- @`), as `sql_query_log.annotations` records them.
    annotations: Mutex<Vec<Value>>,
    /// Cancelled when the statement is abandoned (its future dropped, as on a CancelRequest): its
    /// runs stop and are recorded as `cancelled`.
    pub(crate) cancel: CancellationToken,
    /// The invocation metadata every run of the statement records (spec §6: origin, trigger, query).
    pub(crate) metadata: Value,
    /// In a cascade's `sql_data` cell: the calling run, whose children the statement's runs are.
    pub(crate) parent: Option<rvbbit_engine::ChildRuns>,
    /// Vectors embedded or read from the cache by the statement, by cache key.
    vectors: Mutex<HashMap<String, Arc<[f32]>>>,
    /// The statement's own `WITH (…)` options (`with_clause.rs`).
    with: std::sync::OnceLock<WithOptions>,
    /// The spending limits' verdict, read once, before the statement's first run
    /// ([`crate::spending::check`]): `Err` holds the RVB-B030 message and hint.
    pub(crate) spending: OnceCell<Result<(), (String, String)>>,
    /// Result-cache writes in flight ([`Statement::write_cache`]).
    writes: tokio_util::task::TaskTracker,
    /// Whether the one executing the statement waits for its cache writes when it ends
    /// ([`Statement::with_cache_writes_behind`]); otherwise each write is awaited where it starts.
    writes_behind: bool,
}

impl Statement {
    /// A statement of `caller_id`, with no parent run and empty metadata.
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
            decided: Mutex::new(std::collections::BTreeMap::new()),
            annotations: Mutex::new(Vec::new()),
            estimates: None,
            cancel: CancellationToken::new(),
            metadata: Value::Object(serde_json::Map::new()),
            parent: None,
            vectors: Mutex::new(HashMap::new()),
            writes: tokio_util::task::TaskTracker::new(),
            writes_behind: false,
            with: std::sync::OnceLock::new(),
            spending: OnceCell::new(),
        }
    }

    /// Keep the statement's own `WITH (…)` options (the first ones set stay).
    pub(crate) fn set_options(&self, options: WithOptions) {
        // Set once, before planning: a second clause (a pipeline's query) cannot replace the first.
        let _ = self.with.set(options);
    }

    /// The statement's own `WITH (…)` options, if it has some.
    pub(crate) fn options(&self) -> Option<&WithOptions> {
        self.with.get()
    }

    /// The session's `rvbbit.*` settings with the statement's own options on top.
    pub(crate) fn settings(&self, session: RvbbitOptions) -> RvbbitOptions {
        match self.with.get() {
            Some(w) => w.apply(session),
            None => session,
        }
    }

    /// `WITH (cache = '1h')`: the seconds the statement's new cache entries are served.
    pub(crate) fn cache_ttl(&self) -> Option<u64> {
        self.with.get().and_then(|w| w.cache_ttl)
    }

    /// The vector the statement already has under `key`.
    pub(crate) fn vector(&self, key: &str) -> Option<Arc<[f32]>> {
        self.vectors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
    }

    /// Keep `vector` under `key` for the rest of the statement.
    pub(crate) fn remember_vector(&self, key: String, vector: Arc<[f32]>) {
        self.vectors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, vector);
    }

    /// Count a vector served from the persistent cache (in the statement's `cache_hit` event).
    pub(crate) fn count_embedding_hit(&self, key: &str) {
        self.counters.cache_hits.fetch_add(1, Ordering::Relaxed);
        self.hits.lock().unwrap_or_else(|p| p.into_inner()).add(3, key);
    }

    /// Make the statement's runs children of the run calling `sql_data`.
    pub(crate) fn with_parent(mut self, parent: rvbbit_engine::ChildRuns) -> Statement {
        self.cancel = parent.cancel_token();
        self.parent = Some(parent);
        self
    }

    /// Set the invocation metadata of the statement's runs.
    /// Let the statement's result-cache writes run beside its remaining work; the caller promises to
    /// await [`Statement::cache_writes_done`] before the statement ends.
    pub(crate) fn with_cache_writes_behind(mut self) -> Statement {
        self.writes_behind = true;
        self
    }

    /// Store `entries` in the result cache (the answers are already in the statement's memo): beside
    /// the statement's remaining work when it writes behind, else at once. A failed write is a warning:
    /// the cache is an optimisation, and the next statement runs those calls again.
    pub(crate) async fn write_cache(
        &self,
        store: Arc<dyn rvbbit_store::Store>,
        entries: Vec<(String, Value)>,
        now: rvbbit_core::Timestamp,
        expires: Option<rvbbit_core::Timestamp>,
    ) {
        let write = async move {
            let started = std::time::Instant::now();
            if let Err(e) = store.cache_put_many(&entries, now, expires).await {
                tracing::warn!(error = %e, entries = entries.len(), "Results not cached");
            }
            tracing::debug!(
                target: "rvbbit::timings",
                entries = entries.len(),
                ms = format!("{:.2}", started.elapsed().as_secs_f64() * 1000.0),
                "Result cache written"
            );
        };
        if self.writes_behind {
            self.writes.spawn(write);
        } else {
            write.await;
        }
    }

    /// Wait for the result-cache writes the statement started.
    pub(crate) async fn cache_writes_done(&self) {
        self.writes.close();
        self.writes.wait().await;
    }

    pub(crate) fn with_metadata(mut self, metadata: Value) -> Statement {
        self.metadata = metadata;
        self
    }

    /// The memo cells of the calls keyed `keys` (one lock for the whole batch).
    pub(crate) fn cells<'k>(&self, keys: impl Iterator<Item = &'k str>) -> Vec<Arc<OnceCell<Answer>>> {
        let mut memo = self.memo.lock().unwrap_or_else(|p| p.into_inner());
        keys.map(|key| match memo.get(key) {
            Some(cell) => cell.clone(),
            None => {
                let cell = Arc::new(OnceCell::new());
                memo.insert(key.to_owned(), cell.clone());
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

    /// A statement that only estimates: its functions record what they would do and make no call.
    pub(crate) fn estimating(mut self) -> Statement {
        self.estimates = Some(Mutex::new(std::collections::BTreeMap::new()));
        self
    }

    /// Whether the statement only estimates (`EXPLAIN`).
    pub(crate) fn is_estimating(&self) -> bool {
        self.estimates.is_some()
    }

    /// Add `more` to the estimate of `function`.
    pub(crate) fn estimate(&self, function: &str, more: Estimate) {
        let Some(estimates) = &self.estimates else { return };
        let mut estimates = estimates.lock().unwrap_or_else(|p| p.into_inner());
        let e = estimates.entry(function.to_owned()).or_default();
        e.rows += more.rows;
        e.distinct += more.distinct;
        e.cached += more.cached;
        e.calls += more.calls;
        e.rows_per_call = e.rows_per_call.max(more.rows_per_call);
        e.prompt_bytes += more.prompt_bytes;
        if e.cascade.is_none() {
            e.cascade = more.cascade;
        }
        if e.stages.is_none() {
            e.stages = more.stages;
        }
    }

    /// The estimates, by function name.
    pub(crate) fn estimates(&self) -> Vec<(String, Estimate)> {
        self.estimates.as_ref().map_or_else(Vec::new, |e| {
            let e = e.lock().unwrap_or_else(|p| p.into_inner());
            e.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
        })
    }

    /// Count `rows` decided by `model` (`sql_query_log.decided_by`).
    pub(crate) fn decided_by(&self, model: &str, rows: u64) {
        let mut decided = self.decided.lock().unwrap_or_else(|p| p.into_inner());
        *decided.entry(model.to_owned()).or_default() += rows;
    }

    /// The rows decided per model, as a JSON object; `None` when no cheap model was asked.
    pub(crate) fn decided(&self) -> Option<Value> {
        let decided = self.decided.lock().unwrap_or_else(|p| p.into_inner());
        (!decided.is_empty()).then(|| serde_json::json!(*decided))
    }

    /// Record an annotated call (`-- @`): what it set, once per call name.
    pub(crate) fn annotated(&self, described: Value) {
        let mut annotations = self.annotations.lock().unwrap_or_else(|p| p.into_inner());
        if !annotations.iter().any(|a| a["call"] == described["call"]) {
            annotations.push(described);
        }
    }

    /// The annotated calls, as a JSON array; `None` when the statement has none.
    pub(crate) fn annotations(&self) -> Option<Value> {
        let annotations = self.annotations.lock().unwrap_or_else(|p| p.into_inner());
        (!annotations.is_empty()).then(|| Value::Array(annotations.clone()))
    }

    /// Tell the user `message` in a NOTICE when the statement ends.
    pub(crate) fn note(&self, message: &str) {
        self.notes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(message.to_owned());
    }

    /// [`Statement::note`] `message` unless the statement already holds it (a function's batches).
    pub(crate) fn note_once(&self, message: &str) {
        let mut notes = self.notes.lock().unwrap_or_else(|p| p.into_inner());
        if !notes.iter().any(|n| n == message) {
            notes.push(message.to_owned());
        }
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
