//! How a run ended: [`Outcome`], with the [`LineageEntry`] of every executed cell.

use std::time::Duration;

use rvbbit_core::{CallerId, MicroUsd, SessionId, SessionStatus};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::Error;

/// One executed cell in order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LineageEntry {
    /// The cell.
    pub cell: String,
    /// Its output.
    pub output: Value,
}

/// How a run ended.
#[derive(Debug)]
#[non_exhaustive]
pub struct Outcome {
    /// The session.
    pub session_id: SessionId,
    /// The caller.
    pub caller_id: CallerId,
    /// The cascade.
    pub cascade_id: String,
    /// `completed`, `failed`, `cancelled`, or `waiting` (stopped at a human-in-the-loop cell; the error is
    /// [`Error::Waiting`] and [`Engine::resume`](crate::Engine::resume) continues it).
    pub status: SessionStatus,
    /// The final output: the last lineage entry's output (`null` when no cell finished).
    pub output: Value,
    /// Every cell's output by name (the last one when a cell ran several times).
    pub outputs: Map<String, Value>,
    /// The final session state.
    pub state: Map<String, Value>,
    /// Every executed cell in order.
    pub lineage: Vec<LineageEntry>,
    /// Cell names in execution order, including a failed last cell.
    pub path: Vec<String>,
    /// Why it failed or was cancelled.
    pub error: Option<Error>,
    /// Non-fatal problems (inputs not in `inputs_schema`, ...).
    pub warnings: Vec<String>,
    /// Sum of the known costs of the LLM calls.
    pub cost: MicroUsd,
    /// Wall time of the run.
    pub duration: Duration,
    /// Provider calls made.
    pub llm_calls: u32,
    /// Tool calls made (deterministic cells and model tool calls).
    pub tool_calls: u32,
    /// Events emitted.
    pub events: i64,
}
