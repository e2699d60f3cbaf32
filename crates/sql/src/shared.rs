//! What the functions of one session share ([`Shared`]): the runtime handle, the statement being
//! executed, the session's origin and protocol, and its default schema. `rvbbit_udf`, `rvbbit_run`,
//! `rvbbit_run_batch` and the statement runners all reach the runtime through it.

use std::sync::{Arc, Mutex};

use rvbbit_core::{CallerId, Origin};

use crate::runtime::Runtime;
use crate::sources::SessionSchema;
use crate::statement::Statement;

/// What the functions of one session share: the runtime and the statement being executed.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) runtime: Arc<Runtime>,
    /// The statement being executed.
    current: Mutex<Option<Arc<Statement>>>,
    /// What kind of caller ids this session's statements get.
    pub(crate) origin: Origin,
    /// Recorded in each `sql_query` event.
    pub(crate) protocol: &'static str,
    /// The session's default schema (its own tables).
    pub(crate) schema: Arc<SessionSchema>,
    /// Warnings of the session's start (operator files skipped), reported with its next statement.
    notes: Mutex<Vec<String>>,
}

impl Shared {
    /// The state of a new session of `origin` over `runtime`, with no statement running.
    pub(crate) fn new(
        runtime: Arc<Runtime>,
        origin: Origin,
        protocol: &'static str,
        schema: Arc<SessionSchema>,
    ) -> Self {
        Shared {
            runtime,
            current: Mutex::new(None),
            origin,
            protocol,
            schema,
            notes: Mutex::new(Vec::new()),
        }
    }

    /// The statement being executed, or a fresh one when the context is used directly.
    pub(crate) fn statement(&self) -> Arc<Statement> {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        current
            .get_or_insert_with(|| Arc::new(Statement::new(CallerId::new(self.origin))))
            .clone()
    }

    /// The statement being executed, if one is (none while a wire client's statement is described).
    pub(crate) fn current(&self) -> Option<Arc<Statement>> {
        self.current.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The session's default schema (where `RVBBIT RUN` registers its table).
    pub(crate) fn schema(&self) -> Arc<SessionSchema> {
        self.schema.clone()
    }

    /// Make `stmt` the statement being executed (`None` when it ended).
    pub(crate) fn set(&self, stmt: Option<Arc<Statement>>) {
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = stmt;
    }

    /// Keep `notes` for the session's next statement.
    pub(crate) fn add_notes(&self, notes: Vec<String>) {
        self.notes.lock().unwrap_or_else(|p| p.into_inner()).extend(notes);
    }

    /// The notes kept for the next statement (each reported once).
    pub(crate) fn take_notes(&self) -> Vec<String> {
        std::mem::take(&mut *self.notes.lock().unwrap_or_else(|p| p.into_inner()))
    }
}
