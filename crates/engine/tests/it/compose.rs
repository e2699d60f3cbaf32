//! Composition: sub-cascades, async cascades, cascades as tools, the run tree (parent links, caller id,
//! depth), the recursion limit and containment of child references.

use std::path::{Path, PathBuf};

use rvbbit_core::{EventKind, SessionId, SessionStatus};
use rvbbit_engine::tools::Registry;
use rvbbit_engine::{Engine, Outcome, RunRequest};
use rvbbit_store::Session;
use rvbbit_testkit::{Reply, Script, TestServer};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::support::{CORPUS, Harness, load};

/// A temporary project directory with cascade files.
pub struct Project {
    pub dir: TempDir,
}

impl Project {
    pub fn new() -> Project {
        Project {
            dir: TempDir::new().unwrap(),
        }
    }

    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    /// A request for the validated cascade at `rel`, with its file recorded (child refs are relative to it).
    pub fn request(&self, rel: &str, input: Value) -> RunRequest {
        request_for(&self.dir.path().join(rel), input)
    }

    /// A request for `rel` loaded without validation (to reach the engine's own checks).
    pub fn unvalidated(&self, rel: &str, input: Value) -> RunRequest {
        let path = self.dir.path().join(rel);
        let cascade = rvbbit_cascade::load_file(&path)
            .document
            .and_then(|d| d.cascade().cloned())
            .expect("a cascade");
        let mut r = RunRequest::new(cascade).with_input(input);
        r.cascade_file = Some(path);
        r
    }
}

pub fn request_for(path: &Path, input: Value) -> RunRequest {
    let mut r = RunRequest::new(load(path)).with_input(input);
    r.cascade_file = Some(path.to_path_buf());
    r
}

/// An engine on the harness's writer whose registry also holds the cascade tools found from `file`.
pub fn engine_with_cascade_tools(h: &Harness, file: &Path, base_url: Option<&str>) -> Engine {
    let mut registry = Registry::builtin();
    registry.add_cascade_tools(file, &[]);
    let mut engine = Engine::new(registry).with_writer(h.writer.as_ref().unwrap().handle());
    if let Some(url) = base_url {
        let mut settings = rvbbit_llm::ProviderSettings::new(url).with_api_key("test-key");
        settings.retry.max_retries = 0;
        engine = engine
            .with_provider(std::sync::Arc::new(rvbbit_llm::Client::new(settings).unwrap()))
            .with_default_model("test/model");
    }
    engine
}

pub async fn run(h: &Harness, engine: &Engine, request: RunRequest) -> Outcome {
    let out = engine.run(request).await;
    h.writer.as_ref().unwrap().handle().flush().await.unwrap();
    out
}

pub async fn session(h: &Harness, id: &str) -> Session {
    h.store.session(&id.parse::<SessionId>().unwrap()).await.unwrap()
}

pub async fn children_of(h: &Harness, parent: &SessionId) -> Vec<Session> {
    let all = h
        .store
        .sessions(&rvbbit_store::SessionFilter::default())
        .await
        .unwrap();
    all.into_iter()
        .map(|s| s.session)
        .filter(|s| s.parent_session_id.as_ref() == Some(parent))
        .collect()
}

const CHILD: &str = r#"
cascade_id: child
inputs_schema:
  who: who to greet
cells:
  - name: greet
    tool: set_state
    inputs:
      key: greeting
      value: "hello {{ input.who }} ({{ input.fixed }}, seen {{ input.seen }})"
  - name: shout
    tool: linux_shell
    inputs:
      command: "echo '{{ state.greeting | upper }}'"
"#;

const PARENT: &str = r#"
cascade_id: parent
cells:
  - name: prepare
    tool: set_state
    inputs:
      key: seen
      value: "yes"
  - name: call
    tool: set_state
    inputs:
      key: after
      value: "{{ state.greeting }}"
    sub_cascades:
      - ref: children/child.yaml
        input_map:
          who: name
          fixed: a literal
"#;

