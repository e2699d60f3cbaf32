//! The resilient client: routing, fallback chains, retries, limits, the circuit breaker and cost, in
//! front of one [`Provider`] per endpoint.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use tokio::time::Instant;
use tracing::Instrument;

use crate::breaker::{Breaker, BreakerState};
use crate::cost::Cost;
use crate::embed::{EmbedRequest, EmbedResponse};
use crate::error::{Error, Result, TimeoutPhase};
use crate::limit::{Limiter, Permit};
use crate::model::{ModelRef, Route};
use crate::provider::Provider;
use crate::providers::openai::OpenAiProvider;
use crate::request::ChatRequest;
use crate::response::{ChatResponse, ChatStream, FailedAttempt, StreamEvent};
use crate::retry::{Next, next_attempt};
use crate::settings::ProviderSettings;

/// Output tokens assumed for the rate-limit estimate when a request sets no `max_tokens`.
const DEFAULT_OUTPUT_ESTIMATE: u64 = 256;
/// Models whose breakers are remembered at once; idle (closed, failure-free) breakers are forgotten
/// first, so a client naming endless distinct models cannot grow the map without bound.
const MAX_MODEL_BREAKERS: usize = 4096;

/// What one call (retries and fallbacks included) shares: its deadline, pushed back by the time spent
/// waiting for rvbbit's own concurrency and rate limits (queueing is not the provider's time), and the
/// attempts that failed so far.
struct CallState {
    deadline: Mutex<Instant>,
    failed: Mutex<Vec<FailedAttempt>>,
}

impl CallState {
    fn new(total: Duration) -> Self {
        CallState {
            deadline: Mutex::new(Instant::now() + total),
            failed: Mutex::new(Vec::new()),
        }
    }

