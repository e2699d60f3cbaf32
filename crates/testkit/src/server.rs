//! The scripted OpenAI-compatible HTTP server.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::reply::{Kind, Reply};

/// A function choosing the reply from the request body.
pub type Rule = Arc<dyn Fn(&Value) -> Reply + Send + Sync>;

/// How the server picks replies.
#[derive(Clone)]
pub enum Script {
    /// These replies in order, one per request; once they run out, every request gets an echo of its
    /// last user message.
    Sequence(Vec<Reply>),
    /// A function of the request body (`model`, `messages`, `stream`, …).
    Rule(Rule),
}

impl std::fmt::Debug for Script {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Script::Sequence(replies) => f.debug_tuple("Sequence").field(&replies.len()).finish(),
            Script::Rule(_) => f.write_str("Rule(..)"),
        }
    }
}

impl Script {
    /// Replies in order, then echoes.
    pub fn sequence(replies: impl IntoIterator<Item = Reply>) -> Script {
        Script::Sequence(replies.into_iter().collect())
    }

    /// Replies chosen by `rule`.
    pub fn rule(rule: impl Fn(&Value) -> Reply + Send + Sync + 'static) -> Script {
        Script::Rule(Arc::new(rule))
    }

    /// Always echo the last user message.
    pub fn echo() -> Script {
        Script::Sequence(Vec::new())
    }
}

/// One request the server received.
#[derive(Clone, Debug)]
pub struct Received {
    /// When it arrived (tokio's clock, so it follows a paused test clock).
    pub at: Instant,
    /// The JSON body.
    pub body: Value,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
}

struct Shared {
    replies: Mutex<VecDeque<Reply>>,
    rule: Option<Rule>,
    latency: Duration,
    requests: AtomicU64,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    received: Mutex<Vec<Received>>,
    /// Bodies of `/v1/embeddings` requests, apart from the chat requests.
    embed_received: Mutex<Vec<Value>>,
    /// Bodies of `/v1/audio/speech` requests.
    speech_received: Mutex<Vec<Value>>,
    shutdown: CancellationToken,
}

/// A running scripted server on `127.0.0.1` (random port). Dropping it stops accepting connections;
/// [`TestServer::shutdown`] also waits for the server task to finish.
pub struct TestServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for TestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// Options for [`TestServer::start_with`].
#[derive(Clone, Debug)]
pub struct Options {
    /// How replies are chosen.
    pub script: Script,
    /// Delay before every answer (a reply's own latency overrides it).
    pub latency: Duration,
    /// The address to bind; port 0 picks a free one.
    pub addr: SocketAddr,
}

impl Options {
    /// `script` with no latency on a random loopback port.
    pub fn new(script: Script) -> Options {
        Options {
            script,
            latency: Duration::ZERO,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }

    /// Set the default latency.
    pub fn latency(mut self, latency: Duration) -> Options {
        self.latency = latency;
        self
    }
}

impl TestServer {
    /// Start a server answering with `script`.
    ///
    /// # Panics
    /// If no loopback port can be bound (a broken test machine).
    pub async fn start(script: Script) -> TestServer {
        TestServer::start_with(Options::new(script)).await
    }

    /// Start a server with full options.
    ///
    /// # Panics
    /// If the address cannot be bound.
    pub async fn start_with(options: Options) -> TestServer {
        let listener = TcpListener::bind(options.addr)
            .await
            .expect("bind the test server");
        let addr = listener.local_addr().expect("the test server's address");
        let (replies, rule) = match options.script {
            Script::Sequence(r) => (r.into_iter().collect(), None),
            Script::Rule(rule) => (VecDeque::new(), Some(rule)),
        };
        let shared = Arc::new(Shared {
            replies: Mutex::new(replies),
            rule,
            latency: options.latency,
            requests: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            received: Mutex::new(Vec::new()),
            embed_received: Mutex::new(Vec::new()),
            speech_received: Mutex::new(Vec::new()),
            shutdown: CancellationToken::new(),
        });
        let app = Router::new()
            .route("/v1/embeddings", post(embeddings))
            .route("/embeddings", post(embeddings))
            .route("/v1/chat/completions", post(chat))
            .route("/chat/completions", post(chat))
            .route("/v1/models", get(models))
            .route("/v1/audio/speech", post(speech))
            .route("/audio/speech", post(speech))
            .with_state(Arc::clone(&shared));
        let token = shared.shutdown.clone();
        let task = tokio::spawn(async move {
            // Serving ends only on shutdown; an accept error would end it early and fail the test's calls.
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(token.cancelled_owned())
                .await;
        });
        TestServer {
            addr,
            shared,
            task: Some(task),
        }
    }

