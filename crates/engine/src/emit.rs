//! Event emission: every event of a session carries its ids, caller and cascade, numbered in order.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use rvbbit_core::{CallerId, Event, EventKind, SessionId};
use rvbbit_store::{Session, WriterHandle};
use tokio::sync::watch;

use crate::progress::Progress;

/// Builds and sends the events of one session. Clones share the sequence and the count, so the
/// candidate branches of a cell (each with its own clone, see [`Emitter::for_candidate`]) number their
/// events in one order.
#[derive(Clone, Debug)]
pub(crate) struct Emitter {
    writer: Option<WriterHandle>,
    seq: Arc<AtomicI64>,
    session_id: SessionId,
    caller_id: CallerId,
    cascade_id: String,
    /// Set on every event of a candidate branch.
    candidate_index: Option<i32>,
    parent_session_id: Option<SessionId>,
    root_session_id: SessionId,
    depth: u32,
    /// How many events were emitted.
    pub(crate) count: Arc<AtomicI64>,
    /// Live progress for a display, derived from the events sent.
    progress: Option<Arc<watch::Sender<Progress>>>,
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
            seq: Arc::new(AtomicI64::new(0)),
            root_session_id: session_id.clone(),
            parent_session_id: None,
            depth: 0,
            session_id,
            caller_id,
            cascade_id,
            candidate_index: None,
            count: Arc::new(AtomicI64::new(0)),
            progress: None,
        }
    }

    /// A clone whose events carry `candidate_index` (the same sequence and count).
    pub(crate) fn for_candidate(&self, index: u32) -> Emitter {
        let mut e = self.clone();
        e.candidate_index = Some(i32::try_from(index).unwrap_or(i32::MAX));
        e
    }

    /// Mark the session as a child of `parent` in the run tree rooted at `root`, at `depth`.
    pub(crate) fn with_parent(mut self, parent: Option<SessionId>, root: SessionId, depth: u32) -> Self {
        self.parent_session_id = parent;
        self.root_session_id = root;
        self.depth = depth;
        self
    }

    /// Publish progress derived from every event sent to `tx`.
    pub(crate) fn with_progress(mut self, tx: Option<watch::Sender<Progress>>) -> Self {
        self.progress = tx.map(Arc::new);
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
        e.parent_session_id = self.parent_session_id.clone();
        e.root_session_id = self.root_session_id.clone();
        e.depth = self.depth;
        e.cascade_id = Some(self.cascade_id.clone());
        e.cell_name = cell.map(str::to_owned);
        e.candidate_index = self.candidate_index;
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

    /// Records the writer could not store so far (spilled or lost), or `None` without a writer. Equal
    /// before and after a flush means every record sent in between reached the store.
    pub(crate) fn unstored(&self) -> Option<u64> {
        self.writer.as_ref().map(|w| w.spilled() + w.lost())
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
