//! `map_cascade` and `spawn_cascade`: child runs started by a tool, linked to the caller, with bounded
//! parallelism (issue 19).

use std::time::Duration;

use rvbbit_core::{MicroUsd, SessionStatus};
use rvbbit_testkit::{Reply, Script, TestServer};
use serde_json::{Value, json};

use crate::compose::{Project, children_of, run, session};
use crate::support::Harness;

/// A child whose LLM cell answers `done <item>` (the scripted server reads the item from the prompt).
const LLM_ITEM: &str = r#"
cascade_id: one_item
inputs_schema:
  item: the item
cells:
  - name: analyze
    instructions: "Process ITEM<{{ input.item }}>"
"#;

/// The scripted server: `done <item>` after 150 ms, costing $0.001 per call.
fn item_server_script() -> Script {
    Script::rule(|body: &Value| {
        let prompt = body["messages"].to_string();
        let item = prompt
            .split("ITEM<")
            .nth(1)
            .and_then(|rest| rest.split('>').next())
            .unwrap_or("?")
            .to_owned();
        Reply::text(format!("done {item}"))
            .cost(0.001)
            .latency(Duration::from_millis(150))
    })
}

#[tokio::test]
async fn map_cascade_runs_each_item_as_a_linked_child_in_order_at_most_max_parallel_at_once() {
    let p = Project::new();
    p.write("traits/one_item.yaml", LLM_ITEM);
    p.write(
        "parent.yaml",
        r#"
cascade_id: parent
cells:
  - name: list_items
    tool: python_data
    inputs:
      code: 'result = ["apple", "banana", "cherry", "date", "elderberry"]'
  - name: process_all
    tool: map_cascade
    inputs:
      cascade: traits/one_item.yaml
      map_over: '{{ outputs.list_items.result }}'
      input_key: item
      mode: aggregate
      max_parallel: '2'
"#,
    );
    let server = TestServer::start(item_server_script()).await;
    let h = Harness::new().await;
    let out = run(
        &h,
        &h.llm_engine(&server.base_url()),
        p.request("parent.yaml", json!({})),
    )
    .await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    let agg = &out.outputs["process_all"];
    assert_eq!(
        agg["results"],
        json!([
            "done apple",
            "done banana",
            "done cherry",
            "done date",
            "done elderberry"
        ]),
        "{agg}"
    );
    assert_eq!(agg["count"], 5);
    assert_eq!(agg["failed"], 0);
    assert_eq!(agg["errors"], json!([]));
    // Never more than two children at once (each answer takes 150 ms, so two did overlap).
    assert_eq!(server.max_concurrency(), 2);
    // The children's cost and calls are the caller's.
    assert_eq!(out.llm_calls, 5);
    assert_eq!(out.cost, MicroUsd::from_micros(5 * 1000));
    let children = children_of(&h, &out.session_id).await;
    assert_eq!(children.len(), 5, "{children:?}");
    let mut inputs = Vec::new();
    for c in &children {
        assert!(
            c.session_id
                .as_str()
                .starts_with(&format!("{}_map_", out.session_id)),
            "{}",
            c.session_id
        );
        assert_eq!(c.caller_id.as_ref(), Some(&out.caller_id));
        assert_eq!(c.root_session_id, out.session_id);
        assert_eq!(c.depth, 1);
        assert_eq!(c.status, SessionStatus::Completed);
        inputs.push(c.input["item"].as_str().unwrap().to_owned());
    }
    inputs.sort();
    assert_eq!(inputs, ["apple", "banana", "cherry", "date", "elderberry"]);
}

