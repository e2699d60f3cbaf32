//! `POST /api/v1/sql`: a statement through the SQL door (rvbbit-sql) under an `http-…` caller id, and
//! `GET /api/v1/sql/tables`: what a session can query.
//!
//! A request without `session_id` opens a new SQL session and returns its id; passing that id back runs
//! the next statement in the same session (its tables and `SET`s). Sessions expire after
//! [`SESSION_IDLE`] without use; at most [`MAX_SESSIONS`] are kept (the least recently used idle one
//! goes first). Statements of one session run one at a time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use rvbbit_core::{Origin, codes};
use rvbbit_sql::{QueryResult, SqlRuntime, SqlSession};
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::{Body, Params};
use crate::error::{ApiError, ApiResult};
use crate::paths::scrub;
use crate::state::AppState;

/// How long an unused SQL session is kept.
pub(crate) const SESSION_IDLE: Duration = Duration::from_secs(15 * 60);
/// Most SQL sessions kept at once.
pub(crate) const MAX_SESSIONS: usize = 64;

/// The SQL sessions of the HTTP API.
#[derive(Default)]
pub(crate) struct SqlSessions {
    open: Mutex<HashMap<String, Entry>>,
}

struct Entry {
    session: Arc<tokio::sync::Mutex<SqlSession>>,
    last_used: Instant,
}

impl std::fmt::Debug for SqlSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlSessions").finish_non_exhaustive()
    }
}

impl SqlSessions {
    /// The session `id`, or a new one when `id` is None.
    fn get_or_open(
        &self,
        runtime: &SqlRuntime,
        id: Option<&str>,
    ) -> ApiResult<(String, Arc<tokio::sync::Mutex<SqlSession>>)> {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        open.retain(|_, e| now.duration_since(e.last_used) < SESSION_IDLE);
        if let Some(id) = id {
            return match open.get_mut(id) {
                Some(e) => {
                    e.last_used = now;
                    Ok((id.to_owned(), e.session.clone()))
                }
                None => Err(ApiError::not_found(
                    format!("no SQL session `{id}` (sessions expire after 15 minutes without use)"),
                    "omit `session_id` to open a new session; its id comes back in the response",
                )),
            };
        }
        if open.len() >= MAX_SESSIONS {
            // Drop the least recently used session nobody is using right now.
            let idle = open
                .iter()
                .filter(|(_, e)| e.session.try_lock().is_ok())
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| k.clone());
            match idle {
                Some(k) => {
                    open.remove(&k);
                }
                None => {
                    return Err(ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        codes::A_BAD_REQUEST,
                        format!("all {MAX_SESSIONS} SQL sessions are busy"),
                        "retry when a statement has finished, or reuse a session with `session_id`",
                    ));
                }
            }
        }
        let id = format!("sql_{}", hex::encode(rand::random::<[u8; 8]>()));
        let session = Arc::new(tokio::sync::Mutex::new(runtime.session_for(Origin::Http, "http")));
        open.insert(
            id.clone(),
            Entry {
                session: session.clone(),
                last_used: now,
            },
        );
        Ok((id, session))
    }
}

/// How the rows come back.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RowFormat {
    /// `data` is an array of objects (the default).
    #[default]
    Records,
    /// `data` is an array of arrays in column order.
    Json,
    /// A CSV body (`text/csv`, as an attachment).
    Csv,
    /// One JSON object per line (`application/x-ndjson`).
    Ndjson,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SqlBody {
    query: Option<String>,
    #[serde(default)]
    session_id: Option<String>,
    #[serde(default)]
    format: RowFormat,
}

/// The outcome of one statement, for the API and the Studio console.
#[derive(Debug)]
pub(crate) enum Executed {
    /// The statement ran.
    Done(Box<QueryResult>),
    /// It failed: the error as the client sees it.
    Failed(SqlFailure),
}

/// A failed statement as a client sees it.
#[derive(Debug, Clone)]
pub(crate) struct SqlFailure {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
    pub(crate) hint: String,
    /// 1-based line and column of the error in the query, when the parser gave one.
    pub(crate) position: Option<(u64, u64)>,
}

