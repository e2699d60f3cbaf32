//! What a provider answers: a [`ChatResponse`], or a [`ChatStream`] of [`StreamEvent`]s ending in one.

use std::pin::Pin;

use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};

use crate::cost::Cost;
use crate::error::{Error, Result};
use crate::request::{Message, ToolCall};

/// A complete reply.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ChatResponse {
    /// The provider's generation id, when it sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The provider that answered (`openrouter`, `ollama`, `replay`, …).
    pub provider: String,
    /// The model string the caller asked for (the chain member that answered, suffix included).
    pub model_requested: String,
    /// The model the provider reports having used.
    pub model: String,
    /// The reply text (empty when the model only called tools).
    pub text: String,
    /// Tool calls the model made.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// Reasoning text, when the provider returns it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<String>,
    /// Why generation stopped.
    pub finish_reason: FinishReason,
    /// Tokens by class.
    pub usage: Usage,
    /// What the call cost.
    pub cost: Cost,
    /// Attempts that failed before this reply (retries of the same model, then earlier models of the
    /// fallback chain), in call order; empty when the first attempt answered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_attempts: Vec<FailedAttempt>,
}

/// One failed attempt of a call that was retried or fell back, as recorded with the reply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FailedAttempt {
    /// The model the attempt asked for.
    pub model: String,
    /// The failure's code (`RVB-L…`).
    pub code: String,
    /// The failure's message.
    pub message: String,
}

impl FailedAttempt {
    pub(crate) fn of(model: &str, error: &Error) -> Self {
        FailedAttempt {
            model: model.to_owned(),
            code: error.code().code.to_owned(),
            message: error.to_string(),
        }
    }
}

impl ChatResponse {
    /// A finished text reply from `provider`/`model` with no usage and an unknown cost; set the public
    /// fields for the rest.
    pub fn new(provider: impl Into<String>, model: impl Into<String>, text: impl Into<String>) -> Self {
        let model = model.into();
        ChatResponse {
            id: None,
            provider: provider.into(),
            model_requested: model.clone(),
            model,
            text: text.into(),
            tool_calls: Vec::new(),
            reasoning: None,
            finish_reason: FinishReason::Stop,
            usage: Usage::default(),
            cost: Cost::UNKNOWN,
            failed_attempts: Vec::new(),
        }
    }

    /// The reply as an assistant message, ready to append to the conversation for the next turn.
    pub fn to_message(&self) -> Message {
        Message::assistant_tool_calls(self.text.clone(), self.tool_calls.clone())
    }
}

/// Why generation stopped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FinishReason {
    /// The model finished its answer.
    Stop,
    /// `max_tokens` was reached.
    Length,
    /// The model called tools and waits for their results.
    ToolCalls,
    /// The provider filtered the content.
    ContentFilter,
    /// Something else the provider reported.
    Other(String),
}

impl FinishReason {
    pub(crate) fn parse(text: &str) -> FinishReason {
        match text {
            "stop" | "end_turn" => FinishReason::Stop,
            "length" | "max_tokens" => FinishReason::Length,
            "tool_calls" | "function_call" | "tool_use" => FinishReason::ToolCalls,
            "content_filter" => FinishReason::ContentFilter,
            other => FinishReason::Other(other.to_owned()),
        }
    }
}

/// Token counts by class. The classes are disjoint: `input` excludes cached and cache-write tokens,
/// `output` excludes reasoning tokens, so the total is their sum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Usage {
    /// Prompt tokens billed at the full input price.
    pub input: u64,
    /// Prompt tokens served from the provider's prompt cache.
    pub cached_input: u64,
    /// Prompt tokens written to the provider's prompt cache.
    pub cache_write: u64,
    /// Generated tokens other than reasoning.
    pub output: u64,
    /// Reasoning ("thinking") tokens.
    pub reasoning: u64,
}

impl Usage {
    /// A usage record with these counts.
    pub fn new(input: u64, cached_input: u64, cache_write: u64, output: u64, reasoning: u64) -> Self {
        Usage {
            input,
            cached_input,
            cache_write,
            output,
            reasoning,
        }
    }

    /// All prompt tokens (`input + cached_input + cache_write`).
    pub fn prompt_tokens(&self) -> u64 {
        self.input + self.cached_input + self.cache_write
    }

    /// All generated tokens (`output + reasoning`).
    pub fn completion_tokens(&self) -> u64 {
        self.output + self.reasoning
    }

    /// Every token of the call.
    pub fn total(&self) -> u64 {
        self.prompt_tokens() + self.completion_tokens()
    }
}

/// One event of a streamed reply.
// `Done` is large but comes once per stream, at its end; boxing it would cost every consumer a
// dereference for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum StreamEvent {
    /// More reply text.
    Text(String),
    /// More reasoning text.
    Reasoning(String),
    /// A fragment of a tool call. The first fragment of a call carries its `id` and `name`; `arguments`
    /// fragments concatenate to the full JSON text.
    ToolCallDelta {
        /// Which call of the reply (0-based) this fragment belongs to.
        index: usize,
        /// The call id, on the first fragment.
        id: Option<String>,
        /// The tool name, on the first fragment.
        name: Option<String>,
        /// More argument text.
        arguments: String,
    },
    /// The stream ended normally: the assembled reply, with usage and cost. Always the last event.
    Done(ChatResponse),
}

/// A streamed reply: events, the last of which is [`StreamEvent::Done`]. An `Err` item ends the stream.
///
/// Dropping the stream cancels the call and releases its concurrency permits.
pub type ChatStream = Pin<Box<dyn Stream<Item = Result<StreamEvent>> + Send>>;

/// Drain a stream and return its final reply.
///
/// # Errors
/// The first error the stream yields, or [`Error::Internal`] if it ends without a `Done` event (a
/// provider implementation bug: truncation must be reported as an error by the provider).
pub async fn collect_stream(mut stream: ChatStream) -> Result<ChatResponse> {
    while let Some(event) = stream.next().await {
        if let StreamEvent::Done(response) = event? {
            return Ok(response);
        }
    }
    Err(Error::Internal(
        "a chat stream ended without a Done event".to_owned(),
    ))
}

/// Turn a complete reply into the stream a streaming call would have produced: its text, its tool calls,
/// then `Done`. Providers without native streaming use this.
pub fn stream_from_response(response: ChatResponse) -> ChatStream {
    let mut events = Vec::new();
    if let Some(reasoning) = &response.reasoning {
        events.push(Ok(StreamEvent::Reasoning(reasoning.clone())));
    }
    if !response.text.is_empty() {
        events.push(Ok(StreamEvent::Text(response.text.clone())));
    }
    for (index, call) in response.tool_calls.iter().enumerate() {
        events.push(Ok(StreamEvent::ToolCallDelta {
            index,
            id: Some(call.id.clone()),
            name: Some(call.name.clone()),
            arguments: call.arguments.clone(),
        }));
    }
    events.push(Ok(StreamEvent::Done(response)));
    Box::pin(futures::stream::iter(events))
}
