//! The resilient client: routing, fallback chains, retries, limits, the circuit breaker and cost, in
//! front of one [`Provider`] per endpoint.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use tracing::Instrument;

use crate::breaker::{Breaker, BreakerState};
use crate::cost::Cost;
use crate::error::{Error, Result};
use crate::limit::{Limiter, Permit};
use crate::model::{ModelRef, Route};
use crate::provider::Provider;
use crate::providers::openai::OpenAiProvider;
use crate::request::ChatRequest;
use crate::response::{ChatResponse, ChatStream, StreamEvent};
use crate::retry::{Next, next_attempt};
use crate::settings::ProviderSettings;

/// Output tokens assumed for the rate-limit estimate when a request sets no `max_tokens`.
const DEFAULT_OUTPUT_ESTIMATE: u64 = 256;

/// The client every rvbbit LLM call goes through.
///
/// For each request it expands the model into a fallback chain (the model, or a named chain, then
/// `fallback_models`), routes each model to its endpoint (`ollama/<model>` to the local Ollama endpoint,
/// everything else to the configured provider), and for each attempt: checks the endpoint's circuit
/// breaker, waits for the endpoint's and the model's concurrency and rate limits, makes one call,
/// retries transient failures with backoff (honouring `Retry-After`), and finally fills in the cost.
/// A streamed call falls back the same way as long as no event has been delivered yet.
///
/// `Client` is cheap to clone; clones share limits and breakers.
///
/// ```no_run
/// use rvbbit_llm::{ChatRequest, Client, Message, Provider, ProviderSettings};
///
/// # async fn run() -> rvbbit_llm::Result<()> {
/// let client = Client::new(ProviderSettings::from_env())?;
/// let request = ChatRequest::new("openai/gpt-4o-mini", vec![Message::user("Say hi")])
///     .with_fallbacks(["anthropic/claude-3.5-haiku"]);
/// let reply = client.chat(&request).await?;
/// println!("{} ({:?})", reply.text, reply.cost);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    settings: ProviderSettings,
    remote: Endpoint,
    ollama: Endpoint,
    model_limits: BTreeMap<String, Arc<Limiter>>,
}

struct Endpoint {
    provider: Arc<dyn Provider>,
    url: String,
    local: bool,
    limiter: Arc<Limiter>,
    breaker: Breaker,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for the endpoint in `settings`, plus the local Ollama endpoint.
    ///
    /// # Errors
    /// [`Error::Settings`] when a base URL is invalid.
    pub fn new(settings: ProviderSettings) -> Result<Client> {
        let remote = Arc::new(OpenAiProvider::new(&settings)?);
        let ollama = Arc::new(OpenAiProvider::ollama(&settings)?);
        Ok(Client::with_providers(settings, remote, ollama))
    }

    /// A client in front of custom providers (for the configured endpoint and for `ollama/…`), with
    /// the retries, limits, breakers, fallback and cost of `settings`.
    pub fn with_providers(
        settings: ProviderSettings,
        remote: Arc<dyn Provider>,
        ollama: Arc<dyn Provider>,
    ) -> Client {
        let endpoint = |provider: Arc<dyn Provider>, url: &str, local: bool| Endpoint {
            provider,
            url: url.to_owned(),
            local,
            limiter: Limiter::new(&settings.limits),
            breaker: Breaker::new(settings.breaker),
        };
        let remote = endpoint(remote, &settings.base_url, settings.local);
        let ollama = endpoint(ollama, &settings.ollama_base_url, true);
        let model_limits = settings
            .model_limits
            .iter()
            .map(|(m, l)| (m.clone(), Limiter::new(l)))
            .collect();
        Client {
            inner: Arc::new(Inner {
                settings,
                remote,
                ollama,
                model_limits,
            }),
        }
    }

    /// The settings this client was built from.
    pub fn settings(&self) -> &ProviderSettings {
        &self.inner.settings
    }

    /// The state of the circuit breaker of the endpoint `model` routes to.
    ///
    /// # Errors
    /// [`Error::Settings`] when `model` is not a valid model string.
    pub fn breaker_state(&self, model: &str) -> Result<BreakerState> {
        Ok(self.inner.endpoint(&ModelRef::parse(model)?).breaker.state())
    }
}

impl Inner {
    fn endpoint(&self, model: &ModelRef) -> &Endpoint {
        match model.route {
            Route::Ollama => &self.ollama,
            Route::Default => &self.remote,
        }
    }

    /// The models to try, in order: the request's model (or the default) and its fallbacks, with named
    /// chains expanded.
    fn chain(&self, request: &ChatRequest) -> Vec<String> {
        let first = if request.model.trim().is_empty() {
            &self.settings.default_model
        } else {
            &request.model
        };
        let mut out: Vec<String> = Vec::new();
        for model in std::iter::once(first).chain(&request.fallback_models) {
            match self.settings.chains.get(model) {
                Some(chain) => out.extend(chain.iter().cloned()),
                None => out.push(model.clone()),
            }
        }
        out.dedup();
        out
    }