#[tokio::test]
async fn sub_cascade_maps_input_merges_state_and_lineage_and_links_the_session() {
    let p = Project::new();
    p.write("children/child.yaml", CHILD);
    p.write("parent.yaml", PARENT);
    let h = Harness::new().await;
    let engine = h.engine();
    let out = run(&h, &engine, p.request("parent.yaml", json!({"name": "Ada"}))).await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    // context_in: parent state (`seen`) and input flow in; input_map copies `name` and passes a literal.
    assert_eq!(out.state["greeting"], "hello Ada (a literal, seen yes)");
    // context_out: the child's state is merged before the cell's own tool runs.
    assert_eq!(out.outputs["call"]["value"], "hello Ada (a literal, seen yes)");
    // The child's lineage is merged too, before the parent cell's entry.
    let cells: Vec<&str> = out.lineage.iter().map(|l| l.cell.as_str()).collect();
    assert_eq!(cells, ["prepare", "greet", "shout", "call"]);
    // The parent's input stays the parent's.
    assert_eq!(out.state["input"], json!({"name": "Ada"}));

    let child_id = format!("{}_sub", out.session_id);
    let child = session(&h, &child_id).await;
    assert_eq!(child.parent_session_id.as_ref(), Some(&out.session_id));
    assert_eq!(child.root_session_id, out.session_id);
    assert_eq!(child.depth, 1);
    assert_eq!(child.caller_id.as_ref(), Some(&out.caller_id));
    assert_eq!(child.status, SessionStatus::Completed);
    assert_eq!(child.input["who"], "Ada");
    assert_eq!(child.input["fixed"], "a literal");
    assert_eq!(child.input["seen"], "yes");
    // Every child event carries the parent link and the caller.
    let events = h.events(&child_id.parse().unwrap()).await;
    assert!(!events.is_empty());
    for e in &events {
        assert_eq!(e.event.parent_session_id.as_ref(), Some(&out.session_id));
        assert_eq!(e.event.caller_id.as_ref(), Some(&out.caller_id));
        assert_eq!(e.event.depth, 1);
    }
    // The parent records the child's start.
    let parent_events = h.events(&out.session_id).await;
    let start = parent_events
        .iter()
        .find(|e| e.event.kind == EventKind::ChildStart)
        .expect("a child_start event");
    assert_eq!(start.event.metadata["child_session_id"], child_id);
}

#[tokio::test]
async fn sub_cascade_without_context_in_or_out_sees_only_the_map_and_leaves_the_parent_alone() {
    let p = Project::new();
    p.write("children/child.yaml", CHILD);
    p.write(
        "parent.yaml",
        r#"
cascade_id: parent
cells:
  - name: prepare
    tool: set_state
    inputs: {key: seen, value: "yes"}
  - name: call
    tool: set_state
    inputs: {key: after, value: "done"}
    sub_cascades:
      - ref: children/child.yaml
        context_in: false
        context_out: false
        input_map: {who: name}
      - ref: children/child.yaml
        context_out: false
"#,
    );
    let h = Harness::new().await;
    let out = run(&h, &h.engine(), p.request("parent.yaml", json!({"name": "Bo"}))).await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    assert!(out.state.get("greeting").is_none(), "{:?}", out.state);
    let cells: Vec<&str> = out.lineage.iter().map(|l| l.cell.as_str()).collect();
    assert_eq!(cells, ["prepare", "call"]);
    let first = session(&h, &format!("{}_sub", out.session_id)).await;
    assert_eq!(first.input, json!({"who": "Bo"}));
    // The second child of the run gets its own id.
    let second = session(&h, &format!("{}_sub_1", out.session_id)).await;
    assert_eq!(second.input["name"], "Bo");
    assert_eq!(second.input["seen"], "yes");
    assert_eq!(second.output.unwrap()["stdout"], "HELLO  (, SEEN YES)\n");
}

