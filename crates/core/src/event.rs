//! Events: one typed record per thing that happens in a run.
//!
//! An [`Event`] is written to the store and fanned out live. Every event carries its session, parent and
//! root session, caller, cascade and cell, so any row can be rolled up to whatever caused it (see the
//! observability spec, §2–§4). Money is [`MicroUsd`]; time is [`Timestamp`] (UTC microseconds).
//!
//! This module holds data types only: no I/O, no clock other than [`Timestamp::now`].
//!
//! ```
//! use rvbbit_core::event::{Event, EventKind, Timestamp};
//! use rvbbit_core::{MicroUsd, SessionId};
//!
//! let session: SessionId = "quiet-heron-0c1d2e3f4a5b6c7d".parse().unwrap();
//! let mut e = Event::new(EventKind::LlmResponse, session, 3);
//! e.model = Some("openai/gpt-4.1".into());
//! e.tokens.input = Some(1200);
//! e.cost = Some(MicroUsd::from_micros(2_500));
//! assert_eq!(e.kind.as_str(), "llm_response");
//! assert_eq!(Timestamp::from_micros(0).to_rfc3339(), "1970-01-01T00:00:00.000000Z");
//! ```

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::id::{CallerId, SessionId};
use crate::money::MicroUsd;

/// A point in time: microseconds since the Unix epoch, UTC.
///
/// ```
/// use rvbbit_core::event::Timestamp;
/// let t: Timestamp = "2026-11-23T09:44:06.5Z".parse().unwrap();
/// assert_eq!(t.to_rfc3339(), "2026-11-23T09:44:06.500000Z");
/// assert_eq!("2026-11-23".parse::<Timestamp>().unwrap().to_rfc3339(), "2026-11-23T00:00:00.000000Z");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(i64);

/// Why a text is not a timestamp.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a UTC date or time; write `2026-11-23`, `2026-11-23T09:44:06Z` or `2026-11-23T09:44:06.123456+01:00`"
)]
pub struct TimestampParseError(pub String);

impl Timestamp {
    /// Wrap microseconds since the Unix epoch (UTC).
    pub const fn from_micros(micros: i64) -> Self {
        Timestamp(micros)
    }

    /// Microseconds since the Unix epoch (UTC).
    pub const fn micros(self) -> i64 {
        self.0
    }

    /// The current time. A clock set before 1970 reads as the epoch.
    pub fn now() -> Self {
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        Timestamp(micros)
    }

    /// This time moved by `micros` (negative moves back), saturating at the ends of the range.
    pub const fn add_micros(self, micros: i64) -> Self {
        Timestamp(self.0.saturating_add(micros))
    }

    /// Midnight UTC at the start of this time's day.
    pub const fn start_of_utc_day(self) -> Self {
        Timestamp(self.0.div_euclid(86_400_000_000) * 86_400_000_000)
    }

    /// Midnight UTC on the first day of this time's month.
    pub fn start_of_utc_month(self) -> Self {
        let days = self.0.div_euclid(86_400_000_000);
        let (y, m, _) = civil_from_days(days);
        Timestamp(days_from_civil(y, m, 1) * 86_400_000_000)
    }

    /// RFC 3339 in UTC with six decimals: `2026-11-23T09:44:06.123456Z`.
    pub fn to_rfc3339(self) -> String {
        let secs = self.0.div_euclid(1_000_000);
        let frac = self.0.rem_euclid(1_000_000);
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:06}Z",
            sod / 3600,
            (sod / 60) % 60,
            sod % 60
        )
    }
}

impl Timestamp {
    /// A point in time written as a duration back from now (`90s`, `30m`, `24h`, `7d`, `2w`) or as a
    /// UTC date/time ([`Timestamp::from_str`]): what `--since`/`--until` and the HTTP API's `since`
    /// accept. The error says which forms are accepted.
    pub fn parse_relative(text: &str) -> Result<Timestamp, String> {
        if let Some(micros) = parse_duration_micros(text) {
            return Ok(Timestamp::now().add_micros(-micros));
        }
        text.parse::<Timestamp>()
            .map_err(|e| format!("{e}, or a duration back from now such as `30m`, `24h` or `7d`"))
    }
}