/// Line and column from a parser message ending in `at Line: 3, Column: 14`.
pub(crate) fn position(message: &str) -> Option<(u64, u64)> {
    let at = message.rfind("Line: ")?;
    let rest = &message[at + "Line: ".len()..];
    let (line, rest) = rest.split_once(',')?;
    let column = rest.trim_start().strip_prefix("Column: ")?;
    let column: String = column.chars().take_while(char::is_ascii_digit).collect();
    Some((line.trim().parse().ok()?, column.parse().ok()?))
}

/// Run `query` in the session `session_id` (a new one when None).
pub(crate) async fn execute(
    state: &Arc<AppState>,
    query: &str,
    session_id: Option<&str>,
) -> ApiResult<(String, Executed)> {
    let Some(runtime) = &state.sql else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            codes::A_NOT_FOUND,
            "this server has no SQL door",
            "start the server with `rvbbit serve`, which opens one over its store",
        ));
    };
    let (id, session) = state.sql_sessions.get_or_open(runtime, session_id)?;
    let query = query.to_owned();
    // The statement runs in the server's task tracker: a client that disconnects does not abandon the
    // runs it started, and shutdown waits for it like for any run.
    let task = state.tasks.spawn(async move {
        let session = session.lock().await;
        session.execute(&query).await
    });
    let result = task
        .await
        .map_err(|e| ApiError::internal(format!("SQL statement task failed: {e}")))?;
    Ok(match result {
        Ok(r) => (id, Executed::Done(Box::new(r))),
        Err(e) => {
            let message = scrub(&e.to_string(), &state.config.roots);
            let status = match e {
                rvbbit_sql::Error::Invalid { .. }
                | rvbbit_sql::Error::Argument { .. }
                | rvbbit_sql::Error::Refused { .. }
                | rvbbit_sql::Error::Limit { .. }
                | rvbbit_sql::Error::Annotation { .. }
                | rvbbit_sql::Error::StatementOption { .. }
                | rvbbit_sql::Error::StagePosition { .. } => StatusCode::BAD_REQUEST,
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            };
            (
                id,
                Executed::Failed(SqlFailure {
                    status,
                    code: e.code().code,
                    position: position(&message),
                    message,
                    hint: e.hint(),
                }),
            )
        }
    })
}

/// The columns of a result as `[{name, type}]`.
pub(crate) fn columns(result: &QueryResult) -> Vec<Value> {
    result
        .columns()
        .into_iter()
        .map(|(name, ty)| json!({"name": name, "type": ty}))
        .collect()
}

