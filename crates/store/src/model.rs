//! The records the store keeps besides events: sessions, cache entries, signals, and query shapes.

use std::fmt;
use std::str::FromStr;

use rvbbit_core::event::UnknownValue;
use rvbbit_core::{CallerId, Event, EventKind, MicroUsd, SessionId, SessionStatus, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One run of a cascade: its identity, status, liveness, input and output.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Session {
    /// The session id.
    pub session_id: SessionId,
    /// The cascade run.
    pub cascade_id: Option<String>,
    /// The run that started this one.
    pub parent_session_id: Option<SessionId>,
    /// The root of the run tree.
    pub root_session_id: SessionId,
    /// What caused the run.
    pub caller_id: Option<CallerId>,
    /// Details of the invocation (a JSON object).
    pub invocation_metadata: Value,
    /// Nesting depth (root 0).
    pub depth: u32,
    /// Where the run is in its life.
    pub status: SessionStatus,
    /// The cell being executed.
    pub current_cell: Option<String>,
    /// The run's input.
    pub input: Value,
    /// The final output, once finished.
    pub output: Option<Value>,
    /// The first error, for failed runs.
    pub error: Option<String>,
    /// Path of the cascade file.
    pub cascade_file: Option<String>,
    /// The cascade file's text, for replay.
    pub cascade_text: Option<String>,
    /// SHA-256 hex of `cascade_text`.
    pub cascade_hash: Option<String>,
    /// When the run began.
    pub started_at: Timestamp,
    /// When this record last changed (newer writes win).
    pub updated_at: Timestamp,
    /// When the run ended.
    pub ended_at: Option<Timestamp>,
    /// Last sign of life from the process running it.
    pub heartbeat_at: Timestamp,
    /// Whether cancellation was requested (`rvbbit sessions cancel`).
    pub cancel_requested: bool,
}

impl Session {
    /// A new running root session, started now.
    pub fn new(session_id: SessionId) -> Self {
        let now = Timestamp::now();
        Session {
            root_session_id: session_id.clone(),
            session_id,
            cascade_id: None,
            parent_session_id: None,
            caller_id: None,
            invocation_metadata: Value::Object(serde_json::Map::new()),
            depth: 0,
            status: SessionStatus::Running,
            current_cell: None,
            input: Value::Null,
            output: None,
            error: None,
            cascade_file: None,
            cascade_text: None,
            cascade_hash: None,
            started_at: now,
            updated_at: now,
            ended_at: None,
            heartbeat_at: now,
            cancel_requested: false,
        }
    }

    /// Mark the session finished with `status` now.
    pub fn finish(&mut self, status: SessionStatus, output: Option<Value>, error: Option<String>) {
        let now = Timestamp::now();
        self.status = status;
        self.output = output;
        self.error = error;
        self.ended_at = Some(now);
        self.updated_at = now;
        self.heartbeat_at = now;
    }
}

/// A session with totals derived from its events.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SessionSummary {
    /// The session record.
    pub session: Session,
    /// Number of events.
    pub events: u64,
    /// Sum of known event costs.
    pub cost: MicroUsd,
    /// Sum of input tokens.
    pub tokens_in: i64,
    /// Sum of output tokens.
    pub tokens_out: i64,
}

/// Which sessions to list (every field narrows; `None` means any).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SessionFilter {
    /// Only this cascade.
    pub cascade_id: Option<String>,
    /// Only this caller.
    pub caller_id: Option<String>,
    /// Only sessions started at or after this time.
    pub since: Option<Timestamp>,
    /// Only sessions started before this time.
    pub until: Option<Timestamp>,
    /// Only sessions in this status.
    pub status: Option<SessionStatus>,
    /// At most this many (newest first).
    pub limit: Option<u64>,
}

