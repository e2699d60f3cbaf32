//! The web chat's reply path: a mailbox per visitor, in process, that keeps the conversation's last
//! entries and wakes the visitor's open streams.
//!
//! Every entry (the visitor's message, the agent's reply) gets the next id of its visitor and is kept
//! whether a stream is open or not, so a page that reloads or reconnects asks for what came after the
//! last id it saw and loses nothing. Everything is bounded: [`KEEP_ENTRIES`] entries and
//! [`KEEP_BYTES`] of text per visitor (the oldest go first), [`KEEP_VISITORS`] visitors per integration
//! (the least recently active one without an open stream is forgotten first), and `max_streams`
//! streams at once.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::control::limit::RateLimiter;
use crate::error::{Error, Result};

/// Entries kept per visitor.
pub const KEEP_ENTRIES: usize = 50;
/// Bytes of text kept per visitor (the newest entry is kept even when it alone is larger).
pub const KEEP_BYTES: usize = 256 * 1024;
/// Visitors remembered per integration.
pub const KEEP_VISITORS: usize = 1024;

/// Who wrote an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Role {
    /// The visitor.
    Visitor,
    /// The agent (or a chat command's reply).
    Agent,
}

/// One message of a visitor's conversation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// 1, 2, … per visitor (the SSE event id).
    pub id: u64,
    /// Who wrote it.
    pub role: Role,
    /// The text.
    pub text: String,
}

/// What a visitor's stream carries.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WebEvent {
    /// A message, in id order.
    Entry(Arc<Entry>),
    /// Whether the agent is working on an answer (sent when it changes).
    Typing(bool),
}

#[derive(Debug)]
struct Mailbox {
    entries: VecDeque<Arc<Entry>>,
    bytes: usize,
    last_id: u64,
    /// Answers being prepared (more than one when messages arrive while the agent works).
    working: u32,
    /// Bumped on every change; open streams hold a receiver.
    changed: watch::Sender<u64>,
    touched: Instant,
}

impl Mailbox {
    fn new() -> Self {
        Mailbox {
            entries: VecDeque::new(),
            bytes: 0,
            last_id: 0,
            working: 0,
            changed: watch::Sender::new(0),
            touched: Instant::now(),
        }
    }

    fn bump(&mut self) {
        self.touched = Instant::now();
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }
}

/// The mailboxes of one web integration.
#[derive(Debug)]
pub(crate) struct Hub {
    integration: String,
    max_streams: usize,
    streams: AtomicUsize,
    visitors: Mutex<HashMap<String, Mailbox>>,
    /// Messages per visitor (`rate_per_minute`, `burst`).
    pub(crate) limiter: RateLimiter,
    shutdown: CancellationToken,
}