#[tokio::test]
async fn a_failing_sub_cascade_fails_the_cell_with_its_code_and_on_error_routes_it() {
    let p = Project::new();
    p.write(
        "bad.yaml",
        "cascade_id: bad\ncells:\n  - name: boom\n    tool: bash_data\n    inputs: {script: 'exit 3'}\n",
    );
    p.write(
        "parent.yaml",
        r#"
cascade_id: parent
cells:
  - name: call
    tool: set_state
    inputs: {key: a, value: b}
    sub_cascades: [{ref: bad.yaml}]
"#,
    );
    p.write(
        "routed.yaml",
        r#"
cascade_id: routed
cells:
  - name: call
    tool: set_state
    inputs: {key: a, value: b}
    sub_cascades: [{ref: bad.yaml}]
    on_error: recover
  - name: recover
    tool: set_state
    inputs: {key: recovered, value: "{{ state.last_deterministic_error.code }}"}
"#,
    );
    let h = Harness::new().await;
    let out = run(&h, &h.engine(), p.request("parent.yaml", json!({}))).await;
    assert_eq!(out.status, SessionStatus::Failed);
    let err = out.error.unwrap();
    assert_eq!(err.code().code, "RVB-T001", "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&format!("{}_sub", out.session_id)), "{msg}");
    assert!(msg.contains("[RVB-T001]"), "{msg}");
    let child = session(&h, &format!("{}_sub", out.session_id)).await;
    assert_eq!(child.status, SessionStatus::Failed);

    let out = run(&h, &h.engine(), p.request("routed.yaml", json!({}))).await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    assert_eq!(out.path, ["call", "recover"]);
    assert_eq!(out.state["recovered"], "RVB-T001");
}

#[tokio::test]
async fn an_invalid_child_is_refused_before_it_runs_naming_its_file() {
    let p = Project::new();
    p.write("broken.yaml", "cascade_id: broken\ncells:\n  - name: a\n    handoffs: [nowhere]\n    tool: set_state\n    inputs: {key: a, value: b}\n");
    p.write(
        "parent.yaml",
        "cascade_id: parent\ncells:\n  - name: call\n    tool: set_state\n    inputs: {key: a, value: b}\n    sub_cascades: [{ref: broken.yaml}]\n",
    );
    let h = Harness::new().await;
    let out = run(&h, &h.engine(), p.request("parent.yaml", json!({}))).await;
    assert_eq!(out.status, SessionStatus::Failed);
    let err = out.error.unwrap();
    assert_eq!(err.code().code, "RVB-E006");
    let msg = err.to_string();
    assert!(msg.contains("broken.yaml:"), "{msg}");
    assert!(msg.contains("nowhere"), "{msg}");
    assert!(children_of(&h, &out.session_id).await.is_empty());
}

#[tokio::test]
async fn child_references_cannot_leave_the_project() {
    let outside = TempDir::new().unwrap();
    std::fs::write(
        outside.path().join("evil.yaml"),
        "cascade_id: evil\ncells:\n  - name: a\n    tool: set_state\n    inputs: {key: pwned, value: yes}\n",
    )
    .unwrap();
    let p = Project::new();
    std::os::unix::fs::symlink(outside.path().join("evil.yaml"), p.dir.path().join("link.yaml")).unwrap();
    for reference in ["../../etc/passwd", "link.yaml", "/etc/passwd"] {
        p.write(
            "parent.yaml",
            &format!(
                "cascade_id: parent\ncells:\n  - name: call\n    tool: set_state\n    inputs: {{key: a, value: b}}\n    sub_cascades: [{{ref: '{reference}'}}]\n"
            ),
        );
        let h = Harness::new().await;
        let out = run(&h, &h.engine(), p.unvalidated("parent.yaml", json!({}))).await;
        assert_eq!(out.status, SessionStatus::Failed, "{reference}");
        let err = out.error.unwrap();
        assert_eq!(err.code().code, "RVB-E006", "{reference}: {err}");
        let msg = err.to_string();
        assert!(
            msg.contains("leaves the directory") || msg.contains("absolute path"),
            "{reference}: {msg}"
        );
        assert!(out.state.get("pwned").is_none());
        assert!(children_of(&h, &out.session_id).await.is_empty());
    }
}

#[tokio::test]
async fn a_cascade_that_calls_itself_stops_at_the_depth_limit() {
    let p = Project::new();
    p.write(
        "self.yaml",
        "cascade_id: recursive\ncells:\n  - name: again\n    tool: set_state\n    inputs: {key: a, value: b}\n    sub_cascades: [{ref: self.yaml}]\n",
    );
    let h = Harness::new().await;
    let out = run(&h, &h.engine(), p.request("self.yaml", json!({}))).await;
    assert_eq!(out.status, SessionStatus::Failed);
    let err = out.error.unwrap();
    assert_eq!(err.code().code, "RVB-E004", "{err}");
    assert!(err.to_string().contains("deeper than the limit of 16"), "{err}");
    // Depths 1..=16 ran as children, each linked to the one above.
    let mut id = out.session_id.to_string();
    for depth in 1..=rvbbit_engine::MAX_DEPTH {
        let child = session(&h, &format!("{id}_sub")).await;
        assert_eq!(child.depth, depth);
        assert_eq!(child.parent_session_id.as_ref().unwrap().as_str(), id);
        assert_eq!(child.root_session_id, out.session_id);
        id = child.session_id.to_string();
    }
    assert!(
        h.store
            .session(&format!("{id}_sub").parse().unwrap())
            .await
            .is_err()
    );
}

const SLOW_CHILD: &str = r#"
cascade_id: slow
cells:
  - name: wait
    tool: linux_shell
    inputs:
      command: "sleep 0.3; echo {{ input.tag }}"
"#;

#[tokio::test]
async fn async_cascades_on_start_and_on_end_finish_before_the_run_returns() {
    let p = Project::new();
    p.write("slow.yaml", SLOW_CHILD);
    p.write(
        "failing.yaml",
        "cascade_id: failing\ncells:\n  - name: boom\n    tool: bash_data\n    inputs: {script: 'exit 5'}\n",
    );
    p.write(
        "parent.yaml",
        r#"
cascade_id: parent
cells:
  - name: work
    tool: set_state
    inputs: {key: k, value: v}
    async_cascades:
      - {ref: slow.yaml, trigger: on_start, input_map: {tag: start}, context_in: false}
      - {ref: slow.yaml, trigger: on_end, input_map: {tag: end}}
      - {ref: failing.yaml}
      - {ref: missing.yaml}
  - name: next
    tool: set_state
    inputs: {key: k2, value: v2}
"#,
    );
    let h = Harness::new().await;
    let out = run(&h, &h.engine(), p.unvalidated("parent.yaml", json!({"x": 1}))).await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    let parent = session(&h, out.session_id.as_str()).await;
    let parent_end = parent.ended_at.expect("the parent has ended");
    let children = children_of(&h, &out.session_id).await;
    // Each child (the slow ones sleep 0.3 s) ended before the parent did: the run waited for them.
    for c in &children {
        let ended = c
            .ended_at
            .unwrap_or_else(|| panic!("{} has not ended: {c:?}", c.session_id));
        assert!(ended <= parent_end, "{} ended after its parent", c.session_id);
    }
    assert_eq!(children.len(), 3, "{children:?}");
    let mut tags = Vec::new();
    for c in &children {
        assert!(c.session_id.as_str().starts_with("spawned_"), "{}", c.session_id);
        assert_eq!(c.caller_id.as_ref(), Some(&out.caller_id));
        assert_eq!(c.depth, 1);
        if c.cascade_id.as_deref() == Some("slow") {
            assert_eq!(c.status, SessionStatus::Completed);
            tags.push(
                c.output.as_ref().unwrap()["stdout"]
                    .as_str()
                    .unwrap()
                    .trim()
                    .to_owned(),
            );
        } else {
            assert_eq!(c.status, SessionStatus::Failed);
        }
    }
    tags.sort();
    assert_eq!(tags, ["end", "start"]);
    // The failing and the missing child are warnings and `error` events, not the parent's failure.
    assert_eq!(out.warnings.len(), 2, "{:?}", out.warnings);
    assert!(
        out.warnings
            .iter()
            .any(|w| w.contains("failing.yaml") && w.contains("RVB-T001"))
    );
    assert!(
        out.warnings
            .iter()
            .any(|w| w.contains("missing.yaml") && w.contains("RVB-E006"))
    );
    assert_eq!(h.count(&out.session_id, EventKind::Error).await, 2);
    // on_end started after the cell finished: its child_start comes after cell_complete of `work`.
    let events = h.events(&out.session_id).await;
    let pos = |pred: &dyn Fn(&rvbbit_store::StoredEvent) -> bool| events.iter().position(pred).unwrap();
    let complete = pos(&|e| e.event.kind == EventKind::CellComplete);
    let starts: Vec<usize> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| e.event.kind == EventKind::ChildStart)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(starts.len(), 3);
    assert!(
        starts[0] < complete && starts[1] < complete && starts[2] > complete,
        "{starts:?} {complete}"
    );
}

