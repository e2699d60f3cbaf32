//! The tables `RVBBIT RUN` and `rvbbit_run_batch` share with their batch runs ([`BatchTables`]): while a
//! batch run lasts, the `sql_data` cells of that run (found by its session id) see its table.
//!
//! One handle is made by [`register_tools`](crate::register_tools) (the `sql_data` tool keeps a clone)
//! and given to [`SqlRuntime::new`](crate::SqlRuntime::new), which adds each batch run's table for the
//! length of the run. State lives in the handle, never in a process-global.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use datafusion::catalog::TableProvider;
use rvbbit_core::SessionId;

/// The tables shared with one batch session: `(name, table)`.
pub(crate) type Tables = Vec<(String, Arc<dyn TableProvider>)>;

/// Tables shared with running batch sessions, by session id. Cheap to clone: clones share the tables.
#[derive(Clone, Default)]
pub struct BatchTables {
    by_session: Arc<Mutex<HashMap<String, Tables>>>,
}

impl std::fmt::Debug for BatchTables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sessions = self.by_session.lock().unwrap_or_else(|p| p.into_inner()).len();
        f.debug_struct("BatchTables")
            .field("sessions", &sessions)
            .finish()
    }
}

impl BatchTables {
    /// A handle sharing no table yet.
    pub fn new() -> Self {
        BatchTables::default()
    }

    /// Share `table` as `name` with the session `session` until the returned guard is dropped.
    pub(crate) fn share(&self, session: &SessionId, name: &str, table: Arc<dyn TableProvider>) -> Sharing {
        self.by_session
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(session.as_str().to_owned())
            .or_default()
            .push((name.to_owned(), table));
        Sharing {
            tables: self.clone(),
            session: session.as_str().to_owned(),
        }
    }

    /// The tables shared with `session` (a running batch session), if any.
    pub(crate) fn shared_with(&self, session: &SessionId) -> Tables {
        self.by_session
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(session.as_str())
            .cloned()
            .unwrap_or_default()
    }
}

/// While alive, `sql_data` cells of the session see the table.
pub(crate) struct Sharing {
    tables: BatchTables,
    session: String,
}

impl Drop for Sharing {
    fn drop(&mut self) {
        self.tables
            .by_session
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.session);
    }
}
