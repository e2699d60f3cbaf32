//! Exactly-once transitions through the real binary (issue 13): two `rvbbit resume` processes racing
//! for one waiting session (20 rounds: exactly one continues, the cells after the wait run once, the
//! loser exits 5 with RVB-S006 having run nothing), a second answer to one signal, and
//! `rvbbit run --session` with an id that exists.

use std::path::Path;
use std::process::{Output, Stdio};

use tempfile::TempDir;

use crate::run_command::write;
use crate::rvbbit;

/// The last cell appends to `log.txt`, so a second continuation would show.
const GATED: &str = r#"
cascade_id: gated_once
cells:
  - name: first
    tool: linux_shell
    inputs: {command: "echo first"}
  - name: gate
    tool: linux_shell
    inputs: {command: "echo gated"}
    human_input:
      type: choice
      prompt: "Go on?"
      options: [{label: "Yes", value: go}, {label: "No", value: stop}]
  - name: last
    tool: linux_shell
    inputs: {command: "echo {{ input.round }} >> log.txt; echo done"}
"#;

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn count(dir: &Path, sql: &str, session: &str) -> i64 {
    let c = rusqlite::Connection::open(dir.join(".rvbbit/rvbbit.db")).unwrap();
    c.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
    c.query_row(sql, [session], |r| r.get(0)).unwrap()
}