/// Which events to read or aggregate (every field narrows; `None` means any).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EventFilter {
    /// Only this session.
    pub session_id: Option<SessionId>,
    /// Only this cascade.
    pub cascade_id: Option<String>,
    /// Only this caller.
    pub caller_id: Option<String>,
    /// Only events at or after this time.
    pub since: Option<Timestamp>,
    /// Only events before this time.
    pub until: Option<Timestamp>,
    /// Only events of this kind.
    pub kind: Option<EventKind>,
    /// Only events of sessions currently in this status.
    pub session_status: Option<SessionStatus>,
    /// Only events stored after this [`StoredEvent::store_seq`] (a resume cursor).
    pub after_seq: Option<i64>,
    /// At most this many (in store order).
    pub limit: Option<u64>,
}

/// An event with its store-wide sequence number (a resume cursor for live streams).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// Increasing number assigned by the store on insert.
    pub store_seq: i64,
    /// The event.
    #[serde(flatten)]
    pub event: Event,
}

/// What cost totals are grouped by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CostGroup {
    /// Everything in one row.
    Total,
    /// By model (`(none)` for events without one).
    Model,
    /// By cascade.
    Cascade,
    /// By caller.
    Caller,
    /// By UTC day (`YYYY-MM-DD`).
    Day,
}

/// One row of cost totals.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CostRow {
    /// The group's key (model, cascade id, caller id, day; `total` for [`CostGroup::Total`]).
    pub key: String,
    /// Distinct sessions.
    pub sessions: u64,
    /// Events carrying a cost or tokens (LLM calls, priced tool calls).
    pub calls: u64,
    /// Sum of input tokens.
    pub tokens_in: i64,
    /// Sum of output tokens.
    pub tokens_out: i64,
    /// Sum of known costs, LLM and compute.
    pub cost: MicroUsd,
    /// The part of `cost` that is compute (`compute_cost` events: code, shell and script tool calls
    /// priced by `costs.compute_micro_dollars_per_second`); `cost - compute_cost` is the LLM cost.
    #[serde(default)]
    pub compute_cost: MicroUsd,
    /// Events whose cost is unknown (never counted as zero silently).
    pub unknown_cost: u64,
}

/// One entry of the result cache.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CacheEntry {
    /// The cache key.
    pub key: String,
    /// The cached value.
    pub value: Value,
    /// When it was stored.
    pub created_at: Timestamp,
    /// When it stops being served, if ever.
    pub expires_at: Option<Timestamp>,
    /// How many times it was served.
    pub hits: u64,
}

/// Where a signal is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SignalStatus {
    /// Registered, not yet fired.
    Waiting,
    /// Fired (latched: a later waiter may still consume it).
    Fired,
    /// Its deadline passed.
    Timeout,
    /// Cancelled.
    Cancelled,
}

impl SignalStatus {
    /// The stable text form.
    pub const fn as_str(self) -> &'static str {
        match self {
            SignalStatus::Waiting => "waiting",
            SignalStatus::Fired => "fired",
            SignalStatus::Timeout => "timeout",
            SignalStatus::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for SignalStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SignalStatus {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, UnknownValue> {
        match s {
            "waiting" => Ok(SignalStatus::Waiting),
            "fired" => Ok(SignalStatus::Fired),
            "timeout" => Ok(SignalStatus::Timeout),
            "cancelled" => Ok(SignalStatus::Cancelled),
            _ => Err(UnknownValue {
                what: "signal status",
                value: s.to_owned(),
                choices: vec!["waiting", "fired", "timeout", "cancelled"],
            }),
        }
    }
}

/// A named signal one session waits for and another fires.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Signal {
    /// Unique id.
    pub signal_id: String,
    /// The name waiters and firers agree on.
    pub name: String,
    /// Where it is in its life.
    pub status: SignalStatus,
    /// The waiting session, if any.
    pub session_id: Option<SessionId>,
    /// When it was registered.
    pub created_at: Timestamp,
    /// When it fired.
    pub fired_at: Option<Timestamp>,
    /// When waiting gives up.
    pub timeout_at: Option<Timestamp>,
    /// The payload given when firing.
    pub payload: Option<Value>,
    /// Who fired it (`cli`, `ui`, a session id).
    pub source: Option<String>,
}

impl Signal {
    /// A new waiting signal named `name`, registered now.
    pub fn waiting(name: impl Into<String>, session_id: Option<SessionId>) -> Self {
        Signal {
            signal_id: rvbbit_core::EventId::new().to_string(),
            name: name.into(),
            status: SignalStatus::Waiting,
            session_id,
            created_at: Timestamp::now(),
            fired_at: None,
            timeout_at: None,
            payload: None,
            source: None,
        }
    }
}

/// Where a checkpoint is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CheckpointStatus {
    /// Waiting for an answer.
    Pending,
    /// Answered; the run went on (or will, on resume).
    Responded,
    /// Nobody answered in time.
    Timeout,
    /// Abandoned (the session was cancelled).
    Cancelled,
}

