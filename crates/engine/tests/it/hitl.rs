//! Humans in the loop: `human_input` kinds answered through the store, screens, the `ask_human` tool on a
//! corpus cascade, suspension with no human, and resume without re-running completed cells.

use std::sync::Arc;
use std::time::Duration;

use rvbbit_cascade::model::Cascade;
use rvbbit_core::{EventKind, SessionId, SessionStatus, Timestamp};
use rvbbit_engine::human::{NoHuman, Question, QuestionKind, StoreAnswers};
use rvbbit_engine::{Engine, Error, Outcome, Progress, ResumeRequest, RunRequest};
use rvbbit_store::{CheckpointStatus, SignalStatus, Store};
use rvbbit_testkit::{Reply, Script, TestServer};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::support::{Harness, corpus, yaml};

/// An engine that waits for answers fired in the store (polling every 20 ms, up to 20 s).
fn answering(h: &Harness, engine: Engine) -> Engine {
    engine
        .with_store(h.store.clone())
        .with_human(Arc::new(StoreAnswers::new(
            h.store.clone(),
            Duration::from_millis(20),
            Some(Duration::from_secs(20)),
        )))
}

/// Fire `value` on the signal `name` of `session` as soon as it waits; returns the question asked.
async fn answer_when_waiting(
    store: Arc<dyn Store>,
    session: SessionId,
    name: String,
    value: Value,
) -> Question {
    let name = name.as_str();
    let started = std::time::Instant::now();
    loop {
        let waiting = store
            .signals(Some(name))
            .await
            .unwrap()
            .into_iter()
            .any(|s| s.status == SignalStatus::Waiting && s.session_id.as_ref() == Some(&session));
        if waiting {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "signal `{name}` never waited"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let cp = store
        .checkpoints(Some(&session), Some(CheckpointStatus::Pending))
        .await
        .unwrap()
        .remove(0);
    let fired = store
        .signal_fire(name, &value, "test", Some(&session), Timestamp::now())
        .await
        .unwrap();
    assert_eq!(fired.len(), 1);
    Question::from_ui_spec(&cp.ui_spec).unwrap()
}

/// Run `cascade` as session `id` while another task answers `signal` with `value`.
async fn run_answered(
    h: &Harness,
    engine: &Engine,
    cascade: Cascade,
    id: &str,
    signal: &str,
    value: Value,
) -> (Outcome, Question) {
    let session: SessionId = id.parse().unwrap();
    let mut request = RunRequest::new(cascade);
    request.session_id = Some(session.clone());
    let answerer = tokio::spawn(answer_when_waiting(
        h.store.clone(),
        session,
        signal.to_owned(),
        value,
    ));
    let out = engine.run(request).await;
    h.writer.as_ref().unwrap().handle().flush().await.unwrap();
    (out, answerer.await.unwrap())
}

const CONFIRM: &str = r#"
cascade_id: confirm
cells:
  - name: draft
    tool: linux_shell
    inputs: {command: "echo draft-1"}
    human_input: {type: confirmation, prompt: "Ship {{ output.stdout | trim }}?"}
  - name: publish
    tool: set_state
    inputs: {key: published, value: "yes"}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirmation_answered_through_the_store_goes_to_state_and_continues() {
    let h = Harness::new().await;
    let engine = answering(&h, h.engine());
    let (out, q) = run_answered(&h, &engine, yaml(CONFIRM), "hitl-confirm", "draft", json!(true)).await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    assert_eq!(q.kind, QuestionKind::Confirmation);
    assert_eq!(q.prompt, "Ship draft-1?");
    assert_eq!(out.state["human_draft"], json!({"confirmed": true}));
    assert_eq!(out.path, ["draft", "publish"]);
    let id = out.session_id.clone();
    assert_eq!(h.count(&id, EventKind::CheckpointCreated).await, 1);
    assert_eq!(h.count(&id, EventKind::CheckpointResolved).await, 1);
    let cps = h.store.checkpoints(Some(&id), None).await.unwrap();
    assert_eq!(cps.len(), 1);
    assert_eq!(cps[0].status, CheckpointStatus::Responded);
    assert_eq!(cps[0].response, Some(json!({"confirmed": true})));
    assert_eq!(
        h.store.session(&id).await.unwrap().status,
        SessionStatus::Completed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn choice_answer_routes_to_the_chosen_handoff() {
    let h = Harness::new().await;
    let engine = answering(&h, h.engine());
    let cascade = yaml(
        r#"
cascade_id: choose
cells:
  - name: review
    tool: set_state
    inputs: {key: x, value: "1"}
    handoffs: [publish, redo]
    human_input:
      type: choice
      options:
        - {label: "Ship it", value: publish}
        - {label: "Redo", value: redo}
  - name: publish
    tool: set_state
    inputs: {key: done, value: published}
  - name: redo
    tool: set_state
    inputs: {key: done, value: redone}
"#,
    );
    let (out, q) = run_answered(&h, &engine, cascade, "hitl-choice", "review", json!("Redo")).await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    assert_eq!(q.options.len(), 2);
    assert_eq!(out.state["human_review"], json!({"selected": "redo"}));
    assert_eq!(out.path, ["review", "redo"]);
    assert_eq!(out.state["done"], json!("redone"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_answer_is_written_to_state() {
    let h = Harness::new().await;
    let engine = answering(&h, h.engine());
    let cascade = yaml(
        "cascade_id: t\ncells:\n  - name: ask\n    tool: set_state\n    inputs: {key: a, value: '1'}\n    human_input: {type: text, prompt: 'Any notes?'}\n",
    );
    let (out, _) = run_answered(&h, &engine, cascade, "hitl-text", "ask", json!("looks fine")).await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    assert_eq!(out.state["human_ask"], json!({"text": "looks fine"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_confirmation_without_handoff_stops_the_cascade() {
    let h = Harness::new().await;
    let engine = answering(&h, h.engine());
    let (out, _) = run_answered(
        &h,
        &engine,
        yaml(CONFIRM),
        "hitl-reject",
        "draft",
        json!({"confirmed": false}),
    )
    .await;
    assert_eq!(out.status, SessionStatus::Failed);
    assert!(out.error.unwrap().to_string().contains("rejected"));
    assert_eq!(out.path, ["draft"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_of_the_wrong_shape_fails_the_cell_with_c007() {
    let h = Harness::new().await;
    let engine = answering(&h, h.engine());
    let (out, _) = run_answered(&h, &engine, yaml(CONFIRM), "hitl-bad", "draft", json!("maybe")).await;
    assert_eq!(out.status, SessionStatus::Failed);
    let err = out.error.unwrap();
    assert_eq!(err.code().code, "RVB-C007");
    assert!(err.to_string().contains("confirmation"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_timeout_continue_goes_on_with_a_null_answer() {
    let h = Harness::new().await;
    let engine = answering(&h, h.engine());
    let cascade = yaml(
        "cascade_id: t\ncells:\n  - name: ask\n    tool: set_state\n    inputs: {key: a, value: '1'}\n    human_input: {type: text, timeout_seconds: 1, on_timeout: continue}\n  - name: after\n    tool: set_state\n    inputs: {key: b, value: '2'}\n",
    );
    let out = h.run(&engine, cascade, json!({})).await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    assert_eq!(out.state["human_ask"], Value::Null);
    assert_eq!(out.path, ["ask", "after"]);
    let cps = h.store.checkpoints(Some(&out.session_id), None).await.unwrap();
    assert_eq!(cps[0].status, CheckpointStatus::Timeout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_screen_renders_its_html_and_the_form_routes_and_becomes_the_output() {
    let h = Harness::new().await;
    let engine = answering(&h, h.engine());
    let cascade = yaml(
        r#"
cascade_id: screen
cells:
  - name: draft
    tool: set_state
    inputs: {key: summary, value: "A short draft"}
  - name: approve
    htmx: |
      <p>{{ state.summary }}</p>
      {{ route_button("Ship it", "publish") }} {{ route_button("Redo", "draft") }}
    hitl_title: "Approve {{ state.summary }}"
    handoffs: [publish, draft]
  - name: publish
    tool: set_state
    inputs: {key: shipped, value: "{{ state.approve.note }}"}
"#,
    );
    let form = json!({"_route": "publish", "note": "ok by me"});
    let (out, q) = run_answered(&h, &engine, cascade, "hitl-screen", "approve", form.clone()).await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    assert_eq!(q.kind, QuestionKind::Screen);
    assert_eq!(q.prompt, "Approve A short draft");
    let html = q.html.unwrap();
    assert!(html.contains("<p>A short draft</p>"), "{html}");
    assert!(
        html.contains(r#"name="_route" value="publish">Ship it</button>"#),
        "{html}"
    );
    assert!(q.timeout_at.is_some(), "a screen waits one hour by default");
    assert_eq!(out.outputs["approve"], form);
    assert_eq!(out.state["approve"], form);
    assert_eq!(out.path, ["draft", "approve", "publish"]);
    assert_eq!(out.state["shipped"], json!("ok by me"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corpus_hitl_checkpoint_demo_asks_through_ask_human_and_uses_the_answer() {
    let server = TestServer::start(Script::sequence([
        Reply::text(
            "```json\n{\"tool\": \"ask_human\", \"arguments\": {\"question\": \"What topic?\"}}\n```",
        ),
        Reply::text("The topic is noted."),
        Reply::text("Done asking."),
        Reply::text("# An article about Rust"),
    ]))
    .await;
    let h = Harness::new().await;
    let engine = answering(&h, h.llm_engine(&server.base_url()));
    let session: SessionId = "hitl-ask".parse().unwrap();
    let (tx, rx) = tokio::sync::watch::channel(Progress::default());
    let mut request = RunRequest::new(corpus("hitl_checkpoint_demo.yaml"));
    request.session_id = Some(session.clone());
    request.progress = Some(tx);
    let answerer = tokio::spawn(answer_when_waiting(
        h.store.clone(),
        session.clone(),
        "get_topic".into(),
        json!("Rust"),
    ));
    let out = engine.run(request).await;
    let q = answerer.await.unwrap();
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    assert_eq!(q.kind, QuestionKind::FreeText);
    assert_eq!(q.prompt, "What topic?");
    assert_eq!(out.state["get_topic"], json!("Rust"));
    assert_eq!(out.path, ["get_topic", "write_article"]);
    assert_eq!(out.output, json!("# An article about Rust"));
    let bodies = server.bodies();
    assert_eq!(bodies.len(), 4);
    // The tool result (the answer) goes back to the model, and the next cell's template sees it.
    assert!(
        bodies[1].to_string().contains("Tool Result (ask_human):\\nRust"),
        "{}",
        bodies[1]
    );
    assert!(
        bodies[3].to_string().contains("engaging article about: Rust"),
        "{}",
        bodies[3]
    );
    // The progress channel saw every call and ends at the last cell.
    let p = rx.borrow().clone();
    assert_eq!(p.llm_calls, 4);
    assert_eq!(p.cell.as_deref(), Some("write_article"));
    assert_eq!(p.waiting, None);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_human_the_run_waits_and_resume_continues_without_rerunning_completed_cells() {
    let h = Harness::new().await;
    let dir = TempDir::new().unwrap();
    let log = dir.path().join("log.txt");
    let text = format!(
        r#"
cascade_id: resumable
cells:
  - name: first
    tool: linux_shell
    inputs: {{command: "echo first >> {log}"}}
  - name: gate
    tool: linux_shell
    inputs: {{command: "echo gate >> {log}; echo gated"}}
    human_input: true
  - name: last
    tool: linux_shell
    inputs: {{command: "echo last >> {log}; echo finished"}}
"#,
        log = log.display()
    );
    let file = dir.path().join("resumable.yaml");
    std::fs::write(&file, &text).unwrap();
    let engine = h
        .engine()
        .with_store(h.store.clone())
        .with_human(Arc::new(NoHuman));
    let mut request = RunRequest::new(crate::support::load(&file));
    request.session_id = Some("hitl-resume".parse().unwrap());
    request.cascade_file = Some(file.clone());
    request.cascade_text = Some(text.clone());
    let caller = request.caller_id.clone();
    let out = engine.run(request).await;
    h.writer.as_ref().unwrap().handle().flush().await.unwrap();
    assert_eq!(out.status, SessionStatus::Waiting);
    let err = out.error.as_ref().unwrap();
    assert!(
        matches!(err, Error::Waiting { signal, .. } if signal == "gate"),
        "{err}"
    );
    assert_eq!(err.code().exit_code(), 10);
    assert!(
        err.hint()
            .contains("rvbbit signal send hitl-resume gate --value JSON"),
        "{}",
        err.hint()
    );
    let id = out.session_id.clone();
    let session = h.store.session(&id).await.unwrap();
    assert_eq!(session.status, SessionStatus::Waiting);
    assert_eq!(session.current_cell.as_deref(), Some("gate"));
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "first\ngate\n");

    // The file changes: resume warns and runs the recorded text. A wrong answer is refused up front.
    std::fs::write(&file, text.replace("echo last", "echo CHANGED")).unwrap();
    let mut bad = ResumeRequest::new(id.clone());
    bad.answer = Some(json!("sure"));
    let refused = engine.resume(bad).await.unwrap_err();
    assert_eq!(refused.code().code, "RVB-C007");
    let mut request = ResumeRequest::new(id.clone());
    request.answer = Some(json!(true));
    let out = engine.resume(request).await.unwrap();
    h.writer.as_ref().unwrap().handle().flush().await.unwrap();
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    assert_eq!(out.session_id, id);
    assert_eq!(out.caller_id, caller);
    assert_eq!(out.path, ["first", "gate", "last"]);
    assert_eq!(out.output["stdout"], json!("finished\n"));
    assert!(
        out.warnings.iter().any(|w| w.contains("changed since")),
        "{:?}",
        out.warnings
    );
    assert_eq!(out.state["human_gate"], json!({"confirmed": true}));
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "first\ngate\nlast\n");

    // One session, one start, each cell started once, events numbered without gaps or repeats.
    let events = h.events(&id).await;
    let starts = |cell: &str| {
        events
            .iter()
            .filter(|e| e.event.kind == EventKind::CellStart && e.event.cell_name.as_deref() == Some(cell))
            .count()
    };
    assert_eq!((starts("first"), starts("gate"), starts("last")), (1, 1, 1));
    let kinds: Vec<EventKind> = events.iter().map(|e| e.event.kind).collect();
    assert_eq!(kinds.iter().filter(|k| **k == EventKind::CascadeStart).count(), 1);
    assert_eq!(kinds.last(), Some(&EventKind::CascadeComplete));
    let mut seqs: Vec<i64> = events.iter().map(|e| e.event.seq).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (0..events.len() as i64).collect::<Vec<_>>());
    assert!(events.iter().all(|e| e.event.caller_id.as_ref() == Some(&caller)));
    assert_eq!(
        h.store.session(&id).await.unwrap().status,
        SessionStatus::Completed
    );

    // A finished session does not resume.
    let again = engine.resume(ResumeRequest::new(id.clone())).await.unwrap_err();
    assert!(matches!(again, Error::NotResumable { .. }), "{again}");
    assert!(again.to_string().contains("completed, not waiting"), "{again}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_waiting_run_abandons_its_checkpoint_and_signal() {
    let h = Harness::new().await;
    let engine = answering(&h, h.engine());
    let session: SessionId = "hitl-cancel".parse().unwrap();
    let mut request = RunRequest::new(yaml(CONFIRM));
    request.session_id = Some(session.clone());
    let cancel = request.cancel.clone();
    let store = h.store.clone();
    let id = session.clone();
    let canceller = tokio::spawn(async move {
        loop {
            let signals = store.signals(Some("draft")).await.unwrap();
            if signals
                .iter()
                .any(|s| s.status == SignalStatus::Waiting && s.session_id.as_ref() == Some(&id))
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        cancel.cancel();
    });
    let out = engine.run(request).await;
    canceller.await.unwrap();
    h.writer.as_ref().unwrap().handle().flush().await.unwrap();
    assert_eq!(out.status, SessionStatus::Cancelled);
    let cps = h.store.checkpoints(Some(&session), None).await.unwrap();
    assert_eq!(cps[0].status, CheckpointStatus::Cancelled);
    let signals = h.store.signals(Some("draft")).await.unwrap();
    assert_eq!(signals[0].status, SignalStatus::Cancelled);
    assert_eq!(
        h.store.session(&session).await.unwrap().status,
        SessionStatus::Cancelled
    );
    assert_eq!(h.kinds(&session).await.last(), Some(&EventKind::CascadeCancelled));
}

/// Issue 14 item 8: `rvbbit sessions cancel` of a waiting session with no process behind it ends the
/// session in the store at once (its checkpoint and signal closed); a later answer or resume is refused
/// with RVB-S010 and runs nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_14_cancelling_a_detached_waiting_session_ends_it_and_refuses_answers() {
    let h = Harness::new().await;
    let engine = h.engine().with_store(h.store.clone());
    let mut request = RunRequest::new(yaml(CONFIRM));
    request.session_id = Some("hitl-cancel-later".parse().unwrap());
    request.cascade_text = Some(CONFIRM.to_owned());
    let out = engine.run(request).await;
    h.writer.as_ref().unwrap().handle().flush().await.unwrap();
    assert_eq!(out.status, SessionStatus::Waiting);
    let id = out.session_id.clone();
    let cancelled = h.store.request_cancel(&id, "not needed").await.unwrap();
    assert_eq!(cancelled.status, SessionStatus::Cancelled);
    let stored = h.store.session(&id).await.unwrap();
    assert_eq!(stored.status, SessionStatus::Cancelled);
    assert!(stored.ended_at.is_some());
    let cps = h.store.checkpoints(Some(&id), None).await.unwrap();
    assert_eq!(cps[0].status, CheckpointStatus::Cancelled);
    let signals = h.store.signals(None).await.unwrap();
    assert!(
        signals.iter().all(|s| s.status == SignalStatus::Cancelled),
        "{signals:?}"
    );

    let answer = rvbbit_engine::human::send_answer(h.store.as_ref(), &id, "draft", &json!(true), "test")
        .await
        .unwrap_err();
    assert!(matches!(answer, Error::SessionCancelled { .. }), "{answer}");
    assert_eq!(answer.code().code, "RVB-S010");
    let resume = engine.resume(ResumeRequest::new(id.clone())).await.unwrap_err();
    assert!(matches!(resume, Error::SessionCancelled { .. }), "{resume}");
    assert_eq!(h.count(&id, EventKind::CellStart).await, 1);

    // A late record from a process that did not know (still `waiting`) cannot revive it.
    let mut late = stored.clone();
    late.status = SessionStatus::Waiting;
    late.ended_at = None;
    late.updated_at = late.updated_at.add_micros(1_000_000);
    h.store.put_sessions(&[late]).await.unwrap();
    assert_eq!(
        h.store.session(&id).await.unwrap().status,
        SessionStatus::Cancelled
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corpus_hitl_choice_demo_asks_twice_and_writes_for_both_answers() {
    let ask = |q: &str| {
        Reply::text(format!(
            "```json\n{{\"tool\": \"ask_human\", \"arguments\": {{\"question\": \"{q}\"}}}}\n```"
        ))
    };
    let server = TestServer::start(Script::sequence([
        ask("Which topic?"),
        Reply::text("Topic noted."),
        Reply::text("Done."),
        ask("Which audience?"),
        Reply::text("Audience noted."),
        Reply::text("Done."),
        Reply::text("# Rust for beginners"),
    ]))
    .await;
    let h = Harness::new().await;
    let engine = answering(&h, h.llm_engine(&server.base_url()));
    let session: SessionId = "hitl-choice-demo".parse().unwrap();
    let mut request = RunRequest::new(corpus("hitl_choice_demo.yaml"));
    request.session_id = Some(session.clone());
    let store = h.store.clone();
    let id = session.clone();
    let answerer = tokio::spawn(async move {
        let topic = answer_when_waiting(store.clone(), id.clone(), "get_topic".into(), json!("Rust")).await;
        let audience =
            answer_when_waiting(store, id, "get_audience".into(), json!({"text": "beginners"})).await;
        (topic.prompt, audience.prompt)
    });
    let out = engine.run(request).await;
    let (topic, audience) = answerer.await.unwrap();
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    assert_eq!(
        (topic.as_str(), audience.as_str()),
        ("Which topic?", "Which audience?")
    );
    assert_eq!(out.state["get_topic"], json!("Rust"));
    assert_eq!(out.state["get_audience"], json!("beginners"));
    assert_eq!(out.path, ["get_topic", "get_audience", "write_article"]);
    let last = server.bodies()[6].to_string();
    assert!(
        last.contains("about 'Rust' tailored for the audience: 'beginners'"),
        "{last}"
    );
    assert_eq!(h.count(&session, EventKind::CheckpointResolved).await, 2);
    server.shutdown().await;
}

/// Wait until `session` has a pending checkpoint other than those in `seen`; fire `value` on it.
async fn answer_next_visit(
    store: &Arc<dyn Store>,
    session: &SessionId,
    seen: &mut Vec<String>,
    value: Value,
) -> Question {
    let started = std::time::Instant::now();
    let cp = loop {
        let pending = store
            .checkpoints(Some(session), Some(CheckpointStatus::Pending))
            .await
            .unwrap();
        if let Some(cp) = pending.into_iter().find(|c| !seen.contains(&c.checkpoint_id)) {
            break cp;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no new question after {} answer(s)",
            seen.len()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    seen.push(cp.checkpoint_id.clone());
    let fired = store
        .signal_fire(&cp.signal_name, &value, "test", Some(session), Timestamp::now())
        .await
        .unwrap();
    assert_eq!(fired.len(), 1, "exactly this visit's signal waits");
    Question::from_ui_spec(&cp.ui_spec).unwrap()
}

/// A screen whose "Redo" route goes back to an earlier cell asks again on its next visit (a new signal
/// and checkpoint per visit) instead of looping on the answer already fired for the first visit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_screen_visited_again_asks_again_instead_of_reusing_the_fired_answer() {
    let h = Harness::new().await;
    let engine = answering(&h, h.engine());
    let cascade = yaml(
        r#"
cascade_id: redo_loop
cells:
  - name: draft
    tool: set_state
    inputs: {key: summary, value: "A draft"}
  - name: human_review
    htmx: |
      <p>{{ state.summary }}</p>
      {{ route_button("Ship it", "publish") }} {{ route_button("Redo", "draft") }}
    handoffs: [publish, draft]
  - name: publish
    tool: set_state
    inputs: {key: shipped, value: "yes"}
"#,
    );
    let session: SessionId = "hitl-redo".parse().unwrap();
    let mut request = RunRequest::new(cascade);
    request.session_id = Some(session.clone());
    let store = h.store.clone();
    let s = session.clone();
    let answerer = tokio::spawn(async move {
        let mut seen = Vec::new();
        let first = answer_next_visit(&store, &s, &mut seen, json!({"_route": "draft"})).await;
        let second = answer_next_visit(&store, &s, &mut seen, json!({"_route": "publish"})).await;
        (first, second)
    });
    let out = tokio::time::timeout(Duration::from_secs(60), engine.run(request))
        .await
        .expect("the run loops instead of asking again");
    h.writer.as_ref().unwrap().handle().flush().await.unwrap();
    let (first, second) = answerer.await.unwrap();
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    assert_eq!(
        out.path,
        ["draft", "human_review", "draft", "human_review", "publish"]
    );
    assert_ne!(first.signal_id, second.signal_id, "a new signal per visit");
    assert!(first.signal_id.is_some());
    let cps = h.store.checkpoints(Some(&session), None).await.unwrap();
    assert_eq!(cps.len(), 2, "one checkpoint per visit");
    assert!(cps.iter().all(|c| c.status == CheckpointStatus::Responded));
    let signals = h.store.signals(Some("human_review")).await.unwrap();
    assert_eq!(signals.len(), 2, "one signal per visit, no flood");
    assert!(signals.iter().all(|s| s.status == SignalStatus::Fired));
    assert_eq!(h.count(&session, EventKind::CheckpointCreated).await, 2);
    assert_eq!(out.state["shipped"], json!("yes"));
}
