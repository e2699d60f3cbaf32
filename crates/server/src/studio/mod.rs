//! The Studio: server-rendered HTML pages over the same store and engine as the API. Templates and
//! static files are compiled into the binary (no Node build); the only script is a small EventSource
//! client for live updates. Pages: sessions (paged, with totals), one session (a waterfall of its cells
//! and calls, the timeline with every LLM call's messages, tool calls, costs and timings; live while
//! running; its questions to a human as buttons; re-run), two sessions compared, costs (cost, tokens
//! and latency over time per cascade or model as inline SVG, see [`charts`]), cascades (invalid ones
//! marked; source with diagnostics inline) and a run form built from `inputs_schema`.

mod batches;
mod charts;
mod compare;
mod lists;
mod trends;
mod views;

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::extract::{Form, Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use minijinja::Environment;
use rvbbit_core::{CallerId, Origin, SessionId, SessionStatus, codes};
use rvbbit_engine::RunRequest;
use rvbbit_store::{CostGroup, EventFilter, SessionFilter};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::api::extract::Params;
use crate::error::ApiError;
use crate::paths::resolve_under;
use crate::state::AppState;

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    for (name, text) in [
        ("base.html", include_str!("templates/base.html")),
        ("sessions.html", include_str!("templates/sessions.html")),
        ("session.html", include_str!("templates/session.html")),
        ("costs.html", include_str!("templates/costs.html")),
        ("cascades.html", include_str!("templates/cascades.html")),
        ("cascade.html", include_str!("templates/cascade.html")),
        ("login.html", include_str!("templates/login.html")),
        ("error.html", include_str!("templates/error.html")),
        ("sql.html", include_str!("templates/sql.html")),
        ("compare.html", include_str!("templates/compare.html")),
        ("batches.html", include_str!("templates/batches.html")),
        ("batch.html", include_str!("templates/batch.html")),
    ] {
        if let Err(e) = env.add_template(name, text) {
            // A broken built-in template is a bug caught by the tests; render() reports it per page.
            tracing::error!(template = name, error = %e, "a Studio template does not compile");
        }
    }
    env
});

const CSS: &str = include_str!("static/studio.css");
const JS: &str = include_str!("static/studio.js");
const ICON: &str = include_str!("static/favicon.svg");

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(lists::sessions))
        .route("/sessions/{id}", get(session))
        .route("/sessions/{id}/rerun", axum::routing::post(compare::rerun))
        .route("/compare", get(compare::compare))
        .route("/costs", get(costs))
        .route("/batches", get(batches::list))
        .route("/batches/{id}", get(batches::batch))
        .route("/cascades", get(lists::cascades))
        .route("/cascades/{*path}", get(cascade))
        .route("/runs", axum::routing::post(run))
        .route("/sessions/{id}/answer", axum::routing::post(answer))
        .route(
            "/sessions/{id}/artifacts/{artifact}",
            get(
                |State(state): State<Arc<AppState>>, UrlPath((id, a)): UrlPath<(String, String)>| async move {
                    crate::api::artifacts::serve(&state, &id, &a, false)
                        .await
                        .map_err(PageError)
                },
            ),
        )
        .route(
            "/sessions/{id}/artifacts/{artifact}/svg",
            get(
                |State(state): State<Arc<AppState>>, UrlPath((id, a)): UrlPath<(String, String)>| async move {
                    crate::api::artifacts::serve(&state, &id, &a, true)
                        .await
                        .map_err(PageError)
                },
            ),
        )
        .route("/sql", get(sql_page).post(sql_run))
        .route("/login", get(login_page).post(login))
        .route(
            "/static/studio.css",
            get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS) }),
        )
        .route(
            "/static/favicon.svg",
            get(|| async { ([(header::CONTENT_TYPE, "image/svg+xml")], ICON) }),
        )
        .route(
            "/static/studio.js",
            get(|| async { ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], JS) }),
        )
}

/// A page error: the API error rendered as HTML.
pub(crate) struct PageError(ApiError);

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        PageError(e)
    }
}