    fn circuit_open(&self, endpoint: &Endpoint, model: &str, retry_in: Duration) -> Error {
        Error::CircuitOpen {
            provider: endpoint.provider.name().to_owned(),
            model: model.to_owned(),
            url: endpoint.url.clone(),
            retry_in,
        }
    }

    /// The model's permit first (the narrower limit), then the endpoint's: a call waiting for its
    /// model's slot must not sit on an endpoint slot other models could use.
    async fn permits(&self, endpoint: &Endpoint, model: &ModelRef, estimate: u64) -> Vec<Permit> {
        let mut permits = Vec::with_capacity(2);
        let key = model.raw.split("::").next().unwrap_or(&model.raw);
        if let Some(limiter) = self.model_limits.get(key) {
            permits.push(limiter.acquire(estimate).await);
        }
        permits.push(endpoint.limiter.acquire(estimate).await);
        permits
    }

    fn finish(&self, endpoint: &Endpoint, model: &ModelRef, reply: &mut ChatResponse) {
        reply.model_requested.clone_from(&model.raw);
        if endpoint.local {
            // Keep what a replayed or cached reply had avoided; a local call itself avoids nothing known.
            reply.cost = Cost::free(reply.cost.avoided);
        } else if reply.cost.amount.is_none() {
            reply.cost = match self.settings.prices.estimate(&model.id, &reply.usage) {
                Some(amount) => Cost::estimated(amount),
                None => Cost::UNKNOWN,
            };
        }
    }

    /// Record the outcome of one attempt on the breaker and the limit windows.
    fn record(endpoint: &Endpoint, permits: &[Permit], outcome: std::result::Result<u64, &Error>) {
        match outcome {
            Ok(tokens) => {
                endpoint.breaker.record_success();
                permits.iter().for_each(|p| p.settle(tokens));
            }
            Err(e) => {
                if e.counts_against_endpoint() {
                    endpoint.breaker.record_failure();
                } else if !matches!(e, Error::RateLimited { .. }) {
                    // A client error proves the endpoint is up (and closes a half-open circuit).
                    endpoint.breaker.record_success();
                }
                // A rejected call consumed no tokens; it still counts as a request.
                permits.iter().for_each(|p| p.settle(0));
            }
        }
    }

    /// Decide whether to retry after `error` on retry number `retry`, and wait if so.
    async fn backoff(&self, model: &str, error: &Error, retry: u32) -> bool {
        if !error.is_transient() {
            return false;
        }
        match next_attempt(&self.settings.retry, retry, error.retry_after()) {
            Next::GiveUp => false,
            Next::RetryAfter(wait) => {
                tracing::warn!(model, retry, wait = ?wait, error = %error, "Retrying a provider call.");
                tokio::time::sleep(wait).await;
                true
            }
        }
    }

    async fn chat_one(&self, request: &ChatRequest) -> Result<ChatResponse> {
        let model = ModelRef::parse(&request.model)?;
        let endpoint = self.endpoint(&model);
        let estimate =
            request.estimated_prompt_tokens() + request.max_tokens.map_or(DEFAULT_OUTPUT_ESTIMATE, u64::from);
        let mut retry = 0;
        loop {
            retry += 1;
            endpoint
                .breaker
                .check()
                .map_err(|wait| self.circuit_open(endpoint, &request.model, wait))?;
            let permits = self.permits(endpoint, &model, estimate).await;
            let error = match endpoint.provider.chat(request).await {
                Ok(mut reply) => {
                    Inner::record(endpoint, &permits, Ok(reply.usage.total()));
                    self.finish(endpoint, &model, &mut reply);
                    return Ok(reply);
                }
                Err(e) => e,
            };
            Inner::record(endpoint, &permits, Err(&error));
            // Free the concurrency slots before sleeping: a backing-off call must not block others.
            drop(permits);
            if !self.backoff(&request.model, &error, retry).await {
                return Err(error);
            }
        }
    }

    async fn stream_one(self: &Arc<Self>, request: &ChatRequest) -> Result<ChatStream> {
        let model = ModelRef::parse(&request.model)?;
        let endpoint = self.endpoint(&model);
        let estimate =
            request.estimated_prompt_tokens() + request.max_tokens.map_or(DEFAULT_OUTPUT_ESTIMATE, u64::from);
        let mut retry = 0;
        loop {
            retry += 1;
            endpoint
                .breaker
                .check()
                .map_err(|wait| self.circuit_open(endpoint, &request.model, wait))?;
            let permits = self.permits(endpoint, &model, estimate).await;
            let first = match endpoint.provider.chat_stream(request).await {
                Ok(mut stream) => match stream.next().await {
                    Some(Ok(event)) => Ok((event, stream)),
                    Some(Err(e)) => Err(e),
                    None => Err(Error::InvalidResponse {
                        provider: endpoint.provider.name().to_owned(),
                        model: request.model.clone(),
                        message: "the stream ended without any event".to_owned(),
                        transient: true,
                    }),
                },
                Err(e) => Err(e),
            };
            let error = match first {
                Ok((event, rest)) => return Ok(self.guard_stream(model, permits, event, rest)),
                Err(e) => e,
            };
            Inner::record(endpoint, &permits, Err(&error));
            drop(permits);
            if !self.backoff(&request.model, &error, retry).await {
                return Err(error);
            }
        }
    }

