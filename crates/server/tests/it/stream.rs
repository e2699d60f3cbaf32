//! Live event streams (SSE): replay, live, completion, resume; cancel; graceful shutdown.

use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};

use crate::Running;

/// One parsed SSE frame.
#[derive(Debug, Clone)]
struct Frame {
    id: Option<i64>,
    event: String,
    data: Value,
}

/// Read frames from an SSE response until a `complete` event (or the stream ends).
async fn frames(response: reqwest::Response) -> Vec<Frame> {
    let mut out = Vec::new();
    let mut buffer = String::new();
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        buffer.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let mut frame = Frame {
                id: None,
                event: "message".into(),
                data: Value::Null,
            };
            let mut data = String::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    frame.id = v.trim().parse().ok();
                } else if let Some(v) = line.strip_prefix("event:") {
                    frame.event = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
            if data.is_empty() {
                continue; // keep-alive comment
            }
            frame.data = serde_json::from_str(&data).unwrap();
            let done = frame.event == "complete";
            out.push(frame);
            if done {
                return out;
            }
        }
    }
    out
}

async fn open(s: &Running, id: &str, last_event_id: Option<i64>) -> reqwest::Response {
    let mut req = s
        .http
        .get(s.url(&format!("/api/v1/sessions/{id}/events")))
        .header("accept", "text/event-stream");
    if let Some(c) = last_event_id {
        req = req.header("last-event-id", c.to_string());
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_follows_a_run_live_then_completes_and_resumes_without_loss() {
    let s = Running::start(|c| c).await;
    let (status, started) = s.post("/api/v1/runs", &json!({"cascade": "slow.yaml"})).await;
    assert_eq!(status, 202, "{started}");
    let id = started["session_id"].as_str().unwrap().to_owned();
    let all = frames(open(&s, &id, None).await).await;
    assert_eq!(all[0].event, "connected");
    let last = all.last().unwrap();
    assert_eq!(last.event, "complete");
    assert_eq!(last.data["status"], "completed");
    let events: Vec<&Frame> = all.iter().filter(|f| f.id.is_some()).collect();
    let kinds: Vec<&str> = events.iter().map(|f| f.event.as_str()).collect();
    assert_eq!(kinds.first(), Some(&"cascade_start"));
    assert_eq!(kinds.last(), Some(&"cascade_complete"));
    assert_eq!(kinds.iter().filter(|k| **k == "cell_complete").count(), 2);
    let ids: Vec<i64> = events.iter().map(|f| f.id.unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase: {ids:?}");
    assert_eq!(last.data["cursor"], *ids.last().unwrap());
    for f in &events {
        assert_eq!(f.data["session_id"], id.as_str());
        assert_eq!(f.data["store_seq"], f.id.unwrap());
    }

    // Resume after the third event: exactly the rest, then `complete`.
    let resumed = frames(open(&s, &id, Some(ids[2])).await).await;
    let resumed_ids: Vec<i64> = resumed.iter().filter_map(|f| f.id).collect();
    assert_eq!(resumed_ids, ids[3..]);
    assert_eq!(resumed.last().unwrap().event, "complete");
    // `?cursor=` works the same way.
    let r = s
        .http
        .get(s.url(&format!(
            "/api/v1/sessions/{id}/events?cursor={}",
            ids[ids.len() - 2]
        )))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    let tail = frames(r).await;
    assert_eq!(
        tail.iter().filter_map(|f| f.id).collect::<Vec<_>>(),
        ids[ids.len() - 1..]
    );
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_arrive_while_the_run_is_still_going() {
    let s = Running::start(|c| c).await;
    let (_, started) = s.post("/api/v1/runs", &json!({"cascade": "slow.yaml"})).await;
    let id = started["session_id"].as_str().unwrap().to_owned();
    let response = open(&s, &id, None).await;
    let mut body = response.bytes_stream();
    let mut text = String::new();
    // Read until the first cell completes (after ~0.4 s); the run has a second 0.4 s cell to go.
    while !text.contains("event: cell_complete") && !text.contains("event:cell_complete") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), body.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let (_, session) = s.get(&format!("/api/v1/sessions/{id}")).await;
    assert_eq!(
        session["status"], "running",
        "the event came live, before the end: {session}"
    );
    assert!(!text.contains("cascade_complete"));
    drop(body);
    s.wait_finished(&id).await;
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_run_marks_it_cancelled_and_ends_its_stream() {
    let s = Running::start(|c| c).await;
    let (_, started) = s.post("/api/v1/runs", &json!({"cascade": "slow.yaml"})).await;
    let id = started["session_id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let (status, c) = s.post(&format!("/api/v1/sessions/{id}/cancel"), &json!({})).await;
    assert_eq!(status, 202, "{c}");
    assert_eq!(c["cancel"], "signalled");
    let frames = frames(open(&s, &id, None).await).await;
    assert_eq!(frames.last().unwrap().data["status"], "cancelled");
    assert!(
        frames.iter().any(|f| f.event == "cascade_cancelled"),
        "{frames:?}"
    );
    let session = s.wait_finished(&id).await;
    assert_eq!(session["status"], "cancelled");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_in_flight_runs_finish_within_the_grace_period() {
    let s = Running::start(|c| c.with_shutdown_grace(Duration::from_secs(10))).await;
    let (_, started) = s.post("/api/v1/runs", &json!({"cascade": "slow.yaml"})).await;
    let id = started["session_id"].as_str().unwrap().to_owned();
    let store = s.store.clone();
    s.shutdown().await;
    let session = store.session(&id.parse().unwrap()).await.unwrap();
    assert_eq!(session.status.as_str(), "completed");
    assert!(session.ended_at.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_cancels_runs_that_outlive_the_grace_period() {
    let s = Running::start(|c| c.with_shutdown_grace(Duration::from_millis(100))).await;
    let (_, started) = s.post("/api/v1/runs", &json!({"cascade": "slow.yaml"})).await;
    let id = started["session_id"].as_str().unwrap().to_owned();
    let store = s.store.clone();
    s.shutdown().await;
    let session = store.session(&id.parse().unwrap()).await.unwrap();
    assert_eq!(session.status.as_str(), "cancelled");
    let events = store
        .events(&rvbbit_store::EventFilter {
            session_id: Some(id.parse().unwrap()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(events.last().unwrap().event.kind.as_str(), "cascade_cancelled");
}

/// Read WebSocket text frames as JSON until `complete` (or the socket ends).
async fn ws_frames(url: &str) -> Vec<Value> {
    use tokio_tungstenite::tungstenite::Message;
    let (mut socket, response) = tokio_tungstenite::connect_async(url).await.unwrap();
    assert_eq!(response.status().as_u16(), 101);
    let mut out = Vec::new();
    while let Some(msg) = tokio::time::timeout(Duration::from_secs(10), socket.next())
        .await
        .unwrap()
    {
        match msg.unwrap() {
            Message::Text(t) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                let done = v["type"] == "complete";
                out.push(v);
                if done {
                    break;
                }
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_carries_the_same_stream_and_resumes_by_cursor() {
    let s = Running::start(|c| c).await;
    let (_, started) = s.post("/api/v1/runs", &json!({"cascade": "slow.yaml"})).await;
    let id = started["session_id"].as_str().unwrap().to_owned();
    let ws_base = s.base.replace("http://", "ws://");
    let all = ws_frames(&format!("{ws_base}/api/v1/sessions/{id}/events")).await;
    assert_eq!(all[0]["type"], "connected");
    let last = all.last().unwrap();
    assert_eq!(last["type"], "complete");
    assert_eq!(last["status"], "completed");
    let events: Vec<&Value> = all.iter().filter(|f| f["type"] == "event").collect();
    assert_eq!(events[0]["event"]["kind"], "cascade_start");
    assert_eq!(events.last().unwrap()["event"]["kind"], "cascade_complete");
    let cursors: Vec<i64> = events.iter().map(|f| f["cursor"].as_i64().unwrap()).collect();
    assert!(cursors.windows(2).all(|w| w[0] < w[1]));
    // The same events as the SSE stream.
    let sse = frames(open(&s, &id, None).await).await;
    let sse_ids: Vec<i64> = sse.iter().filter_map(|f| f.id).collect();
    assert_eq!(sse_ids, cursors);
    // Resume with ?cursor=.
    let tail = ws_frames(&format!(
        "{ws_base}/api/v1/sessions/{id}/events?cursor={}",
        cursors[1]
    ))
    .await;
    let tail_cursors: Vec<i64> = tail
        .iter()
        .filter(|f| f["type"] == "event")
        .map(|f| f["cursor"].as_i64().unwrap())
        .collect();
    assert_eq!(tail_cursors, cursors[2..]);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_open_websockets_with_the_sign_in_cookie_but_not_from_other_sites() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let s = Running::start(|c| c.with_required_key(true)).await;
    let key = rvbbit_server::auth::generate("browser");
    s.store.key_insert(&key.key).await.unwrap();
    let (_, started) = {
        let r = s
            .http
            .post(s.url("/api/v1/runs"))
            .bearer_auth(&key.secret)
            .json(&json!({"cascade": "slow.yaml"}))
            .send()
            .await
            .unwrap();
        (r.status(), r.json::<Value>().await.unwrap())
    };
    let id = started["session_id"].as_str().unwrap().to_owned();
    let host = s.base.trim_start_matches("http://").to_owned();
    let url = format!("ws://{host}/api/v1/sessions/{id}/events");
    let request = |origin: Option<&str>, cookie: bool| {
        let mut r = url.as_str().into_client_request().unwrap();
        if let Some(o) = origin {
            r.headers_mut().insert("origin", o.parse().unwrap());
        }
        if cookie {
            r.headers_mut().insert(
                "cookie",
                format!("{}={}", rvbbit_server::auth::COOKIE, key.secret)
                    .parse()
                    .unwrap(),
            );
        }
        r
    };
    // No key at all: refused before the upgrade.
    let err = tokio_tungstenite::connect_async(request(Some(&format!("http://{host}")), false))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
    // The Studio page's own origin with the sign-in cookie: the stream runs to completion.
    let (mut socket, response) =
        tokio_tungstenite::connect_async(request(Some(&format!("http://{host}")), true))
            .await
            .unwrap();
    assert_eq!(response.status().as_u16(), 101);
    let mut last = Value::Null;
    while let Some(Ok(msg)) = tokio::time::timeout(Duration::from_secs(10), socket.next())
        .await
        .unwrap()
    {
        if let tokio_tungstenite::tungstenite::Message::Text(t) = msg {
            last = serde_json::from_str(&t).unwrap();
            if last["type"] == "complete" {
                break;
            }
        }
    }
    assert_eq!(last["type"], "complete", "{last}");
    // Another site's page, even with the cookie: refused (cross-site WebSocket hijacking).
    let err = tokio_tungstenite::connect_async(request(Some("https://evil.example.net"), true))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("403"), "{err}");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyless_loopback_server_refuses_websockets_from_other_sites() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let s = Running::start(|c| c).await;
    let (_, started) = s
        .post(
            "/api/v1/runs",
            &json!({"cascade": "three.yaml", "input": {"name": "x"}}),
        )
        .await;
    let id = started["session_id"].as_str().unwrap().to_owned();
    let ws_base = s.base.replace("http://", "ws://");
    let mut r = format!("{ws_base}/api/v1/sessions/{id}/events")
        .into_client_request()
        .unwrap();
    r.headers_mut()
        .insert("origin", "https://evil.example.net".parse().unwrap());
    let err = tokio_tungstenite::connect_async(r).await.unwrap_err();
    assert!(err.to_string().contains("403"), "{err}");
    s.shutdown().await;
}

/// On PostgreSQL a live stream follows LISTEN/NOTIFY, not its poll timer: with polling set to once a
/// minute, a run is still followed to its end in seconds, and events written by another process (here
/// another store handle with its own connections) reach the stream the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_a_stream_is_woken_by_notifications_not_by_its_poll_timer() {
    let url = tokio::task::spawn_blocking(rvbbit_testkit::postgres::fresh_database)
        .await
        .unwrap();
    let s = Running::start_on(&url, |mut c| {
        c.poll_interval = Duration::from_secs(60);
        c
    })
    .await;
    let (status, started) = s.post("/api/v1/runs", &json!({"cascade": "slow.yaml"})).await;
    assert_eq!(status, 202, "{started}");
    let id = started["session_id"].as_str().unwrap().to_owned();
    let all = tokio::time::timeout(Duration::from_secs(20), async {
        frames(open(&s, &id, None).await).await
    })
    .await
    .expect("followed to the end without waiting for the 60 s poll");
    let last = all.last().unwrap();
    assert_eq!(
        (last.event.as_str(), &last.data["status"]),
        ("complete", &json!("completed"))
    );
    let kinds: Vec<&str> = all
        .iter()
        .filter(|f| f.id.is_some())
        .map(|f| f.event.as_str())
        .collect();
    assert_eq!(kinds.first(), Some(&"cascade_start"));
    assert_eq!(kinds.last(), Some(&"cascade_complete"));

    // Another writer: a session recorded through a second handle, followed live from the first event.
    let other = rvbbit_store::open(&url, std::path::Path::new("/")).await.unwrap();
    let sid: rvbbit_core::SessionId = "from-elsewhere".parse().unwrap();
    other
        .put_sessions(&[rvbbit_store::Session::new(sid.clone())])
        .await
        .unwrap();
    let first = rvbbit_core::Event::new(rvbbit_core::EventKind::CascadeStart, sid.clone(), 0);
    other.append(&[first]).await.unwrap();
    let response = open(&s, "from-elsewhere", None).await;
    let mut body = response.bytes_stream();
    let mut text = String::new();
    while !text.contains("cascade_start") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), body.next())
            .await
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
    let written = std::time::Instant::now();
    let mut second = rvbbit_core::Event::new(rvbbit_core::EventKind::CellStart, sid.clone(), 1);
    second.cell_name = Some("elsewhere".into());
    other.append(&[second]).await.unwrap();
    while !text.contains("cell_start") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), body.next())
            .await
            .expect("the second event arrives without waiting for the 60 s poll")
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
    eprintln!(
        "event written by another handle reached the stream in {:?}",
        written.elapsed()
    );
    s.shutdown().await;
}
