//! Cascades under the configured roots: list, get with diagnostics, validate posted text.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use rvbbit_cascade::validate::{Options, Report, validate_loaded};
use rvbbit_cascade::{Catalog, DiagnosticJson, Severity, load_file_with, load_str_with};
use rvbbit_core::codes;
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::Body;
use crate::error::{ApiError, ApiResult};
use crate::paths::{resolve_under, scrub};
use crate::state::AppState;

/// Most files a listing looks at, and how deep it goes.
const MAX_FILES: usize = 5000;
const MAX_DEPTH: usize = 12;

fn is_cascade_file(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
}

/// Every candidate file under `root` (no hidden directories, `target`, `node_modules`; symbolic links
/// are not followed).
fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![(root.to_path_buf(), 0usize)];
    while let Some((dir, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut entries: Vec<_> = entries.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(kind) = entry.file_type() else { continue };
            if kind.is_dir() {
                if depth < MAX_DEPTH && !name.starts_with('.') && name != "target" && name != "node_modules" {
                    stack.push((entry.path(), depth + 1));
                }
            } else if kind.is_file() && is_cascade_file(&entry.path()) {
                out.push(entry.path());
                if out.len() >= MAX_FILES {
                    return out;
                }
            }
        }
    }
    out.sort();
    out
}

fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .map(|p| {
            p.components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/")
        })
        .unwrap_or_default()
}

/// `GET /api/v1/cascades`
pub(crate) async fn list(State(state): State<Arc<AppState>>) -> ApiResult<Json<Value>> {
    let roots = state.config.roots.clone();
    let limits = state.engine.limits().clone();
    let cascades = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        for root in &roots {
            let Ok(root) = root.canonicalize() else {
                continue;
            };
            for file in walk(&root) {
                let loaded = load_file_with(&file, &limits);
                let Some(cascade) = loaded.document.as_ref().and_then(|d| d.cascade()) else {
                    continue;
                };
                out.push(json!({
                    "path": relative(&root, &file),
                    "cascade_id": cascade.cascade_id,
                    "description": cascade.description,
                    "cells": cascade.cells.len(),
                    "inputs": cascade.inputs_schema.as_ref().map(|s| s.keys().cloned().collect::<Vec<_>>()),
                    "load_errors": loaded.has_errors(),
                }));
            }
        }
        out
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(Json(json!({"cascades": cascades})))
}

/// Validate a loaded file with the engine's tools and the configured roots.
pub(crate) fn check(state: &AppState, loaded: rvbbit_cascade::Loaded) -> Report {
    let mut catalog = Catalog::builtin();
    state.engine.registry().fill_catalog(&mut catalog);
    let options = Options {
        strict: false,
        roots: state.config.roots.clone(),
    };
    validate_loaded(loaded, &mut catalog, &options)
}

/// Diagnostics as JSON, naming the file as the client knows it and no server path.
pub(crate) fn diagnostics(state: &AppState, report: &Report, shown: &str) -> Vec<Value> {
    let source = report.loaded.source.as_ref();
    report
        .diagnostics()
        .iter()
        .map(|d| {
            let mut j: DiagnosticJson = d.to_json(Path::new(shown), source);
            j.message = scrub(&j.message, &state.config.roots);
            j.hint = j.hint.map(|h| scrub(&h, &state.config.roots));
            serde_json::to_value(j).unwrap_or(Value::Null)
        })
        .collect()
}

fn counts(report: &Report) -> (usize, usize) {
    let d = report.diagnostics();
    (
        d.iter().filter(|d| d.severity == Severity::Error).count(),
        d.iter().filter(|d| d.severity == Severity::Warning).count(),
    )
}

/// `GET /api/v1/cascades/{path}`: source and diagnostics.
pub(crate) async fn get(
    State(state): State<Arc<AppState>>,
    UrlPath(path): UrlPath<String>,
) -> ApiResult<Json<Value>> {
    let file = resolve_under(&state.config.roots, &path)?;
    let st = state.clone();
    let body = tokio::task::spawn_blocking(move || {
        let report = check(&st, load_file_with(&file.path, st.engine.limits()));
        let (errors, warnings) = counts(&report);
        let cascade = report.loaded.document.as_ref().and_then(|d| d.cascade());
        json!({
            "path": file.relative,
            "cascade_id": cascade.map(|c| c.cascade_id.clone()),
            "description": cascade.and_then(|c| c.description.clone()),
            "inputs_schema": cascade.and_then(|c| c.inputs_schema.clone()),
            "source": report.loaded.source.as_ref().map(|s| s.text().to_owned()),
            "errors": errors,
            "warnings": warnings,
            "diagnostics": diagnostics(&st, &report, &file.relative),
        })
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(Json(body))
}

#[derive(Debug, Deserialize)]
pub(crate) struct ValidateBody {
    /// The cascade text (YAML or JSON).
    text: String,
    /// A file name for messages and the format (`.json` is checked as strict JSON).
    #[serde(default)]
    filename: Option<String>,
}

/// `POST /api/v1/cascades/validate`: diagnostics of posted text. References (`@file`, sub-cascades)
/// resolve as if the file sat at the top of the first root, with the same containment checks.
pub(crate) async fn validate(
    State(state): State<Arc<AppState>>,
    Body(body): Body<ValidateBody>,
) -> ApiResult<Json<Value>> {
    let name = body.filename.unwrap_or_else(|| "posted.yaml".to_owned());
    let name = Path::new(&name)
        .file_name()
        .map_or_else(|| "posted.yaml".to_owned(), |n| n.to_string_lossy().into_owned());
    let base = state
        .config
        .roots
        .first()
        .and_then(|r| r.canonicalize().ok())
        .unwrap_or_else(|| std::env::temp_dir().join("rvbbit-no-root"));
    let st = state.clone();
    let result = tokio::task::spawn_blocking(move || {
        let report = check(
            &st,
            load_str_with(&base.join(&name), &body.text, st.engine.limits()),
        );
        // A file over a `limits.yaml_*` budget was refused before it was read: a bad request (400),
        // not an invalid cascade.
        if let Some(d) = report
            .diagnostics()
            .iter()
            .find(|d| d.code.code == codes::V_TOO_LARGE.code)
        {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                codes::V_TOO_LARGE,
                d.message.clone(),
                d.hint.clone().unwrap_or_default(),
            )
            .with_diagnostics(diagnostics(&st, &report, &name)));
        }
        let (errors, warnings) = counts(&report);
        Ok(json!({
            "valid": errors == 0,
            "errors": errors,
            "warnings": warnings,
            "diagnostics": diagnostics(&st, &report, &name),
        }))
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(Json(result))
}
