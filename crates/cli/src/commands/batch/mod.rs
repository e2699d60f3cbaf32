//! `rvbbit batch CASCADE --inputs GLOB|FILE.jsonl|FILE.csv`: one run of the cascade per input, all
//! under one batch id and one `batch-…` caller id, at most `--parallel` at once, with a live progress
//! display, per-input outputs, a result cache by content, a budget, a summary, and exit codes that tell
//! "all completed" (0), "some failed" (11, RVB-B001) and "all failed" (12, RVB-B002). See docs/batch.md.

mod download;
mod estimate;
pub(crate) mod exec;
mod follow;
mod inputs;
mod manage;
mod queued;
mod record;
mod report;
mod script_env;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rvbbit_cascade::load_file_with;
use rvbbit_core::{CallerId, MicroUsd, Origin, SessionStatus, Timestamp, codes};
use rvbbit_engine::{CancellationToken, Engine, RunRequest};
use rvbbit_store::Store;
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use super::{Coded, Failure, Outcome, load_config};
use crate::cli::Cli;
use crate::output::Out;
use download::download;
use inputs::Input;

/// How often sessions' heartbeats are refreshed (as `rvbbit run` does).
const HEARTBEAT_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Arguments of `rvbbit batch`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub(crate) struct Args {
    /// The cascade file, validated once before any input runs (errors exit 1).
    #[arg(value_name = "CASCADE", required = true)]
    cascade: Option<PathBuf>,
    /// The inputs: a glob of files (quote it), a .jsonl file (one JSON object per line) or a .csv file
    /// with a header row.
    #[arg(long, value_name = "GLOB|FILE.jsonl|FILE.csv", required = true)]
    inputs: Option<String>,
    /// Inputs run at once (default `batch.parallel`: the number of CPUs; at most `batch.max_parallel`).
    #[arg(long, value_name = "N")]
    parallel: Option<u32>,
    /// Where each input's output goes: DIR/<input name>/output.json (error.json when it failed).
    #[arg(long, value_name = "DIR", default_value = "outputs")]
    output_dir: PathBuf,
    /// One file per input instead of a folder: DIR/<input name>.json.
    #[arg(long)]
    flat: bool,
    /// Invocation metadata recorded on every session of the batch (repeatable).
    #[arg(short = 'm', long = "meta", value_name = "KEY=VALUE")]
    meta: Vec<String>,
    /// Stop starting inputs before the batch's cost would pass this many dollars.
    #[arg(long, value_name = "DOLLARS")]
    budget_dollars: Option<String>,
    /// The model for LLM cells without their own (as `rvbbit run --model`); part of the cache key.
    #[arg(long)]
    model: Option<String>,
    /// Neither read nor write the result cache.
    #[arg(long, conflicts_with = "refresh")]
    no_cache: bool,
    /// Run every input again and replace its cached result.
    #[arg(long)]
    refresh: bool,
    #[command(flatten)]
    sandbox: super::sandbox::BatchArgs,
    #[command(subcommand)]
    action: Option<manage::Action>,
    /// Only the inputs of these names (a retry of failed ones).
    #[arg(skip)]
    only: Option<std::collections::BTreeSet<String>>,
    /// Run the inputs in this process even when a queue is configured (`queue.url`): without it, the
    /// queue's workers run them.
    #[arg(long)]
    local: bool,
    /// The batch this one retries.
    #[arg(skip)]
    retry_of: Option<String>,
    /// `rvbbit exec`: the script's inputs, made ready (`exec.rs`).
    #[arg(skip)]
    exec: Option<Arc<exec::Prepared>>,
}

/// What became of one input.
#[derive(Clone, Debug, Serialize)]
pub(super) struct Done {
    name: String,
    source: String,
    /// `completed`, `cached`, `failed` or `skipped`.
    status: &'static str,
    session_id: Option<String>,
    code: Option<&'static str>,
    message: Option<String>,
    cost_usd: String,
    /// What a cache hit saved: the cost of the run that produced it.
    avoided_usd: Option<String>,
    /// Runs of this input that failed for a transient reason and were run again (their sessions).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    retried: Vec<String>,
    duration_ms: u64,
    #[serde(skip)]
    cost: MicroUsd,
    #[serde(skip)]
    output: Option<Value>,
}