/// Parse a duration such as `90s`, `30m`, `24h`, `7d` or `2w` into microseconds.
pub fn parse_duration_micros(text: &str) -> Option<i64> {
    let text = text.trim();
    let unit = text.chars().last()?;
    let n: i64 = text[..text.len() - unit.len_utf8()].parse().ok()?;
    let secs = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'w' => 7 * 86_400,
        _ => return None,
    };
    n.checked_mul(secs)?.checked_mul(1_000_000)
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl FromStr for Timestamp {
    type Err = TimestampParseError;

    /// Accepts `YYYY-MM-DD` (midnight UTC) and `YYYY-MM-DDTHH:MM[:SS[.f…]]` followed by `Z`, `+HH:MM` or
    /// `-HH:MM` (a space may replace the `T`; without a zone the time is UTC).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_timestamp(s.trim()).ok_or_else(|| TimestampParseError(s.to_owned()))
    }
}

fn parse_timestamp(s: &str) -> Option<Timestamp> {
    let num = |t: &str| -> Option<i64> {
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    };
    let (date, time) = match s.find(['T', 't', ' ']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let mut parts = date.splitn(3, '-');
    let (y, m, d) = (num(parts.next()?)?, num(parts.next()?)?, num(parts.next()?)?);
    if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
        return None;
    }
    let mut micros = days_from_civil(y, m, d).checked_mul(86_400_000_000)?;
    let Some(time) = time else {
        return Some(Timestamp(micros));
    };
    let (clock, offset_secs) = if let Some(c) = time.strip_suffix(['Z', 'z']) {
        (c, 0)
    } else if let Some(i) = time.rfind(['+', '-']) {
        let (h, mm) = time[i + 1..].split_once(':')?;
        let off = num(h)? * 3600 + num(mm)? * 60;
        (&time[..i], if &time[i..=i] == "-" { -off } else { off })
    } else {
        (time, 0)
    };
    let mut hms = clock.splitn(3, ':');
    let h = num(hms.next()?)?;
    let mi = num(hms.next()?)?;
    let (sec, frac) = match hms.next() {
        None => (0, 0),
        Some(sf) => match sf.split_once('.') {
            None => (num(sf)?, 0),
            Some((sec, f)) => {
                let digits: String = f.chars().take(6).collect();
                let scaled = num(&digits)? * 10_i64.pow(6 - u32::try_from(digits.len()).ok()?);
                if f.len() > 6 && !f.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                (num(sec)?, scaled)
            }
        },
    };
    if h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    micros = micros.checked_add(((h * 3600 + mi * 60 + sec - offset_secs) * 1_000_000) + frac)?;
    Some(Timestamp(micros))
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Howard Hinnant's `days_from_civil` / `civil_from_days` (proleptic Gregorian, days since 1970-01-01).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The unique id of one event: a time-ordered UUID (version 7), printed in the usual hyphenated form.
///
/// Stores use it to make inserts idempotent: writing the same event twice (a retry, a spill file replayed
/// twice) keeps one row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId(u128);

impl EventId {
    /// A fresh id: 48 bits of Unix milliseconds, then 74 random bits.
    pub fn new() -> Self {
        let millis = u128::try_from(Timestamp::now().micros() / 1000).unwrap_or(0) & ((1 << 48) - 1);
        let random: u128 = rand::random();
        let mut v = (millis << 80) | (random & ((1 << 80) - 1));
        // Version 7 in bits 76..80, RFC 4122 variant in bits 62..64.
        v = (v & !(0xF << 76)) | (0x7 << 76);
        v = (v & !(0x3 << 62)) | (0x2 << 62);
        EventId(v)
    }

    /// The id as a 128-bit number.
    pub const fn as_u128(self) -> u128 {
        self.0
    }

    /// An id from its 128-bit number.
    pub const fn from_u128(v: u128) -> Self {
        EventId(v)
    }

    /// The id as 16 big-endian bytes (how binary stores keep it).
    pub const fn to_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }

    /// An id from 16 big-endian bytes.
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        EventId(u128::from_be_bytes(bytes))
    }
}