impl From<rvbbit_store::Error> for PageError {
    fn from(e: rvbbit_store::Error) -> Self {
        PageError(e.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        let (error_id, body) = self.0.into_logged();
        let title = status.canonical_reason().unwrap_or("Error");
        let page = render(
            "error.html",
            json!({"title": title, "code": body.code, "message": body.message, "hint": body.hint,
                   "error_id": error_id, "nav": ""}),
        );
        match page {
            Ok(html) => (status, html).into_response(),
            Err(e) => (status, e.0.into_logged().1.message).into_response(),
        }
    }
}

type PageResult = Result<Response, PageError>;

fn render(name: &str, mut ctx: Value) -> Result<Html<String>, PageError> {
    if let Some(m) = ctx.as_object_mut() {
        m.insert("version".into(), json!(env!("CARGO_PKG_VERSION")));
    }
    let template = TEMPLATES
        .get_template(name)
        .map_err(|e| ApiError::internal(format!("template {name}: {e}")))?;
    template
        .render(minijinja::Value::from(minijinja::value::Serde(&ctx)))
        .map(Html)
        .map_err(|e| PageError(ApiError::internal(format!("template {name}: {e:#}"))))
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// `GET /sessions/{id}`: the timeline of one session; live while it runs.
async fn session(State(state): State<Arc<AppState>>, UrlPath(id): UrlPath<String>) -> PageResult {
    let id: SessionId = crate::api::session_id(&id)?;
    let session = match state.store.session(&id).await {
        Ok(s) => s,
        // Started here a moment ago: show an empty page that follows it live.
        Err(rvbbit_store::Error::NotFound { .. }) if state.is_local(id.as_str()) => {
            return Ok(render(
                "session.html",
                json!({"nav": "sessions", "s": {"session_id": id.as_str(), "status": "running"},
                       "cells": [], "cursor": 0, "active": true}),
            )?
            .into_response());
        }
        Err(e) => return Err(e.into()),
    };
    let events = state
        .store
        .events(&EventFilter {
            session_id: Some(id.clone()),
            ..EventFilter::default()
        })
        .await?;
    let cursor = events.last().map_or(0, |e| e.store_seq);
    let active = session.status.is_active();
    let waits: Vec<Value> = if session.status == SessionStatus::Waiting {
        state
            .store
            .checkpoints(Some(&id), Some(rvbbit_store::CheckpointStatus::Pending))
            .await?
            .iter()
            .map(|c| views::wait(&c.ui_spec, &c.signal_name, &c.cell_name))
            .collect()
    } else {
        Vec::new()
    };
    let (header, cells) = views::session_page(&session, &events, &state.config.roots);
    let artifacts: Vec<Value> =
        rvbbit_store::published::published_from(events.iter().map(|e| e.event.clone()))
            .iter()
            .map(|a| {
                let mut v = crate::api::artifacts::summary(id.as_str(), a, "");
                v["frame"] = json!(a.text("content_type").starts_with("text/html"));
                v
            })
            .collect();
    let (bars, span) = views::waterfall_bars(&session, &events);
    let waterfall = (!bars.is_empty()).then(|| charts::waterfall("waterfall", &bars, span));
    // Other runs of the same cascade, to compare this one with.
    let others: Vec<Value> = match &session.cascade_id {
        Some(c) => state
            .store
            .sessions(&SessionFilter {
                cascade_id: Some(c.clone()),
                limit: Some(11),
                ..SessionFilter::default()
            })
            .await?
            .iter()
            .filter(|s| s.session.session_id != id)
            .take(10)
            .map(views::session_row)
            .collect(),
        None => Vec::new(),
    };
    Ok(render(
        "session.html",
        json!({"nav": "sessions", "s": header, "cells": cells, "cursor": cursor, "active": active,
               "waits": waits, "waterfall": waterfall, "others": others, "artifacts": artifacts,
               "rerun": !active && session.cascade_text.is_some()}),
    )?
    .into_response())
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct CostsQuery {
    group: Option<String>,
    since: Option<String>,
    range: Option<String>,
    by: Option<String>,
}

/// `GET /costs`: cost, tokens and latency over a time range (`range`: 24h, 7d, 30d, 90d) per cascade or
/// model (`by`) as line charts; totals by day, model, cascade or caller (`group`) as a table.
async fn costs(State(state): State<Arc<AppState>>, Params(q): Params<CostsQuery>) -> PageResult {
    let range_name = non_empty(q.range).unwrap_or_else(|| "30d".into());
    let range = trends::range(&range_name).ok_or_else(|| {
        ApiError::bad_request(
            format!("`{range_name}` is not a range"),
            "use 24h, 7d, 30d or 90d",
        )
    })?;
    let by_name = non_empty(q.by).unwrap_or_else(|| "cascade".into());
    let by = trends::By::parse(&by_name).ok_or_else(|| {
        ApiError::bad_request(format!("`{by_name}` is not a breakdown"), "use cascade or model")
    })?;
    let now = rvbbit_core::Timestamp::now();
    let (calls, truncated) = trends::calls(state.store.as_ref(), range, now).await?;
    let pictures = trends::build(&calls, by, range, now);
    let name = non_empty(q.group).unwrap_or_else(|| "day".into());
    let group = match name.as_str() {
        "day" => CostGroup::Day,
        "model" => CostGroup::Model,
        "cascade" => CostGroup::Cascade,
        "caller" => CostGroup::Caller,
        other => {
            return Err(ApiError::bad_request(
                format!("`{other}` is not a grouping"),
                "use day, model, cascade or caller",
            )
            .into());
        }
    };
    // The table covers the chart's range unless `since` says otherwise.
    let since = non_empty(q.since);
    let filter = EventFilter {
        since: match since.as_deref() {
            Some(_) => crate::api::sessions::time_param("since", since.as_deref())?,
            None => Some(rvbbit_core::Timestamp::from_micros(now.micros() - range.span_us)),
        },
        ..EventFilter::default()
    };
    let mut rows = state.store.costs(group, &filter).await?;
    if matches!(group, CostGroup::Day) {
        rows.sort_by(|a, b| b.key.cmp(&a.key));
    }
    let total = state.store.costs(CostGroup::Total, &filter).await?;
    let total = total.first().cloned().unwrap_or_default();
    let (rows, chart_height) = views::cost_rows(&rows);
    Ok(render(
        "costs.html",
        json!({
            "nav": "costs", "group": name, "groups": ["day", "model", "cascade", "caller"], "since": since,
            "range": range.name, "ranges": trends::RANGES.iter().map(|r| r.name).collect::<Vec<_>>(),
            "by": by_name, "charts": pictures, "truncated": truncated, "max_calls": trends::MAX_CALLS,
            "rows": rows, "chart_height": chart_height,
            "total": views::money(total.cost), "sessions": total.sessions, "calls": total.calls,
            "unknown": total.unknown_cost,
        }),
    )?
    .into_response())
}

/// Most rows the console shows of one result.
const SQL_ROWS_SHOWN: usize = 1000;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct SqlQuery {
    q: Option<String>,
}

/// `GET /sql`: the SQL console (`?q=` fills in a statement).
async fn sql_page(State(state): State<Arc<AppState>>, Params(q): Params<SqlQuery>) -> PageResult {
    let query = q.q.unwrap_or_else(|| {
        "SELECT session_id, cascade_id, kind, cost FROM all_data ORDER BY store_seq DESC LIMIT 20".into()
    });
    let tables = sql_tables(&state, None).await;
    Ok(render(
        "sql.html",
        json!({"nav": "sql", "query": query, "tables": tables}),
    )?
    .into_response())
}

/// The console's table list (names and columns) of a session; empty when it cannot be read.
async fn sql_tables(state: &Arc<AppState>, session_id: Option<&str>) -> Vec<Value> {
    let query = "SELECT table_name, column_name FROM information_schema.columns \
                 WHERE table_schema <> 'information_schema' ORDER BY table_name, ordinal_position";
    let Ok((_, crate::api::sql::Executed::Done(result))) =
        crate::api::sql::execute(state, query, session_id).await
    else {
        return Vec::new();
    };
    let mut tables: Vec<(String, Vec<String>)> = Vec::new();
    for row in result.to_json_rows().unwrap_or_default() {
        let name = row["table_name"].as_str().unwrap_or_default().to_owned();
        let column = row["column_name"].as_str().unwrap_or_default().to_owned();
        match tables.last_mut() {
            Some((n, cols)) if *n == name => cols.push(column),
            _ => tables.push((name, vec![column])),
        }
    }
    tables
        .into_iter()
        .map(|(name, columns)| json!({"name": name, "columns": columns}))
        .collect()
}

/// `POST /sql`: run the statement and show its rows, or the error under the line it points at.
async fn sql_run(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(form): Form<BTreeMap<String, String>>,
) -> PageResult {
    same_origin(&headers)?;
    let query = form.get("query").map(|q| q.trim().to_owned()).unwrap_or_default();
    if query.is_empty() {
        return Err(ApiError::bad_request("no query provided", "type a statement and press Run").into());
    }
    let session = non_empty(form.get("session_id").cloned());
    // A console session that expired starts over in a new one rather than failing.
    let executed = match crate::api::sql::execute(&state, &query, session.as_deref()).await {
        Err(e) if e.status() == StatusCode::NOT_FOUND && session.is_some() => {
            crate::api::sql::execute(&state, &query, None).await
        }
        other => other,
    };
    let (session_id, executed) = executed?;
    let mut ctx = json!({"nav": "sql", "query": query, "session_id": session_id});
    match executed {
        crate::api::sql::Executed::Done(result) => {
            let columns = crate::api::sql::columns(&result);
            let names: Vec<String> = result.columns().into_iter().map(|(n, _)| n).collect();
            let rows = result
                .to_json_rows()
                .map_err(|e| ApiError::internal(format!("rows not convertible to JSON: {e}")))?;
            let shown: Vec<Vec<Value>> = rows
                .iter()
                .take(SQL_ROWS_SHOWN)
                .map(|row| {
                    names
                        .iter()
                        .map(|n| match row.get(n) {
                            None | Some(Value::Null) => Value::Null,
                            Some(Value::String(s)) => Value::String(s.clone()),
                            Some(other) => Value::String(other.to_string()),
                        })
                        .collect()
                })
                .collect();
            ctx["result"] = json!({
                "columns": columns, "rows": shown, "row_count": result.row_count(),
                "shown": shown.len(), "truncated": result.row_count() > shown.len(),
                "ms": format!("{:.1}", result.duration.as_secs_f64() * 1000.0),
                "caller_id": result.caller_id.to_string(),
                "runs": result.stats.runs, "cache_hits": result.stats.cache_hits,
                "cost": views::money(result.stats.cost),
                "notices": result.notices,
            });
        }
        crate::api::sql::Executed::Failed(f) => {
            let (line_text, pad) = match f.position {
                Some((line, column)) => {
                    let text = query
                        .lines()
                        .nth(usize::try_from(line.saturating_sub(1)).unwrap_or(usize::MAX))
                        .unwrap_or_default()
                        .to_owned();
                    let pad: String = text
                        .chars()
                        .take(usize::try_from(column.saturating_sub(1)).unwrap_or(0))
                        .map(|c| if c == '\t' { '\t' } else { ' ' })
                        .collect();
                    (text, pad)
                }
                None => (String::new(), String::new()),
            };
            ctx["error"] = json!({
                "code": f.code, "message": f.message, "hint": f.hint,
                "position": f.position.map(|(line, column)| json!({"line": line, "column": column})),
                "line_text": line_text, "pad": pad,
            });
        }
    }
    ctx["tables"] = json!(sql_tables(&state, Some(&session_id)).await);
    Ok(render("sql.html", ctx)?.into_response())
}

/// `GET /cascades/{path}`: source with diagnostics under their lines, and the run form.
async fn cascade(State(state): State<Arc<AppState>>, UrlPath(path): UrlPath<String>) -> PageResult {
    let axum::Json(doc) = crate::api::cascades::get(State(state), UrlPath(path)).await?;
    let ctx = views::cascade_page(&doc);
    Ok(render("cascade.html", ctx)?.into_response())
}

/// Form posts must come from a Studio page: the browser's `Origin` (or `Sec-Fetch-Site`) proves it, so
/// another site cannot make a visitor's browser start runs (CSRF).
fn same_origin(headers: &HeaderMap) -> Result<(), ApiError> {
    let forbidden = |why: &str| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            codes::A_BAD_REQUEST,
            format!("form posts are only accepted from Studio pages ({why})"),
            "submit the form from the Studio itself; programs should use the JSON API under /api/v1",
        )
    };
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return if matches!(site, "same-origin" | "none") {
            Ok(())
        } else {
            Err(forbidden("cross-site request"))
        };
    }
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| forbidden("no Origin header"))?;
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let bare = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .unwrap_or_default();
    if !host.is_empty() && bare == host {
        Ok(())
    } else {
        Err(forbidden("the Origin is another site"))
    }
}

