//! `rvbbit submit`, `rvbbit worker` and `rvbbit queue` as real processes, on a throwaway NATS server
//! (JetStream, from testkit) and a throwaway PostgreSQL store (issue 22): deduplication, poison jobs, draining on SIGTERM, and the errors of a missing or malformed queue.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use rvbbit_store::Queue;
use rvbbit_testkit::nats::TestNats;
use serde_json::Value;
use tempfile::TempDir;

use crate::run_command::write;
use crate::rvbbit;

/// A deterministic cascade (no LLM) whose run lasts a little, so a worker can be killed mid-run.
const SLOW: &str = "cascade_id: queue_slow\ncells:\n  - name: work\n    tool: linux_shell\n    inputs:\n      command: 'sleep {{ input.sleep | default(0.3) | q }}; echo done {{ input.n | q }}'\n";

pub(super) fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `rvbbit` in `dir` with the queue at `nats`, the store at `pg`, and short queue timings (an ack wait of
/// 5 s: long enough that a worker slowed by a loaded machine still reports progress in time).
pub(super) fn cmd(dir: &Path, nats: &str, pg: &str) -> Command {
    let mut c = rvbbit(dir);
    c.env("RVBBIT_QUEUE_URL", nats)
        .env("RVBBIT_STORE_URL", pg)
        .env("RVBBIT_QUEUE__ACK_WAIT_SECONDS", "5")
        .env("RVBBIT_QUEUE__NAK_DELAY_SECONDS", "0")
        .env("RVBBIT_QUEUE__DRAIN_GRACE_SECONDS", "20")
        .stdin(Stdio::null());
    c
}

pub(super) fn worker(dir: &Path, nats: &str, pg: &str, extra: &[&str]) -> Child {
    cmd(dir, nats, pg)
        .arg("worker")
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

pub(super) fn signal(child: &Child, signal: rustix::process::Signal) {
    rustix::process::kill_process(rustix::process::Pid::from_child(child), signal).unwrap();
}

/// Wait for `child` to exit within `limit`; its exit code (`None` when killed by a signal).
pub(super) fn exit_within(child: &mut Child, limit: Duration) -> Option<i32> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        assert!(
            Instant::now() < deadline,
            "the worker did not exit within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub(super) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// One query's rows against the store's database.
pub(super) fn query(rt: &tokio::runtime::Runtime, url: &str, sql: &str) -> Vec<tokio_postgres::Row> {
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        client.query(sql, &[]).await.unwrap()
    })
}

/// The one number `sql` selects; 0 while no worker has created the store's tables yet.
pub(super) fn count(rt: &tokio::runtime::Runtime, url: &str, sql: &str) -> i64 {
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        match client.query_one(sql, &[]).await {
            Ok(row) => row.get(0),
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => 0,
            Err(e) => panic!("{sql}: {e}"),
        }
    })
}

/// Poll `check` every 100 ms until it is true or `limit` passes; whether it became true.
pub(super) fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    check()
}

