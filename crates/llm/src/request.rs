//! What a caller asks for: a [`ChatRequest`] of [`Message`]s, tools and sampling settings.
//!
//! These types are provider-neutral and serialise stably (they are what record/replay hashes); the
//! OpenAI wire format lives in `providers/openai`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One chat completion request.
///
/// `model` may name a model (`openai/gpt-4o-mini`), a local model (`ollama/llama3.2`), a model with a
/// reasoning suffix (`anthropic/claude-sonnet-4::high(8000)`), or a named fallback chain from
/// [`crate::ProviderSettings::chains`]. `fallback_models` are tried in order when `model` fails.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ChatRequest {
    /// The model (or chain name) to call first.
    pub model: String,
    /// Models to try, in order, when the previous one fails after its retries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallback_models: Vec<String>,
    /// The conversation, oldest first. A system prompt is a leading [`Role::System`] message.
    pub messages: Vec<Message>,
    /// Tools the model may call (native function calling).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolDefinition>,
    /// Whether and which tool the model must call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    /// JSON mode or a JSON Schema the reply must follow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat>,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Upper bound on generated tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Stop sequences.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
    /// Sampling seed, where the provider supports one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// Reasoning settings; when `None`, taken from the model string's `::` suffix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<Reasoning>,
    /// What the caller will do with the reply. Never sent to a provider and not part of the request's
    /// recording hash: offline providers ([`crate::MockProvider`]) read it to answer in shape.
    #[serde(skip)]
    pub expect: Option<Expect>,
}

/// What the caller expects of a reply, for providers that answer without a model.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Expect {
    /// The cell (or other caller) that asks.
    pub cell: String,
    /// The shape of the reply.
    pub reply: Expected,
}

impl Expect {
    /// An expectation of `reply` from `cell`.
    pub fn new(cell: impl Into<String>, reply: Expected) -> Self {
        Expect {
            cell: cell.into(),
            reply,
        }
    }
}

/// The shape of a reply the caller reads.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub enum Expected {
    /// Free text (a summary, a rewritten prompt, an aggregate).
    #[default]
    Text,
    /// A cell's answer: JSON following `schema` when there is one; `routes` are the targets offered
    /// through the `route_to` tool (empty when routing is not offered).
    Answer {
        /// The cell's `output_schema`.
        schema: Option<Value>,
        /// The `route_to` targets.
        routes: Vec<String>,
    },
    /// A judge's pick: `{"winner": <one of choices>, "reason": "..."}`.
    Winner {
        /// The attempt numbers the judge may name.
        choices: Vec<u32>,
    },
    /// A validator's verdict: `{"valid": true|false, "reason": "..."}`.
    Verdict,
}

impl ChatRequest {
    /// A request for `model` with `messages` and nothing else set.
    pub fn new(model: impl Into<String>, messages: Vec<Message>) -> Self {
        ChatRequest {
            model: model.into(),
            messages,
            ..ChatRequest::default()
        }
    }

    /// Add tools the model may call.
    pub fn with_tools(mut self, tools: Vec<ToolDefinition>) -> Self {
        self.tools = tools;
        self
    }

    /// Add fallback models, tried in order.
    pub fn with_fallbacks<I, S>(mut self, models: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.fallback_models = models.into_iter().map(Into::into).collect();
        self
    }

    /// Require JSON output following `schema`.
    pub fn with_json_schema(mut self, name: impl Into<String>, schema: Value) -> Self {
        self.response_format = Some(ResponseFormat::JsonSchema {
            name: name.into(),
            schema,
            strict: true,
        });
        self
    }

    /// Set the temperature.
    pub fn with_temperature(mut self, temperature: f64) -> Self {
        self.temperature = Some(temperature);
        self
    }

    /// Say what the reply is for (read by offline providers only).
    pub fn with_expect(mut self, expect: Expect) -> Self {
        self.expect = Some(expect);
        self
    }

    /// Set the output token bound.
    pub fn with_max_tokens(mut self, max_tokens: u32) -> Self {
        self.max_tokens = Some(max_tokens);
        self
    }

    /// A rough token count of the prompt (`chars / 4`, at least 1), used by rate limiting before the
    /// real count is known.
    pub fn estimated_prompt_tokens(&self) -> u64 {
        let chars: usize = self
            .messages
            .iter()
            .map(|m| {
                m.content.iter().map(Part::estimated_chars).sum::<usize>()
                    + m.tool_calls
                        .iter()
                        .map(|c| c.name.len() + c.arguments.len())
                        .sum::<usize>()
            })
            .sum::<usize>()
            + self
                .tools
                .iter()
                .map(|t| t.parameters.to_string().len() + t.description.len())
                .sum::<usize>();
        (chars as u64 / 4).max(1)
    }
}

/// Who wrote a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Role {
    /// Instructions for the model.
    System,
    /// The user.
    User,
    /// The model.
    Assistant,
    /// A tool result answering an assistant tool call.
    Tool,
}

