//! Cascade-level `candidates` (takes, soundings), §8.2: run the whole cascade N times and keep the best.
//!
//! Each branch is a full run of the cascade (without its top-level `candidates`) as its own session
//! `<sid>_sounding_<i>`, with the same input, caller and cancellation, at most `max_parallel` at once; a
//! `models` entry becomes that run's model override. The parent session records `candidate_start` and
//! `child_start` (the child's session id) per branch, judges the completed runs' final outputs with the
//! evaluator protocol of cell-level candidates (pre-filter `validator` first), records `evaluation` and
//! `candidate_complete`, and takes over the winner's outputs, lineage, state and path. Every child's
//! cost, calls and warnings are added to the parent. If every run fails, the parent fails with the first
//! run's error.

use std::future::Future;
use std::pin::Pin;

use futures::StreamExt;
use rvbbit_cascade::model::{Candidates, CandidatesMode, Cascade, Cell, IntOrTemplate};
use rvbbit_core::{EventKind, SessionId, SessionStatus};
use serde_json::{Value, json};

use super::plans::{self, DEFAULT_MAX_PARALLEL};
use super::{evaluator, validators};
use crate::error::{Error, Result};
use crate::outcome::Outcome;
use crate::request::RunRequest;
use crate::run::Run;

/// Whether `cascade` has cascade-level candidates that are on (`factor` > 1, a template, or a
/// `models` map).
pub(crate) fn applies(cascade: &Cascade) -> bool {
    match &cascade.candidates {
        None => false,
        Some(c) => c.models.is_some() || !matches!(c.factor, None | Some(IntOrTemplate::Int(..=1))),
    }
}

/// Run the cascade's branches, judge them and adopt the winner into `run`.
///
/// Boxed with an explicit `Send` because it runs the engine recursively: the erased type breaks the
/// cycle the compiler would otherwise meet proving the run's future `Send`.
pub(crate) fn run<'r, 'a: 'r>(run: &'r mut Run<'a>) -> Pin<Box<dyn Future<Output = Result<()>> + Send + 'r>> {
    Box::pin(branch_runs(run))
}

async fn branch_runs(run: &mut Run<'_>) -> Result<()> {
    let cascade = run.cascade;
    let cands = cascade.candidates.clone().unwrap_or_default();
    // Events and errors of the cascade-level machinery carry the cascade id in place of a cell name.
    let name = cascade.cascade_id.clone();
    if let Some(feature) = plans::unsupported(&cands)
        .or_else(|| cands.reforge.is_some().then_some("candidates.reforge"))
        .or_else(|| (cands.mode == Some(CandidatesMode::Aggregate)).then_some("candidates mode: aggregate"))
    {
        return Err(Error::Unsupported {
            cell: name,
            feature: format!("{feature} on cascade-level candidates"),
        });
    }
    let plans = plans::plans(&run.templates, &run.template_ctx(), &name, &cands)?;
    if cands.mutate != Some(false) {
        run.warn(format!(
            "cascade `{name}`: candidates.mutate is not applied to cascade-level candidates (each run uses the cascade as written)"
        ));
    }
    let mut base = cascade.clone();
    base.candidates = None;
    let max_parallel = cands.max_parallel.unwrap_or(DEFAULT_MAX_PARALLEL).max(1) as usize;
    let factor = plans.len();

    let children = requests(run, &base, &name, plans).await?;
    let engine = run.engine;
    let tasks = children.into_iter().map(|(index, request)| {
        // Boxed: a cascade run inside a cascade run is a recursive future.
        let child: Pin<Box<dyn Future<Output = Outcome> + Send + '_>> = Box::pin(engine.run(request));
        async move { (index, child.await) }
    });
    let mut done: Vec<(u32, Outcome)> = futures::stream::iter(tasks)
        .buffer_unordered(max_parallel)
        .collect()
        .await;
    done.sort_by_key(|(i, _)| *i);
    for (i, o) in &done {
        run.absorb(o);
        for w in &o.warnings {
            run.warn(format!("candidate {i}: {w}"));
        }
    }

    let judge_cell = Cell {
        name: name.clone(),
        ..Cell::default()
    };
    let mut verdicts: Vec<Option<(bool, String)>> = vec![None; done.len()];
    if let Some(spec) = &cands.validator {
        for (pos, (_, o)) in done.iter().enumerate() {
            if o.status == SessionStatus::Completed {
                verdicts[pos] =
                    Some(validators::check(run, &judge_cell, spec, &plans::text_of(&o.output), 1).await?);
            }
        }
    }
    let succeeded: Vec<usize> = (0..done.len())
        .filter(|&p| done[p].1.status == SessionStatus::Completed)
        .collect();
    if succeeded.is_empty() {
        complete_events(run, &done, &verdicts, None).await;
        let first = done.into_iter().find_map(|(_, o)| o.error);
        return Err(first.unwrap_or_else(|| Error::Internal(format!("cascade `{name}`: no candidate ran"))));
    }
    let passed: Vec<usize> = succeeded
        .iter()
        .copied()
        .filter(|&p| !matches!(verdicts[p], Some((false, _))))
        .collect();
    let judged = if passed.is_empty() { succeeded } else { passed };

    let (winner, reason, model) = if judged.len() == 1 {
        (judged[0], "the only candidate left to judge".to_owned(), None)
    } else {
        let (pos, reason, model) = evaluate(run, &cands, &name, &done, &judged).await?;
        (pos, reason, Some(model))
    };
    let mut e = run.emit.event(EventKind::Evaluation, None);
    e.content = json!({"winner": done[winner].0, "reason": reason});
    e.metadata = json!({
        "winner_index": done[winner].0,
        "winner_session_id": done[winner].1.session_id,
        "reason": reason,
        "candidates": factor,
        "judged": judged.iter().map(|&p| done[p].0).collect::<Vec<_>>(),
        "evaluator_model": model,
        "level": "cascade",
    });
    run.emit.send(e).await;
    complete_events(run, &done, &verdicts, Some(winner)).await;

    let (_, chosen) = done.swap_remove(winner);
    run.outputs = chosen.outputs;
    run.lineage = chosen.lineage;
    run.path = chosen.path;
    if let Ok(mut s) = run.state.lock() {
        *s = chosen.state;
    }
    Ok(())
}

