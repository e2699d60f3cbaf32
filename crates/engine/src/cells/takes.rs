//! Cell-level `candidates` (E1 `soundings`, E3 `takes`), §8.1: best-of-N branches of one LLM cell.
//!
//! `factor` branches (or the sum of the per-model factors of a `models` map) run concurrently, at most
//! `max_parallel` (default 3) at once. Each branch is a full attempt of the cell (turn loop, tools,
//! `output_schema`, `loop_until`) on its own copy of the run ([`Run::fork`](crate::run::Run::fork)): a snapshot of the state, the
//! outputs and the lineage, with `candidate_index`/`sounding_index`/`take_index`, `candidate_factor`
//! (and the era aliases) and `is_candidate`/`is_sounding`/`is_take` set for its templates. Every event of
//! a branch carries its `candidate_index`; its costs, calls and warnings are added to the run.
//!
//! Then the optional pre-filter `validator` judges each successful branch (if none passes, all are
//! judged), and the evaluator picks one: an LLM call with `evaluator_instructions` and one
//! `## Attempt n` block per branch, asked for `{"winner": n, "reason": "..."}` (Proposed), with the
//! first valid attempt number in the text as the fallback (Observed); an unreadable reply is re-asked
//! once, then fails the cell with RVB-E011. A single remaining branch wins without a judge call.
//! The winner's state replaces the run's state, and its output and route become the cell's. With
//! `mode: aggregate` the outputs are merged instead (an LLM call with `aggregator_instructions`, or a
//! concatenation). If every branch fails, the cell fails with the first branch's error. `reforge` then
//! refines the winner in rounds of `factor_per_step` branches ([`reforge_rounds`]).
//!
//! Events: `candidate_start` per branch, the branches' own events, `evaluation` (winner and reason),
//! then `candidate_complete` per branch with `metadata.is_winner`.

use std::time::Instant;

use futures::StreamExt;
use rvbbit_cascade::model::{
    Candidates, CandidatesMode, Cell, CellKind, ModelSpec, MutationMode, Reforge, ValidatorSpec,
};
use rvbbit_core::EventKind;
use rvbbit_llm::{ChatRequest, Expect, Expected, Message};
use serde_json::{Value, json};
use tracing::Instrument;

use super::call::{call_model, resolve_model};
use super::plans::{
    BUILTIN_MUTATIONS, Branch, DEFAULT_MAX_PARALLEL, MAX_FACTOR, Plan, plans, text_of, unsupported,
};
use super::{evaluator, validators};
use crate::error::{Error, Result};
use crate::run::{CellResult, Run, micros};

/// What one branch produced.
struct Done<'a> {
    index: u32,
    run: Run<'a>,
    model: String,
    mutation: Option<String>,
    result: Result<CellResult>,
    /// The pre-filter's verdict (`None` without a validator or when the branch failed).
    verdict: Option<Result<(bool, String)>>,
    duration: std::time::Duration,
}

/// Run `cell`, which has `candidates`.
pub(crate) async fn run(run: &mut Run<'_>, cell: &Cell) -> Result<CellResult> {
    let cands = cell.candidates.clone().unwrap_or_default();
    let plans = plans(&run.templates, &run.template_ctx(), &cell.name, &cands)?;
    let mut plain = cell.clone();
    plain.candidates = None;
    if plans.len() <= 1 {
        // `factor` ≤ 1 disables branching; a single candidate model still wins over the cell's (§10.3).
        if let Some(m) = plans.first().and_then(|p| p.model.clone()) {
            plain.model = Some(ModelSpec::One(m));
        }
        return match plain.kind() {
            Some(CellKind::Llm) => super::llm::run(run, &plain).await,
            Some(CellKind::Deterministic) => super::deterministic::run(run, &plain).await,
            _ => Err(Error::Unsupported {
                cell: cell.name.clone(),
                feature: "candidates on a cell that is neither an LLM nor a deterministic cell".into(),
            }),
        };
    }
    if plain.kind() != Some(CellKind::Llm) {
        return Err(Error::Unsupported {
            cell: cell.name.clone(),
            feature: "candidates on a cell that is not an LLM cell".into(),
        });
    }
    if let Some(feature) = unsupported(&cands) {
        return Err(Error::Unsupported {
            cell: cell.name.clone(),
            feature: feature.into(),
        });
    }
    let max_parallel = cands.max_parallel.unwrap_or(DEFAULT_MAX_PARALLEL).max(1) as usize;
    let first = Round {
        step: None,
        mutation: (cands.mutate != Some(false)).then(|| {
            let hints = match &cands.mutations {
                Some(m) if !m.is_empty() => m.clone(),
                _ => BUILTIN_MUTATIONS.iter().map(|s| (*s).to_owned()).collect(),
            };
            (cands.mutation_mode, hints)
        }),
        evaluator: cands.evaluator_instructions.clone(),
        max_parallel,
    };
    let (done, judged) = branches(run, cell, &plain, plans, &cands, &first).await?;

    if cands.mode == Some(CandidatesMode::Aggregate) {
        let output = aggregate(run, cell, &cands, &done, &judged).await?;
        let mut e = run.emit.event(EventKind::Evaluation, Some(&cell.name));
        e.metadata =
            json!({"mode": "aggregate", "candidates": done.len(), "aggregated": indices(&done, &judged)});
        e.content = output.clone();
        run.emit.send(e).await;
        complete_events(run, cell, &done, None, None).await;
        return Ok(CellResult { output, route: None });
    }
    let mut best = choose(run, cell, &cands, done, &judged, &first).await?;
    if let Some(reforge) = &cands.reforge {
        best = reforge_rounds(run, cell, &plain, &cands, reforge, best, max_parallel).await?;
    }
    best.result
}

