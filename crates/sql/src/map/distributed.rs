//! Distributed SQL: the rows of `RVBBIT MAP … WITH (distributed = true)` (and `rvbbit_run` under
//! `SET rvbbit.distributed = on`) run as jobs on the configured queue (`[queue] url`), taken by any
//! `rvbbit worker`, and their outcomes are gathered from the store the workers share.
//!
//! - **Cache**: the statement's memo and the persistent result cache answer what they can first; only
//!   the rest is enqueued, and every gathered success is written to the same cache (a rerun enqueues
//!   nothing).
//! - **Job ids** are deterministic: `map-<first 40 hex digits of the call's cache key>` (the cascade's
//!   content, the row's input and the model), so a retried statement re-enqueues the same ids and the
//!   queue's duplicate window drops them. With `cache = false` the id also carries a digest of the
//!   statement's caller id (`map-<key>-<digest>`): each statement runs its rows afresh.
//! - **Budget and window**: at most `window` jobs are outstanding at once; before each job is enqueued
//!   the statement's budget is checked as a local call checks it (the next call, at the average cost
//!   of those so far, would pass it: the row is skipped, not enqueued).
//! - **Caller id**: a worker records its session under `queue-<job id>` (as for `rvbbit submit`); the
//!   statement's own caller id travels as job metadata `sql_caller_id` and is recorded in the session's
//!   invocation metadata (`meta.sql_caller_id`).
//! - **Bounded**: at most `rvbbit.distributed_max_rows` jobs per statement (RVB-S031, checked before any
//!   is enqueued); a job not gathered `rvbbit.distributed_timeout` seconds after it was enqueued fails
//!   the statement (RVB-S032); a dead-lettered job fails its row (RVB-S033), as a failed run does.
//! - **Order**: answers come back in the order of the calls, whatever order the workers finish in.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::StreamExt;
use rvbbit_core::{ErrorCode, SessionStatus, Timestamp, codes};
use rvbbit_store::{Queue, QueueOptions, SessionFilter, SessionSummary, Store};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::gathered::{cascade_id, cell_outputs, ended, job, over_budget, session_answer};
use crate::calls::{self, Call, CallKind};
use crate::error::{Error, Result};
use crate::options::RvbbitOptions;
use crate::runtime::Runtime;
use crate::statement::{Answer, Statement};

/// How often the store is read for outcomes.
const POLL: Duration = Duration::from_millis(200);
/// Every this many polls: the dead letters are read, and the oldest jobs are looked up one by one.
const SLOW_EVERY: u32 = 10;
/// A job outstanding this long is also looked up by its own caller id (an earlier statement's run of
/// the same job, which started before this statement, answers it).
const STRAGGLER_AFTER: Duration = Duration::from_secs(3);
/// Jobs looked up one by one per slow poll.
const STRAGGLERS: usize = 8;
/// Event reads at once for the cells' outputs of gathered runs.
const OUTPUT_READS: usize = 8;
/// How far before the statement's start the workers' sessions are looked for (their clocks may differ).
const CLOCK_SKEW_MICROS: i64 = 5_000_000;

/// The queue distributed statements use: `queue.url` and the `[queue]` settings.
#[derive(Clone)]
pub struct QueueSettings {
    /// `nats://[USER:PASSWORD@]HOST[:PORT]`.
    pub url: String,
    /// The stream and its settings (a SQL process never reconfigures the workers' consumer).
    pub options: QueueOptions,
}

impl std::fmt::Debug for QueueSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueSettings")
            .field("url", &rvbbit_core::config::mask_url(&self.url))
            .field("options", &self.options)
            .finish()
    }
}

/// How one distributed statement runs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Distribute {
    /// `rvbbit.distributed_timeout`.
    pub(crate) timeout: Duration,
    /// `rvbbit.distributed_max_rows`.
    pub(crate) max_rows: u64,
    /// Jobs outstanding at once.
    pub(crate) window: usize,
    /// `rvbbit.max_calls`, for `rvbbit_run` (a MAP is bounded by its row limit instead).
    pub(crate) max_calls: Option<u64>,
}

impl Distribute {
    /// The settings of `options` with at most `window` jobs outstanding.
    pub(crate) fn new(options: &RvbbitOptions, window: usize) -> Distribute {
        Distribute {
            timeout: Duration::from_secs(options.distributed_timeout),
            max_rows: options.distributed_max_rows,
            window: window.max(1),
            max_calls: None,
        }
    }
}

fn queue_error(code: &'static ErrorCode, message: String) -> Error {
    Error::Queue { code, message }
}