pub(super) fn queue_status(dir: &Path, nats: &str, pg: &str) -> Value {
    let out = cmd(dir, nats, pg)
        .args(["--output", "json", "queue", "status"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn submit(dir: &Path, nats: &str, pg: &str, args: &[&str]) -> Output {
    cmd(dir, nats, pg).arg("submit").args(args).output().unwrap()
}

#[test]
fn the_same_submission_id_twice_is_one_job_and_wait_exits_like_run() {
    let rt = runtime();
    let nats = TestNats::start();
    let pg = rvbbit_testkit::postgres::fresh_database();
    let dir = TempDir::new().unwrap();
    let cascade = write(dir.path(), "slow.yaml", SLOW);
    let first = submit(
        dir.path(),
        &nats.url(),
        &pg,
        &[&cascade, "--id", "dup", "--input", "{\"n\": 1}"],
    );
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    let again = submit(
        dir.path(),
        &nats.url(),
        &pg,
        &[&cascade, "--id", "dup", "--input", "{\"n\": 2}"],
    );
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already queued"),
        "{}",
        text(&again)
    );
    let fresh = submit(dir.path(), &nats.url(), &pg, &[&cascade, "--output", "json"]);
    let doc: Value = serde_json::from_slice(&fresh.stdout).unwrap();
    assert_eq!(doc["duplicate"], false, "{doc}");
    assert_eq!(queue_status(dir.path(), &nats.url(), &pg)["status"]["depth"], 2);
    let health = cmd(dir.path(), &nats.url(), &pg)
        .args(["--output", "json", "health", "--no-provider"])
        .output()
        .unwrap();
    let doc: Value = serde_json::from_slice(&health.stdout).unwrap();
    assert_eq!(
        (
            health.status.code(),
            doc["queue"]["reachable"].clone(),
            doc["queue"]["depth"].clone()
        ),
        (Some(0), true.into(), 2.into()),
        "{doc}"
    );

    let mut w = worker(dir.path(), &nats.url(), &pg, &[]);
    let waited = submit(
        dir.path(),
        &nats.url(),
        &pg,
        &[&cascade, "--id", "waited", "--input", "{\"n\": 7}", "--wait"],
    );
    assert_eq!(waited.status.code(), Some(0), "{}", text(&waited));
    assert_eq!(String::from_utf8_lossy(&waited.stdout), "waited\ndone 7\n");
    // A run that fails: --wait exits with its code, as `rvbbit run` would (exit 3: a tool timed out).
    let failing = write(
        dir.path(),
        "fails.yaml",
        "cascade_id: fails\ncells:\n  - name: x\n    tool: linux_shell\n    inputs: {command: 'sleep 10'}\n    timeout: 200ms\n",
    );
    let failed = submit(dir.path(), &nats.url(), &pg, &[&failing, "--wait"]);
    let run = rvbbit(dir.path()).args(["run", &failing]).output().unwrap();
    assert_eq!(
        failed.status.code(),
        run.status.code(),
        "{}\n{}",
        text(&failed),
        text(&run)
    );
    assert_eq!(failed.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&failed.stderr).contains("error[RVB-T002]"),
        "{}",
        text(&failed)
    );

    assert!(eventually(Duration::from_secs(30), || {
        count(
            &rt,
            &pg,
            "SELECT count(*) FROM sessions WHERE caller_id = 'queue-dup' AND status = 'completed'",
        ) == 1
    }));
    let dup = query(
        &rt,
        &pg,
        "SELECT count(*), min(input->>'n') FROM sessions WHERE caller_id = 'queue-dup'",
    );
    assert_eq!(
        (dup[0].get::<_, i64>(0), dup[0].get::<_, Option<String>>(1)),
        (1, Some("1".into())),
        "the first submission won"
    );
    signal(&w, rustix::process::Signal::TERM);
    assert_eq!(exit_within(&mut w, Duration::from_secs(30)), Some(0));
}

#[test]
fn a_missing_or_malformed_queue_is_a_coded_error_naming_it() {
    let dir = TempDir::new().unwrap();
    let cascade = write(dir.path(), "slow.yaml", SLOW);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("nats://ada:hunter2@127.0.0.1:{port}");
    for args in [
        vec!["submit", cascade.as_str()],
        vec!["worker"],
        vec!["queue", "status"],
    ] {
        let out = rvbbit(dir.path())
            .env("RVBBIT_QUEUE_URL", &url)
            .args(&args)
            .output()
            .unwrap();
        let t = text(&out);
        assert_eq!(out.status.code(), Some(5), "{args:?}: {t}");
        assert!(t.contains("error[RVB-S011]"), "{t}");
        assert!(t.contains(&format!("nats://ada:****@127.0.0.1:{port}")), "{t}");
        assert!(!t.contains("hunter2"), "{t}");
        assert!(t.contains("hint: start `nats-server -js`"), "{t}");
    }
    // `rvbbit health` probes the queue when one is configured: unreachable is unhealthy (exit 5).
    let out = rvbbit(dir.path())
        .env("RVBBIT_QUEUE_URL", &url)
        .args(["health", "--no-provider"])
        .output()
        .unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(5), "{t}");
    assert!(
        t.contains(&format!(
            "FAIL  queue: queue `nats://ada:****@127.0.0.1:{port}` is unavailable"
        )),
        "{t}"
    );
    std::fs::write(
        dir.path().join("rvbbit.toml"),
        "[queue]\nurl = \"localhost:4222\"\n",
    )
    .unwrap();
    let out = rvbbit(dir.path()).args(["submit", &cascade]).output().unwrap();
    assert_eq!(out.status.code(), Some(6), "{}", text(&out));
    assert!(text(&out).contains("queue.url"), "{}", text(&out));
    std::fs::remove_file(dir.path().join("rvbbit.toml")).unwrap();
    let out = rvbbit(dir.path()).args(["queue", "status"]).output().unwrap();
    assert_eq!(out.status.code(), Some(6), "{}", text(&out));
    assert!(text(&out).contains("`queue.url` is not set"), "{}", text(&out));
    let out = rvbbit(dir.path())
        .args(["worker", "--queue", "http://x:1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6), "{}", text(&out));
    assert!(
        text(&out).contains("`--queue http://x:1` is not a NATS URL"),
        "{}",
        text(&out)
    );
    // An invalid cascade is refused before anything is enqueued (no queue needed to say so).
    let bad = write(dir.path(), "bad.yaml", "cascade_id: bad\ncells: [\n");
    let out = rvbbit(dir.path())
        .env("RVBBIT_QUEUE_URL", &url)
        .args(["submit", &bad])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("nothing was submitted"), "{}", text(&out));
}

#[test]
fn poison_jobs_are_dead_lettered_with_their_reason_and_the_worker_keeps_serving() {
    let rt = runtime();
    let nats = TestNats::start();
    let pg = rvbbit_testkit::postgres::fresh_database();
    let dir = TempDir::new().unwrap();
    // A cascade that does not parse and a message that is not a job, enqueued past `rvbbit submit`.
    rt.block_on(async {
        let options = rvbbit_store::QueueOptions {
            ack_wait: Duration::from_secs(5),
            max_deliveries: 3,
            ..Default::default()
        };
        let queue = rvbbit_store::queue::nats::NatsQueue::open(&nats.url(), &options)
            .await
            .unwrap();
        let job = rvbbit_store::Job {
            id: "unparseable".into(),
            cascade_file: "broken.yaml".into(),
            cascade_text: "cascade_id: broken\ncells: [\n".into(),
            input: serde_json::json!({}),
            metadata: Default::default(),
            submitted_at: "2026-01-01T00:00:00Z".into(),
            bundle: None,
        };
        queue.submit(&job).await.unwrap();
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Rvbbit-Submission", "garbage");
        queue
            .publish_raw("garbage", headers, b"{not json".to_vec())
            .await
            .unwrap();
    });
    let cascade = write(dir.path(), "slow.yaml", SLOW);
    let mut w = cmd(dir.path(), &nats.url(), &pg)
        .env("RVBBIT_QUEUE__MAX_DELIVERIES", "3")
        .arg("worker")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = cmd(dir.path(), &nats.url(), &pg)
        .env("RVBBIT_QUEUE__MAX_DELIVERIES", "3")
        .args([
            "submit",
            &cascade,
            "--id",
            "good",
            "--input",
            "{\"n\": 5}",
            "--wait",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let status = |dir: &Path| {
        let out = cmd(dir, &nats.url(), &pg)
            .env("RVBBIT_QUEUE__MAX_DELIVERIES", "3")
            .args(["--output", "json", "queue", "status"])
            .output()
            .unwrap();
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    assert!(
        eventually(
            Duration::from_secs(30),
            || status(dir.path())["status"]["dead_letters"] == 2
        ),
        "{}",
        status(dir.path())
    );
    let doc = status(dir.path());
    let dead = doc["dead_letters"].as_array().unwrap();
    let reason = |id: &str| {
        dead.iter()
            .find(|d| d["id"] == id)
            .map(|d| (d["reason"].as_str().unwrap().to_owned(), d["deliveries"].clone()))
            .unwrap()
    };
    let (why, deliveries) = reason("unparseable");
    assert!(why.contains("the cascade is invalid: broken.yaml:"), "{why}");
    assert_eq!(deliveries, 3);
    let (why, _) = reason("garbage");
    assert!(why.contains("is not a job"), "{why}");
    assert_eq!(
        (doc["status"]["depth"].clone(), doc["status"]["messages"].clone()),
        (0.into(), 0.into()),
        "{doc}"
    );
    assert!(w.try_wait().unwrap().is_none(), "the worker stopped");
    // The text view names the reasons; retry-dead puts a letter back (it will fail again here).
    let out = cmd(dir.path(), &nats.url(), &pg)
        .env("RVBBIT_QUEUE__MAX_DELIVERIES", "3")
        .args(["queue", "status"])
        .output()
        .unwrap();
    let t = text(&out);
    assert!(
        t.contains("dead letters") && t.contains("unparseable") && t.contains("is not a job"),
        "{t}"
    );
    let out = cmd(dir.path(), &nats.url(), &pg)
        .env("RVBBIT_QUEUE__MAX_DELIVERIES", "3")
        .args(["queue", "retry-dead", "nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    assert!(
        text(&out).contains("RVB-S013") && text(&out).contains("no dead letter for submission `nope`"),
        "{}",
        text(&out)
    );
    let out = cmd(dir.path(), &nats.url(), &pg)
        .env("RVBBIT_QUEUE__MAX_DELIVERIES", "3")
        .args(["queue", "retry-dead", "garbage"])
        .output()
        .unwrap();
    assert_eq!(
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string()
        ),
        (Some(0), "garbage\n".into()),
        "{}",
        text(&out)
    );
    assert_eq!(
        count(
            &rt,
            &pg,
            "SELECT count(*) FROM sessions WHERE status = 'completed'"
        ),
        1
    );
    signal(&w, rustix::process::Signal::TERM);
    assert_eq!(exit_within(&mut w, Duration::from_secs(30)), Some(0));
}

#[test]
fn sigterm_drains_a_worker_its_job_in_flight_finishes_and_it_exits_zero() {
    let rt = runtime();
    let nats = TestNats::start();
    let pg = rvbbit_testkit::postgres::fresh_database();
    let dir = TempDir::new().unwrap();
    let cascade = write(dir.path(), "slow.yaml", SLOW);
    let out = submit(
        dir.path(),
        &nats.url(),
        &pg,
        &[&cascade, "--id", "long", "--input", "{\"n\": 1, \"sleep\": 3}"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let mut w = worker(dir.path(), &nats.url(), &pg, &["--tag", "region=eu"]);
    assert!(eventually(Duration::from_secs(30), || {
        count(&rt, &pg, "SELECT count(*) FROM sessions WHERE status = 'running'") == 1
    }));
    // The worker is in the store's registry, live, with its tags and slots.
    let status = queue_status(dir.path(), &nats.url(), &pg);
    assert_eq!(status["live_workers"], 1, "{status}");
    let me = &status["workers"][0];
    assert_eq!(me["name"], format!("worker-{}-{}", host(), w.id()), "{status}");
    assert_eq!(
        (
            me["status"].clone(),
            me["tags"]["region"].clone(),
            me["slots"].clone()
        ),
        ("running".into(), "eu".into(), 1.into()),
        "{status}"
    );
    // A second job waits in the queue: the draining worker must not take it.
    let out = submit(dir.path(), &nats.url(), &pg, &[&cascade, "--id", "next"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    signal(&w, rustix::process::Signal::TERM);
    assert_eq!(exit_within(&mut w, Duration::from_secs(30)), Some(0));
    let rows = query(&rt, &pg, "SELECT caller_id, status, output::text FROM sessions");
    assert_eq!(rows.len(), 1, "the worker took no job after SIGTERM");
    assert_eq!(rows[0].get::<_, Option<String>>(0).as_deref(), Some("queue-long"));
    assert_eq!(rows[0].get::<_, String>(1), "completed");
    assert!(rows[0].get::<_, String>(2).contains("done 1"));
    let status = queue_status(dir.path(), &nats.url(), &pg);
    assert_eq!(
        (
            status["status"]["depth"].clone(),
            status["status"]["in_flight"].clone()
        ),
        (1.into(), 0.into()),
        "{status}"
    );
    // Its last row says it stopped cleanly, after settling its one job.
    assert_eq!(status["live_workers"], 0, "{status}");
    assert_eq!(
        (
            status["workers"][0]["status"].clone(),
            status["workers"][0]["settled"].clone()
        ),
        ("stopped".into(), 1.into()),
        "{status}"
    );
    let shown = text(
        &cmd(dir.path(), &nats.url(), &pg)
            .args(["queue", "status"])
            .output()
            .unwrap(),
    );
    assert!(
        shown.contains("WORKER") && shown.contains("region=eu") && shown.contains("stopped"),
        "{shown}"
    );
}

/// This machine's host name, as the worker names itself.
fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

#[test]
fn a_drain_past_its_grace_cancels_the_run_and_hands_the_job_back() {
    let rt = runtime();
    let nats = TestNats::start();
    let pg = rvbbit_testkit::postgres::fresh_database();
    let dir = TempDir::new().unwrap();
    let cascade = write(dir.path(), "slow.yaml", SLOW);
    let out = submit(
        dir.path(),
        &nats.url(),
        &pg,
        &[
            &cascade,
            "--id",
            "endless",
            "--input",
            "{\"n\": 1, \"sleep\": 60}",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let mut w = cmd(dir.path(), &nats.url(), &pg)
        .env("RVBBIT_QUEUE__DRAIN_GRACE_SECONDS", "1")
        .env("RVBBIT_QUEUE__NAK_DELAY_SECONDS", "30")
        .arg("worker")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(eventually(Duration::from_secs(30), || {
        count(&rt, &pg, "SELECT count(*) FROM sessions WHERE status = 'running'") == 1
    }));
    let started = Instant::now();
    signal(&w, rustix::process::Signal::TERM);
    assert_eq!(exit_within(&mut w, Duration::from_secs(30)), Some(0));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the 60 s run was not cut at the 1 s grace"
    );
    let rows = query(
        &rt,
        &pg,
        "SELECT status FROM sessions WHERE caller_id = 'queue-endless'",
    );
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, String>(0), "cancelled");
    // Handed back (nak with a 30 s delay), not acked: still on the queue, waiting to be delivered again.
    let status = queue_status(dir.path(), &nats.url(), &pg);
    assert_eq!(status["status"]["messages"], 1, "{status}");
    assert_eq!(status["status"]["dead_letters"], 0, "{status}");
}

#[test]
fn a_worker_rides_out_a_nats_restart() {
    let nats = TestNats::start();
    let pg = rvbbit_testkit::postgres::fresh_database();
    let dir = TempDir::new().unwrap();
    let cascade = write(dir.path(), "slow.yaml", SLOW);
    let mut w = worker(dir.path(), &nats.url(), &pg, &[]);
    let out = submit(
        dir.path(),
        &nats.url(),
        &pg,
        &[&cascade, "--id", "before", "--input", "{\"n\": 1}", "--wait"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // The server crashes and comes back on the same port and store; the worker reconnects by itself.
    nats.kill();
    std::thread::sleep(Duration::from_secs(1));
    nats.restart();
    let out = submit(
        dir.path(),
        &nats.url(),
        &pg,
        &[&cascade, "--id", "after", "--input", "{\"n\": 2}", "--wait"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "after\ndone 2\n");
    assert!(
        w.try_wait().unwrap().is_none(),
        "the worker stopped with the server"
    );
    signal(&w, rustix::process::Signal::TERM);
    assert_eq!(exit_within(&mut w, Duration::from_secs(30)), Some(0));
}

#[test]
fn a_job_that_cannot_start_where_it_runs_ends_dead_and_wait_says_why() {
    let nats = TestNats::start();
    let pg = rvbbit_testkit::postgres::fresh_database();
    let dir = TempDir::new().unwrap();
    let cascade = write(dir.path(), "slow.yaml", SLOW);
    // The workers' limits are stricter than the submitter's: the same text is too large for them.
    let mut w = cmd(dir.path(), &nats.url(), &pg)
        .env("RVBBIT_QUEUE__MAX_DELIVERIES", "3")
        .env("RVBBIT_LIMITS__YAML_NODES", "4")
        .arg("worker")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = submit(
        dir.path(),
        &nats.url(),
        &pg,
        &[&cascade, "--id", "too-big", "--wait"],
    );
    let t = text(&out);
    assert_eq!(out.status.code(), Some(5), "{t}");
    assert!(
        t.contains("error[RVB-S013]: submission too-big was given up after 3 deliveries"),
        "{t}"
    );
    assert!(
        t.contains("the cascade is invalid: slow.yaml:") && t.contains("[RVB-V024]"),
        "{t}"
    );
    assert!(t.contains("rvbbit queue retry-dead too-big"), "{t}");
    assert!(w.try_wait().unwrap().is_none(), "the worker stopped");
    signal(&w, rustix::process::Signal::TERM);
    assert_eq!(exit_within(&mut w, Duration::from_secs(30)), Some(0));
}
