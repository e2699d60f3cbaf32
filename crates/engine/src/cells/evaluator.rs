//! The evaluator protocol of candidates (§8.1), shared by cell-level and cascade-level takes: one call
//! with the judge prompt and one `## Attempt n` block per attempt (`n` = index + 1, or the index itself
//! when the instructions ask for a 0-based answer), asking for
//! `{"winner": n, "reason": "..."}` (Proposed); the reply is read as that JSON, else the first number in
//! the text that is one of the attempts (the Observed protocol). An unreadable reply is asked again
//! once with the format spelled out; a second one is RVB-E011.

use rvbbit_llm::{ChatRequest, Expect, Expected, Message};
use serde_json::Value;

use super::call::{call_model, extract_json};
use crate::error::{Error, Result};
use crate::run::Run;

/// Ask `model` to pick one of `attempts` (`(0-based index, output)`), recording the calls under
/// `cell`. Returns the winner's index and the evaluator's reason.
///
/// # Errors
/// [`Error::EvaluatorUnreadable`] when neither reply names an attempt; the provider's error.
pub(crate) async fn judge(
    run: &mut Run<'_>,
    cell: &str,
    instructions: &str,
    model: &str,
    attempts: &[(u32, Value)],
) -> Result<(u32, String)> {
    // Attempts are numbered from 1, or from 0 when the instructions ask for a 0-based index (several
    // corpus files do; RVBBIT numbered from 1 regardless and read a `0` as attempt 1).
    let base = if asks_zero_based(instructions) { 0 } else { 1 };
    let choices: Vec<u32> = attempts.iter().map(|(i, _)| i + base).collect();
    let mut prompt = format!("{instructions}\n");
    for (i, output) in attempts {
        let text = match output {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        prompt.push_str(&format!("\n## Attempt {}\nResult: {text}\n", i + base));
    }
    let list = choices.iter().map(u32::to_string).collect::<Vec<_>>().join(", ");
    prompt.push_str(&format!(
        "\nReply with only a JSON object {{\"winner\": <attempt number: one of {list}>, \"reason\": \"<one sentence>\"}}."
    ));
    let mut messages = vec![Message::user(prompt)];
    let mut reply = String::new();
    for ask in 0..2 {
        if ask > 0 {
            messages.push(Message::assistant(reply.clone()));
            messages.push(Message::user(format!(
                "Your reply did not name one of the attempts ({list}). Reply with only a JSON object {{\"winner\": <number>, \"reason\": \"<one sentence>\"}}."
            )));
        }
        let request = ChatRequest::new(model.to_owned(), messages.clone()).with_expect(Expect::new(
            cell,
            Expected::Winner {
                choices: choices.clone(),
            },
        ));
        reply = call_model(run, cell, &request, None, None).await?.text;
        if let Some((n, reason)) = parse_winner(&reply, &choices) {
            return Ok((n - base, reason));
        }
    }
    Err(Error::EvaluatorUnreadable {
        cell: cell.to_owned(),
        choices: list,
        reply: reply.chars().take(500).collect(),
    })
}

/// Whether judge instructions ask for a 0-based answer ("the index (0-based)", "(0, 1, or 2)").
pub(crate) fn asks_zero_based(instructions: &str) -> bool {
    let text = instructions.to_ascii_lowercase();
    let squeezed: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    ["0-based", "zero-based", "zerobased", "(0,1", "(0or1"]
        .iter()
        .any(|p| squeezed.contains(p))
        || text.contains("zero based")
}

/// The winner named by an evaluator reply: `{"winner": n, "reason": ...}` (also `attempt`/`choice`),
/// else the first number in the text that is one of `choices`. `None` when neither names a choice.
pub(crate) fn parse_winner(text: &str, choices: &[u32]) -> Option<(u32, String)> {
    if let Some(Value::Object(obj)) = extract_json(text) {
        let named = ["winner", "attempt", "choice", "winner_index"]
            .iter()
            .find_map(|k| obj.get(*k));
        if let Some(v) = named {
            let n = v
                .as_u64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                .and_then(|n| u32::try_from(n).ok());
            let reason = obj
                .get("reason")
                .map(|r| r.as_str().map(str::to_owned).unwrap_or_else(|| r.to_string()))
                .unwrap_or_default();
            return n.filter(|n| choices.contains(n)).map(|n| (n, reason));
        }
    }
    let mut digits = String::new();
    for ch in text.chars().chain(std::iter::once(' ')) {
        if ch.is_ascii_digit() {
            digits.push(ch);
        } else if !digits.is_empty() {
            if let Ok(n) = digits.parse::<u32>()
                && choices.contains(&n)
            {
                return Some((n, text.trim().chars().take(500).collect()));
            }
            digits.clear();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_based_instructions_are_recognised() {
        for yes in [
            "Return the number (0, 1, or 2) of the best assessment.",
            "Return the index (0-based) of the best output.",
            "declare the winner by index (0, 1, or 2).",
            "Answer with the zero-based index.",
        ] {
            assert!(asks_zero_based(yes), "{yes}");
        }
        for no in [
            "Pick the clearest explanation.",
            "Return 1, 2 or 3.",
            "Score each from 0 to 10, then name the best attempt.",
        ] {
            assert!(!asks_zero_based(no), "{no}");
        }
    }

    #[test]
    fn winner_from_json_then_from_the_first_valid_number() {
        assert_eq!(
            parse_winner(r#"{"winner": 2, "reason": "clearer"}"#, &[1, 2, 3]),
            Some((2, "clearer".into()))
        );
        assert_eq!(
            parse_winner("```json\n{\"winner\": \"3\"}\n```", &[1, 3]),
            Some((3, String::new()))
        );
        assert_eq!(
            parse_winner("Attempt 3 is best.", &[1, 2, 3]).map(|w| w.0),
            Some(3)
        );
        assert_eq!(
            parse_winner("I pick 7, no wait, 2", &[1, 2]).map(|w| w.0),
            Some(2)
        );
        assert_eq!(parse_winner("They are all fine.", &[1, 2]), None);
        assert_eq!(parse_winner(r#"{"winner": 9}"#, &[1, 2]), None);
        assert_eq!(parse_winner("12 of them", &[1, 2]), None);
    }
}