pub(crate) fn run(cli: &Cli, args: &Args, out: Out) -> Outcome {
    start(cli, args, false, out)
}

/// `rvbbit estimate`: the batch's counts, cache hits and the expected calls, time and cost; nothing runs.
pub(crate) fn estimate(cli: &Cli, args: &Args, out: Out) -> Outcome {
    if args.action.is_some() {
        return Err(usage(
            codes::C_USAGE,
            "`rvbbit estimate` takes a CASCADE and `--inputs`, not a batch subcommand".into(),
            "for example `rvbbit estimate flow.yaml --inputs 'docs/*.txt'`",
        ));
    }
    start(cli, args, true, out)
}

fn start(cli: &Cli, args: &Args, estimate_only: bool, out: Out) -> Outcome {
    if let Some(action) = &args.action {
        return manage::run(cli, action, out);
    }
    // clap requires both without a subcommand.
    let (Some(cascade_path), Some(inputs_spec)) = (&args.cascade, &args.inputs) else {
        return Err(usage(
            codes::C_USAGE,
            "`rvbbit batch` needs a CASCADE and `--inputs`".into(),
            "for example `rvbbit batch flow.yaml --inputs 'docs/*.txt'`",
        ));
    };
    let mut config = load_config(cli, out)?.config;
    config.batch.max_parallel = config.batch.max_parallel.max(1);
    let registry = super::run::run_registry(cascade_path, &config);
    let report =
        super::run::validate_for_run(load_file_with(cascade_path, &config.limits), &registry, &config);
    if report.counts().0 > 0 {
        return super::run::invalid(&report, out);
    }
    let Some(cascade) = report.loaded.document.as_ref().and_then(|d| d.cascade().cloned()) else {
        return Err(usage(
            codes::V_SHAPE,
            format!("{} is a tool definition, not a cascade", cascade_path.display()),
            "pass a cascade file (with `cascade_id` and `cells`)",
        ));
    };
    let text = report
        .loaded
        .source
        .as_ref()
        .map(|s| s.text().to_owned())
        .unwrap_or_default();
    let budget = match &args.budget_dollars {
        Some(b) => Some(b.trim_start_matches('$').parse::<MicroUsd>().map_err(|e| {
            usage(
                codes::C_USAGE,
                format!("`--budget-dollars {b}`: {e}"),
                "give an amount in dollars, such as `--budget-dollars 2.50`",
            )
        })?),
        None => None,
    };
    let meta = super::submit::parse_meta(&args.meta)?;
    let mut inputs = match &args.exec {
        Some(e) => e.inputs.clone(),
        None => inputs::collect(inputs_spec, &config.batch)?,
    };
    let single = args.exec.as_ref().is_some_and(|e| e.single);
    if let Some(only) = &args.only {
        inputs.retain(|i| only.contains(&i.name));
        if inputs.is_empty() {
            return Err(usage(
                codes::B_NO_INPUTS,
                format!("none of the inputs to retry is in `{inputs_spec}` any more"),
                "run the batch again with `rvbbit batch CASCADE --inputs …`",
            ));
        }
    }
    let parallel = match args.parallel.unwrap_or(config.batch.parallel) {
        0 => std::thread::available_parallelism().map_or(2, |n| u32::try_from(n.get()).unwrap_or(2)),
        n => n,
    }
    .min(config.batch.max_parallel);
    let caller = CallerId::new(Origin::Batch);
    let batch_id = caller.to_string().trim_start_matches("batch-").to_owned();
    let sandbox_on = if args.exec.is_some() {
        config.sandbox.exec
    } else {
        config.sandbox.batch
    };
    // With a queue configured, the workers run the inputs (in their own sandboxes); `exec` runs here.
    let on_queue = config.queue.url.is_some() && !args.local && args.exec.is_none();
    let sandbox = if on_queue {
        None
    } else {
        args.sandbox.sandbox(&config.sandbox, sandbox_on)?
    };
    let mut prefix = cache_prefix(&cascade.cascade_id, &text, args.model.as_deref());
    prefix.update(super::sandbox::cache_part(sandbox.as_deref()).as_bytes());
    // The cascade's tools and sub-cascades too (an exec's key covers its script already).
    if args.exec.is_none() {
        match super::registry::bundle_digest(cascade_path, &config) {
            Ok(digest) => prefix.update(digest.as_bytes()),
            Err(e) => {
                let why = match &e {
                    Failure::Coded(c) => format!("{}: {}", c.code.code, c.message),
                    _ => "its bundle cannot be collected".into(),
                };
                crate::output::stderr(&format!(
                    "warning: the result cache's key covers the cascade's text only, not its tools and \
                     sub-cascades: {why}\n"
                ));
            }
        }
    }
    let plan = Arc::new(Plan {
        cascade: Arc::new(cascade),
        text,
        file: cascade_path.clone(),
        caller,
        batch_id,
        meta: serde_json::to_value(meta).unwrap_or(Value::Null),
        model: args.model.clone(),
        cache: !args.no_cache,
        read_cache: !args.no_cache && !args.refresh,
        budget,
        limit: std::sync::OnceLock::new(),
        retries: config.batch.transient_retries.min(5),
        queue: std::sync::OnceLock::new(),
        cache_prefix: prefix,
    });
    if estimate_only {
        return super::storage::block_on(async {
            let base = std::env::current_dir().unwrap_or_default();
            let store = rvbbit_store::open(&config.store.url, &base)
                .await
                .map_err(super::storage::fail)?;
            estimate::report(&*store, &plan, &inputs, parallel, out).await
        });
    }
    super::storage::block_on(async move {
        let provider = super::run::provider(&config, None, None).await?;
        if let Some(s) = &sandbox {
            super::sandbox::check(s).await?;
        }
        let (writer, store) = super::setup::store_writer(&config).await;
        if on_queue {
            let queued = queued::Queued::open(&config, store.as_ref()).await?;
            // Set once, here, before any input runs.
            let _ = plan.queue.set(queued);
        }
        let mut engine = super::setup::configured_engine(registry, &config, provider, writer.handle());
        if let Some(sandbox) = sandbox {
            engine = engine.with_sandbox(sandbox);
        }
        if let Some(store) = &store {
            engine = engine
                .with_heartbeat(store.clone(), HEARTBEAT_EVERY)
                .with_store(store.clone());
        }
        admit(&engine, &plan, out).await?;
        let started = Instant::now();
        let outputs = report::Outputs::new(&args.output_dir, args.flat)?.with_files(args.exec.is_some());
        let mut record = record::Record::start(store.clone(), &plan, args, parallel, inputs.len()).await?;
        let shown = if single { Out { quiet: true, ..out } } else { out };
        let progress = report::Progress::start(shown, &plan.batch_id, inputs.len());
        let mut signals = super::storage::Signals::install()?;
        let cancel = CancellationToken::new();
        // `rvbbit batch cancel` from any process: the record turns `cancelling`.
        let stop_watch = CancellationToken::new();
        let watcher = store
            .clone()
            .map(|s| follow::watch_cancel(s, plan.batch_id.clone(), cancel.clone(), stop_watch.clone()));
        let run = execute(
            Arc::new(engine),
            store,
            plan.clone(),
            inputs,
            parallel,
            &outputs,
            &progress,
            &cancel,
        );
        // The record shows the progress while the inputs run.
        let stop_follow = CancellationToken::new();
        let all = async {
            let run = async {
                let done = run.await;
                stop_follow.cancel();
                done
            };
            tokio::join!(run, record.follow(&progress, stop_follow.clone())).0
        };
        let (done, caught) = signals.until(all, &cancel).await;
        stop_watch.cancel();
        let cancelled = match watcher {
            Some(w) => w.await.unwrap_or(false),
            None => false,
        };
        progress.finish();
        let stats = writer.shutdown().await.map_err(super::storage::fail)?;
        let recording = super::setup::Recording::of(&stats);
        if let Some(lost) = recording.failure("this batch") {
            return Err(Failure::Coded(lost));
        }
        let verdict = verdict(&done);
        if single {
            exec::show(&done, &args.output_dir, out)?;
        } else {
            report::summary(
                &plan.batch_id,
                &done,
                started.elapsed(),
                &outputs,
                verdict.as_ref(),
                out,
            )?;
        }
        let status = match (&caught, verdict.as_ref().map(|c| c.code)) {
            (Some(_), _) => "interrupted",
            (None, _) if cancelled => "cancelled",
            (None, None) => "completed",
            (None, Some(c)) if c == codes::B_ALL_FAILED => "failed",
            (None, Some(_)) => "partial",
        };
        record.finish(status, &done, started.elapsed()).await?;
        if let Some(s) = caught {
            return Ok(s.exit_code());
        }
        if single {
            return exec::exit(&done, out);
        }
        match verdict {
            None => Ok(0),
            Some(coded) => {
                // The JSON summary already carries the code; text mode says it on stderr too.
                if out.format == crate::output::Format::Text && !out.quiet {
                    super::report_coded(&coded, out);
                }
                Ok(coded.code.exit_code())
            }
        }
    })
}

