//! `token_budget` (§10.1): enforced before each model call, with the strategies and RVB-E010.

use rvbbit_core::{EventKind, SessionStatus};
use rvbbit_testkit::{Reply, Script, TestServer};
use serde_json::{Value, json};

use crate::support::{Harness, yaml};
use crate::takes::texts;

/// A 400-character reply (~104 estimated tokens with the per-message overhead).
fn long(tag: &str) -> String {
    format!("{tag}{}", "x".repeat(400 - tag.len()))
}

/// One cell with `max_turns` turns of "Next." (5 tokens) after the task "Write." (5 tokens), and a
/// cascade budget; the server answers 400-character texts (the first one starting with `first`).
fn cascade(turns: u32, budget: &str) -> rvbbit_cascade::model::Cascade {
    yaml(&format!(
        r#"
cascade_id: budget
cells:
  - name: w
    instructions: "Write."
    rules: {{max_turns: {turns}, turn_prompt: "Next."}}
token_budget: {budget}
"#
    ))
}

fn server_replies(first: &'static str) -> Script {
    Script::rule(move |body: &Value| {
        if body["model"] == "sum/model" {
            return Reply::text("SUMMARY");
        }
        let n = body["messages"].as_array().unwrap().len();
        if n == 1 {
            Reply::text(long(first))
        } else {
            Reply::text(long("more "))
        }
    })
}

async fn budget_events(h: &Harness, out: &rvbbit_engine::Outcome) -> Vec<Value> {
    h.events(&out.session_id)
        .await
        .into_iter()
        .filter(|e| e.event.kind == EventKind::Validation && e.event.metadata["check"] == "token_budget")
        .map(|e| e.event.metadata)
        .collect()
}

#[tokio::test]
async fn strategy_fail_stops_the_cell_before_an_over_budget_call() {
    let server = TestServer::start(server_replies("first ")).await;
    let h = Harness::new().await;
    let c = cascade(6, "{max_total: 300, reserve_for_output: 0, strategy: fail}");
    let out = h.run(&h.llm_engine(&server.base_url()), c, json!({})).await;
    assert_eq!(out.status, SessionStatus::Failed);
    let err = out.error.as_ref().unwrap();
    assert_eq!(err.code().code, "RVB-E010", "{err}");
    assert!(
        err.to_string().contains("~332 tokens") && err.to_string().contains("limit of 300"),
        "{err}"
    );
    // Turns 1-3 fit (5, 114, 223 tokens); the fourth (332) is never sent.
    assert_eq!(server.requests(), 3);
    let events = budget_events(&h, &out).await;
    assert!(
        events
            .iter()
            .any(|m| m["strategy"] == "fail" && m["passed"] == false)
    );
    server.shutdown().await;
}

