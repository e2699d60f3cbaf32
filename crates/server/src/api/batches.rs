//! Batches: the records `rvbbit batch` and `rvbbit exec` keep in the store (`rvbbit_store::batches`),
//! read by any process that shares the store: the list, one batch (its options, live progress, counts,
//! cost and each input's result), and a cancel (compare-and-set `running → cancelling`; the running
//! process sees it within half a second and stops starting inputs).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use rvbbit_core::codes;
use rvbbit_store::BatchRecord;
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::Params;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Most batches one list returns.
pub(crate) const MAX_LIST: u32 = 1000;

#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    limit: Option<u32>,
}

/// `GET /api/v1/batches?limit=N`: the latest batches, newest first (default 20, at most 1000).
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    Params(q): Params<ListQuery>,
) -> ApiResult<Json<Value>> {
    let limit = q.limit.unwrap_or(20);
    if !(1..=MAX_LIST).contains(&limit) {
        return Err(ApiError::bad_request(
            format!("`limit={limit}` is out of range"),
            format!("ask for 1 to {MAX_LIST} batches"),
        ));
    }
    let batches = state.store.batches(limit).await?;
    let rows: Vec<Value> = batches.iter().map(summary).collect();
    Ok(Json(json!({ "batches": rows })))
}

fn summary(b: &BatchRecord) -> Value {
    json!({"batch_id": b.batch_id, "cascade_id": b.cascade_id, "status": b.status,
        "started_at": b.started_at, "updated_at": b.updated_at,
        "links": {"self": format!("/api/v1/batches/{}", b.batch_id), "studio": format!("/batches/{}", b.batch_id)}})
}

/// A batch id from a path segment (`batch-` prefix allowed): 1 to 100 letters, digits and dashes.
pub(crate) fn batch_id(text: &str) -> Result<String, ApiError> {
    let id = text.strip_prefix("batch-").unwrap_or(text);
    let ok = !id.is_empty() && id.len() <= 100 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if ok {
        Ok(id.to_owned())
    } else {
        Err(ApiError::bad_request(
            "that is not a batch id".to_owned(),
            "batch ids look like `quick-heron-0123456789abcdef`; list them with `GET /api/v1/batches`",
        ))
    }
}

/// One batch as the API shows it: the record's document under `batch` (as `rvbbit batch status
/// --output json` prints it).
pub(crate) async fn read(state: &AppState, id: &str) -> Result<BatchRecord, ApiError> {
    let id = batch_id(id)?;
    match state.store.batch(&id).await {
        Ok(b) => Ok(b),
        Err(rvbbit_store::Error::NotFound { .. }) => Err(ApiError::not_found(
            format!("no batch `{id}` in the store"),
            "list the batches with `GET /api/v1/batches`",
        )),
        Err(e) => Err(e.into()),
    }
}

/// `GET /api/v1/batches/{id}`.
pub(crate) async fn get(
    State(state): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<Json<Value>> {
    let b = read(&state, &id).await?;
    let mut doc = summary(&b);
    doc["batch"] = b.body;
    Ok(Json(doc))
}

/// `POST /api/v1/batches/{id}/cancel`: 202 when this call asked the running batch to stop; 409 when
/// it is not running (ended, or already cancelling).
pub(crate) async fn cancel(
    State(state): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let b = read(&state, &id).await?;
    if state.store.batch_cancel(&b.batch_id).await? {
        return Ok((
            StatusCode::ACCEPTED,
            Json(json!({"batch_id": b.batch_id, "status": "cancelling"})),
        ));
    }
    let now = state.store.batch(&b.batch_id).await?;
    Err(ApiError::new(
        StatusCode::CONFLICT,
        codes::B_UNKNOWN,
        format!("batch {} is {}, not running", now.batch_id, now.status),
        "only a running batch can be cancelled",
    ))
}
