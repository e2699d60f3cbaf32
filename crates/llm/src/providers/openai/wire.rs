//! The OpenAI Chat Completions wire format: encoding requests, decoding replies and usage blocks.

use serde_json::{Map, Value, json};

use rvbbit_core::MicroUsd;

use crate::cost::Cost;
use crate::model::ModelRef;
use crate::request::{ChatRequest, Message, Part, Reasoning, ResponseFormat, Role, ToolChoice};
use crate::response::{ChatResponse, FinishReason, Usage};

/// Options that depend on the endpoint rather than the request.
#[derive(Clone, Copy, Debug)]
pub(crate) struct EncodeOptions {
    pub(crate) stream: bool,
    pub(crate) request_usage_cost: bool,
}

pub(crate) fn encode_request(req: &ChatRequest, model: &ModelRef, opts: EncodeOptions) -> Value {
    let mut body = Map::new();
    body.insert("model".into(), Value::String(model.id.clone()));
    body.insert(
        "messages".into(),
        Value::Array(req.messages.iter().map(encode_message).collect()),
    );
    if !req.tools.is_empty() {
        let tools = req
            .tools
            .iter()
            .map(|t| {
                json!({"type": "function", "function": {
                    "name": t.name, "description": t.description, "parameters": t.parameters}})
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    if let Some(choice) = &req.tool_choice {
        let value = match choice {
            ToolChoice::Auto => json!("auto"),
            ToolChoice::None => json!("none"),
            ToolChoice::Required => json!("required"),
            ToolChoice::Function(name) => json!({"type": "function", "function": {"name": name}}),
        };
        body.insert("tool_choice".into(), value);
    }
    if let Some(format) = &req.response_format {
        let value = match format {
            ResponseFormat::JsonObject => json!({"type": "json_object"}),
            ResponseFormat::JsonSchema { name, schema, strict } => json!({"type": "json_schema",
                "json_schema": {"name": name, "schema": schema, "strict": strict}}),
        };
        body.insert("response_format".into(), value);
    }
    let mut put = |key: &str, value: Option<Value>| {
        if let Some(v) = value {
            body.insert(key.into(), v);
        }
    };
    put("temperature", req.temperature.map(Value::from));
    put("top_p", req.top_p.map(Value::from));
    put("max_tokens", req.max_tokens.map(Value::from));
    put("seed", req.seed.map(Value::from));
    put("stop", (!req.stop.is_empty()).then(|| json!(req.stop)));
    put(
        "reasoning",
        req.reasoning
            .as_ref()
            .or(model.reasoning.as_ref())
            .map(encode_reasoning),
    );
    if opts.stream {
        put("stream", Some(Value::Bool(true)));
        put("stream_options", Some(json!({"include_usage": true})));
    }
    if opts.request_usage_cost {
        put("usage", Some(json!({"include": true})));
    }
    Value::Object(body)
}

fn encode_reasoning(r: &Reasoning) -> Value {
    let mut out = Map::new();
    // The spec: a token budget wins over an effort when both are given.
    if let Some(max) = r.max_tokens {
        out.insert("max_tokens".into(), max.into());
    } else if let Some(effort) = &r.effort {
        out.insert("effort".into(), effort.clone().into());
    } else {
        out.insert("enabled".into(), true.into());
    }
    if r.exclude {
        out.insert("exclude".into(), true.into());
    }
    Value::Object(out)
}

fn encode_message(m: &Message) -> Value {
    let role = match m.role {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool => "tool",
    };
    let mut out = Map::new();
    out.insert("role".into(), role.into());
    let content = match m.content.as_slice() {
        [] => Value::Null,
        [Part::Text { text }] => Value::String(text.clone()),
        parts => Value::Array(
            parts
                .iter()
                .map(|p| match p {
                    Part::Text { text } => json!({"type": "text", "text": text}),
                    Part::Image { url } => json!({"type": "image_url", "image_url": {"url": url}}),
                })
                .collect(),
        ),
    };
    // Assistant messages that only call tools send `content: null`; other roles need a string.
    if content.is_null() && m.role != Role::Assistant {
        out.insert("content".into(), Value::String(String::new()));
    } else {
        out.insert("content".into(), content);
    }
    if !m.tool_calls.is_empty() {
        let calls = m
            .tool_calls
            .iter()
            .map(|c| json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}))
            .collect();
        out.insert("tool_calls".into(), Value::Array(calls));
    }
    if let Some(id) = &m.tool_call_id {
        out.insert("tool_call_id".into(), id.clone().into());
    }
    if let Some(name) = &m.name {
        out.insert("name".into(), name.clone().into());
    }
    Value::Object(out)
}

/// Token classes and the inline cost from a `usage` block.
pub(crate) fn decode_usage(usage: &Value) -> (Usage, Option<MicroUsd>) {
    let n = |v: Option<&Value>| v.and_then(Value::as_u64).unwrap_or(0);
    let prompt = n(usage.get("prompt_tokens"));
    let completion = n(usage.get("completion_tokens"));
    let details = usage.get("prompt_tokens_details");
    let cached = n(details.and_then(|d| d.get("cached_tokens")));
    let write = n(details
        .and_then(|d| d.get("cache_write_tokens"))
        .or_else(|| usage.get("cache_creation_input_tokens")));
    let reasoning = n(usage
        .get("completion_tokens_details")
        .and_then(|d| d.get("reasoning_tokens")));
    let tokens = Usage::new(
        prompt.saturating_sub(cached + write),
        cached,
        write,
        completion.saturating_sub(reasoning),
        reasoning,
    );
    let cost = usage
        .get("cost")
        .and_then(Value::as_f64)
        .and_then(MicroUsd::from_usd_f64);
    (tokens, cost)
}

/// The message of an `{"error": {...}}` object, when the body is one.
pub(crate) fn error_message(body: &Value) -> Option<String> {
    let err = body.get("error")?;
    Some(match err.get("message").and_then(Value::as_str) {
        Some(msg) => msg.to_owned(),
        None => err.as_str().map_or_else(|| err.to_string(), str::to_owned),
    })
}

/// Decode a complete (non-streamed) reply. `Err` carries what was missing.
pub(crate) fn decode_response(provider: &str, requested: &str, body: &Value) -> Result<ChatResponse, String> {
    let choice = body
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
        .ok_or_else(|| "the reply has no `choices`".to_owned())?;
    let message = choice
        .get("message")
        .ok_or_else(|| "the first choice has no `message`".to_owned())?;
    let text = message
        .get("content")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let mut tool_calls = Vec::new();
    for call in message
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let function = call
            .get("function")
            .ok_or_else(|| "a tool call has no `function`".to_owned())?;
        let name = function
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| "a tool call has no function name".to_owned())?;
        let arguments = match function.get("arguments") {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => "{}".to_owned(),
        };
        let id = call.get("id").and_then(Value::as_str).unwrap_or_default();
        tool_calls.push(crate::request::ToolCall::new(id, name, arguments));
    }
    let mut reply = ChatResponse::new(provider, requested, text);
    reply.id = body.get("id").and_then(Value::as_str).map(str::to_owned);
    if let Some(model) = body.get("model").and_then(Value::as_str) {
        reply.model = model.to_owned();
    }
    reply.reasoning = message
        .get("reasoning")
        .or_else(|| message.get("reasoning_content"))
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty())
        .map(str::to_owned);
    reply.finish_reason = match choice.get("finish_reason").and_then(Value::as_str) {
        Some(reason) => FinishReason::parse(reason),
        None if !tool_calls.is_empty() => FinishReason::ToolCalls,
        None => FinishReason::Stop,
    };
    reply.tool_calls = tool_calls;
    if let Some(usage) = body.get("usage") {
        let (tokens, cost) = decode_usage(usage);
        reply.usage = tokens;
        reply.cost = cost.map_or(Cost::UNKNOWN, Cost::exact);
    }
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{ToolCall, ToolDefinition};

    #[test]
    fn encodes_tools_images_reasoning_and_schema() {
        let req = ChatRequest::new(
            "ollama/llava::high(8000)",
            vec![
                Message::system("be brief"),
                Message::user_with_images("what is this?", vec![Part::Image { url: "data:x".into() }]),
                Message::assistant_tool_calls("", vec![ToolCall::new("c1", "look", "{}")]),
                Message::tool_result("c1", "a cat"),
            ],
        )
        .with_tools(vec![ToolDefinition::new(
            "look",
            "look closer",
            json!({"type": "object"}),
        )])
        .with_json_schema("answer", json!({"type": "object"}));
        let model = ModelRef::parse(&req.model).unwrap();
        let body = encode_request(
            &req,
            &model,
            EncodeOptions {
                stream: true,
                request_usage_cost: false,
            },
        );
        assert_eq!(body["model"], "llava");
        assert_eq!(
            body["messages"][0],
            json!({"role": "system", "content": "be brief"})
        );
        assert_eq!(body["messages"][1]["content"][1]["image_url"]["url"], "data:x");
        assert_eq!(body["messages"][2]["content"], Value::Null);
        assert_eq!(body["messages"][2]["tool_calls"][0]["function"]["name"], "look");
        assert_eq!(body["messages"][3]["tool_call_id"], "c1");
        assert_eq!(body["tools"][0]["type"], "function");
        assert_eq!(body["response_format"]["json_schema"]["name"], "answer");
        assert_eq!(body["reasoning"], json!({"max_tokens": 8000}));
        assert_eq!(body["stream_options"]["include_usage"], true);
        assert!(body.get("usage").is_none());
    }

    #[test]
    fn usage_classes_are_disjoint() {
        let usage = json!({"prompt_tokens": 1000, "completion_tokens": 300, "cost": 0.000123,
            "prompt_tokens_details": {"cached_tokens": 600, "cache_write_tokens": 100},
            "completion_tokens_details": {"reasoning_tokens": 200}});
        let (tokens, cost) = decode_usage(&usage);
        assert_eq!(tokens, Usage::new(300, 600, 100, 100, 200));
        assert_eq!(tokens.total(), 1300);
        assert_eq!(cost, Some(MicroUsd::from_micros(123)));
    }
}
