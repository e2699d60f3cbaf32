//! The journal of a run that may be delivered more than once (a queue job), and the record of its side
//! effects: what lets a redelivered job continue where the last attempt stopped instead of starting over
//! (durable execution, as Temporal or Restate do it: a journal of completed steps plus idempotency keys).
//!
//! - A [`JournalEntry`] is written after each completed top-level cell, under the run's *run key* (a queue
//!   job's submission id), before the next cell starts. A later attempt of the same run key reads the
//!   latest entry and continues after it: completed cells are not run again.
//! - An [`Effect`] is one call of a side-effecting tool under an idempotency key. It is recorded as
//!   `started` before the call and `done` (with the result) after it, so a later attempt that reaches the
//!   same call finds it done and takes the recorded result instead of calling again. A call cut off
//!   between the two records is `started`: the next attempt calls again (at-least-once), with the same
//!   key, which the tool receives so that it can deduplicate on its own side.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use rvbbit_core::{SessionId, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::Result;
use rvbbit_core::event::UnknownValue;

/// One completed step of a journaled run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct JournalEntry {
    /// The run key: the same for every attempt of one logical run.
    pub run_key: String,
    /// Cells completed so far (1 after the first cell); unique per run key.
    pub step: i64,
    /// The session (attempt) that completed the step.
    pub session_id: SessionId,
    /// The cell just completed.
    pub cell_name: String,
    /// Everything the engine needs to continue after the step (opaque to the store).
    pub continuation: Value,
    /// When the step was recorded.
    pub created_at: Timestamp,
}

impl JournalEntry {
    /// An entry recorded now.
    pub fn new(
        run_key: impl Into<String>,
        step: i64,
        session_id: SessionId,
        cell_name: impl Into<String>,
        continuation: Value,
    ) -> Self {
        JournalEntry {
            run_key: run_key.into(),
            step,
            session_id,
            cell_name: cell_name.into(),
            continuation,
            created_at: Timestamp::now(),
        }
    }
}

/// Where a side effect is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EffectStatus {
    /// The call started and has not reported back (in flight, or cut off).
    Started,
    /// The call returned; its result is recorded.
    Done,
    /// The call returned an error; a later attempt calls again.
    Failed,
}

impl EffectStatus {
    /// The stable text form.
    pub const fn as_str(self) -> &'static str {
        match self {
            EffectStatus::Started => "started",
            EffectStatus::Done => "done",
            EffectStatus::Failed => "failed",
        }
    }
}

impl fmt::Display for EffectStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EffectStatus {
    type Err = UnknownValue;
    fn from_str(s: &str) -> std::result::Result<Self, UnknownValue> {
        match s {
            "started" => Ok(EffectStatus::Started),
            "done" => Ok(EffectStatus::Done),
            "failed" => Ok(EffectStatus::Failed),
            _ => Err(UnknownValue {
                what: "effect status",
                value: s.to_owned(),
                choices: vec!["started", "done", "failed"],
            }),
        }
    }
}

/// One side-effecting tool call under an idempotency key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Effect {
    /// The idempotency key (`<run key>/<step>.<cell>/<n>`).
    pub key: String,
    /// The session (attempt) that made the latest call.
    pub session_id: SessionId,
    /// The calling cell.
    pub cell_name: String,
    /// The tool.
    pub tool: String,
    /// Where it is.
    pub status: EffectStatus,
    /// How many times the call was started (more than 1: an earlier start was cut off or failed).
    pub attempts: i64,
    /// The recorded result, once done.
    pub result: Option<Value>,
    /// When the latest call started.
    pub started_at: Timestamp,
    /// When it reported back.
    pub finished_at: Option<Timestamp>,
}

impl Effect {
    /// A call of `tool` starting now.
    pub fn start(
        key: impl Into<String>,
        session_id: SessionId,
        cell_name: impl Into<String>,
        tool: impl Into<String>,
    ) -> Self {
        Effect {
            key: key.into(),
            session_id,
            cell_name: cell_name.into(),
            tool: tool.into(),
            status: EffectStatus::Started,
            attempts: 1,
            result: None,
            started_at: Timestamp::now(),
            finished_at: None,
        }
    }
}

/// What [`JournalStore::effect_begin`] found.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum EffectBegin {
    /// No earlier call: this one is the first; go ahead.
    First,
    /// An earlier call started and never reported back (or failed): go ahead again; this is the
    /// `attempts`-th start.
    Again {
        /// Starts so far, this one included.
        attempts: i64,
    },
    /// An earlier call finished: do not call again; here is what it returned.
    Done(Effect),
}

/// Journals of runs and their side effects.
#[async_trait]
pub trait JournalStore: Send + Sync {
    /// Record a completed step. Compare-and-set: a step already recorded for the run key by *another*
    /// session is a [`crate::Error::Conflict`] (two attempts of one run are alive; the later one must
    /// stop); recording the same step again from the same session is a no-op.
    async fn journal_put(&self, entry: &JournalEntry) -> Result<()>;

    /// The latest step recorded for `run_key`.
    async fn journal_latest(&self, run_key: &str) -> Result<Option<JournalEntry>>;

    /// Claim the call `effect.key` before making it (atomic): [`EffectBegin::First`] inserts it as
    /// started; a started or failed earlier call is restarted ([`EffectBegin::Again`]); a done one is
    /// left alone ([`EffectBegin::Done`]).
    async fn effect_begin(&self, effect: &Effect) -> Result<EffectBegin>;

    /// Record how the call `key` ended: `Done` with its result, or `Failed` with the error.
    async fn effect_finish(
        &self,
        key: &str,
        status: EffectStatus,
        result: &Value,
        at: Timestamp,
    ) -> Result<()>;

    /// The recorded effects whose key starts with `prefix`, oldest first (for inspection and tests).
    async fn effects(&self, prefix: &str) -> Result<Vec<Effect>>;
}

/// Another attempt holds the step.
pub(crate) fn conflict(e: &JournalEntry, holder: &str) -> crate::Error {
    crate::Error::Conflict {
        what: "run journal",
        id: e.run_key.clone(),
        state: format!("step {} recorded by session {holder}", e.step),
        reason: format!(
            "another attempt of this run (session {holder}) completed step {} (cell `{}`) first; this attempt stops",
            e.step, e.cell_name
        ),
    }
}
