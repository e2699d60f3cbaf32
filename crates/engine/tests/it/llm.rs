//! LLM cells against the testkit's scripted OpenAI-compatible server.

use rvbbit_core::{EventKind, SessionStatus};
use rvbbit_engine::RunRequest;
use rvbbit_testkit::{Reply, Script, TestServer};
use serde_json::{Value, json};

use crate::support::{Harness, corpus, yaml};

/// The text of the last message of a request body.
fn last_message(body: &Value) -> String {
    let m = body["messages"].as_array().unwrap().last().unwrap();
    content_text(m)
}

fn content_text(m: &Value) -> String {
    match &m["content"] {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect(),
        _ => String::new(),
    }
}

fn all_text(body: &Value) -> String {
    body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(content_text)
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn corpus_simple_flow_injects_the_previous_output() {
    let server = TestServer::start(Script::sequence([
        Reply::text("three columns: a, b, c"),
        Reply::text("A small table."),
    ]))
    .await;
    let h = Harness::new().await;
    let out = h
        .run(
            &h.llm_engine(&server.base_url()),
            corpus("simple_flow.yaml"),
            json!({}),
        )
        .await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    assert_eq!(out.path, ["ingest", "summarize"]);
    assert_eq!(out.output, json!("A small table."));
    assert_eq!(server.requests(), 2);
    let bodies = server.bodies();
    assert_eq!(bodies[0]["model"], "test/model");
    let second = all_text(&bodies[1]);
    assert!(
        second.contains("## Output of `ingest`\nthree columns: a, b, c"),
        "{second}"
    );
    assert!(last_message(&bodies[1]).starts_with("## New Task\nSummarize"));
    assert_eq!(h.count(&out.session_id, EventKind::LlmResponse).await, 2);
    assert_eq!(h.count(&out.session_id, EventKind::ContextInjected).await, 1);
    server.shutdown().await;
}

#[tokio::test]
async fn corpus_loop_flow_max_turns_is_a_fixed_count() {
    let server = TestServer::start(Script::sequence([
        Reply::text("concepts"),
        Reply::text("joke v1"),
        Reply::text("joke v2"),
        Reply::text("joke v3"),
    ]))
    .await;
    let h = Harness::new().await;
    let out = h
        .run(
            &h.llm_engine(&server.base_url()),
            corpus("loop_flow.yaml"),
            json!({}),
        )
        .await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    assert_eq!(out.llm_calls, 4);
    assert_eq!(server.requests(), 4);
    assert_eq!(out.output, json!("joke v3"));
    let bodies = server.bodies();
    assert!(last_message(&bodies[2]).starts_with("Continue, or refine"));
    // The conversation grows across turns: turn 3 sees both earlier replies.
    let third = all_text(&bodies[3]);
    assert!(third.contains("joke v1") && third.contains("joke v2"));
    server.shutdown().await;
}

#[tokio::test]
async fn corpus_turn_prompt_is_rendered_per_turn() {
    let server = TestServer::start(Script::sequence(
        (0..4).map(|i| Reply::text(format!("draft {i}"))),
    ))
    .await;
    let h = Harness::new().await;
    let out = h
        .run(
            &h.llm_engine(&server.base_url()),
            corpus("turn_prompt_progressive.yaml"),
            json!({"task": "a haiku"}),
        )
        .await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    let bodies = server.bodies();
    assert_eq!(bodies.len(), 4);
    assert!(last_message(&bodies[0]).contains("Complete this task: a haiku"));
    assert!(last_message(&bodies[1]).contains("First Review"));
    assert!(last_message(&bodies[2]).contains("Second Review"));
    assert!(last_message(&bodies[3]).contains("Third Review"));
    assert_eq!(out.output, json!("draft 3"));
    server.shutdown().await;
}

#[tokio::test]
async fn corpus_prompt_tools_run_code_result_goes_back_to_the_model() {
    let call = "I'll test it.\n```json\n{\"tool\": \"run_code\", \"arguments\": {\"code\": \"print('hi')\\nresult = 5 * 5\"}}\n```";
    let server = TestServer::start(Script::sequence([
        Reply::text(call),
        Reply::text("It prints hi and 25."),
        Reply::text("Still correct."),
        Reply::text("Final: 25."),
    ]))
    .await;
    let h = Harness::new().await;
    let out = h
        .run(
            &h.llm_engine(&server.base_url()),
            corpus("test_prompt_tools.yaml"),
            json!({"problem": "square 5"}),
        )
        .await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    let bodies = server.bodies();
    assert_eq!(bodies.len(), 4, "3 turns, the first with one follow-up");
    // The cell's own model wins over the default.
    assert_eq!(bodies[0]["model"], "google/gemini-3-pro-preview");
    // Prompt mode: tools are described in a system message, not sent natively.
    assert!(
        bodies[0]
            .get("tools")
            .is_none_or(|t| t.as_array().is_some_and(|a| a.is_empty()))
    );
    assert!(content_text(&bodies[0]["messages"][0]).contains("## Available Tools"));
    let result = last_message(&bodies[1]);
    assert!(result.starts_with("Tool Result (run_code):"), "{result}");
    assert!(result.contains("hi") && result.contains("25"), "{result}");
    assert_eq!(out.output, json!("Final: 25."));
    assert_eq!(h.count(&out.session_id, EventKind::ToolResult).await, 1);
    server.shutdown().await;
}

#[tokio::test]
async fn corpus_linux_shell_in_prompt_mode() {
    let call = "```json\n{\"tool\": \"linux_shell\", \"arguments\": {\"command\": \"echo shell-ok\"}}\n```";
    let server = TestServer::start(Script::sequence([
        Reply::text(call),
        Reply::text("ran it"),
        Reply::text("t2"),
        Reply::text("t3"),
    ]))
    .await;
    let h = Harness::new().await;
    let out = h
        .run(
            &h.llm_engine(&server.base_url()),
            corpus("test_linux_shell.yaml"),
            json!({"task": "say ok"}),
        )
        .await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    assert!(last_message(&server.bodies()[1]).contains("shell-ok"));
    assert_eq!(out.tool_calls, 1);
    server.shutdown().await;
}

const TRIAGE: &str = r#"
cascade_id: triage
cells:
  - name: triage
    instructions: "Classify: {{ input.text }}"
    use_native_tools: true
    traits: [set_state]
    handoffs:
      - {target: refund, description: "customer wants money back"}
      - {target: answer, description: "anything else"}
  - name: answer
    instructions: "Answer: {{ input.text }}"
  - name: refund
    instructions: "Refund for: {{ input.text }} (label {{ state.label }})"
"#;

#[tokio::test]
async fn native_tools_and_route_to_pick_the_target_and_keep_the_text() {
    let server = TestServer::start(Script::sequence([
        Reply::tool_call("c1", "set_state", json!({"key": "label", "value": "money"})).and_tool_call(
            "c2",
            "route_to",
            json!({"target": "refund"}),
        ),
        Reply::text("This is a refund."),
        Reply::text("Refund issued."),
    ]))
    .await;
    let h = Harness::new().await;
    let out = h
        .run(
            &h.llm_engine(&server.base_url()),
            yaml(TRIAGE),
            json!({"text": "I want my money back"}),
        )
        .await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    assert_eq!(out.path, ["triage", "refund"]);
    assert_eq!(out.outputs["triage"], json!("This is a refund."));
    assert_eq!(out.state["label"], "money");
    let bodies = server.bodies();
    let tools: Vec<&str> = bodies[0]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(tools, ["set_state", "route_to"]);
    assert!(last_message(&bodies[0]).contains("- refund: customer wants money back"));
    // Native mode: the results go back as tool messages.
    let roles: Vec<&str> = bodies[1]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "assistant", "tool", "tool"]);
    assert!(last_message(&bodies[2]).contains("(label money)"));
    assert_eq!(server.requests(), 3);
    server.shutdown().await;
}

