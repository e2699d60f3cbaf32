//! What every handler shares.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rvbbit_engine::{CancellationToken, Engine};
use rvbbit_store::{Store, WriterHandle};
use tokio_util::task::TaskTracker;

use crate::metrics::Metrics;

/// How the server behaves.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Directories cascades are listed from, read from and run from. Every client path resolves under
    /// one of them (canonical containment check).
    pub roots: Vec<PathBuf>,
    /// Whether API requests need a key (always when bound beyond loopback).
    pub require_key: bool,
    /// How often live streams look for new events in the store.
    pub poll_interval: Duration,
    /// How often an idle live stream sends a keep-alive comment.
    pub keep_alive: Duration,
    /// On shutdown, how long in-flight runs may finish before they are cancelled.
    pub shutdown_grace: Duration,
    /// Largest request body, in bytes.
    pub max_body: usize,
    /// Browser origins allowed to call the API cross-origin (CORS); empty keeps CORS off.
    pub cors_origins: Vec<String>,
    /// Host names a keyless server answers besides the loopback names (`server.allowed_hosts`).
    pub allowed_hosts: Vec<String>,
    /// Connections served at once (`limits.http_connections`).
    pub max_connections: usize,
    /// Time a client has to send a request's headers (`limits.http_header_timeout_seconds`).
    pub header_timeout: Duration,
    /// The job queue (`queue.url` and its options) of `POST /api/v1/runs?queue=true`; none refuses it.
    pub queue: Option<(String, rvbbit_store::QueueOptions)>,
}

impl ServerConfig {
    /// Defaults: no roots, no keys, 50 ms polling, 15 s keep-alive, 10 s grace, 8 MiB bodies, 1024
    /// connections, 10 s to send headers, only loopback `Host` names.
    pub fn new(roots: Vec<PathBuf>) -> Self {
        ServerConfig {
            roots,
            require_key: false,
            poll_interval: Duration::from_millis(50),
            keep_alive: Duration::from_secs(15),
            shutdown_grace: Duration::from_secs(10),
            max_body: 8 * 1024 * 1024,
            cors_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            max_connections: 1024,
            header_timeout: Duration::from_secs(10),
            queue: None,
        }
    }

    /// Enqueue `POST /api/v1/runs?queue=true` runs on the queue at `url` (opened at the first one).
    pub fn with_queue(mut self, url: String, options: rvbbit_store::QueueOptions) -> Self {
        self.queue = Some((url, options));
        self
    }

    /// Require API keys.
    pub fn with_required_key(mut self, required: bool) -> Self {
        self.require_key = required;
        self
    }

    /// Allow these browser origins to call the API cross-origin (CORS). Credentials (cookies) are never
    /// allowed cross-origin: such clients send `Authorization: Bearer KEY`.
    pub fn with_cors_origins(mut self, origins: Vec<String>) -> Self {
        self.cors_origins = origins;
        self
    }

    /// Host names (besides loopback) a keyless server answers; guards against DNS rebinding.
    pub fn with_allowed_hosts(mut self, hosts: Vec<String>) -> Self {
        self.allowed_hosts = hosts;
        self
    }

    /// Connections served at once, and the time a client has to send each request's headers.
    pub fn with_connection_limits(mut self, max_connections: usize, header_timeout: Duration) -> Self {
        self.max_connections = max_connections.max(1);
        self.header_timeout = header_timeout;
        self
    }

    /// How long in-flight runs may finish on shutdown.
    pub fn with_shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }
}

/// Shared state of the handlers.
pub(crate) struct AppState {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) engine: Engine,
    pub(crate) writer: Option<WriterHandle>,
    pub(crate) config: ServerConfig,
    pub(crate) metrics: Metrics,
    /// Runs started by this server and still going, by session id.
    pub(crate) runs: Mutex<HashMap<String, CancellationToken>>,
    pub(crate) tasks: TaskTracker,
    /// Cancelled when the server shuts down: live streams end.
    pub(crate) shutdown: CancellationToken,
    /// The SQL door (`POST /api/v1/sql`, the Studio console), when the server has one.
    pub(crate) sql: Option<rvbbit_sql::SqlRuntime>,
    /// Open SQL sessions of the API.
    pub(crate) sql_sessions: crate::api::sql::SqlSessions,
    /// The shared event feeds of sessions followed by live streams.
    pub(crate) feeds: crate::api::feed::Feeds,
    /// The job queue of `POST /api/v1/runs?queue=true`.
    pub(crate) queue: crate::api::queued::QueueDoor,
    /// The agents of `/api/v1/agents/…` (none: every agent is unknown).
    pub(crate) agents: Option<rvbbit_agents::Agents>,
    /// The chat integrations of `/hooks/{kind}/{integration}` (none: every integration is unknown).
    pub(crate) channels: Option<rvbbit_channels::Channels>,
    /// Answers of recent agent messages by `Idempotency-Key`.
    pub(crate) idempotency: crate::api::agents::Idempotency,
}

impl AppState {
    /// Cancel an in-process run; false when this server does not run it.
    pub(crate) fn cancel_local(&self, session_id: &str) -> bool {
        let runs = self
            .runs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match runs.get(session_id) {
            Some(token) => {
                token.cancel();
                true
            }
            None => false,
        }
    }

    pub(crate) fn is_local(&self, session_id: &str) -> bool {
        self.runs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains_key(session_id)
    }
}
