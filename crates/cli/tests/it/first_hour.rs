//! Issue 14, "the first hour": the CLI items, each with its exact reproduction through the real binary.
//! Validator warnings on `run`, a closed pipe and a killed run (no panic, no zombie session), the
//! session id and `sessions show last`, plain logs when piped, costs of sub-cascades, truncated lists,
//! `rvbbit explain` hints, Ctrl-C coded as an interruption, and `sessions cancel` of a detached waiting
//! session.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::run_command::{JsonOutcome, example, write};
use crate::rvbbit;

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn db(dir: &Path) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(dir.join(".rvbbit/rvbbit.db")).unwrap();
    c.busy_timeout(Duration::from_secs(10)).unwrap();
    c
}

/// The stored status and error of `session`, when the store has it.
fn session_row(dir: &Path, session: &str) -> Option<(String, Option<String>)> {
    if !dir.join(".rvbbit/rvbbit.db").exists() {
        return None;
    }
    db(dir)
        .query_row(
            "SELECT status, error FROM sessions WHERE session_id = ?1",
            [session],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .ok()
}

/// Wait (at most 30 s) until `session` is stored with `status`.
fn wait_for_status(dir: &Path, session: &str, status: &str) {
    let started = Instant::now();
    while session_row(dir, session).is_none_or(|(s, _)| s != status) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "session {session} never became {status}: {:?}",
            session_row(dir, session)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A deterministic cascade with a typo the validator warns about (`timout:`) in its only cell.
const TYPO: &str = r#"
cascade_id: typo
cells:
  - name: hello
    tool: linux_shell
    timout: 5s
    inputs: {command: "echo hi"}
"#;

/// Issue 14 item 1: `run` printed none of the validator's warnings, and JSON had `"warnings": []`.
#[test]
fn issue_14_run_prints_the_validators_warnings_once_and_json_carries_them() {
    let dir = TempDir::new().unwrap();
    let file = write(dir.path(), "typo.yaml", TYPO);
    let validate = rvbbit(dir.path()).args(["validate", &file]).output().unwrap();
    assert_eq!(validate.status.code(), Some(0), "{}", text(&validate));
    assert!(stderr(&validate).contains("timout"), "{}", text(&validate));

    let out = rvbbit(dir.path()).args(["run", &file]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
    let err = stderr(&out);
    assert_eq!(err.matches("warning[RVB-V004]").count(), 1, "{err}");
    assert!(err.contains("`timout`"), "{err}");
    assert!(err.contains("timeout"), "the suggestion is shown: {err}");

    let out = rvbbit(dir.path())
        .args(["--output", "json", "run", &file])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let doc: JsonOutcome = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc.warnings.len(), 1, "{:?}", doc.warnings);
    assert!(
        doc.warnings[0].contains("warning[RVB-V004]") && doc.warnings[0].contains("timout"),
        "{:?}",
        doc.warnings
    );
    assert!(
        doc.warnings[0].starts_with(&format!("{file}:6:")),
        "{:?}",
        doc.warnings
    );
}

/// A cascade that logs at once (its input `a` is missing), pauses, then runs a cascade tool that logs
/// again (its input `b` is missing) when the reader of a pipe is long gone, and prints three lines.
const PARENT: &str = r#"
cascade_id: parent
inputs_schema:
  a: never given
cells:
  - name: pause
    tool: linux_shell
    inputs: {command: "sleep 1"}
  - name: call
    tool: child
    inputs: {}
  - name: last
    tool: linux_shell
    inputs: {command: "printf 'seven\neight\nnine\n'"}
"#;

const CHILD: &str = r#"
cascade_id: child
description: A child given nothing it declares.
inputs_schema:
  b: never given
cells:
  - name: inner
    tool: linux_shell
    inputs: {command: "echo inner"}
"#;

/// `script` under bash in `dir` (PIPESTATUS tells rvbbit's own exit code), with `env`.
fn bash(dir: &Path, script: &str, env: &[(&str, &str)]) -> Output {
    Command::new("bash")
        .arg("-c")
        .arg(script)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .current_dir(dir)
        .output()
        .unwrap()
}

/// Issue 14 item 2: `rvbbit run … 2>&1 | head -1` exited 101 ("failed printing to stderr: Broken
/// pipe") and left the session `running` forever.
#[test]
fn issue_14_a_closed_pipe_neither_panics_nor_leaves_the_session_running() {
    let dir = TempDir::new().unwrap();
    let file = write(dir.path(), "parent.yaml", PARENT);
    std::fs::create_dir_all(dir.path().join("cascades")).unwrap();
    write(&dir.path().join("cascades"), "child.yaml", CHILD);
    let bin = env!("CARGO_BIN_EXE_rvbbit");
    // The first log line goes to `head`, which exits; the child's log line a second later meets a
    // closed stderr (tracing used to report that with `eprintln!`, which panicked).
    let out = bash(
        dir.path(),
        &format!(
            "'{bin}' run '{file}' --session pipe-1 --input '{{}}' 2>&1 | head -1; echo \"rvbbit exit ${{PIPESTATUS[0]}}\" >&2"
        ),
        &[("NO_COLOR", "1"), ("RVBBIT_LOG", "info")],
    );
    assert!(stderr(&out).contains("rvbbit exit 0"), "{}", text(&out));
    let first = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(first.lines().count(), 1, "{}", text(&out));
    assert!(
        first.contains("input `a` (declared in inputs_schema) was not given"),
        "{}",
        text(&out)
    );
    assert_eq!(session_row(dir.path(), "pipe-1").unwrap().0, "completed");

    // Only stdout closed (`| head -1`): the output stops quietly, the session is complete.
    let out = bash(
        dir.path(),
        &format!(
            "'{bin}' run '{file}' --session pipe-2 --input '{{}}' | head -1; echo \"rvbbit exit ${{PIPESTATUS[0]}}\" >&2"
        ),
        &[],
    );
    assert!(stderr(&out).contains("rvbbit exit 0"), "{}", text(&out));
    assert!(!stderr(&out).contains("panicked"), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "seven\n", "{}", text(&out));
    assert_eq!(session_row(dir.path(), "pipe-2").unwrap().0, "completed");
}

/// Issue 14 item 2: a run killed with SIGKILL left its session `running`; `doctor` finds it by heartbeat
/// age and `doctor --repair` marks it failed with RVB-E014.
#[test]
fn issue_14_a_killed_run_is_found_by_doctor_and_repaired_with_a_code() {
    let dir = TempDir::new().unwrap();
    let file = write(
        dir.path(),
        "slow.yaml",
        "cascade_id: slow\ncells:\n  - name: wait\n    tool: linux_shell\n    inputs: {command: \"exec sleep 15\"}\n",
    );
    let mut child = rvbbit(dir.path())
        .args(["run", &file, "--session", "killed-1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_status(dir.path(), "killed-1", "running");
    child.kill().unwrap(); // SIGKILL: no handler runs, nothing is flushed.
    child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(session_row(dir.path(), "killed-1").unwrap().0, "running");

    let out = rvbbit(dir.path())
        .args(["doctor", "--stale-after", "1s"])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        report.contains("heartbeat older than 1s") && report.contains("killed-1"),
        "{report}"
    );
    assert!(
        report.contains("fix: rvbbit doctor --repair --stale-after 1s"),
        "{report}"
    );
    // Only listed: still running.
    assert_eq!(session_row(dir.path(), "killed-1").unwrap().0, "running");

    let out = rvbbit(dir.path())
        .args(["--output", "json", "doctor", "--repair", "--stale-after", "1s"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let sessions = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == "sessions")
        .unwrap();
    assert_eq!(sessions["level"], "fixed", "{doc}");
    let (status, error) = session_row(dir.path(), "killed-1").unwrap();
    assert_eq!(status, "failed");
    assert!(error.unwrap().starts_with("[RVB-E014] orphaned"));

    let out = rvbbit(dir.path())
        .args(["doctor", "--stale-after", "1s"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("no zombie sessions"),
        "{}",
        text(&out)
    );
}

/// Issue 14 item 3: text-mode `run` printed no session id (the README's next step could not be
/// followed), and a deterministic run printed the raw tool result (`returncode`, `truncated`, `_route`).
#[test]
fn issue_14_a_text_run_names_its_session_and_sessions_show_last_opens_it() {
    let dir = TempDir::new().unwrap();
    let out = rvbbit(dir.path())
        .args([
            "run",
            &example("run_hello_shell.yaml"),
            "--input",
            r#"{"name": "Ada"}"#,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // stdout is the cell's text only, fit for a pipeline.
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Hello Ada: 3 players, best score 95.\n"
    );
    let err = stderr(&out);
    let line = err
        .lines()
        .find(|l| l.starts_with("session ") && l.contains(": rvbbit sessions show "))
        .unwrap_or_else(|| panic!("no session line: {err}"));
    let id = line.split_whitespace().nth(1).unwrap().to_owned();
    assert_eq!(line, format!("session {id} completed: rvbbit sessions show {id}"));

    for which in [id.as_str(), "last"] {
        let show = rvbbit(dir.path())
            .args(["sessions", "show", which])
            .output()
            .unwrap();
        assert_eq!(show.status.code(), Some(0), "{}", text(&show));
        let shown = String::from_utf8_lossy(&show.stdout);
        assert!(
            shown.starts_with(&format!("session {id}  cascade run_hello_shell  completed")),
            "{shown}"
        );
    }

    // With -q the line is gone; stdout is unchanged.
    let out = rvbbit(dir.path())
        .args([
            "-q",
            "run",
            &example("run_hello_shell.yaml"),
            "--input",
            r#"{"name": "Bo"}"#,
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Hello Bo: 3 players, best score 95.\n"
    );
    assert!(!stderr(&out).contains("rvbbit sessions show"), "{}", text(&out));

    // An empty store has no `last`.
    let empty = TempDir::new().unwrap();
    let out = rvbbit(empty.path())
        .args(["sessions", "show", "last"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    assert!(
        stderr(&out).contains("error[RVB-S005]: `last`: there are no sessions"),
        "{}",
        text(&out)
    );
}

/// Issue 14 item 6: logs kept their ANSI colours when piped, and every run warning printed twice.
#[test]
fn issue_14_logs_are_plain_when_piped_and_warnings_print_once() {
    let dir = TempDir::new().unwrap();
    for no_color in [false, true] {
        let mut cmd = rvbbit(dir.path());
        cmd.env_remove("NO_COLOR").env("RVBBIT_LOG", "debug");
        if no_color {
            cmd.arg("--no-color");
        }
        // No `name` input: the engine warns that `name` (declared in inputs_schema) was not given.
        let out = cmd
            .args(["run", &example("run_hello_shell.yaml")])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let err = stderr(&out);
        assert!(err.lines().count() > 2, "debug logs are on: {err}");
        assert!(!err.contains('\u{1b}'), "no ANSI escapes on a pipe: {err}");
    }
    let out = rvbbit(dir.path())
        .args(["run", &example("run_hello_shell.yaml")])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(
        err.matches("input `name` (declared in inputs_schema) was not given")
            .count(),
        1,
        "{err}"
    );
}

/// Issue 14 item 10: an error's `see:` line names `rvbbit explain CODE`, which works from any directory.
#[test]
fn issue_14_error_pages_come_from_the_binary_in_any_directory() {
    let dir = TempDir::new().unwrap();
    let out = rvbbit(dir.path()).args(["run", "missing.yaml"]).output().unwrap();
    let err = stderr(&out);
    assert!(!err.contains("docs/errors/"), "{err}");
    let code = err
        .split("see: rvbbit explain ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no `see: rvbbit explain` line: {err}"))
        .to_owned();
    // An empty directory with no docs/ folder.
    let out = rvbbit(dir.path()).args(["explain", &code]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with(&format!("# {code}: ")),
        "{}",
        text(&out)
    );
}

/// Issue 14 item 10: Ctrl-C was reported as RVB-E001 ("cell failed"); it is an interruption (RVB-E013,
/// exit 130, session `cancelled`).
#[test]
fn issue_14_ctrl_c_is_coded_as_an_interruption() {
    let dir = TempDir::new().unwrap();
    let file = write(
        dir.path(),
        "slow.yaml",
        "cascade_id: slow\ncells:\n  - name: wait\n    tool: linux_shell\n    inputs: {command: \"sleep 20\"}\n",
    );
    for (json, session) in [(false, "int-1"), (true, "int-2")] {
        let mut cmd = rvbbit(dir.path());
        if json {
            cmd.args(["--output", "json"]);
        }
        let child = cmd
            .args(["run", &file, "--session", session])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_for_status(dir.path(), session, "running");
        rustix::process::kill_process(
            rustix::process::Pid::from_child(&child),
            rustix::process::Signal::INT,
        )
        .unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(130), "{}", text(&out));
        if json {
            let doc: JsonOutcome = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(doc.code.as_deref(), Some("RVB-E013"));
            assert_eq!(doc.session_status, "cancelled");
        } else {
            let err = stderr(&out);
            assert!(err.contains("error[RVB-E013]: the run was cancelled"), "{err}");
            assert!(!err.contains("RVB-E001"), "{err}");
        }
        assert_eq!(session_row(dir.path(), session).unwrap().0, "cancelled");
    }
    let out = rvbbit(dir.path()).args(["explain", "RVB-E013"]).output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Exit code **130**"),
        "{}",
        text(&out)
    );
}

/// Issue 14 item 10: `sessions list` cut at its limit without saying so.
#[test]
fn issue_14_sessions_list_says_when_it_truncated() {
    let dir = TempDir::new().unwrap();
    for i in 0..3 {
        let out = rvbbit(dir.path())
            .args([
                "-q",
                "run",
                &example("run_hello_shell.yaml"),
                "--session",
                &format!("list-{i}"),
            ])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }
    let out = rvbbit(dir.path())
        .args(["sessions", "list", "--limit", "2"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        3,
        "{}",
        text(&out)
    );
    assert!(
        stderr(&out).contains("showing the newest 2 sessions; more match"),
        "{}",
        text(&out)
    );
    let json = |limit: &str| -> serde_json::Value {
        let out = rvbbit(dir.path())
            .args(["--output", "json", "sessions", "list", "--limit", limit])
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    };
    assert_eq!(json("2")["truncated"], true);
    assert_eq!(json("2")["sessions"].as_array().unwrap().len(), 2);
    assert_eq!(json("3")["truncated"], false);
    let out = rvbbit(dir.path())
        .args(["sessions", "list", "--limit", "3"])
        .output()
        .unwrap();
    assert!(!stderr(&out).contains("more match"), "{}", text(&out));
}

/// A cascade whose only cell asks for a confirmation.
const GATE: &str = r#"
cascade_id: gate
cells:
  - name: gate
    tool: linux_shell
    inputs: {command: "echo gated"}
    human_input:
      type: confirmation
      prompt: "Go on?"
"#;

/// Issue 14 item 8 (part): `sessions cancel` of a detached waiting session only set a flag nobody read;
/// it now ends it in the store, closes its signal, and refuses a later answer or resume.
#[test]
fn issue_14_cancelling_a_detached_waiting_session_takes_effect_at_once() {
    let dir = TempDir::new().unwrap();
    let file = write(dir.path(), "gate.yaml", GATE);
    let out = rvbbit(dir.path())
        .args(["run", &file, "--detach", "--session", "gate-1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(10), "{}", text(&out));
    assert_eq!(session_row(dir.path(), "gate-1").unwrap().0, "waiting");

    let out = rvbbit(dir.path())
        .args(["sessions", "cancel", "gate-1", "--reason", "not needed"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("cancelled gate-1"),
        "{}",
        text(&out)
    );
    let (status, error) = session_row(dir.path(), "gate-1").unwrap();
    assert_eq!(status, "cancelled");
    assert_eq!(error.as_deref(), Some("cancelled: not needed"));
    let open: i64 = db(dir.path())
        .query_row(
            "SELECT (SELECT count(*) FROM signals WHERE session_id = 'gate-1' AND status = 'waiting')
                  + (SELECT count(*) FROM checkpoints WHERE session_id = 'gate-1' AND status = 'pending')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(open, 0);

    for args in [
        vec!["signal", "send", "gate-1", "gate", "--value", "true"],
        vec!["resume", "gate-1"],
        vec!["resume", "gate-1", "--value", "true"],
    ] {
        let out = rvbbit(dir.path()).args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(5), "{args:?}: {}", text(&out));
        assert!(
            stderr(&out).contains(
                "error[RVB-S010]: session gate-1 was cancelled: it can no longer be answered or resumed"
            ),
            "{args:?}: {}",
            text(&out)
        );
    }
    assert_eq!(session_row(dir.path(), "gate-1").unwrap().0, "cancelled");

    // A second cancel: it already finished.
    let out = rvbbit(dir.path())
        .args(["sessions", "cancel", "gate-1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    assert!(stderr(&out).contains("RVB-S006"), "{}", text(&out));
}

/// Issue 14 item 10: `sessions show` of a parent counted only its own calls, not its sub-cascades'.
#[test]
fn issue_14_sessions_show_counts_sub_cascades_in_the_parents_cost() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // openai/gpt-4o-mini is priced at $0.15 / $0.60 per million tokens: 1000 in + 500 out = 450 µ$.
    let server = rt.block_on(rvbbit_testkit::TestServer::start(
        rvbbit_testkit::Script::sequence([
            rvbbit_testkit::Reply::text("Prepared.").usage(1000, 500),
            rvbbit_testkit::Reply::text("Done.").usage(1000, 500),
        ]),
    ));
    let dir = TempDir::new().unwrap();
    std::fs::create_dir_all(dir.path().join("children")).unwrap();
    write(
        dir.path(),
        "children/prep.yaml",
        "cascade_id: prep\ncells:\n  - name: prepare\n    instructions: \"Prepare.\"\n",
    );
    let root = write(
        dir.path(),
        "root.yaml",
        "cascade_id: root\ncells:\n  - name: ask\n    instructions: \"Go.\"\n    sub_cascades:\n      - ref: children/prep.yaml\n",
    );
    let out = rvbbit(dir.path())
        .env("RVBBIT_PROVIDER_BASE_URL", server.base_url())
        .env("OPENROUTER_API_KEY", "test-key")
        .env("RVBBIT_DEFAULT_MODEL", "openai/gpt-4o-mini")
        .args([
            "--set",
            "provider.max_retries=0",
            "--output",
            "json",
            "run",
            &root,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let doc: JsonOutcome = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc.cost_usd, "0.000900");

    // `last` is the newest top-level session, not the sub-cascade that started after it.
    let out = rvbbit(dir.path())
        .args(["--output", "json", "sessions", "show", "last"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["session"]["session_id"], doc.session_id);
    assert_eq!(shown["cost_usd"], "0.000900");
    assert_eq!(shown["own_cost_usd"], "0.000450");

    let out = rvbbit(dir.path())
        .args(["sessions", "show", &doc.session_id])
        .output()
        .unwrap();
    let header = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    assert!(
        header.contains("$0.000900 (sub-cascades $0.000450)"),
        "{}",
        text(&out)
    );
    rt.block_on(server.shutdown());
}
