//! The web chat (`kind = "web"` integrations, docs/channels.md): `GET /chat/{integration}` is the page,
//! `POST /chat/{integration}/messages` takes a visitor's message, and `GET /chat/{integration}/events`
//! streams the visitor's conversation as Server-Sent Events. Open without an API key (visitors are
//! anonymous): the limits guard them instead (message size, rate per visitor, streams at once), and
//! what they do lives in `rvbbit-channels` (`Channels::web_message`, `Channels::web_subscribe`).

use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use rvbbit_channels::web::{Subscription, WebEvent, WebPage};
use rvbbit_channels::{Channels, Error, Request};
use serde::Deserialize;
use serde_json::json;

use super::extract::Params;
use crate::error::ApiError;
use crate::state::AppState;

/// The page, with `{{NONCE}}`, `{{INTEGRATION}}`, `{{MAX_BYTES}}` and `{{TITLE}}` to fill in.
const PAGE: &str = include_str!("chat.html");

fn chat_error(e: &Error) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let hint = match e {
        Error::Unverified { .. } => {
            "open the chat from this server's page, or add the embedding site's origin to \
             `allowed_origins` of `[channels.NAME]`"
        }
        _ => e.code().fix,
    };
    // The exact failed check goes to the log under the error id, never to the client.
    let mut response = ApiError::new(status, e.code(), e.public_message(), hint)
        .with_detail(e.to_string())
        .into_response();
    if let Error::RateLimited { wait_seconds, .. } = e
        && let Ok(v) = HeaderValue::from_str(&wait_seconds.to_string())
    {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

/// The channels, or the 404 every integration gets without them.
fn channels<'a>(state: &'a AppState, integration: &str) -> Result<&'a Channels, Error> {
    state.channels.as_ref().ok_or_else(|| Error::UnknownIntegration {
        kind: "web".into(),
        name: integration.to_owned(),
    })
}

/// Text safe inside HTML text and double-quoted attributes.
fn escape(text: &str) -> String {
    rvbbit_core::markup::escape_markup(text)
}

/// The page's Content-Security-Policy: nothing but its own nonce'd style and script, requests to this
/// server only, and framing by this server's pages and `allowed_origins`.
fn policy(nonce: &str, page: &WebPage) -> String {
    let mut ancestors = String::from("'self'");
    // Origins were validated by the config loader (scheme and host only); anything else is left out.
    for origin in page.allowed_origins.iter().filter(|o| {
        o.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '/' | '.' | '-' | '[' | ']'))
    }) {
        ancestors.push(' ');
        ancestors.push_str(origin);
    }
    format!(
        "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; connect-src 'self'; \
         img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors {ancestors}"
    )
}

/// `GET /chat/{integration}`: the chat page.
pub(crate) async fn page(
    State(state): State<Arc<AppState>>,
    UrlPath(integration): UrlPath<String>,
) -> Response {
    let channels = match channels(&state, &integration) {
        Ok(c) => c,
        Err(e) => return chat_error(&e),
    };
    // An integration configured through the API may be new, changed or gone (another process).
    channels.refresh(&integration).await;
    let page = match channels.web_page(&integration) {
        Ok(p) => p,
        Err(e) => return chat_error(&e),
    };
    let nonce = hex::encode(rand::random::<[u8; 16]>());
    let html = PAGE
        .replace("{{NONCE}}", &nonce)
        .replace("{{INTEGRATION}}", &escape(&integration))
        .replace("{{MAX_BYTES}}", &page.max_message_bytes.to_string())
        .replace("{{TITLE}}", &escape(&page.title));
    let mut response = (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        html,
    )
        .into_response();
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&policy(&nonce, &page)) {
        headers.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    if page.allowed_origins.is_empty() {
        // Older browsers ignore `frame-ancestors`; this says the same for same-origin-only framing.
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("SAMEORIGIN"));
    }
    response
}

