//! Session heartbeats: a task that records a sign of life every interval while a run is alive, so
//! `rvbbit doctor` and `rvbbit sessions cleanup` can tell zombies (their process is gone) from live runs.

use std::sync::Arc;
use std::time::Duration;

use rvbbit_core::{SessionId, Timestamp};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::traits::Store;

/// The default interval between heartbeats (a session is a zombie after 90 s without one).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);

/// Owns a heartbeat task. Stop it with [`Heartbeat::stop`]; dropping it also stops the task (the stop
/// channel closes), without waiting.
#[derive(Debug)]
pub struct Heartbeat {
    stop: oneshot::Sender<()>,
    task: JoinHandle<u64>,
}

impl Heartbeat {
    /// Start beating for `session` every `every` (first beat after one interval). Store errors are
    /// logged and the next beat tried; they never stop the run.
    pub fn spawn(store: Arc<dyn Store>, session: SessionId, every: Duration) -> Self {
        let (stop, mut stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut beats = 0u64;
            let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = ticker.tick() => {
                        match store.heartbeat(&session, Timestamp::now()).await {
                            Ok(()) => beats += 1,
                            Err(e) => tracing::warn!(error = %e, session_id = %session, "Heartbeat failed."),
                        }
                    }
                }
            }
            beats
        });
        Heartbeat { stop, task }
    }

    /// Stop the task and wait for it; returns how many beats were recorded.
    pub async fn stop(self) -> u64 {
        // The task may already have ended; then there is nobody to tell.
        let _ = self.stop.send(());
        self.task.await.unwrap_or(0)
    }
}
