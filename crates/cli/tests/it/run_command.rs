//! `rvbbit run` on deterministic cascades: output, the JSON outcome shape, exit codes, the store.

use std::path::Path;

use rvbbit_core::{EventKind, SessionId, SessionStatus};
use rvbbit_store::EventFilter;
use serde::Deserialize;
use serde_json::Value;
use tempfile::TempDir;

use crate::rvbbit;

/// The documented JSON outcome of `rvbbit run --output json` (any new field fails this test).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub(crate) struct JsonOutcome {
    pub(crate) status: String,
    pub(crate) session_status: String,
    pub(crate) exit_code: u8,
    pub(crate) session_id: String,
    pub(crate) caller_id: String,
    pub(crate) cascade_id: String,
    pub(crate) output: Value,
    pub(crate) outputs: serde_json::Map<String, Value>,
    pub(crate) path: Vec<String>,
    pub(crate) code: Option<String>,
    pub(crate) message: Option<String>,
    pub(crate) hint: Option<String>,
    pub(crate) cost_usd: String,
    pub(crate) duration_ms: u64,
    pub(crate) llm_calls: u32,
    pub(crate) tool_calls: u32,
    pub(crate) warnings: Vec<String>,
    pub(crate) run_error: Option<Value>,
    pub(crate) recording: Recording,
}

/// What became of a run's records (`recording` in the JSON outcome).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub(crate) struct Recording {
    pub(crate) accepted: u64,
    pub(crate) events_stored: u64,
    pub(crate) spilled: u64,
    pub(crate) lost: u64,
    pub(crate) spill_files: Vec<String>,
    pub(crate) error: Option<String>,
}

pub(crate) fn example(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name)
        .display()
        .to_string()
}

pub(crate) fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

/// Session status and event kinds from the store in `dir`.
pub(crate) fn stored(dir: &Path, session: &str) -> (SessionStatus, Vec<EventKind>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = rvbbit_store::open("sqlite://.rvbbit/rvbbit.db", dir)
            .await
            .unwrap();
        let id: SessionId = session.parse().unwrap();
        let s = store.session(&id).await.unwrap();
        let events = store
            .events(&EventFilter {
                session_id: Some(id),
                ..EventFilter::default()
            })
            .await
            .unwrap();
        (s.status, events.into_iter().map(|e| e.event.kind).collect())
    })
}

#[test]
fn run_deterministic_example_prints_its_output_and_records_the_session() {
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
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("Hello Ada: 3 players, best score 95."),
        "{stdout}"
    );

    let out = rvbbit(dir.path())
        .args([
            "--output",
            "json",
            "run",
            &example("run_hello_shell.yaml"),
            "--input",
            r#"{"name": "Bo"}"#,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let doc: JsonOutcome = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc.status, "completed");
    assert_eq!(doc.path, ["scores", "remember", "greet"]);
    assert!(doc.caller_id.starts_with("cli-"));
    assert_eq!(doc.code, None);
    assert_eq!(doc.tool_calls, 3);
    let (status, kinds) = stored(dir.path(), &doc.session_id);
    assert_eq!(status, SessionStatus::Completed);
    assert_eq!(kinds.first(), Some(&EventKind::CascadeStart));
    assert_eq!(kinds.last(), Some(&EventKind::CascadeComplete));
}

#[test]
fn run_with_a_given_session_id_uses_it() {
    let dir = TempDir::new().unwrap();
    let out = rvbbit(dir.path())
        .args([
            "--output",
            "json",
            "run",
            &example("run_hello_shell.yaml"),
            "--session",
            "my-run_1",
        ])
        .output()
        .unwrap();
    let doc: JsonOutcome = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc.session_id, "my-run_1");
    // No `name` input: a warning, and the template default.
    assert_eq!(doc.warnings.len(), 1);
    assert!(doc.output["stdout"].as_str().unwrap().contains("Hello world"));
}

#[test]
fn run_bad_input_json_exits_6_with_c006() {
    let dir = TempDir::new().unwrap();
    for input in ["{bad", "@missing.json"] {
        let out = rvbbit(dir.path())
            .args(["run", &example("run_hello_shell.yaml"), "--input", input])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(6), "{input}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("RVB-C006"));
    }
    std::fs::write(dir.path().join("in.json"), r#"{"name": "File"}"#).unwrap();
    let out = rvbbit(dir.path())
        .args(["run", &example("run_hello_shell.yaml"), "--input", "@in.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Hello File"));
}

#[test]
fn run_invalid_cascade_exits_1_and_runs_nothing() {
    let dir = TempDir::new().unwrap();
    let file = write(
        dir.path(),
        "bad.yaml",
        "cascade_id: bad\ncells:\n  - name: a\n    tool: set_state\n    inputs: {key: k, value: v}\n    handoffs: [nowhere]\n",
    );
    let out = rvbbit(dir.path()).args(["run", &file]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("RVB-V008") && stderr.contains("nothing was run"),
        "{stderr}"
    );
    assert!(!dir.path().join(".rvbbit").exists(), "no store was opened");
}

#[test]
fn run_tool_timeout_exits_3() {
    let dir = TempDir::new().unwrap();
    let file = write(
        dir.path(),
        "slow.yaml",
        "cascade_id: slow\ncells:\n  - name: s\n    tool: linux_shell\n    inputs: {command: 'sleep 10'}\n    timeout: 200ms\n",
    );
    let out = rvbbit(dir.path())
        .args(["--output", "json", "run", &file])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let doc: JsonOutcome = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc.status, "failed");
    assert_eq!(doc.code.as_deref(), Some("RVB-T002"));
    assert!(doc.hint.unwrap().contains("timeout"));
    assert_eq!(stored(dir.path(), &doc.session_id).0, SessionStatus::Failed);
}

#[test]
fn run_corpus_bash_data_then_sql_data_completes() {
    // bash_data's CSV table becomes the SQL table `_generate` of the sql_data cell (rvbbit-sql).
    let dir = TempDir::new().unwrap();
    let file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/corpus/rvbbit-2025-12-25/examples/bash_substrate/00_hello_bash.yaml"
    );
    let out = rvbbit(dir.path())
        .args(["--output", "json", "run", file])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let doc: JsonOutcome = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc.outputs["generate"]["row_count"], 3);
    assert_eq!(
        doc.outputs["query"]["rows"],
        serde_json::json!([{"name": "Alice", "score": 95}, {"name": "Charlie", "score": 92}])
    );
}