/// One round of branches: the initial candidates, or one reforge step.
struct Round {
    /// The reforge step (`None` for the initial round).
    step: Option<u32>,
    /// How branches 2..N vary their prompt, and the hints (`None`: no mutation).
    mutation: Option<(Option<MutationMode>, Vec<String>)>,
    /// The judge prompt.
    evaluator: Option<String>,
    max_parallel: usize,
}

/// Run one branch per plan of `plain` concurrently and add their costs to the run. Returns the
/// branches (in index order) and the positions of those to judge: the successful ones that passed the
/// pre-filter, or all successful ones when none passed.
///
/// # Errors
/// The first branch's error when every branch failed; a pre-filter validator that cannot run.
async fn branches<'a>(
    run: &mut Run<'a>,
    cell: &Cell,
    plain: &Cell,
    plans: Vec<Plan>,
    cands: &Candidates,
    round: &Round,
) -> Result<(Vec<Done<'a>>, Vec<usize>)> {
    let factor = u32::try_from(plans.len()).unwrap_or(MAX_FACTOR);
    let tasks = plans.into_iter().enumerate().map(|(i, plan)| {
        let index = u32::try_from(i).unwrap_or(u32::MAX);
        let branch = Branch {
            index,
            factor,
            temperature: plan.temperature,
            max_tokens: plan.max_tokens,
        };
        let forked = run.fork(branch);
        let mut bcell = plain.clone();
        if let Some(m) = &plan.model {
            bcell.model = Some(ModelSpec::One(m.clone()));
        }
        let span = tracing::info_span!(
            "candidate",
            cell = %cell.name,
            candidate_index = index,
            reforge_step = round.step,
            session_id = %run.session_id,
            caller_id = %run.emit.caller()
        );
        branch_task(forked, bcell, cands, cell, round).instrument(span)
    });
    let mut done: Vec<Done<'a>> = futures::stream::iter(tasks)
        .buffer_unordered(round.max_parallel)
        .collect()
        .await;
    done.sort_by_key(|d| d.index);

    for d in &done {
        let t = d.run.totals();
        run.add_calls(t.cost(), t.llm_calls(), t.tool_calls());
        for w in t.warnings() {
            run.warn(format!("candidate {}: {w}", d.index));
        }
    }
    // A validator that cannot run is a problem of the cascade, not of one branch.
    if let Some(i) = done.iter().position(|d| matches!(d.verdict, Some(Err(_))))
        && let Some(Err(e)) = done.swap_remove(i).verdict
    {
        return Err(e);
    }
    let succeeded: Vec<usize> = (0..done.len()).filter(|&i| done[i].result.is_ok()).collect();
    if succeeded.is_empty() {
        complete_events(run, cell, &done, None, round.step).await;
        let first = done.into_iter().find_map(|d| d.result.err());
        return Err(
            first.unwrap_or_else(|| Error::Internal(format!("cell `{}`: no candidate ran", cell.name)))
        );
    }
    let passed: Vec<usize> = succeeded
        .iter()
        .copied()
        .filter(|&i| !matches!(done[i].verdict, Some(Ok((false, _)))))
        .collect();
    let judged = if passed.is_empty() { succeeded } else { passed };
    Ok((done, judged))
}

