//! `context`: what earlier material a cell sees, and automatic context selection.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What earlier material a cell sees. Without it, the cell starts from a clean slate.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Context {
    /// Sources injected in order: cell names, the keywords `all`, `first`, `previous`/`prev`, or source
    /// objects.
    pub from: Option<Vec<ContextFrom>>,
    /// Cells removed from `all` and from direct names.
    pub exclude: Option<Vec<String>>,
    /// Default parts to include from each source (`output`, `messages`, `images`, `state`).
    pub include: Option<Vec<String>>,
    /// Prepend the cascade input (default true).
    pub include_input: Option<bool>,
    /// `explicit` (default) or `auto`.
    pub mode: Option<ContextMode>,
    /// Automatic mode: what is always included.
    pub anchors: Option<Anchors>,
    /// Automatic mode: how the rest is selected.
    pub selection: Option<Selection>,
}

/// Explicit or automatic context.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ContextMode {
    /// Only the listed sources.
    Explicit,
    /// Selected automatically.
    Auto,
}

/// One `context.from` entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ContextFrom {
    /// A cell name or a keyword (`all`, `first`, `previous`, `prev`).
    Name(String),
    /// A source object.
    Source(ContextSource),
}

impl ContextFrom {
    /// The named cell or keyword.
    pub fn name(&self) -> &str {
        match self {
            ContextFrom::Name(n) => n,
            ContextFrom::Source(s) => &s.cell,
        }
    }
}

/// A context source with options.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContextSource {
    /// The cell (E1 spelling: `phase`) or keyword.
    pub cell: String,
    /// Parts to include: `output`, `messages`, `images`, `state`.
    #[serde(default)]
    pub include: Option<Vec<String>>,
    /// Which images: `all`, `last`, `last_n`.
    #[serde(default)]
    pub images_filter: Option<String>,
    /// How many images with `last_n`.
    #[serde(default)]
    pub images_count: Option<u32>,
    /// Which messages: `all`, `assistant_only`, `last_turn`.
    #[serde(default)]
    pub messages_filter: Option<String>,
    /// Inject as `user` or `system` messages.
    #[serde(default)]
    pub as_role: Option<String>,
    /// A template boolean; include only when it renders true.
    #[serde(default)]
    pub condition: Option<String>,
}

/// Defaults for automatic context, at the cascade level.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AutoContext {
    /// Within a cell, between turns (E3 spelling: `intra_cell`).
    pub intra_phase: Option<IntraContext>,
    /// Between cells (E3 spelling: `inter_cell`).
    pub inter_phase: Option<InterContext>,
}

/// Per-turn context compression.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct IntraContext {
    /// On or off.
    pub enabled: Option<bool>,
    /// Turns kept whole (default 5).
    pub window: Option<u32>,
    /// Mask tool observations older than this many turns (default 3).
    pub mask_observations_after: Option<u32>,
    /// Compress repeated loops (default true).
    pub compress_loops: Option<bool>,
    /// Loop iterations kept (default 3).
    pub loop_history_limit: Option<u32>,
    /// Keep reasoning text.
    pub preserve_reasoning: Option<bool>,
    /// Keep error messages.
    pub preserve_errors: Option<bool>,
    /// Do not mask observations shorter than this (default 200).
    pub min_masked_size: Option<u32>,
}

/// Automatic context between cells.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct InterContext {
    /// On or off.
    pub enabled: Option<bool>,
    /// What is always included.
    pub anchors: Option<Anchors>,
    /// How the rest is selected.
    pub selection: Option<Selection>,
}

/// What automatic context always includes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Anchors {
    /// Recent turns kept (default 3).
    pub window: Option<u32>,
    /// Cells always included (E3 spelling: `from_cells`).
    pub from_phases: Option<Vec<String>>,
    /// Parts included: `output`, `callouts`, `input`.
    pub include: Option<Vec<String>>,
}

/// How automatic context selects material.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Selection {
    /// `heuristic`, `semantic`, `llm` or `hybrid` (default).
    pub strategy: Option<String>,
    /// Token cap (default 30000).
    pub max_tokens: Option<u32>,
    /// Message cap (default 50).
    pub max_messages: Option<u32>,
    /// Weight of recency (default 0.3).
    pub recency_weight: Option<f64>,
    /// Weight of keyword overlap (default 0.4).
    pub keyword_weight: Option<f64>,
    /// Weight of callouts (default 0.3).
    pub callout_weight: Option<f64>,
    /// Minimum similarity for semantic selection (default 0.5).
    pub similarity_threshold: Option<f64>,
    /// Model for `llm` selection.
    pub model: Option<String>,
    /// Extra settings.
    pub options: Option<Value>,
}
