//! What `rvbbit run` and `rvbbit resume` share for humans in the loop: the flags, the terminal prompt
//! (an [`rvbbit_engine::human::Human`] that reads stdin), the non-interactive announcement, and the
//! progress line on stderr.

use std::io::{BufRead, IsTerminal};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rvbbit_engine::human::{Answer, Human, NoHuman, Question, QuestionKind, StoreAnswers};
use rvbbit_engine::{CancellationToken, Progress};
use rvbbit_store::Store;
use serde_json::Value;
use tokio::sync::{oneshot, watch};

use super::storage::duration_arg;
use crate::output::{self, Format, Out};

/// How often a waiting run polls the store for an answer.
const POLL_EVERY: Duration = Duration::from_millis(250);

/// Flags for runs that may wait for a human.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct HumanArgs {
    /// At a human-in-the-loop cell, do not wait: exit 10 at once leaving the session `waiting`
    /// (answer later with `rvbbit signal send`, continue with `rvbbit resume`).
    #[arg(long, conflicts_with_all = ["wait", "prompt"])]
    pub(crate) detach: bool,
    /// Without a terminal, wait at most this long (30s, 10m, 2h) for an answer sent with
    /// `rvbbit signal send` before exiting 10 with the session `waiting` (default: until the cell's
    /// timeout, or forever).
    #[arg(long, value_name = "AGE", value_parser = duration_arg)]
    pub(crate) wait: Option<i64>,
    /// Ask on stdin/stderr even when they are not terminals (for scripts that pipe answers in). In a
    /// terminal this is the default.
    #[arg(long)]
    pub(crate) prompt: bool,
}

impl HumanArgs {
    /// Who answers: the terminal prompt (interactive, or `--prompt`), the store for up to `--wait`
    /// (announcing the `rvbbit signal send` command), or nobody (`--detach`, or no store).
    pub(crate) fn human(
        &self,
        store: Option<Arc<dyn Store>>,
        out: Out,
        line: &ProgressLine,
    ) -> Arc<dyn Human> {
        if self.detach {
            return Arc::new(NoHuman);
        }
        let wait = self
            .wait
            .map(|us| Duration::from_micros(u64::try_from(us).unwrap_or(0)));
        let polling = store.map(|s| StoreAnswers::new(s, POLL_EVERY, wait));
        let interactive = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
        if self.prompt || (interactive && out.format == Format::Text) {
            return Arc::new(Terminal {
                polling,
                pause: line.pause.clone(),
                clear: line.tx.is_some(),
            });
        }
        match polling {
            Some(polling) => Arc::new(Announce {
                polling,
                out,
                pause: line.pause.clone(),
                clear: line.tx.is_some(),
            }),
            None => Arc::new(NoHuman),
        }
    }
}

/// The exact commands that answer a question and continue its session.
pub(crate) fn answer_commands(session: &str, signal: &str) -> String {
    format!(
        "  answer:   rvbbit signal send {session} {signal} --value JSON\n  continue: rvbbit resume {session}\n  \
         (or both: rvbbit resume {session} --value JSON)\n"
    )
}

/// Without a terminal: say on stderr how to answer, then wait for the store.
struct Announce {
    polling: StoreAnswers,
    out: Out,
    pause: Arc<Mutex<bool>>,
    /// Whether a progress line is drawn (and must be cleared before the message).
    clear: bool,
}

#[async_trait]
impl Human for Announce {
    async fn answer(&self, q: &Question) -> Option<Answer> {
        if !self.out.quiet && self.out.format == Format::Text {
            // Under the lock, so the progress line is not drawn over the message.
            let _guard = self.pause.lock();
            if self.clear {
                output::stderr("\r\x1b[2K");
            }
            output::stderr(&format!(
                "waiting for a human at cell `{}`: {}\n{}",
                q.cell,
                q.prompt,
                answer_commands(q.session_id.as_str(), &q.signal)
            ));
        }
        self.polling.answer(q).await
    }
}

/// In a terminal: ask on stderr and read the answer from stdin; an answer fired in the store (another
/// shell's `rvbbit signal send`) wins if it comes first. End of input leaves the session waiting.
struct Terminal {
    polling: Option<StoreAnswers>,
    pause: Arc<Mutex<bool>>,
    /// Whether a progress line is drawn (and must be cleared before asking).
    clear: bool,
}

