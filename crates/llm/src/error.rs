//! The one error type of this crate, each variant mapped to a stable `rvbbit-core` code.

use std::time::Duration;

use rvbbit_core::codes::{self, ErrorCode};

/// A `Result` whose error defaults to this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which per-call time limit ran out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimeoutPhase {
    /// Opening the TCP/TLS connection took longer than `timeouts.connect`.
    Connect,
    /// The response headers (or, when streaming, the first event) did not arrive within `timeouts.first_byte`.
    FirstByte,
    /// The whole call took longer than `timeouts.total`.
    Total,
}

impl std::fmt::Display for TimeoutPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TimeoutPhase::Connect => "connect",
            TimeoutPhase::FirstByte => "first byte",
            TimeoutPhase::Total => "total",
        })
    }
}

/// Everything that can go wrong in a provider call.
///
/// Variants are chosen by what the caller can do: fix credentials ([`Error::Auth`]), fix the model id
/// ([`Error::UnknownModel`]), fix the request ([`Error::BadRequest`]), wait or slow down
/// ([`Error::RateLimited`], [`Error::CircuitOpen`]) or try again later / configure a fallback (the rest).
/// Every variant names the provider and model, and [`Error::code`] gives its stable `RVB-L…` code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The endpoint could not be reached: connection refused or reset, DNS or TLS failure, connect timeout.
    #[error("cannot reach provider `{provider}` at {url} for model `{model}`: {message}")]
    Unreachable {
        /// Provider name, such as `openrouter`.
        provider: String,
        /// Model requested.
        model: String,
        /// Endpoint URL (never contains the key).
        url: String,
        /// What the transport reported.
        message: String,
        /// The transport error, when there is one.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// A per-call time limit ran out after the connection was made.
    #[error("provider `{provider}` timed out ({phase}, after {after:?}) for model `{model}`")]
    Timeout {
        /// Provider name.
        provider: String,
        /// Model requested.
        model: String,
        /// Which limit ran out.
        phase: TimeoutPhase,
        /// The limit that was exceeded.
        after: Duration,
    },
    /// A remote endpoint needs an API key and none is configured; no call was made.
    #[error("no API key for provider `{provider}` at {url} (model `{model}`): `{key_env}` is not set")]
    MissingKey {
        /// Provider name.
        provider: String,
        /// Model requested.
        model: String,
        /// Endpoint URL.
        url: String,
        /// The environment variable that should hold the key.
        key_env: String,
    },
    /// The provider rejected the credentials (HTTP 401 or 403).
    #[error("provider `{provider}` rejected the API key (HTTP {status}) for model `{model}`: {message}")]
    Auth {
        /// Provider name.
        provider: String,
        /// Model requested.
        model: String,
        /// HTTP status.
        status: u16,
        /// The provider's message.
        message: String,
        /// The environment variable that should hold the key, for the hint.
        key_env: String,
    },
    /// The provider kept answering 429.
    #[error("provider `{provider}` rate-limited model `{model}` (HTTP {status}): {message}")]
    RateLimited {
        /// Provider name.
        provider: String,
        /// Model requested.
        model: String,
        /// HTTP status (429).
        status: u16,
        /// The provider's message.
        message: String,
        /// The wait the provider asked for, from `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// The provider does not know the model.
    #[error("provider `{provider}` does not know model `{model}` (HTTP {status}): {message}")]
    UnknownModel {
        /// Provider name.
        provider: String,
        /// Model requested.
        model: String,
        /// HTTP status.
        status: u16,
        /// The provider's message.
        message: String,
        /// Known model ids close to the requested one.
        suggestions: Vec<String>,
    },
    /// The provider rejected the request with another 4xx.
    #[error("provider `{provider}` rejected the request for model `{model}` (HTTP {status}): {message}")]
    BadRequest {
        /// Provider name.
        provider: String,
        /// Model requested.
        model: String,
        /// HTTP status.
        status: u16,
        /// The provider's message.
        message: String,
    },
    /// The provider failed: a 5xx, or an error reported inside an otherwise successful response.
    #[error("provider `{provider}` failed for model `{model}`{}: {message}", status_suffix(*.status))]
    Provider {
        /// Provider name.
        provider: String,
        /// Model requested.
        model: String,
        /// HTTP status, when the failure had one.
        status: Option<u16>,
        /// The provider's message.
        message: String,
        /// The wait the provider asked for, from `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// The response was not the protocol we expect: malformed JSON, a truncated stream, a missing field.
    #[error("provider `{provider}` sent an invalid response for model `{model}`: {message}")]
    InvalidResponse {
        /// Provider name.
        provider: String,
        /// Model requested.
        model: String,
        /// What was wrong.
        message: String,
        /// Whether retrying may help (true for truncation and malformed bodies).
        transient: bool,
    },
    /// The replay file holds no response for this request.
    #[error("no recorded response in {file} for request {hash} (model `{model}`, last message: {summary:?})")]
    ReplayMiss {
        /// The replay file.
        file: String,
        /// The canonical request hash that was looked up.
        hash: String,
        /// Model requested.
        model: String,
        /// The start of the last message, to recognise the request.
        summary: String,
    },
    /// The endpoint's circuit breaker is open after repeated failures.
    #[error("circuit open for provider `{provider}` at {url} (model `{model}`); next probe in {retry_in:?}")]
    CircuitOpen {
        /// Provider name.
        provider: String,
        /// Model requested.
        model: String,
        /// Endpoint URL.
        url: String,
        /// Time until the breaker lets a probe through.
        retry_in: Duration,
    },
    /// Every model of a fallback chain failed; `last` is the final failure.
    #[error("all {} models of the fallback chain failed; last: {last}", .tried.len())]
    FallbackExhausted {
        /// The models tried, in order, with their error messages.
        tried: Vec<(String, String)>,
        /// The last error, which decides the code.
        #[source]
        last: Box<Error>,
    },
    /// The settings are invalid (an unparsable base URL, a bad limit).
    #[error("invalid provider settings: {message}")]
    Settings {
        /// What is wrong and which setting.
        message: String,
    },
    /// Reading or writing a record/replay file failed.
    #[error("cannot use record/replay file {path}: {source}")]
    File {
        /// The file.
        path: String,
        /// The I/O or parse error.
        #[source]
        source: std::io::Error,
    },
    /// A broken invariant inside this crate.
    #[error("internal error in rvbbit-llm (this is a bug): {0}")]
    Internal(String),
}

fn status_suffix(status: Option<u16>) -> String {
    status.map(|s| format!(" (HTTP {s})")).unwrap_or_default()
}

impl Error {
    /// The stable error code, which decides the exit code.
    pub fn code(&self) -> &'static ErrorCode {
        match self {
            Error::Unreachable { .. } => codes::L_UNREACHABLE,
            Error::Timeout {
                phase: TimeoutPhase::Connect,
                ..
            } => codes::L_UNREACHABLE,
            Error::Timeout { .. } | Error::Provider { .. } | Error::InvalidResponse { .. } => {
                codes::L_PROVIDER_ERROR
            }
            Error::Auth { .. } => codes::L_AUTH,
            Error::MissingKey { .. } => codes::C_NO_API_KEY,
            Error::RateLimited { .. } => codes::L_RATE_LIMITED,
            Error::UnknownModel { .. } => codes::L_UNKNOWN_MODEL,
            Error::BadRequest { .. } => codes::L_BAD_REQUEST,
            Error::ReplayMiss { .. } => codes::L_REPLAY_MISS,
            Error::CircuitOpen { .. } => codes::L_CIRCUIT_OPEN,
            Error::FallbackExhausted { last, .. } => last.code(),
            Error::Settings { .. } => codes::C_INVALID,
            Error::File { .. } => codes::L_RECORDING_FILE,
            Error::Internal(_) => codes::INTERNAL,
        }
    }

    /// A one-line suggestion for the user.
    pub fn hint(&self) -> String {
        match self {
            Error::Unreachable { url, .. } => {
                format!("check that {url} is right (RVBBIT_PROVIDER_BASE_URL) and the server is up")
            }
            Error::Timeout { phase, .. } => {
                format!(
                    "the provider was too slow ({phase}); raise the timeout or configure a fallback model"
                )
            }
            Error::Auth { key_env, .. } => format!("set {key_env} to a valid key for this provider"),
            Error::MissingKey { key_env, .. } => format!(
                "export {key_env}=<your key>; or try it offline with `--provider mock` or `--replay FILE`; \
                 or point RVBBIT_PROVIDER_BASE_URL at a local OpenAI-compatible server (which needs no key)"
            ),
            Error::RateLimited { .. } => {
                "lower concurrency or requests/tokens per minute, or raise the account's limits".to_owned()
            }
            Error::UnknownModel { suggestions, .. } if !suggestions.is_empty() => {
                format!("did you mean {}?", suggestions.join(", "))
            }
            Error::UnknownModel { .. } => "use a model id the provider lists".to_owned(),
            Error::BadRequest { .. } => {
                "read the provider's message; shorten the context or fix the tool definitions".to_owned()
            }
            Error::Provider { .. } | Error::InvalidResponse { .. } => {
                "retry later, or configure a fallback chain (`model: [a, b]`)".to_owned()
            }
            Error::ReplayMiss { .. } => {
                "the request changed since the recording was made; record again with --record FILE".to_owned()
            }
            Error::CircuitOpen { .. } => {
                "wait for the cool-down, or configure a fallback model on another endpoint".to_owned()
            }
            Error::FallbackExhausted { last, .. } => last.hint(),
            Error::Settings { .. } => "fix the named setting".to_owned(),
            Error::File { .. } => "check the path and that the file was written by --record".to_owned(),
            Error::Internal(_) => "report this bug with the command you ran".to_owned(),
        }
    }

    /// The HTTP status the provider answered with, when there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Auth { status, .. }
            | Error::RateLimited { status, .. }
            | Error::UnknownModel { status, .. }
            | Error::BadRequest { status, .. } => Some(*status),
            Error::Provider { status, .. } => *status,
            Error::FallbackExhausted { last, .. } => last.status(),
            _ => None,
        }
    }

    /// The model the failing call asked for, when the error concerns one call.
    pub fn model(&self) -> Option<&str> {
        match self {
            Error::Unreachable { model, .. }
            | Error::Timeout { model, .. }
            | Error::Auth { model, .. }
            | Error::MissingKey { model, .. }
            | Error::RateLimited { model, .. }
            | Error::UnknownModel { model, .. }
            | Error::BadRequest { model, .. }
            | Error::Provider { model, .. }
            | Error::InvalidResponse { model, .. }
            | Error::ReplayMiss { model, .. }
            | Error::CircuitOpen { model, .. } => Some(model),
            Error::FallbackExhausted { last, .. } => last.model(),
            _ => None,
        }
    }

    /// The provider the failing call went to, when the error concerns one call.
    pub fn provider(&self) -> Option<&str> {
        match self {
            Error::Unreachable { provider, .. }
            | Error::Timeout { provider, .. }
            | Error::Auth { provider, .. }
            | Error::MissingKey { provider, .. }
            | Error::RateLimited { provider, .. }
            | Error::UnknownModel { provider, .. }
            | Error::BadRequest { provider, .. }
            | Error::Provider { provider, .. }
            | Error::InvalidResponse { provider, .. }
            | Error::CircuitOpen { provider, .. } => Some(provider),
            Error::FallbackExhausted { last, .. } => last.provider(),
            _ => None,
        }
    }

    /// Whether the same call may succeed if repeated: 429, 5xx, timeouts, connection failures, truncated
    /// or malformed responses. Other 4xx never are.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Unreachable { .. }
            | Error::Timeout { .. }
            | Error::RateLimited { .. }
            | Error::Provider { .. } => true,
            Error::InvalidResponse { transient, .. } => *transient,
            _ => false,
        }
    }

    /// Whether this failure says the endpoint itself cannot be reached (counts towards opening the
    /// endpoint's circuit breaker, which every model on it shares): connection failures only.
    pub(crate) fn counts_against_endpoint(&self) -> bool {
        matches!(
            self,
            Error::Unreachable { .. }
                | Error::Timeout {
                    phase: TimeoutPhase::Connect,
                    ..
                }
        )
    }

    /// Whether this failure says the model is unhealthy (counts towards opening the model's circuit
    /// breaker): timeouts after connecting, 5xx, malformed replies. Rate limits and client errors do
    /// not: the endpoint answered sensibly.
    pub(crate) fn counts_against_model(&self) -> bool {
        matches!(
            self,
            Error::Timeout { phase, .. } if *phase != TimeoutPhase::Connect
        ) || matches!(
            self,
            Error::Provider { .. } | Error::InvalidResponse { transient: true, .. }
        )
    }

    /// The wait the provider asked for with `Retry-After`, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::RateLimited { retry_after, .. } | Error::Provider { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_transience_follow_the_contract() {
        let auth = Error::Auth {
            provider: "openrouter".into(),
            model: "m".into(),
            status: 401,
            message: "bad key".into(),
            key_env: "OPENROUTER_API_KEY".into(),
        };
        assert_eq!(auth.code().code, "RVB-L002");
        assert!(!auth.is_transient());
        assert!(auth.hint().contains("set OPENROUTER_API_KEY"));
        let busy = Error::Provider {
            provider: "p".into(),
            model: "m".into(),
            status: Some(503),
            message: "down".into(),
            retry_after: None,
        };
        assert!(busy.is_transient());
        assert_eq!(busy.code().code, "RVB-L006");
        assert_eq!(
            busy.to_string(),
            "provider `p` failed for model `m` (HTTP 503): down"
        );
        let chain = Error::FallbackExhausted {
            tried: vec![],
            last: Box::new(busy),
        };
        assert_eq!(chain.code().code, "RVB-L006");
        assert_eq!(chain.status(), Some(503));
    }
}
