//! A batch on the queue's workers: with `queue.url` configured (and no `--local`), each input that the
//! result cache does not answer is enqueued as a job (`rvbbit worker` takes it, as a job of `rvbbit
//! submit`), and its outcome is read from the store the workers share. The batch keeps everything else:
//! at most `--parallel` jobs outstanding, the budget, the progress display, the outputs, the cache, the
//! record and the exit codes. See docs/batch.md#on-the-queues-workers.
//!
//! - **Job ids** are `<batch id>-<8 hex digits of the input's name>`: one job per input and batch, so a
//!   resubmission within the queue's duplicate window is the same job; a retry is a new batch.
//! - **Outcomes**: the root session of caller `queue-<job id>` once it has ended (its children share
//!   the caller; their cost counts too). A job the queue gave up on (a dead letter) fails its input with
//!   RVB-B024; one not ended within `batch.queue_timeout_seconds` fails with RVB-B023. Transient
//!   failures are the queue's business (redelivery up to `queue.max_deliveries`).
//! - **Cancel**: a cancelled batch stops waiting and asks the running session to stop.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rvbbit_core::config::Config;
use rvbbit_core::{MicroUsd, SessionStatus, codes};
use rvbbit_engine::CancellationToken;
use rvbbit_store::{Job, Queue, SessionFilter, Store};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use super::{Finished, Plan, usage};
use crate::commands::Failure;

/// How often the store is read for an input's outcome.
const POLL: Duration = Duration::from_millis(300);
/// How often the dead letters are read (shared by every input).
const DEAD_EVERY: Duration = Duration::from_secs(2);

/// The queue a batch runs on.
pub(super) struct Queued {
    queue: Arc<dyn Queue>,
    timeout: Duration,
    /// The dead letters by job id, and when they were read.
    dead: Mutex<(Option<Instant>, HashMap<String, String>)>,
}

impl Queued {
    /// Open the configured queue; the batch needs the store the workers write to.
    pub(super) async fn open(config: &Config, store: Option<&Arc<dyn Store>>) -> Result<Queued, Failure> {
        if store.is_none() {
            return Err(usage(
                codes::S_QUEUE_UNAVAILABLE,
                "a batch on the queue's workers reads their outcomes from the store, and the store cannot be opened".into(),
                "fix `store.url` (the store the workers share), or run the batch here with `--local`",
            ));
        }
        let queue =
            crate::commands::queue::open(config, &crate::commands::queue::QueueArg::default(), false).await?;
        Ok(Queued {
            queue,
            timeout: Duration::from_secs(config.batch.queue_timeout_seconds.max(1)),
            dead: Mutex::new((None, HashMap::new())),
        })
    }

