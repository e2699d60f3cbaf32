//! Sessions: list, get, trace tree, cancel.

use std::path::Path;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use rvbbit_core::{MicroUsd, SessionStatus, Timestamp};
use rvbbit_store::{CostGroup, EventFilter, Session, SessionFilter};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::extract::Params;
use super::session_id;
use crate::error::{ApiError, ApiResult};
use crate::paths::scrub;
use crate::state::AppState;

/// Largest page of sessions.
const MAX_SESSIONS: u64 = 1000;

/// What clients see of a session: never the server's file paths.
#[derive(Debug, Serialize)]
pub(crate) struct SessionView {
    session_id: String,
    cascade_id: Option<String>,
    status: SessionStatus,
    caller_id: Option<String>,
    parent_session_id: Option<String>,
    root_session_id: String,
    depth: u32,
    current_cell: Option<String>,
    cascade_file: Option<String>,
    cascade_hash: Option<String>,
    started_at: Timestamp,
    ended_at: Option<Timestamp>,
    heartbeat_at: Timestamp,
    cancel_requested: bool,
    input: Value,
    output: Option<Value>,
    error: Option<String>,
    events: u64,
    cost_micro_usd: i64,
    cost_usd: String,
    tokens_in: i64,
    tokens_out: i64,
}

/// Show a recorded cascade path relative to a root, or by file name only when it lies elsewhere.
fn shown_path(path: &str, roots: &[std::path::PathBuf]) -> String {
    let scrubbed = scrub(path, roots);
    if Path::new(&scrubbed).is_absolute() {
        Path::new(&scrubbed)
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    } else {
        scrubbed
    }
}

impl SessionView {
    fn new(s: Session, state: &AppState, events: u64, cost: MicroUsd, tokens: (i64, i64)) -> Self {
        let roots = &state.config.roots;
        SessionView {
            session_id: s.session_id.to_string(),
            cascade_id: s.cascade_id,
            status: s.status,
            caller_id: s.caller_id.map(|c| c.to_string()),
            parent_session_id: s.parent_session_id.map(|p| p.to_string()),
            root_session_id: s.root_session_id.to_string(),
            depth: s.depth,
            current_cell: s.current_cell,
            cascade_file: s.cascade_file.map(|f| shown_path(&f, roots)),
            cascade_hash: s.cascade_hash,
            started_at: s.started_at,
            ended_at: s.ended_at,
            heartbeat_at: s.heartbeat_at,
            cancel_requested: s.cancel_requested,
            input: s.input,
            output: s.output,
            error: s.error.map(|e| scrub(&e, roots)),
            events,
            cost_micro_usd: cost.micros(),
            cost_usd: cost.to_decimal_string(),
            tokens_in: tokens.0,
            tokens_out: tokens.1,
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    status: Option<String>,
    cascade_id: Option<String>,
    caller_id: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<u64>,
}

pub(crate) fn time_param(name: &str, text: Option<&str>) -> Result<Option<Timestamp>, ApiError> {
    text.map(|t| {
        Timestamp::parse_relative(t).map_err(|e| {
            ApiError::bad_request(
                format!("`{name}={t}`: {e}"),
                "write a UTC date/time (`2026-11-23T10:00:00Z`) or a duration back from now (`24h`)",
            )
        })
    })
    .transpose()
}

/// `GET /api/v1/sessions`
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    Params(q): Params<ListQuery>,
) -> ApiResult<Json<Value>> {
    let status = q
        .status
        .as_deref()
        .map(|s| {
            s.parse::<SessionStatus>().map_err(|e| {
                ApiError::bad_request(
                    format!("`status={s}`: {e}"),
                    "use running, waiting, completed, failed or cancelled",
                )
            })
        })
        .transpose()?;
    let limit = q.limit.unwrap_or(50).clamp(1, MAX_SESSIONS);
    let filter = SessionFilter {
        cascade_id: q.cascade_id,
        caller_id: q.caller_id,
        since: time_param("since", q.since.as_deref())?,
        until: time_param("until", q.until.as_deref())?,
        status,
        limit: Some(limit),
    };
    let sessions: Vec<SessionView> = state
        .store
        .sessions(&filter)
        .await?
        .into_iter()
        .map(|s| SessionView::new(s.session, &state, s.events, s.cost, (s.tokens_in, s.tokens_out)))
        .collect();
    Ok(Json(json!({"sessions": sessions, "limit": limit})))
}

/// `GET /api/v1/sessions/{id}`
pub(crate) async fn get(
    State(state): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<Json<Value>> {
    let id = session_id(&id)?;
    let session = match state.store.session(&id).await {
        Ok(s) => s,
        // Started here a moment ago: the writer has not stored its record yet.
        Err(rvbbit_store::Error::NotFound { .. }) if state.is_local(id.as_str()) => {
            return Ok(Json(
                json!({"session_id": id.as_str(), "status": "running", "events": 0}),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let filter = EventFilter {
        session_id: Some(id.clone()),
        ..EventFilter::default()
    };
    let events = state.store.count_events(&filter).await?;
    let totals = state.store.costs(CostGroup::Total, &filter).await?;
    let total = totals.first().cloned().unwrap_or_default();
    let view = SessionView::new(
        session,
        &state,
        events,
        total.cost,
        (total.tokens_in, total.tokens_out),
    );
    Ok(Json(
        serde_json::to_value(view).map_err(|e| ApiError::internal(e.to_string()))?,
    ))
}

/// `GET /api/v1/sessions/{id}/trace`: cascade-level events, then one node per cell with its calls.
pub(crate) async fn trace(
    State(state): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<Json<Value>> {
    let id = session_id(&id)?;
    let session = state.store.session(&id).await?;
    let events = state
        .store
        .events(&EventFilter {
            session_id: Some(id.clone()),
            ..EventFilter::default()
        })
        .await?;
    let nodes = rvbbit_store::trace::build(&events, false);
    Ok(Json(json!({
        "session_id": id.as_str(),
        "status": session.status,
        "nodes": nodes,
    })))
}

/// `POST /api/v1/sessions/{id}/cancel`: cancel a run of this server at once, or ask the process
/// running it to stop (it checks at its next heartbeat).
pub(crate) async fn cancel(
    State(state): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let id = session_id(&id)?;
    if state.cancel_local(id.as_str()) {
        return Ok((
            StatusCode::ACCEPTED,
            Json(json!({"session_id": id.as_str(), "cancel": "signalled"})),
        ));
    }
    let session = state
        .store
        .request_cancel(&id, "cancelled through the HTTP API")
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"session_id": id.as_str(), "cancel": "requested", "status": session.status})),
    ))
}
