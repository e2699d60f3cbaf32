//! One OpenAI-compatible endpoint (OpenRouter, OpenAI, Ollama, vLLM, llama.cpp server, LM Studio):
//! a single HTTP attempt per call, with the connect, first-byte and total timeouts, and every failure
//! mapped to a typed [`Error`]. Retries, limits and fallback live in [`crate::Client`].

mod sse;
mod wire;

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use serde_json::Value;
use tokio::time::Instant;

use crate::embed::{EmbedRequest, EmbedResponse};
use crate::error::{Error, Result, TimeoutPhase};
use crate::model::ModelRef;
use crate::provider::Provider;
use crate::request::ChatRequest;
use crate::response::{ChatResponse, ChatStream, stream_from_response};
use crate::retry::parse_retry_after;
use crate::settings::{ApiKey, ProviderSettings, Timeouts};

/// An HTTP client for one OpenAI-compatible `/chat/completions` endpoint.
///
/// Each call is exactly one HTTP request: no retries, no limits. Wrap it in a [`crate::Client`] (which
/// [`crate::Client::new`] does for you) for those.
#[derive(Clone, Debug)]
pub struct OpenAiProvider {
    name: String,
    base_url: String,
    url: String,
    api_key: Option<ApiKey>,
    api_key_env: String,
    timeouts: Timeouts,
    request_usage_cost: bool,
    known_models: Vec<String>,
    connect_timeout: Duration,
    /// Built at the first request: building it (TLS roots) costs milliseconds that a run without LLM
    /// cells should not pay at start-up (issue 21).
    http: std::sync::OnceLock<std::result::Result<reqwest::Client, String>>,
}

impl OpenAiProvider {
    /// A client for the endpoint described by `settings` (its base URL, key and timeouts).
    ///
    /// # Errors
    /// [`Error::Settings`] when the base URL is not an `http(s)://` URL or the HTTP client cannot be built.
    pub fn new(settings: &ProviderSettings) -> Result<Self> {
        OpenAiProvider::build(
            &settings.name,
            &settings.base_url,
            settings.api_key.clone(),
            settings,
            settings.request_usage_cost,
        )
    }

    /// A client for the local Ollama endpoint (`settings.ollama_base_url`), with no key.
    ///
    /// # Errors
    /// As [`OpenAiProvider::new`].
    pub fn ollama(settings: &ProviderSettings) -> Result<Self> {
        OpenAiProvider::build("ollama", &settings.ollama_base_url, None, settings, false)
    }