/// `POST /chat/{integration}/messages`: `{"visitor", "text"}`, answered 202 `{"accepted": true, "id"}`
/// (the message's entry id); the reply comes on the visitor's stream.
pub(crate) async fn message(
    State(state): State<Arc<AppState>>,
    UrlPath(integration): UrlPath<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let channels = match channels(&state, &integration) {
        Ok(c) => c,
        Err(e) => return chat_error(&e),
    };
    // An integration configured through the API may be new, changed or gone (another process).
    channels.refresh(&integration).await;
    let limit = match channels.web_max_bytes(&integration) {
        Ok(l) => l,
        Err(e) => return chat_error(&e),
    };
    let too_large = |bytes: usize| {
        chat_error(&Error::MessageTooLarge {
            integration: integration.clone(),
            bytes,
            limit,
        })
    };
    // Refuse an announced oversized body before reading it, and cap what is read either way.
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if let Some(n) = announced.filter(|n| *n > limit) {
        return too_large(n);
    }
    let Ok(bytes) = axum::body::to_bytes(body, limit).await else {
        return too_large(limit.saturating_add(1));
    };
    let request = Request {
        headers: headers
            .iter()
            .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect(),
        body: bytes.to_vec(),
    };
    match channels.web_message(&integration, request) {
        Ok(id) => (StatusCode::ACCEPTED, Json(json!({"accepted": true, "id": id}))).into_response(),
        Err(e) => {
            tracing::info!(integration = %integration, error = %e, "A web chat message was refused.");
            chat_error(&e)
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct EventsQuery {
    visitor: Option<String>,
    after: Option<u64>,
}

fn sse(event: &WebEvent) -> SseEvent {
    match event {
        WebEvent::Entry(e) => SseEvent::default()
            .id(e.id.to_string())
            .event("entry")
            .data(json!({"id": e.id, "role": e.role, "text": e.text}).to_string()),
        WebEvent::Typing(typing) => SseEvent::default()
            .event("typing")
            .data(json!({"typing": typing}).to_string()),
        _ => SseEvent::default().comment("unknown"),
    }
}

/// `GET /chat/{integration}/events?visitor=ID[&after=N]`: `ready`, then the visitor's kept entries
/// after `N` (or after `Last-Event-ID`, which a reconnecting browser sends), then new `entry` and
/// `typing` events; keep-alive comments while idle; ends when the server shuts down.
pub(crate) async fn events(
    State(state): State<Arc<AppState>>,
    UrlPath(integration): UrlPath<String>,
    Params(q): Params<EventsQuery>,
    headers: HeaderMap,
) -> Response {
    let channels = match channels(&state, &integration) {
        Ok(c) => c,
        Err(e) => return chat_error(&e),
    };
    // An integration configured through the API may be new, changed or gone (another process).
    channels.refresh(&integration).await;
    let resumed = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let after = resumed.or(q.after).unwrap_or(0);
    let visitor = q.visitor.unwrap_or_default();
    let subscription = match channels.web_subscribe(&integration, &visitor, after) {
        Ok(s) => s,
        Err(e) => return chat_error(&e),
    };
    let ready = SseEvent::default()
        .event("ready")
        .data(json!({"integration": integration, "visitor": visitor, "after": after}).to_string());
    let stream = futures::stream::once(async move { ready }).chain(follow(state.clone(), subscription));
    let keep_alive = KeepAlive::new().interval(state.config.keep_alive);
    let mut response = Sse::new(stream.map(Ok::<_, Infallible>))
        .keep_alive(keep_alive)
        .into_response();
    response.headers_mut().insert(
        HeaderName::from_static("x-accel-buffering"),
        HeaderValue::from_static("no"),
    );
    response
}

/// The subscription's events until it ends or the server shuts down (the stream then ends cleanly and
/// the browser reconnects with `Last-Event-ID`).
fn follow(state: Arc<AppState>, subscription: Subscription) -> impl futures::Stream<Item = SseEvent> {
    futures::stream::unfold((state, subscription), |(state, mut sub)| async move {
        let shutdown = state.shutdown.clone();
        tokio::select! {
            () = shutdown.cancelled() => None,
            next = sub.next() => next.map(|e| (sse(&e), (state, sub))),
        }
    })
}

/// Whether `path` is one of the chat routes (open without an API key).
pub(crate) fn is_chat(path: &str) -> bool {
    path.starts_with("/chat/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_are_escaped_and_the_policy_is_strict() {
        assert_eq!(
            escape(r#"<b>"Hi" & 'you'</b>"#),
            "&lt;b&gt;&quot;Hi&quot; &amp; &#39;you&#39;&lt;/b&gt;"
        );
        let page = WebPage {
            title: "t".into(),
            allowed_origins: vec!["https://site.example".into(), "https://x; script-src *".into()],
            max_message_bytes: 8192,
        };
        let p = policy("abc", &page);
        assert!(
            p.starts_with("default-src 'none'; script-src 'nonce-abc'; style-src 'nonce-abc';"),
            "{p}"
        );
        assert!(p.ends_with("frame-ancestors 'self' https://site.example"), "{p}");
    }
}