impl Default for EventId {
    fn default() -> Self {
        EventId::new()
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = format!("{:032x}", self.0);
        write!(
            f,
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        )
    }
}

/// Why a text is not an event id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an event id; expected a UUID such as `0193a5b0-7c1e-7d2a-9f00-1234567890ab`")]
pub struct EventIdParseError(pub String);

impl FromStr for EventId {
    type Err = EventIdParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex: String = s.chars().filter(|c| *c != '-').collect();
        if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(EventIdParseError(s.to_owned()));
        }
        u128::from_str_radix(&hex, 16)
            .map(EventId)
            .map_err(|_| EventIdParseError(s.to_owned()))
    }
}

impl Serialize for EventId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for EventId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident, $err:literal { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        #[non_exhaustive]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &[$name] = &[$($name::$variant),*];

            /// The stable text form (as stored and printed).
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;
            fn from_str(s: &str) -> Result<Self, UnknownValue> {
                match s {
                    $($text => Ok($name::$variant),)*
                    _ => Err(UnknownValue {
                        what: $err,
                        value: s.to_owned(),
                        choices: vec![$($text),*],
                    }),
                }
            }
        }
    };
}

/// A text that names none of the allowed values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not a {what}; expected one of: {}", .choices.join(", "))]
pub struct UnknownValue {
    /// What was being parsed (`event kind`, `session status`, ...).
    pub what: &'static str,
    /// The offending text.
    pub value: String,
    /// The valid choices.
    pub choices: Vec<&'static str>,
}

