//! Record a multi-turn tool-calling exchange against the server, stop the server, replay it from the
//! file: identical results, zero cost, and a clear error for a request that was never recorded.

use rvbbit_core::MicroUsd;
use rvbbit_llm::{
    ChatRequest, ChatResponse, Error, Message, Provider, Recorder, ReplayProvider, ToolDefinition,
    collect_stream,
};
use rvbbit_testkit::{Reply, Script, TestServer};
use serde_json::json;

use crate::support::client;

/// Ask about the weather, run the tools the model calls, and get the final answer (streamed).
async fn weather_exchange(provider: &dyn Provider, question: &str) -> Result<Vec<ChatResponse>, Error> {
    let tools = vec![ToolDefinition::new(
        "get_weather",
        "Current weather for a city",
        json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
    )];
    let mut messages = vec![Message::system("You are a weather bot."), Message::user(question)];
    let first = provider
        .chat(&ChatRequest::new("openai/gpt-4o-mini", messages.clone()).with_tools(tools.clone()))
        .await?;
    messages.push(first.to_message());
    for call in &first.tool_calls {
        let city = call.arguments_json().unwrap()["city"]
            .as_str()
            .unwrap()
            .to_owned();
        messages.push(Message::tool_result(&call.id, format!("sunny, 21°C in {city}")));
    }
    let request = ChatRequest::new("openai/gpt-4o-mini", messages).with_tools(tools);
    let second = collect_stream(provider.chat_stream(&request).await?).await?;
    Ok(vec![first, second])
}

#[tokio::test]
async fn record_then_replay_a_tool_exchange_with_the_server_stopped() {
    let server = TestServer::start(Script::sequence([
        Reply::tool_call("call_1", "get_weather", json!({"city": "Oslo"}))
            .and_tool_call("call_2", "get_weather", json!({"city": "Paris"}))
            .usage(120, 30)
            .cost(0.0002),
        Reply::text("Sunny in both Oslo and Paris.")
            .usage(200, 12)
            .cost(0.0003),
    ]))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("weather.jsonl");

    let recorder = Recorder::create(client(&server), &file).await.unwrap();
    let recorded = weather_exchange(&recorder, "Weather in Oslo and Paris?")
        .await
        .unwrap();
    assert_eq!(recorded[0].tool_calls.len(), 2);
    assert_eq!(recorded[1].text, "Sunny in both Oslo and Paris.");
    assert_eq!(server.requests(), 2);
    server.shutdown().await;

    let replay = ReplayProvider::open(&file).await.unwrap();
    assert_eq!(replay.len(), 2);
    let replayed = weather_exchange(&replay, "Weather in Oslo and Paris?")
        .await
        .unwrap();
    for (live, again) in recorded.iter().zip(&replayed) {
        assert_eq!(again.text, live.text);
        assert_eq!(again.tool_calls, live.tool_calls);
        assert_eq!(again.usage, live.usage);
        assert_eq!(again.finish_reason, live.finish_reason);
        assert_eq!(again.model, live.model);
        // A replayed reply is free; what the live call cost is kept as avoided.
        assert_eq!(again.cost.amount, Some(MicroUsd::ZERO));
        assert_eq!(again.cost.avoided, live.cost.amount);
    }
    assert_eq!(replayed[1].cost.avoided, Some(MicroUsd::from_micros(300)));
}

#[tokio::test]
async fn a_request_missing_from_the_recording_is_a_clear_error() {
    let server = TestServer::start(Script::sequence([Reply::tool_call(
        "call_1",
        "get_weather",
        json!({"city": "Oslo"}),
    )]))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("short.jsonl");
    let recorder = Recorder::create(client(&server), &file).await.unwrap();
    recorder
        .chat(&ChatRequest::new(
            "openai/gpt-4o-mini",
            vec![Message::user("Weather in Oslo?")],
        ))
        .await
        .unwrap();
    server.shutdown().await;

    let replay = ReplayProvider::open(&file).await.unwrap();
    let err = replay
        .chat(&ChatRequest::new(
            "openai/gpt-4o-mini",
            vec![Message::user("Weather in Rome?")],
        ))
        .await
        .unwrap_err();
    let Error::ReplayMiss {
        hash,
        summary,
        file: named,
        model,
    } = &err
    else {
        panic!("unexpected {err:?}")
    };
    assert_eq!(hash.len(), 64);
    assert_eq!(summary, "Weather in Rome?");
    assert_eq!(model, "openai/gpt-4o-mini");
    assert!(named.ends_with("short.jsonl"));
    assert_eq!(err.code().code, "RVB-L007");
    assert!(err.to_string().contains("Weather in Rome?"));
}
