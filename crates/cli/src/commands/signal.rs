//! `rvbbit signal send|list`: answer a waiting human-in-the-loop cell (or any waiting signal), and list
//! signals with the questions they answer.

use rvbbit_core::SessionId;
use rvbbit_engine::human::{Question, QuestionKind, send_answer};
use rvbbit_store::SignalStatus;
use serde_json::{Value, json};

use super::resume::parse_value;
use super::storage::{block_on, fail, open, short_time, table};
use super::{Coded, Failure, Outcome};
use crate::cli::Cli;
use crate::output::{self, Format, Out};

/// `rvbbit signal` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Fire the waiting signal NAME of SESSION with a JSON value: the answer to its human-in-the-loop
    /// cell (the signal is named after the cell). A run polling the store picks it up at once; a
    /// session that exited waiting continues with `rvbbit resume SESSION`.
    ///
    /// Exit codes: 0 fired, 5 no such waiting signal (RVB-S005), 6 invalid JSON (RVB-C006) or an answer
    /// that does not fit the question (RVB-C007).
    Send {
        /// The waiting session.
        #[arg(value_name = "SESSION")]
        session: SessionId,
        /// The signal (for a human-in-the-loop cell: the cell's name).
        #[arg(value_name = "NAME")]
        name: String,
        /// The answer as JSON: true/false, a number, "quoted text", an object.
        #[arg(long, value_name = "JSON")]
        value: String,
        /// Who answers (recorded on the signal).
        #[arg(long, default_value = "cli")]
        source: String,
    },
    /// List signals, newest first, with the question each one answers (or its answer).
    List {
        /// Only this session's signals.
        #[arg(long, value_name = "SESSION")]
        session: Option<SessionId>,
        /// Only waiting signals.
        #[arg(long)]
        waiting: bool,
    },
}

pub(crate) fn run(cli: &Cli, cmd: &Command, out: Out) -> Outcome {
    if let Command::Send { value, .. } = cmd {
        // Refuse bad JSON before touching the store.
        parse_value(value)?;
    }
    block_on(async {
        let opened = open(cli, out).await?;
        let store = opened.store.as_ref();
        match cmd {
            Command::Send {
                session,
                name,
                value,
                source,
            } => {
                let value = parse_value(value)?;
                let fired = send_answer(store, session, name, &value, source)
                    .await
                    .map_err(|e| {
                        let hint = e.hint();
                        Failure::Coded(Coded::from_error(e.code(), &e, hint))
                    })?;
                match out.format {
                    Format::Json => output::json(&json!({
                        "status": "fired",
                        "session_id": session.as_str(),
                        "name": name,
                        "fired": fired.len(),
                        "signals": fired,
                    }))?,
                    Format::Text => {
                        if !out.quiet {
                            output::stderr(&format!(
                                "fired `{name}` of session {session}; if that run has exited, continue it with \
                                 `rvbbit resume {session}`\n"
                            ));
                        }
                    }
                }
                Ok(0)
            }
            Command::List { session, waiting } => {
                let signals: Vec<_> = store
                    .signals(None)
                    .await
                    .map_err(fail)?
                    .into_iter()
                    .filter(|s| session.is_none() || s.session_id.as_ref() == session.as_ref())
                    .filter(|s| !waiting || s.status == SignalStatus::Waiting)
                    .collect();
                let checkpoints = store.checkpoints(session.as_ref(), None).await.map_err(fail)?;
                let question = |signal_id: &str| {
                    checkpoints
                        .iter()
                        .find(|c| c.signal_id.as_deref() == Some(signal_id))
                        .and_then(|c| Question::from_ui_spec(&c.ui_spec))
                };
                match out.format {
                    Format::Json => {
                        let rows: Vec<_> = signals
                            .iter()
                            .map(|s| {
                                let q = question(&s.signal_id);
                                let routes = q.as_ref().map(Question::routes).unwrap_or_default();
                                json!({"signal": s, "question": q, "routes": routes})
                            })
                            .collect();
                        output::json(&rows)?;
                    }
                    Format::Text => {
                        let rows: Vec<Vec<String>> = signals
                            .iter()
                            .map(|s| {
                                let q = question(&s.signal_id);
                                vec![
                                    s.session_id.as_ref().map(|x| x.to_string()).unwrap_or_default(),
                                    s.name.clone(),
                                    s.status.to_string(),
                                    short_time(s.created_at),
                                    q.map(|q| summary(&q))
                                        .or_else(|| s.payload.as_ref().map(|p| format!("answer: {p}")))
                                        .unwrap_or_default(),
                                ]
                            })
                            .collect();
                        output::stdout(&table(
                            &["SESSION", "NAME", "STATUS", "CREATED", "QUESTION/ANSWER"],
                            &rows,
                        ))?;
                    }
                }
                Ok(0)
            }
        }
    })
}

/// The most characters of the output under review shown in the list.
const SHOWN: usize = 60;

fn clip(text: &str) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(SHOWN) {
        Some((i, _)) => format!("{}…", &flat[..i]),
        None => flat,
    }
}

/// What a question asks and about what: `Ship it? (confirmation) · output: A short draft`,
/// `Go on? (choice: Yes | No)`, `Approve (screen: Publish → publish | Redo → draft) · A short draft`.
fn summary(q: &Question) -> String {
    let kind = q.kind.checkpoint_type();
    let choices = match q.kind {
        QuestionKind::Choice => q.options.iter().map(|o| o.label.clone()).collect::<Vec<_>>(),
        QuestionKind::Screen => q
            .routes()
            .iter()
            .map(|r| format!("{} → {}", r.label, r.target))
            .collect(),
        QuestionKind::Rating => vec![format!("1-{}", q.max_rating.unwrap_or(5))],
        _ => Vec::new(),
    };
    let mut s = if choices.is_empty() {
        format!("{} ({kind})", q.prompt)
    } else {
        format!("{} ({kind}: {})", q.prompt, choices.join(" | "))
    };
    let about = match (&q.output, q.screen_text()) {
        (Some(Value::String(o)), _) => Some(format!("output: {}", clip(o))),
        (Some(Value::Null) | None, Some(text)) if !text.is_empty() => Some(clip(&text)),
        (Some(Value::Null) | None, _) => None,
        (Some(o), _) => Some(format!("output: {}", clip(&o.to_string()))),
    };
    if let Some(a) = about {
        s.push_str(&format!(" · {a}"));
    }
    s
}
