//! The journal a run with a run key carries (`journal.rs` records and reads it): the run key, where the
//! store is, and the cell a continued run starts at; and what each journal step saves.

use std::sync::Arc;

use rvbbit_cascade::model::Cascade;
use rvbbit_core::MicroUsd;
use rvbbit_store::Store;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::outcome::LineageEntry;

/// What a journal entry saves: everything needed to continue after the step.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Saved {
    pub(crate) state: Map<String, Value>,
    pub(crate) outputs: Map<String, Value>,
    pub(crate) lineage: Vec<LineageEntry>,
    pub(crate) path: Vec<String>,
    pub(crate) cost: MicroUsd,
    pub(crate) llm_calls: u32,
    pub(crate) tool_calls: u32,
    pub(crate) warnings: Vec<String>,
    /// The cell the run goes to next.
    pub(crate) next_cell: String,
}

/// The journal of one run.
#[derive(Clone)]
pub(crate) struct Journal {
    /// The run key.
    pub(crate) key: String,
    pub(crate) store: Arc<dyn Store>,
    /// The cell to start at (set when the run continues an earlier attempt).
    pub(crate) start: Option<String>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("key", &self.key)
            .field("start", &self.start)
            .finish_non_exhaustive()
    }
}

impl Journal {
    /// The journal of `key`, starting at the first cell.
    pub(crate) fn new(key: &str, store: Arc<dyn Store>) -> Self {
        Journal {
            key: key.to_owned(),
            store,
            start: None,
        }
    }

    /// The index of the cell a continued run starts at.
    pub(crate) fn start_cell(&self, cascade: &Cascade) -> Option<usize> {
        let name = self.start.as_deref()?;
        cascade.cells.iter().position(|c| c.name == name)
    }
}