string_enum! {
    /// What an event records (the observability spec's canonical kinds, §3).
    EventKind, "event kind" {
        /// A run began; `content` is its input.
        CascadeStart = "cascade_start",
        /// A run ended; `content` is its final output, `metadata.status` its status.
        CascadeComplete = "cascade_complete",
        /// A run crashed.
        CascadeError = "cascade_error",
        /// A run was cancelled (Ctrl-C, SIGTERM, `rvbbit sessions cancel`).
        CascadeCancelled = "cascade_cancelled",
        /// A cell began.
        CellStart = "cell_start",
        /// A cell finished; `content` is its output, `duration_us` always set.
        CellComplete = "cell_complete",
        /// A cell failed; `error` holds the message and code.
        CellError = "cell_error",
        /// Context from earlier cells was injected.
        ContextInjected = "context_injected",
        /// A rendered prompt.
        Prompt = "prompt",
        /// A turn of an LLM cell began.
        TurnStart = "turn_start",
        /// An LLM request is about to be sent; `request` holds the messages.
        LlmRequest = "llm_request",
        /// One provider call answered: request, response, tokens, model, latency, cost.
        LlmResponse = "llm_response",
        /// One provider call failed.
        LlmError = "llm_error",
        /// A tool was called; `content` holds the arguments.
        ToolCall = "tool_call",
        /// A tool returned; `content` holds the result, `duration_us` its time.
        ToolResult = "tool_result",
        /// A validator (output schema, `loop_until`) judged an output.
        Validation = "validation",
        /// A ward judged an input or output.
        Ward = "ward",
        /// A retry was injected after a failed validation.
        Retry = "retry",
        /// A candidate branch began.
        CandidateStart = "candidate_start",
        /// A candidate branch finished (with `metadata.is_winner`).
        CandidateComplete = "candidate_complete",
        /// An evaluator chose among candidates.
        Evaluation = "evaluation",
        /// A human-in-the-loop checkpoint is waiting for an answer.
        CheckpointCreated = "checkpoint_created",
        /// A human-in-the-loop checkpoint was answered, timed out or cancelled.
        CheckpointResolved = "checkpoint_resolved",
        /// A signal was awaited, fired, timed out or cancelled.
        Signal = "signal",
        /// A child session (sub-cascade, validator, ward cascade, row) began.
        ChildStart = "child_start",
        /// A cost arrived later for an earlier `llm_response` (its id in `metadata.event_id`).
        CostUpdate = "cost_update",
        /// The compute cost of one code, shell or script tool call: its wall time in `duration_us`, the
        /// cost (`duration × costs.compute_micro_dollars_per_second`) in `cost`, the tool in
        /// `metadata.tool` and the rate in `metadata.micro_dollars_per_second`.
        ComputeCost = "compute_cost",
        /// An error not tied to a cell.
        Error = "error",
        /// A result served from the result cache instead of a new run (SQL functions): zero cost, the
        /// avoided cost in `metadata.avoided_cost_micro_usd`, the session that produced it as `session_id`.
        CacheHit = "cache_hit",
        /// One embeddings request of a SQL statement (`SIMILAR_TO`, `rvbbit_embed`, `VECTOR_SEARCH`): model,
        /// prompt tokens, cost and time; `metadata.inputs` texts of `metadata.dimensions`.
        Embedding = "embedding",
        /// One SQL statement that reached rvbbit functions finished: text, hash, rows, calls, cache hits,
        /// errors, cost and duration in `metadata` (the rows of `sql_query_log`).
        SqlQuery = "sql_query",
        /// An agent turn began (`rvbbit-agents`): the conversation's session id, the turn group in
        /// `metadata.turn_group`, the attempt (1, 2, … after supersedes) in `metadata.attempt`, the
        /// engine run in `metadata.run_session_id`, the turn's raw messages in `content`.
        #[serde(rename = "turn.started")]
        AgentTurnStarted = "turn.started",
        /// An agent turn ended; the reply in `content`, the run's status in `metadata.status`.
        #[serde(rename = "turn.completed")]
        AgentTurnCompleted = "turn.completed",
        /// An agent turn in flight was cancelled by a newer message before its commit point; the turn
        /// group restarts with all its messages.
        #[serde(rename = "turn.superseded")]
        AgentTurnSuperseded = "turn.superseded",
        /// A message joined a turn group still gathering messages (or one it superseded).
        #[serde(rename = "turn.message_absorbed")]
        AgentMessageAbsorbed = "turn.message_absorbed",
        /// An `irreversible` or `compensatable` tool ran in an agent turn: later messages queue as a new
        /// turn group (the tool in `metadata.tool`, its policy in `metadata.policy`).
        #[serde(rename = "commit.reached")]
        AgentCommitReached = "commit.reached",
        /// A chat command arrived (`rvbbit-channels`): integration, user and command in `metadata`, the
        /// message in `content`. One of the three below follows under the same session id.
        #[serde(rename = "command.attempt")]
        CommandAttempt = "command.attempt",
        /// A chat command ran and replied.
        #[serde(rename = "command.success")]
        CommandSuccess = "command.success",
        /// A chat command was refused (allowlist, rate limit, validation, paused breaker): `metadata.reason`.
        #[serde(rename = "command.denied")]
        CommandDenied = "command.denied",
        /// A chat command ran and failed (`metadata.reason` holds the error).
        #[serde(rename = "command.failed")]
        CommandFailed = "command.failed",
        /// A cell published an artifact (`create_artifact`, `create_chart`, `create_plotly`,
        /// `create_vega_lite`): `content` holds `artifact_id`, `kind`, `title`, `description`, `tags`,
        /// `content_type` and the `body` (HTML, SVG or a chart spec as JSON text).
        Artifact = "artifact",
    }
}

string_enum! {
    /// How certain an event's cost is (the cost contract, §5).
    CostStatus, "cost status" {
        /// Reported by the provider.
        Exact = "exact",
        /// Computed from a price table.
        Estimated = "estimated",
        /// Expected later (a `cost_update` event follows).
        Pending = "pending",
        /// Not known (never silently zero), or the event has no cost.
        Unknown = "unknown",
    }
}

string_enum! {
    /// Where a session is in its life.
    SessionStatus, "session status" {
        /// Executing cells.
        Running = "running",
        /// Blocked on a human answer or a signal.
        Waiting = "waiting",
        /// Finished successfully.
        Completed = "completed",
        /// Finished with an error (including runs found orphaned by a stale heartbeat).
        Failed = "failed",
        /// Stopped by a user or a signal.
        Cancelled = "cancelled",
    }
}