#[async_trait]
impl Human for Terminal {
    async fn answer(&self, q: &Question) -> Option<Answer> {
        if let Ok(mut paused) = self.pause.lock() {
            *paused = true;
            if self.clear {
                output::stderr("\r\x1b[2K");
            }
        }
        output::stderr(&describe(q));
        let answer = loop {
            let line = read_line();
            let store = async {
                match &self.polling {
                    Some(p) => p.answer(q).await,
                    None => std::future::pending().await,
                }
            };
            let text = tokio::select! {
                l = line => l,
                a = store => {
                    output::stderr(if a.is_some() {
                        "\n(answered from the store)\n"
                    } else {
                        "\n(no answer in time)\n"
                    });
                    break a;
                }
            };
            let Some(text) = text else {
                output::stderr("\n(no answer: the session stays waiting)\n");
                break None;
            };
            match q.normalize(&parse_answer(q, text.trim())) {
                Ok(v) => break Some(Answer::new(v, "terminal")),
                Err(e) => output::stderr(&format!("{e}\n> ")),
            }
        };
        if let Ok(mut paused) = self.pause.lock() {
            *paused = false;
        }
        answer
    }
}

/// One line of stdin (without the newline), `None` at end of input. A plain thread, not the blocking
/// pool: a read left pending when the store answers first must not keep the runtime from shutting down.
async fn read_line() -> Option<String> {
    let (tx, rx) = oneshot::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let read = std::io::stdin().lock().read_line(&mut line);
        // The receiver is gone when the store answered first; the line is then unused.
        let _ = tx.send(match read {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(line),
        });
    });
    rx.await.ok().flatten()
}

/// The question as shown in the terminal.
fn describe(q: &Question) -> String {
    let mut s = format!("\n? [{}] {}\n", q.cell, q.prompt);
    if let Some(h) = &q.hint {
        s.push_str(&format!("  {h}\n"));
    }
    if let Some(Value::String(o)) = &q.output {
        s.push_str(&format!("  output: {}\n", o.trim()));
    } else if let Some(o) = &q.output {
        s.push_str(&format!("  output: {o}\n"));
    }
    if let Some(text) = q.screen_text().filter(|t| !t.is_empty()) {
        for line in text.lines() {
            s.push_str(&format!("  | {line}\n"));
        }
    }
    match q.kind {
        QuestionKind::Confirmation => s.push_str("  (y/n)"),
        QuestionKind::Choice => {
            for (i, c) in q.options.iter().enumerate() {
                s.push_str(&format!("  {}. {}\n", i + 1, c.label));
            }
            s.push_str("  (number, label or value)");
        }
        QuestionKind::Rating => s.push_str(&format!("  (1-{})", q.max_rating.unwrap_or(5))),
        QuestionKind::Screen => {
            let routes = q.routes();
            for (i, r) in routes.iter().enumerate() {
                s.push_str(&format!("  {}. {} (→ {})\n", i + 1, r.label, r.target));
            }
            if routes.is_empty() {
                s.push_str("  (the form as a JSON object, such as {\"_route\": \"next\"})");
            } else {
                s.push_str("  (number or label; or the whole form as a JSON object)");
            }
        }
        _ => {}
    }
    s.push_str("\n> ");
    s
}

/// A typed line as an answer: y/n for confirmations, an option number for choices, JSON when it parses,
/// else the text itself.
fn parse_answer(q: &Question, text: &str) -> Value {
    match (q.kind, text.to_ascii_lowercase().as_str()) {
        (QuestionKind::Confirmation, "y" | "yes") => Value::Bool(true),
        (QuestionKind::Confirmation, "n" | "no") => Value::Bool(false),
        (QuestionKind::Choice, t) if t.parse::<usize>().is_ok_and(|n| n >= 1 && n <= q.options.len()) => {
            let n = t.parse::<usize>().unwrap_or(1);
            q.options[n - 1].value.clone()
        }
        (QuestionKind::Text | QuestionKind::FreeText, _) => Value::String(text.to_owned()),
        (QuestionKind::Screen, t) if !t.starts_with('{') => {
            let routes = q.routes();
            let picked = t
                .parse::<usize>()
                .ok()
                .and_then(|n| n.checked_sub(1))
                .and_then(|i| routes.get(i))
                .or_else(|| {
                    routes
                        .iter()
                        .find(|r| r.label.eq_ignore_ascii_case(text) || r.target == text)
                });
            match picked {
                Some(r) => r.answer(),
                None => Value::String(text.to_owned()),
            }
        }
        _ => serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned())),
    }
}