/// `POST /api/v1/sql`.
pub(crate) async fn sql(
    State(state): State<Arc<AppState>>,
    Body(body): Body<SqlBody>,
) -> ApiResult<Response> {
    let query = body.query.as_deref().map(str::trim).unwrap_or_default();
    if query.is_empty() {
        return Err(ApiError::bad_request(
            "no query provided",
            "send `{\"query\": \"SELECT 1\"}`; add `session_id` to continue a session",
        ));
    }
    let (session_id, executed) = execute(&state, query, body.session_id.as_deref()).await?;
    let result = match executed {
        Executed::Done(r) => r,
        Executed::Failed(f) => {
            let error_id = crate::error::new_error_id();
            tracing::info!(%error_id, code = f.code, message = %f.message, "SQL statement failed");
            let body = json!({
                "success": false,
                "error_id": error_id,
                "code": f.code,
                "error": f.message,
                "message": f.message,
                "hint": f.hint,
                "position": f.position.map(|(line, column)| json!({"line": line, "column": column})),
                "session_id": session_id,
            });
            return Ok((f.status, Json(body)).into_response());
        }
    };
    let rows = result
        .to_json_rows()
        .map_err(|e| ApiError::internal(format!("rows not convertible to JSON: {e}")))?;
    let names: Vec<String> = result.columns().into_iter().map(|(n, _)| n).collect();
    match body.format {
        RowFormat::Csv => {
            let csv = result
                .to_csv()
                .map_err(|e| ApiError::internal(format!("rows not convertible to CSV: {e}")))?;
            return Ok((
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                    (
                        header::CONTENT_DISPOSITION,
                        "attachment; filename=\"result.csv\"".to_owned(),
                    ),
                    (header::HeaderName::from_static("x-rvbbit-session-id"), session_id),
                    (
                        header::HeaderName::from_static("x-rvbbit-caller-id"),
                        result.caller_id.to_string(),
                    ),
                ],
                csv,
            )
                .into_response());
        }
        RowFormat::Ndjson => {
            let mut text = String::new();
            for row in &rows {
                text.push_str(&row.to_string());
                text.push('\n');
            }
            return Ok((
                [
                    (header::CONTENT_TYPE, "application/x-ndjson".to_owned()),
                    (header::HeaderName::from_static("x-rvbbit-session-id"), session_id),
                    (
                        header::HeaderName::from_static("x-rvbbit-caller-id"),
                        result.caller_id.to_string(),
                    ),
                ],
                text,
            )
                .into_response());
        }
        RowFormat::Records | RowFormat::Json => {}
    }
    let data: Vec<Value> = if body.format == RowFormat::Json {
        rows.iter()
            .map(|row| {
                Value::Array(
                    names
                        .iter()
                        .map(|n| row.get(n).cloned().unwrap_or(Value::Null))
                        .collect(),
                )
            })
            .collect()
    } else {
        rows
    };
    let stats = &result.stats;
    Ok(Json(json!({
        "success": true,
        "columns": names,
        "column_types": columns(&result),
        "data": data,
        "row_count": result.row_count(),
        "session_id": session_id,
        "caller_id": result.caller_id.to_string(),
        "execution_time_ms": result.duration.as_secs_f64() * 1000.0,
        "stats": {
            "runs": stats.runs,
            "llm_calls": stats.llm_calls,
            "cache_hits": stats.cache_hits,
            "errors": stats.errors,
            "skipped": stats.skipped,
            "cost_micro_usd": stats.cost.micros(),
            "cost_usd": stats.cost.to_decimal_string(),
            "avoided_cost_micro_usd": stats.avoided_cost.micros(),
        },
        "notices": result.notices,
    }))
    .into_response())
}

#[derive(Debug, Deserialize)]
pub(crate) struct TablesQuery {
    #[serde(default)]
    session_id: Option<String>,
}

/// `GET /api/v1/sql/tables[?session_id=…]`: the tables and their columns.
pub(crate) async fn tables(
    State(state): State<Arc<AppState>>,
    Params(q): Params<TablesQuery>,
) -> ApiResult<Json<Value>> {
    let query = "SELECT table_schema, table_name, column_name, data_type FROM information_schema.columns \
                 WHERE table_schema <> 'information_schema' ORDER BY table_schema, table_name, ordinal_position";
    let (session_id, executed) = execute(&state, query, q.session_id.as_deref()).await?;
    let result = match executed {
        Executed::Done(r) => r,
        Executed::Failed(f) => return Err(ApiError::internal(f.message)),
    };
    let rows = result
        .to_json_rows()
        .map_err(|e| ApiError::internal(format!("catalog rows not convertible to JSON: {e}")))?;
    let mut tables: Vec<Value> = Vec::new();
    for row in rows {
        let name = row["table_name"].as_str().unwrap_or_default().to_owned();
        let column = json!({"name": row["column_name"], "type": row["data_type"]});
        match tables.last_mut() {
            Some(t) if t["name"] == name.as_str() && t["schema"] == row["table_schema"] => {
                if let Some(cols) = t["columns"].as_array_mut() {
                    cols.push(column);
                }
            }
            _ => tables.push(json!({"schema": row["table_schema"], "name": name, "columns": [column]})),
        }
    }
    Ok(Json(json!({"session_id": session_id, "tables": tables})))
}

#[cfg(test)]
mod tests {
    use super::position;

    #[test]
    fn positions_come_from_parser_messages() {
        assert_eq!(
            position("Expected: end of statement, found: FORM at Line: 1, Column: 10"),
            Some((1, 10))
        );
        assert_eq!(position("at Line: 3, Column: 14)"), Some((3, 14)));
        assert_eq!(position("table 'x' not found"), None);
    }
}
