//! `candidates` (E1 `soundings`, E3 `takes`): best-of-N branches.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{IntOrTemplate, ValidatorSpec, Ward};

/// Run N branches and keep the best (or merge them).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Candidates {
    /// Number of branches, or a template rendering to one (default 1; ≤1 disables).
    pub factor: Option<IntOrTemplate>,
    /// Branches run at once (default 3).
    pub max_parallel: Option<u32>,
    /// The judge prompt (required unless `mode: aggregate` or a human evaluator).
    pub evaluator_instructions: Option<String>,
    /// `evaluate` (pick one, default) or `aggregate` (combine all).
    pub mode: Option<CandidatesMode>,
    /// Prompt that merges outputs in `aggregate` mode.
    pub aggregator_instructions: Option<String>,
    /// Model that merges outputs.
    pub aggregator_model: Option<String>,
    /// Vary the prompt of branches 2..N (default true).
    pub mutate: Option<bool>,
    /// `rewrite` (default), `augment`, `approach` (or `rewrite_free`).
    pub mutation_mode: Option<MutationMode>,
    /// Mutation hints cycled over branches 2..N.
    pub mutations: Option<Vec<String>>,
    /// Pre-filter validator; failing branches are not judged (unless all fail).
    pub validator: Option<ValidatorSpec>,
    /// Models for the branches: a list (assigned by `model_strategy`) or a map model → settings.
    pub models: Option<CandidateModels>,
    /// `round_robin` (default) or `random`.
    pub model_strategy: Option<String>,
    /// Model of the judge.
    pub evaluator_model: Option<String>,
    /// Iterative refinement of the winner.
    pub reforge: Option<Reforge>,
    /// Weigh cost against quality when judging.
    pub cost_aware_evaluation: Option<Value>,
    /// Keep the Pareto frontier of cost and quality.
    pub pareto_frontier: Option<Value>,
    /// Who judges: `llm` (default), `human` or `hybrid`.
    pub evaluator: Option<String>,
    /// Settings for a human judge.
    pub human_eval: Option<Value>,
    /// Let a cheap LLM discard weak branches before judging.
    pub llm_prefilter: Option<Value>,
    /// Model of the LLM pre-filter.
    pub llm_prefilter_model: Option<String>,
    /// Instructions of the LLM pre-filter.
    pub llm_prefilter_instructions: Option<String>,
    /// Model used for cells after the winner is chosen.
    pub downstream_model: Option<String>,
}

/// How candidates are reduced to one output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CandidatesMode {
    /// A judge picks one.
    Evaluate,
    /// All outputs are merged.
    Aggregate,
}

/// How branch prompts are varied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MutationMode {
    /// An LLM rewrites the prompt.
    Rewrite,
    /// Like `rewrite`, without constraints.
    RewriteFree,
    /// A hint is prepended.
    Augment,
    /// A strategy is appended.
    Approach,
}

/// Models for branches.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum CandidateModels {
    /// Model ids, assigned in turn.
    List(Vec<String>),
    /// Model id → settings; the branch count is the sum of factors.
    Map(BTreeMap<String, CandidateModel>),
}

/// Settings of one model in a multi-model `candidates`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CandidateModel {
    /// Branches for this model (default 1).
    pub factor: Option<u32>,
    /// Sampling temperature.
    pub temperature: Option<f64>,
    /// Output token cap.
    pub max_tokens: Option<u32>,
}

/// Iterative refinement of the winning branch.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Reforge {
    /// Refinement rounds (default 1).
    pub steps: Option<u32>,
    /// Prompt that asks for an improvement (required).
    pub honing_prompt: Option<String>,
    /// Branches per round (default 2).
    pub factor_per_step: Option<u32>,
    /// Vary prompts within a round (default false).
    pub mutate: Option<bool>,
    /// Judge prompt for rounds.
    pub evaluator_override: Option<String>,
    /// Stop early when this ward passes.
    pub threshold: Option<Ward>,
    /// Model for refinement.
    pub model: Option<String>,
}
