//! rvbbit's HTTP door: a REST API under `/api/v1` (cascades, runs, sessions, events, costs), live event
//! streams as Server-Sent Events with resume cursors, Prometheus metrics, health probes, and API-key
//! authentication whenever the server is reachable beyond loopback.
//!
//! The server holds no engine or store logic of its own: runs go through [`rvbbit_engine::Engine`],
//! reads through [`rvbbit_store::Store`]. Errors reach clients as `{error_id, code, message, hint}`
//! ([`error::ErrorBody`]); details stay in the server log under the same `error_id`. Every client path
//! goes through one canonical containment check ([`paths::resolve_under`]).
//!
//! ```no_run
//! # async fn demo(store: std::sync::Arc<dyn rvbbit_store::Store>, engine: rvbbit_engine::Engine) -> std::io::Result<()> {
//! use rvbbit_server::{Server, ServerConfig};
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:5050").await?;
//! let server = Server::new(store, engine, ServerConfig::new(vec!["cascades".into()]));
//! server.serve(listener, async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```

mod api;
pub mod auth;
pub mod error;
mod host;
mod listen;
mod metrics;
pub mod paths;
mod state;
mod studio;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use rvbbit_engine::{CancellationToken, Engine};
use rvbbit_store::{Store, WriterHandle};
use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

pub use state::ServerConfig;

use crate::metrics::{Metrics, RequestLabels};
use crate::state::AppState;

/// Every route of the API, as `(method, path template)`: the OpenAPI document and a test keep to it.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/api/v1/openapi.json"),
    ("GET", "/api/v1/cascades"),
    ("GET", "/api/v1/cascades/{path}"),
    ("POST", "/api/v1/cascades/validate"),
    ("POST", "/api/v1/runs"),
    ("GET", "/api/v1/sessions"),
    ("GET", "/api/v1/sessions/{id}"),
    ("GET", "/api/v1/sessions/{id}/trace"),
    ("GET", "/api/v1/sessions/{id}/events"),
    ("GET", "/api/v1/sessions/{id}/artifacts"),
    ("GET", "/api/v1/sessions/{id}/artifacts/{artifact}"),
    ("GET", "/api/v1/sessions/{id}/artifacts/{artifact}/svg"),
    ("POST", "/api/v1/sessions/{id}/cancel"),
    ("GET", "/api/v1/sessions/{id}/waits"),
    ("POST", "/api/v1/sessions/{id}/signals/{name}"),
    ("POST", "/api/v1/sessions/{id}/resume"),
    ("GET", "/api/v1/costs"),
    ("GET", "/api/v1/batches"),
    ("GET", "/api/v1/batches/{id}"),
    ("POST", "/api/v1/batches/{id}/cancel"),
    ("POST", "/api/v1/sql"),
    ("GET", "/api/v1/sql/tables"),
    ("POST", "/api/v1/agents/{agent}/messages"),
    ("GET", "/api/v1/agents/{agent}/conversations"),
    ("GET", "/api/v1/agents/{agent}/conversations/{id}"),
    ("GET", "/api/v1/channels"),
    ("GET", "/api/v1/channels/{name}"),
    ("PUT", "/api/v1/channels/{name}"),
    ("DELETE", "/api/v1/channels/{name}"),
    ("POST", "/hooks/{kind}/{integration}"),
    ("GET", "/chat/{integration}"),
    ("POST", "/chat/{integration}/messages"),
    ("GET", "/chat/{integration}/events"),
];

/// The Studio's pages (HTML), besides the API routes in [`ROUTES`].
pub const STUDIO_ROUTES: &[(&str, &str)] = &[
    ("GET", "/"),
    ("GET", "/sessions/{id}"),
    ("GET", "/costs"),
    ("GET", "/batches"),
    ("GET", "/batches/{id}"),
    ("GET", "/cascades"),
    ("GET", "/cascades/{path}"),
    ("POST", "/runs"),
    ("POST", "/sessions/{id}/answer"),
    ("GET", "/sessions/{id}/artifacts/{artifact}"),
    ("GET", "/sessions/{id}/artifacts/{artifact}/svg"),
    ("GET", "/sql"),
    ("POST", "/sql"),
    ("GET", "/login"),
    ("POST", "/login"),
    ("GET", "/static/studio.css"),
    ("GET", "/static/studio.js"),
    ("GET", "/static/favicon.svg"),
];

/// The HTTP server.
pub struct Server {
    store: Arc<dyn Store>,
    engine: Engine,
    writer: Option<WriterHandle>,
    sql: Option<rvbbit_sql::SqlRuntime>,
    suspend: Option<CancellationToken>,
    config: ServerConfig,
    agents: Option<rvbbit_agents::Agents>,
    channels: Option<rvbbit_channels::Channels>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// A server reading `store` and running cascades with `engine` (which should write events to the
    /// same store).
    pub fn new(store: Arc<dyn Store>, engine: Engine, config: ServerConfig) -> Self {
        Server {
            store,
            engine,
            writer: None,
            sql: None,
            suspend: None,
            config,
            agents: None,
            channels: None,
        }
    }

    /// The token the engine's human-answer source stops waiting on
    /// ([`rvbbit_engine::human::StoreAnswers::with_suspend`]). Shutdown cancels it first, so runs waiting
    /// for a person suspend at once (their sessions stay `waiting`, resumable after a restart) instead of
    /// being cancelled at the end of the grace period.
    pub fn with_suspend_waiting(mut self, token: CancellationToken) -> Self {
        self.suspend = Some(token);
        self
    }