/// One child request per plan (session `<sid>_sounding_<i>`, linked to `run`), each announced with
/// `candidate_start` and `child_start` on the parent.
async fn requests(
    run: &Run<'_>,
    base: &Cascade,
    name: &str,
    plans: Vec<super::plans::Plan>,
) -> Result<Vec<(u32, RunRequest)>> {
    let factor = plans.len();
    let mut children = Vec::with_capacity(factor);
    for (i, plan) in plans.into_iter().enumerate() {
        let index = u32::try_from(i).unwrap_or(u32::MAX);
        let sid = format!("{}_sounding_{i}", run.session_id);
        let session_id = SessionId::try_from(sid.clone()).map_err(|e| Error::CellFailed {
            cell: name.to_owned(),
            message: format!("cannot name the candidate session `{sid}`: {e}; use a shorter --session id"),
        })?;
        let mut request = RunRequest::new(base.clone()).with_input(run.input.clone());
        request.session_id = Some(session_id);
        request.caller_id = run.emit.caller().clone();
        request.model = plan.model.clone().or_else(|| run.model_override.clone());
        request.cancel = run.cancel.child_token();
        request.parent_session_id = Some(run.session_id.clone());
        request.root_session_id = Some(run.compose.root().clone());
        request.depth = run.compose.depth() + 1;
        let emit = run.emit.for_candidate(index);
        let mut e = emit.event(EventKind::CandidateStart, None);
        e.model_requested = request.model.clone();
        e.metadata = json!({"factor": factor, "model": request.model, "child_session_id": sid});
        emit.send(e).await;
        let mut e = emit.event(EventKind::ChildStart, None);
        e.content = json!(sid);
        e.metadata = json!({"kind": "candidate"});
        emit.send(e).await;
        children.push((index, request));
    }
    Ok(children)
}

/// The evaluator's choice among the judged runs: `(position in done, reason, model)`.
async fn evaluate(
    run: &mut Run<'_>,
    cands: &Candidates,
    name: &str,
    done: &[(u32, Outcome)],
    judged: &[usize],
) -> Result<(usize, String, String)> {
    let outputs: Vec<Value> = judged.iter().map(|&p| done[p].1.output.clone()).collect();
    let instructions = match &cands.evaluator_instructions {
        Some(t) => {
            let mut ctx = run.template_ctx();
            for key in ["soundings", "candidates", "takes"] {
                ctx[key] = json!(outputs);
            }
            run.templates
                .render(t, &ctx)
                .await
                .map_err(|e| e.into_cell_error(name, "candidates.evaluator_instructions"))?
        }
        None => "Pick the best attempt.".to_owned(),
    };
    // §4.6 without a cell: the run's override, the cascade's model, the default.
    let model = cands.evaluator_model.clone().unwrap_or_else(|| {
        run.model_override
            .clone()
            .or_else(|| run.cascade.model.clone())
            .unwrap_or_else(|| run.engine.default_model.clone())
    });
    let attempts: Vec<(u32, Value)> = judged
        .iter()
        .map(|&p| (done[p].0, done[p].1.output.clone()))
        .collect();
    let (index, reason) = evaluator::judge(run, name, &instructions, &model, &attempts).await?;
    let pos = judged
        .iter()
        .copied()
        .find(|&p| done[p].0 == index)
        .ok_or_else(|| Error::Internal(format!("the winner {index} is not a judged candidate")))?;
    Ok((pos, reason, model))
}

async fn complete_events(
    run: &Run<'_>,
    done: &[(u32, Outcome)],
    verdicts: &[Option<(bool, String)>],
    winner: Option<usize>,
) {
    for (pos, (i, o)) in done.iter().enumerate() {
        let emit = run.emit.for_candidate(*i);
        let mut e = emit.event(EventKind::CandidateComplete, None);
        e.duration_us = Some(crate::run::micros(o.duration));
        e.content = o.output.clone();
        e.metadata = json!({
            "is_winner": winner == Some(pos),
            "child_session_id": o.session_id,
            "status": o.status.as_str(),
            "valid": verdicts[pos].as_ref().map(|v| v.0),
            "validation_reason": verdicts[pos].as_ref().map(|v| v.1.clone()),
            "cost_micro_usd": o.cost.micros(),
            "llm_calls": o.llm_calls,
        });
        if let Some(err) = &o.error {
            e.error = Some(json!({"code": err.code().code, "message": err.to_string(), "hint": err.hint()}));
        }
        emit.send(e).await;
    }
}
