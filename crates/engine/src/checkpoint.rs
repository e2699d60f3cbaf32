//! Checkpoints and resume: what a waiting run saves, and how [`Engine::resume`] continues it in another
//! process without re-running the cells that completed (OBSERVABILITY.md §6.2 Proposed).
//!
//! When a run waits for a human, the checkpoint (in the store's `checkpoints` table) carries a
//! [`Continuation`]: the state, outputs, lineage, path, cost and counters so far, the next event sequence
//! number and the [`Stage`] of the waiting cell. The cascade text is the one recorded on the session.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use rvbbit_cascade::model::Cascade;
use rvbbit_core::{MicroUsd, SessionId, SessionStatus, Timestamp};
use rvbbit_store::{Checkpoint, CheckpointStatus, Session};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::human::{Answer, Question};
use crate::progress::Progress;
use crate::run::{Engine, LineageEntry, Outcome, Run, RunRequest};

/// Where in the waiting cell the run stopped.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "stage", rename_all = "snake_case")]
pub(crate) enum Stage {
    /// The cell ran; its `human_input` waits. Resume does not run the cell again.
    HumanInput {
        /// The cell's output under review.
        output: Value,
        /// Its route, before the answer.
        route: Option<String>,
    },
    /// A screen cell waits for its form.
    Screen,
    /// The `ask_human` tool of an LLM cell waits. Resume runs the cell again from its start, replaying
    /// `answers` (given before the wait) to its first `ask_human` calls.
    AskHuman {
        /// Answers to the cell's earlier `ask_human` calls, in order.
        answers: Vec<Value>,
    },
}

/// Everything needed to continue a run at its waiting cell.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Continuation {
    /// Where in the cell.
    #[serde(flatten)]
    pub(crate) stage: Stage,
    pub(crate) state: Map<String, Value>,
    pub(crate) outputs: Map<String, Value>,
    pub(crate) lineage: Vec<LineageEntry>,
    /// Cell names run so far, the waiting cell last.
    pub(crate) path: Vec<String>,
    pub(crate) cost: MicroUsd,
    pub(crate) llm_calls: u32,
    pub(crate) tool_calls: u32,
    pub(crate) warnings: Vec<String>,
    /// The `--model` override of the first run.
    pub(crate) model: Option<String>,
    /// The sequence number of the next event.
    pub(crate) next_seq: i64,
}

impl Continuation {
    /// The continuation of `run` waiting at `stage`.
    pub(crate) fn of(run: &Run<'_>, stage: Stage) -> Self {
        Continuation {
            stage,
            state: run.state.lock().map(|s| s.clone()).unwrap_or_default(),
            outputs: run.outputs.clone(),
            lineage: run.lineage.clone(),
            path: run.path.clone(),
            cost: run.cost,
            llm_calls: run.llm_calls,
            tool_calls: run.tool_calls,
            warnings: run.warnings.clone(),
            model: run.model_override.clone(),
            next_seq: run.emit.next_seq(),
        }
    }
}

/// A run to continue: the session record, its pending checkpoint and what it saved.
#[derive(Clone, Debug)]
pub(crate) struct Resume {
    pub(crate) session: Session,
    pub(crate) checkpoint: Checkpoint,
    pub(crate) continuation: Continuation,
    /// An answer given with the resume (`rvbbit resume --value`).
    pub(crate) answer: Option<Answer>,
    /// Warnings about the resume itself (the cascade file changed).
    pub(crate) warnings: Vec<String>,
}

impl Resume {
    /// Put the saved run back into `run`; the run loop then starts at the waiting cell.
    pub(crate) fn restore(self: Box<Self>, run: &mut Run<'_>) {
        let c = &self.continuation;
        if let Ok(mut s) = run.state.lock() {
            *s = c.state.clone();
        }
        run.outputs = c.outputs.clone();
        run.lineage = c.lineage.clone();
        // The loop pushes the waiting cell again when it re-enters it.
        run.path = c.path.clone();
        run.path.pop();
        run.cost = c.cost;
        run.llm_calls = c.llm_calls;
        run.tool_calls = c.tool_calls;
        run.warnings = c.warnings.clone();
        run.warnings.extend(self.warnings.iter().cloned());
        run.hitl.resume = Some(*self);
    }
}

/// What to resume.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ResumeRequest {
    /// The waiting session.
    pub session_id: SessionId,
    /// An answer to its pending question (checked against the question; fired as its signal).
    pub answer: Option<Value>,
    /// Cancelling this token stops the resumed run and marks the session cancelled.
    pub cancel: CancellationToken,
    /// Live progress for a display.
    pub progress: Option<tokio::sync::watch::Sender<Progress>>,
}

impl ResumeRequest {
    /// Resume `session_id` without an answer (one must be in the store, or come from the engine's
    /// [`crate::human::Human`]).
    pub fn new(session_id: SessionId) -> Self {
        ResumeRequest {
            session_id,
            answer: None,
            cancel: CancellationToken::new(),
            progress: None,
        }
    }
}

