//! `token_budget` (§10.1): enforced before each model call of an LLM cell.
//!
//! The conversation is measured the way RVBBIT did without a tokenizer: 4 tokens per message plus
//! `chars / 4` of its text and tool calls. The limit is `max_total − reserve_for_output`. Above
//! `warning_threshold` of it the run gets one warning per cell; above the limit the `strategy` applies:
//! `sliding_window` keeps a leading system message and the newest messages that fit, `prune_oldest`
//! drops the oldest messages except the protected ones (a leading system message, the last three
//! exchanges, messages that mention an error), `summarize` replaces all but the last ten messages with
//! a summary written by `summarizer.model` (default: the cell's model), and `fail` fails the cell.
//! Proposed (not in RVBBIT): the last message (the current task or nudge) is never dropped, and when
//! pruning cannot bring the conversation under the limit the cell fails with RVB-E010 instead of
//! sending a request known to be over budget. Pruning edits the cell's conversation in place, so later
//! turns start from the pruned one.

use rvbbit_cascade::model::{Cell, TokenBudget};
use rvbbit_core::EventKind;
use rvbbit_llm::{ChatRequest, Expect, Expected, Message, Role};
use serde_json::{Value, json};

use super::call::call_model;
use crate::error::{Error, Result};
use crate::run::Run;

const DEFAULT_MAX_TOTAL: u64 = 100_000;
const DEFAULT_RESERVE: u64 = 4_000;
const DEFAULT_WARNING: f64 = 0.8;
/// Messages `summarize` keeps verbatim (the rest are summarized).
const SUMMARIZE_KEEP: usize = 10;
/// Below this many older messages `summarize` slides the window instead (as RVBBIT did).
const SUMMARIZE_MIN: usize = 5;
/// Exchanges `prune_oldest` never drops.
const PROTECTED_EXCHANGES: usize = 3;

/// The budget of one cell: the cascade's `token_budget` with `phase_overrides.<cell>` laid over it.
struct Limits {
    limit: u64,
    strategy: String,
    warning: f64,
    summarizer_model: Option<String>,
    target_size: u64,
}

fn limits(budget: &TokenBudget, cell: &Cell) -> Limits {
    let mut b = budget.clone();
    if let Some(Value::Object(over)) = &budget.phase_overrides
        && let Some(own) = over.get(&cell.name)
        && let Ok(own) = serde_json::from_value::<TokenBudget>(own.clone())
    {
        b.max_total = own.max_total.or(b.max_total);
        b.reserve_for_output = own.reserve_for_output.or(b.reserve_for_output);
        b.strategy = own.strategy.or(b.strategy);
        b.warning_threshold = own.warning_threshold.or(b.warning_threshold);
        b.summarizer = own.summarizer.or(b.summarizer);
    }
    let summarizer = b.summarizer.unwrap_or(Value::Null);
    Limits {
        limit: b
            .max_total
            .unwrap_or(DEFAULT_MAX_TOTAL)
            .saturating_sub(b.reserve_for_output.unwrap_or(DEFAULT_RESERVE)),
        strategy: b.strategy.unwrap_or_else(|| "sliding_window".into()),
        warning: b.warning_threshold.unwrap_or(DEFAULT_WARNING),
        summarizer_model: summarizer["model"].as_str().map(str::to_owned),
        target_size: summarizer["target_size"].as_u64().unwrap_or(2000),
    }
}

/// Estimated tokens of one message: 4 + chars/4 of its text and tool calls.
fn tokens_of(m: &Message) -> u64 {
    let chars = m.text().chars().count()
        + m.tool_calls
            .iter()
            .map(|c| c.name.len() + c.arguments.len())
            .sum::<usize>();
    4 + (chars as u64) / 4
}

/// Estimated tokens of a conversation.
pub(crate) fn tokens(messages: &[Message]) -> u64 {
    messages.iter().map(tokens_of).sum()
}

/// Enforce the cascade's `token_budget` on the conversation about to be sent for `cell`.
///
/// # Errors
/// [`Error::TokenBudgetExceeded`] with `strategy: fail`, or when pruning cannot fit the conversation;
/// [`Error::Unsupported`] for an unknown strategy; the summarizer's provider error.
pub(crate) async fn enforce(
    run: &mut Run<'_>,
    cell: &Cell,
    model: &str,
    messages: &mut Vec<Message>,
) -> Result<()> {
    let Some(budget) = &run.cascade.token_budget else {
        return Ok(());
    };
    let limits = limits(budget, cell);
    let before = tokens(messages);
    if before <= limits.limit {
        if before as f64 > limits.limit as f64 * limits.warning {
            warn_once(run, cell, before, &limits).await;
        }
        return Ok(());
    }
    let count_before = messages.len();
    let exceeded = |tokens: u64| Error::TokenBudgetExceeded {
        cell: cell.name.clone(),
        tokens,
        limit: limits.limit,
        strategy: limits.strategy.clone(),
    };
    let pruned = match limits.strategy.as_str() {
        "fail" => {
            budget_event(run, cell, &limits, before, before, 0).await;
            return Err(exceeded(before));
        }
        "sliding_window" => sliding_window(messages, limits.limit),
        "prune_oldest" => prune_oldest(messages, limits.limit),
        "summarize" => summarize(run, cell, model, messages, &limits).await?,
        other => {
            return Err(Error::Unsupported {
                cell: cell.name.clone(),
                feature: format!(
                    "token_budget.strategy `{other}` (use sliding_window, prune_oldest, summarize or fail)"
                ),
            });
        }
    };
    let pruned = drop_orphan_tool_results(pruned);
    let after = tokens(&pruned);
    budget_event(
        run,
        cell,
        &limits,
        before,
        after,
        count_before.saturating_sub(pruned.len()),
    )
    .await;
    if after > limits.limit {
        return Err(exceeded(after));
    }
    *messages = pruned;
    Ok(())
}

