//! What this build of rvbbit refuses to run (RVB-E003), in one place: the engine refuses these features
//! when it reaches them, and the validator reports them as errors at their keys beforehand, so
//! `validate --strict` passing means a run starts (issue 19).

use crate::model::{Candidates, CandidatesMode, Cascade, Cell, OnError, Traits};

/// A feature a run refuses: the key it is written at and what it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The path of the key (`cells[2].rag`, `candidates.pareto_frontier`).
    pub path: String,
    /// The cell it is in, if any.
    pub cell: Option<String>,
    /// What is not built, as the run's RVB-E003 names it.
    pub feature: String,
}

/// Options of candidates (§8.1, cell or cascade level) this build refuses, with their key.
pub fn candidates_refusal(c: &Candidates) -> Option<(&'static str, &'static str)> {
    if c.reforge.is_some() && c.mode == Some(CandidatesMode::Aggregate) {
        return Some(("reforge", "candidates.reforge with mode: aggregate"));
    }
    if c.cost_aware_evaluation.is_some() {
        return Some(("cost_aware_evaluation", "candidates.cost_aware_evaluation"));
    }
    if c.pareto_frontier.is_some() {
        return Some(("pareto_frontier", "candidates.pareto_frontier"));
    }
    if c.evaluator.as_deref().is_some_and(|e| e != "llm") || c.human_eval.is_some() {
        return Some(("evaluator", "a human or hybrid candidates evaluator"));
    }
    if c.llm_prefilter.is_some() || c.llm_prefilter_model.is_some() || c.llm_prefilter_instructions.is_some()
    {
        return Some(("llm_prefilter", "candidates.llm_prefilter"));
    }
    if c.downstream_model.is_some() {
        return Some(("downstream_model", "candidates.downstream_model"));
    }
    None
}

/// Features of an LLM cell this build does not run, with their key.
pub fn llm_refusal(cell: &Cell) -> Option<(&'static str, &'static str)> {
    if matches!(&cell.traits, Some(Traits::One(t)) if t == "manifest") {
        return Some(("traits", "traits: manifest"));
    }
    if cell.rag.is_some() {
        return Some(("rag", "rag"));
    }
    if cell.image_config.is_some() {
        return Some(("image_config", "image_config"));
    }
    None
}

/// Whether `on_error` asks for `auto_fix` (not built), rather than a route or a fallback cell.
pub fn on_error_refused(on_error: Option<&OnError>) -> bool {
    match on_error {
        Some(OnError::Target(t)) => t == "auto_fix",
        Some(OnError::Spec(spec)) => spec.instructions.is_none(),
        None => false,
    }
}

/// Every feature of `cascade` a run would refuse, in file order.
pub fn refusals(cascade: &Cascade) -> Vec<Refusal> {
    let mut out = Vec::new();
    if let Some(c) = &cascade.candidates {
        let found = candidates_refusal(c)
            .or_else(|| {
                c.reforge
                    .is_some()
                    .then_some(("reforge", "candidates.reforge on cascade-level candidates"))
            })
            .or_else(|| {
                (c.mode == Some(CandidatesMode::Aggregate))
                    .then_some(("mode", "candidates mode: aggregate on cascade-level candidates"))
            });
        if let Some((key, feature)) = found {
            out.push(Refusal {
                path: format!("candidates.{key}"),
                cell: None,
                feature: feature.to_owned(),
            });
        }
    }
    for (i, cell) in cascade.cells.iter().enumerate() {
        let mut push = |key: &str, feature: &str| {
            out.push(Refusal {
                path: format!("cells[{i}].{key}"),
                cell: Some(cell.name.clone()),
                feature: feature.to_owned(),
            });
        };
        if let Some((key, feature)) = cell.candidates.as_ref().and_then(candidates_refusal) {
            push(&format!("candidates.{key}"), feature);
        }
        if cell.instructions.is_some()
            && let Some((key, feature)) = llm_refusal(cell)
        {
            push(key, feature);
        }
        if let Some(f) = &cell.for_each_row
            && f.cascade.is_none()
        {
            push(
                "for_each_row",
                "for_each_row with `instructions` (name a `cascade` to run per row)",
            );
        }
        if on_error_refused(cell.on_error.as_ref()) {
            push("on_error", "on_error: auto_fix");
        }
    }
    out
}
