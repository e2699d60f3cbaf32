//! Redelivery resumes, never repeats (issue 22): 300 jobs of a three-cell cascade (a deterministic cell,
//! a 200 ms LLM call to the testkit server, a side-effecting shell tool appending the job's id to a
//! file) on three real `rvbbit worker` processes sharing a throwaway PostgreSQL store and NATS server;
//! one worker is SIGKILLed mid-run. Every job completes exactly once, its redelivery continues after the
//! cells the dead attempt journaled, and a side effect is repeated only where the kill cut it mid-flight.

use std::collections::BTreeMap;
use std::process::Child;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rvbbit_store::Queue;
use rvbbit_testkit::nats::TestNats;
use rvbbit_testkit::{Options, Script, TestServer};
use tempfile::TempDir;

use crate::workers::{count, eventually, exit_within, query, queue_status, runtime, signal};

const JOBS: usize = 300;
const CONCURRENCY: &str = "4";
/// The ack wait the test's workers use (`crate::workers::cmd`).
const ACK_WAIT: Duration = Duration::from_secs(5);

/// The cascade: `prepare` (deterministic), `think` (one LLM call), `effect` (appends `<id> <key>` to the
/// log named in the input: the side effect whose repeats the test counts).
const CASCADE: &str = r#"cascade_id: queue_journal
cells:
  - name: prepare
    tool: linux_shell
    inputs:
      command: 'echo prepared {{ input.id | q }}'
  - name: think
    instructions: 'Say one word about {{ input.id }}.'
  - name: effect
    tool: linux_shell
    inputs:
      command: 'sleep 0.2; echo {{ input.id | q }} "$RVBBIT_IDEMPOTENCY_KEY" >> {{ input.log | q }}; echo appended'
"#;

fn now_micros() -> i64 {
    i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros()).unwrap()
}

fn enqueue(rt: &tokio::runtime::Runtime, nats: &str, log: &str) {
    rt.block_on(async {
        let options = rvbbit_store::QueueOptions {
            ack_wait: ACK_WAIT,
            ..Default::default()
        };
        let queue = rvbbit_store::queue::nats::NatsQueue::open(nats, &options)
            .await
            .unwrap();
        for i in 0..JOBS {
            let job = rvbbit_store::Job {
                id: format!("job-{i}"),
                cascade_file: "journal.yaml".into(),
                cascade_text: CASCADE.into(),
                input: serde_json::json!({"id": format!("job-{i}"), "log": log}),
                metadata: Default::default(),
                submitted_at: "2026-12-07T00:00:00Z".into(),
                bundle: None,
            };
            assert!(!queue.submit(&job).await.unwrap().duplicate);
        }
    });
}

