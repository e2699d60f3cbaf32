//! Scripted replies: what the server answers to one request, and how it renders as JSON or SSE.

use std::time::Duration;

use serde_json::{Value, json};

/// One scripted answer: a completion (text and/or tool calls, with usage and cost), an HTTP error, or
/// an injected failure. Streaming or not is decided by the request's `stream` flag.
#[derive(Clone, Debug)]
pub struct Reply {
    pub(crate) kind: Kind,
    pub(crate) latency: Option<Duration>,
}

#[derive(Clone, Debug)]
pub(crate) enum Kind {
    Completion(Completion),
    Status {
        status: u16,
        message: String,
        retry_after: Option<String>,
    },
    Hang,
    MalformedJson,
    Json(serde_json::Value),
    Truncated {
        frames: usize,
    },
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Completion {
    pub(crate) text: String,
    pub(crate) tool_calls: Vec<(String, String, String)>,
    pub(crate) reasoning: Option<String>,
    pub(crate) model: Option<String>,
    pub(crate) finish_reason: Option<String>,
    pub(crate) prompt_tokens: Option<u64>,
    pub(crate) completion_tokens: Option<u64>,
    pub(crate) cached_tokens: Option<u64>,
    pub(crate) reasoning_tokens: Option<u64>,
    pub(crate) cost: Option<f64>,
}

impl Reply {
    fn new(kind: Kind) -> Reply {
        Reply { kind, latency: None }
    }

    /// A text answer.
    pub fn text(text: impl Into<String>) -> Reply {
        Reply::new(Kind::Completion(Completion {
            text: text.into(),
            ..Completion::default()
        }))
    }

    /// An answer that calls one tool (add more with [`Reply::and_tool_call`]).
    pub fn tool_call(id: impl Into<String>, name: impl Into<String>, arguments: Value) -> Reply {
        Reply::text("").and_tool_call(id, name, arguments)
    }

    /// An HTTP error with an OpenAI-style `{"error": {"message": ...}}` body.
    pub fn error(status: u16, message: impl Into<String>) -> Reply {
        Reply::new(Kind::Status {
            status,
            message: message.into(),
            retry_after: None,
        })
    }

    /// A 429 with `Retry-After: <seconds>`.
    pub fn rate_limited(retry_after_secs: u64) -> Reply {
        Reply::new(Kind::Status {
            status: 429,
            message: "rate limit exceeded".to_owned(),
            retry_after: Some(retry_after_secs.to_string()),
        })
    }

    /// A 500.
    pub fn server_error() -> Reply {
        Reply::error(500, "internal server error")
    }

    /// Never answer (until the server shuts down): exercises the client's timeouts.
    pub fn hang() -> Reply {
        Reply::new(Kind::Hang)
    }

    /// A 200 whose body is exactly this JSON value (for replies that are JSON but not a completion, such
    /// as `{}` with no `choices`).
    pub fn json(body: serde_json::Value) -> Reply {
        Reply::new(Kind::Json(body))
    }

    /// A 200 whose body is not JSON (or, when streaming, an event that is not JSON).
    pub fn malformed_json() -> Reply {
        Reply::new(Kind::MalformedJson)
    }

    /// Start answering, then cut the connection mid-body. When streaming, the cut comes right after the
    /// first event (the role chunk), before any token: the client must treat it as a failure before
    /// the first token.
    pub fn truncated() -> Reply {
        Reply::truncated_after(1)
    }

    /// Like [`Reply::truncated`], but a stream is cut after `frames` SSE events (the role chunk, then
    /// pieces of the text "partial answer"), so a cut after 2 or more falls mid-reply.
    pub fn truncated_after(frames: usize) -> Reply {
        Reply::new(Kind::Truncated { frames })
    }

    fn completion(&mut self) -> Option<&mut Completion> {
        match &mut self.kind {
            Kind::Completion(c) => Some(c),
            _ => None,
        }
    }

    /// Add a tool call to a completion.
    pub fn and_tool_call(
        mut self,
        id: impl Into<String>,
        name: impl Into<String>,
        arguments: Value,
    ) -> Reply {
        if let Some(c) = self.completion() {
            c.tool_calls.push((id.into(), name.into(), arguments.to_string()));
        }
        self
    }

    /// Report `prompt` and `completion` tokens in the usage block (default: request chars / 4 and reply
    /// chars / 4).
    pub fn usage(mut self, prompt: u64, completion: u64) -> Reply {
        if let Some(c) = self.completion() {
            c.prompt_tokens = Some(prompt);
            c.completion_tokens = Some(completion);
        }
        self
    }

    /// Report this many of the prompt tokens as served from cache.
    pub fn cached_tokens(mut self, n: u64) -> Reply {
        if let Some(c) = self.completion() {
            c.cached_tokens = Some(n);
        }
        self
    }

    /// Report this many of the completion tokens as reasoning.
    pub fn reasoning_tokens(mut self, n: u64) -> Reply {
        if let Some(c) = self.completion() {
            c.reasoning_tokens = Some(n);
        }
        self
    }