    /// The SQL door for `POST /api/v1/sql` and the Studio's SQL console (statements get `http-…`
    /// caller ids). Without it those answer 503.
    pub fn with_sql(mut self, runtime: rvbbit_sql::SqlRuntime) -> Self {
        self.sql = Some(runtime);
        self
    }

    /// The engine's event writer, so `?wait=true` runs flush before answering and `/metrics` shows the
    /// write queue depth.
    pub fn with_writer(mut self, writer: WriterHandle) -> Self {
        self.writer = Some(writer);
        self
    }

    /// The agents served at `/api/v1/agents/{agent}/…` (their engine should share this server's
    /// store). Shutdown stops their conversations.
    pub fn with_agents(mut self, agents: rvbbit_agents::Agents) -> Self {
        self.agents = Some(agents);
        self
    }

    /// The chat integrations of `POST /hooks/{kind}/{integration}` and the web chat's
    /// `/chat/{integration}` routes (docs/channels.md). Shutdown stops them (after the HTTP listener,
    /// before the agents).
    pub fn with_channels(mut self, channels: rvbbit_channels::Channels) -> Self {
        self.channels = Some(channels);
        self
    }

    fn into_state(self) -> Arc<AppState> {
        let queue = crate::api::queued::QueueDoor::new(self.config.queue.clone());
        Arc::new(AppState {
            queue,
            store: self.store,
            engine: self.engine,
            writer: self.writer,
            config: self.config,
            metrics: Metrics::new(),
            runs: Mutex::new(Default::default()),
            tasks: TaskTracker::new(),
            shutdown: CancellationToken::new(),
            sql: self.sql,
            sql_sessions: Default::default(),
            feeds: Default::default(),
            agents: self.agents,
            channels: self.channels,
            idempotency: Default::default(),
        })
    }

    /// The router (to serve yourself, or to nest under another server).
    pub fn router(self) -> Router {
        router(self.into_state())
    }

    /// Serve on `listener` until `shutdown` completes; then stop accepting, end live streams, let
    /// in-flight runs finish for the configured grace period, cancel what is left (each run marks its
    /// session cancelled and flushes its events) and return.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let suspend = self.suspend.clone();
        let state = self.into_state();
        let router = router(state.clone());
        let stop = state.shutdown.clone();
        let limits = listen::ConnectionLimits {
            max_connections: state.config.max_connections,
            header_timeout: state.config.header_timeout,
        };
        listen::serve(listener, router, limits, async move {
            shutdown.await;
            if let Some(s) = suspend {
                s.cancel();
            }
            stop.cancel();
        })
        .await;
        if let Some(channels) = &state.channels {
            channels.shutdown().await;
        }
        if let Some(agents) = &state.agents {
            agents.shutdown().await;
        }
        state.tasks.close();
        if tokio::time::timeout(state.config.shutdown_grace, state.tasks.wait())
            .await
            .is_err()
        {
            let tokens: Vec<CancellationToken> = state
                .runs
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .values()
                .cloned()
                .collect();
            tracing::warn!(
                runs = tokens.len(),
                "cancelling runs still going after the shutdown grace period"
            );
            for t in tokens {
                t.cancel();
            }
            state.tasks.wait().await;
        }
        if let Some(w) = &state.writer
            && let Err(e) = w.flush().await
        {
            tracing::error!(error = %e, "the event writer did not flush on shutdown");
        }
        Ok(())
    }
}

fn router(state: Arc<AppState>) -> Router {
    let router = api::routes()
        .merge(studio::routes())
        .layer(middleware::from_fn_with_state(state.clone(), auth::require_key))
        .layer(middleware::from_fn_with_state(state.clone(), host::check_host))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(DefaultBodyLimit::max(state.config.max_body));
    // CORS outermost, so preflight requests (which carry no key) are answered before authentication.
    let router = match cors(&state.config.cors_origins) {
        Some(layer) => router.layer(layer),
        None => router,
    };
    router.with_state(state)
}

/// The CORS layer for the configured origins; None (CORS off) when there are none. Origins that are not
/// valid header values are logged and left out.
fn cors(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use axum::http::Method;
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let allowed: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| match HeaderValue::from_str(o.trim_end_matches('/')) {
            Ok(v) => Some(v),
            Err(_) => {
                tracing::warn!(origin = %o, "ignoring a CORS origin that is not a valid header value");
                None
            }
        })
        .collect();
    if allowed.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(allowed))
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::ACCEPT,
                HeaderName::from_static("x-api-key"),
                HeaderName::from_static("last-event-id"),
                HeaderName::from_static("x-request-id"),
            ])
            .expose_headers([HeaderName::from_static("x-request-id")])
            .max_age(std::time::Duration::from_secs(600)),
    )
}

/// Request id, structured log line, metrics and security headers for every response.
async fn observe(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
        .map_or_else(
            || format!("req_{}", hex::encode(rand::random::<[u8; 8]>())),
            str::to_owned,
        );
    let span = tracing::info_span!("http", %request_id, %method, %route);
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    span.in_scope(|| {
        tracing::info!(status, duration_ms = elapsed.as_secs_f64() * 1000.0, "request");
    });
    state.metrics.observe(
        RequestLabels {
            method,
            route,
            status,
        },
        elapsed.as_secs_f64(),
    );
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        headers.insert(HeaderName::from_static("x-request-id"), v);
    }
    // A response with its own policy (the web chat page, which may be framed) keeps it.
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
            ),
        );
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}
