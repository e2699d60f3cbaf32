//! Deterministic cells: the bash_substrate corpus, routing, on_error, retry, timeouts, python, state.

use rvbbit_core::{EventKind, SessionStatus};

use serde_json::json;

use crate::support::{Harness, corpus, yaml};

#[tokio::test]
async fn corpus_simple_persistence_keeps_exported_variables_between_cells() {
    let h = Harness::new().await;
    let out = h
        .run(
            &h.engine(),
            corpus("bash_substrate/05_simple_persistence.yaml"),
            json!({}),
        )
        .await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    assert_eq!(out.path, ["setup", "check"]);
    assert_eq!(
        out.outputs["setup"]["rows"],
        json!([{"status": "setup", "message": "complete"}])
    );
    assert_eq!(
        out.output["rows"],
        json!([{"variable": "MY_VAR", "value": "hello_windlass"}])
    );
    assert_eq!(out.tool_calls, 2);
    assert_eq!(out.llm_calls, 0);
    // Events: start, 2 × (cell_start, tool_call, tool_result, cell_complete), complete.
    let kinds = h.kinds(&out.session_id).await;
    assert_eq!(kinds.first(), Some(&EventKind::CascadeStart));
    assert_eq!(kinds.last(), Some(&EventKind::CascadeComplete));
    assert_eq!(kinds.len(), 10);
    let events = h.events(&out.session_id).await;
    assert!(
        events
            .iter()
            .all(|e| e.event.caller_id.as_ref().unwrap().as_str().starts_with("cli-"))
    );
    assert!(
        events
            .iter()
            .filter(|e| e.event.kind == EventKind::CellComplete)
            .all(|e| e.event.duration_us.is_some())
    );
    let session = h.store.session(&out.session_id).await.unwrap();
    assert_eq!(session.status, SessionStatus::Completed);
    assert_eq!(session.cascade_id.as_deref(), Some("simple_persistence_test"));
}

#[tokio::test]
async fn corpus_one_shot_and_no_persistence_cells_return_their_table() {
    let h = Harness::new().await;
    for file in [
        "bash_substrate/06_no_persistence.yaml",
        "bash_substrate/07_test_oneshot.yaml",
    ] {
        let out = h.run(&h.engine(), corpus(file), json!({})).await;
        assert_eq!(out.status, SessionStatus::Completed, "{file}: {:?}", out.error);
        assert_eq!(out.output["rows"], json!([{"id": 1, "name": "test"}]), "{file}");
        assert_eq!(out.output["row_count"], 1);
    }
}

#[tokio::test]
async fn corpus_persistent_session_passes_its_checks_then_stops_at_sql_data() {
    let h = Harness::new().await;
    let out = h
        .run(
            &h.engine(),
            corpus("bash_substrate/04_persistent_session.yaml"),
            json!({}),
        )
        .await;
    // env vars, cwd and shell functions all survive between bash_data cells, as the authors expected.
    assert_eq!(
        out.outputs["check_persistence"]["rows"],
        json!([
            {"check": "env_vars", "status": "PASS"},
            {"check": "cwd", "status": "PASS"},
            {"check": "functions", "status": "PASS"}
        ])
    );
    assert_eq!(out.outputs["simulate_workflow"]["row_count"], 3);
    assert_eq!(out.outputs["simulate_workflow"]["rows"][0]["source"], "mock_api");
    // `sql_data` comes with the SQL issue: an honest RVB-E003, exit class 2.
    assert_eq!(out.status, SessionStatus::Failed);
    let err = out.error.unwrap();
    assert_eq!(err.code().code, "RVB-E003");
    assert_eq!(err.code().exit_code(), 2);
    assert!(err.to_string().contains("sql_data"), "{err}");
    assert_eq!(out.path.last().map(String::as_str), Some("analyze"));
}