/// `POST /runs` (the run form): start the run, then show its session page.
async fn run(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(form): Form<BTreeMap<String, String>>,
) -> PageResult {
    same_origin(&headers)?;
    let path = form.get("cascade").cloned().ok_or_else(|| {
        ApiError::bad_request("the form has no cascade", "use the form on a cascade's page")
    })?;
    let mut input = Map::new();
    for (k, v) in &form {
        if let Some(name) = k.strip_prefix("input.") {
            // A value that parses as JSON (a number, an object) is passed as such; anything else as text.
            let value = serde_json::from_str::<Value>(v.trim())
                .ok()
                .filter(|_| !v.trim().is_empty())
                .unwrap_or_else(|| Value::String(v.clone()));
            input.insert(name.to_owned(), value);
        }
    }
    let file = resolve_under(&state.config.roots, &path)?;
    let st = state.clone();
    let shown = file.relative.clone();
    let fpath = file.path.clone();
    let report = tokio::task::spawn_blocking(move || {
        crate::api::cascades::check(&st, rvbbit_cascade::load_file(&fpath))
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?;
    if report
        .diagnostics()
        .iter()
        .any(|d| d.severity == rvbbit_cascade::Severity::Error)
    {
        return Ok(Redirect::to(&format!("/cascades/{shown}")).into_response());
    }
    let Some(cascade) = report.loaded.document.as_ref().and_then(|d| d.cascade().cloned()) else {
        return Err(
            ApiError::bad_request(format!("`{shown}` is not a cascade"), "pick a cascade file").into(),
        );
    };
    let mut request = RunRequest::new(cascade);
    request.input = Value::Object(input);
    request.session_id = Some(SessionId::new_woodland());
    request.caller_id = CallerId::new(Origin::Http);
    request.model = form.get("model").cloned().filter(|m| !m.trim().is_empty());
    request.cascade_file = Some(shown.into());
    request.cascade_text = report.loaded.source.as_ref().map(|s| s.text().to_owned());
    let id = crate::api::runs::spawn(&state, request);
    Ok(Redirect::to(&format!("/sessions/{id}")).into_response())
}

/// The value a wait form sent, in the shape its question asks.
fn form_answer(form: &BTreeMap<String, String>) -> Result<Value, ApiError> {
    let raw = form.get("value").map(String::as_str).unwrap_or("").trim();
    let kind = form.get("kind").map(String::as_str).unwrap_or("text");
    let bad = |what: &str| {
        ApiError::bad_request(
            format!("the answer `{raw}` is not {what}"),
            "answer with the form's own buttons and fields",
        )
    };
    Ok(match kind {
        "confirmation" => {
            let confirmed = match raw {
                "true" => true,
                "false" => false,
                _ => return Err(bad("true or false")),
            };
            match form.get("comment").map(|c| c.trim()).filter(|c| !c.is_empty()) {
                Some(c) => json!({"confirmed": confirmed, "comment": c}),
                None => Value::Bool(confirmed),
            }
        }
        "choice" => serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned())),
        "rating" => json!(raw.parse::<u32>().map_err(|_| bad("a whole number"))?),
        "screen" => serde_json::from_str(raw).map_err(|_| bad("a JSON object"))?,
        _ => Value::String(raw.to_owned()),
    })
}