/// Start `session` and leave it waiting at `gate`, answered (so a resume needs no value).
fn waiting_and_answered(dir: &Path, file: &str, session: &str, round: usize) {
    let out = rvbbit(dir)
        .args(["run", file, "--session", session, "--detach", "--input"])
        .arg(format!("{{\"round\": {round}}}"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(10), "{}", text(&out));
    let sent = rvbbit(dir)
        .args(["signal", "send", session, "gate", "--value", "\"go\""])
        .output()
        .unwrap();
    assert_eq!(sent.status.code(), Some(0), "{}", text(&sent));
}

#[test]
fn twenty_rounds_of_two_concurrent_resumes_continue_each_session_exactly_once() {
    let dir = TempDir::new().unwrap();
    let file = write(dir.path(), "gated.yaml", GATED);
    let mut contested = 0;
    for round in 0..20 {
        let session = format!("race-{round}");
        waiting_and_answered(dir.path(), &file, &session, round);
        // Two truly concurrent processes.
        let spawn = || {
            rvbbit(dir.path())
                .args(["resume", &session, "--detach"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (a, b) = (spawn(), spawn());
        let outs = [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()];
        let winners: Vec<&Output> = outs.iter().filter(|o| o.status.code() == Some(0)).collect();
        let losers: Vec<&Output> = outs.iter().filter(|o| o.status.code() != Some(0)).collect();
        assert_eq!(
            (winners.len(), losers.len()),
            (1, 1),
            "round {round}:\n{}\n{}",
            text(&outs[0]),
            text(&outs[1])
        );
        let loser = losers[0];
        assert_eq!(loser.status.code(), Some(5), "{}", text(loser));
        let err = String::from_utf8_lossy(&loser.stderr);
        assert!(err.contains("error[RVB-S006]"), "{err}");
        assert!(
            err.contains(&format!("session {session} cannot be resumed")),
            "{err}"
        );
        if err.contains("already being resumed by another process") {
            contested += 1;
        }
        // The cells after the wait ran once.
        let last_starts = count(
            dir.path(),
            "SELECT count(*) FROM events WHERE session_id = ?1 AND kind = 'cell_start' AND cell_name = 'last'",
            &session,
        );
        assert_eq!(last_starts, 1, "round {round}");
        let completes = count(
            dir.path(),
            "SELECT count(*) FROM events WHERE session_id = ?1 AND kind = 'cascade_complete'",
            &session,
        );
        assert_eq!(completes, 1, "round {round}");
        let status: String = rusqlite::Connection::open(dir.path().join(".rvbbit/rvbbit.db"))
            .unwrap()
            .query_row(
                "SELECT status FROM sessions WHERE session_id = ?1",
                [&session],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(status, "completed");
    }
    let log = std::fs::read_to_string(dir.path().join("log.txt")).unwrap();
    let rounds: Vec<usize> = log.lines().map(|l| l.trim().parse().unwrap()).collect();
    assert_eq!(
        rounds,
        (0..20).collect::<Vec<_>>(),
        "each session's last cell ran once"
    );
    eprintln!("{contested} of 20 rounds were decided by the claim itself");
}

#[test]
fn a_second_answer_to_one_signal_loses_with_s006() {
    let dir = TempDir::new().unwrap();
    let file = write(dir.path(), "gated.yaml", GATED);
    let out = rvbbit(dir.path())
        .args(["run", &file, "--session", "twice", "--detach"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(10), "{}", text(&out));
    let send = |value: &str| {
        rvbbit(dir.path())
            .args(["signal", "send", "twice", "gate", "--value", value])
            .output()
            .unwrap()
    };
    let first = send("\"go\"");
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    let second = send("\"stop\"");
    assert_eq!(second.status.code(), Some(5), "{}", text(&second));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("error[RVB-S006]"), "{err}");
    assert!(
        err.contains("already answered") && err.contains("cli answered it first"),
        "{err}"
    );
    // A resume with another value loses the same way; the first answer stands.
    let resume = rvbbit(dir.path())
        .args(["resume", "twice", "--value", "\"stop\""])
        .output()
        .unwrap();
    assert_eq!(resume.status.code(), Some(5), "{}", text(&resume));
    let resumed = rvbbit(dir.path()).args(["resume", "twice"]).output().unwrap();
    assert_eq!(resumed.status.code(), Some(0), "{}", text(&resumed));
    let go: i64 = count(
        dir.path(),
        "SELECT count(*) FROM signals WHERE session_id = ?1 AND payload = '\"go\"'",
        "twice",
    );
    assert_eq!(go, 1);
}

#[test]
fn run_with_an_existing_session_id_is_refused_naming_it() {
    let dir = TempDir::new().unwrap();
    let file = write(dir.path(), "gated.yaml", GATED);
    let first = rvbbit(dir.path())
        .args(["run", &file, "--session", "mine", "--detach"])
        .output()
        .unwrap();
    assert_eq!(first.status.code(), Some(10), "{}", text(&first));
    let second = rvbbit(dir.path())
        .args(["run", &file, "--session", "mine", "--output", "json"])
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(5), "{}", text(&second));
    let doc: serde_json::Value = serde_json::from_slice(&second.stdout).unwrap();
    assert_eq!(doc["code"], "RVB-S006");
    let message = doc["message"].as_str().unwrap();
    assert!(
        message.contains("`mine`") && message.contains("already exists"),
        "{message}"
    );
    // Nothing of the refused run reached the session.
    let starts = count(
        dir.path(),
        "SELECT count(*) FROM events WHERE session_id = ?1 AND kind = 'cascade_start'",
        "mine",
    );
    assert_eq!(starts, 1);
    let status: String = rusqlite::Connection::open(dir.path().join(".rvbbit/rvbbit.db"))
        .unwrap()
        .query_row("SELECT status FROM sessions WHERE session_id = 'mine'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(status, "waiting", "the waiting session is untouched");
    // Just below: a fresh id runs.
    let fresh = rvbbit(dir.path())
        .args(["run", &file, "--session", "yours", "--detach"])
        .output()
        .unwrap();
    assert_eq!(fresh.status.code(), Some(10), "{}", text(&fresh));
}

/// Wait until `session` is `waiting` in the store of `dir` (its wait reached the store).
fn wait_until_waiting(dir: &Path, session: &str) {
    let started = std::time::Instant::now();
    loop {
        let status: Option<String> = rusqlite::Connection::open(dir.join(".rvbbit/rvbbit.db"))
            .ok()
            .and_then(|c| {
                c.busy_timeout(std::time::Duration::from_secs(5)).ok()?;
                c.query_row(
                    "SELECT status FROM sessions WHERE session_id = ?1",
                    [session],
                    |r| r.get(0),
                )
                .ok()
            });
        if status.as_deref() == Some("waiting") {
            return;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "{session} never waited"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A run waiting in its own process (polling the store for the answer) and a `rvbbit resume --value`
/// from another shell race for the session: exactly one continues it; the other exits 5 (RVB-S006)
/// having run nothing more.
#[test]
fn a_run_waiting_in_its_own_process_and_a_resume_continue_the_session_once() {
    let dir = TempDir::new().unwrap();
    let file = write(dir.path(), "gated.yaml", GATED);
    let mut live_won = 0;
    for round in 0..5 {
        let session = format!("live-{round}");
        let live = rvbbit(dir.path())
            .args(["run", &file, "--session", &session, "--wait", "60s", "--input"])
            .arg(format!("{{\"round\": {round}}}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_until_waiting(dir.path(), &session);
        let resume = rvbbit(dir.path())
            .args(["resume", &session, "--value", "\"go\"", "--detach"])
            .output()
            .unwrap();
        let live = live.wait_with_output().unwrap();
        let codes = (live.status.code(), resume.status.code());
        assert!(
            codes == (Some(0), Some(5)) || codes == (Some(5), Some(0)),
            "round {round}:\nlive: {}\nresume: {}",
            text(&live),
            text(&resume)
        );
        let loser = if codes.0 == Some(0) {
            live_won += 1;
            &resume
        } else {
            &live
        };
        assert!(
            String::from_utf8_lossy(&loser.stderr).contains("error[RVB-S006]"),
            "{}",
            text(loser)
        );
        let last_starts = count(
            dir.path(),
            "SELECT count(*) FROM events WHERE session_id = ?1 AND kind = 'cell_start' AND cell_name = 'last'",
            &session,
        );
        assert_eq!(last_starts, 1, "round {round}");
    }
    let log = std::fs::read_to_string(dir.path().join("log.txt")).unwrap();
    assert_eq!(log.lines().count(), 5, "each session's last cell ran once");
    eprintln!("the waiting process won {live_won} of 5 rounds");
}
