//! One delivered job: load and validate the submitted cascade text, run it as `rvbbit run` does with the
//! caller id `queue-<submission id>`, report progress to the queue while the run lives, and settle the
//! delivery.
//!
//! | what happened                                        | the delivery is               |
//! |------------------------------------------------------|-------------------------------|
//! | the run ended (completed, failed or waiting) and its outcome is in the store | acked |
//! | an earlier delivery's run already recorded an outcome | acked without running again  |
//! | the run was cancelled by the drain, or its outcome did not reach the store | nak'd with a delay |
//! | the job cannot start (not a job, invalid cascade, a panic) | nak'd with a delay; on its last delivery dead-lettered with the reason |
//! | the job names a bundle the artifact store does not hold (`bundle.rs`) | dead-lettered at once |
//!
//! Each delivery runs under the run key `queue-<submission id>` ([`RunRequest::run_key`]): it continues
//! after the cells an earlier delivery journaled, and side-effecting tool calls an earlier delivery
//! finished are not made again.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rvbbit_cascade::Severity;
use rvbbit_core::{CallerId, SessionId, SessionStatus, codes};
use rvbbit_engine::tools::Registry;
use rvbbit_engine::{CancellationToken, Engine, RunRequest};
use rvbbit_store::{Delivery, Job, SessionFilter, Writer, WriterOptions};
use serde_json::json;
use tokio::sync::OwnedSemaphorePermit;

use super::Context;

/// How often a running session's heartbeat is refreshed (as `rvbbit run` does).
const HEARTBEAT_EVERY: Duration = Duration::from_secs(10);

/// How a delivery ends.
#[derive(Debug)]
pub(super) enum Verdict {
    /// The run's outcome is in the store.
    Done(SessionId, SessionStatus),
    /// An earlier delivery already recorded an outcome.
    AlreadyDone(SessionId),
    /// Not done; deliver again later.
    HandBack(String),
    /// The job cannot start; deliver again later, or give it up on its last delivery.
    NotStarted(String),
    /// The job can never start (its bundle is not in the artifact store): give it up now.
    GiveUp(String),
}

/// Run one delivery and settle it; `permit` frees the worker slot when this ends.
pub(super) async fn handle(
    ctx: Arc<Context>,
    delivery: Arc<dyn Delivery>,
    cancel: CancellationToken,
    permit: OwnedSemaphorePermit,
) {
    let running = run(ctx.clone(), delivery.clone(), cancel);
    handle_with(ctx, delivery, running, permit).await;
}

/// Settle `delivery` by the verdict of `running` (its run), reporting progress meanwhile.
async fn handle_with(
    ctx: Arc<Context>,
    delivery: Arc<dyn Delivery>,
    running: impl Future<Output = Verdict> + Send + 'static,
    _permit: OwnedSemaphorePermit,
) {
    let every = Duration::from_secs(ctx.config.queue.ack_wait_seconds.max(1)) / 3;
    let progress = tokio::spawn({
        let delivery = delivery.clone();
        async move {
            let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            loop {
                ticker.tick().await;
                if let Err(e) = delivery.progress().await {
                    tracing::warn!(error = %e, "Reporting progress on a job failed.");
                }
            }
        }
    });
    // The run is its own task, so a panic in it is caught here and the worker keeps serving.
    let verdict = match tokio::spawn(running).await {
        Ok(v) => v,
        Err(e) => Verdict::NotStarted(format!("the run panicked: {}", panic_text(e))),
    };
    progress.abort();
    settle(&ctx, &*delivery, verdict).await;
}

