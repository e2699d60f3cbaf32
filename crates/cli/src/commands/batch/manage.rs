//! `rvbbit batch list | status ID | retry ID [--failed-only]`: batches as the store records them
//! (`rvbbit_store::batches`), from any process that shares the store.
//!
//! Each `rvbbit batch` records itself when it starts (`running`) and again when it ends, with its
//! options, counts and every input's result (without outputs: those are in the output folder and the
//! sessions). `retry` runs the same cascade over the same input source again (resolved as it was, from
//! the recorded working directory), keeping only the inputs asked for, into the same output folder, as
//! a new batch that names the one it retries.

use std::collections::BTreeSet;
use std::path::PathBuf;

use rvbbit_core::codes;
use rvbbit_store::{BatchRecord, Store};
use serde_json::{Value, json};

use super::{Args, usage};
use crate::cli::Cli;
use crate::commands::storage::{block_on, fail, table};
use crate::commands::{Failure, Outcome, load_config};
use crate::output::{self, Format, Out};

/// `rvbbit batch` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Action {
    /// The latest batches, newest first.
    List {
        /// At most this many.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
    },
    /// One batch: its options, counts, cost, and the inputs that failed or were skipped.
    Status {
        /// The batch id (as `rvbbit batch` printed it, with or without `batch-`), or `last` (the newest).
        #[arg(value_name = "ID")]
        id: String,
    },
    /// The events of the batch's runs as lines (`--output json`: one event per line), oldest first.
    Logs {
        /// The batch id, or `last` (the newest).
        #[arg(value_name = "ID")]
        id: String,
        /// Keep printing new events until the batch ends.
        #[arg(short = 'f', long)]
        follow: bool,
    },
    /// Ask a running batch (in any process sharing the store) to stop: inputs not started are skipped,
    /// runs in flight are cancelled, and it ends `cancelled`.
    Cancel {
        /// The batch id, or `last` (the newest).
        #[arg(value_name = "ID")]
        id: String,
    },
    /// Run a recorded batch's inputs again as a new batch (same cascade, input source, options and
    /// output folder); completed inputs come from the result cache at $0 unless `--failed-only` leaves
    /// them out.
    Retry {
        /// The batch id, or `last` (the newest).
        #[arg(value_name = "ID")]
        id: String,
        /// Only the inputs that failed or were skipped.
        #[arg(long)]
        failed_only: bool,
    },
    /// Write an ended batch's outputs again from the store (another machine's batch, with a shared
    /// store): DIR/<input name>/output.json (error.json when it failed), with the files of
    /// `rvbbit exec` runs.
    Download {
        /// The batch id, or `last` (the newest).
        #[arg(value_name = "ID")]
        id: String,
        /// Where the outputs go.
        #[arg(long, value_name = "DIR", default_value = "outputs")]
        output_dir: PathBuf,
    },
}

pub(super) fn run(cli: &Cli, action: &Action, out: Out) -> Outcome {
    let config = load_config(cli, out)?.config;
    let store = block_on(async {
        let base = std::env::current_dir().unwrap_or_default();
        rvbbit_store::open(&config.store.url, &base).await.map_err(fail)
    })?;
    match action {
        Action::List { limit } => {
            let batches = block_on(async { store.batches(*limit).await.map_err(fail) })?;
            list(&batches, out)
        }
        Action::Status { id } => {
            let batch = read(&*store, id)?;
            status(&batch, out)
        }
        Action::Logs { id, follow } => {
            let batch = read(&*store, id)?;
            block_on(super::follow::logs(&*store, &batch.batch_id, *follow, out))
        }
        Action::Cancel { id } => {
            let batch = read(&*store, id)?;
            block_on(super::follow::cancel(&*store, &batch.batch_id, out))
        }
        Action::Download { id, output_dir } => {
            let batch = read(&*store, id)?;
            block_on(super::download(&*store, &batch, output_dir, out))
        }
        Action::Retry { id, failed_only } => {
            let batch = read(&*store, id)?;
            let args = retry_args(&batch, *failed_only)?;
            if batch.body["exec"].is_object() {
                return super::exec::retry(cli, &batch.body["exec"], args, out);
            }
            super::run(cli, &args, out)
        }
    }
}

fn read(store: &dyn Store, id: &str) -> Result<BatchRecord, Failure> {
    let mut id = id.trim_start_matches("batch-").to_owned();
    block_on(async {
        // `last`, as `rvbbit sessions show last`; `latest` too.
        if id == "last" || id == "latest" {
            match store.batches(1).await.map_err(fail)?.into_iter().next() {
                Some(b) => id = b.batch_id,
                None => {
                    return Err(usage(
                        codes::B_UNKNOWN,
                        "no batch is recorded in the store".into(),
                        "run one with `rvbbit batch CASCADE --inputs …`",
                    ));
                }
            }
        }
        match store.batch(&id).await {
            Ok(b) => Ok(b),
            Err(rvbbit_store::Error::NotFound { .. }) => Err(usage(
                codes::B_UNKNOWN,
                format!("no batch `{id}` in the store"),
                "list the batches with `rvbbit batch list`",
            )),
            Err(e) => Err(fail(e)),
        }
    })
}

fn list(batches: &[BatchRecord], out: Out) -> Outcome {
    match out.format {
        Format::Json => output::json(&json!({ "batches": batches }))?,
        Format::Text => {
            let rows: Vec<Vec<String>> = batches
                .iter()
                .map(|b| {
                    vec![
                        b.batch_id.clone(),
                        b.cascade_id.clone(),
                        b.status.clone(),
                        b.started_at.to_rfc3339(),
                    ]
                })
                .collect();
            output::stdout(&table(&["BATCH", "CASCADE", "STATUS", "STARTED"], &rows))?;
        }
    }
    Ok(0)
}

