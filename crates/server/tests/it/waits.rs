//! Humans in the loop over HTTP and in the Studio: pending questions, answers checked against them, and
//! resuming a session whose run stopped waiting.

use std::time::Duration;

use serde_json::{Value, json};

use crate::{ANSWER_WAIT, Running, assert_error_shape};

async fn first_wait(s: &Running, id: &str) -> Value {
    for _ in 0..200 {
        let (status, body) = s.get(&format!("/api/v1/sessions/{id}/waits")).await;
        // The question is registered in the store at once; the session's `waiting` record follows
        // through the buffered writer a moment later, so wait for both.
        if status == 200
            && body["waits"].as_array().is_some_and(|w| !w.is_empty())
            && body["status"] == "waiting"
        {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("session {id} never waited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_run_is_answered_over_the_api_and_continues() {
    let s = Running::start(|c| c).await;
    let (_, started) = s.post("/api/v1/runs", &json!({"cascade": "confirm.yaml"})).await;
    let id = started["session_id"].as_str().unwrap().to_owned();
    let waits = first_wait(&s, &id).await;
    assert_eq!(waits["status"], "waiting");
    let w = &waits["waits"][0];
    assert_eq!(w["cell_name"], "draft");
    assert_eq!(w["question"]["kind"], "confirmation");
    assert_eq!(w["question"]["prompt"], "Ship draft-1?");
    let signal = w["signal_name"].as_str().unwrap().to_owned();

    let (status, e) = s
        .post(
            &format!("/api/v1/sessions/{id}/signals/{signal}"),
            &json!({"value": "maybe"}),
        )
        .await;
    assert_eq!(status, 422, "{e}");
    assert_error_shape(&e, "RVB-C007", &s.root());
    let (status, e) = s
        .post(
            &format!("/api/v1/sessions/{id}/signals/nope"),
            &json!({"value": true}),
        )
        .await;
    assert_eq!(status, 404, "{e}");

    let (status, ok) = s
        .post(
            &format!("/api/v1/sessions/{id}/signals/{signal}"),
            &json!({"value": true}),
        )
        .await;
    assert_eq!(status, 200, "{ok}");
    let done = s.wait_finished(&id).await;
    assert_eq!(done["status"], "completed", "{done}");
    let (status, e) = s.post(&format!("/api/v1/sessions/{id}/resume"), &json!({})).await;
    assert_eq!(status, 409, "a finished session is not resumable: {e}");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_session_resumes_in_the_server_with_the_answer() {
    ANSWER_WAIT.with(|w| w.set(Duration::ZERO));
    let s = Running::start(|c| c).await;
    let (_, started) = s.post("/api/v1/runs", &json!({"cascade": "confirm.yaml"})).await;
    let id = started["session_id"].as_str().unwrap().to_owned();
    // Nobody answers in time: the run suspends and the session stays waiting.
    first_wait(&s, &id).await;
    for _ in 0..100 {
        let (_, sess) = s.get(&format!("/api/v1/sessions/{id}")).await;
        if sess["status"] == "waiting" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let (status, e) = s
        .post(
            &format!("/api/v1/sessions/{id}/resume"),
            &json!({"value": "perhaps"}),
        )
        .await;
    assert_eq!(status, 422, "{e}");
    let (status, r) = s
        .post(&format!("/api/v1/sessions/{id}/resume"), &json!({"value": true}))
        .await;
    assert_eq!(status, 202, "{r}");
    let done = s.wait_finished(&id).await;
    assert_eq!(done["status"], "completed", "{done}");
    // The first cell ran once: resume did not re-run it.
    let (_, events) = s.get(&format!("/api/v1/sessions/{id}/events?limit=5000")).await;
    let starts: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "cell_start")
        .map(|e| e["cell_name"].as_str().unwrap())
        .collect();
    assert_eq!(starts, ["draft", "publish"]);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_studio_shows_the_question_and_its_answer_form_continues_the_run() {
    ANSWER_WAIT.with(|w| w.set(Duration::ZERO));
    let s = Running::start(|c| c).await;
    let (_, started) = s.post("/api/v1/runs", &json!({"cascade": "confirm.yaml"})).await;
    let id = started["session_id"].as_str().unwrap().to_owned();
    first_wait(&s, &id).await;
    let page = s
        .http
        .get(s.url(&format!("/sessions/{id}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        .replace("&#x2f;", "/");
    assert!(page.contains("Ship draft-1?"), "{page}");
    assert!(page.contains("name=\"value\" value=\"true\">Approve"), "{page}");
    let signal = page
        .split("name=\"signal\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_owned();
    let host = s.base.trim_start_matches("http://").to_owned();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = http
        .post(s.url(&format!("/sessions/{id}/answer")))
        .header("origin", format!("http://{host}"))
        .form(&[
            ("signal", signal.as_str()),
            ("kind", "confirmation"),
            ("value", "true"),
            ("comment", "lgtm"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    let done = s.wait_finished(&id).await;
    assert_eq!(done["status"], "completed", "{done}");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_suspends_waiting_runs_instead_of_cancelling_them() {
    let s = Running::start(|c| c.with_shutdown_grace(Duration::from_secs(1))).await;
    let (_, started) = s.post("/api/v1/runs", &json!({"cascade": "confirm.yaml"})).await;
    let id = started["session_id"].as_str().unwrap().to_owned();
    first_wait(&s, &id).await;
    let store = s.store.clone();
    s.shutdown().await;
    // The run let go of its wait: the session is still waiting (not cancelled), its question pending,
    // so a restarted server (or `rvbbit resume`) continues it.
    let session = store.session(&id.parse().unwrap()).await.unwrap();
    assert_eq!(session.status.as_str(), "waiting");
    let pending = store
        .checkpoints(
            Some(&id.parse().unwrap()),
            Some(rvbbit_store::CheckpointStatus::Pending),
        )
        .await
        .unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].cell_name, "draft");
}

/// Two `POST …/resume` at once for one answered, suspended session: the claim (a compare-and-set in the
/// store) lets exactly one continue it (202); the other gets 409 RVB-S006 at once and runs nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_resumes_continue_the_session_once() {
    ANSWER_WAIT.with(|w| w.set(Duration::ZERO));
    let s = Running::start(|c| c).await;
    let (_, started) = s.post("/api/v1/runs", &json!({"cascade": "confirm.yaml"})).await;
    let id = started["session_id"].as_str().unwrap().to_owned();
    let waits = first_wait(&s, &id).await;
    let signal = waits["waits"][0]["signal_name"].as_str().unwrap().to_owned();
    for _ in 0..100 {
        let (_, sess) = s.get(&format!("/api/v1/sessions/{id}")).await;
        if sess["status"] == "waiting" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let (status, ok) = s
        .post(
            &format!("/api/v1/sessions/{id}/signals/{signal}"),
            &json!({"value": true}),
        )
        .await;
    assert_eq!(status, 200, "{ok}");
    let path = format!("/api/v1/sessions/{id}/resume");
    let empty = json!({});
    let ((a, body_a), (b, body_b)) = tokio::join!(s.post(&path, &empty), s.post(&path, &empty));
    let mut statuses = [a, b];
    statuses.sort_unstable();
    assert_eq!(statuses, [202, 409], "{body_a} / {body_b}");
    let refused = if a == 409 { &body_a } else { &body_b };
    assert_eq!(refused["code"], "RVB-S006", "{refused}");
    let done = s.wait_finished(&id).await;
    assert_eq!(done["status"], "completed", "{done}");
    let (_, events) = s.get(&format!("/api/v1/sessions/{id}/events?limit=5000")).await;
    let publishes = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "cell_start" && e["cell_name"] == "publish")
        .count();
    assert_eq!(publishes, 1, "the cell after the wait ran once");
    s.shutdown().await;
}

/// On PostgreSQL a run waiting in the server wakes when its signal is answered (LISTEN/NOTIFY), not on
/// its poll timer: with polling once a minute, the answered run still finishes within seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_a_waiting_run_wakes_when_answered_not_when_it_polls() {
    crate::ANSWER_EVERY.with(|w| w.set(Duration::from_secs(60)));
    crate::ANSWER_WAIT.with(|w| w.set(Duration::from_secs(120)));
    let url = tokio::task::spawn_blocking(rvbbit_testkit::postgres::fresh_database)
        .await
        .unwrap();
    let s = Running::start_on(&url, |c| c).await;
    let (_, started) = s.post("/api/v1/runs", &json!({"cascade": "confirm.yaml"})).await;
    let id = started["session_id"].as_str().unwrap().to_owned();
    let waits = first_wait(&s, &id).await;
    let signal = waits["waits"][0]["signal_name"].as_str().unwrap().to_owned();
    // Answered through another handle, as another process would.
    let other = rvbbit_store::open(&url, std::path::Path::new("/")).await.unwrap();
    let sid: rvbbit_core::SessionId = id.parse().unwrap();
    rvbbit_engine::human::send_answer(other.as_ref(), &sid, &signal, &json!(true), "elsewhere")
        .await
        .unwrap();
    // `wait_finished` gives up after about 5 s, far less than the 60 s poll: only the notification
    // can have woken the run.
    let done = s.wait_finished(&id).await;
    assert_eq!(done["status"], "completed", "{done}");
    s.shutdown().await;
}
