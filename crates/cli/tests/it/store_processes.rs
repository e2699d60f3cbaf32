//! Real `rvbbit` processes against one SQLite store: concurrent writers, SIGTERM during a burst, and a
//! store locked mid-run (spill, then `db replay` exactly once).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};

use crate::rvbbit;

fn db(dir: &Path) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(dir.join(".rvbbit/rvbbit.db")).unwrap();
    c.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
    c
}

fn count(c: &rusqlite::Connection, sql: &str) -> i64 {
    c.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// Read the child's stderr until a line starting with `accepted`; return the reader for the rest.
fn wait_for_progress(child: &mut Child) -> BufReader<std::process::ChildStderr> {
    let mut reader = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "the process ended before reporting progress"
        );
        if line.starts_with("accepted") {
            return reader;
        }
    }
}

#[test]
fn four_processes_writing_25k_events_each_store_exactly_100k() {
    let dir = tempfile::tempdir().unwrap();
    // Create the store first so the four processes race on writes, not only on creation.
    assert!(
        rvbbit(dir.path())
            .args(["db", "init"])
            .status()
            .unwrap()
            .success()
    );
    let children: Vec<Child> = (0..4)
        .map(|i| {
            rvbbit(dir.path())
                .args([
                    "debug",
                    "emit",
                    "--count",
                    "25000",
                    "--session",
                    &format!("proc-{i}"),
                ])
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let c = db(dir.path());
    assert_eq!(count(&c, "SELECT count(*) FROM events"), 100_000);
    assert_eq!(count(&c, "SELECT count(DISTINCT event_id) FROM events"), 100_000);
    for i in 0..4 {
        let s = format!("proc-{i}");
        let n: (i64, i64, i64) = c
            .query_row(
                "SELECT count(DISTINCT seq), min(seq), max(seq) FROM events WHERE session_id = ?1",
                [&s],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(n, (25_000, 0, 24_999), "{s}");
    }
    assert_eq!(
        count(&c, "SELECT count(*) FROM sessions WHERE status = 'completed'"),
        4
    );
}

#[test]
fn sigterm_during_a_burst_keeps_every_accepted_event() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = rvbbit(dir.path())
        .args([
            "debug",
            "emit",
            "--count",
            "100000000",
            "--session",
            "burst",
            "--progress",
            "5000",
        ])
        .args(["--output", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _stderr = wait_for_progress(&mut child);
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(143), "SIGTERM exits 143");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["status"], "cancelled");
    let accepted = doc["accepted"].as_i64().unwrap();
    assert!((5000..100_000_000).contains(&accepted));
    let c = db(dir.path());
    assert_eq!(
        count(&c, "SELECT count(*) FROM events WHERE session_id = 'burst'"),
        accepted
    );
    assert_eq!(count(&c, "SELECT count(DISTINCT seq) FROM events"), accepted);
    assert_eq!(count(&c, "SELECT max(seq) FROM events"), accepted - 1);
    assert_eq!(
        count(&c, "SELECT count(*) FROM sessions WHERE status = 'cancelled'"),
        1
    );
}

#[test]
fn a_store_locked_mid_run_spills_then_replay_loads_it_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let total = 200_000;
    let mut child = rvbbit(dir.path())
        .args([
            "debug",
            "emit",
            "--count",
            &total.to_string(),
            "--session",
            "locked",
            "--progress",
            "2000",
        ])
        .env(
            "RVBBIT_STORE__URL",
            "sqlite://.rvbbit/rvbbit.db?busy_timeout_ms=20",
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = wait_for_progress(&mut child);
    // Another connection takes the write lock and keeps it until the run is over.
    let locker = db(dir.path());
    locker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(5), "{rest}");
    assert!(rest.contains("RVB-S003"), "{rest}");
    locker.execute_batch("ROLLBACK").unwrap();
    drop(locker);

    let c = db(dir.path());
    let before = count(&c, "SELECT count(*) FROM events");
    assert!(before < total, "some events were spilled, not stored");
    let spill = dir.path().join(".rvbbit/spill");
    let spilled_lines: usize = std::fs::read_dir(&spill)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .map(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .filter(|l| l.contains("\"type\":\"event\""))
                .count()
        })
        .sum();
    assert_eq!(
        before + spilled_lines as i64,
        total,
        "stored + spilled = accepted"
    );

    let first = rvbbit(dir.path())
        .args(["db", "replay", "--output", "json"])
        .output()
        .unwrap();
    assert_eq!(first.status.code(), Some(0));
    let first: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(
        first["replay"]["events_inserted"].as_i64().unwrap(),
        total - before
    );
    assert_eq!(count(&c, "SELECT count(*) FROM events"), total);
    assert_eq!(count(&c, "SELECT count(DISTINCT seq) FROM events"), total);
    assert_eq!(
        count(&c, "SELECT count(*) FROM sessions WHERE status = 'completed'"),
        1
    );

    let second = rvbbit(dir.path())
        .args(["db", "replay", "--output", "json"])
        .output()
        .unwrap();
    let second: serde_json::Value = serde_json::from_slice(&second.stdout).unwrap();
    assert_eq!(second["replay"]["events_inserted"], 0);
    assert_eq!(count(&c, "SELECT count(*) FROM events"), total);
}

#[test]
fn a_store_unavailable_from_the_start_spills_everything_and_the_run_finishes() {
    let dir = tempfile::tempdir().unwrap();
    // A regular file where the store's directory should be: the store cannot be created.
    std::fs::write(dir.path().join("blocker"), "").unwrap();
    let out = rvbbit(dir.path())
        .args(["debug", "emit", "--count", "3000", "--session", "nostore"])
        .env("RVBBIT_STORE__URL", "sqlite://blocker/rvbbit.db")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(err.contains("RVB-S001") && err.contains("RVB-S003"), "{err}");
    // With the store back (the default location), replay loads everything, once.
    let replay = |dir: &Path| -> serde_json::Value {
        let out = rvbbit(dir)
            .args(["db", "replay", "--output", "json"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    assert_eq!(replay(dir.path())["replay"]["events_inserted"], 3000);
    assert_eq!(replay(dir.path())["replay"]["events_inserted"], 0);
    let c = db(dir.path());
    assert_eq!(
        count(&c, "SELECT count(*) FROM events WHERE session_id = 'nostore'"),
        3000
    );
    assert_eq!(
        count(&c, "SELECT count(*) FROM sessions WHERE status = 'completed'"),
        1
    );
}
