//! SSE streaming: text and tool-call deltas, usage and cost at the end, truncation, and fallback when
//! a stream fails before its first token.

use futures::StreamExt;
use rvbbit_core::MicroUsd;
use rvbbit_llm::{ChatStream, CostStatus, Error, FinishReason, Provider, StreamEvent, collect_stream};
use rvbbit_testkit::{Reply, Script, TestServer};
use serde_json::json;

use crate::support::{ask, client};

async fn events(mut stream: ChatStream) -> Vec<Result<StreamEvent, Error>> {
    let mut out = Vec::new();
    while let Some(event) = stream.next().await {
        out.push(event);
    }
    out
}

#[tokio::test]
async fn streams_text_deltas_then_the_assembled_reply() {
    let server = TestServer::start(Script::sequence([Reply::text("Hello, streaming world")
        .usage(12, 5)
        .cost(0.00042)]))
    .await;
    let stream = client(&server).chat_stream(&ask("m/x", "hi")).await.unwrap();
    let events = events(stream).await;
    let texts: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            Ok(StreamEvent::Text(t)) => Some(t.clone()),
            _ => None,
        })
        .collect();
    assert!(texts.len() >= 2, "several deltas: {texts:?}");
    assert_eq!(texts.concat(), "Hello, streaming world");
    let Some(Ok(StreamEvent::Done(reply))) = events.last() else {
        panic!("no Done: {events:?}")
    };
    assert_eq!(reply.text, "Hello, streaming world");
    assert_eq!(reply.usage.total(), 17);
    assert_eq!(reply.cost.amount, Some(MicroUsd::from_micros(420)));
    assert_eq!(reply.cost.status, CostStatus::Exact);
    let body = &server.bodies()[0];
    assert_eq!(body["stream"], true);
    assert_eq!(body["stream_options"]["include_usage"], true);
}

#[tokio::test]
async fn streams_tool_call_deltas_and_assembles_the_calls() {
    let server = TestServer::start(Script::sequence([Reply::tool_call(
        "call_a",
        "search",
        json!({"query": "rust sse", "limit": 3}),
    )
    .and_tool_call("call_b", "fetch", json!({"url": "https://example.com"}))]))
    .await;
    let events = events(client(&server).chat_stream(&ask("m/x", "find")).await.unwrap()).await;
    let deltas: Vec<(usize, Option<String>, Option<String>, String)> = events
        .iter()
        .filter_map(|e| match e {
            Ok(StreamEvent::ToolCallDelta {
                index,
                id,
                name,
                arguments,
            }) => Some((*index, id.clone(), name.clone(), arguments.clone())),
            _ => None,
        })
        .collect();
    assert!(
        deltas.len() >= 4,
        "ids and names first, then argument fragments: {deltas:?}"
    );
    assert_eq!(deltas[0].1.as_deref(), Some("call_a"));
    assert_eq!(deltas[0].2.as_deref(), Some("search"));
    let first_args: String = deltas.iter().filter(|d| d.0 == 0).map(|d| d.3.as_str()).collect();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&first_args).unwrap(),
        json!({"query": "rust sse", "limit": 3})
    );
    let Some(Ok(StreamEvent::Done(reply))) = events.last() else {
        panic!("no Done")
    };
    assert_eq!(reply.finish_reason, FinishReason::ToolCalls);
    assert_eq!(reply.tool_calls.len(), 2);
    assert_eq!(reply.tool_calls[1].id, "call_b");
    assert_eq!(
        reply.tool_calls[1].arguments_json().unwrap(),
        json!({"url": "https://example.com"})
    );
}

#[tokio::test(start_paused = true)]
async fn a_stream_failing_before_the_first_token_falls_back() {
    let server = TestServer::start(Script::rule(|body| {
        if body["model"] == "a/flaky" {
            Reply::truncated()
        } else {
            Reply::text("from the fallback")
        }
    }))
    .await;
    let request = ask("a/flaky", "hi").with_fallbacks(["b/steady"]);
    let reply = collect_stream(client(&server).chat_stream(&request).await.unwrap())
        .await
        .unwrap();
    assert_eq!(reply.text, "from the fallback");
    assert_eq!(reply.model_requested, "b/steady");
    // The flaky model was retried (1 + 3) before the chain moved on.
    assert_eq!(server.requests(), 5);
}

#[tokio::test(start_paused = true)]
async fn a_stream_cut_mid_reply_is_an_error_not_a_silent_end() {
    let server = TestServer::start(Script::sequence([Reply::truncated_after(2)])).await;
    let events = events(
        client(&server)
            .chat_stream(&ask("m/x", "hi").with_fallbacks(["b/other"]))
            .await
            .unwrap(),
    )
    .await;
    assert!(
        matches!(events.first(), Some(Ok(StreamEvent::Text(_)))),
        "{events:?}"
    );
    let last = events.last().unwrap().as_ref().unwrap_err();
    assert!(matches!(last, Error::InvalidResponse { .. }), "{last:?}");
    assert_eq!(last.code().code, "RVB-L006");
    // Tokens were already delivered: no retry, no fallback.
    assert_eq!(server.requests(), 1);
}

#[tokio::test(start_paused = true)]
async fn stream_errors_before_the_first_token_are_typed() {
    let server = TestServer::start(Script::sequence([Reply::error(401, "no key")])).await;
    let err = client(&server)
        .chat_stream(&ask("m/x", "hi"))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, Error::Auth { status: 401, .. }));
    let server = TestServer::start(Script::rule(|_| Reply::malformed_json())).await;
    let err = client(&server)
        .chat_stream(&ask("m/x", "hi"))
        .await
        .err()
        .unwrap();
    assert!(
        matches!(&err, Error::InvalidResponse { message, .. } if message.contains("not JSON")),
        "{err:?}"
    );
    assert_eq!(server.requests(), 4);
}