impl Engine {
    /// Continue a `waiting` session at its waiting cell, in this process: same session id, same caller
    /// id, the cascade text recorded on the session (a warning, not an error, when the file changed
    /// since), and the state, outputs, lineage and cost saved in its checkpoint. Completed cells are not
    /// run again (an `ask_human` cell runs again from its start, replaying the answers it already got).
    ///
    /// Exactly once: the session is claimed with [`rvbbit_store::SessionStore::claim_waiting`] (a
    /// compare-and-set from `waiting` to `running`) before anything runs, so of two processes resuming
    /// the same session one continues and the other gets [`Error::NotResumable`] ("it is already being
    /// resumed by another process") having run nothing.
    ///
    /// # Errors
    /// [`Error::NotResumable`] (no store, unknown session, not waiting, no pending checkpoint, no recorded
    /// cascade, claimed by another process), [`Error::Answer`] when `answer` does not fit the question,
    /// [`Error::Store`] (a `Conflict` when the question was already answered). Once the run starts,
    /// failures are in the [`Outcome`] as with [`Engine::run`].
    pub async fn resume(&self, request: ResumeRequest) -> Result<Outcome> {
        let claimed = self.claim_resume(request).await?;
        Ok(self.run_claimed(claimed).await)
    }

    /// The first half of [`Engine::resume`]: check the session, its checkpoint and the answer, fire the
    /// answer, and claim the session (`waiting` → `running`, exactly once). Nothing runs yet; a door that
    /// answers at once and runs in the background (the HTTP API) refuses a losing claim synchronously,
    /// then hands the [`ClaimedResume`] to [`Engine::run_claimed`]. A claimed resume must be run: until
    /// then the session is `running` with no process behind it (a zombie `rvbbit doctor` reports).
    ///
    /// # Errors
    /// As [`Engine::resume`].
    pub async fn claim_resume(&self, request: ResumeRequest) -> Result<ClaimedResume> {
        let id = request.session_id.clone();
        let not = |reason: String| Error::NotResumable {
            session_id: id.clone(),
            reason,
        };
        let store = self
            .store
            .clone()
            .ok_or_else(|| not("this engine has no store to read the checkpoint from".into()))?;
        let session = match store.session(&id).await {
            Ok(s) => s,
            Err(rvbbit_store::Error::NotFound { .. }) => {
                return Err(not(format!("no session {id} in {}", store.url())));
            }
            Err(e) => return Err(e.into()),
        };
        if session.status == SessionStatus::Cancelled {
            // Cancelled while it waited (`rvbbit sessions cancel`): say so plainly.
            return Err(Error::SessionCancelled {
                session_id: id.clone(),
            });
        }
        if session.status != SessionStatus::Waiting {
            return Err(not(format!("it is {}, not waiting", session.status)));
        }
        let checkpoint = store
            .checkpoints(Some(&id), Some(CheckpointStatus::Pending))
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| not("it has no pending checkpoint".into()))?;
        let continuation: Continuation =
            serde_json::from_value(checkpoint.continuation.clone()).map_err(|e| {
                not(format!(
                    "its checkpoint {} is unreadable: {e}",
                    checkpoint.checkpoint_id
                ))
            })?;
        let text = session
            .cascade_text
            .clone()
            .ok_or_else(|| not("the session recorded no cascade text".into()))?;
        let file = session
            .cascade_file
            .clone()
            .unwrap_or_else(|| "cascade.yaml".into());
        let cascade = parse(&file, &text)
            .ok_or_else(|| not(format!("the cascade text recorded for {file} no longer parses")))?;
        let mut warnings = Vec::new();
        if let Ok(now) = tokio::fs::read_to_string(&file).await
            && now != text
        {
            let w = format!(
                "{file} changed since the session started; resuming with the text recorded on the session"
            );
            // Info, not warn: the outcome's `warnings` reach the caller, which shows them once.
            tracing::info!(session_id = %id, "{w}");
            warnings.push(w);
        }
        let answer = match request.answer {
            Some(value) => {
                if let Some(q) = Question::from_ui_spec(&checkpoint.ui_spec) {
                    q.normalize(&value).map_err(|message| Error::Answer {
                        cell: checkpoint.cell_name.clone(),
                        message,
                    })?;
                }
                // Latch the answer on the signal too, so `rvbbit signal list` shows who answered. Only
                // the first answer counts: a signal answered meanwhile refuses this one.
                let fired = store
                    .signal_fire(
                        &checkpoint.signal_name,
                        &value,
                        "resume",
                        Some(&id),
                        Timestamp::now(),
                    )
                    .await?;
                if fired.is_empty() {
                    crate::human::already_answered(store.as_ref(), &id, &checkpoint.signal_name).await?;
                }
                Some(Answer::new(value, "resume"))
            }
            None => None,
        };
        // The compare-and-set: of several processes resuming this session at once, exactly one moves it
        // from `waiting` to `running` (while its checkpoint is still pending); the others run nothing.
        let session = match store
            .claim_waiting(&id, &checkpoint.checkpoint_id, Timestamp::now())
            .await
        {
            Ok(s) => s,
            // Cancelled between the check above and the claim.
            Err(rvbbit_store::Error::Conflict { state, .. }) if state == "cancelled" => {
                return Err(Error::SessionCancelled {
                    session_id: id.clone(),
                });
            }
            Err(rvbbit_store::Error::Conflict { reason, .. }) => return Err(not(reason)),
            Err(e) => return Err(e.into()),
        };
        let mut run = RunRequest::new(cascade);
        run.input = session.input.clone();
        run.session_id = Some(id.clone());
        if let Some(caller) = session.caller_id.clone() {
            run.caller_id = caller;
        }
        run.model = continuation.model.clone();
        run.cascade_file = session.cascade_file.as_ref().map(Into::into);
        run.cascade_text = Some(text);
        run.cancel = request.cancel;
        if session.cancel_requested {
            // `rvbbit sessions cancel` asked a waiting session (with no process) to stop: the resume
            // finishes it as cancelled.
            run.cancel.cancel();
        }
        run.progress = request.progress;
        run.resume = Some(Box::new(Resume {
            session,
            checkpoint,
            continuation,
            answer,
            warnings,
        }));
        Ok(ClaimedResume { run, id })
    }

    /// The second half of [`Engine::resume`]: run a claimed session from its waiting cell. Failures are
    /// in the [`Outcome`], as with [`Engine::run`].
    pub async fn run_claimed(&self, claimed: ClaimedResume) -> Outcome {
        let ClaimedResume { run, id } = claimed;
        let span = tracing::info_span!("resume", session_id = %id);
        tracing::Instrument::instrument(self.run_inner(run, id), span).await
    }
}

