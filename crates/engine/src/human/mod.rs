//! Humans in the loop: the [`Question`] a run asks and the [`Human`] that answers it.
//!
//! A wait (a cell's `human_input`, a screen cell, or the `ask_human` tool) always records a waiting
//! signal, a pending checkpoint (with the continuation `Engine::resume` needs) and a `checkpoint_created`
//! event, and marks the session `waiting`. Then the engine asks its [`Human`]: an answer continues the
//! run at once; `None` ends the run with the session still `waiting` (exit code 10 in the CLI) until
//! someone fires the signal (`rvbbit signal send`, later the HTTP API) and resumes it.
//!
//! Doors: [`NoHuman`] (the default: never answers, so every wait suspends the run), [`StoreAnswers`]
//! (polls the store for the signal, so another process can answer while this one waits), and the CLI's
//! terminal prompt, which implements [`Human`] itself on top of [`StoreAnswers`].

mod form;
mod screen;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rvbbit_core::{SessionId, SessionStatus, Timestamp};
use rvbbit_store::{CheckpointStatus, Signal, SignalStatus, Store};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub use self::form::{FIELD_TYPES, Field};
pub use self::screen::Route;

/// What kind of answer a question wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum QuestionKind {
    /// Yes or no: `{"confirmed": bool, "comment"?: str}` (a bare `true`/`false` is accepted).
    Confirmation,
    /// One of the options: `{"selected": value}` (a bare value or an option label is accepted).
    Choice,
    /// A rating from 1 to `max_rating`: `{"rating": n}` (a bare number is accepted).
    Rating,
    /// Free text: `{"text": str}` (a bare string is accepted).
    Text,
    /// The `ask_human` tool: a string (or `{"text": str}`).
    FreeText,
    /// A screen (`htmx` cell): the submitted form, a JSON object (`_route` picks the next cell).
    Screen,
    /// A form (`ask_human_custom`): a JSON object checked against [`Question::fields`].
    Form,
}

impl QuestionKind {
    /// The checkpoint type recorded in the store (OBSERVABILITY.md §7).
    pub const fn checkpoint_type(self) -> &'static str {
        match self {
            QuestionKind::Confirmation => "confirmation",
            QuestionKind::Choice => "choice",
            QuestionKind::Rating => "rating",
            QuestionKind::Text => "text",
            QuestionKind::FreeText => "free_text",
            QuestionKind::Screen | QuestionKind::Form => "decision",
        }
    }
}

/// One option of a choice.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    /// What the human sees.
    pub label: String,
    /// What the answer records.
    pub value: Value,
}

/// A question to a human, as stored in the checkpoint's `ui_spec`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Question {
    /// The waiting session.
    pub session_id: SessionId,
    /// The asking cell.
    pub cell: String,
    /// The signal that answers it: `rvbbit signal send SESSION <signal> --value JSON`.
    pub signal: String,
    /// The id of the waiting signal registered for this visit of the cell. A cell visited again (a
    /// screen routing back to an earlier cell) asks again under the same name, and only the answer to
    /// this visit's signal counts. `None` in questions recorded before it existed (any answer fired
    /// under the name then counts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal_id: Option<String>,
    /// What kind of answer it wants.
    pub kind: QuestionKind,
    /// The question text (rendered).
    pub prompt: String,
    /// Choices (for [`QuestionKind::Choice`]).
    #[serde(default)]
    pub options: Vec<Choice>,
    /// The top of a rating scale.
    #[serde(default)]
    pub max_rating: Option<u32>,
    /// A hint shown under the question.
    #[serde(default)]
    pub hint: Option<String>,
    /// The cell's output under review (`human_input`), if any.
    #[serde(default)]
    pub output: Option<Value>,
    /// The rendered HTML of a screen cell.
    #[serde(default)]
    pub html: Option<String>,
    /// The handoffs of a screen cell: its routes when the HTML has no route buttons.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub handoffs: Vec<String>,
    /// When waiting gives up (the cell's `timeout_seconds`), if ever.
    #[serde(default)]
    pub timeout_at: Option<Timestamp>,
    /// The fields of a form ([`QuestionKind::Form`]) the answer is checked against.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<Field>,
    /// What the asking tool gave to show with the question, as given (`ask_human_custom`'s `data`,
    /// `ui_hint`, `layout_hint`, `html`, `images`; `request_decision`'s option descriptions and
    /// severity). Never checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ui: Option<Value>,
}