/// The queue of the runtime, opened by the first distributed statement.
async fn queue(runtime: &Runtime) -> Result<Arc<dyn Queue>> {
    let Some(settings) = &runtime.settings.queue else {
        return Err(queue_error(
            codes::S_DIST_NO_QUEUE,
            "distributed = true needs a job queue, and none is configured: set `[queue] url = \
             \"nats://HOST:4222\"` (or RVBBIT_QUEUE_URL) and start `rvbbit worker`s that share this store; \
             or run the rows here without `distributed = true` (SET rvbbit.distributed = off)"
                .into(),
        ));
    };
    runtime
        .queue
        .get_or_try_init(|| async {
            rvbbit_store::queue::open(&settings.url, &settings.options)
                .await
                .map_err(|e| queue_error(e.code(), format!("distributed SQL: {e}")))
        })
        .await
        .cloned()
}

/// Answer `calls` (in order): the statement's memo and the result cache first, then the rest as jobs
/// on the queue, gathered from the shared store.
pub(crate) async fn answer(
    runtime: &Runtime,
    stmt: &Arc<Statement>,
    calls: Vec<Call>,
    d: &Distribute,
) -> Result<Vec<Answer>> {
    if calls.iter().any(|c| !matches!(c.kind, CallKind::Run { .. })) {
        return Err(Error::Execution {
            message: "only cascade runs (rvbbit_run, RVBBIT MAP) can be distributed".into(),
        });
    }
    let mut known = calls::lookup(runtime, stmt, &calls).await;
    let open: VecDeque<usize> = (0..calls.len()).filter(|&i| known[i].is_none()).collect();
    if !open.is_empty() {
        admit_rows(stmt, open.len() as u64, d)?;
        if let Some(max) = d.max_calls {
            calls::admit(stmt, open.len(), max)?;
        }
        crate::spending::check(runtime, stmt).await?;
        let Some(store) = runtime.store.clone() else {
            return Err(queue_error(
                codes::S_DIST_NO_QUEUE,
                "distributed = true needs the store the workers write to, and this process has none \
                 open: set `[store] url` to the store every worker shares"
                    .into(),
            ));
        };
        let queue = queue(runtime).await?;
        let mut gather = Gather::new(stmt, &calls, store, queue, d);
        gather.run(open, &mut known).await?;
    }
    Ok(known
        .into_iter()
        .map(|a| {
            a.unwrap_or_else(|| {
                let message = "a distributed row got no answer; this is a bug".to_owned();
                Answer::Failed {
                    document: json!({"error": message, "status": "failed"}),
                    message,
                }
            })
        })
        .collect())
}

/// Count `n` more row jobs against `rvbbit.distributed_max_rows`; over it, none is counted.
fn admit_rows(stmt: &Statement, n: u64, d: &Distribute) -> Result<()> {
    let before = stmt.counters.distributed.fetch_add(n, Ordering::Relaxed);
    if before.saturating_add(n) <= d.max_rows {
        return Ok(());
    }
    stmt.counters.distributed.fetch_sub(n, Ordering::Relaxed);
    Err(queue_error(
        codes::S_DIST_ROWS,
        format!(
            "the statement would enqueue {} row job(s), more than rvbbit.distributed_max_rows = {}; \
             nothing was enqueued. Narrow the query with WHERE or LIMIT, or raise it with \
             SET rvbbit.distributed_max_rows = n",
            before.saturating_add(n),
            d.max_rows
        ),
    ))
}

/// One enqueued job the statement waits for.
#[derive(Debug)]
struct Outstanding {
    /// The call it answers.
    index: usize,
    /// The job id.
    id: String,
    enqueued: Instant,
    /// The id carries the statement's digest (no earlier statement's run can answer it).
    fresh: bool,
    /// The queue already held a job of this id (an earlier statement's, still in the duplicate window).
    duplicate: bool,
}

/// The gathering of one distributed batch of calls.
struct Gather<'a> {
    stmt: &'a Arc<Statement>,
    calls: &'a [Call],
    store: Arc<dyn Store>,
    queue: Arc<dyn Queue>,
    d: &'a Distribute,
    /// Outstanding jobs by the caller id their sessions carry (`queue-<job id>`).
    waiting: HashMap<String, Outstanding>,
    /// Sessions started from here on are looked for in the bulk read.
    since: Timestamp,
    /// The statement's digest, for fresh job ids.
    nonce: String,
    /// The one cascade of the calls, when they share one (narrows the bulk read).
    cascade_id: Option<String>,
}

