//! The extension point: anything that answers chat requests.

use async_trait::async_trait;

use crate::embed::{EmbedRequest, EmbedResponse};
use crate::error::{Error, Result};
use crate::request::ChatRequest;
use crate::response::{ChatResponse, ChatStream, stream_from_response};

/// Something that answers chat completion requests: an HTTP client ([`crate::OpenAiProvider`]), the
/// resilient [`crate::Client`] in front of it, a [`crate::ReplayProvider`] reading a recording, or your
/// own implementation.
///
/// Implementations answer one request at a time per call and may be called concurrently (`&self`).
/// They report failures as typed [`crate::Error`]s so the retry and fallback logic above them can tell a
/// transient failure from a permanent one.
///
/// # Example
///
/// A complete provider that echoes the last user message, counting its characters as tokens:
///
/// ```
/// use async_trait::async_trait;
/// use rvbbit_llm::{ChatRequest, ChatResponse, Cost, Message, Provider, Result, Role, Usage};
///
/// struct Echo;
///
/// #[async_trait]
/// impl Provider for Echo {
///     fn name(&self) -> &str {
///         "echo"
///     }
///
///     async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse> {
///         let last = request
///             .messages
///             .iter()
///             .rev()
///             .find(|m| m.role == Role::User)
///             .map(Message::text)
///             .unwrap_or_default();
///         let mut reply = ChatResponse::new(self.name(), &request.model, last.clone());
///         reply.usage = Usage::new(last.len() as u64, 0, 0, last.len() as u64, 0);
///         reply.cost = Cost::free(None);
///         Ok(reply)
///     }
///     // `chat_stream` has a default: the whole reply as one text event, then `Done`.
/// }
///
/// # futures::executor::block_on(async {
/// let reply = Echo.chat(&ChatRequest::new("any", vec![Message::user("hello")])).await?;
/// assert_eq!(reply.text, "hello");
/// let streamed = rvbbit_llm::collect_stream(Echo.chat_stream(&ChatRequest::new("any", vec![Message::user("hi")])).await?).await?;
/// assert_eq!(streamed.text, "hi");
/// # Ok::<(), rvbbit_llm::Error>(())
/// # }).unwrap();
/// ```
#[async_trait]
pub trait Provider: Send + Sync {
    /// The provider's name, as it appears in responses and errors.
    fn name(&self) -> &str;

    /// Answer `request` completely.
    ///
    /// # Errors
    /// A typed [`crate::Error`] naming the provider and model.
    ///
    /// # Cancel safety
    /// Dropping the future abandons the call; no state is left behind.
    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse>;

    /// Answer `request` as a stream of events ending in [`crate::StreamEvent::Done`].
    ///
    /// The default calls [`Provider::chat`] and replays the reply as events.
    ///
    /// # Errors
    /// A failure before the stream starts is returned here; later failures are `Err` items of the stream.
    async fn chat_stream(&self, request: &ChatRequest) -> Result<ChatStream> {
        Ok(stream_from_response(self.chat(request).await?))
    }

    /// One vector per input of `request` (an OpenAI-compatible `/embeddings` call).
    ///
    /// The default refuses: a provider that has no embeddings (a recording, say) says so.
    ///
    /// # Errors
    /// A typed [`crate::Error`] naming the provider and model.
    async fn embed(&self, request: &EmbedRequest) -> Result<EmbedResponse> {
        Err(Error::Settings {
            message: format!(
                "provider `{}` does not answer embeddings requests (model `{}`)",
                self.name(),
                request.model
            ),
        })
    }
}