/// A waiting session this process has claimed for resume (see [`Engine::claim_resume`]); run it with
/// [`Engine::run_claimed`].
#[derive(Debug)]
pub struct ClaimedResume {
    run: RunRequest,
    id: SessionId,
}

impl ClaimedResume {
    /// The claimed session.
    pub fn session_id(&self) -> &SessionId {
        &self.id
    }
}

fn parse(file: &str, text: &str) -> Option<Cascade> {
    let loaded = rvbbit_cascade::load_str(Path::new(file), text);
    loaded.document.and_then(|d| d.cascade().cloned())
}

/// End a run that waits for a human: the session stays `waiting` (not ended), everything is flushed, and
/// the outcome carries [`Error::Waiting`].
pub(crate) async fn suspended(
    run: Run<'_>,
    mut session: Session,
    request: RunRequest,
    cascade_id: String,
    error: Option<Error>,
    started: Instant,
) -> Outcome {
    session.status = SessionStatus::Waiting;
    session.current_cell = run.path.last().cloned();
    session.updated_at = Timestamp::now();
    session.heartbeat_at = session.updated_at;
    run.emit.session(session).await;
    run.emit.flush().await;
    let state = run.state.lock().map(|s| s.clone()).unwrap_or_default();
    let output = run
        .lineage
        .last()
        .map(|l| l.output.clone())
        .unwrap_or(Value::Null);
    let events = run.emit.count.load(std::sync::atomic::Ordering::Relaxed);
    Outcome {
        session_id: run.session_id.clone(),
        caller_id: request.caller_id,
        cascade_id,
        status: SessionStatus::Waiting,
        output,
        outputs: run.outputs,
        state,
        lineage: run.lineage,
        path: run.path,
        error,
        warnings: run.warnings,
        cost: run.cost,
        duration: started.elapsed(),
        llm_calls: run.llm_calls,
        tool_calls: run.tool_calls,
        events,
    }
}

/// End a run whose session another process resumed while this one waited: nothing is written (the
/// session and its events now belong to that process); the outcome carries
/// [`Error::ResumedElsewhere`] with the session still `running` there.
pub(crate) fn elsewhere(
    run: Run<'_>,
    request: RunRequest,
    cascade_id: String,
    error: Error,
    started: Instant,
) -> Outcome {
    let state = run.state.lock().map(|s| s.clone()).unwrap_or_default();
    let events = run.emit.count.load(std::sync::atomic::Ordering::Relaxed);
    Outcome {
        session_id: run.session_id.clone(),
        caller_id: request.caller_id,
        cascade_id,
        status: SessionStatus::Running,
        output: Value::Null,
        outputs: run.outputs,
        state,
        lineage: run.lineage,
        path: run.path,
        error: Some(error),
        warnings: run.warnings,
        cost: run.cost,
        duration: started.elapsed(),
        llm_calls: run.llm_calls,
        tool_calls: run.tool_calls,
        events,
    }
}

/// The engine's store, if any (for waits).
pub(crate) fn store(run: &Run<'_>) -> Option<Arc<dyn rvbbit_store::Store>> {
    run.engine.store.clone()
}
