//! The backend-agnostic storage traits. Every backend (SQLite and PostgreSQL; NATS later, each behind a
//! cargo feature) implements all of them and passes the conformance suite in
//! `crates/store/tests/it/conformance.rs`. The ClickHouse events sink implements [`EventSink`] only.
//!
//! The traits are async and batch-oriented: writes take slices, so a backend can turn one call into one
//! transaction or one network round trip. Methods are cancel-safe in the sense that dropping the future
//! never leaves a half-written batch: a batch is committed whole or not at all.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use rvbbit_core::{Event, SessionId, SessionStatus, Timestamp};
use serde_json::Value;

use crate::error::Result;
use crate::model::{
    ApiKey, CacheEntry, Checkpoint, CheckpointStatus, Cleanup, CostGroup, CostRow, EventFilter, Prune,
    Session, SessionFilter, SessionSummary, Signal, StoreStatus, StoredEvent,
};

/// Where events go and how they are read back.
///
/// A complete (if naive) implementation, keeping events in memory:
///
/// ```
/// use std::sync::Mutex;
///
/// use async_trait::async_trait;
/// use rvbbit_core::{Event, EventKind, MicroUsd, SessionId};
/// use rvbbit_store::{CostGroup, CostRow, EventFilter, EventSink, Result, StoredEvent};
///
/// #[derive(Default)]
/// struct Memory(Mutex<Vec<StoredEvent>>);
///
/// impl Memory {
///     fn matching(&self, f: &EventFilter) -> Vec<StoredEvent> {
///         let rows = self.0.lock().unwrap_or_else(|p| p.into_inner());
///         rows.iter()
///             .filter(|s| f.session_id.as_ref().is_none_or(|id| &s.event.session_id == id))
///             .filter(|s| f.kind.is_none_or(|k| s.event.kind == k))
///             .filter(|s| f.since.is_none_or(|t| s.event.ts_us >= t))
///             .filter(|s| f.until.is_none_or(|t| s.event.ts_us < t))
///             .cloned()
///             .collect()
///     }
/// }
///
/// #[async_trait]
/// impl EventSink for Memory {
///     async fn append(&self, events: &[Event]) -> Result<u64> {
///         let mut rows = self.0.lock().unwrap_or_else(|p| p.into_inner());
///         let mut added = 0;
///         for e in events {
///             // Idempotent by event id, as the contract requires.
///             if rows.iter().any(|s| s.event.event_id == e.event_id) {
///                 continue;
///             }
///             let store_seq = rows.len() as i64 + 1;
///             rows.push(StoredEvent { store_seq, event: e.clone() });
///             added += 1;
///         }
///         Ok(added)
///     }
///
///     async fn events(&self, filter: &EventFilter) -> Result<Vec<StoredEvent>> {
///         let mut rows = self.matching(filter);
///         rows.truncate(filter.limit.map_or(usize::MAX, |l| l as usize));
///         Ok(rows)
///     }
///
///     async fn count_events(&self, filter: &EventFilter) -> Result<u64> {
///         Ok(self.matching(filter).len() as u64)
///     }
///
///     async fn costs(&self, group: CostGroup, filter: &EventFilter) -> Result<Vec<CostRow>> {
///         // Only the grand total here; a real backend groups by `group`.
///         assert_eq!(group, CostGroup::Total);
///         let rows = self.matching(filter);
///         let priced: Vec<&Event> = rows.iter().map(|s| &s.event).filter(|e| e.cost.is_some()).collect();
///         let mut sessions: Vec<&SessionId> = priced.iter().map(|e| &e.session_id).collect();
///         sessions.sort();
///         sessions.dedup();
///         let mut row = CostRow::default();
///         row.key = "total".into();
///         row.sessions = sessions.len() as u64;
///         row.calls = priced.len() as u64;
///         row.tokens_in = priced.iter().filter_map(|e| e.tokens.input).sum();
///         row.tokens_out = priced.iter().filter_map(|e| e.tokens.output).sum();
///         row.cost = priced.iter().filter_map(|e| e.cost).sum::<MicroUsd>();
///         Ok(vec![row])
///     }
/// }
///
/// # tokio_test_block_on(async {
/// let sink = Memory::default();
/// let mut e = Event::new(EventKind::LlmResponse, "s-1".parse().unwrap(), 0);
/// e.cost = Some(MicroUsd::from_micros(7));
/// assert_eq!(sink.append(&[e.clone(), e]).await.unwrap(), 1);
/// let total = sink.costs(CostGroup::Total, &EventFilter::default()).await.unwrap();
/// assert_eq!(total[0].cost.micros(), 7);
/// # });
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
#[async_trait]
pub trait EventSink: Send + Sync {
    /// Insert a batch of events in one transaction. Idempotent by event id: an event already present is
    /// skipped. Returns how many were new.
    ///
    /// Errors: [`crate::Error::Busy`] (transient, retry later), [`crate::Error::Unavailable`].
    async fn append(&self, events: &[Event]) -> Result<u64>;