/// What every input of the batch shares.
pub(super) struct Plan {
    cascade: Arc<rvbbit_cascade::model::Cascade>,
    text: String,
    file: PathBuf,
    caller: CallerId,
    pub(super) batch_id: String,
    meta: Value,
    model: Option<String>,
    /// Write results to the cache.
    cache: bool,
    /// Read results from the cache.
    read_cache: bool,
    budget: Option<MicroUsd>,
    /// The tightest spending limit that applies, with what it had left when the batch started (set
    /// once, by [`admit`], before any input runs).
    limit: std::sync::OnceLock<LimitCap>,
    /// Runs again of an input that failed for a transient reason (`batch.transient_retries`).
    retries: u32,
    /// The queue's workers run the inputs (`queue.url` configured, without `--local`).
    queue: std::sync::OnceLock<queued::Queued>,
    /// The hashed cascade and model every input's cache key starts from.
    cache_prefix: Sha256,
}

/// A spending limit as a cap on the batch: what it had left when the batch started.
#[derive(Debug)]
struct LimitCap {
    left: MicroUsd,
    /// The limit in words.
    what: String,
}

impl Plan {
    /// The cap on what the batch may spend, and the code of the inputs it stops: the smaller of
    /// `--budget-dollars` (RVB-B005) and what the tightest spending limit had left (RVB-B030).
    fn cap(&self) -> Option<(MicroUsd, &'static rvbbit_core::ErrorCode)> {
        match (self.budget, self.limit.get()) {
            (Some(b), Some(l)) if l.left < b => Some((l.left, codes::B_SPEND_LIMIT)),
            (Some(b), _) => Some((b, codes::B_BUDGET)),
            (None, Some(l)) => Some((l.left, codes::B_SPEND_LIMIT)),
            (None, None) => None,
        }
    }
}

