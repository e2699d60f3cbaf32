//! `rvbbit run` with LLM cells against the testkit server: provider down, schema exhaustion, SIGTERM
//! mid-call, record and replay.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rvbbit_core::{EventKind, SessionStatus};
use rvbbit_testkit::{Reply, Script, TestServer};
use tempfile::TempDir;

use crate::run_command::{JsonOutcome, stored, write};
use crate::rvbbit;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn with_provider(cmd: &mut Command, base_url: &str) {
    cmd.env("RVBBIT_PROVIDER_BASE_URL", base_url)
        .env("OPENROUTER_API_KEY", "test-key")
        .env("RVBBIT_DEFAULT_MODEL", "test/model")
        .args(["--set", "provider.max_retries=0"]);
}

const HELLO: &str =
    "cascade_id: hello_llm\ncells:\n  - name: greet\n    instructions: 'Say hi to {{ input.name }}'\n";

#[test]
fn run_provider_down_exits_4_and_fails_the_session() {
    let dir = TempDir::new().unwrap();
    let file = write(dir.path(), "hello.yaml", HELLO);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cmd = rvbbit(dir.path());
    with_provider(&mut cmd, &format!("http://127.0.0.1:{port}/v1"));
    let out = cmd.args(["--output", "json", "run", &file]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: JsonOutcome = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc.status, "failed");
    assert_eq!(doc.code.as_deref(), Some("RVB-L001"));
    assert!(!doc.hint.unwrap().is_empty());
    let (status, kinds) = stored(dir.path(), &doc.session_id);
    assert_eq!(status, SessionStatus::Failed);
    assert!(kinds.contains(&EventKind::LlmError));
}

#[test]
fn run_output_schema_never_satisfied_exits_2_after_the_re_asks() {
    let rt = runtime();
    let server = rt.block_on(TestServer::start(Script::sequence(
        (0..2).map(|_| Reply::text("no json here")),
    )));
    let dir = TempDir::new().unwrap();
    let file = write(
        dir.path(),
        "schema.yaml",
        "cascade_id: schema\ncells:\n  - name: p\n    instructions: JSON\n    rules: {max_attempts: 2}\n    output_schema: {type: object}\n",
    );
    let mut cmd = rvbbit(dir.path());
    with_provider(&mut cmd, &server.base_url());
    let out = cmd.args(["run", &file]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("RVB-E002"));
    assert_eq!(server.requests(), 2);
    rt.block_on(server.shutdown());
}

/// Start `rvbbit run` on an LLM cascade whose provider answers only after a minute, send `signal` to the
/// process (from Rust, by pid, never to a process group) once the call is in flight, and check the exit
/// code, the outcome document and what reached the store.
fn interrupt_mid_llm_call(signal: rustix::process::Signal, session: &str, exit: i32) {
    let rt = runtime();
    let server = rt.block_on(TestServer::start(Script::sequence([
        Reply::text("too late").latency(Duration::from_secs(60))
    ])));
    let dir = TempDir::new().unwrap();
    let file = write(dir.path(), "hello.yaml", HELLO);
    let mut cmd = rvbbit(dir.path());
    with_provider(&mut cmd, &server.base_url());
    let child = cmd
        .args(["--output", "json", "run", &file, "--session", session])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while server.requests() == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the LLM call never arrived"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = rustix::process::Pid::from_raw(i32::try_from(child.id()).unwrap()).unwrap();
    rustix::process::kill_process(pid, signal).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "the run did not stop promptly"
    );
    assert_eq!(
        out.status.code(),
        Some(exit),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: JsonOutcome = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc.status, "cancelled");
    assert_eq!(doc.exit_code, u8::try_from(exit).unwrap());
    assert_eq!(doc.llm_calls, 1);
    let (status, kinds) = stored(dir.path(), session);
    assert_eq!(status, SessionStatus::Cancelled);
    // Everything before the signal was flushed (the call in flight is abandoned), then the
    // cancellation itself.
    assert_eq!(
        kinds,
        [
            EventKind::CascadeStart,
            EventKind::CellStart,
            EventKind::Prompt,
            EventKind::CascadeCancelled
        ],
        "{kinds:?}"
    );
    rt.block_on(server.shutdown());
}

#[test]
fn run_sigterm_mid_llm_call_cancels_the_session_and_flushes_events() {
    interrupt_mid_llm_call(rustix::process::Signal::TERM, "term-me", 143);
}

#[test]
fn run_sigint_mid_llm_call_cancels_the_session_and_exits_130() {
    interrupt_mid_llm_call(rustix::process::Signal::INT, "int-me", 130);
}

#[test]
fn run_record_then_replay_without_a_provider() {
    let rt = runtime();
    let server = rt.block_on(TestServer::start(Script::sequence([Reply::text("Hi Ada!")])));
    let dir = TempDir::new().unwrap();
    let file = write(dir.path(), "hello.yaml", HELLO);
    let mut cmd = rvbbit(dir.path());
    with_provider(&mut cmd, &server.base_url());
    let out = cmd
        .args([
            "run",
            &file,
            "--input",
            r#"{"name": "Ada"}"#,
            "--record",
            "rec.jsonl",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Hi Ada!\n");
    rt.block_on(server.shutdown());
    // The server is gone: the replay answers (same model, so the same request).
    let out = rvbbit(dir.path())
        .env("RVBBIT_DEFAULT_MODEL", "test/model")
        .args([
            "run",
            &file,
            "--input",
            r#"{"name": "Ada"}"#,
            "--replay",
            "rec.jsonl",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Hi Ada!\n");
}
