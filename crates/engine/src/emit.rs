//! Event emission: every event of a session carries its ids, caller and cascade, numbered in order.

use std::sync::atomic::{AtomicI64, Ordering};

use rvbbit_core::{CallerId, Event, EventKind, SessionId};
use rvbbit_store::{Session, WriterHandle};
use tokio::sync::watch;

use crate::progress::Progress;

/// Builds and sends the events of one session.
#[derive(Debug)]
pub(crate) struct Emitter {
    writer: Option<WriterHandle>,
    seq: AtomicI64,
    session_id: SessionId,
    caller_id: CallerId,
    cascade_id: String,
    /// How many events were emitted.
    pub(crate) count: AtomicI64,
    /// Live progress for a display, derived from the events sent.
    progress: Option<watch::Sender<Progress>>,
}

impl Emitter {
    pub(crate) fn new(
        writer: Option<WriterHandle>,
        session_id: SessionId,
        caller_id: CallerId,
        cascade_id: String,
    ) -> Self {
        Emitter {
            writer,
            seq: AtomicI64::new(0),
            session_id,
            caller_id,
            cascade_id,
            count: AtomicI64::new(0),
            progress: None,
        }
    }

    /// Publish progress derived from every event sent to `tx`.
    pub(crate) fn with_progress(mut self, tx: Option<watch::Sender<Progress>>) -> Self {
        self.progress = tx;
        self
    }

    /// Continue numbering at `seq` (a resumed session goes on where it stopped).
    pub(crate) fn start_at(self, seq: i64) -> Self {
        self.seq.store(seq, Ordering::Relaxed);
        self
    }

    /// The sequence number the next event gets.
    pub(crate) fn next_seq(&self) -> i64 {
        self.seq.load(Ordering::Relaxed)
    }

    /// The cascade id.
    pub(crate) fn cascade_id(&self) -> &str {
        &self.cascade_id
    }

    /// The caller of the session.
    pub(crate) fn caller(&self) -> &CallerId {
        &self.caller_id
    }

    /// A new event of this session (not yet sent).
    pub(crate) fn event(&self, kind: EventKind, cell: Option<&str>) -> Event {
        let mut e = Event::new(
            kind,
            self.session_id.clone(),
            self.seq.fetch_add(1, Ordering::Relaxed),
        );
        e.caller_id = Some(self.caller_id.clone());
        e.cascade_id = Some(self.cascade_id.clone());
        e.cell_name = cell.map(str::to_owned);
        e
    }

    /// Send an event to the writer. A closed writer is logged, never fatal: the run goes on.
    pub(crate) async fn send(&self, event: Event) {
        self.count.fetch_add(1, Ordering::Relaxed);
        if let Some(tx) = &self.progress {
            tx.send_modify(|p| p.apply(&event));
        }
        if let Some(w) = &self.writer
            && let Err(e) = w.event(event).await
        {
            tracing::warn!(error = %e, session_id = %self.session_id, "Event not recorded");
        }
    }

    /// Send a session record.
    pub(crate) async fn session(&self, session: Session) {
        if let Some(w) = &self.writer
            && let Err(e) = w.session(session).await
        {
            tracing::warn!(error = %e, session_id = %self.session_id, "Session record not written");
        }
    }

    /// Wait until everything sent so far is stored or spilled.
    pub(crate) async fn flush(&self) {
        if let Some(w) = &self.writer
            && let Err(e) = w.flush().await
        {
            tracing::warn!(error = %e, session_id = %self.session_id, "Events not flushed");
        }
    }
}
