//! The registry of queue workers: each `rvbbit worker` records a heartbeat row (name, host, tags, slots,
//! jobs in flight and done, state) every few seconds, so `rvbbit queue status` can list the live workers
//! and tell a worker that stopped cleanly from one that vanished (its heartbeat went stale while it still
//! says `running`).

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use rvbbit_core::Timestamp;
use rvbbit_core::event::UnknownValue;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::Result;

/// What a worker says it is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum WorkerState {
    /// Pulling and running jobs.
    Running,
    /// Told to stop: no longer pulling, finishing what it holds.
    Draining,
    /// Gone after a clean stop.
    Stopped,
}

impl WorkerState {
    /// The stable text form.
    pub const fn as_str(self) -> &'static str {
        match self {
            WorkerState::Running => "running",
            WorkerState::Draining => "draining",
            WorkerState::Stopped => "stopped",
        }
    }
}

impl fmt::Display for WorkerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for WorkerState {
    type Err = UnknownValue;
    fn from_str(s: &str) -> std::result::Result<Self, UnknownValue> {
        match s {
            "running" => Ok(WorkerState::Running),
            "draining" => Ok(WorkerState::Draining),
            "stopped" => Ok(WorkerState::Stopped),
            _ => Err(UnknownValue {
                what: "worker state",
                value: s.to_owned(),
                choices: vec!["running", "draining", "stopped"],
            }),
        }
    }
}

/// One worker process, as of its latest heartbeat.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WorkerRecord {
    /// `worker-<host>-<pid>`: unique per process.
    pub name: String,
    /// The host it runs on.
    pub host: String,
    /// Its process id there.
    pub pid: i64,
    /// Its `--tag` labels (a JSON object).
    pub tags: Value,
    /// Runs it holds at once (`--concurrency`).
    pub slots: i64,
    /// Runs in flight at the latest heartbeat.
    pub in_flight: i64,
    /// Deliveries it settled so far (acked, handed back or given up).
    pub settled: i64,
    /// What it says it is doing.
    pub state: WorkerState,
    /// When it started.
    pub started_at: Timestamp,
    /// Its latest heartbeat.
    pub heartbeat_at: Timestamp,
}

impl WorkerRecord {
    /// A worker starting now.
    pub fn start(
        name: impl Into<String>,
        host: impl Into<String>,
        pid: i64,
        tags: Value,
        slots: i64,
    ) -> Self {
        let now = Timestamp::now();
        WorkerRecord {
            name: name.into(),
            host: host.into(),
            pid,
            tags,
            slots,
            in_flight: 0,
            settled: 0,
            state: WorkerState::Running,
            started_at: now,
            heartbeat_at: now,
        }
    }

    /// Whether the worker counts as alive at `now`: not stopped, and a heartbeat within `stale_after`.
    pub fn is_live(&self, now: Timestamp, stale_after: std::time::Duration) -> bool {
        let stale_us = i64::try_from(stale_after.as_micros()).unwrap_or(i64::MAX);
        self.state != WorkerState::Stopped
            && now.micros().saturating_sub(self.heartbeat_at.micros()) <= stale_us
    }
}

/// Where workers record their heartbeats.
#[async_trait]
pub trait WorkerStore: Send + Sync {
    /// Record a heartbeat: insert the worker, or replace its row (by name).
    async fn worker_beat(&self, worker: &WorkerRecord) -> Result<()>;

    /// Every recorded worker, latest heartbeat first.
    async fn workers(&self) -> Result<Vec<WorkerRecord>>;
}