impl CheckpointStatus {
    /// The stable text form.
    pub const fn as_str(self) -> &'static str {
        match self {
            CheckpointStatus::Pending => "pending",
            CheckpointStatus::Responded => "responded",
            CheckpointStatus::Timeout => "timeout",
            CheckpointStatus::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for CheckpointStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CheckpointStatus {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, UnknownValue> {
        match s {
            "pending" => Ok(CheckpointStatus::Pending),
            "responded" => Ok(CheckpointStatus::Responded),
            "timeout" => Ok(CheckpointStatus::Timeout),
            "cancelled" => Ok(CheckpointStatus::Cancelled),
            _ => Err(UnknownValue {
                what: "checkpoint status",
                value: s.to_owned(),
                choices: vec!["pending", "responded", "timeout", "cancelled"],
            }),
        }
    }
}

/// A human-in-the-loop wait of a session (OBSERVABILITY.md §7): the question, the answer once given, and
/// the continuation the engine needs to resume the run after the process that started it is gone.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Checkpoint {
    /// Unique id (`cp_<12 hex>`).
    pub checkpoint_id: String,
    /// The waiting session.
    pub session_id: SessionId,
    /// Its cascade.
    pub cascade_id: Option<String>,
    /// The cell that asks.
    pub cell_name: String,
    /// What is asked: `confirmation`, `choice`, `text`, `free_text` (the `ask_human` tool), `decision`
    /// (a screen), ...
    pub checkpoint_type: String,
    /// Where it is in its life.
    pub status: CheckpointStatus,
    /// The signal that answers it (`rvbbit signal send SESSION NAME`).
    pub signal_name: String,
    /// The id of that signal.
    pub signal_id: Option<String>,
    /// The question as shown: prompt, options, rendered HTML (a JSON object).
    pub ui_spec: Value,
    /// Everything the engine needs to continue the run (opaque to the store; the engine owns its shape).
    pub continuation: Value,
    /// The answer, once given.
    pub response: Option<Value>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it was answered.
    pub responded_at: Option<Timestamp>,
    /// When waiting gives up, if ever.
    pub timeout_at: Option<Timestamp>,
}

impl Checkpoint {
    /// A new pending checkpoint of `session_id` at `cell_name`, answered by the signal `signal_name`.
    pub fn pending(
        session_id: SessionId,
        cell_name: impl Into<String>,
        checkpoint_type: impl Into<String>,
        signal_name: impl Into<String>,
    ) -> Self {
        let id = rvbbit_core::EventId::new().to_string().replace('-', "");
        Checkpoint {
            checkpoint_id: format!("cp_{}", &id[id.len().saturating_sub(12)..]),
            session_id,
            cascade_id: None,
            cell_name: cell_name.into(),
            checkpoint_type: checkpoint_type.into(),
            status: CheckpointStatus::Pending,
            signal_name: signal_name.into(),
            signal_id: None,
            ui_spec: Value::Object(serde_json::Map::new()),
            continuation: Value::Null,
            response: None,
            created_at: Timestamp::now(),
            responded_at: None,
            timeout_at: None,
        }
    }
}

/// One thing the buffered writer writes: an event or a session record (spill files hold these, one per line).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "record", rename_all = "snake_case")]
pub enum Record {
    /// An event (idempotent by event id).
    Event(Box<Event>),
    /// A session record (newer `updated_at` wins).
    Session(Box<Session>),
}

/// The state of a store, for `rvbbit db status` and `rvbbit health`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StoreStatus {
    /// The store URL.
    pub url: String,
    /// The schema version in the store.
    pub schema_version: i64,
    /// The newest schema version this build knows.
    pub latest_version: i64,
    /// Migrations not yet applied, by name.
    pub pending: Vec<String>,
    /// Rows in the events table.
    pub events: u64,
    /// Rows in the sessions table.
    pub sessions: u64,
    /// Entries in the result cache.
    pub cache_entries: u64,
    /// Hits served by the result cache: the sum of its entries' hit counts plus the `count` of every
    /// `cache_hit` summary event (hits read with [`crate::ResultCache::cache_peek_many`]).
    pub cache_hits: u64,
    /// Rows in the signals table.
    pub signals: u64,
    /// Rows in the checkpoints table.
    pub checkpoints: u64,
    /// Size on disk in bytes, when the backend knows it.
    pub size_bytes: Option<u64>,
}