impl<'a> Gather<'a> {
    fn new(
        stmt: &'a Arc<Statement>,
        calls: &'a [Call],
        store: Arc<dyn Store>,
        queue: Arc<dyn Queue>,
        d: &'a Distribute,
    ) -> Self {
        let ids: std::collections::BTreeSet<&str> = calls.iter().filter_map(cascade_id).collect();
        let digest = Sha256::digest(stmt.caller_id.as_str().as_bytes());
        Gather {
            stmt,
            calls,
            store,
            queue,
            d,
            waiting: HashMap::new(),
            since: Timestamp::now().add_micros(-CLOCK_SKEW_MICROS),
            nonce: hex::encode(&digest[..8]),
            cascade_id: (ids.len() == 1).then(|| ids.into_iter().next().unwrap_or_default().to_owned()),
        }
    }

    /// Enqueue `open` (keeping at most the window outstanding) and gather every answer into `known`.
    async fn run(&mut self, mut open: VecDeque<usize>, known: &mut [Option<Answer>]) -> Result<()> {
        let mut polls = 0u32;
        loop {
            while self.waiting.len() < self.d.window
                && let Some(i) = open.pop_front()
            {
                if let Some(skipped) = over_budget(self.stmt) {
                    known[i] = Some(skipped);
                    continue;
                }
                let fresh = !self.calls[i].cache;
                self.enqueue(i, fresh).await?;
            }
            if self.waiting.is_empty() && open.is_empty() {
                return Ok(());
            }
            tokio::select! {
                () = tokio::time::sleep(POLL) => {}
                () = self.stmt.cancel.cancelled() => {
                    return Err(Error::Execution { message: "the statement was cancelled".into() });
                }
            }
            polls = polls.wrapping_add(1);
            let mut ended = self.bulk_read().await;
            if polls.is_multiple_of(SLOW_EVERY) {
                ended.extend(self.stragglers().await?);
                self.dead_letters(known).await;
            }
            self.settle(ended, known).await;
            if let Some(late) = self
                .waiting
                .values()
                .find(|o| o.enqueued.elapsed() > self.d.timeout)
            {
                return Err(self.timed_out(late));
            }
        }
    }

    /// Put call `i` on the queue (under a fresh id when `fresh`).
    async fn enqueue(&mut self, i: usize, fresh: bool) -> Result<()> {
        let call = &self.calls[i];
        let key = call.key.get(..40).unwrap_or(&call.key);
        let id = if fresh {
            format!("map-{key}-{}", self.nonce)
        } else {
            format!("map-{key}")
        };
        let job = job(&id, call, self.stmt)?;
        let submitted = self
            .queue
            .submit(&job)
            .await
            .map_err(|e| queue_error(e.code(), format!("distributed SQL: {e}")))?;
        self.waiting.insert(
            format!("queue-{id}"),
            Outstanding {
                index: i,
                id,
                enqueued: Instant::now(),
                fresh,
                duplicate: submitted.duplicate,
            },
        );
        Ok(())
    }