/// The progress line on stderr: current cell, turn, LLM calls and cost so far. Drawn only when stderr is
/// a terminal (and not with `-q` or `--output json`); it steps aside while a human is asked.
pub(crate) struct ProgressLine {
    pub(crate) tx: Option<watch::Sender<Progress>>,
    pause: Arc<Mutex<bool>>,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl ProgressLine {
    /// Start drawing, when `out` and stderr allow it.
    pub(crate) fn start(out: Out) -> ProgressLine {
        let pause = Arc::new(Mutex::new(false));
        let stop = CancellationToken::new();
        if out.quiet || out.format != Format::Text || !std::io::stderr().is_terminal() {
            return ProgressLine {
                tx: None,
                pause,
                stop,
                task: None,
            };
        }
        let (tx, mut rx) = watch::channel(Progress::default());
        let (p, s) = (pause.clone(), stop.clone());
        let task = tokio::spawn(async move {
            const SPIN: [char; 4] = ['|', '/', '-', '\\'];
            let mut tick = tokio::time::interval(Duration::from_millis(120));
            let mut i = 0usize;
            loop {
                tokio::select! {
                    _ = s.cancelled() => break,
                    _ = tick.tick() => {}
                    r = rx.changed() => if r.is_err() { break },
                }
                let progress = rx.borrow().clone();
                if let Ok(paused) = p.lock()
                    && !*paused
                    && progress.waiting.is_none()
                {
                    i += 1;
                    output::stderr(&format!("\r\x1b[2K{} {}", SPIN[i % SPIN.len()], line(&progress)));
                }
            }
            if let Ok(_guard) = p.lock() {
                output::stderr("\r\x1b[2K");
            }
        });
        ProgressLine {
            tx: Some(tx),
            pause,
            stop,
            task: Some(task),
        }
    }

    /// Stop drawing and clear the line.
    pub(crate) async fn finish(mut self) {
        self.stop.cancel();
        if let Some(t) = self.task.take() {
            // A drawing task that panicked only leaves a stale line behind.
            let _ = t.await;
        }
    }
}

/// `cell draft · turn 2 · 3 LLM calls · $0.001200`
fn line(p: &Progress) -> String {
    let mut s = match &p.cell {
        Some(c) => format!("cell {c}"),
        None => "starting".to_owned(),
    };
    if let Some(t) = p.turn {
        s.push_str(&format!(" · turn {t}"));
    }
    s.push_str(&format!(
        " · {} LLM call{} · ${}",
        p.llm_calls,
        if p.llm_calls == 1 { "" } else { "s" },
        p.cost.to_decimal_string()
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_progress_line_names_cell_turn_calls_and_cost() {
        let mut p = Progress::default();
        assert_eq!(line(&p), "starting · 0 LLM calls · $0.000000");
        p.cell = Some("draft".into());
        p.turn = Some(2);
        p.llm_calls = 1;
        p.cost = rvbbit_core::MicroUsd::from_micros(1200);
        assert!(
            line(&p).starts_with("cell draft · turn 2 · 1 LLM call · $0.001200"),
            "{}",
            line(&p)
        );
    }

    fn screen() -> Question {
        serde_json::from_value(serde_json::json!({
            "session_id": "s-1", "cell": "approve", "signal": "approve", "kind": "screen",
            "prompt": "Approve the draft",
            "html": "<p>A <b>short</b> draft</p>\n<button type=\"submit\" name=\"_route\" value=\"publish\">Publish</button> <button type=\"submit\" name=\"_route\" value=\"draft\">Redo</button>",
        }))
        .unwrap()
    }

    #[test]
    fn a_screen_is_asked_as_text_with_numbered_routes() {
        let text = describe(&screen());
        assert!(!text.contains('<'), "no raw HTML: {text}");
        assert!(text.contains("  | A short draft\n"), "{text}");
        assert!(
            text.contains("  1. Publish (→ publish)\n  2. Redo (→ draft)\n"),
            "{text}"
        );
    }

    #[test]
    fn a_screen_answer_is_a_number_a_label_or_the_form() {
        let q = screen();
        assert_eq!(parse_answer(&q, "2"), serde_json::json!({"_route": "draft"}));
        assert_eq!(
            parse_answer(&q, "publish"),
            serde_json::json!({"_route": "publish"})
        );
        assert_eq!(parse_answer(&q, "Redo"), serde_json::json!({"_route": "draft"}));
        assert_eq!(
            parse_answer(&q, r#"{"_route": "draft", "note": "x"}"#),
            serde_json::json!({"_route": "draft", "note": "x"})
        );
        assert!(q.normalize(&parse_answer(&q, "9")).is_err(), "no route 9");
    }
}