    fn build(
        name: &str,
        base_url: &str,
        api_key: Option<ApiKey>,
        settings: &ProviderSettings,
        request_usage_cost: bool,
    ) -> Result<Self> {
        let base_url = base_url.trim_end_matches('/').to_owned();
        let parsed = reqwest::Url::parse(&base_url).map_err(|e| Error::Settings {
            message: format!("base URL `{base_url}` of provider `{name}` is not a URL: {e}"),
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(Error::Settings {
                message: format!(
                    "base URL `{base_url}` of provider `{name}` must start with http:// or https://"
                ),
            });
        }
        let mut known_models: Vec<String> = settings.prices.models().map(str::to_owned).collect();
        known_models.extend(settings.chains.values().flatten().cloned());
        Ok(OpenAiProvider {
            name: name.to_owned(),
            url: format!("{base_url}/chat/completions"),
            base_url,
            api_key,
            api_key_env: settings.api_key_env.clone(),
            timeouts: settings.timeouts,
            request_usage_cost,
            known_models,
            connect_timeout: settings.timeouts.connect,
            http: std::sync::OnceLock::new(),
        })
    }

    /// The HTTP client, built at the first call. A plain `http://` base URL (a local server such as
    /// Ollama or the test kit) needs no TLS: its client skips loading the system's root certificates,
    /// which reads and parses every file of the certificate directory (milliseconds on the first call
    /// of every process, issue 24).
    fn http(&self) -> Result<&reqwest::Client> {
        self.http
            .get_or_init(|| {
                let plain = self.base_url.starts_with("http://");
                reqwest::Client::builder()
                    .connect_timeout(self.connect_timeout)
                    .pool_idle_timeout(Duration::from_secs(90))
                    .tls_built_in_root_certs(!plain)
                    .build()
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| Error::Settings {
                message: format!("cannot build the HTTP client: {e}"),
            })
    }

    /// The base URL (never contains the key).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Send the request and wait for the response headers (the first-byte timeout).
    async fn send(&self, req: &ChatRequest, model: &ModelRef, stream: bool) -> Result<reqwest::Response> {
        let body = wire::encode_request(
            req,
            model,
            wire::EncodeOptions {
                stream,
                request_usage_cost: self.request_usage_cost,
            },
        );
        self.post_json(&self.url, &body, &req.model).await
    }

    /// POST `body` to `url` with the key, and wait for the response headers (the first-byte timeout);
    /// a non-success status is the typed error its body describes.
    async fn post_json(&self, url: &str, body: &Value, model: &str) -> Result<reqwest::Response> {
        let mut builder = self.http()?.post(url).json(body);
        if let Some(key) = &self.api_key {
            builder = builder.bearer_auth(key.expose());
        }
        let first_byte = self.timeouts.first_byte.min(self.timeouts.total);
        let response = match tokio::time::timeout(first_byte, builder.send()).await {
            Err(_) => return Err(self.timeout(model, TimeoutPhase::FirstByte, first_byte)),
            Ok(Err(e)) => return Err(self.transport_error(model, e)),
            Ok(Ok(r)) => r,
        };
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let retry_after = retry_after(response.headers());
        // The error body is small; give it what is left of the total budget.
        let text = match tokio::time::timeout(self.timeouts.total, response.text()).await {
            Ok(Ok(text)) => text,
            _ => String::new(),
        };
        Err(self.status_error(model, status, retry_after, &text))
    }

    /// The whole body of `response` as JSON, within what is left of the total timeout since `started`.
    async fn json_body(&self, model: &str, response: reqwest::Response, started: Instant) -> Result<Value> {
        let remaining = self.timeouts.total.saturating_sub(started.elapsed());
        let bytes = match tokio::time::timeout(remaining, response.bytes()).await {
            Err(_) => return Err(self.timeout(model, TimeoutPhase::Total, self.timeouts.total)),
            Ok(Err(e)) => {
                return Err(self.invalid(
                    model,
                    format!("the body broke off: {}", rvbbit_core::error_chain(&e)),
                ));
            }
            Ok(Ok(b)) => b,
        };
        serde_json::from_slice(&bytes).map_err(|e| {
            let preview: String = String::from_utf8_lossy(&bytes).chars().take(120).collect();
            self.invalid(model, format!("the body is not JSON ({e}): {preview}"))
        })
    }

    fn timeout(&self, model: &str, phase: TimeoutPhase, after: Duration) -> Error {
        Error::Timeout {
            provider: self.name.clone(),
            model: model.to_owned(),
            phase,
            after,
        }
    }

    fn transport_error(&self, model: &str, e: reqwest::Error) -> Error {
        if e.is_timeout() && e.is_connect() {
            return self.timeout(model, TimeoutPhase::Connect, self.timeouts.connect);
        }
        Error::Unreachable {
            provider: self.name.clone(),
            model: model.to_owned(),
            url: self.base_url.clone(),
            message: rvbbit_core::error_chain(&e),
            source: Some(Box::new(e)),
        }
    }

    fn invalid(&self, model: &str, message: String) -> Error {
        Error::InvalidResponse {
            provider: self.name.clone(),
            model: model.to_owned(),
            message,
            transient: true,
        }
    }

    fn status_error(
        &self,
        model: &str,
        status: StatusCode,
        retry_after: Option<Duration>,
        body: &str,
    ) -> Error {
        let message = serde_json::from_str::<Value>(body)
            .ok()
            .and_then(|v| wire::error_message(&v))
            .unwrap_or_else(|| body.chars().take(500).collect());
        let (provider, model, code) = (self.name.clone(), model.to_owned(), status.as_u16());
        match code {
            401 | 403 => Error::Auth {
                provider,
                model,
                status: code,
                message,
                key_env: self.api_key_env.clone(),
            },
            429 => Error::RateLimited {
                provider,
                model,
                status: code,
                message,
                retry_after,
            },
            400..=499 if code == 404 || mentions_unknown_model(&message) => {
                let suggestions = suggest(&model, &self.known_models);
                Error::UnknownModel {
                    provider,
                    model,
                    status: code,
                    message,
                    suggestions,
                }
            }
            400..=499 => Error::BadRequest {
                provider,
                model,
                status: code,
                message,
            },
            _ => Error::Provider {
                provider,
                model,
                status: Some(code),
                message,
                retry_after,
            },
        }
    }
}

#[async_trait]
impl Provider for OpenAiProvider {
    fn name(&self) -> &str {
        &self.name
    }

    async fn embed(&self, request: &EmbedRequest) -> Result<EmbedResponse> {
        let started = Instant::now();
        let model = ModelRef::parse(&request.model)?;
        if request.inputs.is_empty() {
            return Ok(EmbedResponse::new(&self.name, &request.model, Vec::new()));
        }
        let body = crate::embed::encode(&model.id, &request.inputs);
        let url = format!("{}/embeddings", self.base_url);
        let response = self.post_json(&url, &body, &request.model).await?;
        let body = self.json_body(&request.model, response, started).await?;
        let (vectors, usage) = crate::embed::decode(&body, request.inputs.len())
            .map_err(|m| self.invalid(&request.model, format!("embeddings: {m}")))?;
        let mut reply = EmbedResponse::new(&self.name, &request.model, vectors);
        reply.usage = usage;
        Ok(reply)
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse> {
        let started = Instant::now();
        let model = ModelRef::parse(&request.model)?;
        let response = self.send(request, &model, false).await?;
        self.chat_from_body(request, response, started).await
    }

    async fn chat_stream(&self, request: &ChatRequest) -> Result<ChatStream> {
        let started = Instant::now();
        let model = ModelRef::parse(&request.model)?;
        let response = self.send(request, &model, true).await?;
        let is_sse = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if !is_sse {
            // Some servers ignore `stream: true` and answer with one JSON document.
            return Ok(stream_from_response(
                self.chat_from_body(request, response, started).await?,
            ));
        }
        let ctx = sse::StreamContext {
            provider: self.name.clone(),
            model: request.model.clone(),
            deadline: started + self.timeouts.total,
            first_event_deadline: started + self.timeouts.first_byte,
            total: self.timeouts.total,
            first_byte: self.timeouts.first_byte,
        };
        Ok(sse::parse(Box::pin(response.bytes_stream()), ctx))
    }
}

impl OpenAiProvider {
    async fn chat_from_body(
        &self,
        request: &ChatRequest,
        response: reqwest::Response,
        started: Instant,
    ) -> Result<ChatResponse> {
        let body = self.json_body(&request.model, response, started).await?;
        if let Some(message) = wire::error_message(&body) {
            // OpenRouter reports some upstream failures as an error object inside a 200.
            return Err(Error::Provider {
                provider: self.name.clone(),
                model: request.model.clone(),
                status: None,
                message,
                retry_after: None,
            });
        }
        // A 200 whose body lacks `choices` (or a message) is a provider glitch seen in the wild: retry it
        // like a malformed body.
        wire::decode_response(&self.name, &request.model, &body).map_err(|m| self.invalid(&request.model, m))
    }
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    // OpenAI sends the finer `retry-after-ms` next to `Retry-After`.
    if let Some(ms) = headers
        .get("retry-after-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, SystemTime::now()))
}

fn mentions_unknown_model(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("model")
        && [
            "not found",
            "not a valid model",
            "does not exist",
            "unknown model",
            "no endpoints found",
            "invalid model",
        ]
        .iter()
        .any(|p| m.contains(p))
}

/// Up to three known model ids close to `model`.
fn suggest(model: &str, known: &[String]) -> Vec<String> {
    let mut scored: Vec<(f64, &String)> = known
        .iter()
        .map(|k| (strsim::jaro_winkler(model, k), k))
        .filter(|(score, _)| *score > 0.8)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut out: Vec<String> = Vec::new();
    for (_, k) in scored {
        if !out.contains(k) && out.len() < 3 {
            out.push(k.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_are_close_matches() {
        let known = vec![
            "openai/gpt-4o-mini".to_owned(),
            "openai/gpt-4o".to_owned(),
            "x-ai/grok-4".to_owned(),
        ];
        let s = suggest("openai/gpt-4o-mni", &known);
        assert_eq!(s.first().map(String::as_str), Some("openai/gpt-4o-mini"));
        assert!(!s.contains(&"x-ai/grok-4".to_owned()));
    }

    #[test]
    fn unknown_model_messages_are_recognised() {
        assert!(mentions_unknown_model("The model `gpt-9` does not exist"));
        assert!(mentions_unknown_model("openai/gpt-9 is not a valid model ID"));
        assert!(!mentions_unknown_model("context length exceeded"));
    }
}