    /// The base URL to configure a client with: `http://127.0.0.1:<port>/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Requests received so far.
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// The bodies of the `/v1/embeddings` requests so far (not counted in [`TestServer::requests`]).
    pub fn embed_requests(&self) -> Vec<Value> {
        self.shared
            .embed_received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The bodies of the `/v1/audio/speech` requests so far (`model`, `input`, `voice`, …; not counted
    /// in [`TestServer::requests`]).
    pub fn speech_requests(&self) -> Vec<Value> {
        self.shared
            .speech_received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The image URLs of every chat request so far, in order ([`crate::image_urls`] of each body).
    pub fn images(&self) -> Vec<String> {
        self.bodies().iter().flat_map(crate::image_urls).collect()
    }

    /// The most requests ever in flight at once.
    pub fn max_concurrency(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    /// Every request received, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.shared
            .received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The JSON bodies received, in arrival order.
    pub fn bodies(&self) -> Vec<Value> {
        self.received().into_iter().map(|r| r.body).collect()
    }

    /// Append replies to the script (sequence scripts only).
    pub fn push(&self, replies: impl IntoIterator<Item = Reply>) {
        self.shared
            .replies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(replies);
    }

    /// Stop the server: hanging requests are released, and the call returns when the server task ended.
    pub async fn shutdown(mut self) {
        self.shared.shutdown.cancel();
        if let Some(task) = self.task.take() {
            // A panicked server task has already failed the calls it served; nothing more to report.
            let _ = task.await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shared.shutdown.cancel();
    }
}

/// Counts a request as in flight until dropped.
struct InFlight(Arc<Shared>);

impl InFlight {
    fn enter(shared: &Arc<Shared>) -> InFlight {
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(Arc::clone(shared))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The length of the scripted server's vectors.
pub const EMBED_DIMS: usize = 64;

/// `/v1/embeddings`: [`hashed_embedding`] of each input, after the server's latency. An input that
/// reads `!status NNN` makes the whole request fail with that HTTP status (for retry tests).
/// `POST /v1/audio/speech`: records the body and answers with [`crate::speech_wav`] (`audio/wav`),
/// or 400 when `input` is missing or empty.
async fn speech(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let request: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return error_response(400, &format!("request body is not JSON: {e}"), None),
    };
    let empty = request["input"].as_str().is_none_or(str::is_empty);
    shared
        .speech_received
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(request);
    if empty {
        return error_response(400, "`input` must be a non-empty string", None);
    }
    let mut response = Response::new(Body::from(crate::speech_wav()));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("audio/wav"));
    response
}

async fn embeddings(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let _guard = InFlight::enter(&shared);
    let request: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return error_response(400, &format!("request body is not JSON: {e}"), None),
    };
    shared
        .embed_received
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(request.clone());
    if !shared.latency.is_zero() {
        tokio::time::sleep(shared.latency).await;
    }
    let inputs: Vec<String> = match &request["input"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().unwrap_or_default().to_owned())
            .collect(),
        _ => return error_response(400, "`input` must be a string or an array of strings", None),
    };
    if let Some(status) = inputs.iter().find_map(|i| {
        i.strip_prefix("!status ")
            .and_then(|s| s.trim().parse::<u16>().ok())
    }) {
        return error_response(status, "scripted embeddings failure", None);
    }
    let tokens: usize = inputs.iter().map(|t| t.len().div_ceil(4).max(1)).sum();
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(
            |(i, t)| json!({"object": "embedding", "index": i, "embedding": hashed_embedding(t, EMBED_DIMS)}),
        )
        .collect();
    axum::Json(json!({
        "object": "list",
        "model": request["model"],
        "data": data,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens}
    }))
    .into_response()
}

/// The scripted embedding of `text`: each lower-cased word (letters and digits) adds 1 at the position
/// of its FNV-1a hash modulo `dims`, then the vector is normalised (the same function as
/// `rvbbit_llm::hashed_embedding`, which tests compare it with).
pub fn hashed_embedding(text: &str, dims: usize) -> Vec<f32> {
    let dims = dims.max(1);
    let mut v = vec![0.0f32; dims];
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in word.to_lowercase().bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        let slot = usize::try_from(h % dims as u64).unwrap_or(0);
        v[slot] += 1.0;
    }
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

async fn models() -> Response {
    axum::Json(json!({"object": "list", "data": [{"id": "scripted/model", "object": "model"}]}))
        .into_response()
}

async fn chat(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let _guard = InFlight::enter(&shared);
    let n = shared.requests.fetch_add(1, Ordering::SeqCst) + 1;
    let request: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return error_response(400, &format!("request body is not JSON: {e}"), None),
    };
    shared
        .received
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(Received {
            at: Instant::now(),
            body: request.clone(),
            authorization: headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        });
    let reply = match &shared.rule {
        Some(rule) => rule(&request),
        None => shared
            .replies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front()
            .unwrap_or_else(|| Reply::text(echo(&request))),
    };
    let latency = reply.latency.unwrap_or(shared.latency);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let stream = request["stream"].as_bool().unwrap_or(false);
    let id = format!("gen-{n}");
    match reply.kind {
        Kind::Completion(c) if stream => sse_response(c.to_sse(&id, &request).into_iter().map(Ok).collect()),
        Kind::Completion(c) => axum::Json(c.to_json(&id, &request)).into_response(),
        Kind::Status {
            status,
            message,
            retry_after,
        } => error_response(status, &message, retry_after),
        Kind::Hang => {
            shared.shutdown.cancelled().await;
            error_response(503, "server shutting down", None)
        }
        Kind::MalformedJson if stream => {
            sse_response(vec![Ok("data: {\"choices\": [ this is not json\n\n".to_owned())])
        }
        Kind::Json(body) => axum::Json(body).into_response(),
        Kind::MalformedJson => (
            [(header::CONTENT_TYPE, "application/json")],
            "{\"choices\": [ this is not json",
        )
            .into_response(),
        Kind::Truncated { frames } if stream => {
            let c = crate::reply::Completion {
                text: "partial answer".to_owned(),
                ..Default::default()
            };
            let head: Vec<String> = c.to_sse(&id, &request).into_iter().take(frames).collect();
            cut_off(head, "text/event-stream")
        }
        Kind::Truncated { .. } => cut_off(
            vec!["{\"id\": \"x\", \"choices\": [".to_owned()],
            "application/json",
        ),
    }
}

/// A body that sends `head`, then breaks the connection. The pause lets hyper flush `head` first;
/// an error right behind buffered data would discard it.
fn cut_off(head: Vec<String>, content_type: &'static str) -> Response {
    let head = futures::stream::iter(head.into_iter().map(Ok::<String, std::io::Error>));
    let cut = futures::stream::once(async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "injected truncation",
        ))
    });
    let mut response = Response::new(Body::from_stream(head.chain(cut)));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn sse_response(frames: Vec<Result<String, std::io::Error>>) -> Response {
    let mut response = Response::new(Body::from_stream(futures::stream::iter(frames)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

fn error_response(status: u16, message: &str, retry_after: Option<String>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = json!({"error": {"message": message, "code": status.as_u16()}});
    let mut response = (status, axum::Json(body)).into_response();
    if let Some(value) = retry_after.and_then(|v| HeaderValue::from_str(&v).ok()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

fn echo(request: &Value) -> String {
    let last_user = request["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
        .map(|m| match &m["content"] {
            Value::String(s) => s.clone(),
            Value::Array(parts) => parts
                .iter()
                .filter_map(|p| p["text"].as_str())
                .collect::<Vec<_>>()
                .join(""),
            _ => String::new(),
        })
        .unwrap_or_default();
    format!("echo: {last_user}")
}
