//! The crate's one error type; each variant maps to an `RVB-K…` code and an HTTP status.

use rvbbit_core::{ErrorCode, codes};

/// What went wrong with an inbound request or a chat command.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No integration of that kind has that name (HTTP 404).
    #[error("RVB-K003 no {kind} integration is named `{name}`")]
    UnknownIntegration {
        /// The kind in the URL.
        kind: String,
        /// The name in the URL.
        name: String,
    },
    /// The signature, token or timestamp did not verify (HTTP 401). The reason is logged, never
    /// answered.
    #[error("RVB-K002 the request to integration `{integration}` did not verify: {reason}")]
    Unverified {
        /// The integration.
        integration: String,
        /// Which check failed.
        reason: String,
    },
    /// The verified body is not the platform's payload (HTTP 400).
    #[error("RVB-K004 the request to integration `{integration}` is not a {kind} payload: {reason}")]
    BadRequest {
        /// The integration.
        integration: String,
        /// Its kind.
        kind: String,
        /// What is missing or malformed.
        reason: String,
    },
    /// The body is over [`crate::MAX_BODY`] (HTTP 413).
    #[error("RVB-A005 the request body is {bytes} bytes; hooks accept at most {limit}")]
    TooLarge {
        /// The body's size.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// A web chat message is over the integration's `max_message_bytes` (HTTP 413).
    #[error(
        "RVB-K010 the message is {bytes} bytes; web chat `{integration}` accepts at most {limit} \
         (`channels.{integration}.max_message_bytes`)"
    )]
    MessageTooLarge {
        /// The integration.
        integration: String,
        /// The body's size (as announced, or the limit plus one when it was cut off while read).
        bytes: usize,
        /// `max_message_bytes`.
        limit: usize,
    },
    /// A web chat integration has `max_streams` reply streams open already (HTTP 503).
    #[error(
        "RVB-K009 web chat `{integration}` has {limit} reply streams open, its limit \
         (`channels.{integration}.max_streams`)"
    )]
    StreamsFull {
        /// The integration.
        integration: String,
        /// `max_streams`.
        limit: usize,
    },
    /// A web chat visitor sent messages faster than `rate_per_minute` and `burst` allow (HTTP 429).
    #[error(
        "RVB-K007 rate limit: too many messages; try again in {wait_seconds} s \
         (`channels.{integration}.rate_per_minute` and `burst`)"
    )]
    RateLimited {
        /// The integration.
        integration: String,
        /// Seconds until the visitor may send again.
        wait_seconds: u64,
    },
    /// An integration written through the HTTP API is not a valid `[channels.NAME]` (HTTP 400).
    #[error("RVB-K001 `{key}`: {reason}")]
    Invalid {
        /// The offending key (`channels.NAME.KEY`).
        key: String,
        /// What is wrong (every problem found).
        reason: String,
        /// How to fix the first one.
        hint: String,
    },
    /// The integration is configured in rvbbit.toml, which the HTTP API does not change (HTTP 409).
    #[error(
        "RVB-K001 integration `{name}` is configured in rvbbit.toml (`[channels.{name}]`) and is          read-only through the API; edit rvbbit.toml and restart, or choose another name"
    )]
    ReadOnly {
        /// The integration.
        name: String,
    },
    /// The store holds the most integrations the API may add (HTTP 409).
    #[error(
        "RVB-K001 the API may configure at most {limit} integrations          (`rvbbit_channels::MAX_API_INTEGRATIONS`); delete one first"
    )]
    TooMany {
        /// The limit.
        limit: usize,
    },
    /// An outbound message could not be built (a bad `outbound_url`).
    #[error("RVB-K001 integration `{integration}`: {reason}")]
    Config {
        /// The integration.
        integration: String,
        /// What is wrong.
        reason: String,
    },
}

impl Error {
    /// The error's code.
    pub fn code(&self) -> &'static ErrorCode {
        match self {
            Error::UnknownIntegration { .. } => codes::K_UNKNOWN,
            Error::Unverified { .. } => codes::K_UNVERIFIED,
            Error::BadRequest { .. } => codes::K_BAD_REQUEST,
            Error::TooLarge { .. } => codes::A_TOO_LARGE,
            Error::Config { .. } | Error::Invalid { .. } | Error::ReadOnly { .. } | Error::TooMany { .. } => {
                codes::K_CONFIG
            }
            Error::MessageTooLarge { .. } => codes::K_MESSAGE_TOO_LARGE,
            Error::StreamsFull { .. } => codes::K_STREAMS_FULL,
            Error::RateLimited { .. } => codes::K_RATE_LIMITED,
        }
    }

    /// The HTTP status a hook answers with.
    pub fn status(&self) -> u16 {
        match self {
            Error::UnknownIntegration { .. } => 404,
            Error::Unverified { .. } => 401,
            Error::BadRequest { .. } => 400,
            Error::TooLarge { .. } => 413,
            Error::Config { .. } => 500,
            Error::Invalid { .. } => 400,
            Error::ReadOnly { .. } | Error::TooMany { .. } => 409,
            Error::MessageTooLarge { .. } => 413,
            Error::StreamsFull { .. } => 503,
            Error::RateLimited { .. } => 429,
        }
    }

    /// The message without its code, safe to answer to a client (no secret, no path).
    pub fn public_message(&self) -> String {
        match self {
            // Which check failed helps an attacker more than an operator (who has the log).
            Error::Unverified { integration, .. } => {
                format!("the request to integration `{integration}` did not verify")
            }
            e => {
                let text = e.to_string();
                text.split_once(' ').map_or(text.clone(), |(_, m)| m.to_owned())
            }
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
