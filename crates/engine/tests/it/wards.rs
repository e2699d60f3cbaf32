//! Wards (pre, post, turn; blocking, retry, advisory) and validators (one resolution order, validator
//! cascades, unknown validators).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rvbbit_core::{EventKind, SessionStatus};
use rvbbit_testkit::{Reply, Script, TestServer};
use serde_json::{Value, json};

use crate::compose::{Project, children_of, request_for, run, session};
use crate::support::{CORPUS, Harness};

fn ward_cascade(wards: &str) -> String {
    format!(
        r#"
cascade_id: warded
cells:
  - name: step
    tool: append_state
    inputs: {{key: runs, value: x}}
    on_error: recover
    wards:
{wards}
  - name: recover
    tool: set_state
    inputs: {{key: recovered, value: "yes"}}
"#
    )
}

/// The text of the last message of a request body.
fn last_text(body: &Value) -> String {
    let m = body["messages"].as_array().unwrap().last().unwrap();
    m["content"].as_str().unwrap_or_default().to_owned()
}

async fn ward_events(h: &Harness, out: &rvbbit_engine::Outcome) -> Vec<Value> {
    h.events(&out.session_id)
        .await
        .into_iter()
        .filter(|e| e.event.kind == EventKind::Ward)
        .map(|e| e.event.metadata)
        .collect()
}

