//! Failure paths: provider down, schema never satisfied, cancellation.

use std::time::Duration;

use rvbbit_core::{EventKind, SessionStatus};
use rvbbit_engine::RunRequest;

use rvbbit_testkit::{Reply, Script, TestServer};
use serde_json::json;

use crate::support::{Harness, yaml};

#[tokio::test]
async fn provider_down_fails_the_session_with_an_llm_code_and_a_hinted_error_event() {
    // A port nothing listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let h = Harness::new().await;
    let c = yaml(
        "cascade_id: down\ncells:\n  - name: a\n    instructions: hello\n  - name: b\n    tool: set_state\n    inputs: {key: k, value: v}\n",
    );
    let out = h
        .run(
            &h.llm_engine(&format!("http://127.0.0.1:{port}/v1")),
            c,
            json!({}),
        )
        .await;
    assert_eq!(out.status, SessionStatus::Failed);
    assert_eq!(out.path, ["a"], "the cascade stops at the failing cell");
    let err = out.error.unwrap();
    assert_eq!(err.code().code, "RVB-L001");
    assert_eq!(err.code().exit_code(), 4);
    let events = h.events(&out.session_id).await;
    let llm_error = events
        .iter()
        .find(|e| e.event.kind == EventKind::LlmError)
        .unwrap();
    assert!(
        !llm_error.event.error.as_ref().unwrap()["hint"]
            .as_str()
            .unwrap()
            .is_empty()
    );
    let end = events.last().unwrap();
    assert_eq!(end.event.kind, EventKind::CascadeError);
    assert_eq!(end.event.error.as_ref().unwrap()["code"], "RVB-L001");
    assert_eq!(
        h.store.session(&out.session_id).await.unwrap().status,
        SessionStatus::Failed
    );
}

#[tokio::test]
async fn output_schema_never_satisfied_is_e002_after_max_attempts() {
    let server = TestServer::start(Script::sequence((0..3).map(|_| Reply::text("{\"name\": 5}")))).await;
    let h = Harness::new().await;
    let c = yaml(
        "cascade_id: never\ncells:\n  - name: p\n    instructions: JSON please\n    rules: {max_attempts: 3}\n    output_schema: {type: object, required: [name], properties: {name: {type: string}}}\n",
    );
    let out = h.run(&h.llm_engine(&server.base_url()), c, json!({})).await;
    assert_eq!(out.status, SessionStatus::Failed);
    let err = out.error.unwrap();
    assert_eq!(err.code().code, "RVB-E002");
    assert_eq!(err.code().exit_code(), 2);
    assert_eq!(server.requests(), 3);
    assert_eq!(h.count(&out.session_id, EventKind::Validation).await, 3);
    server.shutdown().await;
}

#[tokio::test]
async fn cancelling_mid_llm_call_marks_the_session_cancelled_and_flushes() {
    let server = TestServer::start(Script::sequence([Reply::hang()])).await;
    let h = Harness::new().await;
    let c = yaml("cascade_id: cancel\ncells:\n  - name: a\n    instructions: hello\n");
    let engine = h.llm_engine(&server.base_url());
    let req = RunRequest::new(c);
    let token = req.cancel.clone();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        token.cancel();
    });
    let out = engine.run(req).await;
    canceller.await.unwrap();
    assert_eq!(out.status, SessionStatus::Cancelled);
    h.writer.as_ref().unwrap().handle().flush().await.unwrap();
    let kinds = h.kinds(&out.session_id).await;
    assert_eq!(kinds.last(), Some(&EventKind::CascadeCancelled));
    assert_eq!(
        h.store.session(&out.session_id).await.unwrap().status,
        SessionStatus::Cancelled
    );
    server.shutdown().await;
}

#[tokio::test]
async fn cancelling_mid_tool_kills_the_whole_process_group() {
    let h = Harness::new().await;
    let dir = tempfile::TempDir::new().unwrap();
    let marker = dir.path().join("marker");
    let c = yaml(&format!(
        "cascade_id: cancel_tool\ncells:\n  - name: s\n    tool: linux_shell\n    inputs: {{command: 'sleep 1 && touch {}'}}\n",
        marker.display()
    ));
    let req = RunRequest::new(c);
    let token = req.cancel.clone();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        token.cancel();
    });
    let out = h.engine().run(req).await;
    canceller.await.unwrap();
    assert_eq!(out.status, SessionStatus::Cancelled);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !marker.exists(),
        "the shell's children kept running after the cancel"
    );
}