/// Pick the winner among `judged` (the evaluator, unless one is left), record the `evaluation` and
/// `candidate_complete` events, and make the winner's state the run's state.
async fn choose<'a>(
    run: &mut Run<'a>,
    cell: &Cell,
    cands: &Candidates,
    mut done: Vec<Done<'a>>,
    judged: &[usize],
    round: &Round,
) -> Result<Done<'a>> {
    let (winner, reason, evaluator_model) = if judged.len() == 1 {
        (judged[0], "the only candidate left to judge".to_owned(), None)
    } else {
        let (w, reason, model) =
            evaluate(run, cell, cands, round.evaluator.as_deref(), &done, judged).await?;
        (w, reason, Some(model))
    };
    let mut e = run.emit.event(EventKind::Evaluation, Some(&cell.name));
    e.content = json!({"winner": done[winner].index, "reason": reason});
    e.metadata = json!({
        "winner_index": done[winner].index,
        "reason": reason,
        "candidates": done.len(),
        "judged": indices(&done, judged),
        "evaluator_model": evaluator_model,
        "reforge_step": round.step,
    });
    run.emit.send(e).await;
    complete_events(run, cell, &done, Some(winner), round.step).await;
    let chosen = done.swap_remove(winner);
    let state = chosen.run.state.lock().map(|s| s.clone()).unwrap_or_default();
    if let Ok(mut s) = run.state.lock() {
        *s = state;
    }
    Ok(chosen)
}

/// `reforge`: `steps` rounds of `factor_per_step` branches (default 2) that refine the current best
/// output with `honing_prompt` (plus a built-in variation hint per step with `mutate: true`), judged
/// with `evaluator_override` (else the evaluator instructions); each round's winner is the new best. A
/// `threshold` validator that passes on the new best ends the rounds early.
async fn reforge_rounds<'a>(
    run: &mut Run<'a>,
    cell: &Cell,
    plain: &Cell,
    cands: &Candidates,
    reforge: &Reforge,
    mut best: Done<'a>,
    max_parallel: usize,
) -> Result<Done<'a>> {
    let render = async |run: &Run<'_>, source: &str, place: &str| {
        run.templates
            .render(source, &run.template_ctx())
            .await
            .map_err(|e| e.into_cell_error(&cell.name, place))
    };
    let original = render(run, plain.instructions.as_deref().unwrap_or(""), "instructions").await?;
    let honing = render(
        run,
        reforge.honing_prompt.as_deref().unwrap_or(""),
        "candidates.reforge.honing_prompt",
    )
    .await?;
    let per_step = reforge.factor_per_step.unwrap_or(2).clamp(1, MAX_FACTOR) as usize;
    for step in 1..=reforge.steps.unwrap_or(1) {
        let current = best
            .result
            .as_ref()
            .map(|r| text_of(&r.output))
            .unwrap_or_default();
        let mut text = format!(
            "{original}\n\n## Current Best Output\n{current}\n\n## Refinement Instructions\n{honing}"
        );
        if reforge.mutate == Some(true) {
            let hint = BUILTIN_MUTATIONS[(step as usize - 1) % BUILTIN_MUTATIONS.len()];
            text.push_str(&format!("\n\n**Variation Strategy**: {hint}"));
        }
        let mut refine = plain.clone();
        // Rendered already: keep the template engine away from braces in the outputs.
        refine.instructions = Some(format!("{{% raw %}}{text}{{% endraw %}}"));
        let plan = Plan {
            model: Some(reforge.model.clone().unwrap_or_else(|| best.model.clone())),
            ..Plan::default()
        };
        let round = Round {
            step: Some(step),
            mutation: None,
            evaluator: reforge
                .evaluator_override
                .clone()
                .or_else(|| cands.evaluator_instructions.clone()),
            max_parallel,
        };
        let (done, judged) = branches(run, cell, &refine, vec![plan; per_step], cands, &round).await?;
        best = choose(run, cell, cands, done, &judged, &round).await?;
        if let Some(threshold) = &reforge.threshold {
            let text = best
                .result
                .as_ref()
                .map(|r| text_of(&r.output))
                .unwrap_or_default();
            let (passed, _) = validators::check(run, cell, &threshold.validator, &text, 1).await?;
            if passed {
                break;
            }
        }
    }
    Ok(best)
}