impl Question {
    /// The question stored in a checkpoint's `ui_spec`, or `None` when it is not one.
    pub fn from_ui_spec(ui_spec: &Value) -> Option<Question> {
        serde_json::from_value(ui_spec.clone()).ok()
    }

    /// Check `answer` against the question and bring it to its normal shape (OBSERVABILITY.md §7):
    /// confirmation `{"confirmed": bool, ...}`, choice `{"selected": value}`, rating `{"rating": n}`, text
    /// `{"text": str}`, `ask_human` a string, a screen the submitted object, a form the object with its
    /// fields checked.
    ///
    /// # Errors
    /// A message saying what shape was expected (with the valid option values for a choice).
    pub fn normalize(&self, answer: &Value) -> Result<Value, String> {
        match self.kind {
            QuestionKind::Confirmation => match answer {
                Value::Bool(b) => Ok(json!({"confirmed": b})),
                Value::Object(m) if m.get("confirmed").is_some_and(Value::is_boolean) => Ok(answer.clone()),
                _ => Err(format!(
                    "cell `{}` asks for a confirmation: answer `true`, `false` or {{\"confirmed\": true, \"comment\": \"...\"}}, not {answer}",
                    self.cell
                )),
            },
            QuestionKind::Choice => {
                let wanted = match answer {
                    Value::Object(m) if m.contains_key("selected") => &m["selected"],
                    other => other,
                };
                let hit = self.options.iter().find(|c| &c.value == wanted).or_else(|| {
                    self.options
                        .iter()
                        .find(|c| wanted.as_str() == Some(c.label.as_str()))
                });
                match hit {
                    Some(c) => Ok(json!({"selected": c.value})),
                    None => Err(format!(
                        "cell `{}` asks for one of: {}; {wanted} is not among them",
                        self.cell,
                        self.options
                            .iter()
                            .map(|c| c.value.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                }
            }
            QuestionKind::Rating => {
                let max = u64::from(self.max_rating.unwrap_or(5));
                let n = match answer {
                    Value::Object(m) => m.get("rating").and_then(Value::as_u64),
                    other => other.as_u64(),
                };
                match n {
                    Some(n) if (1..=max).contains(&n) => Ok(json!({"rating": n})),
                    _ => Err(format!(
                        "cell `{}` asks for a rating from 1 to {max} (or {{\"rating\": n}}), not {answer}",
                        self.cell
                    )),
                }
            }
            QuestionKind::Text | QuestionKind::FreeText => {
                let text = match answer {
                    Value::String(s) => Some(s.clone()),
                    Value::Object(m) => m.get("text").and_then(Value::as_str).map(str::to_owned),
                    _ => None,
                };
                match (text, self.kind) {
                    (Some(t), QuestionKind::FreeText) => Ok(Value::String(t)),
                    (Some(t), _) => Ok(json!({"text": t})),
                    (None, _) => Err(format!(
                        "cell `{}` asks for text: answer a JSON string such as \"...\" (or {{\"text\": \"...\"}}), not {answer}",
                        self.cell
                    )),
                }
            }
            QuestionKind::Form => form::check(&self.cell, &self.fields, answer),
            QuestionKind::Screen => match answer {
                Value::Object(_) => Ok(answer.clone()),
                _ => Err(format!(
                    "cell `{}` is a screen: answer with the submitted form as a JSON object, such as {{\"_route\": \"next_cell\"}}, not {answer}",
                    self.cell
                )),
            },
        }
    }
}

/// An answer and who gave it.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Answer {
    /// The answer as given (the engine normalizes it with [`Question::normalize`]).
    pub value: Value,
    /// Who answered: `terminal`, `cli`, `resume`, `ui`, a session id.
    pub source: String,
}

impl Answer {
    /// An answer `value` from `source`.
    pub fn new(value: Value, source: impl Into<String>) -> Self {
        Answer {
            value,
            source: source.into(),
        }
    }
}

/// Where answers to a run's questions come from.
///
/// The engine calls [`Human::answer`] after the wait is recorded (signal, checkpoint, events, session
/// `waiting`), so an implementation may take as long as it likes, and may also give up.
///
/// A complete implementation that approves everything:
///
/// ```
/// use async_trait::async_trait;
/// use rvbbit_engine::human::{Answer, Human, Question, QuestionKind};
/// use serde_json::json;
///
/// struct Approver;
///
/// #[async_trait]
/// impl Human for Approver {
///     async fn answer(&self, q: &Question) -> Option<Answer> {
///         match q.kind {
///             QuestionKind::Confirmation => Some(Answer::new(json!(true), "approver")),
///             _ => None, // leave anything else waiting
///         }
///     }
/// }
/// ```
#[async_trait]
pub trait Human: Send + Sync {
    /// The answer to `question`, or `None` to leave the session waiting (the run then stops with status
    /// `waiting` and can be resumed later).
    ///
    /// # Cancel safety
    /// The future is dropped when the run is cancelled; it must not leave shared state half-changed.
    async fn answer(&self, question: &Question) -> Option<Answer>;
}

/// Never answers: every wait suspends the run (the engine's default).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoHuman;

#[async_trait]
impl Human for NoHuman {
    async fn answer(&self, _question: &Question) -> Option<Answer> {
        None
    }
}

/// Answers from the store: polls for the question's signal to be fired (by `rvbbit signal send`, the
/// HTTP API, another session) every `every`, for at most `wait` (and never past the question's
/// `timeout_at`). On a store with change notifications (PostgreSQL) the wait wakes when its session's
/// signal fires and polls only every 2 s as a safety net.
#[derive(Clone)]
pub struct StoreAnswers {
    store: Arc<dyn Store>,
    every: Duration,
    wait: Option<Duration>,
    suspend: Option<tokio_util::sync::CancellationToken>,
}

impl std::fmt::Debug for StoreAnswers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreAnswers")
            .field("store", &self.store.url())
            .field("every", &self.every)
            .field("wait", &self.wait)
            .finish()
    }
}