    /// Events matching `filter`, in store order (oldest first).
    async fn events(&self, filter: &EventFilter) -> Result<Vec<StoredEvent>>;

    /// How many events match `filter` (its `limit` is ignored).
    async fn count_events(&self, filter: &EventFilter) -> Result<u64>;

    /// Cost and token totals of the events matching `filter`, grouped by `group`, largest cost first.
    async fn costs(&self, group: CostGroup, filter: &EventFilter) -> Result<Vec<CostRow>>;
}

/// Sessions: one record per run, updated as it progresses.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Insert or update session records in one transaction. A record older (by `updated_at`) than the
    /// stored one is ignored, so replaying old records never rolls a session back; `cancel_requested`
    /// is never cleared by a write; a finished session (`completed`, `failed`, `cancelled`) is only
    /// updated by a record of the same status, so a late write never revives or re-ends it.
    async fn put_sessions(&self, sessions: &[Session]) -> Result<()>;

    /// One session. Errors: [`crate::Error::NotFound`].
    async fn session(&self, id: &SessionId) -> Result<Session>;

    /// Insert `session` only if no session with its id exists: the compare-and-set behind
    /// `rvbbit run --session ID`, so two runs never merge into one session. Of several concurrent calls
    /// with one id exactly one succeeds.
    ///
    /// Errors: [`crate::Error::Conflict`] (naming the id and its status) when the id exists.
    async fn create_session(&self, session: &Session) -> Result<()>;

    /// Claim a `waiting` session for resume: atomically set it `running` (with `updated_at` and
    /// `heartbeat_at` = `now`), but only while it is `waiting` and its checkpoint `checkpoint_id` is still
    /// `pending`. Of several concurrent claims exactly one succeeds; the others run nothing. Returns the
    /// session as claimed.
    ///
    /// Errors: [`crate::Error::NotFound`]; [`crate::Error::Conflict`] when it is no longer waiting
    /// (`running`: "already being resumed by another process") or the checkpoint was answered meanwhile.
    async fn claim_waiting(&self, id: &SessionId, checkpoint_id: &str, now: Timestamp) -> Result<Session>;

    /// Sessions matching `filter`, newest first, with totals derived from their events.
    async fn sessions(&self, filter: &SessionFilter) -> Result<Vec<SessionSummary>>;

    /// Record a sign of life from the process running `id`.
    async fn heartbeat(&self, id: &SessionId, at: Timestamp) -> Result<()>;

    /// Ask an active session to stop. A `running` session is asked (cooperative: `cancel_requested`); a
    /// `waiting` one, which no process may be running, is cancelled at once (a compare-and-set `waiting`
    /// → `cancelled`, its pending checkpoints and waiting signals cancelled with it). Returns the session
    /// as it is now. Errors: [`crate::Error::NotFound`], [`crate::Error::Conflict`] when it already
    /// finished.
    async fn request_cancel(&self, id: &SessionId, reason: &str) -> Result<Session>;

    /// Mark active sessions whose heartbeat is older than `stale_before` as failed (orphaned), and delete
    /// finished sessions that ended before `delete_before` with their events. With `dry_run`, only report.
    async fn cleanup(
        &self,
        stale_before: Timestamp,
        delete_before: Option<Timestamp>,
        dry_run: bool,
    ) -> Result<Cleanup>;

    /// How many sessions are in each status.
    async fn session_counts(&self) -> Result<Vec<(SessionStatus, u64)>>;
}

