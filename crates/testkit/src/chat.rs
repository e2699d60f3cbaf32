//! Fake Slack and Mattermost servers, and inbound requests signed the way each platform documents.
//!
//! [`FakeChat`] binds `127.0.0.1:0` and records every message it receives: Slack's `chat.postMessage`
//! bodies at `/api/chat.postMessage` (with the `Authorization` header), Mattermost's incoming-webhook
//! bodies at `/hooks/incoming`, Mattermost REST posts at `/api/v4/posts` (with the bearer token),
//! and signed webhook deliveries at `/webhook`. It answers the user directories it is told about
//! (Slack's `GET /api/users.info?user=ID`, Mattermost's `GET /api/v4/users/{ID}`) and records those
//! lookups apart ([`FakeChat::lookups`]). It can answer the next
//! post(s) with 429 and a `Retry-After`, or with 500, to exercise the sender's backoff.
//!
//! [`slack_headers`] signs a body as Slack does (`v0=` HMAC-SHA256 of `v0:{ts}:{body}` under the
//! signing secret); [`webhook_headers`] as rvbbit's generic webhook does (`sha256=` HMAC-SHA256 of
//! `{ts}.{body}`); [`mattermost_form`] builds an outgoing-webhook form body with its token.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// One message the fake received.
#[derive(Clone, Debug)]
pub struct Posted {
    /// The route (`/api/chat.postMessage`, `/hooks/incoming`, `/webhook`).
    pub path: String,
    /// The JSON body.
    pub body: Value,
    /// The headers (lowercase names).
    pub headers: Vec<(String, String)>,
}

impl Posted {
    /// The `text` field of the body (a Mattermost REST post's `message`).
    pub fn text(&self) -> &str {
        self.body["text"]
            .as_str()
            .or_else(|| self.body["message"].as_str())
            .unwrap_or_default()
    }

    /// The bearer token of the `Authorization` header, if any.
    pub fn bearer(&self) -> Option<&str> {
        self.header("authorization")?.strip_prefix("Bearer ")
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A scripted failure for the next post.
#[derive(Clone, Copy, Debug)]
enum Fail {
    TooMany(u64),
    Server,
}

#[derive(Default)]
struct Shared {
    posted: Mutex<Vec<Posted>>,
    refused: Mutex<u64>,
    fails: Mutex<VecDeque<Fail>>,
    /// Directory answers by user id: Slack's `users.info` user objects, Mattermost's users.
    slack_users: Mutex<HashMap<String, Value>>,
    mattermost_users: Mutex<HashMap<String, Value>>,
    lookups: Mutex<Vec<Posted>>,
}

fn headers_of(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect()
}

fn record_lookup(shared: &Shared, path: String, headers: &HeaderMap) {
    shared
        .lookups
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(Posted {
            path,
            body: Value::Null,
            headers: headers_of(headers),
        });
}

/// Slack's `users.info`: `{"ok": true, "user": …}` for a user it was told about.
async fn slack_user(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let id = query.get("user").cloned().unwrap_or_default();
    record_lookup(&shared, format!("/api/users.info?user={id}"), &headers);
    let users = shared.slack_users.lock().unwrap_or_else(PoisonError::into_inner);
    match users.get(&id) {
        Some(user) => axum::Json(json!({"ok": true, "user": user})).into_response(),
        None => axum::Json(json!({"ok": false, "error": "user_not_found"})).into_response(),
    }
}

/// Mattermost's `GET /api/v4/users/{id}`: the user it was told about, else 404.
async fn mattermost_user(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    record_lookup(&shared, format!("/api/v4/users/{id}"), &headers);
    let users = shared
        .mattermost_users
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    match users.get(&id) {
        Some(user) => axum::Json(user.clone()).into_response(),
        None => (StatusCode::NOT_FOUND, "no such user").into_response(),
    }
}

/// A fake chat platform on loopback.
pub struct FakeChat {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for FakeChat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeChat").field("addr", &self.addr).finish()
    }
}

async fn receive(
    State(shared): State<Arc<Shared>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fail = shared
        .fails
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .pop_front();
    match fail {
        Some(Fail::TooMany(after)) => {
            *shared.refused.lock().unwrap_or_else(PoisonError::into_inner) += 1;
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, after.to_string())],
                "slow down",
            )
                .into_response();
        }
        Some(Fail::Server) => {
            *shared.refused.lock().unwrap_or_else(PoisonError::into_inner) += 1;
            return (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response();
        }
        None => {}
    }
    let posted = Posted {
        path: uri.path().to_owned(),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        headers: headers_of(&headers),
    };
    let slack = posted.path.starts_with("/api/");
    shared
        .posted
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(posted);
    if slack {
        axum::Json(json!({"ok": true})).into_response()
    } else {
        "ok".into_response()
    }
}

