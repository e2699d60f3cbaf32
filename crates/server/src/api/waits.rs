//! Humans in the loop over HTTP: a session's pending questions, answering one (what `rvbbit signal send`
//! does), and resuming a waiting session in this server (what `rvbbit resume` does).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use rvbbit_core::{SessionId, SessionStatus};
use rvbbit_engine::ResumeRequest;
use rvbbit_store::{Checkpoint, CheckpointStatus};
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::Body;
use super::session_id;
use crate::error::{ApiError, ApiResult};
use crate::paths::scrub;
use crate::state::AppState;

/// How long a live waiting run gets to pick up an answer before the Studio resumes the session itself.
const TAKEN_WITHIN: std::time::Duration = std::time::Duration::from_secs(3);

/// An engine error of a wait as an API error.
pub(crate) fn engine_error(e: rvbbit_engine::Error, state: &AppState) -> ApiError {
    let status = match &e {
        rvbbit_engine::Error::Answer { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        rvbbit_engine::Error::NoWaitingSignal { .. } => StatusCode::NOT_FOUND,
        rvbbit_engine::Error::NotResumable { .. } | rvbbit_engine::Error::SessionCancelled { .. } => {
            StatusCode::CONFLICT
        }
        rvbbit_engine::Error::Store(_) => {
            if let rvbbit_engine::Error::Store(inner) = e {
                return ApiError::from(inner);
            }
            StatusCode::INTERNAL_SERVER_ERROR
        }
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    if status.is_server_error() {
        return ApiError::internal(e.to_string());
    }
    ApiError::new(
        status,
        e.code(),
        scrub(&e.to_string(), &state.config.roots),
        scrub(&e.hint(), &state.config.roots),
    )
}

pub(crate) fn wait_json(c: &Checkpoint) -> Value {
    json!({
        "checkpoint_id": c.checkpoint_id,
        "cell_name": c.cell_name,
        "type": c.checkpoint_type,
        "signal_name": c.signal_name,
        "question": c.ui_spec,
        "created_at": c.created_at,
        "timeout_at": c.timeout_at,
    })
}

/// `GET /api/v1/sessions/{id}/waits`: the questions the session waits for.
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<Json<Value>> {
    let id = session_id(&id)?;
    let session = state.store.session(&id).await?;
    let pending = state
        .store
        .checkpoints(Some(&id), Some(CheckpointStatus::Pending))
        .await?;
    Ok(Json(json!({
        "session_id": id.as_str(),
        "status": session.status,
        "waits": pending.iter().map(wait_json).collect::<Vec<_>>(),
    })))
}

#[derive(Debug, Deserialize)]
pub(crate) struct AnswerBody {
    value: Value,
}

/// `POST /api/v1/sessions/{id}/signals/{name}`: answer a waiting signal (checked against its question).
pub(crate) async fn answer(
    State(state): State<Arc<AppState>>,
    UrlPath((id, name)): UrlPath<(String, String)>,
    Body(body): Body<AnswerBody>,
) -> ApiResult<Json<Value>> {
    let id = session_id(&id)?;
    let fired = send(&state, &id, &name, &body.value).await?;
    Ok(Json(
        json!({"session_id": id.as_str(), "signal": name, "fired": fired}),
    ))
}

pub(crate) async fn send(
    state: &AppState,
    id: &SessionId,
    name: &str,
    value: &Value,
) -> Result<usize, ApiError> {
    rvbbit_engine::human::send_answer(state.store.as_ref(), id, name, value, "http")
        .await
        .map(|f| f.len())
        .map_err(|e| engine_error(e, state))
}

#[derive(Debug, Default, Deserialize)]
struct ResumeBody {
    #[serde(default)]
    value: Option<Value>,
    #[serde(default)]
    signal: Option<String>,
}

/// Whether a process picks up the answer to `signal` by itself (its checkpoint stops being pending within
/// [`TAKEN_WITHIN`]); false means nobody waits for it any more and the session needs a resume.
pub(crate) async fn taken(state: &AppState, id: &SessionId, signal: &str) -> Result<bool, ApiError> {
    let deadline = tokio::time::Instant::now() + TAKEN_WITHIN;
    loop {
        let pending = state
            .store
            .checkpoints(Some(id), Some(CheckpointStatus::Pending))
            .await?;
        if !pending.iter().any(|c| c.signal_name == signal) {
            return Ok(true);
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Resume a waiting session in this server; its session id.
pub(crate) async fn start_resume(state: &Arc<AppState>, id: &SessionId) -> Result<(), ApiError> {
    let session = state.store.session(id).await?;
    if session.status != SessionStatus::Waiting {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            rvbbit_core::codes::S_CONFLICT,
            format!("session `{id}` is {}, not waiting", session.status),
            "only a waiting session can be resumed",
        ));
    }
    if state.is_local(id.as_str()) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            rvbbit_core::codes::S_CONFLICT,
            format!("session `{id}` is still running in this server; it continues once answered"),
            "answer it with `POST /api/v1/sessions/{id}/signals/{name}`",
        ));
    }
    let request = ResumeRequest::new(id.clone());
    let cancel = request.cancel.clone();
    // The compare-and-set (waiting → running) happens here, so a second resume, from this server or any
    // other process, gets 409 at once and runs nothing.
    let claimed = state
        .engine
        .claim_resume(request)
        .await
        .map_err(|e| engine_error(e, state))?;
    state
        .runs
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(id.to_string(), cancel);
    let st = state.clone();
    let key = id.to_string();
    state.tasks.spawn(async move {
        st.engine.run_claimed(claimed).await;
        st.runs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&key);
    });
    Ok(())
}

/// `POST /api/v1/sessions/{id}/resume` with `{"signal"?, "value"?}`: answer (optional) and continue the
/// waiting session in this server, as `rvbbit resume` does in a shell.
pub(crate) async fn resume(
    State(state): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let id = session_id(&id)?;
    let body: ResumeBody = if body.iter().all(u8::is_ascii_whitespace) {
        ResumeBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(
                format!("the JSON body cannot be used: {e}"),
                r#"send `{}` or `{"signal": "NAME", "value": ...}`"#,
            )
        })?
    };
    if let Some(value) = &body.value {
        let name = match body.signal {
            Some(n) => n,
            None => {
                let pending = state
                    .store
                    .checkpoints(Some(&id), Some(CheckpointStatus::Pending))
                    .await?;
                match pending.as_slice() {
                    [one] => one.signal_name.clone(),
                    _ => {
                        return Err(ApiError::bad_request(
                            format!(
                                "session `{id}` waits for {} questions: name the signal",
                                pending.len()
                            ),
                            "send `{\"signal\": NAME, \"value\": ...}`; `GET /api/v1/sessions/{id}/waits` lists them",
                        ));
                    }
                }
            }
        };
        send(&state, &id, &name, value).await?;
    }
    start_resume(&state, &id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"session_id": id.as_str(), "status": "running"})),
    ))
}