/// What a run task's panic said, or why it ended otherwise.
fn panic_text(e: tokio::task::JoinError) -> String {
    if !e.is_panic() {
        return e.to_string();
    }
    let payload = e.into_panic();
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

async fn settle(ctx: &Context, delivery: &dyn Delivery, verdict: Verdict) {
    let id = delivery.id().unwrap_or("(no submission id)").to_owned();
    let attempt = delivery.attempt();
    let nak_delay = Duration::from_secs(ctx.config.queue.nak_delay_seconds);
    let result = match &verdict {
        Verdict::Done(session, status) => {
            tracing::info!(submission = %id, session_id = %session, %status, attempt, "Job done.");
            delivery.ack().await
        }
        Verdict::AlreadyDone(session) => {
            tracing::info!(submission = %id, session_id = %session, attempt, "Job already done by an earlier delivery.");
            delivery.ack().await
        }
        Verdict::HandBack(why) => {
            tracing::warn!(submission = %id, attempt, reason = %why, "Job handed back.");
            delivery.nak(nak_delay).await
        }
        Verdict::GiveUp(why) => {
            tracing::warn!(submission = %id, attempt, reason = %why, "Job given up: it can never start.");
            delivery.dead_letter(why).await
        }
        Verdict::NotStarted(why) if attempt >= delivery.max_deliveries() => {
            tracing::warn!(submission = %id, attempt, reason = %why, "Job given up after its last delivery.");
            delivery.dead_letter(why).await
        }
        Verdict::NotStarted(why) => {
            tracing::warn!(submission = %id, attempt, reason = %why, "Job could not start; it will be delivered again.");
            delivery.nak(nak_delay).await
        }
    };
    ctx.settled.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if let Err(e) = result {
        // The server redelivers an unsettled job after the ack wait, so nothing is lost.
        tracing::warn!(error = %e, submission = %id, "Settling a job failed; the queue will deliver it again.");
    }
}

async fn run(ctx: Arc<Context>, delivery: Arc<dyn Delivery>, cancel: CancellationToken) -> Verdict {
    let job = match delivery.job() {
        Ok(job) => job,
        Err(e) => return Verdict::NotStarted(e.to_string()),
    };
    let caller = format!("queue-{}", job.id);
    let Ok(caller_id) = caller.parse::<CallerId>() else {
        return Verdict::NotStarted(format!("`{caller}` cannot be a caller id"));
    };
    // At-least-once: a job whose ack was lost comes back; its recorded outcome stands.
    let filter = SessionFilter {
        caller_id: Some(caller.clone()),
        ..SessionFilter::default()
    };
    match ctx.store.sessions(&filter).await {
        Ok(found) => {
            // Only a root session is the job's outcome: a child (a sub-cascade, a cascade tool) shares
            // the caller id and may have ended while its root was cut off.
            let root = found
                .iter()
                .find(|s| s.session.parent_session_id.is_none() && ended_here(&s.session));
            if let Some(s) = root {
                let s = &s.session;
                // The earlier delivery may have been handed back because its output did not reach the
                // artifact store: storing it again is idempotent (the key is the session's).
                if s.status == SessionStatus::Completed
                    && let Err(why) = store_output(&ctx, &s.session_id, s.output.as_ref()).await
                {
                    return Verdict::HandBack(why);
                }
                return Verdict::AlreadyDone(s.session_id.clone());
            }
        }
        Err(e) => return Verdict::HandBack(format!("the store cannot be read: {e}")),
    }
    let prepared = match &job.bundle {
        Some(hash) => super::bundle::prepare(&ctx, &job, hash).await,
        None => prepare(&ctx, &job)
            .map(|(registry, request)| (registry, request, ctx.config.roots.clone()))
            .map_err(Verdict::NotStarted),
    };
    let (registry, request, roots) = match prepared {
        Ok(ok) => ok,
        Err(verdict) => return verdict,
    };
    let mut request = request;
    request.caller_id = caller_id;
    request.cancel = cancel;
    // Every delivery of the job is one logical run: a later delivery continues after the cells an
    // earlier one journaled, and side effects are recorded under keys derived from it.
    request.run_key = Some(caller);
    request.metadata = json!({
        "submission_id": job.id,
        "attempt": delivery.attempt(),
        "submitted_at": job.submitted_at,
        "worker": ctx.worker,
        "meta": job.metadata,
    });
    execute(&ctx, registry, request, roots).await
}

/// Whether a session of this submission recorded an outcome of its own: it ended (completed, failed or
/// waiting) and was not merely marked orphaned (RVB-E014) by `rvbbit doctor --fix` or `sessions cleanup`
/// after its worker died.
fn ended_here(session: &rvbbit_store::Session) -> bool {
    let orphaned = session
        .error
        .as_deref()
        .is_some_and(|e| e.contains(codes::E_ORPHANED.code));
    !orphaned
        && matches!(
            session.status,
            SessionStatus::Completed | SessionStatus::Failed | SessionStatus::Waiting
        )
}

/// Load and validate the submitted text as `rvbbit run` loads a file; the registry and the request.
fn prepare(ctx: &Context, job: &Job) -> Result<(Registry, RunRequest), String> {
    let config = &ctx.config;
    let name = Path::new(&job.cascade_file)
        .file_name()
        .map_or_else(|| "cascade.yaml".into(), |n| n.to_string_lossy().into_owned());
    let path = Path::new(&name);
    let registry = crate::commands::run::run_registry(path, config);
    let loaded = rvbbit_cascade::load_str_with(path, &job.cascade_text, &config.limits);
    let report = crate::commands::run::validate_for_run(loaded, &registry, config);
    if let Some(d) = report
        .diagnostics()
        .iter()
        .find(|d| d.severity == Severity::Error)
    {
        let j = d.to_json(&report.loaded.path, report.loaded.source.as_ref());
        let at = match (j.line, j.column) {
            (Some(l), Some(c)) => format!("{name}:{l}:{c}"),
            _ => name.clone(),
        };
        return Err(format!(
            "the cascade is invalid: {at}: {} [{}]",
            d.message, d.code.code
        ));
    }
    let Some(cascade) = report.loaded.document.as_ref().and_then(|d| d.cascade().cloned()) else {
        return Err(format!("{name} is a tool definition, not a cascade"));
    };
    let mut request = RunRequest::new(cascade);
    request.input = job.input.clone();
    request.cascade_file = Some(path.to_path_buf());
    request.cascade_text = Some(job.cascade_text.clone());
    Ok((registry, request))
}

/// Run with a writer of its own, flushed before the verdict, so an ack always follows a recorded outcome.
async fn execute(
    ctx: &Context,
    registry: Registry,
    request: RunRequest,
    roots: Vec<std::path::PathBuf>,
) -> Verdict {
    let config = &ctx.config;
    let writer = Writer::spawn(ctx.store.clone(), WriterOptions::new(ctx.spill_dir.clone()));
    let mut engine = Engine::new(registry)
        .with_provider(ctx.provider.clone())
        .with_writer(writer.handle())
        .with_default_model(config.default_model.clone())
        .with_roots(roots)
        .with_limits(config.limits.clone())
        .with_costs(config.costs.clone())
        .with_heartbeat(ctx.store.clone(), HEARTBEAT_EVERY)
        .with_store(ctx.store.clone());
    if let Some(sandbox) = &ctx.sandbox {
        engine = engine.with_sandbox(sandbox.clone());
    }
    // A spending limit used up: not started; the job is delivered again later (the limit may be raised
    // meanwhile) and given up on its last delivery, with the reason.
    match engine.admit(&request.caller_id).await {
        Ok(admission) => {
            for w in &admission.warnings {
                tracing::warn!(caller_id = %request.caller_id, "{w}");
            }
        }
        Err(e) => {
            drop(engine);
            // Nothing was written: the writer only has to stop.
            let _ = writer.shutdown().await;
            return Verdict::NotStarted(format!("{}: {e}", e.code().code));
        }
    }
    let outcome = engine.run(request).await;
    drop(engine);
    let session = outcome.session_id.clone();
    match writer.shutdown().await {
        Ok(stats) if stats.lost == 0 && stats.spilled == 0 => {}
        Ok(stats) => {
            return Verdict::HandBack(format!(
                "session {session}: {} record(s) spilled and {} lost, so its outcome is not in the store",
                stats.spilled, stats.lost
            ));
        }
        Err(e) => return Verdict::HandBack(format!("session {session}: the writer failed: {e}")),
    }
    if outcome.status == SessionStatus::Cancelled {
        return Verdict::HandBack(match &outcome.error {
            Some(e @ rvbbit_engine::Error::Superseded { .. }) => format!("session {session} stopped: {e}"),
            _ => format!("session {session} was cancelled: the worker was stopped"),
        });
    }
    match ctx.store.session(&session).await {
        Ok(s) if s.status == outcome.status => {
            if s.status == SessionStatus::Completed
                && let Err(why) = store_output(ctx, &session, Some(&outcome.output)).await
            {
                return Verdict::HandBack(why);
            }
            Verdict::Done(session, outcome.status)
        }
        Ok(s) => Verdict::HandBack(format!(
            "session {session} ended {} but the store holds it as {}",
            outcome.status, s.status
        )),
        Err(e) => Verdict::HandBack(format!("session {session}: the store cannot be read: {e}")),
    }
}

/// With `artifacts.url` set, store a completed run's output at `runs/<session id>/output.json` (as
/// `rvbbit run` does); a store that fails hands the job back, so the output is stored on a later delivery.
async fn store_output(
    ctx: &Context,
    session: &SessionId,
    output: Option<&serde_json::Value>,
) -> Result<(), String> {
    if ctx.config.artifacts.url.is_none() {
        return Ok(());
    }
    let artifacts = crate::commands::registry::open(&ctx.config)
        .map_err(|_| format!("session {session}: the artifact store (`artifacts.url`) cannot be opened"))?;
    let output = output.cloned().unwrap_or(serde_json::Value::Null);
    match artifacts.put_output(session.as_str(), &output).await {
        Ok(at) => {
            tracing::info!(session_id = %session, at = %at, "Output stored as an artifact.");
            Ok(())
        }
        Err(e) => Err(format!(
            "session {session}: its output was not stored as an artifact: [{}] {e}",
            e.code().code
        )),
    }
}

#[cfg(test)]
mod ended_tests {
    use rvbbit_core::SessionStatus;

    use super::ended_here;

    #[test]
    fn an_orphaned_session_is_not_an_outcome_but_a_failed_run_is() {
        let mut s = rvbbit_store::Session::new("quiet-heron-0c1d2e3f4a5b6c7d".parse().unwrap());
        assert!(!ended_here(&s), "a running session has no outcome yet");
        s.status = SessionStatus::Failed;
        s.error = Some("[RVB-E014] orphaned: heartbeat went stale (the process running it is gone)".into());
        assert!(!ended_here(&s));
        s.error = Some("cell `x` failed".into());
        assert!(ended_here(&s));
        s.status = SessionStatus::Cancelled;
        assert!(!ended_here(&s));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicI64, Ordering};

    use rvbbit_store::{Job, QueueOptions};
    use rvbbit_testkit::nats::TestNats;
    use tokio::sync::Semaphore;

    use super::*;

    const FINE: &str = "cascade_id: fine\ncells:\n  - name: echo\n    tool: linux_shell\n    \
                        inputs: {command: \"echo fine\"}\n";

    fn job(id: &str) -> Job {
        Job {
            id: id.into(),
            cascade_file: "fine.yaml".into(),
            cascade_text: FINE.into(),
            input: json!({}),
            metadata: Default::default(),
            submitted_at: rvbbit_core::Timestamp::now().to_rfc3339(),
            bundle: None,
        }
    }

    /// A run that panics (here: the run future itself, standing in for a cell that panics) is caught:
    /// the delivery is handed back, dead-lettered on its last delivery with the panic's message, and the
    /// next job on the same worker context runs and is acked.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_run_is_dead_lettered_after_max_deliveries_and_the_worker_keeps_serving() {
        let nats = TestNats::start();
        let dir = tempfile::TempDir::new().unwrap();
        let options = QueueOptions {
            stream: "PANICS".into(),
            ack_wait: Duration::from_secs(5),
            max_deliveries: 2,
            duplicate_window: Duration::from_secs(60),
            configure_consumer: true,
        };
        let queue = rvbbit_store::queue::open(&nats.url(), &options).await.unwrap();
        let store_url = format!("sqlite://{}", dir.path().join("rvbbit.db").display());
        let store = rvbbit_store::open(&store_url, dir.path()).await.unwrap();
        let mut config = rvbbit_core::Config::default();
        config.queue.nak_delay_seconds = 0;
        config.store.url = store_url;
        let ctx = Arc::new(Context {
            config,
            store: store.clone(),
            provider: Arc::new(rvbbit_llm::MockProvider::new()),
            worker: json!({"name": "worker-test"}),
            spill_dir: dir.path().join("spill"),
            settled: AtomicI64::new(0),
            sandbox: None,
        });
        let slots = Arc::new(Semaphore::new(1));
        queue.submit(&job("boom")).await.unwrap();
        for attempt in 1..=2u64 {
            let delivery = queue
                .pull(Duration::from_secs(10))
                .await
                .unwrap()
                .expect("a delivery");
            assert_eq!(delivery.attempt(), attempt);
            let permit = slots.clone().acquire_owned().await.unwrap();
            let exploding = async { panic!("cell `echo` exploded") };
            handle_with(ctx.clone(), delivery, exploding, permit).await;
        }
        let dead = queue.dead_letters().await.unwrap();
        assert_eq!(dead.len(), 1, "{dead:?}");
        assert_eq!((dead[0].id.as_str(), dead[0].deliveries), ("boom", 2));
        assert!(
            dead[0].reason.contains("the run panicked: cell `echo` exploded"),
            "{}",
            dead[0].reason
        );
        // The same worker context serves the next job.
        queue.submit(&job("fine")).await.unwrap();
        let delivery = queue
            .pull(Duration::from_secs(10))
            .await
            .unwrap()
            .expect("a delivery");
        let permit = slots.clone().acquire_owned().await.unwrap();
        handle(ctx.clone(), delivery, CancellationToken::new(), permit).await;
        let done = store
            .sessions(&SessionFilter {
                caller_id: Some("queue-fine".into()),
                ..SessionFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].session.status, SessionStatus::Completed);
        assert_eq!(
            ctx.settled.load(Ordering::Relaxed),
            3,
            "two hand-backs and one ack"
        );
        let status = queue.status().await.unwrap();
        assert_eq!(
            (status.depth, status.in_flight, status.dead_letters),
            (0, 0, 1),
            "{status:?}"
        );
    }
}
