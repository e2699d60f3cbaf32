//! Wards (§6.4 Proposed): validators around a cell. `pre` wards judge the cascade input (as JSON, with the
//! real input as `original_input`) before the cell; `turn` wards judge each turn of an LLM cell; `post`
//! wards judge the cell's output.
//!
//! Modes: `blocking` (default) stops the cascade with RVB-E005 (`on_error` does not apply); `advisory`
//! records a warning and continues; `retry` (post wards) re-runs the cell — for LLM cells the next attempt
//! of the attempt loop, re-asked with `retry_instructions` — within `max(rules.max_attempts,
//! ward.max_attempts)` attempts, then keeps the last output with a warning. A failing `retry` pre or turn
//! ward is treated as advisory (there is nothing to re-ask), and a failing turn ward also sets
//! `state.last_validation_error`.

use rvbbit_cascade::model::{Cell, Ward, WardMode};
use rvbbit_core::EventKind;
use serde_json::{Value, json};

use super::validators::{self, Purpose};
use crate::error::{Error, Result};
use crate::run::Run;

/// The attempt budget of a cell: `max(rules.max_attempts, every retry ward's max_attempts)`, at least 1.
pub(crate) fn attempt_budget(cell: &Cell) -> u32 {
    let rules = cell.rules.as_ref().and_then(|r| r.max_attempts).unwrap_or(1);
    let wards = cell
        .wards
        .iter()
        .flat_map(|w| [&w.pre, &w.post, &w.turn])
        .flatten()
        .flatten()
        .filter(|w| w.mode == Some(WardMode::Retry))
        .filter_map(|w| w.max_attempts);
    wards.fold(rules, u32::max).max(1)
}

/// The text a ward judges: a string as is, anything else as JSON.
pub(crate) fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Run the pre wards on the cascade input.
pub(crate) async fn pre(run: &mut Run<'_>, cell: &Cell) -> Result<()> {
    let Some(wards) = cell.wards.as_ref().and_then(|w| w.pre.as_ref()) else {
        return Ok(());
    };
    let content = run.input.to_string();
    for ward in wards {
        if let Some(reason) = judge(run, cell, "pre", ward, &content).await? {
            // A failing retry pre ward has nothing to re-run: a warning, like advisory.
            warn(run, cell, "pre", ward, &reason);
        }
    }
    Ok(())
}

/// Run the turn wards on one turn's text.
pub(crate) async fn turn(run: &mut Run<'_>, cell: &Cell, content: &str) -> Result<()> {
    let Some(wards) = cell.wards.as_ref().and_then(|w| w.turn.as_ref()) else {
        return Ok(());
    };
    for ward in wards {
        if let Some(reason) = judge(run, cell, "turn", ward, content).await? {
            run.set_state("last_validation_error", json!(reason));
            warn(run, cell, "turn", ward, &reason);
        }
    }
    Ok(())
}

/// Run the post wards on `content`, in order. `Ok(Some(reason))`: a retry ward failed (and
/// `state.last_validation_error` is set); the caller re-runs the cell if attempts remain.
pub(crate) async fn post(run: &mut Run<'_>, cell: &Cell, content: &str) -> Result<Option<String>> {
    let Some(wards) = cell.wards.as_ref().and_then(|w| w.post.as_ref()) else {
        return Ok(None);
    };
    let mut retry = None;
    for ward in wards {
        let Some(reason) = judge(run, cell, "post", ward, content).await? else {
            continue;
        };
        if ward.mode == Some(WardMode::Retry) {
            run.set_state("last_validation_error", json!(reason));
            retry.get_or_insert(reason);
        } else {
            warn(run, cell, "post", ward, &reason);
        }
    }
    Ok(retry)
}

/// A post-ward retry that ran out of attempts keeps the last output, with a warning.
pub(crate) fn exhausted(run: &mut Run<'_>, cell: &Cell, attempts: u32, reason: &str) {
    run.warn(format!(
        "cell `{}`: a retry post-ward never passed in {attempts} attempt(s) ({reason}); keeping the last output",
        cell.name
    ));
}

/// Whether the cell has post wards.
pub(crate) fn has_post(cell: &Cell) -> bool {
    cell.wards
        .as_ref()
        .and_then(|w| w.post.as_ref())
        .is_some_and(|p| !p.is_empty())
}

/// Judge `content` with one ward, recording a `ward` event. `Ok(None)`: passed. `Ok(Some(reason))`: failed
/// in `retry` or `advisory` mode. A failing `blocking` ward is [`Error::WardBlocked`].
async fn judge(
    run: &mut Run<'_>,
    cell: &Cell,
    side: &'static str,
    ward: &Ward,
    content: &str,
) -> Result<Option<String>> {
    let (valid, reason) = validators::judge(run, cell, &ward.validator, content, Purpose::Ward).await?;
    let mode = ward.mode.unwrap_or(WardMode::Blocking);
    let name = validators::name_of(&ward.validator);
    let mut e = run.emit.event(EventKind::Ward, Some(&cell.name));
    e.metadata = json!({"side": side, "validator": name, "mode": mode, "passed": valid});
    e.content = json!(reason);
    run.emit.send(e).await;
    match (valid, mode) {
        (true, _) => Ok(None),
        (false, WardMode::Blocking) => Err(Error::WardBlocked {
            cell: cell.name.clone(),
            side,
            validator: name,
            reason,
        }),
        (false, _) => Ok(Some(reason)),
    }
}

fn warn(run: &mut Run<'_>, cell: &Cell, side: &str, ward: &Ward, reason: &str) {
    let message = format!(
        "cell `{}`: {side}-ward `{}` failed: {reason}",
        cell.name,
        validators::name_of(&ward.validator)
    );
    // Info, not warn: the outcome's `warnings` reach the caller, which shows them once.
    tracing::info!(session_id = %run.session_id, "{message}");
    run.warn(message);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(json: &str) -> Cell {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn the_attempt_budget_is_the_largest_of_rules_and_retry_wards() {
        let c = cell(r#"{"name": "a", "tool": "set_state"}"#);
        assert_eq!(attempt_budget(&c), 1);
        let c = cell(r#"{"name": "a", "tool": "set_state", "rules": {"max_attempts": 4}}"#);
        assert_eq!(attempt_budget(&c), 4);
        let c = cell(
            r#"{"name": "a", "tool": "set_state", "rules": {"max_attempts": 2},
                "wards": {"post": [{"validator": "v", "mode": "retry", "max_attempts": 5},
                                   {"validator": "w", "mode": "advisory", "max_attempts": 9}]}}"#,
        );
        assert_eq!(attempt_budget(&c), 5);
    }

    #[test]
    fn ward_text_is_a_string_as_is_and_json_otherwise() {
        assert_eq!(text_of(&json!("hi")), "hi");
        assert_eq!(text_of(&json!({"a": 1})), r#"{"a":1}"#);
    }
}
