//! Two runs side by side (`GET /compare?a=&b=`) and running a session's cascade again with its input
//! (`POST /sessions/{id}/rerun`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Form, Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect};
use rvbbit_core::{CallerId, Origin, SessionId, codes};
use rvbbit_engine::RunRequest;
use rvbbit_store::{EventFilter, Session, SessionFilter};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{PageResult, non_empty, render, same_origin, views};
use crate::api::extract::Params;
use crate::error::ApiError;
use crate::paths::resolve_under;
use crate::state::AppState;

/// Most sessions offered to compare with.
const CANDIDATES: u64 = 25;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct CompareQuery {
    a: Option<String>,
    b: Option<String>,
}

async fn facts(state: &AppState, id: &str) -> Result<(Session, Value), ApiError> {
    let id: SessionId = crate::api::session_id(id)?;
    let session = state.store.session(&id).await?;
    let events = state
        .store
        .events(&EventFilter {
            session_id: Some(id),
            ..EventFilter::default()
        })
        .await?;
    let facts = views::run_facts(&session, &events, &state.config.roots);
    Ok((session, facts))
}

/// The rows of the comparison: each fact of `a` beside the same fact of `b`, marked when they differ.
fn rows(a: &Value, b: &Value) -> Vec<Value> {
    let (ha, hb) = (&a["header"], &b["header"]);
    let mut out = Vec::new();
    for (label, key) in [
        ("Status", "status"),
        ("Cascade", "cascade_id"),
        ("Started (UTC)", "started"),
        ("Duration", "duration"),
        ("Cost", "cost"),
        ("Tokens in", "tokens_in"),
        ("Tokens out", "tokens_out"),
        ("Input", "input"),
        ("Output", "output"),
        ("Error", "error"),
    ] {
        let (va, vb) = (text(&ha[key]), text(&hb[key]));
        if va.is_empty() && vb.is_empty() {
            continue;
        }
        // When the runs started or how long they took always differs; it is no news.
        let news = !matches!(key, "started" | "duration");
        out.push(
            json!({"label": label, "a": va, "b": vb, "differs": news && va != vb,
                        "block": matches!(key, "input" | "output" | "error")}),
        );
    }
    out
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The paths of both runs, step by step: the cell each took at step n, marked where they part.
fn steps(a: &Value, b: &Value) -> Vec<Value> {
    let empty = Vec::new();
    let pa = a["path"].as_array().unwrap_or(&empty);
    let pb = b["path"].as_array().unwrap_or(&empty);
    (0..pa.len().max(pb.len()))
        .map(|i| {
            let (x, y) = (pa.get(i), pb.get(i));
            json!({
                "n": i + 1, "a": x, "b": y,
                "differs": x.map(|c| &c["name"]) != y.map(|c| &c["name"]),
            })
        })
        .collect()
}

/// `GET /compare?a=&b=`: two sessions side by side; with one or none given, a form to pick them.
pub(crate) async fn compare(
    State(state): State<Arc<AppState>>,
    Params(q): Params<CompareQuery>,
) -> PageResult {
    let (a, b) = (non_empty(q.a), non_empty(q.b));
    let mut ctx = json!({"nav": "sessions", "a_id": a, "b_id": b});
    let first = match &a {
        Some(id) => Some(facts(&state, id).await?),
        None => None,
    };
    // Other runs of the same cascade to compare with.
    let cascade_id = first.as_ref().and_then(|(s, _)| s.cascade_id.clone());
    let candidates: Vec<Value> = state
        .store
        .sessions(&SessionFilter {
            cascade_id: cascade_id.clone(),
            limit: Some(CANDIDATES + 1),
            ..SessionFilter::default()
        })
        .await?
        .iter()
        .filter(|s| Some(s.session.session_id.as_str()) != a.as_deref())
        .take(usize::try_from(CANDIDATES).unwrap_or(usize::MAX))
        .map(views::session_row)
        .collect();
    ctx["candidates"] = json!(candidates);
    if let (Some((sa, fa)), Some(b)) = (&first, &b) {
        let (sb, fb) = facts(&state, b).await?;
        ctx["a"] = fa["header"].clone();
        ctx["b"] = fb["header"].clone();
        ctx["rows"] = json!(rows(fa, &fb));
        ctx["steps"] = json!(steps(fa, &fb));
        ctx["same_cascade"] = json!(sa.cascade_id == sb.cascade_id);
    }
    Ok(render("compare.html", ctx)?.into_response())
}

/// The file a session's cascade was loaded from, under a root when it still lies there (so relative
/// references resolve as they did); else a name in the first root.
fn source_path(state: &AppState, recorded: Option<&str>) -> PathBuf {
    let roots = &state.config.roots;
    let under = recorded.and_then(|f| {
        let p = Path::new(f);
        if p.is_absolute() {
            roots.iter().find_map(|r| {
                let root = r.canonicalize().ok()?;
                let rel = p.strip_prefix(&root).ok()?;
                resolve_under(roots, &rel.to_string_lossy()).ok()
            })
        } else {
            resolve_under(roots, f).ok()
        }
    });
    match under {
        Some(c) => c.path,
        None => roots
            .first()
            .map_or_else(|| PathBuf::from("rerun.yaml"), |r| r.join("rerun.yaml")),
    }
}

fn cannot_rerun(id: &SessionId, why: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        codes::A_RERUN,
        format!("session `{id}` cannot be run again: {why}"),
        "run the cascade from its page under Cascades (or `rvbbit run FILE --input JSON`) instead",
    )
}

