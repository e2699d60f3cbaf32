//! `rvbbit worker`: pull jobs from the queue and run each as `rvbbit run` would, against the configured
//! store, until SIGTERM or SIGINT.
//!
//! There is no scheduler here: the queue's one shared consumer hands each job to one worker slot
//! ([`job`] runs it, reports progress while it lives, and acks once its outcome is in the store). A
//! signal drains the worker: it stops pulling, gives in-flight runs `queue.drain_grace_seconds` to
//! finish, then cancels the rest and hands their jobs back with a delay; a second signal cancels at
//! once. Every worker also listens for the server's max-deliveries advisories and moves given-up jobs to
//! the dead-letter stream.

mod bundle;
mod job;
pub(crate) mod presence;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::time::Duration;

use rvbbit_core::codes;
use rvbbit_engine::CancellationToken;
use rvbbit_llm::Provider;
use rvbbit_store::{Queue, Store, WorkerRecord};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::queue::QueueArg;
use super::storage::{Signals, block_on, fail};
use super::{Coded, Failure, Outcome, load_config};
use crate::cli::Cli;
use crate::output::{self, Out};

/// How long one pull waits for a job before the loop looks at signals again.
const PULL_WAIT: Duration = Duration::from_secs(1);
/// How long to wait before pulling again after the queue failed a pull.
const PULL_BACKOFF: Duration = Duration::from_secs(1);

/// Arguments of `rvbbit worker`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    queue: QueueArg,
    /// Runs at once in this process.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    concurrency: u32,
    /// A label recorded in the metadata of every session this worker runs and in its row of the
    /// worker registry (`rvbbit queue status`; repeatable). Jobs are not routed by tags: every worker
    /// takes any job.
    #[arg(long = "tag", value_name = "KEY=VALUE")]
    tags: Vec<String>,
}

/// What every job of this worker shares.
pub(super) struct Context {
    pub(super) config: rvbbit_core::Config,
    pub(super) store: Arc<dyn Store>,
    pub(super) provider: Arc<dyn Provider>,
    /// `worker-<host>-<pid>` and the tags, recorded on each session.
    pub(super) worker: serde_json::Value,
    pub(super) spill_dir: std::path::PathBuf,
    /// Deliveries settled so far (acked, handed back or given up), for the worker registry.
    pub(super) settled: AtomicI64,
    /// The sandbox of the jobs' code and shell cells (`sandbox.worker`, on by default).
    pub(super) sandbox: Option<Arc<rvbbit_engine::tools::sandbox::Sandbox>>,
}

pub(crate) fn run(cli: &Cli, args: &Args, out: Out) -> Outcome {
    let config = load_config(cli, out)?.config;
    let tags = parse_tags(&args.tags)?;
    block_on(async move {
        // Required and unusable stops the worker before it takes a job, never an unsandboxed run.
        let sandbox = if config.sandbox.worker {
            Some(super::sandbox::build(&config.sandbox, &Default::default()).await?)
        } else {
            None
        };
        let signals = Signals::install()?;
        let queue = super::queue::open(&config, &args.queue, true).await?;
        let base = std::env::current_dir().unwrap_or_default();
        let store = rvbbit_store::open(&config.store.url, &base).await.map_err(fail)?;
        let provider = super::run::provider(&config, None, None).await?;
        let name = format!("worker-{}-{}", host(), std::process::id());
        if !out.quiet {
            output::stderr(&format!(
                "{name} pulling from {} (stream {}, concurrency {}), store {}\n",
                queue.url(),
                config.queue.stream,
                args.concurrency,
                store.url()
            ));
        }
        let record = WorkerRecord::start(
            name.clone(),
            host(),
            i64::from(std::process::id()),
            serde_json::json!(tags),
            i64::from(args.concurrency),
        );
        let ctx = Arc::new(Context {
            worker: serde_json::json!({"name": name, "tags": tags}),
            spill_dir: base.join(".rvbbit").join("spill"),
            settled: AtomicI64::new(0),
            config,
            store,
            provider,
            sandbox,
        });
        serve(ctx, queue, signals, record, out).await
    })
}

/// The pull loop, then the drain.
async fn serve(
    ctx: Arc<Context>,
    queue: Arc<dyn Queue>,
    signals: Signals,
    record: WorkerRecord,
    out: Out,
) -> Outcome {
    let slots = usize::try_from(record.slots).unwrap_or(1);
    let watcher = tokio::spawn({
        let queue = queue.clone();
        async move { queue.watch_given_up().await }
    });
    let drain = CancellationToken::new();
    let cancel_runs = CancellationToken::new();
    let listener = tokio::spawn(listen(signals, drain.clone(), cancel_runs.clone()));
    let permits = Arc::new(Semaphore::new(slots));
    let stop_beats = CancellationToken::new();
    let beats = presence::spawn(
        ctx.clone(),
        record,
        permits.clone(),
        drain.clone(),
        stop_beats.clone(),
    );
    let mut tasks = JoinSet::new();
    let nak_delay = Duration::from_secs(ctx.config.queue.nak_delay_seconds);
    while !drain.is_cancelled() {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break, // The semaphore is never closed.
            },
            () = drain.cancelled() => break,
        };
        match queue.pull(PULL_WAIT).await {
            Ok(Some(delivery)) if drain.is_cancelled() => {
                // Pulled as the drain began: hand it straight back.
                if let Err(e) = delivery.nak(nak_delay).await {
                    tracing::warn!(error = %e, "A job pulled during the drain could not be handed back.");
                }
            }
            Ok(Some(delivery)) => {
                tasks.spawn(job::handle(
                    ctx.clone(),
                    delivery,
                    cancel_runs.child_token(),
                    permit,
                ));
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "Pulling a job failed; trying again.");
                tokio::time::sleep(PULL_BACKOFF).await;
            }
        }
        while tasks.try_join_next().is_some() {}
    }
    let in_flight = tasks.len();
    let grace = Duration::from_secs(ctx.config.queue.drain_grace_seconds);
    if !out.quiet {
        output::stderr(&format!(
            "draining: {in_flight} run(s) in flight get {} s to finish\n",
            grace.as_secs()
        ));
    }
    let deadline = tokio::time::sleep(grace);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            next = tasks.join_next() => if next.is_none() { break },
            () = &mut deadline, if !cancel_runs.is_cancelled() => {
                output::stderr("drain grace over: cancelling the runs left and handing their jobs back\n");
                cancel_runs.cancel();
            }
        }
    }
    watcher.abort();
    listener.abort();
    stop_beats.cancel();
    if let Ok(record) = beats.await {
        presence::stopped(&ctx, record, &permits).await;
    }
    if !out.quiet {
        output::stderr("worker stopped\n");
    }
    Ok(0)
}

/// The first signal starts the drain; a second cancels the runs in flight.
async fn listen(mut signals: Signals, drain: CancellationToken, cancel_runs: CancellationToken) {
    signals.recv().await;
    drain.cancel();
    signals.recv().await;
    cancel_runs.cancel();
}

fn parse_tags(items: &[String]) -> Result<BTreeMap<String, String>, Failure> {
    items
        .iter()
        .map(|item| match item.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
            _ => Err(Failure::Coded(Coded {
                code: codes::C_USAGE,
                message: format!("`--tag {item}` is not KEY=VALUE"),
                hint: "write it as `--tag region=eu`".into(),
                causes: Vec::new(),
            })),
        })
        .collect()
}

/// This machine's host name (for the worker's name), or `unknown`.
fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}