#[tokio::test]
async fn reserve_for_output_counts_against_max_total() {
    let server = TestServer::start(server_replies("first ")).await;
    let h = Harness::new().await;
    // 400 - 300 reserved = 100: the second turn (114 tokens) is already over.
    let c = cascade(3, "{max_total: 400, reserve_for_output: 300, strategy: fail}");
    let out = h.run(&h.llm_engine(&server.base_url()), c, json!({})).await;
    assert_eq!(out.error.as_ref().map(|e| e.code().code), Some("RVB-E010"));
    assert_eq!(server.requests(), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn sliding_window_keeps_the_newest_messages_that_fit_and_warns_first() {
    let server = TestServer::start(server_replies("first ")).await;
    let h = Harness::new().await;
    let c = cascade(
        6,
        "{max_total: 300, reserve_for_output: 0, strategy: sliding_window, warning_threshold: 0.7}",
    );
    let out = h.run(&h.llm_engine(&server.base_url()), c, json!({})).await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    assert_eq!(server.requests(), 6);
    let bodies = server.bodies();
    let lens: Vec<usize> = bodies.iter().map(|b| texts(b).len()).collect();
    // Unpruned the conversation would be 1, 3, 5, 7, 9, 11 messages; from the fourth call on it is cut
    // to the newest five that fit in 300 tokens (the task is gone).
    assert_eq!(lens, [1, 3, 5, 5, 5, 5]);
    assert_eq!(texts(&bodies[3])[0], "Next.");
    assert!(!texts(&bodies[5]).contains(&"Write.".to_owned()));
    let events = budget_events(&h, &out).await;
    // One warning (third call: 223 tokens > 0.7 × 300), then three enforcements.
    assert_eq!(events.iter().filter(|m| m["severity"] == "warning").count(), 1);
    let enforced: Vec<&Value> = events
        .iter()
        .filter(|m| m["strategy"] == "sliding_window")
        .collect();
    assert_eq!(enforced.len(), 3);
    assert_eq!(enforced[0]["tokens_before"], 332);
    assert_eq!(enforced[0]["tokens_after"], 223);
    assert_eq!(enforced[0]["dropped_messages"], 2);
    assert!(
        out.warnings.iter().any(|w| w.contains("token_budget")),
        "{:?}",
        out.warnings
    );
    server.shutdown().await;
}

#[tokio::test]
async fn prune_oldest_drops_old_messages_but_keeps_errors_and_the_last_three_exchanges() {
    let server = TestServer::start(server_replies("Error: the first try failed ")).await;
    let h = Harness::new().await;
    let c = cascade(
        6,
        "{max_total: 500, reserve_for_output: 0, strategy: prune_oldest}",
    );
    let out = h.run(&h.llm_engine(&server.base_url()), c, json!({})).await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    let bodies = server.bodies();
    let last = texts(&bodies[5]);
    // 550 tokens before the sixth call: the task, the first nudge and the second reply go; the first
    // reply mentions an error and stays.
    assert_eq!(last.len(), 8, "{last:?}");
    assert!(last[0].starts_with("Error: the first try failed"));
    assert!(!last.contains(&"Write.".to_owned()));
    let events = budget_events(&h, &out).await;
    let enforced: Vec<&Value> = events
        .iter()
        .filter(|m| m["strategy"] == "prune_oldest")
        .collect();
    assert_eq!(enforced.len(), 1);
    assert_eq!(enforced[0]["dropped_messages"], 3);
    server.shutdown().await;
}

#[tokio::test]
async fn prune_oldest_fails_with_e010_when_only_protected_messages_are_left() {
    let server = TestServer::start(server_replies("first ")).await;
    let h = Harness::new().await;
    // Four calls in, everything is within the last three exchanges: nothing can go.
    let c = cascade(
        6,
        "{max_total: 300, reserve_for_output: 0, strategy: prune_oldest}",
    );
    let out = h.run(&h.llm_engine(&server.base_url()), c, json!({})).await;
    assert_eq!(out.error.as_ref().map(|e| e.code().code), Some("RVB-E010"));
    assert_eq!(server.requests(), 3);
    server.shutdown().await;
}

#[tokio::test]
async fn summarize_replaces_old_messages_with_a_summary_from_the_summarizer_model() {
    let server = TestServer::start(server_replies("first ")).await;
    let h = Harness::new().await;
    let c = cascade(
        8,
        "{max_total: 700, reserve_for_output: 0, strategy: summarize, summarizer: {model: sum/model, target_size: 300}}",
    );
    let out = h.run(&h.llm_engine(&server.base_url()), c, json!({})).await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    // 8 turns + 1 summarizer call (the eighth call would carry 768 tokens).
    assert_eq!(server.requests(), 9);
    assert_eq!(out.llm_calls, 9);
    let bodies = server.bodies();
    let sum = bodies.iter().find(|b| b["model"] == "sum/model").unwrap();
    let ask = texts(sum).join("\n");
    assert!(
        ask.contains("approximately 300 tokens") && ask.contains("[user]: Write."),
        "{ask}"
    );
    let last = bodies.last().unwrap();
    assert_eq!(last["model"], "test/model");
    let msgs = last["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 11);
    assert_eq!(msgs[0]["role"], "system");
    assert_eq!(
        msgs[0]["content"],
        "CONTEXT SUMMARY (compressed from 5 messages):\nSUMMARY"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_per_cell_override_applies_to_that_cell_only() {
    let server = TestServer::start(server_replies("first ")).await;
    let h = Harness::new().await;
    let c = yaml(
        r#"
cascade_id: budget_override
cells:
  - name: small
    instructions: "Write."
    rules: {max_turns: 4, turn_prompt: "Next."}
  - name: tight
    instructions: "Write."
    rules: {max_turns: 4, turn_prompt: "Next."}
token_budget:
  max_total: 100000
  phase_overrides:
    tight: {max_total: 300, reserve_for_output: 0, strategy: fail}
"#,
    );
    let out = h.run(&h.llm_engine(&server.base_url()), c, json!({})).await;
    assert_eq!(out.path, ["small", "tight"]);
    assert_eq!(out.error.as_ref().map(|e| e.code().code), Some("RVB-E010"));
    assert_eq!(server.requests(), 4 + 3);
    server.shutdown().await;
}