impl StoreAnswers {
    /// Poll `store` every `every` for at most `wait` (`None`: until the question's timeout, or forever).
    pub fn new(store: Arc<dyn Store>, every: Duration, wait: Option<Duration>) -> Self {
        StoreAnswers {
            store,
            every,
            wait,
            suspend: None,
        }
    }

    /// Stop waiting when `token` is cancelled: every run waiting for an answer then suspends (its
    /// session stays `waiting`, resumable from its checkpoint) instead of holding the process. A server
    /// cancels it when it shuts down, so waiting runs survive the restart.
    pub fn with_suspend(mut self, token: tokio_util::sync::CancellationToken) -> Self {
        self.suspend = Some(token);
        self
    }

    /// The payload of the question's signal if it was fired already.
    ///
    /// # Errors
    /// The store's error.
    pub async fn fired(&self, question: &Question) -> rvbbit_store::Result<Option<Answer>> {
        let signals = self.store.signals(Some(&question.signal)).await?;
        Ok(signals
            .into_iter()
            .filter(|s| s.session_id.as_ref() == Some(&question.session_id))
            // An earlier visit's answer (same name, older signal) is not this visit's answer.
            .filter(|s| question.signal_id.as_ref().is_none_or(|id| *id == s.signal_id))
            .find(|s| s.status == SignalStatus::Fired)
            .map(|s| {
                Answer::new(
                    s.payload.unwrap_or(Value::Null),
                    s.source.unwrap_or_else(|| "store".into()),
                )
            }))
    }
}

