//! Durable execution of a run with a run key ([`crate::RunRequest::run_key`], a queue job's submission):
//! the run journals each completed top-level cell in the store, a later attempt of the same run key
//! continues after the latest journaled cell instead of starting over, and each call of a tool that
//! changes the world ([`SideEffect::Irreversible`]) is recorded before and after under an idempotency
//! key, so an attempt that reaches a call an earlier attempt finished takes the recorded result.
//!
//! What is exactly once and what is at-least-once (docs/workers.md, "At-least-once, exactly"):
//! - a completed, journaled cell never runs again;
//! - a side effect recorded `done` is never repeated, even when its cell runs again (the attempt died
//!   after the effect but before the cell's journal entry);
//! - a side effect cut off between its two records (`started`, never `done`) is made again by the next
//!   attempt, with the same idempotency key: that is the at-least-once window, one call wide.

use std::sync::Arc;

use rvbbit_cascade::model::Cell;
use rvbbit_core::{EventKind, Timestamp};
use rvbbit_store::{Effect, EffectBegin, EffectStatus, JournalEntry, Store};
use serde_json::{Value, json};

use crate::durable::{Journal, Saved};
use crate::error::{Error, Result};
use crate::run::Run;
use crate::tools::{SideEffect, Tool, ToolError};

/// Open the journal of `key` for `run`: when an earlier attempt journaled steps, put the run back to
/// the state after the latest one (the loop then starts at the cell that came next).
///
/// # Errors
/// [`Error::Store`] when the journal cannot be read; [`Error::Internal`] when an entry is unreadable or
/// names a cell the cascade does not have (the cascade text is the job's, so it cannot differ).
pub(crate) async fn open(store: Arc<dyn Store>, key: &str, run: &mut Run<'_>) -> Result<()> {
    let mut journal = Journal::new(key, store.clone());
    if let Some(entry) = store.journal_latest(key).await? {
        let saved: Saved = serde_json::from_value(entry.continuation.clone()).map_err(|e| {
            Error::Internal(format!(
                "journal step {} of run {key} is unreadable: {e}",
                entry.step
            ))
        })?;
        if !run.cascade.cells.iter().any(|c| c.name == saved.next_cell) {
            return Err(Error::Internal(format!(
                "journal step {} of run {key} continues at cell `{}`, which the cascade does not have",
                entry.step, saved.next_cell
            )));
        }
        let note = format!(
            "continued run {key} after step {} (cell `{}`, completed by session {}); the {} cell(s) before were not run again",
            entry.step,
            entry.cell_name,
            entry.session_id,
            saved.path.len()
        );
        tracing::info!(session_id = %run.session_id, "{note}");
        let mut e = run.emit.event(EventKind::Validation, None);
        e.metadata = json!({"check": "journal", "severity": "info", "passed": true,
            "run_key": key, "step": entry.step, "previous_session_id": entry.session_id});
        e.content = json!(note);
        run.emit.send(e).await;
        journal.start = Some(saved.next_cell.clone());
        run.continue_from(
            saved.state,
            saved.outputs,
            saved.lineage,
            saved.path,
            (saved.cost, saved.llm_calls, saved.tool_calls),
            saved.warnings,
        );
        run.warn(note);
    }
    run.journal = Some(journal);
    Ok(())
}

/// Journal the cell just completed (`run.path` ends with it); `next` is where the run goes now.
///
/// # Errors
/// [`Error::Superseded`] when another attempt of the run recorded this step first (this attempt must
/// stop); [`Error::Store`] when the step cannot be recorded.
pub(crate) async fn record(run: &Run<'_>, cell: &Cell, next: &str) -> Result<()> {
    let Some(journal) = &run.journal else {
        return Ok(());
    };
    let totals = run.totals();
    let saved = Saved {
        state: run.state_snapshot(),
        outputs: run.outputs.clone(),
        lineage: run.lineage.clone(),
        path: run.path.clone(),
        cost: totals.cost(),
        llm_calls: totals.llm_calls(),
        tool_calls: totals.tool_calls(),
        warnings: totals.warnings().to_vec(),
        next_cell: next.to_owned(),
    };
    let continuation = serde_json::to_value(&saved)
        .map_err(|e| Error::Internal(format!("a journal step does not serialise: {e}")))?;
    let step = i64::try_from(run.path.len()).unwrap_or(i64::MAX);
    let entry = JournalEntry::new(
        &journal.key,
        step,
        run.session_id.clone(),
        &cell.name,
        continuation,
    );
    match journal.store.journal_put(&entry).await {
        Ok(()) => Ok(()),
        Err(rvbbit_store::Error::Conflict { reason, .. }) => Err(Error::Superseded {
            run_key: journal.key.clone(),
            reason,
        }),
        Err(e) => Err(e.into()),
    }
}

/// How a side-effecting call goes ahead.
pub(crate) enum Claim {
    /// Not journaled (no run key, or a tool without side effects): call as usual.
    Free,
    /// Claimed in the store: call, then [`finish`].
    Claimed {
        /// Starts of this call so far (more than 1: an earlier attempt was cut off).
        attempts: i64,
    },
    /// An earlier attempt finished this call: here is its result; do not call.
    Replay(Value),
}

/// The idempotency key of the next call of `tool` in `cell`, when the tool changes the world.
pub(crate) fn key_for(run: &mut Run<'_>, cell: &Cell, tool: &dyn Tool) -> Option<String> {
    (tool.side_effect() == SideEffect::Irreversible).then(|| run.next_effect_key(cell))
}

/// Claim the call under `key` before making it (journaled runs only).
///
/// # Errors
/// [`ToolError::Failed`] when the store cannot record the claim (the call is not made: without the
/// record, a later attempt could not know it happened).
pub(crate) async fn claim(
    run: &Run<'_>,
    cell: &Cell,
    tool: &dyn Tool,
    key: &str,
) -> std::result::Result<Claim, ToolError> {
    let Some(journal) = &run.journal else {
        return Ok(Claim::Free);
    };
    let effect = Effect::start(key, run.session_id.clone(), &cell.name, tool.name());
    match journal.store.effect_begin(&effect).await {
        Ok(EffectBegin::First) => Ok(Claim::Claimed { attempts: 1 }),
        Ok(EffectBegin::Again { attempts }) => Ok(Claim::Claimed { attempts }),
        Ok(EffectBegin::Done(done)) => Ok(Claim::Replay(done.result.unwrap_or(Value::Null))),
        Ok(_) => Ok(Claim::Claimed { attempts: 0 }),
        Err(e) => Err(ToolError::Failed(format!(
            "the side effect was not made: its idempotency key {key} cannot be recorded in the store ({e})"
        ))),
    }
}

/// Record how a claimed call ended; a failure to record is a warning on the run (a later attempt
/// would make the call again).
pub(crate) async fn finish(run: &mut Run<'_>, key: &str, result: &std::result::Result<Value, ToolError>) {
    let Some(journal) = run.journal.clone() else {
        return;
    };
    let (status, value) = match result {
        Ok(v) => (EffectStatus::Done, v.clone()),
        Err(e) => (EffectStatus::Failed, json!({"error": e.to_string()})),
    };
    if let Err(e) = journal
        .store
        .effect_finish(key, status, &value, Timestamp::now())
        .await
    {
        let w = format!(
            "the end of side effect {key} was not recorded ({e}): a redelivery of this job would make the call again"
        );
        tracing::warn!(session_id = %run.session_id, "{w}");
        run.warn(w);
    }
}