/// Before any input runs: refuse the batch when a spending limit is used up (RVB-B030), warn on
/// stderr when one is nearly so, and cap the batch at what the tightest limit has left.
async fn admit(engine: &Engine, plan: &Plan, out: Out) -> Result<(), Failure> {
    let admission = engine
        .admit(&plan.caller)
        .await
        .map_err(|e| Failure::Coded(super::Coded::from_error(e.code(), &e, e.hint())))?;
    if !out.quiet {
        for w in &admission.warnings {
            crate::output::stderr(&format!("warning: {w}\n"));
        }
    }
    if let Some(tightest) = admission.verdict.tightest() {
        // Set once, here, before any input runs.
        let _ = plan.limit.set(LimitCap {
            left: tightest.left(),
            what: tightest.limit.to_string(),
        });
    }
    Ok(())
}

/// The money side of the batch: spent so far, the most one input cost, inputs in flight.
#[derive(Debug, Default)]
struct Spend {
    spent: MicroUsd,
    most: MicroUsd,
    in_flight: i64,
    finished: u64,
}

impl Spend {
    /// Whether one more input may start under `budget` without passing it: the cost so far plus, for
    /// each input in flight and the new one, the most any input has cost. Until one input has finished
    /// (its cost unknown), inputs start one at a time.
    fn admits(&self, budget: MicroUsd) -> bool {
        if self.finished == 0 {
            return self.in_flight == 0 && self.spent < budget;
        }
        let worst = self.most.micros().saturating_mul(self.in_flight + 1);
        self.spent.micros().saturating_add(worst) <= budget.micros()
    }
}

