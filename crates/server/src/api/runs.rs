//! Starting runs: asynchronously (the session id at once) or `?wait=true` (the outcome).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use rvbbit_core::{CallerId, Origin, SessionId};
use rvbbit_engine::{Outcome, RunRequest};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::cascades::{check, diagnostics};
use super::extract::{Body, Params};
use crate::error::{ApiError, ApiResult};
use crate::paths::{resolve_under, scrub};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub(crate) struct RunBody {
    /// The cascade: a path relative to a root, as `GET /api/v1/cascades` lists it.
    cascade: String,
    /// The input object.
    #[serde(default)]
    input: Option<Value>,
    /// Use this session id instead of a fresh one.
    #[serde(default)]
    session_id: Option<String>,
    /// Model for LLM cells that name none.
    #[serde(default)]
    model: Option<String>,
    /// With `?queue=true`: the submission id that deduplicates the job (default: a fresh one).
    #[serde(default)]
    submission_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RunQuery {
    #[serde(default)]
    wait: bool,
    /// Enqueue for `rvbbit worker`s instead of running here.
    #[serde(default)]
    queue: bool,
}

/// The fields a queued run cannot take, refused before anything is done.
fn check_queue_fields(q: &RunQuery, body: &RunBody) -> ApiResult<()> {
    let refuse =
        |what: &str, hint: &str| Err(ApiError::bad_request(format!("{what} with `queue=true`"), hint));
    if !q.queue {
        if body.submission_id.is_some() {
            return refuse(
                "`submission_id` is only taken",
                "add `?queue=true` to enqueue the run, or drop `submission_id`",
            );
        }
        return Ok(());
    }
    if q.wait {
        return refuse(
            "`wait=true` cannot be combined",
            "drop `wait`; follow the run at `links.sessions` of the answer",
        );
    }
    if body.session_id.is_some() {
        return refuse(
            "`session_id` cannot be chosen",
            "the worker picks the session id; name the job with `submission_id` instead",
        );
    }
    if body.model.is_some() {
        return refuse(
            "`model` cannot be chosen",
            "name the model in the cascade's cells; workers use their configured default otherwise",
        );
    }
    Ok(())
}

/// The outcome document (the shape of `rvbbit run --output json`).
pub(crate) fn outcome_json(outcome: &Outcome, state: &AppState) -> Value {
    let error = outcome.error.as_ref();
    json!({
        "status": outcome.status,
        "session_id": outcome.session_id.as_str(),
        "caller_id": outcome.caller_id.to_string(),
        "cascade_id": outcome.cascade_id,
        "output": outcome.output,
        "outputs": outcome.outputs,
        "path": outcome.path,
        "code": error.map(|e| e.code().code),
        "message": error.map(|e| scrub(&e.to_string(), &state.config.roots)),
        "hint": error.map(|e| scrub(&e.hint(), &state.config.roots)),
        "cost_micro_usd": outcome.cost.micros(),
        "cost_usd": outcome.cost.to_decimal_string(),
        "duration_ms": u64::try_from(outcome.duration.as_millis()).unwrap_or(u64::MAX),
        "llm_calls": outcome.llm_calls,
        "tool_calls": outcome.tool_calls,
        "warnings": outcome.warnings,
    })
}

/// Run `request` as a task of the server (tracked for shutdown, cancellable by session id).
fn start_task(
    state: &Arc<AppState>,
    mut request: RunRequest,
) -> (SessionId, tokio::task::JoinHandle<Outcome>) {
    let id = request
        .session_id
        .get_or_insert_with(SessionId::new_woodland)
        .clone();
    state
        .runs
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(id.to_string(), request.cancel.clone());
    let st = state.clone();
    let key = id.to_string();
    let handle = state.tasks.spawn(async move {
        let outcome = st.engine.run(request).await;
        st.runs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&key);
        outcome
    });
    (id, handle)
}

/// Start a run in the background; its session id.
pub(crate) fn spawn(state: &Arc<AppState>, request: RunRequest) -> SessionId {
    start_task(state, request).0
}

