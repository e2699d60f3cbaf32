//! Resuming a waiting session ([`Engine::resume`]): claim it exactly once, then run it from its
//! waiting cell with what its checkpoint saved (`checkpoint.rs`).

use std::path::Path;

use rvbbit_cascade::model::Cascade;
use rvbbit_core::{SessionId, SessionStatus, Timestamp};
use rvbbit_store::{Checkpoint, CheckpointStatus, Session, Store};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::checkpoint::{Continuation, Resume};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::human::{Answer, Question};
use crate::outcome::Outcome;
use crate::progress::Progress;
use crate::request::RunRequest;

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
        let store = self.store.clone().ok_or_else(|| {
            not_resumable(&id, "this engine has no store to read the checkpoint from".into())
        })?;
        let session = waiting_session(store.as_ref(), &id).await?;
        let (checkpoint, continuation) = pending_checkpoint(store.as_ref(), &id).await?;
        let (cascade, text, warnings) = recorded_cascade(&session, &id).await?;
        let answer = match request.answer {
            Some(value) => Some(fire_answer(store.as_ref(), &id, &checkpoint, value).await?),
            None => None,
        };
        let session = claim(store.as_ref(), &id, &checkpoint).await?;
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

fn not_resumable(id: &SessionId, reason: String) -> Error {
    Error::NotResumable {
        session_id: id.clone(),
        reason,
    }
}

/// The session `id`, which must be waiting.
async fn waiting_session(store: &dyn Store, id: &SessionId) -> Result<Session> {
    let session = match store.session(id).await {
        Ok(s) => s,
        Err(rvbbit_store::Error::NotFound { .. }) => {
            return Err(not_resumable(id, format!("no session {id} in {}", store.url())));
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
        return Err(not_resumable(
            id,
            format!("it is {}, not waiting", session.status),
        ));
    }
    Ok(session)
}

/// The session's pending checkpoint and the continuation saved in it.
async fn pending_checkpoint(store: &dyn Store, id: &SessionId) -> Result<(Checkpoint, Continuation)> {
    let checkpoint = store
        .checkpoints(Some(id), Some(CheckpointStatus::Pending))
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| not_resumable(id, "it has no pending checkpoint".into()))?;
    let continuation: Continuation =
        serde_json::from_value(checkpoint.continuation.clone()).map_err(|e| {
            not_resumable(
                id,
                format!("its checkpoint {} is unreadable: {e}", checkpoint.checkpoint_id),
            )
        })?;
    Ok((checkpoint, continuation))
}

/// The cascade recorded on the session (its text, parsed), with a warning when its file changed since.
async fn recorded_cascade(session: &Session, id: &SessionId) -> Result<(Cascade, String, Vec<String>)> {
    let text = session
        .cascade_text
        .clone()
        .ok_or_else(|| not_resumable(id, "the session recorded no cascade text".into()))?;
    let file = session
        .cascade_file
        .clone()
        .unwrap_or_else(|| "cascade.yaml".into());
    let cascade = parse(&file, &text).ok_or_else(|| {
        not_resumable(
            id,
            format!("the cascade text recorded for {file} no longer parses"),
        )
    })?;
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
    Ok((cascade, text, warnings))
}

/// Check an answer given with the resume against the question and fire it as the checkpoint's signal.
async fn fire_answer(
    store: &dyn Store,
    id: &SessionId,
    checkpoint: &Checkpoint,
    value: Value,
) -> Result<Answer> {
    if let Some(q) = Question::from_ui_spec(&checkpoint.ui_spec) {
        q.normalize(&value).map_err(|message| Error::Answer {
            cell: checkpoint.cell_name.clone(),
            message,
        })?;
    }
    // Latch the answer on the signal too, so `rvbbit signal list` shows who answered. Only the first
    // answer counts: a signal answered meanwhile refuses this one.
    let fired = store
        .signal_fire(
            &checkpoint.signal_name,
            &value,
            "resume",
            Some(id),
            Timestamp::now(),
        )
        .await?;
    if fired.is_empty() {
        crate::human::already_answered(store, id, &checkpoint.signal_name).await?;
    }
    Ok(Answer::new(value, "resume"))
}

/// The compare-and-set: of several processes resuming this session at once, exactly one moves it from
/// `waiting` to `running` (while its checkpoint is still pending); the others run nothing.
async fn claim(store: &dyn Store, id: &SessionId, checkpoint: &Checkpoint) -> Result<Session> {
    match store
        .claim_waiting(id, &checkpoint.checkpoint_id, Timestamp::now())
        .await
    {
        Ok(s) => Ok(s),
        // Cancelled between the check above and the claim.
        Err(rvbbit_store::Error::Conflict { state, .. }) if state == "cancelled" => {
            Err(Error::SessionCancelled {
                session_id: id.clone(),
            })
        }
        Err(rvbbit_store::Error::Conflict { reason, .. }) => Err(not_resumable(id, reason)),
        Err(e) => Err(e.into()),
    }
}