/// `POST /sessions/{id}/rerun`: run the cascade the session ran (the text recorded on it) again with the
/// same input, as a new session; then show that session.
pub(crate) async fn rerun(
    State(state): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
    Form(form): Form<BTreeMap<String, String>>,
) -> PageResult {
    same_origin(&headers)?;
    let id = crate::api::session_id(&id)?;
    let session = state.store.session(&id).await?;
    let Some(text) = session.cascade_text.clone() else {
        return Err(cannot_rerun(&id, "it recorded no cascade text").into());
    };
    let path = source_path(&state, session.cascade_file.as_deref());
    let st = state.clone();
    let report = tokio::task::spawn_blocking(move || {
        crate::api::cascades::check(
            &st,
            rvbbit_cascade::load_str_with(&path, &text, st.engine.limits()),
        )
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?;
    if let Some(d) = report
        .diagnostics()
        .iter()
        .find(|d| d.severity == rvbbit_cascade::Severity::Error)
    {
        let message = crate::paths::scrub(&d.message, &state.config.roots);
        return Err(cannot_rerun(
            &id,
            &format!("its cascade no longer validates ({}: {message})", d.code),
        )
        .into());
    }
    let Some(cascade) = report.loaded.document.as_ref().and_then(|d| d.cascade().cloned()) else {
        return Err(cannot_rerun(&id, "its recorded text is not a cascade").into());
    };
    let mut request = RunRequest::new(cascade);
    request.input = session.input.clone();
    request.session_id = Some(SessionId::new_woodland());
    request.caller_id = CallerId::new(Origin::Http);
    request.model = form.get("model").cloned().filter(|m| !m.trim().is_empty());
    request.cascade_file = session.cascade_file.clone().map(Into::into);
    request.cascade_text = session.cascade_text.clone();
    request.metadata = json!({"rerun_of": id.as_str()});
    let new = crate::api::runs::spawn(&state, request);
    Ok(Redirect::to(&format!("/sessions/{new}")).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_and_steps_mark_what_differs() {
        let a = json!({"header": {"status": "completed", "cost": "$0.1", "started": "x", "input": "{}"},
                       "path": [{"name": "draft"}, {"name": "publish"}]});
        let b = json!({"header": {"status": "failed", "cost": "$0.1", "started": "y", "input": "{}"},
                       "path": [{"name": "draft"}, {"name": "draft"}, {"name": "publish"}]});
        let r = rows(&a, &b);
        let status = r.iter().find(|x| x["label"] == "Status").unwrap();
        assert_eq!(status["differs"], true);
        let cost = r.iter().find(|x| x["label"] == "Cost").unwrap();
        assert_eq!(cost["differs"], false);
        let started = r.iter().find(|x| x["label"] == "Started (UTC)").unwrap();
        assert_eq!(started["differs"], false, "start times always differ");
        assert!(r.iter().all(|x| x["label"] != "Output"), "absent on both sides");
        let s = steps(&a, &b);
        assert_eq!(s.len(), 3);
        assert_eq!(s[0]["differs"], false);
        assert_eq!(s[1]["differs"], true);
        assert_eq!(s[2]["a"], Value::Null);
    }
}
