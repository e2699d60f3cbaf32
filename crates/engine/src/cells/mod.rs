//! Cells: the one pipeline every cell of a run goes through ([`run_cell`]), beside the executors, one
//! file per kind (after mini-redis `cmd/mod.rs`: one dispatch next to the commands).
//!
//! [`run_cell`] reads in order:
//!
//! 1. **resume stage** (`hitl.rs`): a resumed run whose wait was the cell's `human_input` skips the cell
//!    (it already ran) and goes straight to step 8;
//! 2. **events**: `cell_start` (and, at the end, `cell_complete` or `cell_error` with the duration);
//! 3. **pre-wards** (`wards.rs`) judge the cascade input;
//! 4. **children** (`compose.rs`): the `on_start` async cascades start, then the sub-cascades run;
//! 5. **kind** ([`kind`]): `candidates` (`takes.rs`), an LLM cell (`llm.rs`), a deterministic cell
//!    (`deterministic.rs`) or a screen (`hitl.rs`);
//! 6. **post-wards** (`wards.rs`) judge the output, re-running a non-LLM cell while a `retry` ward fails
//!    (LLM cells run theirs inside their attempt loop);
//! 7. **on_end**: after `cell_complete`, the `on_end` async cascades start;
//! 8. **human input** (`hitl.rs`): the cell's `human_input` asks about the final output.
//!
//! Executors get the run ([`crate::run::Run`]) and report their totals through its methods.

mod budget;
mod call;
pub(crate) mod cascade_takes;
pub(crate) mod deterministic;
mod evaluator;
mod for_each_row;
pub(crate) mod hitl;
mod human_tools;
pub(crate) mod llm;
mod output;
pub(crate) mod plans;
pub(crate) mod takes;
mod tool_calls;
mod turns;
pub(crate) mod validators;
pub(crate) mod wards;

use std::time::Instant;

use rvbbit_cascade::model::{AsyncTrigger, Cell, CellKind};
use rvbbit_core::EventKind;
use serde_json::json;
use tracing::Instrument;

use crate::checkpoint::Stage;
use crate::error::{Error, Result};
use crate::run::{CellResult, Run, micros};

/// Run one cell of `run` through the whole pipeline (steps 1–8 of the module docs) and return its
/// output and route. The run loop (`run.rs`) records the output and follows the route.
///
/// # Errors
/// The cell's error (also recorded as `cell_error`); [`Error::Waiting`] when a human-in-the-loop wait
/// suspends the run; [`Error::WardBlocked`] when a blocking ward fails.
pub(crate) async fn run_cell(run: &mut Run<'_>, cell: &Cell) -> Result<CellResult> {
    // 1. A resumed wait at this cell continues where it stopped.
    let result = match hitl::enter(run, cell) {
        Some(Stage::HumanInput { output, route }) => CellResult { output, route },
        _ => with_events(run, cell).await?,
    };
    // 8. The cell's `human_input`, on its final output.
    hitl::after_cell(run, cell, result).await
}

/// Steps 2–7: the cell's work between `cell_start` and `cell_complete`/`cell_error`, then `on_end`.
/// The run loop calls it directly for an `on_error` fallback cell (no resume stage, no human input).
pub(crate) async fn with_events(run: &mut Run<'_>, cell: &Cell) -> Result<CellResult> {
    let span = tracing::info_span!(
        "cell",
        cell = %cell.name,
        session_id = %run.session_id,
        caller_id = %run.emit.caller()
    );
    let started = Instant::now();
    run.emit
        .send(run.emit.event(EventKind::CellStart, Some(&cell.name)))
        .await;
    let result = work(run, cell).instrument(span).await;
    let mut e = match &result {
        Ok(r) => {
            let mut e = run.emit.event(EventKind::CellComplete, Some(&cell.name));
            e.content = r.output.clone();
            e.metadata = json!({"route": r.route});
            e
        }
        Err(err) => {
            let mut e = run.emit.event(EventKind::CellError, Some(&cell.name));
            e.error = Some(json!({"code": err.code().code, "message": err.to_string(), "hint": err.hint()}));
            e
        }
    };
    e.duration_us = Some(micros(started.elapsed()));
    run.emit.send(e).await;
    if result.is_ok() {
        // 7. `on_end` async cascades start after `cell_complete`.
        crate::compose::start_async(run, cell, AsyncTrigger::OnEnd).await;
    }
    result
}

/// Steps 3–6: pre-wards, children, the kind, post-wards.
async fn work(run: &mut Run<'_>, cell: &Cell) -> Result<CellResult> {
    wards::pre(run, cell).await?;
    crate::compose::start_async(run, cell, AsyncTrigger::OnStart).await;
    crate::compose::sub_cascades(run, cell).await?;
    if !wards::has_post(cell) || cell.kind() == Some(CellKind::Llm) {
        return kind(run, cell).await;
    }
    // A non-LLM cell re-runs while a `retry` post-ward fails, within its attempt budget.
    let budget = wards::attempt_budget(cell);
    let mut attempt = 1;
    loop {
        let result = kind(run, cell).await?;
        match wards::post(run, cell, &wards::text_of(&result.output)).await? {
            None => return Ok(result),
            Some(reason) if attempt >= budget => {
                wards::exhausted(run, cell, budget, &reason);
                return Ok(result);
            }
            Some(_) => attempt += 1,
        }
    }
}

/// Step 5: execute a cell by its kind (no events of its own).
async fn kind(run: &mut Run<'_>, cell: &Cell) -> Result<CellResult> {
    match cell.kind() {
        _ if cell.candidates.is_some() => takes::run(run, cell).await,
        Some(CellKind::Llm) => llm::run(run, cell).await,
        Some(CellKind::Deterministic) => deterministic::run(run, cell).await,
        Some(CellKind::ForEachRow) => for_each_row::run(run, cell).await,
        Some(CellKind::Screen) => hitl::screen(run, cell).await,
        None => Err(Error::Unsupported {
            cell: cell.name.clone(),
            feature: "a cell without a kind".into(),
        }),
    }
}
