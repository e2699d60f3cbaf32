//! One store poller per followed session, shared by every live stream of that session.
//!
//! Without it each SSE or WebSocket client polled the store itself (two queries every 50 ms), so 200
//! clients on one run meant 8,000 queries a second. A [`Feed`] reads the session's new events once per
//! poll interval, keeps them in memory with their JSON already encoded, and wakes its subscribers; each
//! subscriber keeps its own cursor into it, so resuming from any cursor still works. The feed lives as
//! long as someone follows the session; its poller stops when the last subscriber leaves, the session has
//! finished and everything is read, or the server shuts down. On a store with change notifications
//! (PostgreSQL's LISTEN/NOTIFY, [`rvbbit_store::Store::subscribe`]) the poller reads when its session
//! changes instead of on a timer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock, Weak};

use rvbbit_core::{SessionId, SessionStatus};
use rvbbit_store::{EventFilter, StoredEvent};
use tokio::sync::{broadcast, watch};

use crate::state::AppState;

/// Events read per store query.
const PAGE: u64 = 1000;

/// One stored event with its JSON encoding, shared by all subscribers.
#[derive(Debug)]
pub(crate) struct FeedEvent {
    pub(crate) store_seq: i64,
    pub(crate) kind: &'static str,
    /// The event as JSON (the shape of `GET /api/v1/sessions/{id}/events`).
    pub(crate) json: String,
}

#[derive(Debug, Default)]
struct Data {
    /// Every event of the session read so far, by increasing `store_seq`.
    events: Vec<Arc<FeedEvent>>,
    /// Set once the session finished and every event of it is in `events`.
    done: Option<SessionStatus>,
}

/// The shared, growing event list of one session.
#[derive(Debug)]
pub(crate) struct Feed {
    data: RwLock<Data>,
    /// Bumped whenever `data` changes.
    version: watch::Sender<u64>,
}

/// What a subscriber gets from [`Feed::after`].
pub(crate) enum Next {
    /// Events after the cursor (at least one).
    Events(Vec<Arc<FeedEvent>>),
    /// Nothing after the cursor and the session is finished.
    Done(SessionStatus),
    /// Nothing yet.
    Wait,
}

impl Feed {
    /// Events after `cursor`, or whether the subscriber is done or must wait.
    pub(crate) fn after(&self, cursor: i64) -> Next {
        let data = self
            .data
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let from = data.events.partition_point(|e| e.store_seq <= cursor);
        if from < data.events.len() {
            return Next::Events(data.events[from..].to_vec());
        }
        match data.done {
            Some(status) => Next::Done(status),
            None => Next::Wait,
        }
    }

    /// A receiver that wakes when the feed changes.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }
}

/// The feeds of the sessions being followed.
#[derive(Debug, Default)]
pub(crate) struct Feeds {
    open: Mutex<HashMap<SessionId, Weak<Feed>>>,
}

impl Feeds {
    /// The feed of session `id`, starting its poller when nobody follows the session yet.
    pub(crate) fn follow(&self, state: &Arc<AppState>, id: &SessionId) -> Arc<Feed> {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        open.retain(|_, f| f.strong_count() > 0);
        if let Some(feed) = open.get(id).and_then(Weak::upgrade) {
            return feed;
        }
        let feed = Arc::new(Feed {
            data: RwLock::new(Data::default()),
            version: watch::channel(0).0,
        });
        open.insert(id.clone(), Arc::downgrade(&feed));
        tokio::spawn(poll(state.clone(), id.clone(), Arc::downgrade(&feed)));
        feed
    }
}

/// Read new events of `id` into the feed every poll interval until the session is finished and read,
/// nobody follows it any more, or the server shuts down.
///
/// When the store sends change notifications (PostgreSQL's LISTEN/NOTIFY), the poller reads as soon as
/// its session changes and polls only as a safety net (every [`NOTIFIED_POLL`]); otherwise it polls
/// every `poll_interval`.
async fn poll(state: Arc<AppState>, id: SessionId, feed: Weak<Feed>) {
    let mut cursor = 0_i64;
    let mut changes = match state.store.subscribe().await {
        Ok(changes) => changes,
        Err(e) => {
            tracing::warn!(session_id = %id, error = %e, "no change notifications; the live stream polls");
            None
        }
    };
    loop {
        let Some(f) = feed.upgrade() else { return };
        // The status is read before the events, so a session seen finished has all its events stored
        // by then (the writer stores events before session records) and the read below gets them all.
        let status = state.store.session(&id).await.ok().map(|s| s.status);
        let mut fresh = Vec::new();
        loop {
            match state
                .store
                .events(&EventFilter {
                    session_id: Some(id.clone()),
                    after_seq: Some(cursor),
                    limit: Some(PAGE),
                    ..EventFilter::default()
                })
                .await
            {
                Ok(batch) => {
                    let full = batch.len() as u64 == PAGE;
                    for e in batch {
                        cursor = e.store_seq;
                        fresh.push(Arc::new(encode(&e)));
                    }
                    if !full {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(session_id = %id, error = %e, "live stream could not read events");
                    break;
                }
            }
        }
        let finished = status.filter(|s| !s.is_active());
        if !fresh.is_empty() || finished.is_some() {
            {
                let mut data = f.data.write().unwrap_or_else(std::sync::PoisonError::into_inner);
                data.events.extend(fresh);
                data.done = finished;
            }
            f.version.send_modify(|v| *v += 1);
        }
        if finished.is_some() {
            return;
        }
        drop(f);
        let interval = if changes.is_some() {
            NOTIFIED_POLL.max(state.config.poll_interval)
        } else {
            state.config.poll_interval
        };
        tokio::select! {
            () = state.shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
            open = changed(&mut changes, id.as_str()) => if !open { changes = None },
        }
    }
}

/// How often a poller that receives change notifications still reads, in case one was missed.
const NOTIFIED_POLL: std::time::Duration = std::time::Duration::from_secs(2);

/// Wait until `changes` names session `id` (or lagged, so something may have been missed); `false`
/// when the notifications stopped (the poller then polls). Never returns without notifications.
async fn changed(changes: &mut Option<broadcast::Receiver<Arc<str>>>, id: &str) -> bool {
    let Some(rx) = changes.as_mut() else {
        return std::future::pending().await;
    };
    loop {
        match rx.recv().await {
            Ok(session) if &*session == id => return true,
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(_)) => return true,
            Err(broadcast::error::RecvError::Closed) => return false,
        }
    }
}

fn encode(e: &StoredEvent) -> FeedEvent {
    FeedEvent {
        store_seq: e.store_seq,
        kind: e.event.kind.as_str(),
        json: serde_json::to_string(e).unwrap_or_else(|err| {
            tracing::error!(error = %err, store_seq = e.store_seq, "an event could not be encoded");
            format!(
                r#"{{"store_seq":{},"error":"this event could not be encoded"}}"#,
                e.store_seq
            )
        }),
    }
}
