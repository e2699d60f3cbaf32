//! The routes and their handlers.

pub(crate) mod agents;
pub(crate) mod artifacts;
pub(crate) mod batches;
pub(crate) mod cascades;
mod channels;
pub(crate) mod chat;
mod costs;
mod events;
pub(crate) mod extract;
pub(crate) mod feed;
mod health;
mod hooks;
mod openapi;
pub(crate) mod queued;
pub(crate) mod runs;
pub(crate) mod sessions;
pub(crate) mod sql;
pub(crate) mod waits;

use std::sync::Arc;

use axum::Router;
use axum::http::{StatusCode, Uri};
use axum::routing::{get, post};
use rvbbit_core::{SessionId, codes};

use crate::error::ApiError;
use crate::state::AppState;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/api/v1/openapi.json", get(openapi::document))
        .route("/api/v1/cascades", get(cascades::list))
        .route("/api/v1/cascades/validate", post(cascades::validate))
        .route("/api/v1/cascades/{*path}", get(cascades::get))
        .route("/api/v1/runs", post(runs::start))
        .route("/api/v1/sessions", get(sessions::list))
        .route("/api/v1/sessions/{id}", get(sessions::get))
        .route("/api/v1/sessions/{id}/trace", get(sessions::trace))
        .route("/api/v1/sessions/{id}/events", get(events::events))
        .route("/api/v1/sessions/{id}/artifacts", get(artifacts::list))
        .route("/api/v1/sessions/{id}/artifacts/{artifact}", get(artifacts::body))
        .route(
            "/api/v1/sessions/{id}/artifacts/{artifact}/svg",
            get(artifacts::drawing),
        )
        .route("/api/v1/sessions/{id}/cancel", post(sessions::cancel))
        .route("/api/v1/sessions/{id}/waits", get(waits::list))
        .route("/api/v1/sessions/{id}/signals/{name}", post(waits::answer))
        .route("/api/v1/sessions/{id}/resume", post(waits::resume))
        .route("/api/v1/costs", get(costs::costs))
        .route("/api/v1/batches", get(batches::list))
        .route("/api/v1/batches/{id}", get(batches::get))
        .route("/api/v1/batches/{id}/cancel", post(batches::cancel))
        .route("/api/v1/sql", post(sql::sql))
        .route("/api/v1/sql/tables", get(sql::tables))
        .route("/api/v1/agents/{agent}/messages", post(agents::post_message))
        .route("/api/v1/agents/{agent}/conversations", get(agents::list))
        .route("/api/v1/agents/{agent}/conversations/{id}", get(agents::get))
        .route("/api/v1/channels", get(channels::list))
        .route(
            "/api/v1/channels/{name}",
            get(channels::get).put(channels::put).delete(channels::delete),
        )
        .route("/hooks/{kind}/{integration}", post(hooks::receive))
        .route("/chat/{integration}", get(chat::page))
        .route("/chat/{integration}/messages", post(chat::message))
        .route("/chat/{integration}/events", get(chat::events))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found(
        format!("no route `{}`", uri.path()),
        "the routes are listed in `GET /api/v1/openapi.json`",
    )
}

async fn method_not_allowed(uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        codes::A_BAD_REQUEST,
        format!("`{}` does not accept this method", uri.path()),
        "the methods of every route are listed in `GET /api/v1/openapi.json`",
    )
}

/// A session id from a path segment.
pub(crate) fn session_id(text: &str) -> Result<SessionId, ApiError> {
    text.parse::<SessionId>().map_err(|e| {
        ApiError::bad_request(
            format!("`{text}` is not a session id: {e}"),
            "session ids look like `quick-heron-0123456789abcdef`; list them with `GET /api/v1/sessions`",
        )
    })
}