#[tokio::test]
async fn cancelling_the_run_cancels_its_async_cascades() {
    let p = Project::new();
    p.write(
        "sleepy.yaml",
        "cascade_id: sleepy\ncells:\n  - name: nap\n    tool: linux_shell\n    inputs: {command: 'sleep 30'}\n",
    );
    p.write(
        "parent.yaml",
        "cascade_id: parent\ncells:\n  - name: go\n    tool: linux_shell\n    inputs: {command: 'sleep 30'}\n    async_cascades: [{ref: sleepy.yaml}]\n",
    );
    let h = Harness::new().await;
    let request = p.request("parent.yaml", json!({}));
    let cancel = request.cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        cancel.cancel();
    });
    // Both shells sleep 30 s: only cancellation reaching them (and the child) ends the run in time.
    let out = tokio::time::timeout(std::time::Duration::from_secs(20), run(&h, &h.engine(), request))
        .await
        .expect("cancelling stops the shell and the async child instead of waiting 30 s");
    assert_eq!(out.status, SessionStatus::Cancelled);
    let children = children_of(&h, &out.session_id).await;
    assert_eq!(children.len(), 1);
    assert_eq!(children[0].status, SessionStatus::Cancelled);
}

const GREETER: &str = r#"
cascade_id: greeter
description: Greet someone by name.
inputs_schema:
  name: who to greet
