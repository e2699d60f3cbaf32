//! LLM providers for rvbbit.
//!
//! This crate owns everything between "call this model with these messages" and the bytes on the
//! wire: the [`Provider`] trait, the OpenAI-compatible HTTP client ([`OpenAiProvider`]: OpenRouter by
//! default, OpenAI, Ollama via `ollama/<model>`, vLLM, llama.cpp server, LM Studio), and the
//! [`Client`] in front of it that adds retries with backoff and `Retry-After`, concurrency and
//! request/token rate limits, fallback chains, circuit breakers per model (and per endpoint for
//! connection failures), one deadline per call, and cost accounting in
//! [`rvbbit_core::MicroUsd`]. [`Recorder`] and [`ReplayProvider`] record real replies and answer from
//! the recording, for tests without a network.
//!
//! Boundary: this crate depends only on `rvbbit-core`. It knows nothing of cascades or storage and
//! reads no config files: callers build a [`ProviderSettings`] (or use [`ProviderSettings::from_env`]).
//!
//! Main types: [`Client`], [`ChatRequest`], [`ChatResponse`], [`StreamEvent`], [`Usage`], [`Cost`],
//! [`Error`] (every variant maps to an `RVB-L…` code via [`Error::code`]).
//!
//! ```no_run
//! use rvbbit_llm::{ChatRequest, Client, Message, Provider, ProviderSettings};
//!
//! # async fn run() -> rvbbit_llm::Result<()> {
//! let client = Client::new(ProviderSettings::from_env())?;
//! let reply = client
//!     .chat(&ChatRequest::new("openai/gpt-4o-mini", vec![Message::system("Be brief."), Message::user("Hi")]))
//!     .await?;
//! assert!(reply.cost.amount.is_some() || reply.usage.total() == 0);
//! # Ok(()) }
//! ```

mod breaker;
mod client;
mod cost;
mod embed;
mod error;
mod limit;
mod model;
mod provider;
mod providers;
mod request;
mod response;
mod retry;
mod settings;

pub use breaker::BreakerState;
pub use client::Client;
pub use cost::{BUNDLED_PRICES_AS_OF, Cost, CostStatus, Price, PriceTable};
pub use embed::{EmbedRequest, EmbedResponse, MAX_EMBED_INPUTS, cosine, hashed_embedding};
pub use error::{Error, Result, TimeoutPhase};
pub use model::{ModelRef, Route};
pub use provider::Provider;
pub use providers::mock::{MockAnswers, MockProvider};
pub use providers::openai::OpenAiProvider;
pub use providers::replay::{Recorder, ReplayProvider, request_hash};
pub use request::{
    ChatRequest, Expect, Expected, Message, Part, Reasoning, ResponseFormat, Role, ToolCall, ToolChoice,
    ToolDefinition,
};
pub use response::{
    ChatResponse, ChatStream, FailedAttempt, FinishReason, StreamEvent, Usage, collect_stream,
    stream_from_response,
};
pub use settings::{
    ApiKey, BreakerSettings, DEFAULT_MODEL, Limits, OLLAMA_BASE_URL, OPENROUTER_BASE_URL, ProviderSettings,
    RetryPolicy, Timeouts,
};
