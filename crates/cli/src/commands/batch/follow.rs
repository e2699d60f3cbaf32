//! `rvbbit batch logs ID [-f]` and `rvbbit batch cancel ID`: a batch's events as lines (from the shared
//! store, by its caller id), and a cancel request that the running batch process picks up.
//!
//! A cancel is compare-and-set in the store (`running` → `cancelling`); the process running the batch
//! looks at its record every [`CANCEL_POLL`], and on `cancelling` stops as it does on Ctrl-C: inputs
//! not started are skipped, runs in flight are cancelled, and the batch ends `cancelled`.

use std::sync::Arc;
use std::time::Duration;

use rvbbit_core::{EventKind, codes};
use rvbbit_engine::CancellationToken;
use rvbbit_store::{EventFilter, Store};
use serde_json::{Value, json};

use super::usage;
use crate::commands::storage::fail;
use crate::commands::{Failure, Outcome};
use crate::output::{self, Format, Out};

/// How often a running batch looks for a cancel request, and `logs -f` for new events.
pub(super) const CANCEL_POLL: Duration = Duration::from_millis(500);
/// Events read per round trip.
const PAGE: u64 = 1000;

/// `batch cancel`: ask the running batch to stop.
pub(super) async fn cancel(store: &dyn Store, id: &str, out: Out) -> Outcome {
    match store.batch_cancel(id).await {
        Ok(true) => {}
        Ok(false) => {
            let b = store.batch(id).await.map_err(fail)?;
            return Err(usage(
                codes::B_UNKNOWN,
                format!("batch {id} is {}, not running: nothing to cancel", b.status),
                "see it with `rvbbit batch status ID`",
            ));
        }
        Err(e) => return Err(fail(e)),
    }
    match out.format {
        Format::Json => output::json(&json!({"batch_id": id, "status": "cancelling"}))?,
        Format::Text => output::stdout(&format!(
            "batch {id}: cancel requested; the process running it stops within a second\n"
        ))?,
    }
    Ok(0)
}

/// Cancel `token` once the batch's record says `cancelling`; ends when `stop` is cancelled.
pub(super) fn watch_cancel(
    store: Arc<dyn Store>,
    id: String,
    token: CancellationToken,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<bool> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = stop.cancelled() => return false,
                () = tokio::time::sleep(CANCEL_POLL) => {}
            }
            match store.batch(&id).await {
                Ok(b) if b.status == "cancelling" => {
                    token.cancel();
                    return true;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, batch = %id, "Looking for a cancel request failed."),
            }
        }
    })
}

/// `batch logs`: every event of the batch's sessions, oldest first; with `follow`, until it ends.
pub(super) async fn logs(store: &dyn Store, id: &str, follow: bool, out: Out) -> Outcome {
    let mut names = Names::default();
    let mut filter = EventFilter {
        caller_id: Some(format!("batch-{id}")),
        limit: Some(PAGE),
        ..EventFilter::default()
    };
    loop {
        let page = store.events(&filter).await.map_err(fail)?;
        for e in &page {
            print(&e.event, &names.of(store, &e.event).await, out)?;
        }
        if let Some(last) = page.last() {
            filter.after_seq = Some(last.store_seq);
        }
        if page.len() as u64 == PAGE {
            continue;
        }
        if !follow {
            return Ok(0);
        }
        let status = store.batch(id).await.map_err(fail)?.status;
        if !matches!(status.as_str(), "running" | "cancelling") {
            // One more page: events written just before the record's end.
            let rest = store.events(&filter).await.map_err(fail)?;
            for e in &rest {
                print(&e.event, &names.of(store, &e.event).await, out)?;
            }
            return Ok(0);
        }
        tokio::time::sleep(CANCEL_POLL).await;
    }
}

/// The input name of each session seen (in its `cascade_start` event's metadata, or its record's).
#[derive(Default)]
struct Names(std::collections::HashMap<String, String>);

impl Names {
    async fn of(&mut self, store: &dyn Store, e: &rvbbit_core::Event) -> String {
        let root = e.root_session_id.as_str();
        if let Some(name) = self.0.get(root) {
            return name.clone();
        }
        let name = match e.invocation_metadata["input"].as_str() {
            Some(n) if e.session_id == e.root_session_id => n.to_owned(),
            _ => match store.session(&e.root_session_id).await {
                Ok(s) => s.invocation_metadata["input"].as_str().unwrap_or("").to_owned(),
                Err(_) => String::new(),
            },
        };
        self.0.insert(root.to_owned(), name.clone());
        name
    }
}

fn print(e: &rvbbit_core::Event, input: &str, out: Out) -> Result<(), Failure> {
    if out.format == Format::Json {
        output::stdout(&format!("{}\n", serde_json::to_string(e).unwrap_or_default()))?;
        return Ok(());
    }
    let detail = match e.kind {
        EventKind::CellError | EventKind::CascadeError | EventKind::Error => {
            short(e.error.as_ref().unwrap_or(&Value::Null))
        }
        EventKind::CellComplete | EventKind::ToolResult | EventKind::CascadeComplete => short(&e.content),
        _ => String::new(),
    };
    output::stdout(&format!(
        "{} {:<16} {:<18} {:<12} {}\n",
        e.ts_us.to_rfc3339(),
        input,
        e.kind.as_str(),
        e.cell_name.as_deref().unwrap_or("-"),
        detail
    ))?;
    Ok(())
}

/// At most 120 characters of a value, on one line.
fn short(v: &Value) -> String {
    let text = match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let one: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match one.char_indices().nth(120) {
        Some((i, _)) => format!("{}…", &one[..i]),
        None => one,
    }
}
