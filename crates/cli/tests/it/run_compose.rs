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

/// The session records of `caller`, as `rvbbit sessions list --caller` prints them.
fn sessions_of(dir: &Path, caller: &str) -> Vec<Value> {
    let listed = json_of(dir, &["sessions", "list", "--caller", caller]);
    listed["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["session"].clone())
        .collect()
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
    let sessions = sessions_of(dir.path(), &doc.caller_id);
    assert_eq!(sessions.len(), 3, "{sessions:?}");
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

/// The corpus's `test_cascade_udf.yaml` through the real binary: a `sql_data` cell calls `rvbbit_run`
/// per row on `traits/fraud_assessment_with_soundings.yaml` (3 soundings, an evaluator, a Python post
/// ward), and the next cell reads the per-row documents with `json_extract_string`. The evaluator
/// instructions ask for "0, 1, or 2", so the attempts are numbered from 0 and a `0` is understood. Every per-row run is
/// a child session of the cascade's run under its caller id.
#[test]
fn corpus_test_cascade_udf_runs_a_cascade_per_row_from_sql_data() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = rt.block_on(TestServer::start(Script::rule(|body| {
        let prompt = body["messages"]
            .as_array()
            .map(|m| {
                m.iter()
                    .filter_map(|x| x["content"].as_str())
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default();
        let amount_line = prompt
            .lines()
            .find(|l| l.trim().starts_with("Transaction Amount: $"))
            .unwrap_or_default()
            .trim()
            .to_owned();
        if prompt.contains("Rewrite the prompt below") {
            // The soundings' default `rewrite` mutation: a variation of the prompt, amount kept.
            return Reply::text(format!("Assess the fraud risk; return only JSON.\n{amount_line}")).cost(0.0001);
        }
        if prompt.contains("evaluating 3 different fraud risk assessments") {
            // The instructions ask for "0, 1, or 2", so the attempts are numbered from 0.
            assert!(prompt.contains("## Attempt 0") && prompt.contains("## Attempt 2"));
            return Reply::text("{\"winner\": 0, \"reason\": \"most conservative\"}").cost(0.0001);
        }
        let amount: f64 = prompt
            .lines()
            .find_map(|l| l.trim().strip_prefix("Transaction Amount: $"))
            .and_then(|a| a.trim().parse().ok())
            .unwrap_or(0.0);
        let (score, level, action) = if amount >= 100_000.0 {
            (0.9, "high", "block")
        } else {
            (0.2, "low", "approve")
        };
        Reply::text(format!(
            "{{\"risk_score\": {score}, \"risk_level\": \"{level}\", \"reasoning\": \"amount {amount}\", \"recommended_action\": \"{action}\", \"confidence\": 0.8}}"
        ))
        .cost(0.001)
    })));
    let corpus = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/corpus/rvbbit-2025-12-25"
    );
    let dir = TempDir::new().unwrap();
    for rel in [
        "examples/test_cascade_udf.yaml",
        "traits/fraud_assessment_with_soundings.yaml",
    ] {
        let text = std::fs::read_to_string(Path::new(corpus).join(rel)).unwrap();
        write(dir.path(), rel, &text);
    }
    let out = rvbbit(dir.path())
        .env("RVBBIT_PROVIDER_BASE_URL", server.base_url())
        .env("OPENROUTER_API_KEY", "test-key")
        .env("RVBBIT_DEFAULT_MODEL", "openai/gpt-4o-mini")
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .args(["--set", "provider.max_retries=0"])
        .args(["--output", "json", "run", "examples/test_cascade_udf.yaml"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: JsonOutcome = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc.status, "completed");
    // Four customers, highest risk first, with the fields extracted from each run's document.
    let rows = doc.output["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 4, "{}", doc.output);
    let mut names: Vec<&str> = rows
        .iter()
        .map(|r| r["customer_name"].as_str().unwrap())
        .collect();
    names[..2].sort_unstable();
    assert_eq!(&names[..2], ["Acme Corp", "Test Company"], "{}", doc.output);
    assert_eq!(rows[0]["risk_level"], "high");
    assert_eq!(rows[0]["action"], "block");
    assert_eq!(rows[3]["risk_score"], 0.2);
    // Per row: 2 prompt rewrites (candidates 2 and 3), 3 assessments, 1 verdict; all children of the run.
    let prompts: Vec<String> = server
        .bodies()
        .iter()
        .map(|b| b["messages"].to_string())
        .collect();
    let count = |needle: &str| prompts.iter().filter(|p| p.contains(needle)).count();
    assert_eq!(count("Rewrite the prompt below"), 8);
    assert_eq!(count("evaluating 3 different fraud risk assessments"), 4);
    assert_eq!(prompts.len(), 24);
    let sessions = sessions_of(dir.path(), &doc.caller_id);
    let per_row: Vec<&Value> = sessions
        .iter()
        .filter(|s| s["cascade_id"] == "fraud_assessment_with_soundings")
        .collect();
    assert_eq!(per_row.len(), 4, "{sessions:?}");
    for s in per_row {
        assert_eq!(s["parent_session_id"], doc.session_id.as_str(), "{s}");
        assert_eq!(s["depth"], 1);
    }
    // The run's cost includes its children's: 12 assessments, 8 rewrites and 4 verdicts.
    assert_eq!(doc.cost_usd, "0.013200");
}

/// The corpus's `test_map_cascade.yaml` through the real binary: `python_data` lists five fruits,
/// `map_cascade` runs `traits/process_single_item.yaml` (an LLM cell) once per fruit as child sessions of
/// the run, and the summary cell sees every child's answer in input order.
#[test]
fn corpus_test_map_cascade_maps_a_list_to_child_runs_and_summarizes_them() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = rt.block_on(TestServer::start(Script::rule(|body| {
        let prompt = body["messages"].to_string();
        if let Some(fruit) = prompt
            .split("analyzing the fruit: \\\"")
            .nth(1)
            .and_then(|rest| rest.split("\\\"").next())
        {
            return Reply::text(format!(
                "{{\"name\": \"{fruit}\", \"length\": {}, \"uppercase\": \"{}\"}}",
                fruit.len(),
                fruit.to_uppercase()
            ))
            .cost(0.001);
        }
        Reply::text("| fruit | length |\n|---|---|\n5 fruits").cost(0.002)
    })));
    let corpus = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/corpus/rvbbit-2025-12-25"
    );
    let dir = TempDir::new().unwrap();
    for rel in [
        "examples/test_map_cascade.yaml",
        "traits/process_single_item.yaml",
    ] {
        let text = std::fs::read_to_string(Path::new(corpus).join(rel)).unwrap();
        write(dir.path(), rel, &text);
    }
    let out = rvbbit(dir.path())
        .env("RVBBIT_PROVIDER_BASE_URL", server.base_url())
        .env("OPENROUTER_API_KEY", "test-key")
        .env("RVBBIT_DEFAULT_MODEL", "openai/gpt-4o-mini")
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .args(["--set", "provider.max_retries=0"])
        .args(["--output", "json", "run", "examples/test_map_cascade.yaml"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: JsonOutcome = serde_json::from_slice(&out.stdout).unwrap();
    let mapped = &doc.outputs["process_all_items"];
    assert_eq!(mapped["count"], 5, "{mapped}");
    assert_eq!(mapped["failed"], 0, "{mapped}");
    let names: Vec<String> = mapped["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let text = r.as_str().map(str::to_owned).unwrap_or_else(|| r.to_string());
            let v: Value = serde_json::from_str(&text).unwrap_or(r.clone());
            v["name"].as_str().unwrap_or_default().to_owned()
        })
        .collect();
    assert_eq!(
        names,
        ["apple", "banana", "cherry", "date", "elderberry"],
        "{mapped}"
    );
    // The summary prompt carries every child's answer.
    let summary = server.bodies().last().unwrap()["messages"].to_string();
    assert!(
        summary.contains("ELDERBERRY") && summary.contains("APPLE"),
        "{summary}"
    );
    let sessions = sessions_of(dir.path(), &doc.caller_id);
    let children: Vec<&Value> = sessions
        .iter()
        .filter(|s| s["cascade_id"] == "process_single_item")
        .collect();
    assert_eq!(children.len(), 5, "{sessions:?}");
    for s in children {
        assert_eq!(s["parent_session_id"], doc.session_id.as_str(), "{s}");
        assert_eq!(s["depth"], 1);
    }
    // Five item analyses and the summary, all counted by the run.
    assert_eq!(doc.cost_usd, "0.007000");
    rt.block_on(server.shutdown());
}
