//! `POST /hooks/{kind}/{integration}`: inbound messages from Slack, Mattermost and signed webhooks
//! (`rvbbit-channels`). Open without an API key: each request proves its origin by the platform's
//! signature or token instead. The handler verifies and acknowledges at once (Slack wants an answer
//! within 3 s); the command or the agent's turn runs in a task of the channels, and the reply goes
//! back through the platform's API.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rvbbit_channels::{Error, MAX_BODY, Request};
use rvbbit_core::codes;

use crate::error::ApiError;
use crate::state::AppState;

fn channel_error(e: &Error) -> ApiError {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let hint = match e {
        Error::Unverified { .. } => "check the signing secret or token in `[channels.NAME]` of rvbbit.toml",
        _ => e.code().fix,
    };
    let api = ApiError::new(status, e.code(), e.public_message(), hint);
    // The exact failed check goes to the log under the error id, never to the client.
    api.with_detail(e.to_string())
}

fn too_large(bytes: Option<usize>) -> ApiError {
    let size = bytes.map_or_else(|| "larger than".to_owned(), |b| format!("{b} bytes;"));
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        codes::A_TOO_LARGE,
        format!("the request body is {size} hooks accept at most {MAX_BODY} bytes"),
        "platforms send small messages; pass large content by reference",
    )
}

/// `POST /hooks/{kind}/{integration}`
pub(crate) async fn receive(
    State(state): State<Arc<AppState>>,
    UrlPath((kind, integration)): UrlPath<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(channels) = &state.channels else {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            codes::K_UNKNOWN,
            format!("no {kind} integration is named `{integration}`"),
            codes::K_UNKNOWN.fix,
        )
        .into_response();
    };
    // Refuse an announced oversized body before reading it, and cap what is read either way.
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if announced.is_some_and(|n| n > MAX_BODY) {
        return too_large(announced).into_response();
    }
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
        return too_large(None).into_response();
    };
    let request = Request {
        headers: headers
            .iter()
            .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect(),
        body: bytes.to_vec(),
    };
    // An integration configured through the API may be new, changed or gone (another process).
    channels.refresh(&integration).await;
    match channels.receive(&kind, &integration, request) {
        Ok(ack) => match ack.body {
            Some(body) => (StatusCode::OK, Json(body)).into_response(),
            None => StatusCode::OK.into_response(),
        },
        Err(e) => {
            tracing::warn!(kind = %kind, integration = %integration, error = %e, "An inbound hook was refused.");
            channel_error(&e).into_response()
        }
    }
}
