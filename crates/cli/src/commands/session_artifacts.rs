//! `rvbbit sessions artifacts ID [--save DIR]`: the artifacts a session published (`create_artifact`,
//! the chart tools), listed, or written to files named by their ids.

use std::path::Path;

use rvbbit_core::{SessionId, codes};
use rvbbit_store::Store;
use rvbbit_store::published::{Published, published};
use serde_json::{Value, json};

use super::storage::{fail, short_time, table};
use super::{Coded, Failure};
use crate::output::{self, Format, Out};

/// The file name extension of an artifact's body.
fn extension(content_type: &str) -> &'static str {
    match content_type.split(';').next().unwrap_or_default().trim() {
        "text/html" => "html",
        "text/markdown" => "md",
        "text/plain" => "txt",
        _ => "json",
    }
}

/// Write each artifact's body (and a chart's drawing as `.svg`) into `dir`; returns the paths written.
/// Names are the artifact ids (`art_` and 16 hex digits, checked), so nothing can leave `dir`.
fn save(dir: &Path, found: &[Published]) -> Result<Vec<String>, Failure> {
    let failed = |what: &Path, e: std::io::Error| {
        Failure::Coded(Coded {
            code: codes::S_OUTPUT,
            message: format!("cannot write {}: {e}", what.display()),
            hint: "choose a directory you can write to with --save".into(),
            causes: Vec::new(),
        })
    };
    std::fs::create_dir_all(dir).map_err(|e| failed(dir, e))?;
    let mut written = Vec::new();
    for f in found {
        let Some(id) = f.id() else {
            continue;
        };
        let ext = extension(f.content["content_type"].as_str().unwrap_or_default());
        let mut files = vec![(
            format!("{id}.{ext}"),
            f.content["body"].as_str().unwrap_or_default(),
        )];
        if let Some(svg) = f.content["svg"].as_str() {
            files.push((format!("{id}.svg"), svg));
        }
        for (name, text) in files {
            let path = dir.join(&name);
            std::fs::write(&path, text).map_err(|e| failed(&path, e))?;
            written.push(path.display().to_string());
        }
    }
    Ok(written)
}

/// Print (or save) the artifacts of session `id`.
pub(crate) async fn show(
    store: &dyn Store,
    id: &SessionId,
    save_to: Option<&Path>,
    out: Out,
) -> Result<(), Failure> {
    // An unknown session is an error (RVB-S005), not an empty list.
    store.session(id).await.map_err(fail)?;
    let found = published(store, id).await.map_err(fail)?;
    let written = match save_to {
        Some(dir) => save(dir, &found)?,
        None => Vec::new(),
    };
    match out.format {
        Format::Json => {
            let list: Vec<Value> = found
                .iter()
                .map(|f| {
                    let mut c = f.content.clone();
                    if save_to.is_some()
                        || c.get("body")
                            .is_some_and(|b| b.as_str().is_some_and(|b| b.len() > 4096))
                    {
                        // Saved, or large: the list says where and how big, not the whole body.
                        if let Some(obj) = c.as_object_mut() {
                            obj.remove("body");
                            obj.remove("svg");
                        }
                    }
                    c["cell_name"] = json!(f.cell);
                    c["ts_us"] = json!(f.at.micros());
                    c
                })
                .collect();
            output::json(
                &json!({"status": "ok", "session_id": id.as_str(), "artifacts": list, "saved": written}),
            )?;
        }
        Format::Text => {
            let rows: Vec<Vec<String>> = found
                .iter()
                .map(|f| {
                    let c = &f.content;
                    let s = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
                    let rendered = match c.get("rendered").and_then(Value::as_bool) {
                        Some(true) => "svg".to_owned(),
                        Some(false) => "not drawn".to_owned(),
                        None => "-".to_owned(),
                    };
                    vec![
                        s("artifact_id"),
                        s("kind"),
                        s("title"),
                        f.cell.clone(),
                        c["bytes"].to_string(),
                        rendered,
                        short_time(f.at),
                    ]
                })
                .collect();
            output::stdout(&table(
                &[
                    "ARTIFACT",
                    "KIND",
                    "TITLE",
                    "CELL",
                    "BYTES",
                    "DRAWING",
                    "CREATED (UTC)",
                ],
                &rows,
            ))?;
            if !out.quiet {
                for path in &written {
                    output::stderr(&format!("wrote {path}\n"));
                }
            }
        }
    }
    Ok(())
}