cells:
  - name: hello
    tool: linux_shell
    inputs:
      command: "echo hello {{ input.name }}"
  - name: result
    tool: python_data
    inputs:
      code: "result = outputs['hello']['stdout'].strip().upper()"
"#;

#[tokio::test]
async fn a_cascade_tool_runs_from_a_deterministic_cell_as_a_linked_child() {
    let p = Project::new();
    p.write("traits/greeter.yaml", GREETER);
    let parent = p.write(
        "parent.yaml",
        "cascade_id: parent\ncells:\n  - name: call\n    tool: greeter\n    inputs: {name: Ada}\n",
    );
    let h = Harness::new().await;
    let engine = engine_with_cascade_tools(&h, &parent, None);
    let tool = engine.registry().get("greeter").expect("registered");
    assert_eq!(
        tool.parameters(),
        json!({"type": "object", "properties": {"name": {"type": "string", "description": "who to greet"}}})
    );
    let out = run(&h, &engine, request_for(&parent, json!({}))).await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    // The last lineage output of the child.
    assert_eq!(out.output["result"], "HELLO ADA");
    let children = children_of(&h, &out.session_id).await;
    assert_eq!(children.len(), 1);
    let child = &children[0];
    assert!(
        child.session_id.as_str().starts_with("tool_greeter_"),
        "{}",
        child.session_id
    );
    assert_eq!(child.caller_id.as_ref(), Some(&out.caller_id));
    assert_eq!(child.input, json!({"name": "Ada"}));
    // The parent counts the child's tool calls (2) besides its own (1).
    assert_eq!(out.tool_calls, 3);
}

#[tokio::test]
async fn a_cascade_tool_is_called_by_an_llm_cell_in_native_and_prompt_modes() {
    let p = Project::new();
    p.write("traits/greeter.yaml", GREETER);
    let parent = p.write(
        "parent.yaml",
        r#"
cascade_id: parent
cells:
  - name: native
    instructions: Greet Ada with the tool.
    traits: [greeter]
    use_native_tools: true
  - name: prompted
    instructions: Greet Bo with the tool.
    traits: [greeter]
"#,
    );
    let server = TestServer::start(Script::sequence([
        Reply::tool_call("c1", "greeter", json!({"name": "Ada"})),
        Reply::text("Greeted Ada."),
        Reply::text("```json\n{\"tool\": \"greeter\", \"arguments\": {\"name\": \"Bo\"}}\n```"),
        Reply::text("Greeted Bo."),
    ]))
    .await;
    let h = Harness::new().await;
    let engine = engine_with_cascade_tools(&h, &parent, Some(&server.base_url()));
    let out = run(&h, &engine, request_for(&parent, json!({}))).await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    assert_eq!(out.outputs["native"], "Greeted Ada.");
    assert_eq!(out.outputs["prompted"], "Greeted Bo.");
    let bodies = server.bodies();
    assert_eq!(bodies[0]["tools"][0]["function"]["name"], "greeter");
    let tool_msg = bodies[1]["messages"].as_array().unwrap().last().unwrap();
    assert_eq!(tool_msg["role"], "tool");
    assert!(
        tool_msg["content"].as_str().unwrap().contains("HELLO ADA"),
        "{tool_msg}"
    );
    let last = bodies[3]["messages"].as_array().unwrap().last().unwrap();
    assert!(
        last["content"]
            .as_str()
            .unwrap()
            .contains("Tool Result (greeter):")
            && last["content"].as_str().unwrap().contains("HELLO BO"),
        "{last}"
    );
    let children = children_of(&h, &out.session_id).await;
    assert_eq!(children.len(), 2);
    for c in children {
        assert_eq!(c.caller_id.as_ref(), Some(&out.caller_id));
        assert_eq!(c.status, SessionStatus::Completed);
    }
}

