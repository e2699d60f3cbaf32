//! Checkpoints and resume: what a waiting run saves, and how [`Engine::resume`](crate::Engine::resume) continues it in another
//! process without re-running the cells that completed (OBSERVABILITY.md §6.2 Proposed).
//!
//! When a run waits for a human, the checkpoint (in the store's `checkpoints` table) carries a
//! [`Continuation`]: the state, outputs, lineage, path, cost and counters so far, the next event sequence
//! number and the [`Stage`] of the waiting cell. The cascade text is the one recorded on the session.
//! Claiming and running a waiting session is in `resume.rs`.

use rvbbit_cascade::model::Cascade;
use rvbbit_core::MicroUsd;
use rvbbit_store::{Checkpoint, Session};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::human::Answer;
use crate::outcome::LineageEntry;

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

/// Human-in-the-loop bookkeeping of a run.
#[derive(Debug, Default)]
pub(crate) struct HitlState {
    /// The wait a resumed run continues (consumed by the first wait at its cell).
    pub(crate) resume: Option<Resume>,
    /// Answers to `ask_human` calls of the current cell, in order (replayed when a resumed cell re-runs).
    pub(crate) asked: Vec<Value>,
    /// How many `ask_human` calls the current cell made.
    pub(crate) ask_index: usize,
    /// Whether the run recorded a wait (so an unfinished one is abandoned when the run ends otherwise).
    pub(crate) waited: bool,
}

impl HitlState {
    /// The index of the cell a resumed run starts at.
    pub(crate) fn resume_cell(&self, cascade: &Cascade) -> Option<usize> {
        let r = self.resume.as_ref()?;
        cascade
            .cells
            .iter()
            .position(|c| c.name == r.checkpoint.cell_name)
    }
}
