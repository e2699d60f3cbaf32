//! `rvbbit queue status|retry-dead`, and opening the configured job queue (shared with `submit` and
//! `worker`).

use std::sync::Arc;
use std::time::Duration;

use rvbbit_core::Timestamp;
use rvbbit_core::codes;
use rvbbit_core::config::{Config, mask_url, queue_url_problem};
use rvbbit_store::{Queue, QueueOptions, Store, WorkerRecord, WorkerState};
use serde_json::json;

use super::storage::{block_on, fail, table};
use super::worker::presence::STALE_AFTER;
use super::{Coded, Failure, Outcome, load_config};
use crate::cli::Cli;
use crate::output::{self, Format, Out};

/// `--queue URL`, shared by the commands that use the queue.
#[derive(Debug, Default, clap::Args)]
pub(crate) struct QueueArg {
    /// The job queue, `nats://[USER:PASSWORD@]HOST[:PORT]` (a NATS server with JetStream); beats
    /// `queue.url` and `RVBBIT_QUEUE_URL`.
    #[arg(long = "queue", value_name = "URL")]
    pub(crate) url: Option<String>,
}

/// `rvbbit queue` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Jobs waiting, in flight and redelivered, dead letters (with their reasons), consumers, and the
    /// workers of the store's registry: live ones, and those stopped or lost (no heartbeat for 20 s)
    /// within the last hour.
    Status {
        #[command(flatten)]
        queue: QueueArg,
    },
    /// Put dead-lettered jobs back on the queue (all of them, or those of the submission ids given);
    /// each starts again with a fresh delivery count.
    RetryDead {
        /// Submission ids to retry; none retries every dead letter. An id without a dead letter exits
        /// 5 (RVB-S013) before anything is retried.
        #[arg(value_name = "ID")]
        ids: Vec<String>,
        #[command(flatten)]
        queue: QueueArg,
    },
}

/// The queue settings of `config`; a worker (`configure_consumer`) also sets the shared consumer's.
pub(crate) fn options(config: &Config, configure_consumer: bool) -> QueueOptions {
    let q = &config.queue;
    QueueOptions {
        stream: q.stream.clone(),
        ack_wait: Duration::from_secs(q.ack_wait_seconds.max(1)),
        max_deliveries: q.max_deliveries.max(1),
        duplicate_window: Duration::from_secs(q.duplicate_window_seconds.max(1)),
        configure_consumer,
    }
}

/// Open the queue named by `--queue` or `queue.url`; a `worker` sets the consumer's ack wait and max
/// deliveries, anyone else uses the consumer as the server holds it.
///
/// Errors: no URL or a malformed `--queue` (exit 6, naming the setting), the queue unreachable or
/// refusing its configuration (exit 5).
pub(crate) async fn open(config: &Config, arg: &QueueArg, worker: bool) -> Result<Arc<dyn Queue>, Failure> {
    let Some(url) = arg.url.as_deref().or(config.queue.url.as_deref()) else {
        return Err(Failure::Coded(Coded {
            code: codes::C_INVALID,
            message: "no job queue is configured (`queue.url` is not set)".into(),
            hint: "set `[queue] url = \"nats://HOST:4222\"` in rvbbit.toml, `RVBBIT_QUEUE_URL`, or pass \
                   `--queue nats://HOST:4222`"
                .into(),
            causes: Vec::new(),
        }));
    };
    if arg.url.is_some()
        && let Some(why) = queue_url_problem(url)
    {
        return Err(Failure::Coded(Coded {
            code: codes::C_USAGE,
            message: format!(
                "`--queue {}` is not a NATS URL `nats://[USER:PASSWORD@]HOST[:PORT]`: {why}",
                mask_url(url)
            ),
            hint: "for example `--queue nats://localhost:4222`".into(),
            causes: Vec::new(),
        }));
    }
    rvbbit_store::queue::open(url, &options(config, worker))
        .await
        .map_err(fail)
}

pub(crate) fn run(cli: &Cli, cmd: &Command, out: Out) -> Outcome {
    let config = load_config(cli, out)?.config;
    block_on(async move {
        match cmd {
            Command::Status { queue } => {
                let queue = open(&config, queue, false).await?;
                let base = std::env::current_dir().unwrap_or_default();
                let store = rvbbit_store::open(&config.store.url, &base).await.map_err(fail)?;
                status(&*queue, &*store, out).await
            }
            Command::RetryDead { ids, queue } => {
                let queue = open(&config, queue, false).await?;
                let retried = queue.retry_dead(ids).await.map_err(fail)?;
                match out.format {
                    Format::Json => output::json(&json!({"retried": retried}))?,
                    Format::Text => {
                        for id in &retried {
                            output::stdout(&format!("{id}\n"))?;
                        }
                        if !out.quiet {
                            output::stderr(&format!("{} dead letter(s) back on the queue\n", retried.len()));
                        }
                    }
                }
                Ok(0)
            }
        }
    })
}