#[tokio::test]
async fn corpus_json_transform_pipes_the_previous_table_to_stdin() {
    let h = Harness::new().await;
    let out = h
        .run(
            &h.engine(),
            corpus("bash_substrate/02_json_transform.yaml"),
            json!({}),
        )
        .await;
    assert_eq!(out.outputs["generate_users"]["row_count"], 5);
    assert_eq!(
        out.outputs["transform_to_json"]["rows"],
        json!([
            {"id": 1, "name": "Alice", "score": 95, "grade": "A"},
            {"id": 3, "name": "Charlie", "score": 92, "grade": "B"},
            {"id": 5, "name": "Eve", "score": 98, "grade": "A"}
        ])
    );
    assert_eq!(out.error.unwrap().code().code, "RVB-E003");
}

#[tokio::test]
async fn corpus_files_that_start_or_end_with_sql_data_fail_clearly() {
    let h = Harness::new().await;
    let out = h
        .run(
            &h.engine(),
            corpus("bash_substrate/00_hello_bash.yaml"),
            json!({}),
        )
        .await;
    assert_eq!(out.outputs["generate"]["row_count"], 3);
    assert_eq!(out.error.as_ref().unwrap().code().code, "RVB-E003");
    let out = h
        .run(
            &h.engine(),
            corpus("bash_substrate/01_csv_transform.yaml"),
            json!({}),
        )
        .await;
    assert!(out.lineage.is_empty());
    assert_eq!(out.error.as_ref().unwrap().code().code, "RVB-E003");
    assert_eq!(
        h.store.session(&out.session_id).await.unwrap().status,
        SessionStatus::Failed
    );
}

#[tokio::test]
async fn routing_map_picks_the_target_from_the_route_key() {
    let h = Harness::new().await;
    let c = yaml(
        r#"
cascade_id: route_demo
cells:
  - name: check
    tool: linux_shell
    inputs: {command: "exit {{ input.code }}"}
    routing: {success: ok, error: bad}
  - name: ok
    tool: set_state
    inputs: {key: verdict, value: fine}
  - name: bad
    tool: set_state
    inputs: {key: verdict, value: broken}
"#,
    );
    let out = h.run(&h.engine(), c.clone(), json!({"code": 0})).await;
    assert_eq!(out.path, ["check", "ok", "bad"]);
    let out = h.run(&h.engine(), c, json!({"code": 3})).await;
    assert_eq!(out.path, ["check", "bad"]);
    assert_eq!(out.state["verdict"], "broken");
    assert_eq!(out.outputs["check"]["returncode"], 3);
}

#[tokio::test]
async fn on_error_routes_a_failing_tool_and_records_the_error_in_state() {
    let h = Harness::new().await;
    let c = yaml(
        r#"
cascade_id: on_error_demo
cells:
  - name: fails
    tool: bash_data
    inputs: {script: "echo boom >&2; exit 7"}
    on_error: recover
    handoffs: [never]
  - name: never
    tool: set_state
    inputs: {key: reached, value: true}
  - name: recover
    tool: set_state
    inputs: {key: error_seen, value: "{{ state.last_deterministic_error.error }}"}
"#,
    );
    let out = h.run(&h.engine(), c, json!({})).await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    assert_eq!(out.path, ["fails", "recover"]);
    assert!(out.state["error_seen"].as_str().unwrap().contains("code 7"));
    assert!(out.state.get("reached").is_none());
    assert_eq!(h.count(&out.session_id, EventKind::CellError).await, 1);
}

#[tokio::test]
async fn retry_runs_the_tool_again_until_it_passes() {
    let h = Harness::new().await;
    let c = yaml(
        r#"
cascade_id: retry_demo
cells:
  - name: flaky
    tool: bash_data
    inputs:
      script: |
        n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count
        [ $n -ge 3 ] || exit 1
        echo "attempts"; echo $n
    retry: {max_attempts: 3, backoff: none}
"#,
    );
    let out = h.run(&h.engine(), c, json!({})).await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    assert_eq!(out.output["rows"], json!([{"attempts": 3}]));
    assert_eq!(out.tool_calls, 3);
}

