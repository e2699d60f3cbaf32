//! The engine's error type, mapped to stable codes of `rvbbit-core`.

use std::time::Duration;

use rvbbit_core::{ErrorCode, codes};

/// A `Result` with the engine's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a run (or one of its cells) failed. Each variant maps to a code ([`Error::code`]) whose class
/// decides the process exit code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A cell failed for a reason of its own (a template error, a bad tool result, a failed ward).
    #[error("cell `{cell}` failed: {message}")]
    CellFailed {
        /// The cell.
        cell: String,
        /// What went wrong.
        message: String,
    },
    /// The output never satisfied `output_schema` within `rules.max_attempts`.
    #[error("cell `{cell}`: output did not satisfy output_schema after {attempts} attempt(s): {error}")]
    SchemaUnsatisfied {
        /// The cell.
        cell: String,
        /// Attempts made.
        attempts: u32,
        /// The last schema error.
        error: String,
    },
    /// The cascade uses a feature this build does not run yet.
    #[error("cell `{cell}` uses {feature}, which rvbbit does not run yet")]
    Unsupported {
        /// The cell.
        cell: String,
        /// The feature (a key or a tool name).
        feature: String,
    },
    /// A tool raised a failure and the cell has no `on_error`.
    #[error("cell `{cell}`: tool `{tool}` failed: {message}")]
    ToolFailed {
        /// The cell.
        cell: String,
        /// The tool.
        tool: String,
        /// The tool's error message.
        message: String,
    },
    /// A tool did not finish within its time limit.
    #[error("cell `{cell}`: tool `{tool}` timed out after {}", humanize(*.after))]
    ToolTimeout {
        /// The cell.
        cell: String,
        /// The tool.
        tool: String,
        /// The limit that was exceeded.
        after: Duration,
    },
    /// The LLM provider failed (after the client's retries and fallbacks).
    #[error("cell `{cell}`: {source}")]
    Llm {
        /// The cell.
        cell: String,
        /// The provider error.
        #[source]
        source: Box<rvbbit_llm::Error>,
    },
    /// The store failed in a way the writer could not absorb.
    #[error("event store: {0}")]
    Store(#[from] rvbbit_store::Error),
    /// The run was cancelled (Ctrl-C, SIGTERM, or a cancellation token).
    #[error("the run was cancelled")]
    Cancelled,
    /// The run stopped to wait for a human: the session is `waiting` with a pending checkpoint.
    #[error("cell `{cell}` waits for a human answer (signal `{signal}` of session {session_id})")]
    Waiting {
        /// The asking cell.
        cell: String,
        /// The signal that answers it.
        signal: String,
        /// The waiting session.
        session_id: rvbbit_core::SessionId,
    },
    /// An answer does not fit the question it answers.
    #[error("{message}")]
    Answer {
        /// The asking cell.
        cell: String,
        /// What shape was expected.
        message: String,
    },
    /// A session has no waiting signal of that name.
    #[error("session {session_id} has no waiting signal `{name}`; {}", waiting_list(.waiting))]
    NoWaitingSignal {
        /// The session.
        session_id: rvbbit_core::SessionId,
        /// The signal asked for.
        name: String,
        /// The signals it waits for.
        waiting: Vec<String>,
    },
    /// A session cannot be resumed (not waiting, no checkpoint, no store, no recorded cascade).
    #[error("session {session_id} cannot be resumed: {reason}")]
    NotResumable {
        /// The session.
        session_id: rvbbit_core::SessionId,
        /// Why not.
        reason: String,
    },
    /// A broken invariant: this is a bug.
    #[error("internal error (this is a bug): {0}")]
    Internal(String),
}

impl Error {
    /// The stable code of this error; its class decides the exit code.
    pub fn code(&self) -> &'static ErrorCode {
        match self {
            Error::CellFailed { .. } => codes::E_CELL_FAILED,
            Error::SchemaUnsatisfied { .. } => codes::E_SCHEMA_UNSATISFIED,
            Error::Unsupported { .. } => codes::E_UNSUPPORTED,
            Error::ToolFailed { .. } => codes::T_FAILED,
            Error::ToolTimeout { .. } => codes::T_TIMEOUT,
            Error::Llm { source, .. } => source.code(),
            Error::Store(e) => e.code(),
            Error::Cancelled => codes::E_CELL_FAILED,
            Error::Waiting { .. } => codes::H_WAITING,
            Error::Answer { .. } => codes::C_ANSWER,
            Error::NotResumable { .. } => codes::S_CONFLICT,
            Error::NoWaitingSignal { .. } => codes::S_NOT_FOUND,
            Error::Internal(_) => codes::INTERNAL,
        }
    }

    /// How to fix it, in one sentence.
    pub fn hint(&self) -> String {
        match self {
            Error::CellFailed { .. } => {
                "see the cell's events with `rvbbit debug trace SESSION`; add `on_error` to route failures".into()
            }
            Error::SchemaUnsatisfied { .. } => {
                "loosen output_schema, raise rules.max_attempts, or say the expected JSON shape in the instructions"
                    .into()
            }
            Error::Unsupported { .. } => {
                "this part of the cascade language comes with a later rvbbit release; see docs/engine.md".into()
            }
            Error::ToolFailed { .. } => {
                "fix the tool inputs, or add `on_error: <cell>` (or `routing`) to handle the failure".into()
            }
            Error::ToolTimeout { .. } => "raise the cell's `timeout`, or make the tool faster".into(),
            Error::Llm { source, .. } => source.hint(),
            Error::Store(e) => e.hint(),
            Error::Cancelled => "the session was marked cancelled; run it again to finish".into(),
            Error::Waiting {
                signal, session_id, ..
            } => format!(
                "answer with `rvbbit signal send {session_id} {signal} --value JSON`, then `rvbbit resume {session_id}` \
                 (or both at once: `rvbbit resume {session_id} --value JSON`)"
            ),
            Error::Answer { .. } => {
                "answer with the shape the question asks; `rvbbit signal list --session ID` shows it".into()
            }
            Error::NoWaitingSignal { session_id, .. } => {
                format!("`rvbbit signal list --session {session_id} --waiting` shows what it waits for")
            }
            Error::NotResumable { .. } => {
                "only `waiting` sessions resume; `rvbbit sessions show ID` shows its status, `rvbbit run` starts anew"
                    .into()
            }
            Error::Internal(_) => "please report this bug with the session id".into(),
        }
    }
}

fn waiting_list(names: &[String]) -> String {
    if names.is_empty() {
        "it waits for none".into()
    } else {
        format!("it waits for: {}", names.join(", "))
    }
}

/// `1.5s`, `2m`, `250ms`.
pub(crate) fn humanize(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else {
        format!("{}s", d.as_secs_f64())
    }
}