/// Workers not live are listed this long after their latest heartbeat.
const RECENT: Duration = Duration::from_secs(3600);

/// The registry's workers worth showing, each with what it counts as now: `running`, `draining`,
/// `stopped`, or `lost` (not stopped, but its heartbeat went stale).
fn shown_workers(workers: Vec<WorkerRecord>, now: Timestamp) -> Vec<(WorkerRecord, &'static str)> {
    let recent_us = i64::try_from(RECENT.as_micros()).unwrap_or(i64::MAX);
    workers
        .into_iter()
        .filter(|w| now.micros().saturating_sub(w.heartbeat_at.micros()) <= recent_us)
        .map(|w| {
            let shown = if w.is_live(now, STALE_AFTER) {
                w.state.as_str()
            } else if w.state == WorkerState::Stopped {
                "stopped"
            } else {
                "lost"
            };
            (w, shown)
        })
        .collect()
}

async fn status(queue: &dyn Queue, store: &dyn Store, out: Out) -> Outcome {
    let status = queue.status().await.map_err(fail)?;
    let dead = queue.dead_letters().await.map_err(fail)?;
    let now = Timestamp::now();
    let workers = shown_workers(store.workers().await.map_err(fail)?, now);
    let live = workers
        .iter()
        .filter(|(_, s)| matches!(*s, "running" | "draining"))
        .count();
    match out.format {
        Format::Json => {
            let workers: Vec<serde_json::Value> = workers
                .iter()
                .map(|(w, shown)| {
                    let mut v = json!(w);
                    v["status"] = json!(shown);
                    v
                })
                .collect();
            output::json(&json!({
                "status": status,
                "dead_letters": dead,
                "live_workers": live,
                "workers": workers,
            }))?;
        }
        Format::Text => {
            let rows = [
                ("queue", status.url.clone()),
                ("stream", status.stream.clone()),
                ("waiting (depth)", status.depth.to_string()),
                ("in flight (ack pending)", status.in_flight.to_string()),
                ("redelivered", status.redelivered.to_string()),
                ("dead letters", status.dead_letters.to_string()),
                ("consumers", status.consumers.to_string()),
                ("live workers", live.to_string()),
                ("pulls waiting", status.waiting_pulls.to_string()),
                ("ack wait", format!("{} s", status.ack_wait_seconds)),
                ("max deliveries", status.max_deliveries.to_string()),
            ]
            .map(|(k, v)| vec![k.to_owned(), v]);
            let mut text = table(&["", ""], &rows);
            if !dead.is_empty() {
                let rows: Vec<Vec<String>> = dead
                    .iter()
                    .map(|d| {
                        vec![
                            d.id.clone(),
                            d.deliveries.to_string(),
                            d.at.clone(),
                            d.reason.clone(),
                        ]
                    })
                    .collect();
                text.push('\n');
                text.push_str(&table(&["DEAD LETTER", "DELIVERIES", "AT", "REASON"], &rows));
            }
            if !workers.is_empty() {
                let rows: Vec<Vec<String>> = workers
                    .iter()
                    .map(|(w, shown)| {
                        let tags = w.tags.as_object().map_or_else(String::new, |m| {
                            m.iter()
                                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                                .collect::<Vec<_>>()
                                .join(",")
                        });
                        let ago = now.micros().saturating_sub(w.heartbeat_at.micros()) / 1_000_000;
                        vec![
                            w.name.clone(),
                            (*shown).to_owned(),
                            format!("{}/{}", w.in_flight, w.slots),
                            w.settled.to_string(),
                            tags,
                            format!("{ago} s ago"),
                        ]
                    })
                    .collect();
                text.push('\n');
                text.push_str(&table(
                    &[
                        "WORKER",
                        "STATUS",
                        "IN FLIGHT",
                        "SETTLED",
                        "TAGS",
                        "LAST HEARTBEAT",
                    ],
                    &rows,
                ));
            }
            output::stdout(text.trim_start_matches(|c: char| c.is_whitespace()))?;
        }
    }
    Ok(0)
}