impl Hub {
    /// The hub of `integration`; its streams end when `shutdown` is cancelled.
    pub(crate) fn new(
        integration: &str,
        max_streams: usize,
        limiter: RateLimiter,
        shutdown: CancellationToken,
    ) -> Self {
        Hub {
            integration: integration.to_owned(),
            max_streams: max_streams.max(1),
            streams: AtomicUsize::new(0),
            visitors: Mutex::new(HashMap::new()),
            limiter,
            shutdown,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Mailbox>> {
        self.visitors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The visitor's mailbox, made (and the least recently active idle one forgotten when the hub is
    /// full) if there is none.
    fn mailbox<'a>(visitors: &'a mut HashMap<String, Mailbox>, visitor: &str) -> &'a mut Mailbox {
        if !visitors.contains_key(visitor) && visitors.len() >= KEEP_VISITORS {
            let idle = visitors
                .iter()
                .filter(|(_, m)| m.changed.receiver_count() == 0)
                .min_by_key(|(_, m)| m.touched)
                .map(|(k, _)| k.clone());
            if let Some(k) = idle {
                visitors.remove(&k);
            }
        }
        visitors.entry(visitor.to_owned()).or_insert_with(Mailbox::new)
    }

    /// Keep `text` as the visitor's next entry and wake their streams; the entry's id.
    pub(crate) fn record(&self, visitor: &str, role: Role, text: &str) -> u64 {
        let mut visitors = self.lock();
        let m = Self::mailbox(&mut visitors, visitor);
        m.last_id += 1;
        m.bytes += text.len();
        m.entries.push_back(Arc::new(Entry {
            id: m.last_id,
            role,
            text: text.to_owned(),
        }));
        while m.entries.len() > KEEP_ENTRIES || (m.bytes > KEEP_BYTES && m.entries.len() > 1) {
            if let Some(old) = m.entries.pop_front() {
                m.bytes -= old.text.len();
            }
        }
        m.bump();
        m.last_id
    }

    /// One more (`true`) or one fewer answer being prepared for the visitor.
    pub(crate) fn working(&self, visitor: &str, more: bool) {
        let mut visitors = self.lock();
        let m = Self::mailbox(&mut visitors, visitor);
        m.working = if more {
            m.working.saturating_add(1)
        } else {
            m.working.saturating_sub(1)
        };
        m.bump();
    }

    /// Open a stream of the visitor's entries after id `after` (all kept ones for 0, or for an id the
    /// hub never gave, as after a restart), then new ones as they come.
    ///
    /// # Errors
    /// [`Error::StreamsFull`] when `max_streams` streams are open.
    pub(crate) fn subscribe(self: &Arc<Self>, visitor: &str, after: u64) -> Result<Subscription> {
        let open = self.streams.fetch_add(1, Ordering::SeqCst);
        let slot = Slot(self.clone());
        if open >= self.max_streams {
            return Err(Error::StreamsFull {
                integration: self.integration.clone(),
                limit: self.max_streams,
            });
        }
        let mut visitors = self.lock();
        let m = Self::mailbox(&mut visitors, visitor);
        let cursor = if after > m.last_id { 0 } else { after };
        let changed = m.changed.subscribe();
        drop(visitors);
        Ok(Subscription {
            slot,
            visitor: visitor.to_owned(),
            cursor,
            typing: false,
            changed,
            queue: VecDeque::new(),
        })
    }

    /// Streams open now.
    pub(crate) fn open_streams(&self) -> usize {
        self.streams.load(Ordering::SeqCst)
    }
}

/// One counted stream; dropping it frees its place.
#[derive(Debug)]
struct Slot(Arc<Hub>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.streams.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A visitor's open stream ([`crate::Channels::web_subscribe`]). Counts against `max_streams` until
/// dropped.
#[derive(Debug)]
pub struct Subscription {
    slot: Slot,
    visitor: String,
    cursor: u64,
    typing: bool,
    changed: watch::Receiver<u64>,
    queue: VecDeque<WebEvent>,
}

impl Subscription {
    /// The next event: kept entries after the cursor first, then new ones and typing changes as they
    /// happen. `None` once the channels shut down (or the visitor was forgotten, which only happens to
    /// visitors without a stream, so not to this one).
    ///
    /// Cancel-safe: an event taken from the mailbox is queued here before anything awaits.
    pub async fn next(&mut self) -> Option<WebEvent> {
        loop {
            if let Some(e) = self.queue.pop_front() {
                return Some(e);
            }
            let shutdown = self.slot.0.shutdown.clone();
            if shutdown.is_cancelled() {
                return None;
            }
            // Mark what is seen before reading, so a change made after the read still wakes us.
            self.changed.borrow_and_update();
            self.fill();
            if !self.queue.is_empty() {
                continue;
            }
            tokio::select! {
                () = shutdown.cancelled() => return None,
                changed = self.changed.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                }
            }
        }
    }

    /// Queue what changed since the last look.
    fn fill(&mut self) {
        let visitors = self.slot.0.lock();
        let Some(m) = visitors.get(&self.visitor) else {
            return;
        };
        for e in m.entries.iter().filter(|e| e.id > self.cursor) {
            self.queue.push_back(WebEvent::Entry(e.clone()));
        }
        self.cursor = self.cursor.max(m.last_id);
        let typing = m.working > 0;
        if typing != self.typing {
            self.typing = typing;
            self.queue.push_back(WebEvent::Typing(typing));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn hub(max_streams: usize) -> Arc<Hub> {
        Arc::new(Hub::new(
            "site",
            max_streams,
            RateLimiter::new(30, 5),
            CancellationToken::new(),
        ))
    }

    fn text(e: Option<WebEvent>) -> String {
        match e {
            Some(WebEvent::Entry(e)) => e.text.clone(),
            other => panic!("not an entry: {other:?}"),
        }
    }

    #[tokio::test]
    async fn entries_are_kept_for_a_reconnect_and_bounded() {
        let hub = hub(4);
        assert_eq!(hub.record("v1", Role::Visitor, "hi"), 1);
        assert_eq!(hub.record("v1", Role::Agent, "hello"), 2);
        let mut s = hub.subscribe("v1", 0).unwrap();
        assert_eq!(text(s.next().await), "hi");
        assert_eq!(text(s.next().await), "hello");
        drop(s);
        hub.record("v1", Role::Agent, "while away");
        let mut again = hub.subscribe("v1", 2).unwrap();
        assert_eq!(text(again.next().await), "while away");
        // An id from before a restart replays everything kept.
        let mut stale = hub.subscribe("v1", 999).unwrap();
        assert_eq!(text(stale.next().await), "hi");
        for i in 0..(KEEP_ENTRIES + 10) {
            hub.record("v2", Role::Agent, &format!("n{i}"));
        }
        let mut s = hub.subscribe("v2", 0).unwrap();
        assert_eq!(text(s.next().await), "n10", "the oldest went first");
        hub.record("v3", Role::Agent, &"x".repeat(KEEP_BYTES));
        hub.record("v3", Role::Agent, "small");
        let mut s = hub.subscribe("v3", 0).unwrap();
        assert_eq!(text(s.next().await), "small", "bytes are bounded too");
    }

    #[tokio::test]
    async fn live_entries_and_typing_wake_the_stream_and_the_cap_holds() {
        let hub = hub(2);
        let mut s = hub.subscribe("v1", 0).unwrap();
        let _second = hub.subscribe("v9", 0).unwrap();
        let e = hub.subscribe("v1", 0).unwrap_err();
        assert_eq!((e.status(), e.code().code), (503, "RVB-K009"));
        assert_eq!(hub.open_streams(), 2);
        let h = hub.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            h.working("v1", true);
            tokio::time::sleep(Duration::from_millis(20)).await;
            h.record("v1", Role::Agent, "done");
            h.working("v1", false);
        });
        assert_eq!(s.next().await, Some(WebEvent::Typing(true)));
        let mut rest = vec![s.next().await];
        if !matches!(rest[0], Some(WebEvent::Typing(false))) {
            rest.push(s.next().await);
        }
        assert!(
            rest.iter()
                .any(|e| matches!(e, Some(WebEvent::Entry(e)) if e.text == "done")),
            "{rest:?}"
        );
        drop(s);
        assert_eq!(hub.open_streams(), 1, "a dropped stream frees its place");
        hub.subscribe("v1", 0).unwrap();
    }

    #[tokio::test]
    async fn streams_end_at_shutdown_and_idle_visitors_are_forgotten_first() {
        let hub = hub(8);
        let mut s = hub.subscribe("keep", 0).unwrap();
        for i in 0..KEEP_VISITORS {
            hub.record(&format!("visitor-{i}"), Role::Visitor, "hi");
        }
        assert_eq!(hub.lock().len(), KEEP_VISITORS);
        assert!(hub.lock().contains_key("keep"), "a visitor with a stream stays");
        assert!(!hub.lock().contains_key("visitor-0"));
        hub.shutdown.cancel();
        assert_eq!(s.next().await, None);
    }
}