    /// Include OpenRouter's `usage.cost` (dollars).
    pub fn cost(mut self, dollars: f64) -> Reply {
        if let Some(c) = self.completion() {
            c.cost = Some(dollars);
        }
        self
    }

    /// Include reasoning text.
    pub fn reasoning(mut self, text: impl Into<String>) -> Reply {
        if let Some(c) = self.completion() {
            c.reasoning = Some(text.into());
        }
        self
    }

    /// Report this model instead of the requested one.
    pub fn model(mut self, model: impl Into<String>) -> Reply {
        if let Some(c) = self.completion() {
            c.model = Some(model.into());
        }
        self
    }

    /// Override the finish reason (default `stop`, or `tool_calls` when there are tool calls).
    pub fn finish_reason(mut self, reason: impl Into<String>) -> Reply {
        if let Some(c) = self.completion() {
            c.finish_reason = Some(reason.into());
        }
        self
    }

    /// Wait this long before answering (instead of the server's default latency).
    pub fn latency(mut self, latency: Duration) -> Reply {
        self.latency = Some(latency);
        self
    }
}

impl Completion {
    fn finish(&self) -> String {
        self.finish_reason.clone().unwrap_or_else(|| {
            if self.tool_calls.is_empty() {
                "stop".to_owned()
            } else {
                "tool_calls".to_owned()
            }
        })
    }

    pub(crate) fn usage(&self, request: &Value) -> Value {
        let prompt = self
            .prompt_tokens
            .unwrap_or_else(|| (request.to_string().len() as u64 / 4).max(1));
        let completion = self.completion_tokens.unwrap_or_else(|| {
            let chars = self.text.len() + self.tool_calls.iter().map(|c| c.2.len()).sum::<usize>();
            (chars as u64 / 4).max(1)
        });
        let mut usage = json!({
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        });
        if let Some(n) = self.cached_tokens {
            usage["prompt_tokens_details"] = json!({"cached_tokens": n});
        }
        if let Some(n) = self.reasoning_tokens {
            usage["completion_tokens_details"] = json!({"reasoning_tokens": n});
        }
        if let Some(cost) = self.cost {
            usage["cost"] = json!(cost);
        }
        usage
    }

    fn model_for(&self, request: &Value) -> String {
        self.model
            .clone()
            .unwrap_or_else(|| request["model"].as_str().unwrap_or("scripted").to_owned())
    }

    /// The non-streaming body.
    pub(crate) fn to_json(&self, id: &str, request: &Value) -> Value {
        let mut message = json!({"role": "assistant", "content": self.text});
        if self.text.is_empty() && !self.tool_calls.is_empty() {
            message["content"] = Value::Null;
        }
        if let Some(r) = &self.reasoning {
            message["reasoning"] = json!(r);
        }
        if !self.tool_calls.is_empty() {
            message["tool_calls"] = self
                .tool_calls
                .iter()
                .map(|(id, name, args)| json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}}))
                .collect();
        }
        json!({
            "id": id,
            "object": "chat.completion",
            "model": self.model_for(request),
            "choices": [{"index": 0, "message": message, "finish_reason": self.finish()}],
            "usage": self.usage(request),
        })
    }

    /// The SSE events of the streaming body, each a complete `data: …\n\n` frame, ending in `[DONE]`.
    pub(crate) fn to_sse(&self, id: &str, request: &Value) -> Vec<String> {
        let model = self.model_for(request);
        let chunk = |delta: Value, finish: Value| {
            json!({"id": id, "object": "chat.completion.chunk", "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        };
        let mut events = vec![chunk(json!({"role": "assistant", "content": ""}), Value::Null)];
        if let Some(r) = &self.reasoning {
            events.push(chunk(json!({"reasoning": r}), Value::Null));
        }
        for piece in split_pieces(&self.text, 3) {
            events.push(chunk(json!({"content": piece}), Value::Null));
        }
        for (index, (call_id, name, args)) in self.tool_calls.iter().enumerate() {
            events.push(chunk(
                json!({"tool_calls": [{"index": index, "id": call_id, "type": "function",
                    "function": {"name": name, "arguments": ""}}]}),
                Value::Null,
            ));
            for piece in split_pieces(args, 2) {
                events.push(chunk(
                    json!({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}),
                    Value::Null,
                ));
            }
        }
        events.push(chunk(json!({}), json!(self.finish())));
        let wants_usage = request["stream_options"]["include_usage"]
            .as_bool()
            .unwrap_or(false);
        if wants_usage || self.cost.is_some() {
            events.push(
                json!({"id": id, "object": "chat.completion.chunk", "model": model,
                "choices": [], "usage": self.usage(request)}),
            );
        }
        let mut frames: Vec<String> = events.into_iter().map(|e| format!("data: {e}\n\n")).collect();
        frames.push("data: [DONE]\n\n".to_owned());
        frames
    }
}

/// Split `text` into at most `n` non-empty pieces on character boundaries.
fn split_pieces(text: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    if chars.is_empty() {
        return Vec::new();
    }
    let size = chars.len().div_ceil(n);
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}