#[tokio::test]
async fn map_cascade_keeps_the_other_results_when_one_item_fails_and_names_its_index() {
    let p = Project::new();
    p.write(
        "child.yaml",
        "cascade_id: child\ncells:\n  - name: check\n    tool: bash_data\n    inputs: {script: \"test '{{ input.item }}' != bad\"}\n  - name: say\n    tool: linux_shell\n    inputs: {command: 'echo ok-{{ input.item }}'}\n",
    );
    p.write(
        "parent.yaml",
        r#"
cascade_id: parent
cells:
  - name: each
    tool: map_cascade
    inputs:
      cascade: child.yaml
      map_over: ["x", "bad", "y"]
      max_parallel: 3
"#,
    );
    let h = Harness::new().await;
    let out = run(&h, &h.engine(), p.request("parent.yaml", json!({}))).await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    let agg = &out.outputs["each"];
    assert_eq!(agg["count"], 3);
    assert_eq!(agg["failed"], 1);
    assert_eq!(agg["results"][0]["stdout"].as_str().unwrap().trim(), "ok-x");
    assert_eq!(agg["results"][1], Value::Null);
    assert_eq!(agg["results"][2]["stdout"].as_str().unwrap().trim(), "ok-y");
    let errors = agg["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["index"], 1);
    assert!(
        errors[0]["error"].as_str().unwrap().contains("RVB-T001"),
        "{errors:?}"
    );
    // The failed child's session is named and recorded as failed.
    let failed = session(&h, errors[0]["session_id"].as_str().unwrap()).await;
    assert_eq!(failed.status, SessionStatus::Failed);
    assert_eq!(failed.input, json!({"item": "bad"}));
}

#[tokio::test]
async fn map_cascade_fails_when_every_item_fails_and_maps_rows_with_input_mapping() {
    let p = Project::new();
    p.write(
        "child.yaml",
        "cascade_id: child\ncells:\n  - name: check\n    tool: bash_data\n    inputs: {script: \"test '{{ input.who }}' != none\"}\n  - name: say\n    tool: linux_shell\n    inputs: {command: 'echo {{ input.who }}-{{ input.n }}'}\n",
    );
    p.write(
        "parent.yaml",
        r#"
cascade_id: parent
cells:
  - name: rows
    tool: map_cascade
    inputs:
      cascade: child.yaml
      map_over: {rows: [{name: Ada, id: 1}, {name: Bo, id: 2}]}
      input_mapping:
        who: "{{ row.name }}"
        n: "{{ index }}"
  - name: all_fail
    tool: map_cascade
    inputs:
      cascade: child.yaml
      map_over: [{who: none}, {who: none}]
"#,
    );
    let h = Harness::new().await;
    let out = run(&h, &h.engine(), p.request("parent.yaml", json!({}))).await;
    assert_eq!(out.status, SessionStatus::Failed);
    let rows = &out
        .outputs
        .get("rows")
        .unwrap_or_else(|| panic!("{:?} {:?}", out.outputs, out.error))["results"];
    assert_eq!(rows[0]["stdout"].as_str().unwrap().trim(), "Ada-0");
    assert_eq!(rows[1]["stdout"].as_str().unwrap().trim(), "Bo-1");
    let e = out.error.unwrap();
    assert_eq!(e.code().code, "RVB-T001");
    assert!(
        e.to_string().contains("every one of the 2 items failed; item 0"),
        "{e}"
    );
}

/// Run a parent whose only cell calls `map_cascade` with `inputs` (YAML flow text); return its error.
async fn map_error(p: &Project, h: &Harness, inputs: &str) -> String {
    p.write(
        "parent.yaml",
        &format!("cascade_id: parent\ncells:\n  - name: list\n    tool: python_data\n    inputs: {{code: 'result = list(range(20000))'}}\n  - name: each\n    tool: map_cascade\n    inputs: {inputs}\n"),
    );
    let out = run(h, &h.engine(), p.unvalidated("parent.yaml", json!({}))).await;
    assert_eq!(out.status, SessionStatus::Failed, "{inputs}");
    let e = out.error.unwrap();
    assert_eq!(e.code().code, "RVB-T001", "{e}");
    assert!(
        children_of(h, &out.session_id).await.is_empty(),
        "{inputs}: no child ran"
    );
    e.to_string()
}

#[tokio::test]
async fn hostile_map_cascade_arguments_are_clear_errors_before_any_child_runs() {
    let p = Project::new();
    p.write(
        "child.yaml",
        "cascade_id: child\ncells:\n  - name: a\n    tool: linux_shell\n    inputs: {command: 'echo hi'}\n",
    );
    let h = Harness::new().await;
    let cases = [
        (
            "{cascade: child.yaml, map_over: [1], max_parallel: 1000}",
            "`max_parallel` must be a whole number from 1 to 32",
        ),
        (
            "{cascade: child.yaml, map_over: '{{ outputs.list.result }}'}",
            "`map_over` has 20000 items, more than the limit of 10000",
        ),
        (
            "{cascade: child.yaml, map_over: 'not a list'}",
            "`map_over` must be a JSON array",
        ),
        (
            "{cascade: child.yaml, map_over: {a: 1}}",
            "`map_over` must be a JSON array",
        ),
        (
            "{cascade: child.yaml, map_over: [1], mode: first_success}",
            "unknown `mode` \"first_success\"; the known modes are `aggregate`",
        ),
        (
            "{cascade: missing.yaml, map_over: [1]}",
            "`missing.yaml` was not found",
        ),
        (
            "{cascade: ../../etc/passwd, map_over: [1]}",
            "`../../etc/passwd` leaves the directory",
        ),
        ("{map_over: [1]}", "`cascade` is required"),
        (
            "{cascade: child.yaml, map_over: [1], on_error: fail_fast}",
            "unknown argument `on_error`",
        ),
    ];
    for (inputs, expected) in cases {
        let e = map_error(&p, &h, inputs).await;
        assert!(e.contains(expected), "{inputs}: {e}");
    }
    // A file that is not a valid cascade is refused before any item runs.
    p.write("broken.yaml", "cascade_id: broken\ncells: []\nbogus: 1\n");
    let e = map_error(&p, &h, "{cascade: broken.yaml, map_over: [1, 2]}").await;
    assert!(e.contains("RVB-E006") && e.contains("broken.yaml"), "{e}");
}

#[tokio::test]
async fn spawn_cascade_starts_a_linked_child_and_the_run_waits_for_it() {
    let p = Project::new();
    p.write(
        "child.yaml",
        "cascade_id: child\ncells:\n  - name: hello\n    tool: linux_shell\n    inputs: {command: 'sleep 0.3; echo hello {{ input.who }}'}\n",
    );
    p.write(
        "failing.yaml",
        "cascade_id: failing\ncells:\n  - name: boom\n    tool: bash_data\n    inputs: {script: 'exit 3'}\n",
    );
    p.write(
        "parent.yaml",
        r#"
cascade_id: parent
cells:
  - name: start
    tool: spawn_cascade
    inputs:
      cascade: child.yaml
      input: {who: Ada}
  - name: start_text
    tool: spawn_cascade
    inputs:
      cascade: failing.yaml
      input: '{"x": 1}'
  - name: after
    tool: set_state
    inputs: {key: k, value: v}
"#,
    );
    let h = Harness::new().await;
    let out = run(&h, &h.engine(), p.request("parent.yaml", json!({}))).await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    let started = &out.outputs["start"];
    assert_eq!(started["status"], "started");
    let sid = started["session_id"].as_str().unwrap();
    assert!(sid.starts_with("spawned_"), "{sid}");
    let child = session(&h, sid).await;
    assert_eq!(child.status, SessionStatus::Completed);
    assert_eq!(child.parent_session_id.as_ref(), Some(&out.session_id));
    assert_eq!(child.caller_id.as_ref(), Some(&out.caller_id));
    assert_eq!(child.depth, 1);
    assert_eq!(child.input, json!({"who": "Ada"}));
    assert_eq!(
        child.output.unwrap()["stdout"].as_str().unwrap().trim(),
        "hello Ada"
    );
    // The parent waited for it and counts its calls: 3 own + 1 + 1.
    let parent = session(&h, out.session_id.as_str()).await;
    assert!(child.ended_at.unwrap() <= parent.ended_at.unwrap());
    assert_eq!(out.tool_calls, 5);
    // The failing child is a warning naming its session, not the parent's failure.
    let failed = out.outputs["start_text"]["session_id"].as_str().unwrap();
    assert_eq!(session(&h, failed).await.input, json!({"x": 1}));
    assert_eq!(out.warnings.len(), 1, "{:?}", out.warnings);
    assert!(
        out.warnings[0].contains(failed) && out.warnings[0].contains("RVB-T001"),
        "{:?}",
        out.warnings
    );
    assert_eq!(children_of(&h, &out.session_id).await.len(), 2);
}

#[tokio::test]
async fn spawn_cascade_refuses_bad_inputs_and_escaping_paths() {
    let p = Project::new();
    p.write(
        "child.yaml",
        "cascade_id: child\ncells:\n  - name: a\n    tool: linux_shell\n    inputs: {command: 'echo hi'}\n",
    );
    let h = Harness::new().await;
    for (inputs, expected) in [
        ("{cascade: child.yaml, input: [1]}", "`input` must be an object"),
        (
            "{cascade: child.yaml, input: 'nope'}",
            "`input` must be an object",
        ),
        ("{cascade: ../../etc/passwd}", "leaves the directory"),
        ("{cascade: missing.yaml}", "`missing.yaml` was not found"),
    ] {
        p.write(
            "parent.yaml",
            &format!(
                "cascade_id: parent\ncells:\n  - name: go\n    tool: spawn_cascade\n    inputs: {inputs}\n"
            ),
        );
        let out = run(&h, &h.engine(), p.unvalidated("parent.yaml", json!({}))).await;
        assert_eq!(out.status, SessionStatus::Failed, "{inputs}");
        let e = out.error.unwrap().to_string();
        assert!(e.contains(expected), "{inputs}: {e}");
        assert!(children_of(&h, &out.session_id).await.is_empty());
    }
}

#[tokio::test]
async fn cancelling_the_run_cancels_the_running_items_and_starts_no_more() {
    let p = Project::new();
    p.write(
        "sleepy.yaml",
        "cascade_id: sleepy\ncells:\n  - name: nap\n    tool: linux_shell\n    inputs: {command: 'sleep 30'}\n",
    );
    p.write(
        "parent.yaml",
        "cascade_id: parent\ncells:\n  - name: each\n    tool: map_cascade\n    inputs: {cascade: sleepy.yaml, map_over: [1, 2, 3, 4, 5], max_parallel: 2}\n",
    );
    let h = Harness::new().await;
    let request = p.request("parent.yaml", json!({}));
    let cancel = request.cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        cancel.cancel();
    });
    let out = tokio::time::timeout(Duration::from_secs(20), run(&h, &h.engine(), request))
        .await
        .expect("cancelling stops the running children instead of waiting 30 s");
    assert_eq!(out.status, SessionStatus::Cancelled);
    let children = children_of(&h, &out.session_id).await;
    assert_eq!(children.len(), 2, "only the first two started: {children:?}");
    for c in children {
        assert_eq!(c.status, SessionStatus::Cancelled);
    }
}