/// What a cleanup did (or, with a dry run, would do).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Cleanup {
    /// Active sessions whose heartbeat went stale, marked failed (orphaned).
    pub orphaned: Vec<SessionId>,
    /// Finished sessions older than the cutoff, deleted with their events.
    pub deleted: Vec<SessionId>,
    /// Events deleted with them.
    pub deleted_events: u64,
}

/// What a prune removed (or, with a dry run, would remove): everything older than a cutoff that no live
/// session needs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Prune {
    /// Finished sessions (not `running` or `waiting`) that ended before the cutoff.
    pub sessions: u64,
    /// Their events, plus older events of no session record (such as a SQL statement's `sql_query`
    /// and `cache_hit` events, filed under its caller id).
    pub events: u64,
    /// Checkpoints of those sessions.
    pub checkpoints: u64,
    /// Signals no longer waiting, created before the cutoff.
    pub signals: u64,
    /// Result-cache entries expired by now.
    pub cache_entries: u64,
    /// Run-journal steps and side-effect records (of queue jobs) written before the cutoff.
    #[serde(default)]
    pub journal: u64,
    /// Worker heartbeat rows (of `rvbbit worker` processes) last seen before the cutoff.
    #[serde(default)]
    pub workers: u64,
    /// Batch records (`rvbbit batch`) no longer running, last changed before the cutoff.
    #[serde(default)]
    pub batches: u64,
}

/// An API key of the HTTP door. Only a SHA-256 hash of the secret is kept; the secret itself is shown
/// once, when the key is created.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ApiKey {
    /// Public identifier (`key_<hex>`), safe to log and show.
    pub key_id: String,
    /// A label chosen by whoever created it.
    pub name: String,
    /// SHA-256 hex of the secret.
    pub secret_hash: String,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Timestamp>,
    /// When it was last used to authenticate (updated at most once a minute).
    pub last_used_at: Option<Timestamp>,
    /// The tenant its requests act for (`rvbbit keys create --tenant T`); `None`: the `default` tenant.
    pub tenant: Option<String>,
}

impl ApiKey {
    /// A new, unrevoked key record.
    pub fn new(key_id: impl Into<String>, name: impl Into<String>, secret_hash: impl Into<String>) -> Self {
        ApiKey {
            key_id: key_id.into(),
            name: name.into(),
            secret_hash: secret_hash.into(),
            created_at: Timestamp::now(),
            revoked_at: None,
            last_used_at: None,
            tenant: None,
        }
    }
}
