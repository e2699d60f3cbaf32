//! Durable execution of runs with a run key (`RunRequest::run_key`, what a queue worker sets): the
//! journal of completed cells, side effects recorded under idempotency keys, and two attempts of one
//! run at once. Real shell subprocesses and a real SQLite store.

use std::path::Path;
use std::time::Duration;

use rvbbit_core::{EventKind, SessionStatus};
use rvbbit_engine::{Error, RunRequest};
use rvbbit_store::{Effect, EffectStatus, JournalEntry};
use serde_json::{Value, json};

use crate::support::{Harness, yaml};

/// Two side-effecting cells, each appending a line (with the idempotency key it was given) to `log`.
fn cascade(log: &Path, second: &str) -> rvbbit_cascade::model::Cascade {
    yaml(&format!(
        r#"cascade_id: journaled
cells:
  - name: first
    tool: linux_shell
    inputs:
      command: 'echo "first $RVBBIT_IDEMPOTENCY_KEY" >> {log}; echo one'
  - name: second
    tool: linux_shell
    inputs:
      command: '{second}; echo "second $RVBBIT_IDEMPOTENCY_KEY" >> {log}; echo two'
"#,
        log = log.display()
    ))
}

fn lines(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

async fn run_keyed(
    h: &Harness,
    cascade: rvbbit_cascade::model::Cascade,
    key: &str,
) -> rvbbit_engine::Outcome {
    let engine = h.engine().with_store(h.store.clone());
    let mut request = RunRequest::new(cascade);
    request.run_key = Some(key.to_owned());
    let outcome = engine.run(request).await;
    h.writer.as_ref().unwrap().handle().flush().await.unwrap();
    outcome
}

#[tokio::test]
async fn a_second_attempt_continues_after_the_journaled_cells_and_replays_finished_effects() {
    let h = Harness::new().await;
    let dir = tempfile::TempDir::new().unwrap();
    let log = dir.path().join("effects.log");
    // The first attempt dies in `second` (cancelled mid-cell): `first` is journaled, its effect done.
    let engine = h.engine().with_store(h.store.clone());
    let mut request = RunRequest::new(cascade(&log, "sleep 30"));
    request.run_key = Some("queue-job-7".into());
    let cancel = request.cancel.clone();
    let attempt = tokio::spawn(async move { engine.run(request).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    for _ in 0..100 {
        if h.store.journal_latest("queue-job-7").await.unwrap().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cancel.cancel();
    let dead = attempt.await.unwrap();
    assert_eq!(dead.status, SessionStatus::Cancelled);
    assert_eq!(lines(&log), vec!["first queue-job-7/1.first/1"]);

    // The second attempt starts at `second`: `first` does not run again, its output comes from the journal.
    let outcome = run_keyed(&h, cascade(&log, "true"), "queue-job-7").await;
    assert_eq!(outcome.status, SessionStatus::Completed, "{:?}", outcome.error);
    assert_eq!(
        lines(&log),
        vec!["first queue-job-7/1.first/1", "second queue-job-7/2.second/1"]
    );
    assert_eq!(outcome.path, vec!["first", "second"]);
    assert_eq!(outcome.outputs["first"]["stdout"], json!("one\n"));
    assert!(
        outcome
            .warnings
            .iter()
            .any(|w| w.contains("after step 1 (cell `first`")),
        "{:?}",
        outcome.warnings
    );
    let events = h.events(&outcome.session_id).await;
    let calls: Vec<&str> = events
        .iter()
        .filter(|e| e.event.kind == EventKind::ToolCall)
        .filter_map(|e| e.event.cell_name.as_deref())
        .collect();
    assert_eq!(
        calls,
        vec!["second"],
        "only the cell after the journaled step ran"
    );
    let note = events
        .iter()
        .find(|e| e.event.metadata["check"] == "journal")
        .expect("a journal event says where the run continued");
    assert_eq!(
        note.event.metadata["previous_session_id"],
        json!(dead.session_id.as_str())
    );

    // Every effect is done, so a third attempt (an ack lost after the outcome) would repeat none.
    // `second`'s was started twice: the cancelled attempt's call was cut before it appended.
    let effects = h.store.effects("queue-job-7/").await.unwrap();
    let seen: Vec<(&str, EffectStatus, i64)> = effects
        .iter()
        .map(|e| (e.key.as_str(), e.status, e.attempts))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("queue-job-7/1.first/1", EffectStatus::Done, 1),
            ("queue-job-7/2.second/1", EffectStatus::Done, 2)
        ]
    );
}

#[tokio::test]
async fn a_finished_effect_is_replayed_and_a_cut_one_is_made_again_with_the_same_key() {
    let h = Harness::new().await;
    let dir = tempfile::TempDir::new().unwrap();
    let log = dir.path().join("effects.log");
    // An earlier attempt died after `first`'s effect was recorded done but before the step was
    // journaled, and while `second`'s effect was in flight (started, never done).
    let now = rvbbit_core::Timestamp::now();
    let done = Effect::start(
        "queue-job-8/1.first/1",
        "dead-attempt".parse().unwrap(),
        "first",
        "linux_shell",
    );
    h.store.effect_begin(&done).await.unwrap();
    let recorded = json!({"stdout": "recorded\n", "stderr": "", "returncode": 0});
    h.store
        .effect_finish("queue-job-8/1.first/1", EffectStatus::Done, &recorded, now)
        .await
        .unwrap();
    let cut = Effect::start(
        "queue-job-8/2.second/1",
        "dead-attempt".parse().unwrap(),
        "second",
        "linux_shell",
    );
    h.store.effect_begin(&cut).await.unwrap();

    let outcome = run_keyed(&h, cascade(&log, "true"), "queue-job-8").await;
    assert_eq!(outcome.status, SessionStatus::Completed, "{:?}", outcome.error);
    // `first` ran as a cell, but its effect was not made again: the recorded result is its output.
    assert_eq!(outcome.outputs["first"], recorded);
    // `second`'s effect was cut: made again (at-least-once), with the same key.
    assert_eq!(lines(&log), vec!["second queue-job-8/2.second/1"]);
    let effects = h.store.effects("queue-job-8/2").await.unwrap();
    assert_eq!((effects[0].attempts, effects[0].status), (2, EffectStatus::Done));
    let events = h.events(&outcome.session_id).await;
    let replayed: Vec<&Value> = events
        .iter()
        .filter(|e| e.event.kind == EventKind::ToolResult && e.event.metadata["replayed"] == json!(true))
        .map(|e| &e.event.metadata)
        .collect();
    assert_eq!(replayed.len(), 1, "{replayed:?}");
    assert_eq!(replayed[0]["idempotency_key"], json!("queue-job-8/1.first/1"));
    assert_eq!(outcome.tool_calls, 1, "the replayed call is not counted as made");
}

#[tokio::test]
async fn an_attempt_overtaken_by_another_stops_as_cancelled_without_an_outcome() {
    let h = Harness::new().await;
    let dir = tempfile::TempDir::new().unwrap();
    let log = dir.path().join("effects.log");
    let slow = yaml(&format!(
        "cascade_id: overtaken\ncells:\n  - name: first\n    tool: linux_shell\n    inputs:\n      command: 'sleep 1; echo one'\n  - name: second\n    tool: linux_shell\n    inputs:\n      command: 'echo two >> {}'\n",
        log.display()
    ));
    let engine = h.engine().with_store(h.store.clone());
    let mut request = RunRequest::new(slow);
    request.run_key = Some("queue-job-9".into());
    let attempt = tokio::spawn(async move { engine.run(request).await });
    // Meanwhile a newer attempt (a redelivery) completes step 1 first.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let newer = JournalEntry::new(
        "queue-job-9",
        1,
        "newer-attempt".parse().unwrap(),
        "first",
        json!({}),
    );
    h.store.journal_put(&newer).await.unwrap();
    let outcome = attempt.await.unwrap();
    h.writer.as_ref().unwrap().handle().flush().await.unwrap();
    assert_eq!(outcome.status, SessionStatus::Cancelled);
    match &outcome.error {
        Some(e @ Error::Superseded { .. }) => {
            assert!(e.to_string().contains("newer-attempt"), "{e}");
            assert_eq!(e.code().code, "RVB-S006");
        }
        other => panic!("expected Superseded, got {other:?}"),
    }
    assert!(
        lines(&log).is_empty(),
        "the overtaken attempt ran nothing after the conflict"
    );
    let stored = h.store.session(&outcome.session_id).await.unwrap();
    assert_eq!(stored.status, SessionStatus::Cancelled);
}

#[tokio::test]
async fn a_run_without_a_run_key_passes_a_session_based_key_and_records_nothing() {
    let h = Harness::new().await;
    let dir = tempfile::TempDir::new().unwrap();
    let log = dir.path().join("effects.log");
    let engine = h.engine().with_store(h.store.clone());
    let outcome = h.run(&engine, cascade(&log, "true"), json!({})).await;
    assert_eq!(outcome.status, SessionStatus::Completed);
    let sid = outcome.session_id.as_str();
    assert_eq!(
        lines(&log),
        vec![
            format!("first {sid}/1.first/1"),
            format!("second {sid}/2.second/1")
        ]
    );
    assert!(
        h.store.effects(sid).await.unwrap().is_empty(),
        "only journaled runs record effects"
    );
    assert_eq!(h.store.journal_latest(sid).await.unwrap(), None);
}

#[tokio::test]
async fn an_http_tool_sends_the_idempotency_key_as_a_header() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let h = Harness::new().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 4096];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = socket.read(&mut buf).await.unwrap();
            assert!(n > 0, "the connection closed before the headers ended");
            request.extend_from_slice(&buf[..n]);
        }
        let reply = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 12\r\nconnection: close\r\n\r\n{\"ok\": true}";
        socket.write_all(reply.as_bytes()).await.unwrap();
        String::from_utf8_lossy(&request).to_lowercase()
    });
    let hook = yaml(&format!(
        "cascade_id: hook\ncells:\n  - name: hook\n    tool: http_request\n    inputs:\n      url: 'http://127.0.0.1:{port}/hook'\n      method: POST\n      body: 'hello'\n"
    ));
    let outcome = run_keyed(&h, hook, "queue-job-10").await;
    assert_eq!(outcome.status, SessionStatus::Completed, "{:?}", outcome.error);
    let request = server.await.unwrap();
    assert!(request.starts_with("post /hook"), "{request}");
    assert!(
        request.contains("\r\nidempotency-key: queue-job-10/1.hook/1\r\n"),
        "{request}"
    );
    let effects = h.store.effects("queue-job-10/").await.unwrap();
    assert_eq!(effects[0].status, EffectStatus::Done);
    assert_eq!(effects[0].result.as_ref().unwrap()["status"], json!(200));
}
