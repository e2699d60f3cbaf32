//! The batch's record in the store (`rvbbit_store::batches`), written when it starts and when it ends;
//! what `rvbbit batch list | status | retry` read ([`super::manage`]).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rvbbit_core::{MicroUsd, Timestamp};
use rvbbit_engine::CancellationToken;
use rvbbit_store::{BatchRecord, Store};
use serde_json::json;

use super::{Args, Done, Plan};
use crate::commands::Failure;
use crate::commands::storage::fail;
use crate::output;

/// How often a running batch's progress is written to its record.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// The record of a running batch.
pub(super) struct Record {
    store: Option<Arc<dyn Store>>,
    batch: BatchRecord,
}

/// `path` made absolute against the working directory, so a retry from elsewhere finds it.
fn absolute(path: &Path) -> String {
    let full = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    full.display().to_string()
}

impl Record {
    /// Record the batch as running. Without a store (it could not be opened: events spill) the batch
    /// runs unrecorded, with a warning; a store that refuses the record stops the batch before anything
    /// runs.
    pub(super) async fn start(
        store: Option<Arc<dyn Store>>,
        plan: &Plan,
        args: &Args,
        parallel: u32,
        total: usize,
    ) -> Result<Self, Failure> {
        let body = json!({
            "cascade_file": absolute(&plan.file),
            // As given: a file input's `path` (part of its cache key) comes from it.
            "inputs": args.inputs,
            "cwd": std::env::current_dir().unwrap_or_default(),
            "caller_id": plan.caller.to_string(),
            "retry_of": args.retry_of,
            "exec": args.exec.as_ref().map(|e| &e.spec),
            "options": {
                "output_dir": absolute(&args.output_dir),
                "flat": args.flat,
                "model": plan.model,
                "meta": plan.meta,
                "parallel": parallel,
                "budget_dollars": args.budget_dollars,
                "no_cache": args.no_cache,
                "local": args.local,
                "sandbox": args.sandbox,
            },
            "counts": {"total": total},
        });
        let batch = BatchRecord::start(plan.batch_id.clone(), plan.cascade.cascade_id.clone(), body);
        match &store {
            Some(s) => s.batch_put(&batch).await.map_err(fail)?,
            None => output::stderr(&format!(
                "warning: batch {} is not recorded (the store cannot be opened): `rvbbit batch status` \
                 and `retry` will not know it\n",
                plan.batch_id
            )),
        }
        Ok(Record { store, batch })
    }

    /// While the batch runs, write its progress (`body.progress`: done, failed, cached, cost) to the
    /// record every [`PROGRESS_EVERY`], until `stop`; so `rvbbit batch status`, the HTTP API and the
    /// Studio see a running batch move. A write that fails is logged and tried again at the next tick.
    pub(super) async fn follow(&mut self, progress: &super::report::Progress, stop: CancellationToken) {
        let Some(store) = self.store.clone() else {
            stop.cancelled().await;
            return;
        };
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(PROGRESS_EVERY) => {}
            }
            self.batch.body["progress"] = progress.snapshot();
            // Compare-and-set on `running`: a cancel asked meanwhile stays.
            if let Err(e) = store.batch_progress(&self.batch.batch_id, &self.batch.body).await {
                tracing::warn!(error = %e, batch = %self.batch.batch_id, "The batch's progress was not recorded.");
            }
        }
    }

    /// Record how the batch ended: its status, counts, cost and each input's result.
    pub(super) async fn finish(
        &mut self,
        status: &str,
        done: &[Done],
        took: Duration,
    ) -> Result<(), Failure> {
        let count = |s: &str| done.iter().filter(|d| d.status == s).count();
        let cost = done.iter().fold(MicroUsd::ZERO, |a, d| a + d.cost);
        let b = &mut self.batch;
        b.status = status.to_owned();
        b.updated_at = Timestamp::now();
        b.body["counts"] = json!({
            "total": done.len(), "completed": count("completed"), "cached": count("cached"),
            "failed": count("failed"), "skipped": count("skipped"),
        });
        b.body["cost_usd"] = json!(cost.to_string());
        b.body["duration_ms"] = json!(u64::try_from(took.as_millis()).unwrap_or(u64::MAX));
        b.body["results"] = json!(done);
        if let Some(s) = &self.store {
            s.batch_put(b).await.map_err(fail)?;
        }
        Ok(())
    }
}
