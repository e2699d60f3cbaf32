//! The list pages, paged and with totals: sessions (newest first, a page at a time by start time) and
//! cascades (each validated, invalid ones marked).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::response::IntoResponse;
use rvbbit_core::{MicroUsd, SessionStatus, Timestamp};
use rvbbit_store::SessionFilter;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{PageResult, non_empty, render, views};
use crate::api::extract::Params;
use crate::auth::percent;
use crate::error::ApiError;
use crate::paths::resolve_under;
use crate::state::AppState;

/// Sessions per page.
pub(crate) const SESSIONS_PAGE: u64 = 50;
/// Most sessions the totals count (beyond it they say "at least").
pub(crate) const TOTALS_MAX: u64 = 10_000;
/// Cascades per page.
pub(crate) const CASCADES_PAGE: usize = 50;

const STATUSES: [&str; 5] = ["running", "waiting", "completed", "failed", "cancelled"];

#[derive(Debug, Default, Deserialize)]
pub(crate) struct SessionsQuery {
    status: Option<String>,
    cascade_id: Option<String>,
    caller_id: Option<String>,
    since: Option<String>,
    /// The page after this one: sessions started before this time (µs since the epoch).
    before: Option<String>,
}

/// `GET /`: the sessions list, a page at a time, with the totals of everything the filters match.
pub(crate) async fn sessions(
    State(state): State<Arc<AppState>>,
    Params(q): Params<SessionsQuery>,
) -> PageResult {
    let status = non_empty(q.status.clone());
    let before = match non_empty(q.before.clone()) {
        Some(b) => Some(Timestamp::from_micros(b.parse::<i64>().map_err(|_| {
            ApiError::bad_request(
                format!("`before={b}` is not a position in the list"),
                "use the Older and Newest links under the list",
            )
        })?)),
        None => None,
    };
    let mut filter = SessionFilter {
        status: status
            .as_deref()
            .map(|s| {
                s.parse::<SessionStatus>().map_err(|e| {
                    ApiError::bad_request(format!("status `{s}`: {e}"), "pick a status from the list")
                })
            })
            .transpose()?,
        cascade_id: non_empty(q.cascade_id.clone()),
        caller_id: non_empty(q.caller_id.clone()),
        since: crate::api::sessions::time_param("since", non_empty(q.since.clone()).as_deref())?,
        until: None,
        limit: Some(TOTALS_MAX + 1),
    };
    // Totals over every match (bounded), then the page.
    let all = state.store.sessions(&filter).await?;
    let capped = all.len() as u64 > TOTALS_MAX;
    let counted = &all[..all.len().min(usize::try_from(TOTALS_MAX).unwrap_or(usize::MAX))];
    let mut by_status: BTreeMap<&str, u64> = BTreeMap::new();
    let mut cost = MicroUsd::ZERO;
    for s in counted {
        *by_status.entry(s.session.status.as_str()).or_default() += 1;
        cost += s.cost;
    }
    filter.until = before;
    filter.limit = Some(SESSIONS_PAGE + 1);
    let mut page = state.store.sessions(&filter).await?;
    let more = page.len() as u64 > SESSIONS_PAGE;
    page.truncate(usize::try_from(SESSIONS_PAGE).unwrap_or(usize::MAX));
    let older = more
        .then(|| page.last().map(|s| s.session.started_at.micros()))
        .flatten();
    let keep = [
        ("status", &status),
        ("cascade_id", &q.cascade_id),
        ("caller_id", &q.caller_id),
        ("since", &q.since),
    ];
    let query: String = keep
        .iter()
        .filter_map(|(k, v)| non_empty((*v).clone()).map(|v| format!("{k}={}&", percent(&v))))
        .collect();
    let rows: Vec<Value> = page.iter().map(views::session_row).collect();
    Ok(render(
        "sessions.html",
        json!({
            "nav": "sessions",
            "sessions": rows,
            "statuses": STATUSES,
            "filters": {"status": status, "cascade_id": q.cascade_id, "caller_id": q.caller_id, "since": q.since},
            "totals": {
                "sessions": counted.len(), "capped": capped, "cost": views::money(cost),
                "by_status": STATUSES.iter().filter_map(|s| by_status.get(s).map(|n| json!({"status": s, "count": n}))).collect::<Vec<_>>(),
            },
            "page": {
                "first": before.is_none(),
                "newest": format!("/?{}", query.trim_end_matches('&')),
                "older": older.map(|b| format!("/?{query}before={b}")),
            },
        }),
    )?
    .into_response())
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct CascadesQuery {
    page: Option<String>,
}

/// Errors and warnings of the cascade at `path` under the roots (`None` when it cannot be read).
fn verdict(state: &AppState, path: &str) -> Option<(usize, usize)> {
    let file = resolve_under(&state.config.roots, path).ok()?;
    let report = crate::api::cascades::check(
        state,
        rvbbit_cascade::load_file_with(&file.path, state.engine.limits()),
    );
    let count = |sev| report.diagnostics().iter().filter(|d| d.severity == sev).count();
    Some((
        count(rvbbit_cascade::Severity::Error),
        count(rvbbit_cascade::Severity::Warning),
    ))
}

/// `GET /cascades`: the cascades under the roots, a page at a time, each validated (invalid ones
/// marked with their error count).
pub(crate) async fn cascades(
    State(state): State<Arc<AppState>>,
    Params(q): Params<CascadesQuery>,
) -> PageResult {
    let page = match non_empty(q.page) {
        Some(p) => p.parse::<usize>().ok().filter(|p| *p >= 1).ok_or_else(|| {
            ApiError::bad_request(
                format!("`page={p}` is not a page number"),
                "use the page links under the list",
            )
        })?,
        None => 1,
    };
    let axum::Json(list) = crate::api::cascades::list(State(state.clone())).await?;
    let all = list["cascades"].as_array().cloned().unwrap_or_default();
    let pages = all.len().div_ceil(CASCADES_PAGE).max(1);
    let shown: Vec<Value> = all
        .iter()
        .skip((page - 1).saturating_mul(CASCADES_PAGE))
        .take(CASCADES_PAGE)
        .cloned()
        .collect();
    let st = state.clone();
    let rows = tokio::task::spawn_blocking(move || {
        shown
            .into_iter()
            .map(|mut c| {
                let path = c["path"].as_str().unwrap_or_default().to_owned();
                let (errors, warnings) = verdict(&st, &path).unwrap_or((1, 0));
                c["errors"] = json!(errors);
                c["warnings"] = json!(warnings);
                c
            })
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?;
    let invalid = rows.iter().filter(|c| c["errors"].as_u64() > Some(0)).count();
    Ok(render(
        "cascades.html",
        json!({
            "nav": "cascades", "cascades": rows, "total": all.len(), "invalid_here": invalid,
            "page": page, "pages": pages,
            "prev": (page > 1).then(|| page - 1), "next": (page < pages).then(|| page + 1),
        }),
    )?
    .into_response())
}
