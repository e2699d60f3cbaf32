//! Humans in the loop through the real binary: a run that waits and exits, `rvbbit signal send` and
//! `rvbbit resume` in later processes, an answer sent while a run polls, piped answers with --prompt,
//! bad `--value`s, and the corpus `ask_human` cascade resumed after its process exited.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use rvbbit_core::SessionStatus;
use rvbbit_testkit::{Reply, Script, TestServer};
use tempfile::TempDir;

use crate::run_command::{JsonOutcome, stored, write};
use crate::rvbbit;

const CORPUS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/corpus/rvbbit-2025-12-25/examples"
);

/// A cascade whose first and last cells append to `log.txt` (a side effect that shows re-runs) and whose
/// middle cell asks for a choice.
const GATED: &str = r#"
cascade_id: gated
cells:
  - name: first
    tool: linux_shell
    inputs: {command: "echo first >> log.txt; echo one"}
  - name: gate
    tool: linux_shell
    inputs: {command: "echo gated"}
    human_input:
      type: choice
      prompt: "Go on?"
      options: [{label: "Yes", value: go}, {label: "No", value: stop}]
  - name: last
    tool: linux_shell
    inputs: {command: "echo last >> log.txt; echo 'the end'"}
"#;

fn db(dir: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(dir.join(".rvbbit/rvbbit.db")).unwrap()
}

fn count(dir: &Path, sql: &str, session: &str) -> i64 {
    db(dir).query_row(sql, [session], |r| r.get(0)).unwrap()
}

fn cell_starts(dir: &Path, session: &str, cell: &str) -> i64 {
    count(
        dir,
        &format!(
            "SELECT count(*) FROM events WHERE session_id = ?1 AND kind = 'cell_start' AND cell_name = '{cell}'"
        ),
        session,
    )
}