#[allow(clippy::too_many_arguments)]
async fn execute(
    engine: Arc<Engine>,
    store: Option<Arc<dyn Store>>,
    plan: Arc<Plan>,
    inputs: Vec<Input>,
    parallel: u32,
    outputs: &report::Outputs,
    progress: &report::Progress,
    cancel: &CancellationToken,
) -> Vec<Done> {
    let slots = Arc::new(Semaphore::new(parallel.max(1) as usize));
    let spend = Arc::new(Mutex::new(Spend::default()));
    let mut tasks = tokio::task::JoinSet::new();
    let total = inputs.len();
    let mut results: Vec<Option<Done>> = vec![None; total];
    let mut hits = prefetch(store.as_deref(), &plan, &inputs).await;
    for (index, input) in inputs.into_iter().enumerate() {
        if let Some(hit) = hits.get_mut(index).and_then(Option::take) {
            let done = cached(&input, &hit);
            record(&mut results, Ok((index, done)), progress, outputs);
            continue;
        }
        let Ok(permit) = slots.clone().acquire_owned().await else {
            break;
        };
        if cancel.is_cancelled() {
            results[index] = Some(skipped(
                &input,
                "the batch was interrupted before this input started",
            ));
            continue;
        }
        if let Some((budget, code)) = plan.cap() {
            // Wait for room under the budget; when nothing is in flight and it still does not fit, the
            // rest is skipped.
            loop {
                let (fits, idle) = {
                    let s = spend.lock().map_err(|_| ()).ok();
                    s.map_or((false, true), |s| (s.admits(budget), s.in_flight == 0))
                };
                if fits || idle {
                    break;
                }
                if let Some(r) = tasks.join_next().await {
                    record(&mut results, r, progress, outputs);
                }
            }
            let fits = spend.lock().map(|s| s.admits(budget)).unwrap_or(false);
            if !fits {
                let spent = spend.lock().map(|s| s.spent).unwrap_or_default();
                let why = match plan.limit.get() {
                    Some(l) if code.code == codes::B_SPEND_LIMIT.code => format!(
                        "starting it could pass {} ({budget} was left when the batch started; the batch spent {spent})",
                        l.what
                    ),
                    _ => format!("starting it could pass the budget of {budget} (spent {spent})"),
                };
                let mut d = skipped(&input, &why);
                d.code = Some(code.code);
                results[index] = Some(d);
                progress.tick(&results[index], MicroUsd::ZERO);
                continue;
            }
        }
        if let Ok(mut s) = spend.lock() {
            s.in_flight += 1;
        }
        let (engine, store, spend, plan) = (engine.clone(), store.clone(), spend.clone(), plan.clone());
        let cancel = cancel.clone();
        tasks.spawn(async move {
            let done = one(&engine, store.as_deref(), &plan, input, cancel).await;
            if let Ok(mut s) = spend.lock() {
                s.in_flight -= 1;
                s.finished += 1;
                s.spent += done.cost;
                if done.cost > s.most {
                    s.most = done.cost;
                }
            }
            drop(permit);
            (index, done)
        });
        while let Some(r) = tasks.try_join_next() {
            record(&mut results, r, progress, outputs);
        }
    }
    while let Some(r) = tasks.join_next().await {
        record(&mut results, r, progress, outputs);
    }
    results.into_iter().flatten().collect()
}

/// Put a finished task's result in its place, write its output, and move the display on.
fn record(
    results: &mut [Option<Done>],
    joined: Result<(usize, Done), tokio::task::JoinError>,
    progress: &report::Progress,
    outputs: &report::Outputs,
) {
    match joined {
        Ok((index, mut done)) => {
            if let Err(e) = outputs.write(&done) {
                done.status = "failed";
                done.code = Some(codes::S_FILE.code);
                done.message = Some(e);
            }
            let cost = done.cost;
            results[index] = Some(done);
            progress.tick(&results[index], cost);
        }
        // A panic in one input's task: a bug, reported in the summary as that input's failure would be
        // were its index known; the task's index is lost with it.
        Err(e) => tracing::error!(error = %e, "A batch input's task failed."),
    }
}