async fn warn_once(run: &mut Run<'_>, cell: &Cell, tokens: u64, limits: &Limits) {
    let prefix = format!("cell `{}`: token_budget", cell.name);
    if run.totals().warnings().iter().any(|w| w.starts_with(&prefix)) {
        return;
    }
    let w = format!(
        "{prefix}: the conversation uses ~{tokens} of {} tokens (warning_threshold {})",
        limits.limit, limits.warning
    );
    let mut e = run.emit.event(EventKind::Validation, Some(&cell.name));
    e.metadata = json!({"check": "token_budget", "severity": "warning", "passed": true, "tokens": tokens, "limit": limits.limit});
    e.content = json!(w);
    run.emit.send(e).await;
    // Info, not warn: the outcome's `warnings` reach the caller, which shows them once.
    tracing::info!(session_id = %run.session_id, "{w}");
    run.warn(w);
}

async fn budget_event(
    run: &mut Run<'_>,
    cell: &Cell,
    limits: &Limits,
    before: u64,
    after: u64,
    dropped: usize,
) {
    let mut e = run.emit.event(EventKind::Validation, Some(&cell.name));
    e.metadata = json!({
        "check": "token_budget",
        "strategy": limits.strategy,
        "passed": after <= limits.limit,
        "tokens_before": before,
        "tokens_after": after,
        "limit": limits.limit,
        "dropped_messages": dropped,
    });
    e.content = json!(format!(
        "token_budget ({}): ~{before} tokens over the limit of {}; now ~{after} after dropping {dropped} message(s)",
        limits.strategy, limits.limit
    ));
    run.emit.send(e).await;
}

/// A leading system message, then the newest messages that fit (the last one always).
fn sliding_window(messages: &[Message], limit: u64) -> Vec<Message> {
    let (head, rest) = match messages.first() {
        Some(m) if m.role == Role::System => (vec![m.clone()], &messages[1..]),
        _ => (Vec::new(), messages),
    };
    let mut used = tokens(&head);
    let mut tail = Vec::new();
    for (i, m) in rest.iter().enumerate().rev() {
        let t = tokens_of(m);
        if used + t > limit && i + 1 != rest.len() {
            break;
        }
        used += t;
        tail.push(m.clone());
    }
    tail.reverse();
    let mut out = head;
    out.extend(tail);
    out
}

/// Drop the oldest unprotected messages until the conversation fits.
fn prune_oldest(messages: &[Message], limit: u64) -> Vec<Message> {
    let n = messages.len();
    let mut protected = vec![false; n];
    if messages.first().is_some_and(|m| m.role == Role::System) {
        protected[0] = true;
    }
    if n > 0 {
        protected[n - 1] = true;
    }
    let mut exchanges = 0;
    for i in (0..n).rev() {
        let m = &messages[i];
        if matches!(m.role, Role::User | Role::Assistant) {
            protected[i] = true;
            if m.role == Role::Assistant {
                exchanges += 1;
            }
            if exchanges >= PROTECTED_EXCHANGES {
                break;
            }
        }
    }
    for (i, m) in messages.iter().enumerate() {
        let text = m.text().to_lowercase();
        if text.contains("error") || text.contains("exception") {
            protected[i] = true;
        }
    }
    let mut keep = vec![true; n];
    let mut used = tokens(messages);
    for i in 0..n {
        if used <= limit {
            break;
        }
        if !protected[i] {
            keep[i] = false;
            used -= tokens_of(&messages[i]);
        }
    }
    messages
        .iter()
        .zip(keep)
        .filter(|(_, k)| *k)
        .map(|(m, _)| m.clone())
        .collect()
}

