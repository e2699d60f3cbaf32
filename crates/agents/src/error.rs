//! The crate's error: what a caller of [`crate::Agents`] can do about a refused message.

use rvbbit_core::ErrorCode;
use rvbbit_core::codes;

/// Why a message or a definition was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No agent has this name (RVB-G001).
    #[error("RVB-G001 no agent is named `{agent}`; defined: {known}")]
    UnknownAgent {
        /// The name asked for.
        agent: String,
        /// The names that exist, comma-separated (or `none`).
        known: String,
    },
    /// The message is larger than the agent accepts (RVB-G002).
    #[error(
        "RVB-G002 the message is {bytes} bytes; agent `{agent}` accepts at most {limit} (setting limits.max_message_bytes)"
    )]
    MessageTooLarge {
        /// The agent.
        agent: String,
        /// The message's size (text plus attachments as JSON).
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// A field of the conversation key is unusable, or too many attachments (RVB-G003).
    #[error("RVB-G003 {0}")]
    BadField(String),
    /// The conversation holds too many unanswered messages (RVB-G004).
    #[error(
        "RVB-G004 conversation {key} already holds {limit} unanswered messages (setting limits.max_pending_messages); send again later"
    )]
    Busy {
        /// The conversation key.
        key: String,
        /// The limit.
        limit: usize,
    },
    /// The agent definition is invalid (RVB-G005).
    #[error("RVB-G005 agent `{agent}`: {problems}")]
    BadDefinition {
        /// The agent.
        agent: String,
        /// Every problem, `; `-separated.
        problems: String,
    },
    /// The agents are shutting down (RVB-G006).
    #[error("RVB-G006 the agents are shutting down; the message was not accepted")]
    Unavailable,
}

impl Error {
    /// The error's code.
    pub fn code(&self) -> &'static ErrorCode {
        match self {
            Error::UnknownAgent { .. } => codes::G_UNKNOWN_AGENT,
            Error::MessageTooLarge { .. } => codes::G_MESSAGE_TOO_LARGE,
            Error::BadField(_) => codes::G_BAD_FIELD,
            Error::Busy { .. } => codes::G_BUSY,
            Error::BadDefinition { .. } => codes::G_BAD_DEFINITION,
            Error::Unavailable => codes::G_UNAVAILABLE,
        }
    }
}

/// The crate's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