/// One message of the conversation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Message {
    /// Who wrote it.
    pub role: Role,
    /// Text and images, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content: Vec<Part>,
    /// Tool calls made by an assistant message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// For a [`Role::Tool`] message: the id of the call it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// Optional author name (for a tool message, the tool's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Message {
    fn with_text(role: Role, text: impl Into<String>) -> Self {
        Message {
            role,
            content: vec![Part::Text { text: text.into() }],
            tool_calls: Vec::new(),
            tool_call_id: None,
            name: None,
        }
    }

    /// A system prompt.
    pub fn system(text: impl Into<String>) -> Self {
        Message::with_text(Role::System, text)
    }

    /// A user message.
    pub fn user(text: impl Into<String>) -> Self {
        Message::with_text(Role::User, text)
    }

    /// An assistant message with text only.
    pub fn assistant(text: impl Into<String>) -> Self {
        Message::with_text(Role::Assistant, text)
    }

    /// An assistant message that made tool calls (and possibly said something).
    pub fn assistant_tool_calls(text: impl Into<String>, calls: Vec<ToolCall>) -> Self {
        let text = text.into();
        let mut message = Message::with_text(Role::Assistant, text.clone());
        if text.is_empty() {
            message.content.clear();
        }
        message.tool_calls = calls;
        message
    }

    /// A tool result answering the call `call_id`.
    pub fn tool_result(call_id: impl Into<String>, content: impl Into<String>) -> Self {
        let mut message = Message::with_text(Role::Tool, content);
        message.tool_call_id = Some(call_id.into());
        message
    }

    /// A user message with images after the text.
    pub fn user_with_images(text: impl Into<String>, images: Vec<Part>) -> Self {
        let mut message = Message::user(text);
        message.content.extend(images);
        message
    }

    /// The message's text parts joined together.
    pub fn text(&self) -> String {
        self.content
            .iter()
            .filter_map(|p| match p {
                Part::Text { text } => Some(text.as_str()),
                Part::Image { .. } => None,
            })
            .collect()
    }
}

/// A piece of message content.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Part {
    /// Text.
    Text {
        /// The text.
        text: String,
    },
    /// An image, by URL (`https://…` or a `data:` URL).
    Image {
        /// The image URL.
        url: String,
    },
}

impl Part {
    /// An image embedded as a `data:` URL (base64).
    pub fn image_bytes(mime: &str, bytes: &[u8]) -> Part {
        Part::Image {
            url: format!("data:{mime};base64,{}", base64(bytes)),
        }
    }

    fn estimated_chars(&self) -> usize {
        match self {
            Part::Text { text } => text.len(),
            // Providers bill an image as roughly a thousand tokens whatever its encoded size.
            Part::Image { .. } => 4_000,
        }
    }
}

/// A tool the model may call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ToolDefinition {
    /// The function name.
    pub name: String,
    /// What it does, for the model.
    pub description: String,
    /// JSON Schema of its arguments object.
    pub parameters: Value,
}

impl ToolDefinition {
    /// A tool named `name` whose arguments follow `parameters` (a JSON Schema object).
    pub fn new(name: impl Into<String>, description: impl Into<String>, parameters: Value) -> Self {
        ToolDefinition {
            name: name.into(),
            description: description.into(),
            parameters,
        }
    }
}

/// A tool call made by the model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ToolCall {
    /// The provider's call id; a tool result names it.
    pub id: String,
    /// The tool name.
    pub name: String,
    /// The arguments as JSON text, exactly as the model wrote them (it may be invalid JSON).
    pub arguments: String,
}

impl ToolCall {
    /// A tool call.
    pub fn new(id: impl Into<String>, name: impl Into<String>, arguments: impl Into<String>) -> Self {
        ToolCall {
            id: id.into(),
            name: name.into(),
            arguments: arguments.into(),
        }
    }

    /// Parse the arguments.
    ///
    /// # Errors
    /// The JSON error when the model wrote invalid JSON.
    pub fn arguments_json(&self) -> Result<Value, serde_json::Error> {
        serde_json::from_str(&self.arguments)
    }
}

/// Whether and which tool the model must call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ToolChoice {
    /// The model decides (the default).
    Auto,
    /// The model must not call tools.
    None,
    /// The model must call some tool.
    Required,
    /// The model must call this tool.
    Function(String),
}

/// The required shape of the reply.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ResponseFormat {
    /// Any JSON object (JSON mode).
    JsonObject,
    /// JSON following a schema.
    JsonSchema {
        /// A name for the schema (providers require one).
        name: String,
        /// The JSON Schema.
        schema: Value,
        /// Ask the provider to enforce the schema strictly.
        strict: bool,
    },
}

/// Reasoning ("thinking") settings, sent as the provider's `reasoning` object.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Reasoning {
    /// `xhigh`, `high`, `medium`, `low`, `minimal` or `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effort: Option<String>,
    /// A token budget for reasoning; wins over `effort` on the wire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Reason, but leave the reasoning out of the reply.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub exclude: bool,
    /// Turn reasoning on with the provider's default effort.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub enabled: bool,
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding; small enough not to need a dependency.
fn base64(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(B64[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard_alphabet() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(&[0xff, 0xfe]), "//4=");
    }

    #[test]
    fn image_parts_are_data_urls() {
        let part = Part::image_bytes("image/png", b"\x89PNG");
        assert_eq!(
            part,
            Part::Image {
                url: "data:image/png;base64,iVBORw==".into()
            }
        );
    }

    #[test]
    fn prompt_estimate_is_chars_over_four() {
        let req = ChatRequest::new("m", vec![Message::user("x".repeat(400))]);
        assert_eq!(req.estimated_prompt_tokens(), 100);
    }
}