/// Summarize all but the last [`SUMMARIZE_KEEP`] messages with one LLM call; slide the window when
/// that does not fit (or there is too little to summarize).
async fn summarize(
    run: &mut Run<'_>,
    cell: &Cell,
    model: &str,
    messages: &[Message],
    limits: &Limits,
) -> Result<Vec<Message>> {
    let split = messages.len().saturating_sub(SUMMARIZE_KEEP).max(1);
    let (head, old) = match messages.first() {
        Some(m) if m.role == Role::System => (Some(m.clone()), &messages[1..split.max(1)]),
        _ => (None, &messages[..split]),
    };
    if old.len() < SUMMARIZE_MIN {
        return Ok(sliding_window(messages, limits.limit));
    }
    let transcript: Vec<String> = old
        .iter()
        .map(|m| {
            let text = m.text();
            let short: String = text.chars().take(500).collect();
            let role = serde_json::to_value(m.role)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            if short.len() < text.len() {
                format!("[{role}]: {short}...")
            } else {
                format!("[{role}]: {short}")
            }
        })
        .collect();
    let prompt = format!(
        "Summarize this conversation history in approximately {} tokens.\n\nFocus on:\n1. Key decisions made\n2. Important findings from tools\n3. Errors encountered\n4. Current state/progress\n\nBe extremely concise.\n\nConversation:\n{}\n\nSummary:",
        limits.target_size,
        transcript.join("\n")
    );
    let summarizer = limits
        .summarizer_model
        .clone()
        .unwrap_or_else(|| model.to_owned());
    let request = ChatRequest::new(
        summarizer,
        vec![
            Message::system("You are a concise summarizer."),
            Message::user(prompt),
        ],
    )
    .with_expect(Expect::new(cell.name.clone(), Expected::Text));
    let reply = call_model(run, &cell.name, &request, None, None).await?;
    let mut out: Vec<Message> = head.into_iter().collect();
    out.push(Message::system(format!(
        "CONTEXT SUMMARY (compressed from {} messages):\n{}",
        old.len(),
        reply.text
    )));
    out.extend(messages[split..].iter().cloned());
    if tokens(&out) > limits.limit {
        return Ok(sliding_window(&out, limits.limit));
    }
    Ok(out)
}

/// Native tool results must follow the assistant message that called them; drop those whose call
/// was pruned away.
fn drop_orphan_tool_results(messages: Vec<Message>) -> Vec<Message> {
    let mut ids: Vec<String> = Vec::new();
    let mut out = Vec::with_capacity(messages.len());
    for m in messages {
        if m.role == Role::Tool {
            if !m.tool_call_id.as_ref().is_some_and(|id| ids.contains(id)) {
                continue;
            }
        } else {
            ids.extend(m.tool_calls.iter().map(|c| c.id.clone()));
        }
        out.push(m);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv() -> Vec<Message> {
        let mut m = vec![Message::system("tools: none")];
        for i in 0..6 {
            m.push(Message::user(format!("question {i} {}", "x".repeat(400))));
            m.push(Message::assistant(format!("answer {i} {}", "y".repeat(400))));
        }
        m.push(Message::user("final task"));
        m
    }

    #[test]
    fn sliding_window_keeps_the_system_message_and_the_newest_that_fit() {
        let m = conv();
        let out = sliding_window(&m, 400);
        assert_eq!(out[0].text(), "tools: none");
        assert_eq!(out.last().unwrap().text(), "final task");
        assert!(tokens(&out) <= 400, "{}", tokens(&out));
        assert!(out.len() < m.len());
        assert!(out[1].text().starts_with("answer") || out[1].text().starts_with("question"));
    }

    #[test]
    fn sliding_window_never_drops_the_last_message() {
        let m = vec![Message::user("z".repeat(4000))];
        assert_eq!(sliding_window(&m, 10).len(), 1);
    }

    #[test]
    fn prune_oldest_protects_errors_and_recent_exchanges() {
        let mut m = conv();
        m[3] = Message::user(format!("Error: the tool failed {}", "e".repeat(400)));
        let out = prune_oldest(&m, 700);
        let texts: Vec<String> = out.iter().map(Message::text).collect();
        assert!(texts.iter().any(|t| t.starts_with("Error: the tool failed")));
        assert_eq!(texts[0], "tools: none");
        assert_eq!(texts.last().unwrap(), "final task");
        assert!(!texts.iter().any(|t| t.starts_with("question 0")));
    }

    #[test]
    fn orphan_tool_results_are_dropped() {
        let m = vec![
            Message::tool_result("call_1", "orphan"),
            Message::assistant_tool_calls("", vec![rvbbit_llm::ToolCall::new("call_2", "t", "{}")]),
            Message::tool_result("call_2", "kept"),
        ];
        let out = drop_orphan_tool_results(m);
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].text(), "kept");
    }

    #[test]
    fn phase_overrides_replace_the_cascade_budget_for_one_cell() {
        let budget = TokenBudget {
            max_total: Some(1000),
            reserve_for_output: Some(100),
            phase_overrides: Some(json!({"big": {"max_total": 5000, "strategy": "fail"}})),
            ..TokenBudget::default()
        };
        let big = Cell {
            name: "big".into(),
            ..Cell::default()
        };
        let small = Cell {
            name: "small".into(),
            ..Cell::default()
        };
        let l = limits(&budget, &big);
        assert_eq!((l.limit, l.strategy.as_str()), (4900, "fail"));
        let l = limits(&budget, &small);
        assert_eq!((l.limit, l.strategy.as_str()), (900, "sliding_window"));
    }
}