impl SessionStatus {
    /// Whether a session in this status may still be executing (`running` or `waiting`).
    pub const fn is_active(self) -> bool {
        matches!(self, SessionStatus::Running | SessionStatus::Waiting)
    }
}

/// Token counts of one call, by class. `None` means the provider did not say.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Tokens {
    /// Prompt (input) tokens.
    pub input: Option<i64>,
    /// Completion (output) tokens.
    pub output: Option<i64>,
    /// Reasoning (thinking) tokens.
    pub reasoning: Option<i64>,
    /// Input tokens served from the provider's prompt cache.
    pub cached: Option<i64>,
}

impl Tokens {
    /// The sum of the known input, output and reasoning counts (cached tokens are part of input).
    pub fn total(&self) -> i64 {
        self.input.unwrap_or(0) + self.output.unwrap_or(0) + self.reasoning.unwrap_or(0)
    }
}

/// One thing that happened in a run.
///
/// Fields are public so producers fill what they know; [`Event::new`] sets the id, time and the empty
/// defaults. `seq` is the per-session sequence number assigned by the producer (0, 1, 2, ...), which gives
/// a total order within a session even when timestamps tie.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// Unique id; makes store inserts idempotent.
    pub event_id: EventId,
    /// Per-session sequence number.
    pub seq: i64,
    /// When it happened (UTC µs).
    pub ts_us: Timestamp,
    /// What happened.
    pub kind: EventKind,
    /// The run that produced it.
    pub session_id: SessionId,
    /// The run that started this one, if any.
    #[serde(default)]
    pub parent_session_id: Option<SessionId>,
    /// The root of the run tree (the session itself for a root run).
    pub root_session_id: SessionId,
    /// What caused the run (a CLI invocation, a SQL statement, ...).
    #[serde(default)]
    pub caller_id: Option<CallerId>,
    /// Details of the invocation (a JSON object; `{}` when none).
    #[serde(default = "empty_object")]
    pub invocation_metadata: Value,
    /// The cascade being run.
    #[serde(default)]
    pub cascade_id: Option<String>,
    /// The cell, for cell-level events.
    #[serde(default)]
    pub cell_name: Option<String>,
    /// The execution-tree node of this event.
    #[serde(default)]
    pub trace_id: Option<String>,
    /// The parent node in the execution tree.
    #[serde(default)]
    pub parent_trace_id: Option<String>,
    /// Nesting depth of the session (root 0).
    #[serde(default)]
    pub depth: u32,
    /// Candidate branch index, when inside a branch.
    #[serde(default)]
    pub candidate_index: Option<i32>,
    /// Attempt number (0-based), when the cell has several.
    #[serde(default)]
    pub attempt: Option<i32>,
    /// Turn number (0-based), when the cell has several.
    #[serde(default)]
    pub turn: Option<i32>,
    /// Model reported by the provider.
    #[serde(default)]
    pub model: Option<String>,
    /// Model string from the configuration.
    #[serde(default)]
    pub model_requested: Option<String>,
    /// Provider name.
    #[serde(default)]
    pub provider: Option<String>,
    /// The provider's id for the call.
    #[serde(default)]
    pub request_id: Option<String>,
    /// Tokens by class.
    #[serde(default)]
    pub tokens: Tokens,
    /// Cost in micro-dollars, when known.
    #[serde(default)]
    pub cost: Option<MicroUsd>,
    /// How certain `cost` is.
    pub cost_status: CostStatus,
    /// How long the step took, in microseconds.
    #[serde(default)]
    pub duration_us: Option<i64>,
    /// The content (a message, an input, an output, tool arguments or result), as JSON.
    #[serde(default)]
    pub content: Value,
    /// The exact provider request (model, messages, tools), for LLM events.
    #[serde(default)]
    pub request: Option<Value>,
    /// The exact provider response, for LLM events.
    #[serde(default)]
    pub response: Option<Value>,
    /// Error details (`{"code", "message", ...}`), for error events.
    #[serde(default)]
    pub error: Option<Value>,
    /// Free-form extra fields.
    #[serde(default = "empty_object")]
    pub metadata: Value,
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

