//! Progress of a run, for a live display (the CLI's progress line; later the server's streams).
//!
//! The engine derives every update from the events it emits (`cell_start`, `llm_response`, ...), so a
//! display never needs business logic of its own: it subscribes to a [`tokio::sync::watch`] channel
//! passed in [`crate::RunRequest::progress`] and draws the latest [`Progress`].

use rvbbit_core::{Event, EventKind, MicroUsd};

/// What a run is doing now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress {
    /// The cell being executed (the last `cell_start`).
    pub cell: Option<String>,
    /// The turn of that cell (1-based), once it made an LLM call.
    pub turn: Option<u32>,
    /// LLM calls so far.
    pub llm_calls: u32,
    /// Known cost so far.
    pub cost: MicroUsd,
    /// Events emitted so far.
    pub events: i64,
    /// The signal name of a human-in-the-loop wait in progress (a display should step aside so a
    /// prompt can be shown).
    pub waiting: Option<String>,
}

impl Progress {
    /// Fold one emitted event into the progress.
    pub(crate) fn apply(&mut self, e: &Event) {
        self.events += 1;
        match e.kind {
            EventKind::CellStart => {
                self.cell = e.cell_name.clone();
                self.turn = None;
            }
            EventKind::LlmResponse | EventKind::LlmError => {
                self.llm_calls += 1;
                self.turn = e.turn.and_then(|t| u32::try_from(t).ok()).map(|t| t + 1);
                if let Some(c) = e.cost {
                    self.cost += c;
                }
            }
            EventKind::ComputeCost => {
                if let Some(c) = e.cost {
                    self.cost += c;
                }
            }
            EventKind::CheckpointCreated => {
                self.waiting = e
                    .metadata
                    .get("signal_name")
                    .and_then(|v| v.as_str())
                    .map(str::to_owned);
            }
            EventKind::CheckpointResolved => self.waiting = None,
            _ => {}
        }
    }
}
