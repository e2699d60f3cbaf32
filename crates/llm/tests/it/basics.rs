//! The wire protocol: messages, system prompts, tools, JSON schema, images, sampling settings.

use rvbbit_llm::{ChatRequest, FinishReason, Message, Part, Provider, ToolDefinition};
use rvbbit_testkit::{Reply, Script, TestServer};
use serde_json::json;

use crate::support::{ask, client};

#[tokio::test]
async fn sends_messages_settings_and_key_and_reads_the_reply() {
    let server = TestServer::start(Script::sequence([
        Reply::text("Hello there").model("openai/gpt-4o-mini-2024")
    ]))
    .await;
    let request = ChatRequest::new(
        "openai/gpt-4o-mini",
        vec![
            Message::system("Be brief."),
            Message::user_with_images("What is this?", vec![Part::image_bytes("image/png", b"png")]),
        ],
    )
    .with_temperature(0.2)
    .with_max_tokens(50)
    .with_json_schema(
        "answer",
        json!({"type": "object", "properties": {"a": {"type": "string"}}}),
    );
    let reply = client(&server).chat(&request).await.unwrap();
    assert_eq!(reply.text, "Hello there");
    assert_eq!(reply.model, "openai/gpt-4o-mini-2024");
    assert_eq!(reply.model_requested, "openai/gpt-4o-mini");
    assert_eq!(reply.provider, "testkit");
    assert_eq!(reply.finish_reason, FinishReason::Stop);
    assert_eq!(reply.id.as_deref(), Some("gen-1"));

    let received = server.received();
    assert_eq!(
        received[0].authorization.as_deref(),
        Some("Bearer sk-test-secret")
    );
    let body = &received[0].body;
    assert_eq!(body["model"], "openai/gpt-4o-mini");
    assert_eq!(
        body["messages"][0],
        json!({"role": "system", "content": "Be brief."})
    );
    assert_eq!(
        body["messages"][1]["content"][1]["image_url"]["url"],
        "data:image/png;base64,cG5n"
    );
    assert_eq!(body["temperature"], 0.2);
    assert_eq!(body["max_tokens"], 50);
    assert_eq!(body["response_format"]["type"], "json_schema");
    assert_eq!(body["response_format"]["json_schema"]["strict"], true);
    assert!(body.get("stream").is_none());
}

#[tokio::test]
async fn tool_definitions_go_out_and_tool_calls_come_back() {
    let server = TestServer::start(Script::sequence([Reply::tool_call(
        "call_1",
        "get_weather",
        json!({"city": "Oslo"}),
    )
    .and_tool_call("call_2", "get_time", json!({"tz": "CET"}))]))
    .await;
    let tools = vec![
        ToolDefinition::new(
            "get_weather",
            "Weather for a city",
            json!({"type": "object", "properties": {"city": {"type": "string"}}}),
        ),
        ToolDefinition::new("get_time", "Time in a zone", json!({"type": "object"})),
    ];
    let reply = client(&server)
        .chat(&ask("m/x", "weather?").with_tools(tools))
        .await
        .unwrap();
    assert_eq!(reply.finish_reason, FinishReason::ToolCalls);
    assert_eq!(reply.tool_calls.len(), 2);
    assert_eq!(reply.tool_calls[0].id, "call_1");
    assert_eq!(
        reply.tool_calls[0].arguments_json().unwrap(),
        json!({"city": "Oslo"})
    );
    assert_eq!(reply.tool_calls[1].name, "get_time");
    let body = &server.bodies()[0];
    assert_eq!(body["tools"][0]["function"]["name"], "get_weather");
    assert_eq!(body["tools"][1]["type"], "function");
}

#[tokio::test]
async fn reasoning_suffix_is_stripped_and_sent_as_an_object() {
    let server = TestServer::start(Script::echo()).await;
    let reply = client(&server)
        .chat(&ask("anthropic/claude-sonnet-4::high(8000)", "think"))
        .await
        .unwrap();
    assert_eq!(reply.text, "echo: think");
    assert_eq!(reply.model_requested, "anthropic/claude-sonnet-4::high(8000)");
    let body = &server.bodies()[0];
    assert_eq!(body["model"], "anthropic/claude-sonnet-4");
    assert_eq!(body["reasoning"], json!({"max_tokens": 8000}));
}

#[tokio::test]
async fn ollama_models_go_to_the_local_endpoint_without_a_key() {
    let remote = TestServer::start(Script::echo()).await;
    let local = TestServer::start(Script::echo()).await;
    let mut settings = crate::support::settings(&remote);
    settings.ollama_base_url = local.base_url();
    let client = rvbbit_llm::Client::new(settings).unwrap();
    let reply = client.chat(&ask("ollama/llama3.2", "hi")).await.unwrap();
    assert_eq!(reply.provider, "ollama");
    assert_eq!((remote.requests(), local.requests()), (0, 1));
    let received = local.received();
    assert_eq!(received[0].body["model"], "llama3.2");
    assert_eq!(received[0].authorization, None);
}

#[tokio::test]
async fn environment_overrides_base_url_default_model_and_key() {
    let server = TestServer::start(Script::echo()).await;
    let url = server.base_url();
    // `from_env` reads the real environment; `from_lookup` is the same logic with an explicit map, so
    // tests need not mutate process-global state.
    let settings = rvbbit_llm::ProviderSettings::from_lookup(|name| match name {
        "RVBBIT_PROVIDER_BASE_URL" => Some(url.clone()),
        "RVBBIT_DEFAULT_MODEL" => Some("env/model".to_owned()),
        "OPENROUTER_API_KEY" => Some("sk-from-env".to_owned()),
        _ => None,
    });
    let client = rvbbit_llm::Client::new(settings).unwrap();
    let reply = client
        .chat(&ChatRequest::new("", vec![Message::user("which model?")]))
        .await
        .unwrap();
    assert_eq!(reply.model_requested, "env/model");
    let received = server.received();
    assert_eq!(received[0].body["model"], "env/model");
    assert_eq!(received[0].authorization.as_deref(), Some("Bearer sk-from-env"));
}
