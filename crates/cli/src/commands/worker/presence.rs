//! The worker's row in the store's worker registry (`rvbbit_store::workers`): recorded when it starts,
//! every [`BEAT_EVERY`] while it lives (with the runs in flight and the deliveries settled so far), as
//! `draining` once a signal arrives, and as `stopped` when it ends cleanly. A worker killed outright keeps
//! its last row; `rvbbit queue status` shows it as lost once that row is older than [`STALE_AFTER`].

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rvbbit_core::Timestamp;
use rvbbit_engine::CancellationToken;
use rvbbit_store::{WorkerRecord, WorkerState};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use super::Context;

/// How often a worker records its heartbeat.
pub(crate) const BEAT_EVERY: Duration = Duration::from_secs(5);
/// A worker whose latest heartbeat is older than this is counted as lost.
pub(crate) const STALE_AFTER: Duration = Duration::from_secs(20);

/// Beats until `stop` is cancelled; the task returns the record for the final beat.
pub(super) fn spawn(
    ctx: Arc<Context>,
    mut record: WorkerRecord,
    permits: Arc<Semaphore>,
    drain: CancellationToken,
    stop: CancellationToken,
) -> JoinHandle<WorkerRecord> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(BEAT_EVERY);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut draining = false;
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                () = drain.cancelled(), if !draining => draining = true,
                _ = ticker.tick() => {}
            }
            if draining {
                record.state = WorkerState::Draining;
            }
            beat(&ctx, &mut record, &permits).await;
        }
        record
    })
}

/// Record the final row: `stopped`, nothing in flight.
pub(super) async fn stopped(ctx: &Context, mut record: WorkerRecord, permits: &Semaphore) {
    record.state = WorkerState::Stopped;
    beat(ctx, &mut record, permits).await;
}

async fn beat(ctx: &Context, record: &mut WorkerRecord, permits: &Semaphore) {
    let free = i64::try_from(permits.available_permits()).unwrap_or(i64::MAX);
    record.in_flight = (record.slots - free).max(0);
    record.settled = ctx.settled.load(Ordering::Relaxed);
    record.heartbeat_at = Timestamp::now();
    if let Err(e) = ctx.store.worker_beat(record).await {
        // The next beat tries again; runs go on either way.
        tracing::warn!(error = %e, worker = %record.name, "Recording the worker's heartbeat failed.");
    }
}