#[tokio::test]
async fn corpus_context_demo_parent_passes_state_into_and_out_of_the_child() {
    let call = |key: &str, value: &str| {
        Reply::text(format!(
            "```json\n{{\"tool\": \"set_state\", \"arguments\": {{\"key\": \"{key}\", \"value\": \"{value}\"}}}}\n```"
        ))
    };
    let server = TestServer::start(Script::sequence([
        call("secret_code", "BLUE_OCEAN"),
        Reply::text("Set."),
        // The child: sees the secret code in its input and sets child_status.
        call("child_status", "mission_accomplished"),
        Reply::text("Child done."),
        Reply::text("Calling the child."),
        Reply::text("Verified."),
    ]))
    .await;
    let h = Harness::new().await;
    let path = PathBuf::from(CORPUS).join("context_demo_parent.yaml");
    let mut request = request_for(&path, json!({}));
    request.session_id = Some(SessionId::new_woodland());
    let mut settings = rvbbit_llm::ProviderSettings::new(server.base_url()).with_api_key("k");
    settings.retry.max_retries = 0;
    let engine = h
        .engine()
        .with_provider(std::sync::Arc::new(rvbbit_llm::Client::new(settings).unwrap()))
        .with_default_model("test/model");
    let out = run(&h, &engine, request).await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    assert_eq!(out.path, ["setup", "call_child", "verify"]);
    // The corpus says `context_demo_child.json`; the file is YAML now: the ref still resolves.
    let child = session(&h, &format!("{}_sub", out.session_id)).await;
    assert_eq!(child.cascade_id.as_deref(), Some("context_demo_child"));
    assert_eq!(child.input["secret_code"], "BLUE_OCEAN");
    assert_eq!(out.state["child_status"], "mission_accomplished");
    let bodies = server.bodies();
    let child_prompt = bodies[2]["messages"].as_array().unwrap().last().unwrap()["content"].clone();
    assert!(
        child_prompt.as_str().unwrap().contains("BLUE_OCEAN"),
        "{child_prompt}"
    );
    let verify = bodies[5]["messages"].as_array().unwrap().last().unwrap()["content"].clone();
    assert!(
        verify.as_str().unwrap().contains("mission_accomplished"),
        "{verify}"
    );
}

#[tokio::test]
async fn corpus_nested_parent_runs_its_greeter_child_in_between() {
    let server = TestServer::start(Script::sequence([
        Reply::text("I am the Parent Cascade."),
        Reply::text("Hello from the sub-cascade! It is sunny."),
        Reply::text("Delegated."),
        Reply::text("Thanks, goodbye."),
    ]))
    .await;
    let h = Harness::new().await;
    let path = PathBuf::from(CORPUS).join("nested_parent.yaml");
    let out = run(
        &h,
        &h.llm_engine(&server.base_url()),
        request_for(&path, json!({})),
    )
    .await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    assert_eq!(out.path, ["parent_start", "call_child", "parent_finish"]);
    let cells: Vec<&str> = out.lineage.iter().map(|l| l.cell.as_str()).collect();
    assert_eq!(
        cells,
        ["parent_start", "sub_greet", "call_child", "parent_finish"]
    );
    assert_eq!(out.llm_calls, 4);
    let child = session(&h, &format!("{}_sub", out.session_id)).await;
    assert_eq!(child.cascade_id.as_deref(), Some("sub_cascade_greeter"));
    assert_eq!(
        child.output,
        Some(json!("Hello from the sub-cascade! It is sunny."))
    );
}

#[tokio::test]
async fn a_cascade_tool_that_times_out_is_cancelled_and_the_cell_fails_with_t002() {
    let p = Project::new();
    p.write(
        "traits/sleeper.yaml",
        "cascade_id: sleeper\ninputs_schema: {n: seconds}\ncells:\n  - name: nap\n    tool: linux_shell\n    inputs: {command: 'sleep {{ input.n }}'}\n",
    );
    let parent = p.write(
        "parent.yaml",
        "cascade_id: parent\ncells:\n  - name: call\n    tool: sleeper\n    timeout: 1s\n    inputs: {n: '30'}\n",
    );
    let h = Harness::new().await;
    let engine = engine_with_cascade_tools(&h, &parent, None);
    // The child sleeps 30 s: only the 1 s timeout cancelling it ends the run in time.
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        run(&h, &engine, request_for(&parent, json!({}))),
    )
    .await
    .expect("the timeout cancels the sleeping child instead of waiting 30 s");
    assert_eq!(out.status, SessionStatus::Failed);
    assert_eq!(out.error.unwrap().code().code, "RVB-T002");
    let children = children_of(&h, &out.session_id).await;
    assert_eq!(children.len(), 1);
    assert_eq!(children[0].status, SessionStatus::Cancelled);
}