/// The result cache: key → JSON value, with hit counts and an optional time to live.
#[async_trait]
pub trait ResultCache: Send + Sync {
    /// The live entry for `key` at `now` (counting a hit), or `None` when absent or expired.
    async fn cache_get(&self, key: &str, now: Timestamp) -> Result<Option<CacheEntry>>;

    /// The live entries for `keys` at `now` (counting a hit for each found), in the order of `keys`.
    /// Backends override this to read a whole batch in one round trip (SQL functions look up every
    /// distinct call of a batch at once); the default asks [`ResultCache::cache_get`] key by key.
    async fn cache_get_many(&self, keys: &[String], now: Timestamp) -> Result<Vec<Option<CacheEntry>>> {
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            out.push(self.cache_get(key, now).await?);
        }
        Ok(out)
    }

    /// The live entries for `keys` at `now`, in the order of `keys`, read without counting hits: a
    /// read-only lookup that writes nothing, so a statement served from the cache grows no table and no
    /// log. Callers that serve many hits record them once themselves (the SQL door writes one
    /// `cache_hit` summary event per statement, whose `count` [`crate::StoreStatus::cache_hits`] adds).
    /// The default asks [`ResultCache::cache_get_many`], which counts.
    async fn cache_peek_many(&self, keys: &[String], now: Timestamp) -> Result<Vec<Option<CacheEntry>>> {
        self.cache_get_many(keys, now).await
    }

    /// Store `value` under `key` (replacing any entry), expiring at `expires_at` if given.
    async fn cache_put(
        &self,
        key: &str,
        value: &Value,
        now: Timestamp,
        expires_at: Option<Timestamp>,
    ) -> Result<()>;

    /// Store each `(key, value)` of `entries` like [`ResultCache::cache_put`]. Backends override this to
    /// write a whole batch at once (the SQL door keeps every row a many-rows prompt answered); the
    /// default puts them one by one.
    async fn cache_put_many(
        &self,
        entries: &[(String, Value)],
        now: Timestamp,
        expires_at: Option<Timestamp>,
    ) -> Result<()> {
        for (key, value) in entries {
            self.cache_put(key, value, now, expires_at).await?;
        }
        Ok(())
    }

    /// Delete entries expired at `now`; returns how many.
    async fn cache_purge(&self, now: Timestamp) -> Result<u64>;

    /// Up to `limit` entries with keys after `after` (all when `None`), in key order, expired ones
    /// included, without counting hits: for copying a store page by page.
    async fn cache_entries(&self, after: Option<&str>, limit: u64) -> Result<Vec<CacheEntry>>;
}

/// Signals: named, latched wake-ups between sessions.
#[async_trait]
pub trait SignalStore: Send + Sync {
    /// Register a signal (normally `waiting`). Registering an id that exists changes nothing.
    async fn signal_register(&self, signal: &Signal) -> Result<()>;

    /// Fire every waiting signal named `name` (only `session`'s, if given) with `payload`; returns the
    /// signals fired. A compare-and-set per signal (`waiting` → `fired`): of two concurrent answers to
    /// one signal exactly one fires it, the other gets an empty list.
    async fn signal_fire(
        &self,
        name: &str,
        payload: &Value,
        source: &str,
        session: Option<&SessionId>,
        now: Timestamp,
    ) -> Result<Vec<Signal>>;

    /// Cancel one signal. Errors: [`crate::Error::NotFound`].
    async fn signal_cancel(&self, signal_id: &str) -> Result<()>;

    /// Signals named `name` (all when `None`), newest first.
    async fn signals(&self, name: Option<&str>) -> Result<Vec<Signal>>;
}

/// Checkpoints: human-in-the-loop waits and the continuation that lets a run resume in another process.
#[async_trait]
pub trait CheckpointStore: Send + Sync {
    /// Insert a checkpoint, or replace the one with the same id (to record its answer or status).
    async fn checkpoint_put(&self, checkpoint: &Checkpoint) -> Result<()>;