#[tokio::test]
async fn without_route_to_the_first_handoff_is_taken() {
    let server = TestServer::start(Script::sequence([
        Reply::text("no choice made"),
        Reply::text("answered"),
    ]))
    .await;
    let h = Harness::new().await;
    let out = h
        .run(
            &h.llm_engine(&server.base_url()),
            yaml(TRIAGE),
            json!({"text": "hi"}),
        )
        .await;
    assert_eq!(out.path, ["triage", "refund"]);
    server.shutdown().await;
}

#[tokio::test]
async fn output_schema_is_re_asked_and_the_parsed_json_becomes_the_output() {
    let server = TestServer::start(Script::sequence([
        Reply::text("Sure! Ada is three."),
        Reply::text("```json\n{\"name\": \"Ada\", \"age\": 3}\n```"),
    ]))
    .await;
    let h = Harness::new().await;
    let c = yaml(
        r#"
cascade_id: schema_demo
cells:
  - name: person
    instructions: "Describe Ada as JSON."
    rules: {max_attempts: 3}
    output_schema:
      type: object
      required: [name, age]
      properties: {name: {type: string}, age: {type: integer}}
"#,
    );
    let out = h.run(&h.llm_engine(&server.base_url()), c, json!({})).await;
    assert_eq!(
        out.status,
        SessionStatus::Completed,
        "{:?} {:?}",
        out.error,
        server.bodies()
    );
    assert_eq!(out.output, json!({"name": "Ada", "age": 3}));
    assert_eq!(out.state["validated_output"], json!({"name": "Ada", "age": 3}));
    assert_eq!(server.requests(), 2);
    assert!(last_message(&server.bodies()[1]).contains("no JSON"));
    assert_eq!(h.count(&out.session_id, EventKind::Retry).await, 1);
    server.shutdown().await;
}