/// One branch: its prompt variation, the full LLM cell, then the pre-filter validator.
async fn branch_task<'a>(
    mut run: Run<'a>,
    mut cell: Cell,
    cands: &Candidates,
    original: &Cell,
    round: &Round,
) -> Done<'a> {
    let started = Instant::now();
    let index = run.branch.as_ref().map_or(0, |b| b.index);
    let model = resolve_model(&run, &cell).0;
    let (mode, mutation) = match &round.mutation {
        Some((mode, hints)) if index > 0 && !hints.is_empty() => {
            (*mode, Some(hints[(index as usize - 1) % hints.len()].clone()))
        }
        _ => (None, None),
    };
    let mut start = run.emit.event(EventKind::CandidateStart, Some(&cell.name));
    start.model_requested = Some(model.clone());
    start.metadata = json!({
        "factor": run.branch.as_ref().map(|b| b.factor),
        "model": model,
        "mutation": mutation,
        "mutation_mode": mutation.as_ref().map(|_| mode.unwrap_or(MutationMode::Rewrite)),
        "reforge_step": round.step,
    });
    run.emit.send(start).await;
    let result = async {
        if let Some(hint) = &mutation {
            mutate(&mut run, &mut cell, original, mode, hint).await?;
        }
        super::llm::run(&mut run, &cell).await
    }
    .await;
    let verdict = match (&result, &cands.validator) {
        (Ok(r), Some(spec)) => Some(prefilter(&mut run, &cell, spec, &r.output).await),
        _ => None,
    };
    Done {
        index,
        run,
        model,
        mutation,
        result,
        verdict,
        duration: started.elapsed(),
    }
}

async fn prefilter(
    run: &mut Run<'_>,
    cell: &Cell,
    spec: &ValidatorSpec,
    output: &Value,
) -> Result<(bool, String)> {
    validators::check(run, cell, spec, &text_of(output), 1).await
}

/// Vary the branch's instructions (§8.1 `mutation_mode`): `augment` prepends the hint, `approach`
/// appends it as a variation strategy, `rewrite` (the default) and `rewrite_free` have the cell's
/// model rewrite the rendered instructions (one extra call, recorded on the branch).
async fn mutate(
    run: &mut Run<'_>,
    cell: &mut Cell,
    original: &Cell,
    mode: Option<MutationMode>,
    hint: &str,
) -> Result<()> {
    let source = cell.instructions.clone().unwrap_or_default();
    match mode.unwrap_or(MutationMode::Rewrite) {
        MutationMode::Augment => cell.instructions = Some(format!("{hint}\n\n{source}")),
        MutationMode::Approach => {
            cell.instructions = Some(format!("{source}\n\n**Variation Strategy**: {hint}"));
        }
        mode @ (MutationMode::Rewrite | MutationMode::RewriteFree) => {
            let rendered = run
                .templates
                .render(&source, &run.template_ctx())
                .await
                .map_err(|e| e.into_cell_error(&cell.name, "instructions"))?;
            let freedom = if mode == MutationMode::RewriteFree {
                "You may restructure it freely."
            } else {
                "Keep every fact, name, constraint and output requirement of the original."
            };
            let ask = format!(
                "Rewrite the prompt below so that it asks for the same result but steers toward this variation: {hint}\n{freedom}\nReply with only the rewritten prompt.\n\n## Prompt\n{rendered}"
            );
            let request = ChatRequest::new(
                resolve_model(run, original).0,
                vec![
                    Message::system("You rewrite prompts for language models."),
                    Message::user(ask),
                ],
            )
            .with_expect(Expect::new(cell.name.clone(), Expected::Text));
            let reply = call_model(run, &cell.name, &request, None, None).await?;
            // The rewrite is final text: keep the template engine away from any braces in it.
            cell.instructions = Some(format!("{{% raw %}}{}{{% endraw %}}", reply.text.trim()));
        }
    }
    Ok(())
}

