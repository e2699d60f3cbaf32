//! One provider call of a cell ([`call_model`]): the request goes to the engine's provider inside an
//! `llm_call` span, and the reply (or the error) becomes an `llm_response` (or `llm_error`) event with
//! tokens, cost and duration; the run counts the call and its cost. Also the model a cell uses
//! ([`resolve_model`]) and the JSON in a reply ([`extract_json`]).

use std::time::Instant;

use rvbbit_cascade::model::{Cell, ModelSpec};
use rvbbit_core::{CostStatus, EventKind, Tokens};
use rvbbit_llm::{ChatRequest, ChatResponse};
use serde_json::{Value, json};
use tracing::Instrument;

use crate::error::{Error, Result};
use crate::run::{Run, micros};

/// §4.6 Proposed: cell `model` → the run's override (`--model`) → cascade `model` → the default.
pub(crate) fn resolve_model(run: &Run<'_>, cell: &Cell) -> (String, Vec<String>) {
    match &cell.model {
        Some(ModelSpec::One(m)) => (m.clone(), Vec::new()),
        Some(ModelSpec::Chain(chain)) if !chain.is_empty() => (chain[0].clone(), chain[1..].to_vec()),
        _ => (
            run.model_override
                .clone()
                .or_else(|| run.cascade.model.clone())
                .unwrap_or_else(|| run.engine.default_model.clone()),
            Vec::new(),
        ),
    }
}

/// Call the provider once, recording the call as an event and adding its cost to the run.
pub(crate) async fn call_model(
    run: &mut Run<'_>,
    cell: &str,
    request: &ChatRequest,
    attempt: Option<u32>,
    turn: Option<u32>,
) -> Result<ChatResponse> {
    let Some(provider) = run.engine.provider.clone() else {
        return Err(Error::CellFailed {
            cell: cell.to_owned(),
            message: "no LLM provider is configured for this run".into(),
        });
    };
    debug_assert!(
        request.expect.is_some(),
        "every engine call says what it expects (offline providers answer from it)"
    );
    run.count_llm_call();
    let span = tracing::info_span!(
        "llm_call",
        cell = %cell,
        model = %request.model,
        session_id = %run.session_id,
        caller_id = %run.emit.caller()
    );
    let started = Instant::now();
    let result = provider.chat(request).instrument(span).await;
    let kind = if result.is_ok() {
        EventKind::LlmResponse
    } else {
        EventKind::LlmError
    };
    let mut e = run.emit.event(kind, Some(cell));
    e.duration_us = Some(micros(started.elapsed()));
    e.model_requested = Some(request.model.clone());
    e.attempt = attempt.map(|a| i32::try_from(a).unwrap_or(i32::MAX) - 1);
    e.turn = turn.map(|t| i32::try_from(t).unwrap_or(i32::MAX) - 1);
    e.request = serde_json::to_value(request).ok();
    match &result {
        Ok(reply) => {
            e.model = Some(reply.model.clone());
            e.provider = Some(reply.provider.clone());
            e.request_id = reply.id.clone();
            e.content = json!(reply.text);
            e.response = serde_json::to_value(reply).ok();
            let u = &reply.usage;
            e.tokens = Tokens {
                input: i64::try_from(u.prompt_tokens()).ok(),
                output: i64::try_from(u.output).ok(),
                reasoning: i64::try_from(u.reasoning).ok(),
                cached: i64::try_from(u.cached_input).ok(),
            };
            e.cost = reply.cost.amount;
            e.cost_status = match reply.cost.status {
                rvbbit_llm::CostStatus::Exact => CostStatus::Exact,
                rvbbit_llm::CostStatus::Estimated => CostStatus::Estimated,
                _ => CostStatus::Unknown,
            };
            if let Some(c) = reply.cost.amount {
                run.add_cost(c);
            }
        }
        Err(err) => {
            e.provider = err.provider().map(str::to_owned);
            e.error = Some(json!({"code": err.code().code, "message": err.to_string(), "hint": err.hint()}));
        }
    }
    run.emit.send(e).await;
    result.map_err(|source| Error::Llm {
        cell: cell.to_owned(),
        source: Box::new(source),
    })
}

/// The JSON in a reply (the whole text, a fenced block, or the outermost `{...}`/`[...]`).
pub(crate) fn extract_json(text: &str) -> Option<Value> {
    let t = text.trim();
    if let Ok(v) = serde_json::from_str(t) {
        return Some(v);
    }
    if let Some(start) = t.find("```") {
        let after = &t[start + 3..];
        let body = after.find('\n').map(|i| &after[i + 1..]).unwrap_or(after);
        if let Some(end) = body.find("```")
            && let Ok(v) = serde_json::from_str(body[..end].trim())
        {
            return Some(v);
        }
    }
    for (open, close) in [('{', '}'), ('[', ']')] {
        if let (Some(s), Some(e)) = (t.find(open), t.rfind(close))
            && s < e
            && let Ok(v) = serde_json::from_str(&t[s..=e])
        {
            return Some(v);
        }
    }
    None
}