/// `POST /api/v1/runs[?wait=true]`
pub(crate) async fn start(
    State(state): State<Arc<AppState>>,
    Params(q): Params<RunQuery>,
    Body(body): Body<RunBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    check_queue_fields(&q, &body)?;
    let input = match body.input {
        None => Value::Object(Map::new()),
        Some(v @ Value::Object(_)) => v,
        Some(other) => {
            return Err(ApiError::bad_request(
                format!("`input` must be a JSON object, not {other}"),
                r#"send `"input": {"name": "value"}`"#,
            ));
        }
    };
    let session_id = match &body.session_id {
        Some(s) => {
            let id = super::session_id(s)?;
            if state.store.session(&id).await.is_ok() || state.is_local(id.as_str()) {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    rvbbit_core::codes::S_CONFLICT,
                    format!("session `{s}` already exists"),
                    "omit `session_id` to get a fresh one",
                ));
            }
            Some(id)
        }
        None => None,
    };
    let file = resolve_under(&state.config.roots, &body.cascade)?;
    let st = state.clone();
    let shown = file.relative.clone();
    let path = file.path.clone();
    let (report, diags) = tokio::task::spawn_blocking(move || {
        let report = check(&st, rvbbit_cascade::load_file(&path));
        let diags = diagnostics(&st, &report, &shown);
        (report, diags)
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?;
    let first_error = report
        .diagnostics()
        .iter()
        .find(|d| d.severity == rvbbit_cascade::Severity::Error);
    if let Some(first) = first_error {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            first.code,
            format!(
                "`{}` is not a valid cascade: {}",
                file.relative,
                scrub(&first.message, &state.config.roots)
            ),
            "fix the file; `diagnostics` lists every problem with its line and column",
        )
        .with_diagnostics(diags));
    }
    let Some(cascade) = report.loaded.document.as_ref().and_then(|d| d.cascade().cloned()) else {
        return Err(ApiError::bad_request(
            format!("`{}` is a tool definition, not a cascade", file.relative),
            "run a cascade file (with `cascade_id` and `cells`)",
        ));
    };
    // A spending limit used up refuses new work (RVB-B030, 429) before it is queued or started.
    let caller = CallerId::new(Origin::Http);
    match state.engine.admit(&caller).await {
        Ok(admission) => {
            for w in &admission.warnings {
                tracing::warn!(caller_id = %caller, "{w}");
            }
        }
        Err(e) => {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                e.code(),
                e.to_string(),
                e.hint(),
            ));
        }
    }
    if q.queue {
        let queued = super::queued::Queued {
            cascade_file: &file.relative,
            cascade_text: report
                .loaded
                .source
                .as_ref()
                .map(|s| s.text().to_owned())
                .unwrap_or_default(),
            input,
            submission_id: body.submission_id.as_deref(),
        };
        return super::queued::enqueue(&state.queue, queued).await;
    }
    let mut request = RunRequest::new(cascade);
    request.input = input;
    request.session_id = Some(session_id.unwrap_or_else(SessionId::new_woodland));
    request.caller_id = caller;
    request.model = body.model.clone();
    request.cascade_file = Some(file.relative.clone().into());
    request.cascade_text = report.loaded.source.as_ref().map(|s| s.text().to_owned());
    let caller = request.caller_id.clone();
    // A chosen id is claimed in the store (create-if-absent) before the run starts: of two requests
    // racing past the check above with one id, exactly one runs and the other gets 409.
    if let (Some(id), Some(chosen)) = (&request.session_id, &body.session_id)
        && let Err(e) = state.engine.reserve_session(&request).await
    {
        return Err(if e.code() == rvbbit_core::codes::S_CONFLICT {
            ApiError::new(
                StatusCode::CONFLICT,
                rvbbit_core::codes::S_CONFLICT,
                format!("session `{chosen}` already exists"),
                "omit `session_id` to get a fresh one",
            )
        } else {
            ApiError::internal(format!("claiming session {id}: {e}"))
        });
    }
    let (id, handle) = start_task(&state, request);
    if !q.wait {
        return Ok((
            StatusCode::ACCEPTED,
            Json(json!({
                "session_id": id.as_str(),
                "caller_id": caller.to_string(),
                "status": "running",
                "links": {
                    "session": format!("/api/v1/sessions/{id}"),
                    "events": format!("/api/v1/sessions/{id}/events"),
                },
            })),
        ));
    }
    // The run is a task of its own: a client that disconnects does not cancel it.
    let outcome = handle
        .await
        .map_err(|e| ApiError::internal(format!("the run task failed: {e}")))?;
    if let Some(w) = &state.writer
        && let Err(e) = w.flush().await
    {
        tracing::warn!(error = %e, "events of a waited run were not flushed");
    }
    Ok((StatusCode::OK, Json(outcome_json(&outcome, &state))))
}