/// `POST /sessions/{id}/answer` (a wait form): answer the question; when no other process still runs
/// the session, continue it in this server. Then back to the session page.
async fn answer(
    State(state): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
    Form(form): Form<BTreeMap<String, String>>,
) -> PageResult {
    same_origin(&headers)?;
    let id = crate::api::session_id(&id)?;
    let signal = form.get("signal").cloned().ok_or_else(|| {
        ApiError::bad_request("the form names no signal", "use the form on the session page")
    })?;
    let value = form_answer(&form)?;
    crate::api::waits::send(&state, &id, &signal, &value).await?;
    // A process still polling for the answer (this server's own run, or `rvbbit run` in a shell) takes
    // it within a second or so and resolves the checkpoint; if nobody does, continue the run here.
    if !crate::api::waits::taken(&state, &id, &signal).await? {
        crate::api::waits::start_resume(&state, &id).await?;
    }
    Ok(Redirect::to(&format!("/sessions/{id}")).into_response())
}

#[derive(Debug, Default, Deserialize)]
struct LoginQuery {
    next: Option<String>,
    failed: Option<String>,
}

/// Only local paths are followed after signing in (no open redirect).
fn local_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_owned(),
        _ => "/".to_owned(),
    }
}

async fn login_page(Params(q): Params<LoginQuery>) -> PageResult {
    Ok(render(
        "login.html",
        json!({"nav": "", "next": local_next(q.next.as_deref()), "failed": q.failed.is_some()}),
    )?
    .into_response())
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    key: String,
    next: Option<String>,
}