/// The cached results of every input, read before anything runs (in chunks, one round trip each), when
/// the cache is read at all. An input that cannot be used, or a cache that cannot be read, is a miss.
async fn prefetch(
    store: Option<&dyn Store>,
    plan: &Plan,
    inputs: &[Input],
) -> Vec<Option<rvbbit_store::CacheEntry>> {
    let mut hits = vec![None; inputs.len()];
    let Some(store) = store.filter(|_| plan.read_cache) else {
        return hits;
    };
    let keyed: Vec<(usize, String)> = inputs
        .iter()
        .enumerate()
        .filter_map(|(i, input)| input.value.as_ref().ok().map(|v| (i, cache_key(plan, v))))
        .collect();
    for chunk in keyed.chunks(500) {
        let keys: Vec<String> = chunk.iter().map(|(_, k)| k.clone()).collect();
        match store.cache_get_many(&keys, Timestamp::now()).await {
            Ok(found) => {
                for ((i, _), entry) in chunk.iter().zip(found) {
                    hits[*i] = entry;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "The batch's result cache cannot be read; those inputs run.");
                break;
            }
        }
    }
    hits
}

/// An input served from the cache.
fn cached(input: &Input, hit: &rvbbit_store::CacheEntry) -> Done {
    let mut d = base(&input.name, &input.source, "cached");
    d.session_id = hit.value["session_id"].as_str().map(str::to_owned);
    d.avoided_usd = Some(MicroUsd::from_micros(hit.value["cost_micros"].as_i64().unwrap_or(0)).to_string());
    d.output = Some(hit.value["output"].clone());
    d
}

/// Run one input with the engine (its result cached when it completed).
async fn one(
    engine: &Engine,
    store: Option<&dyn Store>,
    plan: &Plan,
    input: Input,
    cancel: CancellationToken,
) -> Done {
    let started = Instant::now();
    let value = match input.value {
        Ok(v) => v,
        Err(why) => {
            let mut d = base(&input.name, &input.source, "failed");
            d.code = Some(codes::B_BAD_INPUT.code);
            d.message = Some(format!("{}: {why}", input.source));
            return d;
        }
    };
    let key = cache_key(plan, &value);
    let finished = match (plan.queue.get(), store) {
        (Some(q), Some(store)) => {
            q.run(store, plan, &input.name, &input.source, value, &cancel)
                .await
        }
        _ => run_here(engine, plan, &input.name, &input.source, value, cancel).await,
    };
    let status = match finished.status {
        SessionStatus::Completed => "completed",
        SessionStatus::Cancelled => "skipped",
        _ => "failed",
    };
    let mut d = base(&input.name, &input.source, status);
    d.session_id = finished.session_id.clone();
    d.cost = finished.cost + finished.spent;
    d.cost_usd = d.cost.to_string();
    d.retried = finished.retried;
    d.duration_ms = elapsed_ms(started);
    if let Some((code, message)) = finished.error {
        d.code = Some(code);
        d.message = Some(message);
    }
    if finished.status == SessionStatus::Completed {
        if plan.cache
            && let Some(store) = store
        {
            let entry = json!({"output": finished.output, "session_id": finished.session_id,
                "cost_micros": finished.cost.micros(), "batch_id": plan.batch_id});
            if let Err(e) = store.cache_put(&key, &entry, Timestamp::now(), None).await {
                tracing::warn!(error = %e, input = %input.name, "The batch result was not cached.");
            }
        }
        d.output = Some(finished.output);
    }
    d
}

