//! Liveness, readiness and metrics.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use rvbbit_core::codes;
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The process answers.
pub(crate) async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// The store answers. The body also counts the records this process spilled or lost; with any lost
/// (RVB-S008) the status is `degraded` (still 200: the store answers now, but the record is incomplete).
pub(crate) async fn readyz(State(state): State<Arc<AppState>>) -> ApiResult<Json<Value>> {
    state.store.ping().await.map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            codes::S_UNAVAILABLE,
            "the event store does not answer",
            "whoever runs the server finds the cause in its log; `rvbbit health` checks the store",
        )
        .with_detail(e.to_string())
    })?;
    let (spilled, lost) = state.writer.as_ref().map_or((0, 0), |w| (w.spilled(), w.lost()));
    if lost > 0 {
        tracing::error!(
            code = "RVB-S008",
            lost,
            "Readiness: records were lost since the server started."
        );
    }
    Ok(Json(json!({
        "status": if lost > 0 { "degraded" } else { "ready" },
        "store": "ok",
        "records": {"spilled": spilled, "lost": lost},
    })))
}

/// Prometheus (OpenMetrics) text.
pub(crate) async fn metrics(State(state): State<Arc<AppState>>) -> ApiResult<impl IntoResponse> {
    let text = state
        .metrics
        .render(state.store.as_ref(), state.writer.as_ref())
        .await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    ))
}
