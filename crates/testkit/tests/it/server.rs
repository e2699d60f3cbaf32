//! The server speaks the OpenAI protocol, follows its script, injects failures and counts.

use std::time::Duration;

use rvbbit_testkit::{Options, Reply, Script, TestServer};
use serde_json::{Value, json};

async fn post(server: &TestServer, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/chat/completions", server.base_url()))
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn ask(stream: bool) -> Value {
    json!({"model": "t/m", "stream": stream, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "ping"}]})
}

#[tokio::test]
async fn follows_the_script_then_echoes() {
    let server = TestServer::start(Script::sequence([Reply::text("scripted").usage(3, 2).cost(0.5)])).await;
    let first: Value = post(&server, ask(false)).await.json().await.unwrap();
    assert_eq!(first["choices"][0]["message"]["content"], "scripted");
    assert_eq!(
        first["usage"],
        json!({"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5, "cost": 0.5})
    );
    let second: Value = post(&server, ask(false)).await.json().await.unwrap();
    assert_eq!(second["choices"][0]["message"]["content"], "echo: ping");
    assert_eq!(server.requests(), 2);
    assert_eq!(server.bodies()[1]["messages"][0]["content"], "ping");
}

#[tokio::test]
async fn streams_sse_frames_ending_in_done() {
    let server = TestServer::start(Script::sequence([Reply::tool_call("c1", "f", json!({"a": 1}))])).await;
    let response = post(&server, ask(true)).await;
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let text = response.text().await.unwrap();
    let frames: Vec<&str> = text.split("\n\n").filter(|f| !f.is_empty()).collect();
    assert_eq!(frames.last(), Some(&"data: [DONE]"));
    let chunks: Vec<Value> = frames[..frames.len() - 1]
        .iter()
        .map(|f| serde_json::from_str(f.strip_prefix("data: ").unwrap()).unwrap())
        .collect();
    assert_eq!(
        chunks[1]["choices"][0]["delta"]["tool_calls"][0]["function"]["name"],
        "f"
    );
    assert!(
        chunks
            .iter()
            .any(|c| c["choices"][0]["finish_reason"] == "tool_calls")
    );
    assert!(
        chunks.last().unwrap()["usage"]["prompt_tokens"]
            .as_u64()
            .is_some()
    );
}

#[tokio::test]
async fn injects_rate_limits_and_errors() {
    let server = TestServer::start(Script::sequence([
        Reply::rate_limited(7),
        Reply::server_error(),
        Reply::malformed_json(),
    ]))
    .await;
    let limited = post(&server, ask(false)).await;
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "7");
    assert_eq!(post(&server, ask(false)).await.status(), 500);
    let malformed = post(&server, ask(false)).await.text().await.unwrap();
    assert!(serde_json::from_str::<Value>(&malformed).is_err());
}

#[tokio::test]
async fn truncation_breaks_the_connection() {
    let server = TestServer::start(Script::sequence([Reply::truncated()])).await;
    let response = post(&server, ask(false)).await;
    assert!(response.bytes().await.is_err());
}

#[tokio::test(start_paused = true)]
async fn counts_the_most_requests_in_flight() {
    let server =
        TestServer::start_with(Options::new(Script::echo()).latency(Duration::from_millis(100))).await;
    let calls = (0..5).map(|_| post(&server, ask(false)));
    let responses = futures::future::join_all(calls).await;
    assert!(responses.iter().all(|r| r.status() == 200));
    assert_eq!(server.max_concurrency(), 5);
}

#[tokio::test(start_paused = true)]
async fn shutdown_releases_hanging_requests() {
    let server = TestServer::start(Script::rule(|_| Reply::hang())).await;
    let url = format!("{}/chat/completions", server.base_url());
    let call = tokio::spawn(async move { reqwest::Client::new().post(url).json(&ask(false)).send().await });
    while server.requests() == 0 {
        tokio::task::yield_now().await;
    }
    server.shutdown().await;
    let response = call.await.unwrap().unwrap();
    assert_eq!(response.status(), 503);
}
