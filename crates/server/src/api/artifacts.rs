//! A session's artifacts (`create_artifact` and the chart tools): `GET /api/v1/sessions/{id}/artifacts`
//! lists them without their bodies; `GET /api/v1/sessions/{id}/artifacts/{artifact_id}` serves one's
//! body and `…/{artifact_id}/svg` a chart's drawing. The Studio serves the same two under
//! `/sessions/{id}/artifacts/…` (its own sign-in), and frames or shows them on the session page.
//!
//! A body is whatever a cascade (or a model) wrote, so it is served as an untrusted document: a
//! `sandbox` Content-Security-Policy (no script, an opaque origin, nothing fetched but inline styles and
//! `data:` images), `nosniff`, and framable only by the server's own pages.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use rvbbit_store::published::{Published, is_artifact_id, published};
use serde_json::{Value, json};

use super::session_id;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The policy every artifact body is served with.
const UNTRUSTED: &str =
    "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'";

/// What a list shows of an artifact: everything but the body and the drawing, and where to get them.
pub(crate) fn summary(session: &str, a: &Published, base: &str) -> Value {
    let mut c = a.content.clone();
    if let Some(obj) = c.as_object_mut() {
        let drawn = obj.remove("svg").is_some();
        obj.remove("body");
        let id = a.id().unwrap_or_default();
        let mut links = json!({"body": format!("{base}/sessions/{session}/artifacts/{id}")});
        if drawn {
            links["svg"] = json!(format!("{base}/sessions/{session}/artifacts/{id}/svg"));
        }
        obj.insert("links".into(), links);
        obj.insert("cell_name".into(), json!(a.cell));
        obj.insert("created_at".into(), json!(a.at));
    }
    c
}

/// `GET /api/v1/sessions/{id}/artifacts`: `{session_id, artifacts: [...]}`, oldest first.
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<Json<Value>> {
    let id = session_id(&id)?;
    state.store.session(&id).await?;
    let found = published(state.store.as_ref(), &id).await?;
    let list: Vec<Value> = found.iter().map(|a| summary(id.as_str(), a, "/api/v1")).collect();
    Ok(Json(json!({"session_id": id.as_str(), "artifacts": list})))
}

/// The artifact `artifact` of session `id`, or a 404 naming what is missing.
pub(crate) async fn find(state: &AppState, id: &str, artifact: &str) -> ApiResult<Published> {
    let sid = session_id(id)?;
    if !is_artifact_id(artifact) {
        return Err(ApiError::bad_request(
            format!(
                "`{}` is not an artifact id",
                artifact.chars().take(40).collect::<String>()
            ),
            "artifact ids look like `art_0123456789abcdef`; list them with GET /api/v1/sessions/{id}/artifacts",
        ));
    }
    state.store.session(&sid).await?;
    published(state.store.as_ref(), &sid)
        .await?
        .into_iter()
        .find(|a| a.id() == Some(artifact))
        .ok_or_else(|| {
            ApiError::not_found(
                format!("session {id} has no artifact {artifact}"),
                format!("list them with GET /api/v1/sessions/{id}/artifacts"),
            )
        })
}

/// Serve `text` as an untrusted document of type `content_type`.
fn untrusted(content_type: &str, text: String) -> Response {
    let mut r = text.into_response();
    let headers = r.headers_mut();
    let kind =
        HeaderValue::from_str(content_type).unwrap_or(HeaderValue::from_static("text/plain; charset=utf-8"));
    headers.insert(header::CONTENT_TYPE, kind);
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(UNTRUSTED),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// One artifact's body, or (`svg`) its drawing.
pub(crate) async fn serve(state: &AppState, id: &str, artifact: &str, svg: bool) -> ApiResult<Response> {
    let a = find(state, id, artifact).await?;
    if svg {
        return match a.content.get("svg").and_then(Value::as_str) {
            Some(drawing) => Ok(untrusted("image/svg+xml", drawing.to_owned())),
            None => Err(ApiError::not_found(
                format!("artifact {artifact} has no drawing"),
                a.content
                    .get("not_rendered_because")
                    .and_then(Value::as_str)
                    .map_or_else(
                        || "only charts have one".to_owned(),
                        |why| format!("it was not drawn: {why}"),
                    ),
            )),
        };
    }
    let content_type = match a.text("content_type") {
        "" => "text/plain; charset=utf-8",
        t => t,
    };
    Ok(untrusted(content_type, a.text("body").to_owned()))
}

/// `GET /api/v1/sessions/{id}/artifacts/{artifact_id}`.
pub(crate) async fn body(
    State(state): State<Arc<AppState>>,
    UrlPath((id, artifact)): UrlPath<(String, String)>,
) -> ApiResult<Response> {
    serve(&state, &id, &artifact, false).await
}

/// `GET /api/v1/sessions/{id}/artifacts/{artifact_id}/svg`.
pub(crate) async fn drawing(
    State(state): State<Arc<AppState>>,
    UrlPath((id, artifact)): UrlPath<(String, String)>,
) -> ApiResult<Response> {
    serve(&state, &id, &artifact, true).await
}