fn status(b: &BatchRecord, out: Out) -> Outcome {
    let body = &b.body;
    match out.format {
        Format::Json => output::json(&json!({
            "batch_id": b.batch_id, "cascade_id": b.cascade_id, "status": b.status,
            "started_at": b.started_at, "updated_at": b.updated_at, "batch": body,
        }))?,
        Format::Text => {
            let n = |k: &str| body["counts"][k].as_u64().unwrap_or(0);
            let mut text = format!(
                "batch {} ({}): {}\ncascade {}\ninputs {}\n{} inputs: {} completed, {} cached, {} failed, {} skipped; cost {}\noutputs in {}\n",
                b.batch_id,
                b.cascade_id,
                b.status,
                body["cascade_file"].as_str().unwrap_or("?"),
                body["inputs"].as_str().unwrap_or("?"),
                n("total"),
                n("completed"),
                n("cached"),
                n("failed"),
                n("skipped"),
                body["cost_usd"].as_str().unwrap_or("$0"),
                body["options"]["output_dir"].as_str().unwrap_or("?"),
            );
            if let Some(of) = body["retry_of"].as_str() {
                text.push_str(&format!("retry of batch {of}\n"));
            }
            let p = &body["progress"];
            if matches!(b.status.as_str(), "running" | "cancelling") && p.is_object() {
                let n = |k: &str| p[k].as_u64().unwrap_or(0);
                text.push_str(&format!(
                    "progress: {}/{} done, {} failed, {} cached, {} so far (as of {})\n",
                    n("done"),
                    n("total"),
                    n("failed"),
                    n("cached"),
                    p["cost_usd"].as_str().unwrap_or("$0"),
                    b.updated_at.to_rfc3339()
                ));
            }
            let bad: Vec<Vec<String>> = not_ok(body)
                .map(|r| {
                    let s = |k: &str| r[k].as_str().unwrap_or("").to_owned();
                    vec![s("name"), s("status"), s("code"), s("message")]
                })
                .collect();
            if !bad.is_empty() {
                text.push_str(&table(&["INPUT", "STATUS", "CODE", "ERROR"], &bad));
            }
            output::stdout(&text)?;
        }
    }
    Ok(0)
}

/// The recorded results of inputs that failed or were skipped.
fn not_ok(body: &Value) -> impl Iterator<Item = &Value> {
    body["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| matches!(r["status"].as_str(), Some("failed" | "skipped")))
}

/// The arguments of the batch `b` recorded, for a retry (of the failed inputs only, or of all).
fn retry_args(b: &BatchRecord, failed_only: bool) -> Result<Args, Failure> {
    let body = &b.body;
    if matches!(b.status.as_str(), "running" | "cancelling") {
        return Err(usage(
            codes::B_UNKNOWN,
            format!(
                "batch {} is still running (or was killed before it ended)",
                b.batch_id
            ),
            "wait for it to end; a batch killed outright stays `running`: start it again with `rvbbit batch`",
        ));
    }
    let text = |v: &Value| v.as_str().map(str::to_owned);
    let (Some(cascade), Some(inputs)) = (text(&body["cascade_file"]), text(&body["inputs"])) else {
        return Err(usage(
            codes::B_UNKNOWN,
            format!("batch {} has no record of its cascade or inputs", b.batch_id),
            "run it again with `rvbbit batch CASCADE --inputs …`",
        ));
    };
    // A relative input source is read from where the batch ran, so that each input (its `path`
    // included) and its cache key are what they were.
    let cwd = body["cwd"].as_str().map(PathBuf::from);
    let here = std::env::current_dir().unwrap_or_default();
    if std::path::Path::new(&inputs).is_relative() && cwd.as_ref().is_some_and(|c| *c != here) {
        return Err(usage(
            codes::B_UNKNOWN,
            format!(
                "batch {} read its inputs `{inputs}` relative to {}, not this directory",
                b.batch_id,
                cwd.as_ref().map_or_else(String::new, |c| c.display().to_string())
            ),
            "run `rvbbit batch retry` from that directory (with the same store)",
        ));
    }
    let only: Option<BTreeSet<String>> = failed_only.then(|| {
        not_ok(body)
            .filter_map(|r| r["name"].as_str().map(str::to_owned))
            .collect()
    });
    if only.as_ref().is_some_and(BTreeSet::is_empty) {
        return Err(usage(
            codes::B_NO_INPUTS,
            format!("batch {} has no failed or skipped input to retry", b.batch_id),
            "drop `--failed-only` to run every input again",
        ));
    }
    let o = &body["options"];
    Ok(Args {
        cascade: Some(PathBuf::from(cascade)),
        inputs: Some(inputs),
        parallel: o["parallel"].as_u64().and_then(|p| u32::try_from(p).ok()),
        output_dir: text(&o["output_dir"]).map_or_else(|| PathBuf::from("outputs"), PathBuf::from),
        flat: o["flat"].as_bool().unwrap_or(false),
        meta: o["meta"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default(),
        budget_dollars: text(&o["budget_dollars"]),
        model: text(&o["model"]),
        no_cache: o["no_cache"].as_bool().unwrap_or(false),
        refresh: false,
        sandbox: serde_json::from_value(o["sandbox"].clone()).unwrap_or_default(),
        action: None,
        only,
        retry_of: Some(b.batch_id.clone()),
        local: o["local"].as_bool().unwrap_or(false),
        exec: None,
    })
}