#[tokio::test]
async fn loop_until_inline_python_retries_with_the_rendered_retry_instructions() {
    let server = TestServer::start(Script::sequence([
        Reply::text("meh"),
        Reply::text("this is important"),
    ]))
    .await;
    let h = Harness::new().await;
    let c = yaml(
        r#"
cascade_id: loop_demo
cells:
  - name: write
    instructions: "Write about {{ input.topic }}"
    rules:
      max_attempts: 3
      loop_until:
        python: |
          result = {"valid": "important" in content, "reason": "say important"}
      retry_instructions: "ERROR: {{ validation_error }}. Attempt {{ attempt }}/{{ max_attempts }}."
"#,
    );
    let out = h
        .run(&h.llm_engine(&server.base_url()), c, json!({"topic": "tea"}))
        .await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    assert_eq!(out.output, json!("this is important"));
    assert_eq!(server.requests(), 2);
    assert_eq!(
        last_message(&server.bodies()[1]),
        "ERROR: say important. Attempt 2/3."
    );
    assert_eq!(h.count(&out.session_id, EventKind::Validation).await, 2);
    server.shutdown().await;
}

#[tokio::test]
async fn loop_until_cascade_validator_is_an_llm_judge() {
    let server = TestServer::start(Script::sequence([
        Reply::text("draft"),
        Reply::text("{\"valid\": false, \"reason\": \"too short\"}"),
        Reply::text("a much longer answer"),
        Reply::text("{\"valid\": true, \"reason\": \"ok\"}"),
    ]))
    .await;
    let h = Harness::new().await;
    let c = yaml(
        r#"
cascade_id: judge_demo
validators:
  long_enough:
    instructions: "Is this long enough? {{ input.content }}"
cells:
  - name: write
    instructions: "Write."
    rules: {max_attempts: 2, loop_until: long_enough}
"#,
    );
    let out = h.run(&h.llm_engine(&server.base_url()), c, json!({})).await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    assert_eq!(out.output, json!("a much longer answer"));
    assert_eq!(out.llm_calls, 4);
    let bodies = server.bodies();
    assert!(last_message(&bodies[1]).contains("Is this long enough? draft"));
    server.shutdown().await;
}

