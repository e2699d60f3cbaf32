//! The ClickHouse event sink (`[store.events] url`) with real `rvbbit` processes and a real server (the
//! testkit's throwaway `clickhouse-server`): a server killed with SIGKILL in the middle of 50 runs loses
//! and duplicates nothing; an unreachable sink never fails a run; bad URLs and credentials say so.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rvbbit_testkit::clickhouse::{self, TestClickHouse};
use tempfile::TempDir;

use crate::rvbbit;

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn example() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/run_hello_shell.yaml")
        .display()
        .to_string()
}

/// `rvbbit` in `dir` (its store the default SQLite file there) with the events sink at `url`.
fn with_sink(dir: &Path, url: &str) -> Command {
    let mut cmd = rvbbit(dir);
    cmd.env("RVBBIT_STORE_EVENTS_URL", url)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdin(Stdio::null());
    cmd
}

fn run_hello(dir: &Path, url: &str) -> Output {
    with_sink(dir, url)
        .args(["run", &example(), "--input", r#"{"name": "Ada"}"#])
        .output()
        .unwrap()
}

/// Events in the primary (SQLite) store of `dir`.
fn primary_events(dir: &Path) -> u64 {
    let db = rusqlite::Connection::open(dir.join(".rvbbit/rvbbit.db")).unwrap();
    db.query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .unwrap()
}

/// Lines waiting in the sink's spill files of `dir` (not in `replayed/`).
fn sink_spill_lines(dir: &Path) -> usize {
    let spill = dir.join(".rvbbit/spill/events-sink");
    std::fs::read_dir(&spill)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .map(|p| std::fs::read_to_string(p).unwrap().lines().count())
        .sum()
}

/// `(rows, distinct event ids, rows after FINAL)` of the sink's events table in database `db`.
fn sink_counts(server: &TestClickHouse, db: &str) -> (u64, u64, u64) {
    let out = server.query(&format!(
        "SELECT count(), uniqExact(event_id), (SELECT count() FROM {db}.events FINAL) FROM {db}.events \
         FORMAT TabSeparated"
    ));
    let n: Vec<u64> = out.trim().split('\t').map(|v| v.parse().unwrap()).collect();
    (n[0], n[1], n[2])
}

/// MUST SHOW (issue 17 item 2): ClickHouse is killed with SIGKILL while 50 runs go on, then restarted
/// on the same data directory and port. Every run succeeds; every event reaches ClickHouse exactly once
/// (distinct ids = rows after FINAL = events in the primary store) and the sink's spill is emptied.
#[test]
fn clickhouse_killed_in_the_middle_of_50_runs_gets_every_event_exactly_once() {
    if !clickhouse::startable() {
        return;
    }
    let server = Arc::new(TestClickHouse::start().unwrap());
    let url = server.create_database();
    let db = url.rsplit('/').next().unwrap().to_owned();
    let dir = TempDir::new().unwrap();
    let done = Arc::new(AtomicUsize::new(0));
    let runs = {
        let (dir, url, done) = (dir.path().to_owned(), url.clone(), done.clone());
        std::thread::spawn(move || {
            let mut spilled_runs = 0;
            for i in 0..50 {
                let out = run_hello(&dir, &url);
                assert_eq!(out.status.code(), Some(0), "run {i}: {}", text(&out));
                if String::from_utf8_lossy(&out.stderr).contains("The events sink failed") {
                    spilled_runs += 1;
                }
                done.fetch_add(1, Ordering::SeqCst);
            }
            spilled_runs
        })
    };
    let wait_for = |n: usize| {
        while done.load(Ordering::SeqCst) < n {
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    // Killed at whatever point run 15 has reached (mid-run, maybe mid-INSERT), back during run ~30.
    wait_for(15);
    server.kill().unwrap();
    wait_for(30);
    server.restart().unwrap();
    let spilled_runs = runs.join().unwrap();
    assert!(
        spilled_runs >= 10,
        "runs while ClickHouse was down spilled: {spilled_runs}"
    );

    let primary = primary_events(dir.path());
    let db_file = rusqlite::Connection::open(dir.path().join(".rvbbit/rvbbit.db")).unwrap();
    let sessions: u64 = db_file
        .query_row("SELECT count(DISTINCT session_id) FROM events", [], |r| r.get(0))
        .unwrap();
    assert_eq!(sessions, 50, "the primary store holds the events of 50 runs");
    assert!(primary >= 50 * 10, "{primary} events");
    let (rows, distinct, final_rows) = sink_counts(&server, &db);
    assert_eq!(
        (distinct, final_rows),
        (primary, primary),
        "each event once in ClickHouse (rows as stored before merges: {rows})"
    );
    assert_eq!(
        sink_spill_lines(dir.path()),
        0,
        "the sink spill was replayed and emptied"
    );
    eprintln!(
        "events sink: 50 runs, {spilled_runs} spilled while ClickHouse was down; primary {primary} events; \
         ClickHouse rows {rows}, distinct ids {distinct}, rows after FINAL {final_rows}"
    );
    let health = with_sink(dir.path(), &url)
        .args(["health", "--no-provider", "--output", "json"])
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&health.stdout).unwrap();
    assert_eq!(json["events_sink"]["reachable"], true, "{}", text(&health));
    assert_eq!(json["events_sink"]["pending_events"], 0);
    let latency = json["events_sink"]["latency_ms"].as_f64().unwrap();
    assert!(latency > 0.0 && latency < 5_000.0, "one round trip: {latency} ms");
    assert!(
        json["events_sink"]["rows"].as_u64().unwrap() >= primary,
        "rows as stored, duplicates until merged: {json}"
    );
}

/// An unreachable sink: the run succeeds (the store has its events), the events spill for the sink, one
/// warning names the URL with its password masked; health reports the lag; once a server answers,
/// `rvbbit db replay` sends them and the spill is empty.
#[test]
fn an_unreachable_sink_spills_warns_once_and_db_replay_sends_the_events_later() {
    if !clickhouse::available() {
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead = format!("http://ada:hunter2@127.0.0.1:{port}/rvbbit");
    let dir = TempDir::new().unwrap();
    for _ in 0..2 {
        let out = run_hello(dir.path(), &dead);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.matches("The events sink failed").count(), 1, "{stderr}");
        assert!(stderr.contains(&format!("ada:****@127.0.0.1:{port}")), "{stderr}");
        assert!(!stderr.contains("hunter2"), "{stderr}");
    }
    let primary = primary_events(dir.path());
    assert_eq!(sink_spill_lines(dir.path()) as u64, primary);

    let health = with_sink(dir.path(), &dead)
        .args(["health", "--no-provider", "--output", "json"])
        .output()
        .unwrap();
    assert_eq!(
        health.status.code(),
        Some(0),
        "the sink never fails health: {}",
        text(&health)
    );
    let json: serde_json::Value = serde_json::from_slice(&health.stdout).unwrap();
    assert_eq!(json["events_sink"]["reachable"], false);
    assert_eq!(json["events_sink"]["pending_events"], primary);
    let doctor = with_sink(dir.path(), &dead).arg("doctor").output().unwrap();
    let doctor_text = String::from_utf8_lossy(&doctor.stdout);
    assert!(
        doctor_text.contains("events sink") && doctor_text.contains("unreachable"),
        "{}",
        text(&doctor)
    );
    assert!(!doctor_text.contains("hunter2"));

    let url = clickhouse::fresh_database();
    let replay = with_sink(dir.path(), &url)
        .args(["db", "replay", "--output", "json"])
        .output()
        .unwrap();
    assert_eq!(replay.status.code(), Some(0), "{}", text(&replay));
    let json: serde_json::Value = serde_json::from_slice(&replay.stdout).unwrap();
    assert_eq!(json["events_sink"]["records"], primary);
    assert_eq!(sink_spill_lines(dir.path()), 0);
    let db = url.rsplit('/').next().unwrap();
    let (_, distinct, final_rows) = sink_counts(clickhouse::shared(), db);
    assert_eq!((distinct, final_rows), (primary, primary));
}

#[test]
fn a_malformed_events_url_is_a_coded_config_error_naming_the_key() {
    let dir = TempDir::new().unwrap();
    std::fs::write(
        dir.path().join("rvbbit.toml"),
        "[store.events]\nurl = \"clickhouse://ada:hunter2@ch:9000/db\"\n",
    )
    .unwrap();
    let out = rvbbit(dir.path())
        .args(["run", &example()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("RVB-C003") && stderr.contains("store.events.url"),
        "{stderr}"
    );
    assert!(stderr.contains("clickhouse://ada:****@ch:9000/db"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[test]
fn wrong_sink_credentials_say_so_and_the_run_still_succeeds() {
    if !clickhouse::available() || clickhouse::is_external() {
        return;
    }
    let url = clickhouse::fresh_database().replacen("http://default@", "http://rvbbit:hunter3@", 1);
    let dir = TempDir::new().unwrap();
    let out = run_hello(dir.path(), &url);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("refused the credentials"), "{stderr}");
    assert!(!stderr.contains("hunter3"), "{stderr}");
    let health = with_sink(dir.path(), &url)
        .args(["health", "--no-provider"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&health.stdout);
    assert!(
        stdout.contains("WARN  events sink") && stdout.contains("refused the credentials"),
        "{stdout}"
    );
}

/// A sink host that accepts connections but never answers: `rvbbit health` still answers within a few
/// seconds (it waits 5 s for the sink), reports the sink unreachable, and exits 0.
#[test]
fn health_does_not_hang_on_a_sink_that_never_answers() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://default@{}/rvbbit", silent.local_addr().unwrap());
    let dir = TempDir::new().unwrap();
    let started = std::time::Instant::now();
    let out = with_sink(dir.path(), &url)
        .args(["health", "--no-provider", "--output", "json"])
        .output()
        .unwrap();
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["events_sink"]["reachable"], false);
    assert_eq!(json["events_sink"]["latency_ms"], serde_json::Value::Null);
    assert_eq!(json["events_sink"]["error"], "no answer within 5 s");
    assert!(took < Duration::from_secs(20), "took {took:?}");
    drop(silent);
}

/// A sink host that accepts connections but never answers does not hold a run: opening it waits 5 s,
/// an INSERT 15 s, then the events spill (and later batches spill at once until the reprobe delay).
#[test]
fn a_run_is_not_held_by_a_sink_that_never_answers() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://default@{}/rvbbit", silent.local_addr().unwrap());
    let dir = TempDir::new().unwrap();
    let started = std::time::Instant::now();
    let out = run_hello(dir.path(), &url);
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(took < Duration::from_secs(45), "took {took:?}");
    assert_eq!(sink_spill_lines(dir.path()) as u64, primary_events(dir.path()));
    drop(silent);
}

/// With an events sink, `all_data` and `rvbbit costs` read ClickHouse: an event written only there is
/// counted and priced; with the sink down they answer from the store (which holds every event the runs
/// wrote) and say so.
#[test]
fn all_data_and_costs_read_the_sink_and_fall_back_to_the_store_when_it_is_down() {
    if !clickhouse::startable() {
        return;
    }
    let server = TestClickHouse::start().unwrap();
    let url = server.create_database();
    let dir = TempDir::new().unwrap();
    for _ in 0..3 {
        let out = run_hello(dir.path(), &url);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }
    let primary = primary_events(dir.path());
    // One priced event that only ClickHouse holds.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let sink = rvbbit_store::open_sink(&url).await.unwrap();
        let mut e = rvbbit_core::Event::new(
            rvbbit_core::EventKind::LlmResponse,
            "only-in-clickhouse".parse().unwrap(),
            0,
        );
        e.cost = Some(rvbbit_core::MicroUsd::from_micros(777));
        e.cost_status = rvbbit_core::CostStatus::Exact;
        sink.append(&[e]).await.unwrap();
    });
    let count = |cmd: &mut Command| -> (u64, String) {
        let out = cmd
            .args(["--output", "json", "sql", "SELECT count(*) AS n FROM all_data"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (
            json["rows"][0]["n"].as_u64().unwrap(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let cost = |cmd: &mut Command| -> (i64, String) {
        let out = cmd
            .args(["--output", "json", "costs", "summary"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (
            json["total"]["cost"].as_i64().unwrap_or(0),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (n, stderr) = count(&mut with_sink(dir.path(), &url));
    assert_eq!(n, primary + 1, "all_data reads ClickHouse: {stderr}");
    assert_eq!(
        count(&mut rvbbit(dir.path())).0,
        primary,
        "without the sink: the store"
    );
    assert_eq!(
        cost(&mut with_sink(dir.path(), &url)).0,
        777,
        "costs read ClickHouse"
    );
    assert_eq!(cost(&mut rvbbit(dir.path())).0, 0);

    server.kill().unwrap();
    let (n, stderr) = count(&mut with_sink(dir.path(), &url));
    assert_eq!(n, primary, "the store answers while the sink is down");
    assert!(stderr.contains("reading the store instead"), "{stderr}");
    let (c, stderr) = cost(&mut with_sink(dir.path(), &url));
    assert_eq!(c, 0);
    assert!(stderr.contains("reading the store instead"), "{stderr}");
}