#[async_trait]
impl Human for StoreAnswers {
    async fn answer(&self, question: &Question) -> Option<Answer> {
        let started = tokio::time::Instant::now();
        // A store with change notifications (PostgreSQL) wakes the wait when the session's signal is
        // answered, from any process; polling then only backs it up.
        let mut changes = match self.store.subscribe().await {
            Ok(changes) => changes,
            Err(e) => {
                tracing::debug!(error = %e, "no change notifications; the wait polls");
                None
            }
        };
        let session = question.session_id.as_str().to_owned();
        loop {
            match self.fired(question).await {
                Ok(Some(a)) => return Some(a),
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, signal = %question.signal, "Signal not read"),
            }
            let mut left = self.wait.map(|w| w.saturating_sub(started.elapsed()));
            if let Some(at) = question.timeout_at {
                let until = Duration::from_micros(
                    u64::try_from(at.micros() - Timestamp::now().micros()).unwrap_or(0),
                );
                left = Some(left.map_or(until, |l| l.min(until)));
            }
            if left.is_some_and(|l| l.is_zero()) || self.suspend.as_ref().is_some_and(|t| t.is_cancelled()) {
                return None;
            }
            let every = if changes.is_some() {
                self.every.max(NOTIFIED_POLL)
            } else {
                self.every
            };
            let pause = tokio::time::sleep(left.map_or(every, |l| l.min(every)));
            let cancelled = async {
                match &self.suspend {
                    Some(token) => token.cancelled().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = pause => {}
                () = cancelled => return None,
                open = changed(&mut changes, &session) => if !open { changes = None },
            }
        }
    }
}

/// How often a wait that receives change notifications still reads, in case one was missed.
const NOTIFIED_POLL: Duration = Duration::from_secs(2);

/// Wait until `changes` names session `id` (or lagged); `false` when the notifications stopped. Never
/// returns without notifications.
async fn changed(changes: &mut Option<tokio::sync::broadcast::Receiver<Arc<str>>>, id: &str) -> bool {
    use tokio::sync::broadcast::error::RecvError;
    let Some(rx) = changes.as_mut() else {
        return std::future::pending().await;
    };
    loop {
        match rx.recv().await {
            Ok(session) if &*session == id => return true,
            Ok(_) => {}
            Err(RecvError::Lagged(_)) => return true,
            Err(RecvError::Closed) => return false,
        }
    }
}

