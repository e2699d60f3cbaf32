//! A session's events: a JSON page by cursor, or a live Server-Sent Events stream that replays what the
//! client missed (`Last-Event-ID` or `?cursor=N`), follows new events as the store receives them, and
//! ends with a `complete` event once the session has finished and every event was sent.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Path as UrlPath, Request, State};
use axum::http::HeaderMap;
use axum::http::header;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use rvbbit_core::{SessionId, SessionStatus};
use rvbbit_store::{EventFilter, StoredEvent};
use serde::Deserialize;
use serde_json::json;

use super::extract::Params;
use super::feed::{FeedEvent, Next};
use super::session_id;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Default and largest page of events.
const PAGE: u64 = 500;
const MAX_PAGE: u64 = 5000;

/// WebSockets are not covered by CORS: a page on any site may open one to this server, and the browser
/// would attach the Studio's cookie (or reach a keyless loopback server). So a handshake that carries an
/// `Origin` (every browser sends one) must come from this server's own origin or a configured CORS
/// origin. Programs that send no `Origin` are unaffected.
fn websocket_origin(headers: &HeaderMap, allowed: &[String]) -> ApiResult<()> {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let bare = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .unwrap_or_default();
    if (!host.is_empty() && bare == host) || allowed.iter().any(|a| a.trim_end_matches('/') == origin) {
        return Ok(());
    }
    Err(ApiError::new(
        axum::http::StatusCode::FORBIDDEN,
        rvbbit_core::codes::A_UNAUTHORIZED,
        format!("WebSocket connections from `{origin}` are not allowed"),
        "open the socket from a Studio page, add the origin to `server.cors_origins`, or connect from a \
         program (no Origin header)",
    ))
}

#[derive(Debug, Deserialize)]
pub(crate) struct EventsQuery {
    cursor: Option<i64>,
    limit: Option<u64>,
}

fn wants_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"))
}

/// The resume cursor: `Last-Event-ID` wins over `?cursor`, both mean "after this store sequence".
fn cursor(headers: &HeaderMap, query: Option<i64>) -> Result<i64, ApiError> {
    if let Some(v) = headers.get("last-event-id") {
        let text = v.to_str().unwrap_or_default().trim();
        return text.parse::<i64>().map_err(|_| {
            ApiError::bad_request(
                format!("`Last-Event-ID: {text}` is not a cursor"),
                "send back the `id` of the last event received",
            )
        });
    }
    Ok(query.unwrap_or(0).max(0))
}

async fn page(
    state: &AppState,
    id: &SessionId,
    after: i64,
    limit: u64,
) -> Result<Vec<StoredEvent>, ApiError> {
    Ok(state
        .store
        .events(&EventFilter {
            session_id: Some(id.clone()),
            after_seq: Some(after),
            limit: Some(limit),
            ..EventFilter::default()
        })
        .await?)
}

