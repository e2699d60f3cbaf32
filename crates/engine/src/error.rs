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
    /// The conversation of an LLM cell does not fit the cascade's `token_budget` (strategy `fail`, or
    /// pruning could not bring it under the limit).
    #[error(
        "cell `{cell}`: the conversation needs ~{tokens} tokens, over the token_budget limit of {limit} (max_total - reserve_for_output, strategy `{strategy}`)"
    )]
    TokenBudgetExceeded {
        /// The cell.
        cell: String,
        /// Estimated tokens of the conversation.
        tokens: u64,
        /// `max_total - reserve_for_output`.
        limit: u64,
        /// The budget's strategy.
        strategy: String,
    },
    /// The evaluator of a cell's candidates did not name a winner, even when asked again.
    #[error(
        "cell `{cell}`: the candidates' evaluator did not name a winner among attempts {choices} (twice); its last reply: {reply:?}"
    )]
    EvaluatorUnreadable {
        /// The cell.
        cell: String,
        /// The attempt numbers it could choose from, as text (`1, 2, 3`).
        choices: String,
        /// Its last reply (cut to 500 characters).
        reply: String,
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
    /// The sandbox refused or stopped a tool's process (RVB-B010 .. RVB-B015; docs/sandbox.md).
    #[error("cell `{cell}`: tool `{tool}`: {message}")]
    Sandbox {
        /// The cell.
        cell: String,
        /// The tool.
        tool: String,
        /// The code: which limit, or why the sandbox could not be used.
        code: &'static ErrorCode,
        /// What happened: the limit, its value and how to raise it.
        message: String,
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
    /// Child runs nested deeper than [`crate::MAX_DEPTH`] (a cascade that calls itself).
    #[error("cell `{cell}`: {what} would run at nesting depth {depth}, deeper than the limit of {limit}")]
    MaxDepth {
        /// The cell that started the child.
        cell: String,
        /// The child (`sub-cascade `x``, `cascade tool `y``).
        what: String,
        /// The depth the child would have had.
        depth: u32,
        /// The limit.
        limit: u32,
    },
    /// A ward in blocking mode rejected the cell's input, a turn or its output (§6.4).
    #[error("cell `{cell}`: [BLOCKED by {side}-ward `{validator}`: {reason}]")]
    WardBlocked {
        /// The cell.
        cell: String,
        /// `pre`, `turn` or `post`.
        side: &'static str,
        /// The validator's name (or its inline languages).
        validator: String,
        /// The validator's reason.
        reason: String,
    },
    /// A child cascade could not be found, left the project, or is invalid; nothing of it ran.
    #[error("cell `{cell}`: {what}: {message}")]
    ChildInvalid {
        /// The cell that named the child.
        cell: String,
        /// The child (`sub-cascade `x``).
        what: String,
        /// What is wrong, with the child's file.
        message: String,
    },
    /// A child session failed; its error decides the code.
    #[error("cell `{cell}`: {what} failed in session `{child_session}`: [{}] {source}", source.code().code)]
    Child {
        /// The cell that started the child.
        cell: String,
        /// The child (`sub-cascade `x``).
        what: String,
        /// The child's session id.
        child_session: String,
        /// The child's error.
        #[source]
        source: Box<Error>,
    },
    /// The store failed in a way the writer could not absorb.
    #[error("event store: {0}")]
    Store(#[from] rvbbit_store::Error),
    /// A template ran out of a `[limits]` budget (`template_fuel` or `template_output_bytes`).
    #[error(
        "cell `{cell}`: {what} while rendering `{place}`, over {setting} = {max}; raise it in rvbbit.toml [limits]"
    )]
    TemplateLimit {
        /// The cell.
        cell: String,
        /// Which template (`inputs`, `instructions`, ...).
        place: String,
        /// What ran out, in words.
        what: &'static str,
        /// The setting (`limits.template_fuel`, `limits.template_output_bytes`).
        setting: &'static str,
        /// Its value.
        max: u64,
    },
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
    /// The session was cancelled (for a waiting one, `rvbbit sessions cancel` ends it at once): its
    /// questions can no longer be answered and it cannot be resumed.
    #[error("session {session_id} was cancelled: it can no longer be answered or resumed")]
    SessionCancelled {
        /// The session.
        session_id: rvbbit_core::SessionId,
    },
    /// Another process resumed the session while this one waited for the answer in-process; it
    /// continues there, and this process stops without running or recording anything more.
    #[error(
        "session {session_id} was resumed by another process while this one waited at cell `{cell}`; it continues there"
    )]
    ResumedElsewhere {
        /// The session.
        session_id: rvbbit_core::SessionId,
        /// The cell that waited.
        cell: String,
    },
    /// Another attempt of the same journaled run (a redelivered queue job) got ahead of this one.
    #[error("run {run_key}: {reason}")]
    Superseded {
        /// The run key.
        run_key: String,
        /// What the other attempt did.
        reason: String,
    },
    /// A spending limit is used up, so no new run starts (docs/costs.md).
    #[error(
        "{limit} is used up: {spent} spent since {since} ({percent}%); no new run starts until the next UTC {period}"
    )]
    SpendLimit {
        /// The limit, in words (`the limit of $50.000000 per month for tenant `acme``).
        limit: String,
        /// What was spent in the current period.
        spent: rvbbit_core::MicroUsd,
        /// When the current period began (RFC 3339).
        since: String,
        /// What was spent, in percent of the limit.
        percent: u64,
        /// `day` or `month`.
        period: &'static str,
        /// The flags that name the limit (`--tenant acme`), with a leading space, or empty.
        flags: String,
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
            Error::TokenBudgetExceeded { .. } => codes::E_TOKEN_BUDGET,
            Error::EvaluatorUnreadable { .. } => codes::E_EVALUATOR_UNREADABLE,
            Error::ToolFailed { .. } => codes::T_FAILED,
            Error::ToolTimeout { .. } => codes::T_TIMEOUT,
            Error::Sandbox { code, .. } => code,
            Error::Llm { source, .. } => source.code(),
            Error::Store(e) => e.code(),
            Error::MaxDepth { .. } => codes::E_MAX_DEPTH,
            Error::WardBlocked { .. } => codes::E_WARD_BLOCKED,
            Error::ChildInvalid { .. } => codes::E_CHILD_INVALID,
            Error::Child { source, .. } => source.code(),
            Error::TemplateLimit { .. } => codes::E_TEMPLATE_LIMIT,
            Error::Cancelled => codes::E_INTERRUPTED,
            Error::Waiting { .. } => codes::H_WAITING,
            Error::Answer { .. } => codes::C_ANSWER,
            Error::NotResumable { .. } | Error::ResumedElsewhere { .. } | Error::Superseded { .. } => {
                codes::S_CONFLICT
            }
            Error::NoWaitingSignal { .. } => codes::S_NOT_FOUND,
            Error::SessionCancelled { .. } => codes::S_CANCELLED,
            Error::SpendLimit { .. } => codes::B_SPEND_LIMIT,
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
            Error::TokenBudgetExceeded { .. } => {
                "raise token_budget.max_total (or lower reserve_for_output), or use strategy sliding_window, prune_oldest or summarize to drop old messages"
                    .into()
            }
            Error::EvaluatorUnreadable { .. } => {
                "make candidates.evaluator_instructions ask for the attempt number, or set candidates.evaluator_model to a model that follows instructions"
                    .into()
            }
            Error::ToolFailed { .. } => {
                "fix the tool inputs, or add `on_error: <cell>` (or `routing`) to handle the failure".into()
            }
            Error::ToolTimeout { .. } => "raise the cell's `timeout`, or make the tool faster".into(),
            Error::Sandbox { code, .. } => code.fix.to_owned(),
            Error::Llm { source, .. } => source.hint(),
            Error::Store(e) => e.hint(),
            Error::MaxDepth { .. } => {
                "a cascade reaches itself through sub_cascades, cascade tools or validator cascades; break the cycle".into()
            }
            Error::WardBlocked { .. } => {
                "fix the input or the validator, or use `mode: retry` / `mode: advisory` for this ward".into()
            }
            Error::ChildInvalid { .. } => {
                "run `rvbbit validate` on the child cascade and fix it, or correct the `ref` (relative to the referring file)"
                    .into()
            }
            Error::Child { child_session, .. } => {
                format!("see the child's events with `rvbbit debug trace {child_session}`")
            }
            Error::TemplateLimit { setting, .. } => format!(
                "do heavy computation in a code or SQL cell and render only its result, or raise {setting} in rvbbit.toml [limits]"
            ),
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
            Error::SessionCancelled { session_id } => format!(
                "`rvbbit sessions show {session_id}` shows what it did before; `rvbbit run` starts a new session"
            ),
            Error::ResumedElsewhere { session_id, .. } => {
                format!("nothing more ran here; follow the session with `rvbbit sessions show {session_id}`")
            }
            Error::Superseded { .. } => {
                "nothing to do: the other attempt continues the run; this one ended as cancelled".into()
            }
            Error::SpendLimit { period, flags, .. } => format!(
                "raise it with `rvbbit costs limit set AMOUNT/{period}{flags}` (such as `100/{period}`), remove it with \
                 `rvbbit costs limit remove {period}{flags}`, or wait for the next UTC {period}; `rvbbit costs limit list` \
                 shows every limit and its spend"
            ),
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
