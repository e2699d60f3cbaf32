//! Caller tracking across a run tree (issue 5's must-show): `rvbbit run` of a cascade with a sub-cascade
//! and a cascade tool; every session shares the caller id, the parent ids form the tree, and
//! `rvbbit costs by-caller` sums the LLM calls of all of them.

use std::path::Path;

use rvbbit_testkit::{Reply, Script, TestServer};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::run_command::JsonOutcome;
use crate::rvbbit;

const ROOT: &str = r#"
cascade_id: tree_root
cells:
  - name: ask
    instructions: "Summarize {{ input.text }} with the summarizer tool."
    traits: [summarizer]
    use_native_tools: true
    sub_cascades:
      - ref: children/prep.yaml
"#;

const PREP: &str = r#"
cascade_id: prep
cells:
  - name: prepare
    instructions: "Prepare {{ input.text }}."
"#;

const SUMMARIZER: &str = r#"
cascade_id: summarizer
description: Summarize a text.
inputs_schema:
  text: the text to summarize
cells:
  - name: summarize
    instructions: "Summarize: {{ input.text }}"
"#;

fn write(dir: &Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn json_of(dir: &Path, args: &[&str]) -> Value {
    let out = rvbbit(dir)
        .args(["--output", "json"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn run_tree_shares_the_caller_links_parents_and_sums_costs_by_caller() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // openai/gpt-4o-mini is priced at $0.15 / $0.60 per million tokens: 1000 in + 500 out = 450 µ$.
    let server = rt.block_on(TestServer::start(Script::sequence([
        Reply::text("Prepared.").usage(1000, 500),
        Reply::tool_call("c1", "summarizer", json!({"text": "the report"})).usage(1000, 500),
        Reply::text("A short summary.").usage(1000, 500),
        Reply::text("Here is the summary.").usage(1000, 500),
    ])));
    let dir = TempDir::new().unwrap();
    write(dir.path(), "root.yaml", ROOT);
    write(dir.path(), "children/prep.yaml", PREP);
    write(dir.path(), "traits/summarizer.yaml", SUMMARIZER);

    let out = rvbbit(dir.path())
        .env("RVBBIT_PROVIDER_BASE_URL", server.base_url())
        .env("OPENROUTER_API_KEY", "test-key")
        .env("RVBBIT_DEFAULT_MODEL", "openai/gpt-4o-mini")
        .args(["--set", "provider.max_retries=0"])
        .args([
            "--output",
            "json",
            "run",
            "root.yaml",
            "--input",
            r#"{"text": "the report"}"#,
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: JsonOutcome = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc.status, "completed");
    assert_eq!(doc.output, json!("Here is the summary."));
    assert_eq!(server.requests(), 4);
    // The outcome's cost is the tree's: 4 calls x 450 µ$.
    assert_eq!(doc.cost_usd, "0.001800");

    // Every session of the tree carries the caller; the parent ids form root → {sub, tool}.
    let listed = json_of(dir.path(), &["sessions", "list", "--caller", &doc.caller_id]);
    let sessions: Vec<&Value> = listed["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["session"])
        .collect();
    assert_eq!(sessions.len(), 3, "{listed}");
    let root = sessions
        .iter()
        .find(|s| s["session_id"] == doc.session_id)
        .expect("the root session");
    assert_eq!(root["parent_session_id"], Value::Null);
    assert_eq!(root["depth"], 0);
    let sub = sessions
        .iter()
        .find(|s| s["session_id"] == format!("{}_sub", doc.session_id))
        .expect("the sub-cascade session");
    assert_eq!(sub["cascade_id"], "prep");
    let tool = sessions
        .iter()
        .find(|s| s["cascade_id"] == "summarizer")
        .expect("the cascade tool session");
    assert!(
        tool["session_id"]
            .as_str()
            .unwrap()
            .starts_with("tool_summarizer_")
    );
    assert_eq!(tool["input"], json!({"text": "the report"}));
    for child in [sub, tool] {
        assert_eq!(child["parent_session_id"], doc.session_id);
        assert_eq!(child["root_session_id"], doc.session_id);
        assert_eq!(child["depth"], 1);
        assert_eq!(child["status"], "completed");
    }
    for s in &sessions {
        assert_eq!(s["caller_id"], doc.caller_id);
    }

    // Every event of the tree carries the caller too; the children's events carry the parent link.
    let rt_store = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let events = rt_store.block_on(async {
        let store = rvbbit_store::open("sqlite://.rvbbit/rvbbit.db", dir.path())
            .await
            .unwrap();
        store
            .events(&rvbbit_store::EventFilter {
                caller_id: Some(doc.caller_id.clone()),
                ..Default::default()
            })
            .await
            .unwrap()
    });
    let by_session = |id: &str| {
        events
            .iter()
            .filter(|e| e.event.session_id.as_str() == id)
            .count()
    };
    assert!(by_session(&doc.session_id) > 0);
    assert!(by_session(sub["session_id"].as_str().unwrap()) > 0);
    assert!(by_session(tool["session_id"].as_str().unwrap()) > 0);
    for e in &events {
        if e.event.session_id.as_str() != doc.session_id {
            assert_eq!(
                e.event.parent_session_id.as_ref().map(|p| p.as_str()),
                Some(doc.session_id.as_str())
            );
        }
    }

    // `rvbbit costs by-caller` sums every session's calls: 4 calls, 1800 µ$, 3 sessions.
    let costs = json_of(dir.path(), &["costs", "by-caller"]);
    let rows = costs["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{costs}");
    assert_eq!(rows[0]["key"], doc.caller_id);
    assert_eq!(rows[0]["sessions"], 3);
    assert_eq!(rows[0]["calls"], 4);
    assert_eq!(rows[0]["tokens_in"], 4000);
    assert_eq!(rows[0]["tokens_out"], 2000);
    assert_eq!(rows[0]["cost"], 1800);
    assert_eq!(rows[0]["unknown_cost"], 0);
    rt.block_on(server.shutdown());
}