    /// Wrap a stream that has produced its first event: it holds the permits until it ends, and its
    /// outcome feeds the breaker, the token window and the cost.
    fn guard_stream(
        self: &Arc<Self>,
        model: ModelRef,
        permits: Vec<Permit>,
        first: StreamEvent,
        rest: ChatStream,
    ) -> ChatStream {
        struct Guard {
            inner: Arc<Inner>,
            model: ModelRef,
            permits: Vec<Permit>,
            ended: bool,
        }
        let guard = Guard {
            inner: Arc::clone(self),
            model,
            permits,
            ended: false,
        };
        let events = futures::stream::once(async move { Ok(first) }).chain(rest);
        Box::pin(events.scan(guard, |guard, item| {
            if guard.ended {
                return futures::future::ready(None);
            }
            let endpoint = guard.inner.endpoint(&guard.model);
            let item = match item {
                Ok(StreamEvent::Done(mut reply)) => {
                    guard.ended = true;
                    Inner::record(endpoint, &guard.permits, Ok(reply.usage.total()));
                    guard.inner.finish(endpoint, &guard.model, &mut reply);
                    Ok(StreamEvent::Done(reply))
                }
                Ok(event) => Ok(event),
                Err(e) => {
                    guard.ended = true;
                    Inner::record(endpoint, &guard.permits, Err(&e));
                    Err(e)
                }
            };
            futures::future::ready(Some(item))
        }))
    }
}

/// Whether a failed chain member should hand over to the next one.
fn falls_back(error: &Error) -> bool {
    !matches!(
        error,
        Error::Settings { .. } | Error::Internal(_) | Error::File { .. }
    )
}

#[async_trait]
impl Provider for Client {
    fn name(&self) -> &str {
        self.inner.remote.provider.name()
    }

    /// Answer with the first model of the chain that succeeds.
    ///
    /// # Errors
    /// The error of the only model tried, or [`Error::FallbackExhausted`] naming every model tried.
    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse> {
        let inner = &self.inner;
        with_fallback(inner.chain(request), request, false, |attempt| async move {
            inner.chat_one(&attempt).await
        })
        .await
    }

    /// Stream from the first model of the chain that produces an event. Once an event has been
    /// delivered, a later failure is the stream's error: there is no fallback mid-reply.
    ///
    /// # Errors
    /// As [`Client::chat`] for failures before the first event.
    async fn chat_stream(&self, request: &ChatRequest) -> Result<ChatStream> {
        let inner = &self.inner;
        with_fallback(inner.chain(request), request, true, |attempt| async move {
            inner.stream_one(&attempt).await
        })
        .await
    }
}

/// Try each model of `chain` in turn with `call`, moving on only for failures that fall back.
async fn with_fallback<T, F, Fut>(
    chain: Vec<String>,
    request: &ChatRequest,
    streaming: bool,
    call: F,
) -> Result<T>
where
    F: Fn(ChatRequest) -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut tried: Vec<(String, String)> = Vec::new();
    let mut last: Option<Error> = None;
    for model in &chain {
        let mut attempt = request.clone();
        attempt.model.clone_from(model);
        attempt.fallback_models.clear();
        let span = tracing::info_span!("llm_call", model = %model, streaming);
        match call(attempt).instrument(span).await {
            Ok(reply) => return Ok(reply),
            Err(e) if falls_back(&e) => {
                tracing::warn!(model = %model, error = %e, "Model failed; trying the next in the chain.");
                tried.push((model.clone(), e.to_string()));
                last = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(exhausted(tried, last))
}

fn exhausted(tried: Vec<(String, String)>, last: Option<Error>) -> Error {
    match last {
        None => Error::Internal("a fallback chain with no models".to_owned()),
        Some(last) if tried.len() == 1 => last,
        Some(last) => Error::FallbackExhausted {
            tried,
            last: Box::new(last),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_expand_names_and_defaults() {
        let mut settings = ProviderSettings::new("http://127.0.0.1:9/v1");
        settings
            .chains
            .insert("cheap".into(), vec!["a/x".into(), "b/y".into()]);
        settings.default_model = "d/z".into();
        let client = Client::new(settings).unwrap();
        let req = ChatRequest::new("cheap", vec![]).with_fallbacks(["c/w"]);
        assert_eq!(client.inner.chain(&req), ["a/x", "b/y", "c/w"]);
        assert_eq!(client.inner.chain(&ChatRequest::new("", vec![])), ["d/z"]);
    }
}
