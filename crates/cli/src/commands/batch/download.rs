//! `rvbbit batch download ID [--output-dir DIR]`: an ended batch's outputs written again from the store,
//! for a batch that ran on another machine sharing the store, or whose output folder is gone. Each
//! completed or cached input's output is its session's output (with the files of an `rvbbit exec`
//! run); a failed input gets its `error.json` from the record.

use std::path::Path;

use rvbbit_core::{SessionId, codes};
use rvbbit_store::{BatchRecord, Store};
use serde_json::json;

use super::{base, inputs::safe_name, report, usage};
use crate::commands::storage::fail;
use crate::commands::{Coded, Outcome};
use crate::output::{self, Format, Out};

pub(super) async fn download(store: &dyn Store, b: &BatchRecord, dir: &Path, out: Out) -> Outcome {
    if matches!(b.status.as_str(), "running" | "cancelling") {
        return Err(usage(
            codes::B_UNKNOWN,
            format!("batch {} is still running", b.batch_id),
            "wait for it to end (`rvbbit batch logs ID -f` follows it), then download it",
        ));
    }
    let Some(results) = b.body["results"].as_array() else {
        return Err(usage(
            codes::B_UNKNOWN,
            format!("batch {} has no record of its inputs' results", b.batch_id),
            "it ended before recording them (killed?): run it again with `rvbbit batch retry ID`",
        ));
    };
    let outputs = report::Outputs::new(dir, false)?.with_files(b.body["exec"].is_object());
    let (mut written, mut errors) = (0usize, 0usize);
    let mut missing: Vec<String> = Vec::new();
    for r in results {
        let text = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
        let name = text("name");
        // The record comes from a store others write: a name that is not a safe folder name is refused.
        if name.is_empty() || safe_name(&name) != name {
            missing.push(format!("{name:?}: not a safe folder name"));
            continue;
        }
        let status = match r["status"].as_str() {
            Some("completed") => "completed",
            Some("cached") => "cached",
            Some("failed") => "failed",
            _ => continue,
        };
        let mut d = base(&name, &text("source"), status);
        d.session_id = r["session_id"].as_str().map(str::to_owned);
        if status == "failed" {
            d.code = r["code"].as_str().and_then(codes::lookup).map(|c| c.code);
            d.message = r["message"].as_str().map(str::to_owned);
        } else {
            let Some(id) = d.session_id.as_deref().and_then(|s| s.parse::<SessionId>().ok()) else {
                missing.push(format!("{name}: no session recorded"));
                continue;
            };
            match store.session(&id).await {
                Ok(s) if s.output.is_some() => d.output = s.output,
                Ok(_) => {
                    missing.push(format!("{name}: session {id} has no output"));
                    continue;
                }
                Err(rvbbit_store::Error::NotFound { .. }) => {
                    missing.push(format!("{name}: session {id} is not in the store (pruned?)"));
                    continue;
                }
                Err(e) => return Err(fail(e)),
            }
        }
        match outputs.write(&d) {
            Ok(()) if status == "failed" => errors += 1,
            Ok(()) => written += 1,
            Err(e) => missing.push(format!("{name}: {e}")),
        }
    }
    match out.format {
        Format::Json => output::json(&json!({
            "batch_id": b.batch_id, "output_dir": dir, "outputs": written, "errors": errors,
            "missing": missing,
        }))?,
        Format::Text => output::stdout(&format!(
            "batch {}: {written} output(s) and {errors} error file(s) written to {}\n",
            b.batch_id,
            dir.display()
        ))?,
    }
    if missing.is_empty() {
        return Ok(0);
    }
    let coded = Coded {
        code: codes::B_UNKNOWN,
        message: format!(
            "{} input(s) of batch {} could not be downloaded: {}",
            missing.len(),
            b.batch_id,
            missing.iter().take(10).cloned().collect::<Vec<_>>().join("; ")
        ),
        hint: "run those inputs again with `rvbbit batch retry ID --failed-only` or a new batch; pruned sessions cannot come back".into(),
        causes: Vec::new(),
    };
    if out.format == Format::Text {
        crate::commands::report_coded(&coded, out);
    }
    Ok(coded.code.exit_code())
}