fn worker(dir: &std::path::Path, nats: &str, pg: &str, llm: &str, n: usize) -> Child {
    crate::workers::cmd(dir, nats, pg)
        // The `effect` cell's side effect is an append to a log file of the test, outside any work
        // directory: the sandbox (on by default for workers, docs/sandbox.md) would refuse it.
        .env("RVBBIT_SANDBOX__WORKER", "false")
        .env("RVBBIT_PROVIDER_BASE_URL", llm)
        .env("OPENROUTER_API_KEY", "test-key")
        .env("RVBBIT_DEFAULT_MODEL", "test/model")
        .args([
            "--set",
            "provider.max_retries=0",
            "worker",
            "--concurrency",
            CONCURRENCY,
        ])
        .args(["--tag", &format!("n={n}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// The log's lines as (job id → the idempotency keys it was appended with, in order).
fn appended(log: &std::path::Path) -> BTreeMap<String, Vec<String>> {
    let mut by_job: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in std::fs::read_to_string(log).unwrap_or_default().lines() {
        let (id, key) = line.split_once(' ').unwrap_or((line, ""));
        by_job.entry(id.to_owned()).or_default().push(key.to_owned());
    }
    by_job
}

#[test]
fn three_hundred_jobs_one_worker_killed_resume_from_the_journal_and_effects_repeat_only_when_cut() {
    let rt = runtime();
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let llm = server_rt.block_on(TestServer::start_with(
        Options::new(Script::echo()).latency(Duration::from_millis(200)),
    ));
    let nats = TestNats::start();
    let pg = rvbbit_testkit::postgres::fresh_database();
    let dir = TempDir::new().unwrap();
    let log = dir.path().join("effects.log");
    enqueue(&rt, &nats.url(), &log.display().to_string());
    assert_eq!(
        queue_status(dir.path(), &nats.url(), &pg)["status"]["depth"],
        JOBS
    );

    let mut workers: Vec<Child> = (0..3)
        .map(|n| worker(dir.path(), &nats.url(), &pg, &llm.base_url(), n))
        .collect();
    let victim = workers[0].id();
    let of_victim = format!("invocation_metadata->'worker'->>'name' LIKE '%-{victim}'");
    let victim_journaled = format!(
        "SELECT count(*) FROM sessions s WHERE s.status = 'running' AND s.{of_victim} \
         AND EXISTS (SELECT 1 FROM journal j WHERE j.session_id = s.session_id)"
    );
    // Kill the first worker (SIGKILL: no drain, no nak) once work is under way and at least one of its
    // runs has journaled a cell, so that run's redelivery must continue from the journal.
    assert!(
        eventually(Duration::from_secs(120), || {
            count(
                &rt,
                &pg,
                "SELECT count(*) FROM sessions WHERE status = 'completed'",
            ) >= 30
                && count(&rt, &pg, &victim_journaled) >= 1
        }),
        "the first worker never got a run past its first cell"
    );
    workers[0].kill().unwrap();
    workers[0].wait().unwrap();
    let killed_at = now_micros();
    let clock = Instant::now();

    let completed = "SELECT count(*) FROM sessions WHERE status = 'completed'";
    assert!(
        eventually(Duration::from_secs(240), || count(&rt, &pg, completed)
            >= JOBS as i64),
        "only {} of {JOBS} submissions completed",
        count(&rt, &pg, completed)
    );
    eprintln!(
        "{JOBS} jobs: the last completed {:.1} s after the kill (ack wait {} s)",
        clock.elapsed().as_secs_f64(),
        ACK_WAIT.as_secs()
    );
    assert!(eventually(Duration::from_secs(30), || {
        let s = queue_status(dir.path(), &nats.url(), &pg);
        s["status"]["depth"] == 0 && s["status"]["in_flight"] == 0
    }));

    // Exactly one completed session per submission; nothing failed; only the victim's runs stayed running.
    let r = &query(
        &rt,
        &pg,
        "SELECT count(*), count(DISTINCT caller_id),
                (SELECT count(*) FROM sessions WHERE status NOT IN ('completed', 'running')),
                (SELECT count(*) FROM sessions WHERE status = 'running')
         FROM sessions WHERE status = 'completed'",
    )[0];
    let (done, callers, others, running): (i64, i64, i64, i64) = (r.get(0), r.get(1), r.get(2), r.get(3));
    assert_eq!(
        (done, callers),
        (JOBS as i64, JOBS as i64),
        "every submission completed exactly once"
    );
    assert_eq!(others, 0, "no run failed or was cancelled");
    let orphans = count(
        &rt,
        &pg,
        &format!("SELECT count(*) FROM sessions WHERE status = 'running' AND {of_victim}"),
    );
    assert!(orphans >= 1, "the worker was not killed mid-run");
    assert_eq!(
        running, orphans,
        "only the killed worker's runs were left running"
    );

    // Each orphaned run: its redelivery started within the ack wait (plus scheduling slack), ran on
    // another worker, and continued after the steps the dead attempt journaled: none of those cells ran
    // again. At least one orphan had journaled a step (the kill waited for one).
    let rows = query(
        &rt,
        &pg,
        &format!(
            "SELECT o.caller_id, c.session_id, c.started_at_us, c.invocation_metadata->'worker'->>'name',
                    coalesce((SELECT max(step) FROM journal j WHERE j.session_id = o.session_id), 0)
             FROM sessions o JOIN sessions c ON c.caller_id = o.caller_id AND c.status = 'completed'
             WHERE o.status = 'running' AND o.{of_victim}"
        ),
    );
    assert_eq!(rows.len() as i64, orphans, "every orphaned job completed");
    let mut resumed = 0;
    for row in &rows {
        let (job, session, started, by, step): (String, String, i64, String, i64) =
            (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
        assert!(
            !by.ends_with(&format!("-{victim}")),
            "{job} ran again on the killed worker"
        );
        let late = Duration::from_micros(u64::try_from(started - killed_at).unwrap_or(0));
        assert!(
            late <= ACK_WAIT + Duration::from_secs(5),
            "{job} was redelivered {late:?} after the kill (ack wait {ACK_WAIT:?})"
        );
        let cells = ["prepare", "think", "effect"];
        for (i, cell) in cells.iter().enumerate() {
            let ran = count(
                &rt,
                &pg,
                &format!(
                    "SELECT count(*) FROM events WHERE session_id = '{session}' AND cell_name = '{cell}' \
                     AND kind IN ('tool_call', 'llm_request', 'llm_response')"
                ),
            );
            if (i as i64) < step {
                assert_eq!(
                    ran, 0,
                    "{job}: cell `{cell}` (journaled at step {step}) ran again"
                );
            } else {
                assert!(
                    ran > 0,
                    "{job}: cell `{cell}` after the journaled step {step} did not run"
                );
            }
        }
        if step > 0 {
            resumed += 1;
        }
    }
    assert!(resumed >= 1, "no redelivery continued from a journal");

    // The side effect: every job appended its line; repeats only where the kill cut an effect between
    // its `started` and `done` records (attempts > 1), always under the same idempotency key.
    let lines = appended(&log);
    let repeated: Vec<(&String, &Vec<String>)> = lines.iter().filter(|(_, k)| k.len() > 1).collect();
    assert_eq!(lines.len(), JOBS, "every job id is in the file once at least");
    let cut = query(
        &rt,
        &pg,
        "SELECT effect_key FROM effects WHERE attempts > 1 AND status = 'done'",
    );
    let cut: Vec<String> = cut.iter().map(|r| r.get(0)).collect();
    let per_worker: usize = CONCURRENCY.parse().unwrap();
    assert!(
        cut.len() <= per_worker,
        "more effects cut than the killed worker ran at once: {cut:?}"
    );
    assert!(
        repeated.len() <= cut.len(),
        "repeats {repeated:?} beyond the cut effects {cut:?}"
    );
    for (job, keys) in &repeated {
        assert!(keys.iter().all(|k| k == &keys[0]), "{job}: keys differ: {keys:?}");
        assert!(
            cut.contains(&keys[0]),
            "{job} repeated, but its effect {} was not cut",
            keys[0]
        );
        assert_eq!(keys.len(), 2, "{job} repeated more than once: {keys:?}");
    }
    for (job, keys) in &lines {
        assert_eq!(
            keys[0],
            format!("queue-{job}/3.effect/1"),
            "the idempotency key of {job}"
        );
    }
    // Both shell cells are side-effecting tools (linux_shell): two recorded effects per job.
    let effects = count(&rt, &pg, "SELECT count(*) FROM effects WHERE status = 'done'");
    assert_eq!(
        effects,
        2 * JOBS as i64,
        "one recorded effect per shell call of each job"
    );
    // The LLM: one call per job, plus at most one per redelivered job (its dead attempt may have been
    // cut inside `think`, or before its session record reached the store), never more than the killed
    // worker ran at once.
    let calls = llm.requests();
    let redelivered = count(
        &rt,
        &pg,
        "SELECT count(*) FROM sessions WHERE status = 'completed' \
         AND (invocation_metadata->>'attempt')::int > 1",
    );
    assert!(
        redelivered >= orphans && redelivered <= per_worker as i64,
        "{redelivered} redelivered job(s), {orphans} orphaned run(s), the killed worker ran {per_worker} at most"
    );
    assert!(
        calls >= JOBS as u64 && calls <= JOBS as u64 + u64::try_from(redelivered).unwrap(),
        "{calls} LLM calls for {JOBS} jobs and {redelivered} redelivered"
    );
    eprintln!(
        "{orphans} orphaned run(s), {resumed} continued from the journal, {} effect(s) cut, {} repeated, {calls} LLM calls",
        cut.len(),
        repeated.len()
    );

    let status = queue_status(dir.path(), &nats.url(), &pg);
    assert_eq!(status["status"]["dead_letters"], 0, "{status}");
    for w in &mut workers[1..] {
        signal(w, rustix::process::Signal::TERM);
        assert_eq!(exit_within(w, Duration::from_secs(30)), Some(0));
    }
    drop(server_rt);
}
