//! `/api/v1/channels`: chat integrations configured through the API (`rvbbit-channels`'
//! `registry`), behind the API key like every `/api/v1` route. A body is the `[channels.NAME]` keys as
//! JSON, checked by the same validation as rvbbit.toml; answers never hold a secret (`"***"`), and
//! neither do the logs (bodies are not logged). Integrations of rvbbit.toml are listed but read-only.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rvbbit_channels::{Channels, Error};
use serde_json::{Value, json};

use super::extract::Body;
use crate::error::ApiError;
use crate::state::AppState;

fn channels_error(e: &Error) -> ApiError {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
    match e {
        // The message names the key (`channels.NAME.KEY`).
        Error::Invalid { hint, .. } => ApiError::new(status, e.code(), e.public_message(), hint.clone()),
        Error::ReadOnly { .. } => ApiError::new(
            status,
            e.code(),
            e.public_message(),
            "change it in `[channels.NAME]` of rvbbit.toml and restart `rvbbit serve`",
        ),
        _ => ApiError::new(status, e.code(), e.public_message(), e.code().fix),
    }
}

fn channels(state: &AppState) -> Result<&Channels, ApiError> {
    state.channels.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            rvbbit_core::codes::K_CONFIG,
            "this server runs without chat channels",
            "start it with `rvbbit serve`, which serves `[channels.NAME]` and the API's integrations",
        )
    })
}

/// `GET /api/v1/channels`
pub(crate) async fn list(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let items = channels(&state)?
        .api_list()
        .await
        .map_err(|e| channels_error(&e))?;
    Ok(Json(json!({ "integrations": items })))
}

/// `GET /api/v1/channels/{name}`
pub(crate) async fn get(
    State(state): State<Arc<AppState>>,
    UrlPath(name): UrlPath<String>,
) -> Result<Json<Value>, ApiError> {
    let view = channels(&state)?
        .api_get(&name)
        .await
        .map_err(|e| channels_error(&e))?;
    Ok(Json(view))
}

/// `PUT /api/v1/channels/{name}`: create or replace; works for its hook at once.
pub(crate) async fn put(
    State(state): State<Arc<AppState>>,
    UrlPath(name): UrlPath<String>,
    Body(body): Body<Value>,
) -> Result<Json<Value>, ApiError> {
    let view = channels(&state)?
        .api_put(&name, &body)
        .await
        .map_err(|e| channels_error(&e))?;
    tracing::info!(integration = %name, "An integration was configured through the API.");
    Ok(Json(view))
}

/// `DELETE /api/v1/channels/{name}`
pub(crate) async fn delete(
    State(state): State<Arc<AppState>>,
    UrlPath(name): UrlPath<String>,
) -> Result<Response, ApiError> {
    channels(&state)?
        .api_delete(&name)
        .await
        .map_err(|e| channels_error(&e))?;
    tracing::info!(integration = %name, "An integration was removed through the API.");
    Ok(StatusCode::NO_CONTENT.into_response())
}