#[tokio::test]
async fn model_resolution_cell_then_override_then_cascade_then_default() {
    let server = TestServer::start(Script::echo()).await;
    let h = Harness::new().await;
    let c = yaml(
        r#"
cascade_id: models
model: cascade/model
cells:
  - name: a
    instructions: "one"
    model: cell/model
  - name: b
    instructions: "two"
"#,
    );
    let engine = h.llm_engine(&server.base_url());
    let mut req = RunRequest::new(c.clone());
    req.model = Some("flag/model".into());
    let out = engine.run(req).await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    let out2 = engine.run(RunRequest::new(c)).await;
    assert_eq!(out2.status, SessionStatus::Completed);
    let models: Vec<String> = server
        .bodies()
        .iter()
        .map(|b| b["model"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        models,
        ["cell/model", "flag/model", "cell/model", "cascade/model"]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn llm_events_carry_tokens_cost_and_duration() {
    let server = TestServer::start(Script::sequence([Reply::text("hi").usage(100, 20).cost(0.0015)])).await;
    let h = Harness::new().await;
    let c = yaml("cascade_id: cost\ncells:\n  - name: a\n    instructions: hello\n");
    let out = h.run(&h.llm_engine(&server.base_url()), c, json!({})).await;
    assert_eq!(out.cost.micros(), 1500);
    let events = h.events(&out.session_id).await;
    let resp = events
        .iter()
        .find(|e| e.event.kind == EventKind::LlmResponse)
        .unwrap();
    assert_eq!(resp.event.cost.map(|c| c.micros()), Some(1500));
    assert_eq!(resp.event.tokens.input, Some(100));
    assert!(resp.event.duration_us.is_some());
    assert!(resp.event.request.is_some());
    server.shutdown().await;
}

#[tokio::test]
async fn a_run_s_sampling_settings_go_with_every_llm_call_and_are_absent_otherwise() {
    let server = TestServer::start(Script::echo()).await;
    let h = Harness::new().await;
    let c = yaml("cascade_id: sampled\ncells:\n  - name: a\n    instructions: \"one\"\n");
    let engine = h.llm_engine(&server.base_url());
    let mut req = RunRequest::new(c.clone());
    req.sampling = rvbbit_engine::Sampling {
        temperature: Some(0.0),
        max_tokens: Some(64),
    };
    assert_eq!(engine.run(req).await.status, SessionStatus::Completed);
    assert_eq!(
        engine.run(RunRequest::new(c)).await.status,
        SessionStatus::Completed
    );
    let bodies = server.bodies();
    assert_eq!(bodies[0]["temperature"], json!(0.0));
    assert_eq!(bodies[0]["max_tokens"], json!(64));
    assert!(bodies[1].get("temperature").is_none(), "{}", bodies[1]);
    assert!(bodies[1].get("max_tokens").is_none(), "{}", bodies[1]);
    server.shutdown().await;
}

/// A cell that lists a tool nobody provides (and `route_to` as a skill) still runs, as LARS runs it:
/// the missing tool is not offered, a warning says so, and a call to it is a tool error the model sees.
#[tokio::test]
async fn a_missing_offered_tool_is_not_offered_and_a_call_to_it_fails_as_the_model_sees() {
    let server = TestServer::start(Script::sequence([
        Reply::tool_call("c1", "brave_web_search", json!({"q": "rust"})),
        Reply::text("done without it"),
    ]))
    .await;
    let h = Harness::new().await;
    let cascade = yaml(
        "cascade_id: missing_tool\ncells:\n  - name: ask\n    instructions: 'Search the web.'\n    traits: [brave_web_search, route_to, set_state]\n    use_native_tools: true\n",
    );
    let out = h.run(&h.llm_engine(&server.base_url()), cascade, json!({})).await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    assert_eq!(out.output, json!("done without it"));
    assert!(
        out.warnings
            .iter()
            .any(|w| w.contains("`brave_web_search`") && w.contains("not offered")),
        "{:?}",
        out.warnings
    );
    let bodies = server.bodies();
    let offered: Vec<&str> = bodies[0]["tools"]
        .as_array()
        .map(|t| t.iter().filter_map(|t| t["function"]["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(offered, vec!["set_state"], "only the provided tool is offered");
    assert!(
        all_text(&bodies[1]).contains("unknown tool `brave_web_search`"),
        "the model sees the failed call: {}",
        all_text(&bodies[1])
    );
    server.shutdown().await;
}

#[tokio::test]
async fn an_output_schema_is_stated_in_the_prompt_unless_turned_off() {
    // The model follows a schema only when the prompt states it (as a real one mostly does).
    let server = TestServer::start(Script::rule(|body| {
        if last_message(body).contains("## Output Format Requirement") {
            Reply::text("{\"city\": \"Paris\", \"population\": 2100000}")
        } else {
            Reply::text("Paris is the capital, with about two million people.")
        }
    }))
    .await;
    let h = Harness::new().await;
    let cascade = |extra: &str| {
        yaml(&format!(
            r#"
cascade_id: schema_prompt
cells:
  - name: capital
    instructions: "What is the capital of France?"
    rules: {{max_attempts: 1{extra}}}
    output_schema:
      type: object
      required: [city, population]
      properties: {{city: {{type: string}}, population: {{type: integer}}}}
"#
        ))
    };
    let out = h
        .run(&h.llm_engine(&server.base_url()), cascade(""), json!({}))
        .await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    assert_eq!(out.output, json!({"city": "Paris", "population": 2_100_000}));
    let prompt = last_message(&server.bodies()[0]);
    assert!(prompt.starts_with("What is the capital of France?"), "{prompt}");
    assert!(
        prompt.contains("## Output Format Requirement") && prompt.contains("\"population\""),
        "the schema is in the prompt: {prompt}"
    );
    // Turned off: the prompt is as written, and the reply does not follow the schema.
    let out = h
        .run(
            &h.llm_engine(&server.base_url()),
            cascade(", schema_in_prompt: false"),
            json!({}),
        )
        .await;
    let prompt = last_message(&server.bodies()[1]);
    assert_eq!(prompt, "What is the capital of France?");
    assert_ne!(
        out.output,
        json!({"city": "Paris", "population": 2_100_000}),
        "{:?}",
        out.status
    );
    server.shutdown().await;
}