impl Event {
    /// A new event of a root session, stamped now, with a fresh id and every optional field empty.
    pub fn new(kind: EventKind, session_id: SessionId, seq: i64) -> Self {
        Event {
            event_id: EventId::new(),
            seq,
            ts_us: Timestamp::now(),
            kind,
            parent_session_id: None,
            root_session_id: session_id.clone(),
            session_id,
            caller_id: None,
            invocation_metadata: empty_object(),
            cascade_id: None,
            cell_name: None,
            trace_id: None,
            parent_trace_id: None,
            depth: 0,
            candidate_index: None,
            attempt: None,
            turn: None,
            model: None,
            model_requested: None,
            provider: None,
            request_id: None,
            tokens: Tokens::default(),
            cost: None,
            cost_status: CostStatus::Unknown,
            duration_us: None,
            content: Value::Null,
            request: None,
            response: None,
            error: None,
            metadata: empty_object(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_through_rfc3339() {
        for micros in [
            0,
            1,
            999_999,
            1_700_000_000_123_456,
            -1,
            -86_400_000_001,
            4_102_444_800_000_000,
        ] {
            let t = Timestamp::from_micros(micros);
            assert_eq!(t.to_rfc3339().parse::<Timestamp>(), Ok(t), "{}", t.to_rfc3339());
        }
        assert_eq!(
            "2024-02-29T12:00:00+02:00"
                .parse::<Timestamp>()
                .unwrap()
                .to_rfc3339(),
            "2024-02-29T10:00:00.000000Z"
        );
        assert_eq!(
            "2024-01-01 00:00".parse::<Timestamp>().unwrap().to_rfc3339(),
            "2024-01-01T00:00:00.000000Z"
        );
        for bad in ["2023-02-29", "2024-13-01", "yesterday", "2024-01-01T25:00Z", ""] {
            assert!(bad.parse::<Timestamp>().is_err(), "{bad}");
        }
    }

    #[test]
    fn periods_start_at_utc_midnight() {
        let t: Timestamp = "2024-02-29T23:59:59.999999Z".parse().unwrap();
        assert_eq!(t.start_of_utc_day().to_rfc3339(), "2024-02-29T00:00:00.000000Z");
        assert_eq!(t.start_of_utc_month().to_rfc3339(), "2024-02-01T00:00:00.000000Z");
        let t: Timestamp = "1969-12-31T12:00:00Z".parse().unwrap();
        assert_eq!(t.start_of_utc_day().to_rfc3339(), "1969-12-31T00:00:00.000000Z");
        assert_eq!(t.start_of_utc_month().to_rfc3339(), "1969-12-01T00:00:00.000000Z");
    }

    #[test]
    fn event_ids_are_version_7_and_round_trip() {
        let a = EventId::new();
        let text = a.to_string();
        assert_eq!(text.len(), 36);
        assert_eq!(&text[14..15], "7");
        assert_eq!(text.parse::<EventId>(), Ok(a));
        assert_eq!(EventId::from_bytes(a.to_bytes()), a);
        assert_ne!(a, EventId::new());
    }

    #[test]
    fn kinds_parse_their_text_and_name_the_choices() {
        for k in EventKind::ALL {
            assert_eq!(k.as_str().parse::<EventKind>(), Ok(*k));
            assert_eq!(serde_json::to_value(k).unwrap(), Value::String(k.as_str().into()));
        }
        let err = "cell_begin".parse::<EventKind>().unwrap_err();
        assert!(err.to_string().contains("cell_start"));
        assert!(SessionStatus::Waiting.is_active() && !SessionStatus::Failed.is_active());
    }

    #[test]
    fn events_round_trip_through_json() {
        let mut e = Event::new(EventKind::ToolResult, "s-1".parse().unwrap(), 7);
        e.cost = Some(MicroUsd::from_micros(12));
        e.content = serde_json::json!({"rows": 3});
        let text = serde_json::to_string(&e).unwrap();
        let back: Event = serde_json::from_str(&text).unwrap();
        assert_eq!(back, e);
    }
}
