//! Advanced keys: budgets, caching, triggers, narrator, RAG, images, audibles, decision points, row fan-out.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{DurationSpec, ModelSpec};

/// Token budget enforced before each model call.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TokenBudget {
    /// Total token cap (default 100000).
    pub max_total: Option<u64>,
    /// Tokens kept free for the reply (default 4000).
    pub reserve_for_output: Option<u64>,
    /// `sliding_window`, `prune_oldest`, `summarize` or `fail`.
    pub strategy: Option<String>,
    /// Warn at this fraction of the budget (default 0.8).
    pub warning_threshold: Option<f64>,
    /// Per-cell budgets.
    pub phase_overrides: Option<Value>,
    /// Summarizer settings for `summarize`.
    pub summarizer: Option<Value>,
}

/// Caching of tool results.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ToolCaching {
    /// On or off (default false).
    pub enabled: Option<bool>,
    /// `memory`, `redis` or `sqlite`.
    pub storage: Option<String>,
    /// Default time to live in seconds (default 3600).
    pub global_ttl: Option<u64>,
    /// Entries kept (default 1000).
    pub max_cache_size: Option<u64>,
    /// Per-tool rules.
    pub tools: Option<BTreeMap<String, ToolCacheRule>>,
}

/// Caching rule of one tool.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ToolCacheRule {
    /// On or off.
    pub enabled: Option<bool>,
    /// Time to live in seconds.
    pub ttl: Option<u64>,
    /// Cache key: `args_hash`, `query`, `sql_hash` or `custom`.
    pub key: Option<String>,
    /// Text returned with a cache hit.
    pub hit_message: Option<String>,
    /// Tools whose calls invalidate this cache.
    pub invalidate_on: Option<Vec<String>>,
}

/// A declarative schedule, exported to external schedulers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Trigger {
    /// Name of the trigger.
    pub name: Option<String>,
    /// `cron`, `sensor`, `webhook` or `manual`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Cron expression.
    pub schedule: Option<String>,
    /// Time zone of the schedule.
    pub timezone: Option<String>,
    /// What the trigger is for.
    pub description: Option<String>,
    /// Input passed to the run.
    pub inputs: Option<Value>,
    /// Inputs accepted by a manual or webhook trigger.
    pub inputs_schema: Option<Value>,
    /// Sensor check to poll.
    pub check: Option<String>,
    /// Arguments of the check.
    pub args: Option<Value>,
    /// Poll interval of a sensor.
    pub poll_interval: Option<DurationSpec>,
    /// Give up after this long.
    pub timeout: Option<DurationSpec>,
    /// Webhook authentication.
    pub auth: Option<Value>,
}

/// Narrator: `true`, or settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Narrator {
    /// On with defaults.
    Enabled(bool),
    /// Settings.
    Spec(NarratorSpec),
}

/// Narrator settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct NarratorSpec {
    /// On or off.
    pub enabled: Option<bool>,
    /// Minimum seconds between remarks.
    pub min_interval_seconds: Option<f64>,
    /// Events that prompt a remark (`triggers` is the deprecated spelling).
    pub on_events: Option<Vec<String>>,
    /// Model writing the remarks.
    pub model: Option<String>,
    /// Voice used.
    pub voice: Option<String>,
    /// Prompt of the narrator.
    pub instructions: Option<String>,
    /// Mode of the narrator.
    pub mode: Option<String>,
}

/// Retrieval over a directory of documents.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Rag {
    /// Directory of documents (relative to the cascade file).
    pub directory: Option<String>,
    /// Descend into subdirectories.
    pub recursive: Option<bool>,
    /// Glob patterns to include.
    pub include: Option<Vec<String>>,
    /// Glob patterns to exclude.
    pub exclude: Option<Vec<String>>,
    /// Chunk size in characters (default 1200).
    pub chunk_chars: Option<u32>,
    /// Overlap between chunks (default 200).
    pub chunk_overlap: Option<u32>,
    /// Embedding model.
    pub model: Option<String>,
}

/// Image generation settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ImageConfig {
    /// Width in pixels (default 1024).
    pub width: Option<u32>,
    /// Height in pixels (default 1024).
    pub height: Option<u32>,
    /// Images per call (default 1).
    pub n: Option<u32>,
}

/// User feedback between turns.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Audibles {
    /// On or off.
    pub enabled: Option<bool>,
    /// Interventions allowed (default 3).
    pub budget: Option<u32>,
    /// Allow "try again".
    pub allow_retry: Option<bool>,
    /// Wait this long for feedback (default 120).
    pub timeout_seconds: Option<u64>,
}

/// Decisions raised by the model for a human.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct DecisionPoints {
    /// On or off.
    pub enabled: Option<bool>,
    /// `output`, `error` or `both`.
    pub trigger: Option<String>,
    /// UI settings.
    pub ui: Option<Value>,
    /// Option id (or `_continue`, `_retry`, `_abort`, `_timeout`) → cell, `self`, `next` or a spec.
    pub routing: Option<Map<String, Value>>,
    /// Wait this long (default 3600).
    pub timeout_seconds: Option<u64>,
}

/// Run a cascade (or instructions) per row of a table.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ForEachRow {
    /// The temp table to iterate (such as `_load`).
    pub table: Option<String>,
    /// Cascade run per row (path relative to this file).
    pub cascade: Option<String>,
    /// Instructions run per row (instead of `cascade`).
    pub instructions: Option<String>,
    /// Model for `instructions`.
    pub model: Option<ModelSpec>,
    /// Per-row inputs (templates with `row`, `index`, `total`, `input`, `state`, `outputs`).
    pub inputs: Option<Map<String, Value>>,
    /// Rows run at once (default 5).
    pub max_parallel: Option<u32>,
    /// Table receiving the original columns plus `result_*`.
    pub result_table: Option<String>,
    /// `continue`, `fail_fast` or `collect_errors`.
    pub on_error: Option<String>,
}