/// The evaluator's choice among `judged` (indices into `done`): `(position in done, reason, model)`.
async fn evaluate(
    run: &mut Run<'_>,
    cell: &Cell,
    cands: &Candidates,
    instructions: Option<&str>,
    done: &[Done<'_>],
    judged: &[usize],
) -> Result<(usize, String, String)> {
    let instructions = match instructions {
        Some(t) => run
            .templates
            .render(t, &judge_ctx(run, done, judged))
            .await
            .map_err(|e| e.into_cell_error(&cell.name, "candidates.evaluator_instructions"))?,
        None => "Pick the best attempt.".to_owned(),
    };
    let model = cands
        .evaluator_model
        .clone()
        .unwrap_or_else(|| resolve_model(run, cell).0);
    let attempts: Vec<(u32, Value)> = judged
        .iter()
        .map(|&i| {
            let d = &done[i];
            (
                d.index,
                d.result.as_ref().map(|r| r.output.clone()).unwrap_or_default(),
            )
        })
        .collect();
    let (index, reason) = evaluator::judge(run, &cell.name, &instructions, &model, &attempts).await?;
    let pos = judged
        .iter()
        .copied()
        .find(|&i| done[i].index == index)
        .ok_or_else(|| Error::Internal(format!("the winner {index} is not a judged candidate")))?;
    Ok((pos, reason, model))
}

/// `mode: aggregate`: merge the outputs of `judged` with `aggregator_instructions` (an LLM call with
/// `aggregator_model`, default the cell's), or concatenate them under `## Output n (Model: m)`.
async fn aggregate(
    run: &mut Run<'_>,
    cell: &Cell,
    cands: &Candidates,
    done: &[Done<'_>],
    judged: &[usize],
) -> Result<Value> {
    let parts: Vec<String> = judged
        .iter()
        .filter_map(|&i| {
            let d = &done[i];
            let text = d.result.as_ref().map(|r| text_of(&r.output)).ok()?;
            (!text.trim().is_empty())
                .then(|| format!("## Output {} (Model: {})\n{text}", d.index + 1, d.model))
        })
        .collect();
    let joined = parts.join("\n\n---\n\n");
    let Some(instructions) = &cands.aggregator_instructions else {
        return Ok(Value::String(joined));
    };
    let instructions = run
        .templates
        .render(instructions, &judge_ctx(run, done, judged))
        .await
        .map_err(|e| e.into_cell_error(&cell.name, "candidates.aggregator_instructions"))?;
    let model = cands
        .aggregator_model
        .clone()
        .unwrap_or_else(|| resolve_model(run, cell).0);
    let request = ChatRequest::new(model, vec![Message::user(format!("{instructions}\n\n{joined}"))])
        .with_expect(Expect::new(cell.name.clone(), Expected::Text));
    let reply = call_model(run, &cell.name, &request, None, None).await?;
    Ok(Value::String(reply.text))
}

/// One `candidate_complete` per branch (on the branch's own emitter, so it carries its index).
async fn complete_events(
    run: &Run<'_>,
    cell: &Cell,
    done: &[Done<'_>],
    winner: Option<usize>,
    reforge_step: Option<u32>,
) {
    for (i, d) in done.iter().enumerate() {
        let mut e = d.run.emit.event(EventKind::CandidateComplete, Some(&cell.name));
        e.duration_us = Some(micros(d.duration));
        e.model_requested = Some(d.model.clone());
        let (valid, reason) = match &d.verdict {
            Some(Ok((v, r))) => (Some(*v), Some(r.clone())),
            _ => (None, None),
        };
        e.metadata = json!({
            "is_winner": winner == Some(i),
            "model": d.model,
            "mutation": d.mutation,
            "valid": valid,
            "validation_reason": reason,
            "cost_micro_usd": d.run.totals().cost().micros(),
            "llm_calls": d.run.totals().llm_calls(),
            "reforge_step": reforge_step,
        });
        match &d.result {
            Ok(r) => e.content = r.output.clone(),
            Err(err) => {
                e.error =
                    Some(json!({"code": err.code().code, "message": err.to_string(), "hint": err.hint()}));
            }
        }
        run.emit.send(e).await;
    }
}

/// The template variables of the evaluator and aggregator prompts: the run's, plus the judged outputs
/// as `soundings` / `candidates` / `takes` (the corpus's aggregators count them).
fn judge_ctx(run: &Run<'_>, done: &[Done<'_>], judged: &[usize]) -> Value {
    let outputs: Vec<Value> = judged
        .iter()
        .filter_map(|&i| done[i].result.as_ref().ok().map(|r| r.output.clone()))
        .collect();
    let mut ctx = run.template_ctx();
    for key in ["soundings", "candidates", "takes"] {
        ctx[key] = json!(outputs);
    }
    ctx
}

fn indices(done: &[Done<'_>], positions: &[usize]) -> Vec<u32> {
    positions.iter().map(|&i| done[i].index).collect()
}
