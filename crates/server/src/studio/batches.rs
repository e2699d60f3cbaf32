//! The batch pages: the latest batches, and one batch with its live progress (the page refreshes while
//! it runs), its failures, each input's result and its options, from the record `rvbbit batch` and
//! `rvbbit exec` keep in the store.

use std::sync::Arc;

use axum::extract::{Path as UrlPath, State};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::{PageResult, render};
use crate::api::batches::read;
use crate::state::AppState;

/// Batches the list shows.
const LIST: u32 = 100;
/// Inputs one batch page lists (the failures are all shown).
const INPUTS_SHOWN: usize = 500;

/// `GET /batches`.
pub(crate) async fn list(State(state): State<Arc<AppState>>) -> PageResult {
    let batches: Vec<Value> = state
        .store
        .batches(LIST)
        .await?
        .iter()
        .map(|b| {
            json!({"batch_id": b.batch_id, "cascade_id": b.cascade_id, "status": b.status,
                "started": super::views::time(b.started_at), "updated": super::views::time(b.updated_at)})
        })
        .collect();
    Ok(render("batches.html", json!({"nav": "batches", "batches": batches}))?.into_response())
}

/// `GET /batches/{id}`.
pub(crate) async fn batch(State(state): State<Arc<AppState>>, UrlPath(id): UrlPath<String>) -> PageResult {
    let b = read(&state, &id).await?;
    let body = &b.body;
    let results = body["results"].as_array().cloned().unwrap_or_default();
    let failures: Vec<&Value> = results
        .iter()
        .filter(|r| matches!(r["status"].as_str(), Some("failed" | "skipped")))
        .collect();
    let shown: Vec<&Value> = results.iter().take(INPUTS_SHOWN).collect();
    let live = matches!(b.status.as_str(), "running" | "cancelling");
    let duration = body["duration_ms"]
        .as_u64()
        .map_or_else(String::new, |ms| format!("{:.1} s", ms as f64 / 1000.0));
    let ctx = json!({
        "nav": "batches",
        "batch_id": b.batch_id, "cascade_id": b.cascade_id, "status": b.status,
        "started": super::views::time(b.started_at), "updated": super::views::time(b.updated_at),
        "live": live, "progress": body["progress"], "counts": body["counts"],
        "cost": body["cost_usd"], "duration": duration,
        "failures": failures, "results": shown, "results_total": results.len(),
        "results_cut": results.len() > INPUTS_SHOWN,
        "inputs": body["inputs"], "cascade_file": body["cascade_file"], "options": body["options"],
        "retry_of": body["retry_of"], "script": body["exec"]["script"],
    });
    Ok(render("batch.html", ctx)?.into_response())
}