/// How one input's run ended, here or on a worker.
pub(super) struct Finished {
    pub(super) status: SessionStatus,
    pub(super) session_id: Option<String>,
    /// The cost of the run that counts.
    pub(super) cost: MicroUsd,
    /// The cost of the runs retried before it.
    pub(super) spent: MicroUsd,
    pub(super) retried: Vec<String>,
    /// Its error: code and message.
    pub(super) error: Option<(&'static str, String)>,
    pub(super) output: Value,
}

/// Run one input in this process, again while it fails for a transient reason.
async fn run_here(
    engine: &Engine,
    plan: &Plan,
    name: &str,
    source: &str,
    value: Value,
    cancel: CancellationToken,
) -> Finished {
    let mut retried = Vec::new();
    let mut spent = MicroUsd::ZERO;
    let outcome = loop {
        let mut request = RunRequest::new((*plan.cascade).clone());
        request.input = value.clone();
        request.caller_id = plan.caller.clone();
        request.model = plan.model.clone();
        request.cascade_file = Some(plan.file.clone());
        request.cascade_text = Some(plan.text.clone());
        request.cancel = cancel.clone();
        request.metadata = json!({"batch_id": plan.batch_id, "input": name, "source": source,
            "meta": plan.meta, "attempt": retried.len() + 1});
        let outcome = engine.run(request).await;
        let again = outcome.status == SessionStatus::Failed
            && outcome.error.as_ref().is_some_and(|e| transient(e.code()))
            && retried.len() < plan.retries as usize
            && !cancel.is_cancelled();
        if !again {
            break outcome;
        }
        spent += outcome.cost;
        retried.push(outcome.session_id.to_string());
    };
    Finished {
        status: outcome.status,
        session_id: Some(outcome.session_id.to_string()),
        cost: outcome.cost,
        spent,
        retried,
        error: outcome.error.as_ref().map(|e| (e.code().code, e.to_string())),
        output: outcome.output,
    }
}

/// Whether a failure with `code` may pass when the input runs again: a resource limit of the sandbox
/// (memory, time), a tool's time limit, or the provider out of reach, rate limiting or failing.
/// Never a script's or cascade's own error.
fn transient(code: &rvbbit_core::ErrorCode) -> bool {
    [
        codes::B_SANDBOX_MEMORY,
        codes::B_SANDBOX_WALL,
        codes::T_TIMEOUT,
        codes::L_UNREACHABLE,
        codes::L_RATE_LIMITED,
        codes::L_PROVIDER_ERROR,
    ]
    .iter()
    .any(|c| c.code == code.code)
}

/// The cache key of one input: the cascade's text, the input (canonical JSON) and the model.
fn cache_key(plan: &Plan, input: &Value) -> String {
    let mut h = plan.cache_prefix.clone();
    h.update(canonical(input).as_bytes());
    format!("batch:{}", hex::encode(h.finalize()))
}

/// The part of every cache key the inputs share (the cascade and the model), hashed once per batch.
fn cache_prefix(cascade_id: &str, text: &str, model: Option<&str>) -> Sha256 {
    let mut h = Sha256::new();
    for part in ["rvbbit-batch-v2", cascade_id, text, model.unwrap_or("")] {
        h.update(part.as_bytes());
        h.update(b"\0");
    }
    h
}

/// JSON with object keys sorted at every level, so equal inputs hash equal.
fn canonical(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), canonical(&m[k])))
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        Value::Array(a) => format!("[{}]", a.iter().map(canonical).collect::<Vec<_>>().join(",")),
        other => other.to_string(),
    }
}

fn base(name: &str, source: &str, status: &'static str) -> Done {
    Done {
        name: name.to_owned(),
        source: source.to_owned(),
        status,
        session_id: None,
        code: None,
        message: None,
        cost_usd: MicroUsd::ZERO.to_string(),
        avoided_usd: None,
        retried: Vec::new(),
        duration_ms: 0,
        cost: MicroUsd::ZERO,
        output: None,
    }
}

fn skipped(input: &Input, why: &str) -> Done {
    let mut d = base(&input.name, &input.source, "skipped");
    d.message = Some(why.to_owned());
    d
}

fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// What the batch's end means: `None` when every input completed (or came from the cache), else
/// RVB-B001 (some did not) or RVB-B002 (none did) with a message.
fn verdict(done: &[Done]) -> Option<Coded> {
    let ok = done
        .iter()
        .filter(|d| matches!(d.status, "completed" | "cached"))
        .count();
    if ok == done.len() {
        return None;
    }
    let (code, what) = if ok == 0 {
        (
            codes::B_ALL_FAILED,
            format!("every one of the {} inputs failed or was skipped", done.len()),
        )
    } else {
        (
            codes::B_SOME_FAILED,
            format!(
                "{} of {} inputs failed or were skipped",
                done.len() - ok,
                done.len()
            ),
        )
    };
    Some(Coded {
        code,
        message: what,
        hint: "the summary names each failed input; fix them and run the same command again (completed inputs come from the cache at $0)".into(),
        causes: Vec::new(),
    })
}

pub(super) fn usage(code: &'static rvbbit_core::ErrorCode, message: String, hint: &str) -> Failure {
    Failure::Coded(Coded {
        code,
        message,
        hint: hint.into(),
        causes: Vec::new(),
    })
}
