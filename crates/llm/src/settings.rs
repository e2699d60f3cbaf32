//! The plain settings a [`crate::Client`] is built from. This crate never reads config files: the caller
//! (the CLI, the server) maps `rvbbit.toml` onto these structs. [`ProviderSettings::from_env`] is a
//! convenience for tools and tests that only have the environment.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::cost::PriceTable;

/// The default base URL: OpenRouter.
pub const OPENROUTER_BASE_URL: &str = "https://openrouter.ai/api/v1";
/// Where `ollama/<model>` goes.
pub const OLLAMA_BASE_URL: &str = "http://localhost:11434/v1";
/// The default model when none is configured.
pub const DEFAULT_MODEL: &str = "x-ai/grok-4.1-fast";

/// An API key. Its `Debug` output is `ApiKey(***)`, and it has no `Display`, so it cannot leak into
/// logs or error messages by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wrap a key.
    pub fn new(key: impl Into<String>) -> Self {
        ApiKey(key.into())
    }

    /// The secret itself, for building the `Authorization` header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

/// Per-call time limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Opening the connection (TCP + TLS). Default 10 s.
    pub connect: Duration,
    /// From sending the request to the response headers (for streams: to the first event). Default 60 s.
    pub first_byte: Duration,
    /// The whole call, body or stream included. Default 300 s.
    pub total: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            first_byte: Duration::from_secs(60),
            total: Duration::from_secs(300),
        }
    }
}

/// How transient failures (429, 5xx, timeouts, connection failures) are retried. Other 4xx never are.
///
/// The wait before retry `n` (1-based) is `Retry-After` when the provider sent one, otherwise a uniformly
/// random duration in `[0, min(max_backoff, initial_backoff × 2^(n-1))]` ("full jitter").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt. Default 4 (five attempts); 0 disables retrying.
    pub max_retries: u32,
    /// Backoff ceiling of the first retry. Default 500 ms.
    pub initial_backoff: Duration,
    /// Largest backoff ceiling. Default 30 s.
    pub max_backoff: Duration,
    /// A `Retry-After` longer than this is not waited for: the call fails with the rate-limit error
    /// at once (or falls back). Default 120 s.
    pub max_retry_after: Duration,
    /// Randomise backoff (full jitter). Default true; false waits the full ceiling (for reproducibility).
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 4,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
            jitter: true,
        }
    }
}

/// Concurrency and rate limits of one endpoint or one model. `None` means unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// Calls in flight at once.
    pub max_concurrency: Option<usize>,
    /// Requests started per minute.
    pub requests_per_minute: Option<u32>,
    /// Tokens (prompt + completion) per minute. Each call is charged an estimate up front (prompt
    /// `chars / 4` plus `max_tokens`, or 256 output tokens when unset) and corrected by its real usage.
    pub tokens_per_minute: Option<u64>,
}

impl Limits {
    /// No limits.
    pub fn unlimited() -> Self {
        Limits::default()
    }

    /// Set the concurrency limit.
    pub fn with_max_concurrency(mut self, n: usize) -> Self {
        self.max_concurrency = Some(n);
        self
    }

    /// Set the requests-per-minute limit.
    pub fn with_requests_per_minute(mut self, n: u32) -> Self {
        self.requests_per_minute = Some(n);
        self
    }

    /// Set the tokens-per-minute limit.
    pub fn with_tokens_per_minute(mut self, n: u64) -> Self {
        self.tokens_per_minute = Some(n);
        self
    }
}

/// The circuit breaker of one endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Consecutive endpoint failures (connection errors, timeouts, 5xx, malformed replies; not 4xx or
    /// 429) that open the circuit. Default 5; 0 disables the breaker.
    pub failure_threshold: u32,
    /// How long the circuit stays open before one probe call is let through. Default 30 s.
    pub cooldown: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        BreakerSettings {
            failure_threshold: 5,
            cooldown: Duration::from_secs(30),
        }
    }
}

/// Everything a [`crate::Client`] needs. Build it with [`ProviderSettings::new`] or
/// [`ProviderSettings::from_env`] and adjust the public fields.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ProviderSettings {
    /// Provider name used in errors, logs and responses. Default `openrouter`.
    pub name: String,
    /// OpenAI-compatible base URL (the part before `/chat/completions`).
    pub base_url: String,
    /// The key sent as `Authorization: Bearer …`; `None` sends no header (local servers).
    pub api_key: Option<ApiKey>,
    /// The variable the key should come from, named in the hint of an auth error.
    pub api_key_env: String,
    /// The model used when a request's model is empty.
    pub default_model: String,
    /// Where `ollama/<model>` goes. Default [`OLLAMA_BASE_URL`].
    pub ollama_base_url: String,
    /// Ask the provider to report cost inline (OpenRouter's `usage: {include: true}`). Strict OpenAI
    /// endpoints reject the field, so it defaults to true only for OpenRouter URLs.
    pub request_usage_cost: bool,
    /// The endpoint serves local models: every call costs exactly zero. Always true for Ollama.
    pub local: bool,
    /// Per-call time limits.
    pub timeouts: Timeouts,
    /// Retry policy for transient failures.
    pub retry: RetryPolicy,
    /// Limits of each endpoint (the configured provider and Ollama each get their own).
    pub limits: Limits,
    /// Extra limits per model id (as written in the request, suffix excluded).
    pub model_limits: BTreeMap<String, Limits>,
    /// Circuit breaker of each endpoint.
    pub breaker: BreakerSettings,
    /// Prices for cost estimates: the bundled table plus overrides.
    pub prices: PriceTable,
    /// Named fallback chains: a request whose model is a chain name tries its models in order.
    pub chains: BTreeMap<String, Vec<String>>,
}