    fn deadline(&self) -> Instant {
        *self.deadline.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn extend(&self, by: Duration) {
        *self.deadline.lock().unwrap_or_else(PoisonError::into_inner) += by;
    }

    fn failed(&self, model: &str, error: &Error) {
        self.failed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(FailedAttempt::of(model, error));
    }

    fn take_failed(&self) -> Vec<FailedAttempt> {
        std::mem::take(&mut *self.failed.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// The client every rvbbit LLM call goes through.
///
/// For each request it expands the model into a fallback chain (the model, or a named chain, then
/// `fallback_models`), routes each model to its endpoint (`ollama/<model>` to the local Ollama endpoint,
/// everything else to the configured provider), and for each attempt: checks the circuit breakers (the
/// model's, and the endpoint's, which only connection failures open), waits for the endpoint's and the
/// model's concurrency and rate limits, makes one call, retries transient failures with backoff
/// (honouring `Retry-After`), and finally fills in the cost. A streamed call falls back the same way as
/// long as no event has been delivered yet. The whole call, retries and fallbacks included, has one
/// deadline: [`crate::Timeouts::total`].
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
    /// One breaker per model (route and id as written), created on first use.
    model_breakers: Mutex<HashMap<String, Arc<Breaker>>>,
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
                model_breakers: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The settings this client was built from.
    pub fn settings(&self) -> &ProviderSettings {
        &self.inner.settings
    }

    /// The state of `model`'s circuit breaker: open when the model's own breaker is open or when the
    /// endpoint it routes to is unreachable (its breaker opens only on connection failures).
    ///
    /// # Errors
    /// [`Error::Settings`] when `model` is not a valid model string.
    pub fn breaker_state(&self, model: &str) -> Result<BreakerState> {
        let model = ModelRef::parse(model)?;
        let endpoint = self.inner.endpoint(&model).breaker.state();
        if endpoint != BreakerState::Closed {
            return Ok(endpoint);
        }
        Ok(self.inner.model_breaker(&model).state())
    }

    /// The state of the breaker of the endpoint `model` routes to, which only connection-level failures
    /// (refused, reset, DNS, TLS, connect timeout) open.
    ///
    /// # Errors
    /// [`Error::Settings`] when `model` is not a valid model string.
    pub fn endpoint_breaker_state(&self, model: &str) -> Result<BreakerState> {
        Ok(self.inner.endpoint(&ModelRef::parse(model)?).breaker.state())
    }
}

impl Endpoint {
    /// Whether the endpoint is on this machine (a loopback address or `localhost`), where servers
    /// usually need no key.
    fn local_host(&self) -> bool {
        let loopback = |host: &str| {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            host.eq_ignore_ascii_case("localhost")
                || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
        };
        self.local
            || reqwest::Url::parse(&self.url)
                .ok()
                .and_then(|u| u.host_str().map(loopback))
                .unwrap_or(false)
    }
}

impl Inner {
    /// Wait for the model's and the endpoint's permits; the time spent queueing moves the call's
    /// deadline back, since it is rvbbit's own limit and not the provider's time.
    async fn queued_permits(
        &self,
        endpoint: &Endpoint,
        model: &ModelRef,
        estimate: u64,
        state: &CallState,
    ) -> Vec<Permit> {
        let queued = Instant::now();
        let permits = self.permits(endpoint, model, estimate).await;
        state.extend(queued.elapsed());
        permits
    }

    /// One attempt, cut off at the call's deadline (`timeouts.total`, the one time limit of a call).
    async fn attempt<T>(
        &self,
        endpoint: &Endpoint,
        model: &str,
        state: &CallState,
        call: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        match tokio::time::timeout_at(state.deadline(), call).await {
            Ok(result) => result,
            Err(_) => Err(Error::Timeout {
                provider: endpoint.provider.name().to_owned(),
                model: model.to_owned(),
                phase: TimeoutPhase::Total,
                after: self.settings.timeouts.total,
            }),
        }
    }

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

    /// The breaker of `model`, created on first use.
    fn model_breaker(&self, model: &ModelRef) -> Arc<Breaker> {
        let key = format!("{:?}:{}", model.route, model.raw);
        let mut map = self.model_breakers.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(b) = map.get(&key) {
            return Arc::clone(b);
        }
        if map.len() >= MAX_MODEL_BREAKERS {
            map.retain(|_, b| !b.is_idle());
        }
        let breaker = Arc::new(Breaker::new(self.settings.breaker));
        if map.len() < MAX_MODEL_BREAKERS {
            map.insert(key, Arc::clone(&breaker));
        }
        breaker
    }

    /// Both breakers allow a call now, or the error of the one that does not.
    fn check_breakers(&self, endpoint: &Endpoint, breaker: &Breaker, model: &str) -> Result<()> {
        endpoint
            .breaker
            .check()
            .map_err(|wait| self.circuit_open(endpoint, model, wait))?;
        breaker
            .check()
            .map_err(|wait| self.circuit_open(endpoint, model, wait))
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

    /// Record the outcome of one attempt on the breakers and the limit windows: connection failures
    /// count against the endpoint, other signs of ill health (timeouts, 5xx, malformed replies) against
    /// the model alone, so one failing model does not block the others on its endpoint.
    fn record(
        endpoint: &Endpoint,
        breaker: &Breaker,
        permits: &[Permit],
        outcome: std::result::Result<u64, &Error>,
    ) {
        match outcome {
            Ok(tokens) => {
                endpoint.breaker.record_success();
                breaker.record_success();
                permits.iter().for_each(|p| p.settle(tokens));
            }
            Err(e) => {
                if e.counts_against_endpoint() {
                    endpoint.breaker.record_failure();
                } else if !matches!(e, Error::RateLimited { .. }) {
                    // Any answer proves the endpoint is up (and closes its half-open circuit).
                    endpoint.breaker.record_success();
                }
                if e.counts_against_model() {
                    breaker.record_failure();
                } else if !e.counts_against_endpoint() && !matches!(e, Error::RateLimited { .. }) {
                    // A client error says nothing bad about the model's health.
                    breaker.record_success();
                }
                // A rejected call consumed no tokens; it still counts as a request.
                permits.iter().for_each(|p| p.settle(0));
            }
        }
    }

    /// Decide whether to retry after `error` on retry number `retry`, and wait if so. A wait that would
    /// end past the call's `deadline` is not started: the call gives up (or falls back) at once.
    async fn backoff(&self, model: &str, error: &Error, retry: u32, deadline: Instant) -> bool {
        if !error.is_transient() {
            return false;
        }
        match next_attempt(&self.settings.retry, retry, error.retry_after()) {
            Next::GiveUp => false,
            Next::RetryAfter(wait) if Instant::now() + wait >= deadline => {
                tracing::warn!(model, retry, wait = ?wait, error = %error,
                    "Not retrying a provider call: the wait would pass the call's deadline.");
                false
            }
            Next::RetryAfter(wait) => {
                tracing::warn!(model, retry, wait = ?wait, error = %error, "Retrying a provider call.");
                tokio::time::sleep(wait).await;
                true
            }
        }
    }

    async fn chat_one(&self, request: &ChatRequest, state: &CallState) -> Result<ChatResponse> {
        let model = ModelRef::parse(&request.model)?;
        self.check_key(&model, &request.model)?;
        let endpoint = self.endpoint(&model);
        let breaker = self.model_breaker(&model);
        let estimate =
            request.estimated_prompt_tokens() + request.max_tokens.map_or(DEFAULT_OUTPUT_ESTIMATE, u64::from);
        let mut retry = 0;
        loop {
            retry += 1;
            if let Err(e) = self.check_breakers(endpoint, &breaker, &request.model) {
                state.failed(&request.model, &e);
                return Err(e);
            }
            let permits = self.queued_permits(endpoint, &model, estimate, state).await;
            let call = endpoint.provider.chat(request);
            let error = match self.attempt(endpoint, &request.model, state, call).await {
                Ok(mut reply) => {
                    Inner::record(endpoint, &breaker, &permits, Ok(reply.usage.total()));
                    self.finish(endpoint, &model, &mut reply);
                    return Ok(reply);
                }
                Err(e) => e,
            };
            Inner::record(endpoint, &breaker, &permits, Err(&error));
            state.failed(&request.model, &error);
            // Free the concurrency slots before sleeping: a backing-off call must not block others.
            drop(permits);
            if !self
                .backoff(&request.model, &error, retry, state.deadline())
                .await
            {
                return Err(error);
            }
        }
    }

    /// One embeddings call on the request's own model (no fallback: vectors of two models do not
    /// compare), with the same key check, breakers, limits, retries and deadline as a chat call.
    async fn embed_one(&self, request: &EmbedRequest, state: &CallState) -> Result<EmbedResponse> {
        let name = request.model.as_str();
        if name.trim().is_empty() {
            return Err(Error::Settings {
                message:
                    "an embeddings request names no model: set one (e.g. `openai/text-embedding-3-small`)"
                        .to_owned(),
            });
        }
        let model = ModelRef::parse(name)?;
        self.check_key(&model, name)?;
        let endpoint = self.endpoint(&model);
        let breaker = self.model_breaker(&model);
        let estimate = request.estimated_tokens();
        let mut retry = 0;
        loop {
            retry += 1;
            if let Err(e) = self.check_breakers(endpoint, &breaker, name) {
                state.failed(name, &e);
                return Err(e);
            }
            let permits = self.queued_permits(endpoint, &model, estimate, state).await;
            let call = endpoint.provider.embed(request);
            let error = match self.attempt(endpoint, name, state, call).await {
                Ok(mut reply) => {
                    Inner::record(endpoint, &breaker, &permits, Ok(reply.usage.total()));
                    reply.cost = if endpoint.local {
                        Cost::free(None)
                    } else if reply.cost.amount.is_some() {
                        reply.cost
                    } else {
                        self.settings
                            .prices
                            .estimate(&model.id, &reply.usage)
                            .map_or(Cost::UNKNOWN, Cost::estimated)
                    };
                    return Ok(reply);
                }
                Err(e) => e,
            };
            Inner::record(endpoint, &breaker, &permits, Err(&error));
            state.failed(name, &error);
            drop(permits);
            if !self.backoff(name, &error, retry, state.deadline()).await {
                return Err(error);
            }
        }
    }

    /// A remote endpoint that needs a key and has none fails at once, before any network traffic, with
    /// an error that names the variable and the alternatives.
    fn check_key(&self, model: &ModelRef, requested: &str) -> Result<()> {
        let endpoint = self.endpoint(model);
        if model.route == Route::Default && self.settings.api_key.is_none() && !endpoint.local_host() {
            return Err(Error::MissingKey {
                provider: endpoint.provider.name().to_owned(),
                model: requested.to_owned(),
                url: endpoint.url.clone(),
                key_env: self.settings.api_key_env.clone(),
            });
        }
        Ok(())
    }

    async fn stream_one(self: &Arc<Self>, request: &ChatRequest, state: &CallState) -> Result<ChatStream> {
        let model = ModelRef::parse(&request.model)?;
        self.check_key(&model, &request.model)?;
        let endpoint = self.endpoint(&model);
        let breaker = self.model_breaker(&model);
        let estimate =
            request.estimated_prompt_tokens() + request.max_tokens.map_or(DEFAULT_OUTPUT_ESTIMATE, u64::from);
        let mut retry = 0;
        loop {
            retry += 1;
            if let Err(e) = self.check_breakers(endpoint, &breaker, &request.model) {
                state.failed(&request.model, &e);
                return Err(e);
            }
            let permits = self.queued_permits(endpoint, &model, estimate, state).await;
            let open = async {
                let mut stream = endpoint.provider.chat_stream(request).await?;
                match stream.next().await {
                    Some(Ok(event)) => Ok((event, stream)),
                    Some(Err(e)) => Err(e),
                    None => Err(Error::InvalidResponse {
                        provider: endpoint.provider.name().to_owned(),
                        model: request.model.clone(),
                        message: "the stream ended without any event".to_owned(),
                        transient: true,
                    }),
                }
            };
            let first = self.attempt(endpoint, &request.model, state, open).await;
            let error = match first {
                Ok((event, rest)) => return Ok(self.guard_stream(model, breaker, permits, event, rest)),
                Err(e) => e,
            };
            Inner::record(endpoint, &breaker, &permits, Err(&error));
            state.failed(&request.model, &error);
            drop(permits);
            if !self
                .backoff(&request.model, &error, retry, state.deadline())
                .await
            {
                return Err(error);
            }
        }
    }

    /// Wrap a stream that has produced its first event: it holds the permits until it ends, and its
    /// outcome feeds the breaker, the token window and the cost.
    fn guard_stream(
        self: &Arc<Self>,
        model: ModelRef,
        breaker: Arc<Breaker>,
        permits: Vec<Permit>,
        first: StreamEvent,
        rest: ChatStream,
    ) -> ChatStream {
        struct Guard {
            inner: Arc<Inner>,
            model: ModelRef,
            breaker: Arc<Breaker>,
            permits: Vec<Permit>,
            ended: bool,
        }
        let guard = Guard {
            inner: Arc::clone(self),
            model,
            breaker,
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
                    Inner::record(endpoint, &guard.breaker, &guard.permits, Ok(reply.usage.total()));
                    guard.inner.finish(endpoint, &guard.model, &mut reply);
                    Ok(StreamEvent::Done(reply))
                }
                Ok(event) => Ok(event),
                Err(e) => {
                    guard.ended = true;
                    Inner::record(endpoint, &guard.breaker, &guard.permits, Err(&e));
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
        Error::Settings { .. } | Error::Internal(_) | Error::File { .. } | Error::MissingKey { .. }
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
        let state = CallState::new(inner.settings.timeouts.total);
        let state = &state;
        let mut reply = with_fallback(inner.chain(request), request, false, |attempt| async move {
            inner.chat_one(&attempt, state).await
        })
        .await?;
        reply.failed_attempts = state.take_failed();
        Ok(reply)
    }

    /// Embed `request.inputs` with `request.model` (never a fallback model: see [`crate::EmbedRequest`]).
    ///
    /// # Errors
    /// As [`Client::chat`], for the one model.
    async fn embed(&self, request: &EmbedRequest) -> Result<EmbedResponse> {
        let state = CallState::new(self.inner.settings.timeouts.total);
        self.inner.embed_one(request, &state).await
    }

    /// Stream from the first model of the chain that produces an event. Once an event has been
    /// delivered, a later failure is the stream's error: there is no fallback mid-reply.
    ///
    /// # Errors
    /// As [`Client::chat`] for failures before the first event.
    async fn chat_stream(&self, request: &ChatRequest) -> Result<ChatStream> {
        let inner = &self.inner;
        let state = CallState::new(inner.settings.timeouts.total);
        let state = &state;
        with_fallback(inner.chain(request), request, true, |attempt| async move {
            inner.stream_one(&attempt, state).await
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
    for (i, model) in chain.iter().enumerate() {
        let mut attempt = request.clone();
        attempt.model.clone_from(model);
        attempt.fallback_models.clear();
        let span = tracing::info_span!("llm_call", model = %model, streaming);
        match call(attempt).instrument(span).await {
            Ok(reply) => return Ok(reply),
            Err(e) if falls_back(&e) => {
                if let Some(next) = chain.get(i + 1) {
                    tracing::warn!(model = %model, next = %next, error = %e,
                        "Model failed; trying the next model of the fallback chain.");
                }
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
