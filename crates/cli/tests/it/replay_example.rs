//! The recording shipped in `examples/recordings/` replays the triage example with no provider and no
//! API key, as the README shows. `RVBBIT_BLESS=1` re-records it against the testkit server (after a
//! change to how prompts are built, which changes the request hashes).

use std::path::Path;
use std::process::Command;

use rvbbit_testkit::{Reply, Script, TestServer};
use serde_json::json;
use tempfile::TempDir;

use crate::run_command::{JsonOutcome, example};
use crate::rvbbit;

const INPUT: &str = r#"{"ticket": "I was charged twice for order 1182, please give me my money back"}"#;
const DRAFT: &str = "Refund of the duplicate charge on order 1182 approved; 5 business days.";
const REPLY: &str = "Hello! We have refunded the duplicate charge on order 1182; it will reach your account \
within 5 business days. Sorry for the trouble.";

fn recording() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/recordings/triage_routing.jsonl")
        .display()
        .to_string()
}

/// Record the three calls of the triage example: a `route_to` tool call to `refund`, the draft, the reply.
fn bless(dir: &Path) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = rt.block_on(TestServer::start(Script::sequence([
        Reply::tool_call(
            "call_1",
            "route_to",
            json!({"target": "refund", "reason": "the customer asks for their money back"}),
        )
        .usage(212, 31),
        Reply::text(DRAFT).usage(140, 18),
        Reply::text(REPLY).usage(160, 34),
    ])));
    let _ = std::fs::remove_file(recording());
    let out = rvbbit(dir)
        .env("RVBBIT_PROVIDER_BASE_URL", server.base_url())
        .env("OPENROUTER_API_KEY", "recording-key")
        .args([
            "run",
            &example("triage_routing.yaml"),
            "--input",
            INPUT,
            "--record",
            &recording(),
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    rt.block_on(server.shutdown());
}

fn replay(dir: &Path) -> Command {
    let mut cmd = rvbbit(dir);
    cmd.args([
        "--output",
        "json",
        "run",
        &example("triage_routing.yaml"),
        "--input",
        INPUT,
        "--replay",
        &recording(),
    ]);
    cmd
}

#[test]
fn the_shipped_recording_replays_the_triage_example_without_a_provider() {
    let dir = TempDir::new().unwrap();
    if std::env::var_os("RVBBIT_BLESS").is_some() {
        bless(dir.path());
    }
    let out = replay(dir.path()).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "the recording no longer matches the requests (re-record with RVBBIT_BLESS=1 cargo test -p rvbbit \
         replay): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let outcome: JsonOutcome = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(outcome.status, "completed");
    assert_eq!(outcome.path, ["triage", "refund", "reply"]);
    assert_eq!(outcome.outputs["refund"], json!(DRAFT));
    assert_eq!(outcome.output, json!(REPLY));
    assert_eq!(outcome.llm_calls, 3);
    assert!(outcome.caller_id.starts_with("cli-"), "{}", outcome.caller_id);
}

#[test]
fn a_replay_miss_names_the_request_and_exits_4() {
    let dir = TempDir::new().unwrap();
    let out = rvbbit(dir.path())
        .args([
            "run",
            &example("triage_routing.yaml"),
            "--input",
            r#"{"ticket": "a different ticket that was never recorded"}"#,
            "--replay",
            &recording(),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("RVB-L"), "{stderr}");
    assert!(stderr.to_lowercase().contains("record"), "{stderr}");
}