    /// Enqueue one input and wait for its outcome.
    pub(super) async fn run(
        &self,
        store: &dyn Store,
        plan: &Plan,
        name: &str,
        source: &str,
        value: Value,
        cancel: &CancellationToken,
    ) -> Finished {
        let id = format!(
            "{}-{}",
            plan.batch_id,
            &hex::encode(Sha256::digest(name.as_bytes()))[..8]
        );
        let mut metadata = std::collections::BTreeMap::new();
        metadata.insert("batch_id".to_owned(), plan.batch_id.clone());
        metadata.insert("input".to_owned(), name.to_owned());
        metadata.insert("source".to_owned(), source.to_owned());
        let job = Job {
            id: id.clone(),
            cascade_file: plan.file.display().to_string(),
            cascade_text: plan.text.clone(),
            input: value,
            metadata,
            submitted_at: rvbbit_core::Timestamp::now().to_rfc3339(),
            bundle: None,
        };
        if let Err(e) = self.queue.submit(&job).await {
            return failed(
                codes::S_QUEUE_UNAVAILABLE,
                format!("the job could not be enqueued: {e}"),
            );
        }
        let caller = format!("queue-{id}");
        let deadline = Instant::now() + self.timeout;
        let mut running: Option<rvbbit_core::SessionId> = None;
        loop {
            tokio::select! {
                () = cancel.cancelled() => {
                    if let Some(session) = &running {
                        // Best effort: the worker sees the request at its next heartbeat.
                        let _ = store.request_cancel(session, "the batch was cancelled").await;
                    }
                    let mut f = failed(codes::S_CANCELLED, "the batch was cancelled before this input ended".into());
                    f.status = SessionStatus::Cancelled;
                    f.session_id = running.map(|s| s.to_string());
                    return f;
                }
                () = tokio::time::sleep(POLL) => {}
            }
            let filter = SessionFilter {
                caller_id: Some(caller.clone()),
                limit: Some(1000),
                ..SessionFilter::default()
            };
            if let Ok(found) = store.sessions(&filter).await {
                let root = found.iter().find(|s| s.session.parent_session_id.is_none());
                if let Some(root) = root {
                    running = Some(root.session.session_id.clone());
                    if !root.session.status.is_active() {
                        let cost = found.iter().fold(MicroUsd::ZERO, |a, s| a + s.cost);
                        return ended(store, &root.session, cost).await;
                    }
                }
            }
            if let Some(reason) = self.dead_letter(&id).await {
                return failed(
                    codes::B_QUEUE_DEAD,
                    format!("the queue gave up on job {id}: {reason}"),
                );
            }
            if Instant::now() > deadline {
                return failed(
                    codes::B_QUEUE_TIMEOUT,
                    format!(
                        "job {id} did not end within batch.queue_timeout_seconds ({} s){}",
                        self.timeout.as_secs(),
                        if running.is_some() {
                            ""
                        } else {
                            "; no worker started it"
                        }
                    ),
                );
            }
        }
    }

    /// Why the queue gave up on job `id`, when it did (the dead letters are read at most every
    /// [`DEAD_EVERY`], for all inputs at once).
    async fn dead_letter(&self, id: &str) -> Option<String> {
        let mut dead = self.dead.lock().await;
        if dead.0.is_none_or(|at| at.elapsed() >= DEAD_EVERY) {
            dead.0 = Some(Instant::now());
            match self.queue.dead_letters().await {
                Ok(letters) => dead.1 = letters.into_iter().map(|l| (l.id, l.reason)).collect(),
                Err(e) => {
                    tracing::warn!(error = %e, "The queue's dead letters cannot be read; reading again later.")
                }
            }
        }
        dead.1.get(id).cloned()
    }
}

fn failed(code: &'static rvbbit_core::ErrorCode, message: String) -> Finished {
    Finished {
        status: SessionStatus::Failed,
        session_id: None,
        cost: MicroUsd::ZERO,
        spent: MicroUsd::ZERO,
        retried: Vec::new(),
        error: Some((code.code, message)),
        output: Value::Null,
    }
}

/// A worker's ended root session as the input's outcome: a failed run's code is the one its
/// `cascade_error` event records (RVB-E001 when it cannot be read).
async fn ended(store: &dyn Store, s: &rvbbit_store::Session, cost: MicroUsd) -> Finished {
    let filter = rvbbit_store::EventFilter {
        session_id: Some(s.session_id.clone()),
        kind: Some(rvbbit_core::EventKind::CascadeError),
        limit: Some(1),
        ..rvbbit_store::EventFilter::default()
    };
    let recorded = match store.events(&filter).await {
        Ok(events) => events.into_iter().find_map(|e| {
            let err = e.event.error?;
            let code = err["code"].as_str().and_then(codes::lookup)?;
            Some((code.code, err["message"].as_str().unwrap_or_default().to_owned()))
        }),
        Err(_) => None,
    };
    let error = recorded.or_else(|| s.error.as_ref().map(|m| (codes::E_CELL_FAILED.code, m.clone())));
    Finished {
        status: s.status,
        session_id: Some(s.session_id.to_string()),
        cost,
        spent: MicroUsd::ZERO,
        retried: Vec::new(),
        error: if s.status == SessionStatus::Completed {
            None
        } else {
            error.or(Some((codes::E_CELL_FAILED.code, format!("the run {}", s.status))))
        },
        output: s.output.clone().unwrap_or(Value::Null),
    }
}