#[tokio::test]
async fn tool_timeout_fails_with_t002_and_exit_class_3() {
    let h = Harness::new().await;
    let c = yaml(
        r#"
cascade_id: timeout_demo
cells:
  - name: slow
    tool: linux_shell
    inputs: {command: "sleep 5"}
    timeout: "300ms"
"#,
    );
    let started = std::time::Instant::now();
    let out = h.run(&h.engine(), c, json!({})).await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(4),
        "the process group was not killed"
    );
    assert_eq!(out.status, SessionStatus::Failed);
    let err = out.error.unwrap();
    assert_eq!(err.code().code, "RVB-T002");
    assert_eq!(err.code().exit_code(), 3);
    let events = h.events(&out.session_id).await;
    let result = events
        .iter()
        .find(|e| e.event.kind == EventKind::ToolResult)
        .unwrap();
    assert_eq!(result.event.error.as_ref().unwrap()["code"], "RVB-T002");
}

#[tokio::test]
async fn tool_failure_without_on_error_is_t001() {
    let h = Harness::new().await;
    let c = yaml(
        "cascade_id: fail_demo\ncells:\n  - name: f\n    tool: bash_data\n    inputs: {script: 'exit 2'}\n",
    );
    let out = h.run(&h.engine(), c, json!({})).await;
    let err = out.error.unwrap();
    assert_eq!(err.code().code, "RVB-T001");
    assert_eq!(err.code().exit_code(), 3);
}

#[tokio::test]
async fn python_data_sees_state_and_outputs_and_inputs_follow_the_json_rule() {
    let h = Harness::new().await;
    let c = yaml(
        r#"
cascade_id: python_demo
inputs_schema:
  n: how many
cells:
  - name: seed
    tool: set_state
    inputs: {key: nums, value: "[1, 2, {{ input.n }}]"}
  - name: total
    tool: python_data
    inputs:
      code: |
        result = {"sum": sum(state["nums"]), "seed_key": outputs["seed"]["key"]}
  - name: shout
    tool: linux_shell
    inputs: {command: "echo {{ outputs.total.result.sum }}"}
"#,
    );
    let out = h.run(&h.engine(), c, json!({"n": 4, "extra": 1})).await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    assert_eq!(out.state["nums"], json!([1, 2, 4]));
    assert_eq!(
        out.outputs["total"]["result"],
        json!({"sum": 7, "seed_key": "nums"})
    );
    assert_eq!(out.output["stdout"], "7\n");
    // `extra` is not in inputs_schema: a warning event, never a failure.
    assert_eq!(out.warnings.len(), 1, "{:?}", out.warnings);
    assert_eq!(h.count(&out.session_id, EventKind::Validation).await, 1);
}

#[tokio::test]
async fn http_request_calls_a_real_server_and_parses_json() {
    let server =
        rvbbit_testkit::TestServer::start(rvbbit_testkit::Script::sequence([rvbbit_testkit::Reply::text(
            "pong",
        )]))
        .await;
    let h = Harness::new().await;
    let c = yaml(
        r#"
cascade_id: http_demo
cells:
  - name: call
    tool: http_request
    inputs:
      url: "{{ input.base }}/chat/completions"
      method: POST
      json: {model: m, messages: [{role: user, content: "{{ input.word }}"}]}
"#,
    );
    let out = h
        .run(&h.engine(), c, json!({"base": server.base_url(), "word": "ping"}))
        .await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    assert_eq!(out.output["status"], 200);
    assert_eq!(out.output["body"]["choices"][0]["message"]["content"], "pong");
    assert_eq!(server.bodies()[0]["messages"][0]["content"], "ping");
    server.shutdown().await;
}

#[tokio::test]
async fn a_running_session_keeps_its_heartbeat_fresh() {
    let h = Harness::new().await;
    let c = yaml(
        "cascade_id: beat\ncells:\n  - name: wait\n    tool: linux_shell\n    inputs: {command: 'sleep 0.4'}\n",
    );
    let before = rvbbit_core::Timestamp::now();
    let out = h.run(&h.engine(), c, json!({})).await;
    assert_eq!(out.status, SessionStatus::Completed);
    let s = h.store.session(&out.session_id).await.unwrap();
    assert!(s.heartbeat_at > before);
    assert!(s.ended_at.is_some());
}