fn ok(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Wait until `session` has a waiting signal `name` in the store of `dir`.
fn wait_for_signal(dir: &Path, session: &str, name: &str) {
    let started = Instant::now();
    loop {
        if dir.join(".rvbbit/rvbbit.db").exists() {
            let n = db(dir)
                .query_row(
                    "SELECT count(*) FROM signals WHERE session_id = ?1 AND name = ?2 AND status = 'waiting'",
                    [session, name],
                    |r| r.get::<_, i64>(0),
                )
                .unwrap_or(0);
            if n > 0 {
                return;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "`{name}` never waited"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_waiting_run_exits_10_then_signal_send_and_resume_finish_it_without_rerunning_cells() {
    let dir = TempDir::new().unwrap();
    let file = write(dir.path(), "gated.yaml", GATED);
    let out = rvbbit(dir.path())
        .args(["run", &file, "--session", "gate-1", "--detach"])
        .output()
        .unwrap();
    ok(&out, 10);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("waiting for a human at cell `gate` (RVB-H001, exit 10)"),
        "{err}"
    );
    assert!(
        err.contains("rvbbit signal send gate-1 gate --value JSON"),
        "{err}"
    );
    assert!(err.contains("rvbbit resume gate-1"), "{err}");
    // The process is gone; the session waits durably.
    let (status, _) = stored(dir.path(), "gate-1");
    assert_eq!(status, SessionStatus::Waiting);
    let list = rvbbit(dir.path())
        .args(["signal", "list", "--session", "gate-1", "--waiting"])
        .output()
        .unwrap();
    ok(&list, 0);
    let table = String::from_utf8_lossy(&list.stdout);
    let row = table
        .lines()
        .find(|l| l.starts_with("gate-1"))
        .unwrap_or_default();
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[..3], ["gate-1", "gate", "waiting"], "{table}");
    // What is being approved: the question, its choices and the output under review.
    assert!(row.contains("Go on? (choice: Yes | No) · output: "), "{table}");
    assert!(row.contains("gated"), "{table}");

    let sent = rvbbit(dir.path())
        .args(["signal", "send", "gate-1", "gate", "--value", r#""Yes""#])
        .output()
        .unwrap();
    ok(&sent, 0);
    let resumed = rvbbit(dir.path())
        .args(["--output", "json", "resume", "gate-1"])
        .output()
        .unwrap();
    ok(&resumed, 0);
    let doc: JsonOutcome = serde_json::from_slice(&resumed.stdout).unwrap();
    assert_eq!(doc.status, "completed");
    assert_eq!(doc.session_id, "gate-1");
    assert_eq!(doc.path, ["first", "gate", "last"]);
    assert_eq!(doc.output["stdout"], "the end\n");
    // The first cell's side effect happened once; each cell started once; one cascade_start.
    assert_eq!(
        std::fs::read_to_string(dir.path().join("log.txt")).unwrap(),
        "first\nlast\n"
    );
    for cell in ["first", "gate", "last"] {
        assert_eq!(cell_starts(dir.path(), "gate-1", cell), 1, "{cell}");
    }
    let (status, kinds) = stored(dir.path(), "gate-1");
    assert_eq!(status, SessionStatus::Completed);
    assert_eq!(kinds.iter().filter(|k| k.as_str() == "cascade_start").count(), 1);
    assert_eq!(kinds.last().map(|k| k.as_str()), Some("cascade_complete"));
    // One caller for the whole session, across both processes.
    assert_eq!(
        count(
            dir.path(),
            "SELECT count(DISTINCT caller_id) FROM events WHERE session_id = ?1",
            "gate-1"
        ),
        1
    );
    // Resuming a finished session is refused (exit 5, RVB-S006).
    let again = rvbbit(dir.path()).args(["resume", "gate-1"]).output().unwrap();
    ok(&again, 5);
    assert!(String::from_utf8_lossy(&again.stderr).contains("RVB-S006"));
}

#[test]
fn a_polling_run_is_answered_by_signal_send_from_another_process() {
    let dir = TempDir::new().unwrap();
    let file = write(dir.path(), "gated.yaml", GATED);
    let child = rvbbit(dir.path())
        .args(["run", &file, "--session", "poll-1", "--wait", "60s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_signal(dir.path(), "poll-1", "gate");
    let sent = rvbbit(dir.path())
        .args(["signal", "send", "poll-1", "gate", "--value", r#""go""#])
        .output()
        .unwrap();
    ok(&sent, 0);
    let out = child.wait_with_output().unwrap();
    ok(&out, 0);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("waiting for a human at cell `gate`: Go on?"),
        "{err}"
    );
    assert!(
        err.contains("rvbbit signal send poll-1 gate --value JSON"),
        "{err}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("the end"));
    assert_eq!(stored(dir.path(), "poll-1").0, SessionStatus::Completed);
    // The answer is in the state and the checkpoint.
    let response: String = db(dir.path())
        .query_row(
            "SELECT response FROM checkpoints WHERE session_id = 'poll-1'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(response, r#"{"selected":"go"}"#);
}

#[test]
fn a_run_with_prompt_reads_the_answer_from_stdin_and_asks_again_after_a_wrong_one() {
    let dir = TempDir::new().unwrap();
    let file = write(dir.path(), "gated.yaml", GATED);
    let mut child = rvbbit(dir.path())
        .args(["run", &file, "--session", "ask-1", "--prompt"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"maybe\n2\n").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    ok(&out, 0);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("? [gate] Go on?") && err.contains("1. Yes") && err.contains("2. No"),
        "{err}"
    );
    assert!(
        err.contains(r#"asks for one of: "go", "stop"; "maybe" is not among them"#),
        "{err}"
    );
    // No terminal: no progress line and no escape codes on stderr.
    assert!(!err.contains('\r') && !err.contains('\u{1b}'), "{err:?}");
    let state: String = db(dir.path())
        .query_row(
            "SELECT response FROM checkpoints WHERE session_id = 'ask-1'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(state, r#"{"selected":"stop"}"#);
}

#[test]
fn bad_values_exit_6_with_a_clear_error_and_unknown_signals_exit_5() {
    let dir = TempDir::new().unwrap();
    let file = write(dir.path(), "gated.yaml", GATED);
    ok(
        &rvbbit(dir.path())
            .args(["run", &file, "--session", "bad-1", "--detach"])
            .output()
            .unwrap(),
        10,
    );
    let not_json = rvbbit(dir.path())
        .args(["signal", "send", "bad-1", "gate", "--value", "{go"])
        .output()
        .unwrap();
    ok(&not_json, 6);
    let err = String::from_utf8_lossy(&not_json.stderr);
    assert!(
        err.contains("error[RVB-C006]: --value is not valid JSON"),
        "{err}"
    );
    assert!(err.contains(r#"--value '"Rust"'"#), "{err}");
    let resume_bad = rvbbit(dir.path())
        .args(["resume", "bad-1", "--value", "yes please"])
        .output()
        .unwrap();
    ok(&resume_bad, 6);
    assert!(String::from_utf8_lossy(&resume_bad.stderr).contains("RVB-C006"));
    let wrong_shape = rvbbit(dir.path())
        .args([
            "--output", "json", "signal", "send", "bad-1", "gate", "--value", "true",
        ])
        .output()
        .unwrap();
    ok(&wrong_shape, 6);
    let doc: serde_json::Value = serde_json::from_slice(&wrong_shape.stdout).unwrap();
    assert_eq!(doc["code"], "RVB-C007");
    assert!(
        doc["message"].as_str().unwrap().contains(r#""go", "stop""#),
        "{doc}"
    );
    let unknown = rvbbit(dir.path())
        .args(["signal", "send", "bad-1", "nope", "--value", r#""go""#])
        .output()
        .unwrap();
    ok(&unknown, 5);
    let err = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        err.contains("session bad-1 has no waiting signal `nope`; it waits for: gate"),
        "{err}"
    );
    // Nothing was answered: the session still waits.
    assert_eq!(stored(dir.path(), "bad-1").0, SessionStatus::Waiting);
}

fn with_provider<'a>(cmd: &'a mut Command, base_url: &str) -> &'a mut Command {
    cmd.env("RVBBIT_PROVIDER_BASE_URL", base_url)
        .env("OPENROUTER_API_KEY", "test-key")
        .env("RVBBIT_DEFAULT_MODEL", "test/model")
        .args(["--set", "provider.max_retries=0"])
}

#[test]
fn corpus_ask_human_cascade_resumes_after_its_process_exited() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let ask = "```json\n{\"tool\": \"ask_human\", \"arguments\": {\"question\": \"Which topic?\"}}\n```";
    let server = rt.block_on(TestServer::start(Script::sequence([
        // First process: the model asks, nobody answers, the run exits waiting.
        Reply::text(ask),
        // Resume: the cell runs again; its ask gets the answer sent in between.
        Reply::text(ask),
        Reply::text("Noted."),
        Reply::text("Done asking."),
        Reply::text("# Rust, explained"),
    ])));
    let dir = TempDir::new().unwrap();
    let file = format!("{CORPUS}/hitl_checkpoint_demo.yaml");
    let out = with_provider(&mut rvbbit(dir.path()), &server.base_url())
        .args(["run", &file, "--session", "ask-demo", "--detach"])
        .output()
        .unwrap();
    ok(&out, 10);
    assert!(String::from_utf8_lossy(&out.stderr).contains("rvbbit signal send ask-demo get_topic"));
    ok(
        &rvbbit(dir.path())
            .args(["signal", "send", "ask-demo", "get_topic", "--value", r#""Rust""#])
            .output()
            .unwrap(),
        0,
    );
    let out = with_provider(&mut rvbbit(dir.path()), &server.base_url())
        .args(["--output", "json", "resume", "ask-demo"])
        .output()
        .unwrap();
    ok(&out, 0);
    let doc: JsonOutcome = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc.path, ["get_topic", "write_article"]);
    assert_eq!(doc.output, "# Rust, explained");
    assert_eq!(doc.llm_calls, 5, "one call before the wait, four after");
    let bodies = server.bodies();
    assert!(
        bodies[4].to_string().contains("engaging article about: Rust"),
        "{}",
        bodies[4]
    );
    rt.block_on(server.shutdown());
}
