//! `rvbbit estimate CASCADE --inputs …`: what a batch would do before it runs — how many inputs it has,
//! how many would come from the result cache, and, from the store's history of completed runs of the
//! same cascade, the calls, time and cost to expect. Nothing runs and nothing is recorded.

use rvbbit_core::{EventKind, MicroUsd, SessionStatus};
use rvbbit_store::{EventFilter, SessionFilter, Store};
use serde_json::json;

use super::Plan;
use super::inputs::Input;
use crate::commands::storage::{fail, table};
use crate::commands::{Failure, Outcome};
use crate::output::{self, Format, Out};

/// Completed runs of the cascade the estimate averages over (the latest ones).
const SAMPLE: u64 = 50;

/// What the history says of one run.
#[derive(Debug, Default)]
struct History {
    runs: u64,
    cost: MicroUsd,
    duration_ms: u64,
    llm_calls: u64,
}

async fn history(store: &dyn Store, cascade_id: &str) -> Result<History, Failure> {
    let filter = SessionFilter {
        cascade_id: Some(cascade_id.to_owned()),
        status: Some(SessionStatus::Completed),
        limit: Some(SAMPLE * 4),
        ..SessionFilter::default()
    };
    let roots: Vec<_> = store
        .sessions(&filter)
        .await
        .map_err(fail)?
        .into_iter()
        .filter(|s| s.session.parent_session_id.is_none())
        .take(usize::try_from(SAMPLE).unwrap_or(50))
        .collect();
    let mut h = History {
        runs: roots.len() as u64,
        ..History::default()
    };
    let Some(oldest) = roots.iter().map(|s| s.session.started_at).min() else {
        return Ok(h);
    };
    for s in &roots {
        h.cost += s.cost;
        let end = s.session.ended_at.unwrap_or(s.session.updated_at);
        h.duration_ms += u64::try_from((end.micros() - s.session.started_at.micros()) / 1000).unwrap_or(0);
    }
    let ids: std::collections::HashSet<&str> = roots.iter().map(|s| s.session.session_id.as_str()).collect();
    let calls = store
        .events(&EventFilter {
            kind: Some(EventKind::LlmResponse),
            since: Some(oldest),
            limit: Some(100_000),
            ..EventFilter::default()
        })
        .await
        .map_err(fail)?;
    h.llm_calls = calls
        .iter()
        .filter(|e| ids.contains(e.event.root_session_id.as_str()))
        .count() as u64;
    Ok(h)
}

/// Count the inputs, look each up in the cache, and scale the history to the inputs left to run.
pub(super) async fn report(
    store: &dyn Store,
    plan: &Plan,
    inputs: &[Input],
    parallel: u32,
    out: Out,
) -> Outcome {
    let hits = super::prefetch(Some(store), plan, inputs).await;
    let bad = inputs.iter().filter(|i| i.value.is_err()).count() as u64;
    let cached = hits.iter().filter(|h| h.is_some()).count() as u64;
    let total = inputs.len() as u64;
    let to_run = total - cached - bad;
    let h = history(store, &plan.cascade.cascade_id).await?;
    let per = |x: u64| (h.runs > 0).then(|| x as f64 / h.runs as f64);
    let cost_per_run = (h.runs > 0).then(|| MicroUsd::from_micros(h.cost.micros() / h.runs as i64));
    let expected_cost = cost_per_run.map(|c| MicroUsd::from_micros(c.micros().saturating_mul(to_run as i64)));
    let ms_per_run = per(h.duration_ms);
    let seconds = ms_per_run.map(|ms| ms * to_run as f64 / f64::from(parallel.max(1)) / 1000.0);
    let calls = per(h.llm_calls).map(|c| (c * to_run as f64).round() as u64);
    match out.format {
        Format::Json => output::json(&json!({
            "cascade_id": plan.cascade.cascade_id,
            "inputs": total, "bad_inputs": bad, "cached": cached, "to_run": to_run,
            "parallel": parallel,
            "history_runs": h.runs,
            "cost_per_run_usd": cost_per_run.map(|c| c.to_string()),
            "duration_ms_per_run": ms_per_run.map(|m| m.round() as u64),
            "llm_calls_per_run": per(h.llm_calls),
            "expected_llm_calls": calls,
            "expected_cost_usd": expected_cost.map(|c| c.to_string()),
            "expected_seconds": seconds.map(|s| (s * 1000.0).round() / 1000.0),
        }))?,
        Format::Text => {
            let unknown = || "unknown (no completed run of this cascade in the store)".to_owned();
            let rows = [
                ("inputs", total.to_string()),
                ("bad inputs (would fail)", bad.to_string()),
                ("from the cache ($0)", cached.to_string()),
                ("to run", to_run.to_string()),
                (
                    "history",
                    format!("{} completed run(s) of `{}`", h.runs, plan.cascade.cascade_id),
                ),
                ("LLM calls", calls.map_or_else(unknown, |c| c.to_string())),
                ("cost", expected_cost.map_or_else(unknown, |c| c.to_string())),
                (
                    "time",
                    seconds.map_or_else(unknown, |s| format!("{s:.1} s at --parallel {parallel}")),
                ),
            ]
            .map(|(k, v)| vec![k.to_owned(), v]);
            output::stdout(table(&["", ""], &rows).trim_start())?;
        }
    }
    Ok(0)
}
