//! Cost summaries.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use rvbbit_store::{CostGroup, EventFilter};
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::Params;
use super::sessions::time_param;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub(crate) struct CostQuery {
    group: Option<String>,
    since: Option<String>,
    until: Option<String>,
    cascade_id: Option<String>,
    caller_id: Option<String>,
}

/// `GET /api/v1/costs?group=day|model|cascade|caller|total`
pub(crate) async fn costs(
    State(state): State<Arc<AppState>>,
    Params(q): Params<CostQuery>,
) -> ApiResult<Json<Value>> {
    let name = q.group.as_deref().unwrap_or("day");
    let group = match name {
        "day" => CostGroup::Day,
        "model" => CostGroup::Model,
        "cascade" => CostGroup::Cascade,
        "caller" => CostGroup::Caller,
        "total" => CostGroup::Total,
        other => {
            return Err(ApiError::bad_request(
                format!("`group={other}` is not a grouping"),
                "use day, model, cascade, caller or total",
            ));
        }
    };
    let filter = EventFilter {
        since: time_param("since", q.since.as_deref())?,
        until: time_param("until", q.until.as_deref())?,
        cascade_id: q.cascade_id,
        caller_id: q.caller_id,
        ..EventFilter::default()
    };
    let rows: Vec<Value> = state
        .store
        .costs(group, &filter)
        .await?
        .into_iter()
        .map(|r| {
            json!({
                "key": r.key,
                "sessions": r.sessions,
                "calls": r.calls,
                "tokens_in": r.tokens_in,
                "tokens_out": r.tokens_out,
                "cost_micro_usd": r.cost.micros(),
                "cost_usd": r.cost.to_decimal_string(),
                "unknown_cost_calls": r.unknown_cost,
            })
        })
        .collect();
    Ok(Json(json!({"group": name, "rows": rows})))
}