#[tokio::test]
async fn a_model_calls_map_cascade_and_spawn_cascade_as_tools() {
    let p = Project::new();
    p.write(
        "child.yaml",
        "cascade_id: child\ncells:\n  - name: say\n    tool: linux_shell\n    inputs: {command: 'echo got-{{ input.item }}'}\n",
    );
    p.write(
        "parent.yaml",
        "cascade_id: parent\ncells:\n  - name: ask\n    instructions: Map the list.\n    traits: [map_cascade, spawn_cascade]\n    use_native_tools: true\n  - name: start\n    instructions: Start one.\n    traits: [spawn_cascade]\n    use_native_tools: true\n",
    );
    let server = TestServer::start(Script::sequence([
        Reply::tool_call(
            "c1",
            "map_cascade",
            json!({"cascade": "child.yaml", "map_over": ["a", "b"], "max_parallel": 2}),
        ),
        Reply::text("Mapped."),
        Reply::tool_call(
            "c2",
            "spawn_cascade",
            json!({"cascade": "child.yaml", "input": {"item": "z"}}),
        ),
        Reply::text("Started."),
    ]))
    .await;
    let h = Harness::new().await;
    let out = run(
        &h,
        &h.llm_engine(&server.base_url()),
        p.request("parent.yaml", json!({})),
    )
    .await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    assert_eq!(out.outputs["ask"], "Mapped.");
    assert_eq!(out.outputs["start"], "Started.");
    let bodies = server.bodies();
    let names: Vec<&str> = bodies[0]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"map_cascade") && names.contains(&"spawn_cascade"),
        "{names:?}"
    );
    let mapped = bodies[1]["messages"].as_array().unwrap().last().unwrap()["content"].to_string();
    assert!(mapped.contains("got-a") && mapped.contains("got-b"), "{mapped}");
    let spawned = bodies[3]["messages"].as_array().unwrap().last().unwrap()["content"].to_string();
    assert!(
        spawned.contains("started") && spawned.contains("spawned_"),
        "{spawned}"
    );
    let children = children_of(&h, &out.session_id).await;
    assert_eq!(children.len(), 3, "{children:?}");
    for c in children {
        assert_eq!(c.caller_id.as_ref(), Some(&out.caller_id));
        assert_eq!(c.status, SessionStatus::Completed);
    }
}