/// `POST /login`: check the key; on success keep it in an HttpOnly, SameSite=Strict cookie.
async fn login(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> PageResult {
    same_origin(&headers)?;
    let next = local_next(form.next.as_deref());
    let hash = crate::auth::hash_secret(&form.key);
    match state
        .store
        .key_authenticate(&hash, rvbbit_core::Timestamp::now())
        .await?
    {
        Some(_) => {
            let cookie = format!(
                "{}={}; HttpOnly; SameSite=Strict; Path=/; Max-Age=2592000",
                crate::auth::COOKIE,
                form.key.trim()
            );
            Ok(([(header::SET_COOKIE, cookie)], Redirect::to(&next)).into_response())
        }
        None => Ok(
            Redirect::to(&format!("/login?failed=1&next={}", crate::auth::percent(&next))).into_response(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_compiles() {
        for name in [
            "base.html",
            "sessions.html",
            "session.html",
            "costs.html",
            "cascades.html",
            "cascade.html",
            "login.html",
            "error.html",
            "sql.html",
            "compare.html",
            "batches.html",
            "batch.html",
        ] {
            TEMPLATES.get_template(name).unwrap();
        }
    }

    #[test]
    fn only_local_paths_are_followed_after_login() {
        assert_eq!(local_next(Some("/sessions/x")), "/sessions/x");
        assert_eq!(local_next(Some("//evil.example")), "/");
        assert_eq!(local_next(Some("https://evil.example")), "/");
        assert_eq!(local_next(Some("/\\evil")), "/");
        assert_eq!(local_next(None), "/");
    }

    #[test]
    fn cross_site_form_posts_are_refused() {
        let mut h = HeaderMap::new();
        assert!(same_origin(&h).is_err(), "no Origin");
        h.insert(header::HOST, "127.0.0.1:5050".parse().unwrap());
        h.insert(header::ORIGIN, "http://127.0.0.1:5050".parse().unwrap());
        assert!(same_origin(&h).is_ok());
        h.insert(header::ORIGIN, "http://evil.example".parse().unwrap());
        assert!(same_origin(&h).is_err());
        h.insert("sec-fetch-site", "cross-site".parse().unwrap());
        assert!(same_origin(&h).is_err());
        h.insert("sec-fetch-site", "same-origin".parse().unwrap());
        assert!(same_origin(&h).is_ok());
    }
}