    /// The ended sessions of outstanding jobs that started since the statement began (one read).
    async fn bulk_read(&self) -> Vec<SessionSummary> {
        let filter = SessionFilter {
            cascade_id: self.cascade_id.clone(),
            since: Some(self.since),
            ..SessionFilter::default()
        };
        match self.store.sessions(&filter).await {
            Ok(found) => found.into_iter().filter(|s| self.ends_outstanding(s)).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "Reading distributed outcomes failed; reading again");
                Vec::new()
            }
        }
    }

    fn ends_outstanding(&self, s: &SessionSummary) -> bool {
        ended(&s.session)
            && s.session
                .caller_id
                .as_ref()
                .is_some_and(|c| self.waiting.contains_key(c.as_str()))
    }

    /// The oldest jobs looked up by their own caller id: a job an earlier statement ran (its outcome
    /// recorded before this statement began) is acked by the worker without a new run. An earlier
    /// failure is not reused: the row is enqueued again under a fresh id, as a local rerun runs a
    /// failed row again.
    async fn stragglers(&mut self) -> Result<Vec<SessionSummary>> {
        let mut old: Vec<(&String, &Outstanding)> = self
            .waiting
            .iter()
            .filter(|(_, o)| !o.fresh && o.enqueued.elapsed() > STRAGGLER_AFTER)
            .collect();
        old.sort_by_key(|(_, o)| o.enqueued);
        let callers: Vec<String> = old.into_iter().take(STRAGGLERS).map(|(c, _)| c.clone()).collect();
        let mut out = Vec::new();
        for caller in callers {
            let filter = SessionFilter {
                caller_id: Some(caller.clone()),
                ..SessionFilter::default()
            };
            let Ok(found) = self.store.sessions(&filter).await else {
                continue;
            };
            let Some(s) = found.into_iter().find(|s| ended(&s.session)) else {
                continue;
            };
            if s.session.status == SessionStatus::Failed
                && s.session.started_at.micros() < self.since.micros()
                && let Some(o) = self.waiting.remove(&caller)
            {
                self.enqueue(o.index, true).await?;
                continue;
            }
            out.push(s);
        }
        Ok(out)
    }

    /// Fail the rows whose jobs the queue gave up.
    async fn dead_letters(&mut self, known: &mut [Option<Answer>]) {
        let dead = match self.queue.dead_letters().await {
            Ok(dead) => dead,
            Err(e) => {
                tracing::warn!(error = %e, "Reading the dead letters failed; reading again later");
                return;
            }
        };
        for letter in dead {
            let caller = format!("queue-{}", letter.id);
            // A dead letter older than the statement belongs to an earlier job of the same id; it
            // answers this one only when the queue took this submission as that job's duplicate.
            let old = letter
                .at
                .parse::<Timestamp>()
                .is_ok_and(|at| at.micros() < self.since.micros());
            if old && self.waiting.get(&caller).is_some_and(|o| !o.duplicate) {
                continue;
            }
            let Some(o) = self.waiting.remove(&caller) else {
                continue;
            };
            let message = format!(
                "[{}] row job {} was given up after {} deliveries: {}",
                codes::S_DIST_DEAD.code,
                o.id,
                letter.deliveries,
                letter.reason
            );
            self.stmt.note_error(&message);
            known[o.index] = Some(Answer::Failed {
                document: json!({"error": message, "status": "failed", "job_id": o.id}),
                message,
            });
        }
    }

    /// Answer the calls of `ended` sessions: memo, counters, and the cache (one write).
    async fn settle(&mut self, ended: Vec<SessionSummary>, known: &mut [Option<Answer>]) {
        let mut entries = Vec::new();
        // The cells' outputs of the completed runs, a few reads at a time.
        let reads: Vec<_> = ended
            .iter()
            .map(|s| {
                let completed = s.session.status == SessionStatus::Completed;
                cell_outputs(self.store.clone(), s.session.session_id.clone(), completed)
            })
            .collect();
        let outputs: Vec<Value> = futures::stream::iter(reads)
            .buffered(OUTPUT_READS)
            .collect()
            .await;
        for (s, outputs) in ended.into_iter().zip(outputs) {
            let Some(caller) = s.session.caller_id.as_ref().map(|c| c.as_str().to_owned()) else {
                continue;
            };
            let Some(o) = self.waiting.remove(&caller) else {
                continue;
            };
            let call = &self.calls[o.index];
            let answer = session_answer(&s, outputs);
            self.stmt.counters.runs.fetch_add(1, Ordering::Relaxed);
            self.stmt
                .counters
                .cost_micros
                .fetch_add(s.cost.micros(), Ordering::Relaxed);
            match &answer {
                Answer::Ok(value) if call.cache => entries.push((
                    call.key.clone(),
                    calls::cache_value(
                        value,
                        s.session.session_id.as_str(),
                        s.session.cascade_id.as_deref().unwrap_or_default(),
                        s.cost.micros(),
                    ),
                )),
                Answer::Ok(_) => {}
                Answer::Failed { message, .. } => self.stmt.note_error(message),
            }
            let cell = self.stmt.cells(std::iter::once(call.key.as_str())).remove(0);
            let answer = match cell.set(answer.clone()) {
                Ok(()) => answer,
                Err(_) => cell.get().cloned().unwrap_or(answer),
            };
            known[o.index] = Some(answer);
        }
        if entries.is_empty() {
            return;
        }
        let now = Timestamp::now();
        let expires = self
            .calls
            .first()
            .and_then(|c| c.expires(Some(self.stmt.as_ref()), now));
        if let Err(e) = self.store.cache_put_many(&entries, now, expires).await {
            tracing::warn!(error = %e, "Distributed results not cached");
        }
    }

    fn timed_out(&self, late: &Outstanding) -> Error {
        queue_error(
            codes::S_DIST_TIMEOUT,
            format!(
                "row job {} had no outcome in the store {} s after it was enqueued \
                 (rvbbit.distributed_timeout = {}); {} job(s) of the statement still outstanding on {}. \
                 Start `rvbbit worker`s that share this store, check `rvbbit queue status`, or raise \
                 SET rvbbit.distributed_timeout = seconds",
                late.id,
                late.enqueued.elapsed().as_secs(),
                self.d.timeout.as_secs(),
                self.waiting.len(),
                self.queue.url()
            ),
        )
    }
}