    /// Checkpoints of `session` (all when `None`) in `status` (any when `None`), newest first.
    async fn checkpoints(
        &self,
        session: Option<&SessionId>,
        status: Option<CheckpointStatus>,
    ) -> Result<Vec<Checkpoint>>;
}

/// API keys of the HTTP door (hashed secrets only).
#[async_trait]
pub trait ApiKeyStore: Send + Sync {
    /// Insert a new key. Errors: [`crate::Error::Conflict`] when its id or hash exists.
    async fn key_insert(&self, key: &ApiKey) -> Result<()>;

    /// The unrevoked key whose secret hashes to `secret_hash`, if any; records the use.
    async fn key_authenticate(&self, secret_hash: &str, now: Timestamp) -> Result<Option<ApiKey>>;

    /// Every key, revoked ones included, oldest first.
    async fn keys(&self) -> Result<Vec<ApiKey>>;

    /// Revoke a key. Errors: [`crate::Error::NotFound`].
    async fn key_revoke(&self, key_id: &str, now: Timestamp) -> Result<ApiKey>;

    /// How many unrevoked keys exist.
    async fn active_keys(&self) -> Result<u64>;
}

/// A complete store: all record kinds plus administration.
#[async_trait]
pub trait Store:
    EventSink
    + SessionStore
    + ResultCache
    + SignalStore
    + CheckpointStore
    + ApiKeyStore
    + crate::JournalStore
    + crate::WorkerStore
    + crate::BatchStore
    + crate::LimitStore
    + crate::ConversationStore
    + crate::ChannelStore
{
    /// The store's URL (for messages).
    fn url(&self) -> &str;

    /// Apply pending migrations; returns the names applied. Opening a store already does this.
    async fn migrate(&self) -> Result<Vec<String>>;

    /// Counts, schema version and size.
    async fn status(&self) -> Result<StoreStatus>;

    /// A cheap round trip proving the store answers.
    async fn ping(&self) -> Result<()>;

    /// Wake-ups for live feeds: a receiver of the ids of sessions whose events or record changed (sent
    /// when the change commits, by any process on any host), or `None` when the backend has no such
    /// notifications and readers must poll. A receiver may lag or close (the listening connection
    /// dropped); readers then read what they missed and fall back to polling.
    async fn subscribe(&self) -> Result<Option<tokio::sync::broadcast::Receiver<std::sync::Arc<str>>>> {
        Ok(None)
    }

    /// The database server's version, for backends with a server (`None` for an embedded file).
    async fn server_version(&self) -> Result<Option<String>> {
        Ok(None)
    }

    /// Reclaim space (SQLite: checkpoint the WAL and `VACUUM`).
    async fn compact(&self) -> Result<()>;

    /// Write one batch of the buffered [`crate::Writer`]: `events`, then `sessions`; returns how many
    /// events were new. Backends override it to write both in one transaction (SQLite: one
    /// `BEGIN IMMEDIATE`, prepared statements, one commit per batch); the default calls
    /// [`EventSink::append`], then [`SessionStore::put_sessions`]. The batch is shared, not copied, so a
    /// retry after [`crate::Error::Busy`] sends the same records again.
    async fn write_batch(&self, events: Arc<Vec<Event>>, sessions: Arc<Vec<Session>>) -> Result<u64> {
        let n = self.append(&events).await?;
        self.put_sessions(&sessions).await?;
        Ok(n)
    }

    /// Delete, in one transaction, what is older than `before` and no live session needs: finished
    /// sessions that ended before it with their events and checkpoints, events before it that belong to
    /// no session record, signals no longer waiting, and cache entries expired at `now`. `running` and
    /// `waiting` sessions are never touched. With `dry_run` nothing changes and the counts say what would
    /// go. The space is reused by later writes; [`Store::compact`] gives it back to the file system.
    async fn prune(&self, before: Timestamp, now: Timestamp, dry_run: bool) -> Result<Prune>;

    /// Write every table as JSON Lines (`<table>.jsonl`) into `dir`; returns (table, rows) pairs.
    async fn backup(&self, dir: &Path) -> Result<Vec<(String, u64)>>;
}