#[tokio::test]
async fn a_blocking_pre_ward_stops_the_cascade_before_the_cell_and_ignores_on_error() {
    let p = Project::new();
    p.write(
        "c.yaml",
        &ward_cascade(
            r#"      pre:
        - validator: {python: "result = {'valid': 'Ada' not in content, 'reason': 'no Ada allowed in ' + content}"}
          mode: blocking"#,
        ),
    );
    let h = Harness::new().await;
    let out = run(&h, &h.engine(), p.request("c.yaml", json!({"name": "Ada"}))).await;
    assert_eq!(out.status, SessionStatus::Failed);
    let err = out.error.as_ref().unwrap();
    assert_eq!(err.code().code, "RVB-E005");
    let msg = err.to_string();
    assert!(msg.contains("[BLOCKED by pre-ward"), "{msg}");
    assert!(msg.contains(r#"no Ada allowed in {"name":"Ada"}"#), "{msg}");
    // The tool never ran and on_error did not route.
    assert_eq!(out.path, ["step"]);
    assert_eq!(out.tool_calls, 0);
    assert!(out.state.get("recovered").is_none());
    let wards = ward_events(&h, &out).await;
    assert_eq!(wards.len(), 1);
    assert_eq!(wards[0]["side"], "pre");
    assert_eq!(wards[0]["mode"], "blocking");
    assert_eq!(wards[0]["passed"], false);
}

#[tokio::test]
async fn pre_wards_see_the_real_input_and_advisory_or_retry_failures_only_warn() {
    let p = Project::new();
    p.write(
        "c.yaml",
        &ward_cascade(
            r#"      pre:
        - validator: {python: "import json\nresult = {'valid': json.loads(original_input)['name'] == 'Ada' and 'Ada' in content, 'reason': 'real input'}"}
        - validator: {bash: "echo '{\"valid\": false, \"reason\": \"advice\"}'"}
          mode: advisory
        - validator: {python: "result = {'valid': False, 'reason': 'nothing to retry'}"}
          mode: retry"#,
        ),
    );
    let h = Harness::new().await;
    let out = run(&h, &h.engine(), p.request("c.yaml", json!({"name": "Ada"}))).await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    assert_eq!(out.path, ["step", "recover"]);
    assert_eq!(out.warnings.len(), 2, "{:?}", out.warnings);
    assert!(out.warnings[0].contains("pre-ward `bash` failed: advice"));
    assert!(out.warnings[1].contains("nothing to retry"));
    let passed: Vec<bool> = ward_events(&h, &out)
        .await
        .iter()
        .map(|w| w["passed"].as_bool().unwrap())
        .collect();
    assert_eq!(passed, [true, false, false]);
}

#[tokio::test]
async fn post_wards_on_a_deterministic_cell_block_warn_and_retry_within_the_larger_budget() {
    let p = Project::new();
    // Blocking: the first output fails.
    p.write(
        "block.yaml",
        &ward_cascade(
            r#"      post:
        - validator: {python: "result = {'valid': False, 'reason': 'bad output ' + content}"}"#,
        ),
    );
    // Retry: valid once the tool has run three times; rules say 1 attempt, the ward says 3.
    p.write(
        "retry.yaml",
        &ward_cascade(
            r#"      post:
        - validator: {python: "import json\nn = json.loads(content)['length']\nresult = {'valid': n >= 3, 'reason': f'only {n}'}"}
          mode: retry
          max_attempts: 3
        - validator: {python: "result = {'valid': False, 'reason': 'just advice'}"}
          mode: advisory"#,
        ),
    );
    // Retry exhausted: the last output is kept with a warning.
    p.write(
        "exhausted.yaml",
        &ward_cascade(
            r#"      post:
        - validator: {python: "result = {'valid': False, 'reason': 'never'}"}
          mode: retry
          max_attempts: 2"#,
        ),
    );
    let h = Harness::new().await;
    let out = run(&h, &h.engine(), p.request("block.yaml", json!({}))).await;
    assert_eq!(out.status, SessionStatus::Failed);
    let err = out.error.as_ref().unwrap();
    assert_eq!(err.code().code, "RVB-E005");
    assert!(
        err.to_string()
            .contains("[BLOCKED by post-ward `python`: bad output {"),
        "{err}"
    );
    assert_eq!(out.path, ["step"]);

    let out = run(&h, &h.engine(), p.request("retry.yaml", json!({}))).await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    // Three runs of `step`, then `recover` (the next cell).
    assert_eq!(out.tool_calls, 4);
    assert_eq!(out.outputs["step"]["length"], 3);
    assert_eq!(out.state["last_validation_error"], "only 2");
    // The advisory ward warned on each of the three runs.
    assert_eq!(out.warnings.len(), 3, "{:?}", out.warnings);

    let out = run(&h, &h.engine(), p.request("exhausted.yaml", json!({}))).await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    assert_eq!(out.tool_calls, 3);
    assert_eq!(out.outputs["step"]["length"], 2);
    assert!(
        out.warnings[0].contains("never passed in 2 attempt(s)"),
        "{:?}",
        out.warnings
    );
}

#[tokio::test]
async fn a_retry_post_ward_re_asks_the_model_with_the_reason() {
    let p = Project::new();
    p.write(
        "c.yaml",
        r#"
cascade_id: llm_ward
cells:
  - name: write
    instructions: Write one sentence.
    rules:
      retry_instructions: "Ward said: {{ validation_error }} ({{ attempt }}/{{ max_attempts }})"
    wards:
      post:
        - validator: {python: "result = {'valid': 'important' in content, 'reason': 'say important'}"}
          mode: retry
          max_attempts: 2
      turn:
        - validator: {python: "result = {'valid': len(content) < 100, 'reason': 'too long'}"}
          mode: advisory
"#,
    );
    let server = TestServer::start(Script::sequence([
        Reply::text("A sentence."),
        Reply::text("An important sentence."),
    ]))
    .await;
    let h = Harness::new().await;
    let out = run(
        &h,
        &h.llm_engine(&server.base_url()),
        p.request("c.yaml", json!({})),
    )
    .await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    assert_eq!(out.output, json!("An important sentence."));
    assert_eq!(server.requests(), 2);
    assert_eq!(last_text(&server.bodies()[1]), "Ward said: say important (2/2)");
    assert!(out.warnings.is_empty(), "{:?}", out.warnings);
    let sides: Vec<String> = ward_events(&h, &out)
        .await
        .iter()
        .map(|w| format!("{}:{}", w["side"].as_str().unwrap(), w["passed"]))
        .collect();
    assert_eq!(sides, ["turn:true", "post:false", "turn:true", "post:true"]);
}

#[tokio::test]
async fn a_blocking_turn_ward_stops_the_cell_after_the_turn() {
    let p = Project::new();
    p.write(
        "c.yaml",
        r#"
cascade_id: turn_ward
cells:
  - name: chat
    instructions: Talk.
    rules: {max_turns: 3}
    wards:
      turn:
        - validator: {python: "result = {'valid': 'secret' not in content, 'reason': 'leaked a secret'}"}
"#,
    );
    let server = TestServer::start(Script::sequence([
        Reply::text("Hello."),
        Reply::text("The secret is 42."),
        Reply::text("unreached"),
    ]))
    .await;
    let h = Harness::new().await;
    let out = run(
        &h,
        &h.llm_engine(&server.base_url()),
        p.request("c.yaml", json!({})),
    )
    .await;
    assert_eq!(out.status, SessionStatus::Failed);
    let err = out.error.unwrap();
    assert_eq!(err.code().code, "RVB-E005");
    assert!(err.to_string().contains("turn-ward"), "{err}");
    assert_eq!(server.requests(), 2);
}

#[tokio::test]
async fn an_unknown_validator_is_an_error_never_a_pass() {
    let p = Project::new();
    p.write(
        "loop.yaml",
        "cascade_id: l\ncells:\n  - name: a\n    instructions: Hi.\n    rules: {loop_until: no_such_validator}\n",
    );
    p.write(
        "ward.yaml",
        "cascade_id: w\ncells:\n  - name: a\n    tool: set_state\n    inputs: {key: k, value: v}\n    wards:\n      post: [{validator: no_such_validator, mode: advisory}]\n",
    );
    let server = TestServer::start(Script::sequence([Reply::text("Hello.")])).await;
    let h = Harness::new().await;
    for file in ["loop.yaml", "ward.yaml"] {
        // The validator refuses these files; the engine refuses them too when it is handed one anyway.
        let out = run(
            &h,
            &h.llm_engine(&server.base_url()),
            p.unvalidated(file, json!({})),
        )
        .await;
        assert_eq!(out.status, SessionStatus::Failed, "{file}");
        let err = out.error.unwrap();
        assert_eq!(err.code().code, "RVB-E001", "{file}");
        assert!(
            err.to_string()
                .contains("the validator `no_such_validator` is not defined"),
            "{file}: {err}"
        );
    }
}

/// A scripted judge for the corpus validator cascades, and a main cell that says "important" only on its
/// second attempt.
fn corpus_rule(main_calls: Arc<AtomicUsize>, safety_valid: bool) -> Script {
    Script::rule(move |body| {
        let text = last_text(body);
        let verdict =
            |valid: bool, reason: &str| Reply::text(json!({"valid": valid, "reason": reason}).to_string());
        if text.contains("contains the word 'important'") {
            let between = text.split("---").nth(1).unwrap_or_default().to_lowercase();
            if between.contains("important") {
                verdict(true, "Content contains required keyword")
            } else {
                verdict(false, "Content must include the word 'important'")
            }
        } else if text.contains("grammar and spelling") {
            verdict(true, "fine grammar")
        } else if text.contains("potential safety issues") {
            verdict(safety_valid, "unsafe content")
        } else if text.contains("non-empty and has at least 10 characters") {
            verdict(true, "long enough")
        } else if text.contains("Complete this task") || text.contains("Review this content") {
            match main_calls.fetch_add(1, Ordering::SeqCst) {
                0 => Reply::text("Done with the task."),
                _ => Reply::text("Done with the important task."),
            }
        } else if text.starts_with("Ward validation failed") {
            main_calls.fetch_add(1, Ordering::SeqCst);
            Reply::text("Done with the important task.")
        } else {
            Reply::text("Summary.")
        }
    })
}

#[tokio::test]
async fn corpus_ward_retry_flow_retries_until_the_keyword_validator_cascade_passes() {
    let calls = Arc::new(AtomicUsize::new(0));
    let server = TestServer::start(corpus_rule(calls.clone(), true)).await;
    let h = Harness::new().await;
    let path = PathBuf::from(CORPUS).join("ward_retry_flow.yaml");
    let out = run(
        &h,
        &h.llm_engine(&server.base_url()),
        request_for(&path, json!({"task": "write a note"})),
    )
    .await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    assert_eq!(out.path, ["complete_task", "done"]);
    assert_eq!(out.outputs["complete_task"], "Done with the important task.");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    // The re-ask used the cascade's retry_instructions with the validator cascade's reason.
    let retry = h
        .events(&out.session_id)
        .await
        .into_iter()
        .find(|e| e.event.kind == EventKind::Retry)
        .expect("a retry event");
    assert!(
        retry
            .event
            .content
            .as_str()
            .unwrap()
            .starts_with("Ward validation failed: Content must include the word 'important'"),
        "{}",
        retry.event.content
    );
    // Validator cascades ran as linked child sessions: two wards on each of the two attempts.
    let children = children_of(&h, &out.session_id).await;
    assert_eq!(children.len(), 4, "{children:?}");
    let ward = session(&h, &format!("{}_ward", out.session_id)).await;
    assert_eq!(ward.cascade_id.as_deref(), Some("keyword_validator"));
    assert_eq!(ward.input["content"], "Done with the task.");
    assert_eq!(ward.input["original_input"], json!({"task": "write a note"}));
    for c in children {
        assert!(
            c.session_id
                .as_str()
                .starts_with(&format!("{}_ward", out.session_id))
        );
        assert_eq!(c.caller_id.as_ref(), Some(&out.caller_id));
    }
}

#[tokio::test]
async fn corpus_ward_blocking_flow_stops_when_the_safety_cascade_says_no() {
    let calls = Arc::new(AtomicUsize::new(0));
    let server = TestServer::start(corpus_rule(calls, false)).await;
    let h = Harness::new().await;
    let path = PathBuf::from(CORPUS).join("ward_blocking_flow.yaml");
    let out = run(
        &h,
        &h.llm_engine(&server.base_url()),
        request_for(&path, json!({"content": "Some content to publish."})),
    )
    .await;
    assert_eq!(out.status, SessionStatus::Failed);
    let err = out.error.as_ref().unwrap();
    assert_eq!(err.code().code, "RVB-E005");
    assert!(
        err.to_string()
            .contains("[BLOCKED by post-ward `content_safety`: unsafe content]"),
        "{err}"
    );
    assert_eq!(out.path, ["safety_check"]);
    // pre (simple_validator) passed, the cell ran once, content_safety blocked; grammar_check never ran.
    let judged: Vec<String> = ward_events(&h, &out)
        .await
        .iter()
        .map(|w| format!("{}:{}", w["validator"].as_str().unwrap(), w["passed"]))
        .collect();
    assert_eq!(judged, ["simple_validator:true", "content_safety:false"]);
}

#[tokio::test]
async fn a_loop_until_validator_cascade_runs_as_a_validator_session() {
    let p = Project::new();
    p.write(
        "traits/has_keyword.yaml",
        "cascade_id: has_keyword\ncells:\n  - name: judge\n    instructions: 'Judge: {{ input.content }}'\n",
    );
    p.write(
        "c.yaml",
        "cascade_id: c\ncells:\n  - name: write\n    instructions: Write.\n    rules: {loop_until: has_keyword, max_attempts: 2}\n",
    );
    let server = TestServer::start(Script::sequence([
        Reply::text("first"),
        Reply::text(r#"{"valid": false, "reason": "no keyword"}"#),
        Reply::text("second, with keyword"),
        Reply::text(r#"{"valid": true, "reason": "ok"}"#),
    ]))
    .await;
    let h = Harness::new().await;
    let out = run(
        &h,
        &h.llm_engine(&server.base_url()),
        p.request("c.yaml", json!({})),
    )
    .await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    assert_eq!(out.output, json!("second, with keyword"));
    let first = session(&h, &format!("{}_validator_1", out.session_id)).await;
    assert_eq!(first.input["content"], "first");
    let second = session(&h, &format!("{}_validator_2", out.session_id)).await;
    assert_eq!(second.parent_session_id.as_ref(), Some(&out.session_id));
    assert_eq!(out.llm_calls, 4);
}

#[tokio::test]
async fn corpus_ward_advisory_flow_warns_and_continues() {
    let server = TestServer::start(Script::rule(|body| {
        let text = last_text(body);
        let verdict = |reason: &str| Reply::text(json!({"valid": false, "reason": reason}).to_string());
        if text.contains("grammar and spelling") {
            verdict("typos")
        } else if text.contains("content length meets") {
            verdict("too short")
        } else if text.contains("Write a quick draft") {
            Reply::text("Draft about otters.")
        } else {
            Reply::text("Reviewed.")
        }
    }))
    .await;
    let h = Harness::new().await;
    let path = PathBuf::from(CORPUS).join("ward_advisory_flow.yaml");
    let out = run(
        &h,
        &h.llm_engine(&server.base_url()),
        request_for(&path, json!({"topic": "otters"})),
    )
    .await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    assert_eq!(out.path, ["draft", "review"]);
    assert_eq!(out.output, json!("Reviewed."));
    assert_eq!(out.warnings.len(), 2, "{:?}", out.warnings);
    assert!(out.warnings[0].contains("post-ward `grammar_check` failed: typos"));
    assert!(out.warnings[1].contains("post-ward `length_check` failed: too short"));
    // Both validator cascades ran as ward sessions of this run.
    assert_eq!(children_of(&h, &out.session_id).await.len(), 2);
}

#[tokio::test]
async fn corpus_spawn_flow_with_a_missing_async_ref_still_completes_with_a_warning() {
    let server = TestServer::start(Script::sequence([Reply::text("1, 2, 3.")])).await;
    let h = Harness::new().await;
    let path = PathBuf::from(CORPUS).join("spawn_flow.yaml");
    let out = run(
        &h,
        &h.llm_engine(&server.base_url()),
        request_for(&path, json!({})),
    )
    .await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    assert_eq!(out.output, json!("1, 2, 3."));
    assert_eq!(out.warnings.len(), 1, "{:?}", out.warnings);
    assert!(out.warnings[0].contains("RVB-E006"), "{}", out.warnings[0]);
    assert!(
        out.warnings[0].contains("windlass/examples/validator.json"),
        "{}",
        out.warnings[0]
    );
    assert_eq!(h.count(&out.session_id, EventKind::Error).await, 1);
}