/// Answer the waiting signal `name` of `session` with `value` (what `rvbbit signal send` does; the HTTP
/// API will do the same). When the signal answers a pending checkpoint, `value` is first checked against
/// its question. Returns the signals fired.
///
/// Only the first answer counts: firing is a compare-and-set (`waiting` → `fired`), so of two answers
/// sent at once exactly one wins.
///
/// # Errors
/// [`crate::Error::SessionCancelled`] when the session was cancelled;
/// [`crate::Error::Answer`] when `value` does not fit the question; [`crate::Error::NoWaitingSignal`]
/// when `session` has no waiting signal `name` (the message lists the ones it has);
/// [`crate::Error::Store`] with a `Conflict` (RVB-S006) when the signal was already answered, and other
/// store errors.
pub async fn send_answer(
    store: &dyn Store,
    session: &SessionId,
    name: &str,
    value: &Value,
    source: &str,
) -> crate::Result<Vec<Signal>> {
    // A cancelled session (`rvbbit sessions cancel` while it waited) takes no answers: say so, rather
    // than "no waiting signal".
    match store.session(session).await {
        Ok(s) if s.status == SessionStatus::Cancelled => {
            return Err(crate::Error::SessionCancelled {
                session_id: session.clone(),
            });
        }
        // An unknown session (or one only signals know) gets the answer below: no waiting signal.
        Ok(_) | Err(rvbbit_store::Error::NotFound { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    let pending = store
        .checkpoints(Some(session), Some(CheckpointStatus::Pending))
        .await?;
    if let Some(cp) = pending.iter().find(|c| c.signal_name == name)
        && let Some(q) = Question::from_ui_spec(&cp.ui_spec)
    {
        q.normalize(value).map_err(|message| crate::Error::Answer {
            cell: cp.cell_name.clone(),
            message,
        })?;
    }
    let fired = store
        .signal_fire(name, value, source, Some(session), Timestamp::now())
        .await?;
    if fired.is_empty() {
        already_answered(store, session, name).await?;
        let mut waiting: Vec<String> = store
            .signals(None)
            .await?
            .into_iter()
            .filter(|s| s.status == SignalStatus::Waiting && s.session_id.as_ref() == Some(session))
            .map(|s| s.name)
            .collect();
        waiting.dedup();
        return Err(crate::Error::NoWaitingSignal {
            session_id: session.clone(),
            name: name.to_owned(),
            waiting,
        });
    }
    Ok(fired)
}

/// Fail with a `Conflict` (RVB-S006) when `session`'s signal `name` was already fired (by another
/// answer); succeed when it never was (the caller then reports what is waiting instead).
pub(crate) async fn already_answered(
    store: &dyn Store,
    session: &SessionId,
    name: &str,
) -> crate::Result<()> {
    let answered = store
        .signals(Some(name))
        .await?
        .into_iter()
        .find(|s| s.status == SignalStatus::Fired && s.session_id.as_ref() == Some(session));
    match answered {
        Some(s) => Err(rvbbit_store::Error::Conflict {
            what: "signal",
            id: format!("{name}` of session `{session}"),
            state: "already answered".into(),
            reason: format!(
                "{} answered it first{}; only the first answer counts",
                s.source.as_deref().unwrap_or("another process"),
                s.fired_at
                    .map(|t| format!(" at {}", t.to_rfc3339()))
                    .unwrap_or_default()
            ),
        }
        .into()),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(kind: QuestionKind) -> Question {
        Question {
            session_id: "s-1".parse().unwrap(),
            cell: "c".into(),
            signal: "c".into(),
            signal_id: None,
            kind,
            prompt: "?".into(),
            options: vec![
                Choice {
                    label: "Ship it".into(),
                    value: json!("ship"),
                },
                Choice {
                    label: "Redo".into(),
                    value: json!("redo"),
                },
            ],
            max_rating: None,
            hint: None,
            output: None,
            html: None,
            handoffs: Vec::new(),
            timeout_at: None,
            fields: Vec::new(),
            ui: None,
        }
    }

    #[test]
    fn answers_are_normalized_or_refused_with_the_expected_shape() {
        let c = q(QuestionKind::Confirmation);
        assert_eq!(c.normalize(&json!(true)).unwrap(), json!({"confirmed": true}));
        assert!(c.normalize(&json!("yes")).unwrap_err().contains("confirmation"));
        let ch = q(QuestionKind::Choice);
        assert_eq!(ch.normalize(&json!("ship")).unwrap(), json!({"selected": "ship"}));
        assert_eq!(ch.normalize(&json!("Redo")).unwrap(), json!({"selected": "redo"}));
        assert_eq!(
            ch.normalize(&json!({"selected": "redo"})).unwrap(),
            json!({"selected": "redo"})
        );
        assert!(
            ch.normalize(&json!("nope"))
                .unwrap_err()
                .contains("\"ship\", \"redo\"")
        );
        let t = q(QuestionKind::Text);
        assert_eq!(t.normalize(&json!("hi")).unwrap(), json!({"text": "hi"}));
        assert!(t.normalize(&json!(3)).is_err());
        assert_eq!(
            q(QuestionKind::FreeText)
                .normalize(&json!({"text": "x"}))
                .unwrap(),
            json!("x")
        );
        assert_eq!(
            q(QuestionKind::Rating).normalize(&json!(5)).unwrap(),
            json!({"rating": 5})
        );
        assert!(q(QuestionKind::Rating).normalize(&json!(6)).is_err());
        assert!(q(QuestionKind::Screen).normalize(&json!("x")).is_err());
    }

    #[test]
    fn a_question_round_trips_through_its_ui_spec() {
        let question = q(QuestionKind::Choice);
        let spec = serde_json::to_value(&question).unwrap();
        assert_eq!(Question::from_ui_spec(&spec), Some(question));
    }
}