impl FakeChat {
    /// Start a fake answering Slack's, Mattermost's and the webhook's routes.
    pub async fn start() -> FakeChat {
        let shared = Arc::new(Shared::default());
        let app = Router::new()
            .route("/api/chat.postMessage", post(receive))
            .route("/hooks/incoming", post(receive))
            .route("/api/v4/posts", post(receive))
            .route("/webhook", post(receive))
            .route("/api/users.info", get(slack_user))
            .route("/api/v4/users/{id}", get(mattermost_user))
            .with_state(shared.clone());
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("a bound address");
        let stop = CancellationToken::new();
        let token = stop.clone();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move { token.cancelled().await })
                .await;
            if let Err(e) = served {
                eprintln!("fake chat server stopped: {e}");
            }
        });
        FakeChat {
            addr,
            shared,
            stop,
            task,
        }
    }

    /// Slack's API base for `outbound_url` (`chat.postMessage` is appended by the adapter).
    pub fn slack_api(&self) -> String {
        format!("http://{}/api", self.addr)
    }

    /// Mattermost's incoming webhook URL for `outbound_url`.
    pub fn mattermost_hook(&self) -> String {
        format!("http://{}/hooks/incoming", self.addr)
    }

    /// Mattermost's server base URL for `api_url` (replies are `POST /api/v4/posts`).
    pub fn mattermost_api(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The generic webhook's receiver URL for `outbound_url`.
    pub fn webhook_url(&self) -> String {
        format!("http://{}/webhook", self.addr)
    }

    /// Everything received so far, in arrival order.
    pub fn posted(&self) -> Vec<Posted> {
        self.shared
            .posted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Answer Slack's `users.info` for `id` with a profile holding `email` (Slack confirms emails).
    pub fn slack_user(&self, id: &str, email: &str) {
        self.shared
            .slack_users
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id.into(), json!({"id": id, "profile": {"email": email}}));
    }

    /// Answer Mattermost's `GET /api/v4/users/{id}` with `email` and `email_verified`.
    pub fn mattermost_user(&self, id: &str, email: &str, email_verified: bool) {
        self.shared
            .mattermost_users
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                id.into(),
                json!({"id": id, "username": id, "email": email, "email_verified": email_verified}),
            );
    }

    /// The directory lookups received so far (path with query, headers), in arrival order.
    pub fn lookups(&self) -> Vec<Posted> {
        self.shared
            .lookups
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// How many posts were answered with a scripted failure.
    pub fn refused(&self) -> u64 {
        *self.shared.refused.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Answer the next post with 429 and `Retry-After: seconds`.
    pub fn rate_limit_next(&self, seconds: u64) {
        self.shared
            .fails
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back(Fail::TooMany(seconds));
    }

    /// Answer the next `n` posts with 500.
    pub fn fail_next(&self, n: usize) {
        let mut fails = self.shared.fails.lock().unwrap_or_else(PoisonError::into_inner);
        fails.extend(std::iter::repeat_n(Fail::Server, n));
    }

    /// Wait (polling on tokio's clock) until at least `n` messages arrived; all of them.
    ///
    /// # Panics
    /// After `within` without them.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Posted> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let posted = self.posted();
            if posted.len() >= n {
                return posted;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the fake received {} of {n} messages: {posted:?}",
                posted.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stop the server.
    pub async fn shutdown(self) {
        self.stop.cancel();
        let _ = self.task.await; // A panicked server task has nothing left to clean up.
    }
}

/// HMAC-SHA256 (RFC 2104), written out so the fakes sign independently of the code they test.
pub fn hmac_sha256_hex(key: &[u8], message: &[u8]) -> String {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let inner = Sha256::new()
        .chain_update(block.map(|b| b ^ 0x36))
        .chain_update(message)
        .finalize();
    let outer = Sha256::new()
        .chain_update(block.map(|b| b ^ 0x5c))
        .chain_update(inner)
        .finalize();
    hex::encode(outer)
}

/// The unix time now, in seconds.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The headers Slack sends with `body` at unix time `ts`: `X-Slack-Request-Timestamp` and
/// `X-Slack-Signature: v0=HMAC(signing_secret, "v0:{ts}:{body}")`.
pub fn slack_headers(signing_secret: &str, ts: i64, body: &str) -> Vec<(String, String)> {
    let sig = hmac_sha256_hex(signing_secret.as_bytes(), format!("v0:{ts}:{body}").as_bytes());
    vec![
        ("x-slack-request-timestamp".into(), ts.to_string()),
        ("x-slack-signature".into(), format!("v0={sig}")),
    ]
}

/// A Slack Events API `message` event from `user` in `channel`.
pub fn slack_message_event(user: &str, channel: &str, text: &str) -> String {
    json!({"type": "event_callback", "team_id": "T1",
        "event": {"type": "message", "user": user, "channel": channel, "text": text, "ts": "1.000001"}})
    .to_string()
}

/// The headers rvbbit's generic webhook expects: `X-Rvbbit-Timestamp` and
/// `X-Rvbbit-Signature: sha256=HMAC(secret, "{ts}.{body}")`.
pub fn webhook_headers(secret: &str, ts: i64, body: &str) -> Vec<(String, String)> {
    let sig = hmac_sha256_hex(secret.as_bytes(), format!("{ts}.{body}").as_bytes());
    vec![
        ("x-rvbbit-timestamp".into(), ts.to_string()),
        ("x-rvbbit-signature".into(), format!("sha256={sig}")),
    ]
}

/// A Mattermost outgoing-webhook body (form-encoded) with its `token`.
pub fn mattermost_form(token: &str, user_id: &str, user_name: &str, text: &str) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                b' ' => "+".into(),
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    format!(
        "token={}&team_id=t1&channel_id=c1&channel_name=town-square&user_id={}&user_name={}&text={}&trigger_word=",
        enc(token),
        enc(user_id),
        enc(user_name),
        enc(text)
    )
}