impl ProviderSettings {
    /// Settings for an OpenAI-compatible endpoint at `base_url` with every other setting at its default.
    pub fn new(base_url: impl Into<String>) -> Self {
        let base_url = base_url.into().trim_end_matches('/').to_owned();
        let openrouter = base_url.contains("openrouter.ai");
        ProviderSettings {
            name: if openrouter {
                "openrouter".to_owned()
            } else {
                "openai-compatible".to_owned()
            },
            request_usage_cost: openrouter,
            api_key_env: if base_url.contains("api.openai.com") {
                "OPENAI_API_KEY".to_owned()
            } else {
                "OPENROUTER_API_KEY".to_owned()
            },
            base_url,
            api_key: None,
            default_model: DEFAULT_MODEL.to_owned(),
            ollama_base_url: OLLAMA_BASE_URL.to_owned(),
            local: false,
            timeouts: Timeouts::default(),
            retry: RetryPolicy::default(),
            limits: Limits::default(),
            model_limits: BTreeMap::new(),
            breaker: BreakerSettings::default(),
            prices: PriceTable::default(),
            chains: BTreeMap::new(),
        }
    }

    /// Settings from the process environment:
    ///
    /// | variable | effect |
    /// |---|---|
    /// | `RVBBIT_PROVIDER_BASE_URL` | base URL (default [`OPENROUTER_BASE_URL`]) |
    /// | `RVBBIT_DEFAULT_MODEL` | default model (default [`DEFAULT_MODEL`]) |
    /// | `OPENROUTER_API_KEY` | the key, for any base URL except `api.openai.com` |
    /// | `OPENAI_API_KEY` | the key for `api.openai.com`, and the fallback when `OPENROUTER_API_KEY` is unset |
    ///
    /// Empty variables count as unset.
    pub fn from_env() -> Self {
        ProviderSettings::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`ProviderSettings::from_env`] with an explicit variable lookup (for tests and embedding).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let var = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let mut settings = ProviderSettings::new(
            var("RVBBIT_PROVIDER_BASE_URL").unwrap_or_else(|| OPENROUTER_BASE_URL.to_owned()),
        );
        if let Some(model) = var("RVBBIT_DEFAULT_MODEL") {
            settings.default_model = model;
        }
        let order: [&str; 2] = if settings.api_key_env == "OPENAI_API_KEY" {
            ["OPENAI_API_KEY", "OPENROUTER_API_KEY"]
        } else {
            ["OPENROUTER_API_KEY", "OPENAI_API_KEY"]
        };
        settings.api_key = order.iter().find_map(|name| var(name)).map(ApiKey::new);
        settings
    }

    /// Set the key.
    pub fn with_api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(ApiKey::new(key));
        self
    }
}

impl Default for ProviderSettings {
    /// OpenRouter with every setting at its default and no key.
    fn default() -> Self {
        ProviderSettings::new(OPENROUTER_BASE_URL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_base_url_model_and_key() {
        let env = |name: &str| match name {
            "RVBBIT_PROVIDER_BASE_URL" => Some("http://127.0.0.1:9/v1/".to_owned()),
            "RVBBIT_DEFAULT_MODEL" => Some("ollama/qwen3".to_owned()),
            "OPENROUTER_API_KEY" => Some(String::new()),
            "OPENAI_API_KEY" => Some("sk-secret".to_owned()),
            _ => None,
        };
        let s = ProviderSettings::from_lookup(env);
        assert_eq!(s.base_url, "http://127.0.0.1:9/v1");
        assert_eq!(s.default_model, "ollama/qwen3");
        assert_eq!(s.api_key.as_ref().map(ApiKey::expose), Some("sk-secret"));
        assert!(!s.request_usage_cost);
    }

    #[test]
    fn keys_never_appear_in_debug_output() {
        let s = ProviderSettings::default().with_api_key("sk-or-very-secret");
        let debug = format!("{s:?}");
        assert!(!debug.contains("very-secret"), "{debug}");
        assert!(debug.contains("ApiKey(***)"));
        assert!(s.request_usage_cost);
    }
}