/// Whether the session is known: stored, or started by this server a moment ago.
async fn known(state: &AppState, id: &SessionId) -> Result<Option<rvbbit_core::SessionStatus>, ApiError> {
    match state.store.session(id).await {
        Ok(s) => Ok(Some(s.status)),
        Err(rvbbit_store::Error::NotFound { .. }) if state.is_local(id.as_str()) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn wants_websocket(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// `GET /api/v1/sessions/{id}/events`: a JSON page, an SSE stream (`Accept: text/event-stream`) or a
/// WebSocket (an upgrade request).
pub(crate) async fn events(
    State(state): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
    Params(q): Params<EventsQuery>,
    request: Request,
) -> ApiResult<Response> {
    let (mut parts, _body) = request.into_parts();
    let headers = parts.headers.clone();
    let id = session_id(&id)?;
    let status = known(&state, &id).await?;
    let after = cursor(&headers, q.cursor)?;
    if wants_websocket(&headers) {
        websocket_origin(&headers, &state.config.cors_origins)?;
        let upgrade = WebSocketUpgrade::from_request_parts(&mut parts, &state)
            .await
            .map_err(|e| {
                ApiError::bad_request(
                    format!("the WebSocket upgrade failed: {}", e.body_text()),
                    "open the socket with a standard WebSocket client (RFC 6455)",
                )
            })?;
        return Ok(upgrade.on_upgrade(move |socket| websocket(socket, state, id, after)));
    }
    if wants_stream(&headers) {
        let keep_alive = KeepAlive::new().interval(state.config.keep_alive);
        let stream = live(state, id.clone(), after).map(move |item| Ok::<_, Infallible>(item.sse(&id)));
        return Ok(Sse::new(stream).keep_alive(keep_alive).into_response());
    }
    let limit = q.limit.unwrap_or(PAGE).clamp(1, MAX_PAGE);
    let events = page(&state, &id, after, limit).await?;
    let next = events.last().map_or(after, |e| e.store_seq);
    let finished = status.is_some_and(|s| !s.is_active());
    let done = finished && (events.len() as u64) < limit;
    Ok(Json(json!({
        "session_id": id.as_str(),
        "events": events,
        "next_cursor": next,
        "done": done,
    }))
    .into_response())
}

/// One item of a live stream, before it is framed as SSE or WebSocket.
enum Item {
    Connected { cursor: i64 },
    Event(Arc<FeedEvent>),
    Complete { status: SessionStatus, cursor: i64 },
}

impl Item {
    fn sse(&self, id: &SessionId) -> SseEvent {
        match self {
            Item::Connected { cursor } => SseEvent::default()
                .event("connected")
                .data(json!({"session_id": id.as_str(), "cursor": cursor}).to_string()),
            Item::Event(e) => SseEvent::default()
                .id(e.store_seq.to_string())
                .event(e.kind)
                .data(e.json.as_str()),
            Item::Complete { status, cursor } => SseEvent::default()
                .event("complete")
                .data(json!({"session_id": id.as_str(), "status": status, "cursor": cursor}).to_string()),
        }
    }

    /// The WebSocket text frame: `{"type": "connected"|"event"|"complete", ...}`.
    fn ws(&self, id: &SessionId) -> String {
        match self {
            Item::Connected { cursor } => {
                json!({"type": "connected", "session_id": id.as_str(), "cursor": cursor}).to_string()
            }
            Item::Event(e) => format!(
                r#"{{"type":"event","cursor":{},"event":{}}}"#,
                e.store_seq, e.json
            ),
            Item::Complete { status, cursor } => {
                json!({"type": "complete", "session_id": id.as_str(), "status": status, "cursor": cursor})
                    .to_string()
            }
        }
    }
}

enum Phase {
    Connected,
    Following,
    Done,
}

/// The live stream: `connected`, then every event after the cursor (replayed, then live), then
/// `complete`. Ends early (without `complete`) when the server shuts down; the client reconnects with
/// its last cursor and loses nothing. Every stream of a session reads the same shared [`Feed`](super::feed::Feed).
fn live(state: Arc<AppState>, id: SessionId, after: i64) -> impl Stream<Item = Item> {
    let feed = state.feeds.follow(&state, &id);
    let changes = feed.subscribe();
    let start = (
        state,
        feed,
        changes,
        after,
        Phase::Connected,
        VecDeque::<Arc<FeedEvent>>::new(),
    );
    futures::stream::unfold(
        start,
        |(state, feed, mut changes, mut cursor, phase, mut pending)| async move {
            match phase {
                Phase::Done => return None,
                Phase::Connected => {
                    let hello = Item::Connected { cursor };
                    return Some((hello, (state, feed, changes, cursor, Phase::Following, pending)));
                }
                Phase::Following => {}
            }
            loop {
                if let Some(e) = pending.pop_front() {
                    cursor = e.store_seq;
                    return Some((
                        Item::Event(e),
                        (state, feed, changes, cursor, Phase::Following, pending),
                    ));
                }
                if state.shutdown.is_cancelled() {
                    return None;
                }
                // Mark what is seen before reading, so a change made after the read still wakes us.
                changes.borrow_and_update();
                match feed.after(cursor) {
                    Next::Events(events) => {
                        pending.extend(events);
                        continue;
                    }
                    Next::Done(status) => {
                        let done = Item::Complete { status, cursor };
                        return Some((done, (state, feed, changes, cursor, Phase::Done, pending)));
                    }
                    Next::Wait => {}
                }
                tokio::select! {
                    () = state.shutdown.cancelled() => return None,
                    changed = changes.changed() => {
                        if changed.is_err() {
                            // The feed's sender lives in the feed we hold: this does not happen.
                            return None;
                        }
                    }
                }
            }
        },
    )
}

/// Send the live stream over a WebSocket until it completes, the client closes, or the server stops.
async fn websocket(mut socket: WebSocket, state: Arc<AppState>, id: SessionId, after: i64) {
    let stream = live(state, id.clone(), after);
    futures::pin_mut!(stream);
    loop {
        tokio::select! {
            item = stream.next() => {
                let Some(item) = item else { break };
                if socket.send(Message::Text(item.ws(&id).into())).await.is_err() {
                    return;
                }
            }
            incoming = socket.recv() => match incoming {
                // The client closed, or the connection broke.
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    }
    // The peer may already be gone; the close frame is a courtesy.
    let _ = socket.send(Message::Close(None)).await;
}
