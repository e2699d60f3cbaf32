//! Cells: LLM cells, deterministic cells, row fan-out and screens.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{
    Audibles, Candidates, Context, DecisionPoints, DurationSpec, ForEachRow, ImageConfig, IntraContext, Rag,
    Rules, Wards,
};

/// One step of a cascade. Exactly one of `instructions` (LLM cell), `tool` (deterministic cell) or
/// `for_each_row` must be present, or only `htmx` (a screen).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Cell {
    /// Unique name of the cell; the target of handoffs and the key of `outputs.<name>`.
    pub name: String,

    // ---- LLM cell ------------------------------------------------------------------------------------
    /// The prompt (a Jinja template), sent as the user message. `@path` loads it from a file.
    #[serde(default)]
    pub instructions: Option<String>,
    /// Model for this cell: one id, or a fallback chain tried in order.
    #[serde(default)]
    pub model: Option<ModelSpec>,
    /// Tools offered to the model (E1 `tackle`, E3 `skills`): a list of names, or `manifest` to let a
    /// selector pick.
    #[serde(default)]
    pub traits: Option<Traits>,
    /// Use the provider's native function calling instead of tools described in the prompt.
    #[serde(default)]
    pub use_native_tools: Option<bool>,
    /// Turn and attempt limits, `loop_until` validation and retry prompts.
    #[serde(default)]
    pub rules: Option<Rules>,
    /// JSON Schema the final output must satisfy.
    #[serde(default)]
    pub output_schema: Option<Value>,
    /// Validators run before (`pre`), after (`post`) and between turns (`turn`).
    #[serde(default)]
    pub wards: Option<Wards>,
    /// What earlier material the cell sees (default: a clean slate).
    #[serde(default)]
    pub context: Option<Context>,
    /// Cells this one may route to. With several (or with descriptions) the model gets a `route_to` tool.
    #[serde(default)]
    pub handoffs: Option<Vec<Handoff>>,
    /// Best-of-N branches judged by an evaluator (E1 `soundings`, E3 `takes`).
    #[serde(default)]
    pub candidates: Option<Candidates>,
    /// Pull a value out of the output with a regular expression.
    #[serde(default)]
    pub output_extraction: Option<OutputExtraction>,
    /// Tag log rows of this cell with a rendered label.
    #[serde(default)]
    pub callouts: Option<Callouts>,
    /// Ask a human after the output is final (`true` = confirmation).
    #[serde(default)]
    pub human_input: Option<HumanInput>,
    /// Cascades run before this cell, synchronously.
    #[serde(default)]
    pub sub_cascades: Option<Vec<SubCascade>>,
    /// Cascades started in the background.
    #[serde(default)]
    pub async_cascades: Option<Vec<AsyncCascade>>,
    /// With `traits: manifest`: what the tool selector sees (`current` or `full`).
    #[serde(default)]
    pub manifest_context: Option<String>,
    /// With `traits: manifest`: how many tools the selector may offer (default 30).
    #[serde(default)]
    pub manifest_limit: Option<u32>,
    /// With `traits: manifest`: when the selection is refreshed (`once`, `per_turn`, `per_attempt`).
    #[serde(default)]
    pub manifest_refresh: Option<String>,
    /// Retrieval over a directory of documents; adds `rag_search`, `rag_read_chunk`, `rag_list_sources`.
    #[serde(default)]
    pub rag: Option<Rag>,
    /// Browser automation session settings.
    #[serde(default)]
    pub browser: Option<Value>,
    /// Image generation settings for image models.
    #[serde(default)]
    pub image_config: Option<ImageConfig>,
    /// User feedback injected between turns.
    #[serde(default)]
    pub audibles: Option<Audibles>,
    /// Let the model raise a decision for a human with `<decision>` blocks.
    #[serde(default)]
    pub decision_points: Option<DecisionPoints>,
    /// Per-cell narrator settings.
    #[serde(default)]
    pub narrator: Option<Value>,
    /// Per-turn context compression.
    #[serde(default)]
    pub intra_context: Option<IntraContext>,
    /// UI layout hint (`research_cockpit`).
    #[serde(default)]
    pub ui_mode: Option<String>,
    /// Add few-shot examples from past runs.
    #[serde(default)]
    pub use_training: Option<bool>,
    /// How many training examples (default 5).
    #[serde(default)]
    pub training_limit: Option<u32>,
    /// How training examples are chosen (default `recent`).
    #[serde(default)]
    pub training_strategy: Option<String>,
    /// Minimum confidence of training examples (default 0.8).
    #[serde(default)]
    pub training_min_confidence: Option<f64>,
    /// Only verified training examples.
    #[serde(default)]
    pub training_verified_only: Option<bool>,
    /// Format of training examples (default `xml`).
    #[serde(default)]
    pub training_format: Option<String>,

    // ---- Deterministic cell --------------------------------------------------------------------------
    /// The tool to run: a registered name, `python:module.func`, `sql:path.sql` or `shell:path.sh`.
    #[serde(default)]
    pub tool: Option<String>,
    /// Tool inputs; string values are Jinja templates.
    #[serde(default)]
    pub inputs: Option<Map<String, Value>>,
    /// Route key (the result's `_route`, else `status`, else `success`) mapped to the next cell.
    #[serde(default)]
    pub routing: Option<BTreeMap<String, String>>,
    /// What to do when the tool fails: a cell name, `auto_fix`, or an inline LLM cell.
    #[serde(default)]
    pub on_error: Option<OnError>,
    /// Retries of a failing tool.
    #[serde(default)]
    pub retry: Option<Retry>,
    /// Time limit for the tool (`"30s"`, `"5m"` or seconds).
    #[serde(default)]
    pub timeout: Option<DurationSpec>,
    /// Keep going after this cell fails (RVBBIT's old behaviour for LLM errors).
    #[serde(default)]
    pub continue_on_error: Option<bool>,
    /// Limits of the sandbox the cell's processes run in (code and shell tools), each up to its
    /// `sandbox.max_*` ceiling in the configuration (docs/sandbox.md).
    #[serde(default)]
    pub sandbox: Option<CellSandbox>,

    // ---- Row fan-out ---------------------------------------------------------------------------------
    /// Run a cascade (or instructions) once per row of a table.
    #[serde(default)]
    pub for_each_row: Option<ForEachRow>,

    // ---- Screen --------------------------------------------------------------------------------------
    /// An HTML screen (a Jinja template) shown to a human (alias `hitl`). Alone it makes a screen cell;
    /// with another primary key it is a progress display.
    #[serde(default)]
    pub htmx: Option<String>,
    /// Title of the screen.
    #[serde(default)]
    pub hitl_title: Option<String>,
    /// Description of the screen.
    #[serde(default)]
    pub hitl_description: Option<String>,
    /// Wait for the human's submission (default: true for screen cells).
    #[serde(default)]
    pub await_input: Option<bool>,
}

/// A cell's own sandbox limits; an absent one keeps the configured (or batch) value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CellSandbox {
    /// Address-space limit of each process, in MiB.
    #[serde(default)]
    pub memory_mib: Option<u64>,
    /// Most processes and threads.
    #[serde(default)]
    pub processes: Option<u64>,
    /// CPUs the sandbox is pinned to.
    #[serde(default)]
    pub cpus: Option<u32>,
    /// Wall-clock seconds before the sandbox is killed.
    #[serde(default)]
    pub wall_seconds: Option<u64>,
    /// KB kept of stdout and of stderr.
    #[serde(default)]
    pub output_kb: Option<u64>,
}

/// What kind of cell a [`Cell`] is, from its primary key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CellKind {
    /// `instructions`.
    Llm,
    /// `tool`.
    Deterministic,
    /// `for_each_row`.
    ForEachRow,
    /// Only `htmx`.
    Screen,
}

impl Cell {
    /// The primary keys present, in a fixed order.
    pub fn primary_keys(&self) -> Vec<&'static str> {
        let mut keys = Vec::new();
        if self.instructions.is_some() {
            keys.push("instructions");
        }
        if self.tool.is_some() {
            keys.push("tool");
        }
        if self.for_each_row.is_some() {
            keys.push("for_each_row");
        }
        keys
    }

    /// The cell's kind, or `None` when it has no primary key or more than one.
    pub fn kind(&self) -> Option<CellKind> {
        match self.primary_keys().as_slice() {
            ["instructions"] => Some(CellKind::Llm),
            ["tool"] => Some(CellKind::Deterministic),
            ["for_each_row"] => Some(CellKind::ForEachRow),
            [] if self.htmx.is_some() => Some(CellKind::Screen),
            _ => None,
        }
    }

    /// Tool names offered to the model (empty for `manifest`).
    pub fn trait_names(&self) -> Vec<&str> {
        match &self.traits {
            Some(Traits::List(names)) => names.iter().map(String::as_str).collect(),
            Some(Traits::One(name)) if name != "manifest" => vec![name.as_str()],
            _ => Vec::new(),
        }
    }

    /// Handoff targets, in order.
    pub fn handoff_targets(&self) -> Vec<&str> {
        self.handoffs.iter().flatten().map(Handoff::target).collect()
    }
}

/// A model id, or a fallback chain of model ids tried in order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ModelSpec {
    /// One model id, such as `anthropic/claude-sonnet-4` or `ollama/llama3::high`.
    One(String),
    /// A fallback chain.
    Chain(Vec<String>),
}

/// Tools offered to an LLM cell.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Traits {
    /// Tool names.
    List(Vec<String>),
    /// `manifest` (a selector picks tools), or a single tool name.
    One(String),
}

/// A handoff target: a cell name, or a name with a description shown to the model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Handoff {
    /// A cell name.
    Name(String),
    /// A cell name with a description.
    Described {
        /// The cell to route to.
        target: String,
        /// When to choose it.
        #[serde(default)]
        description: Option<String>,
    },
}

impl Handoff {
    /// The target cell name.
    pub fn target(&self) -> &str {
        match self {
            Handoff::Name(n) => n,
            Handoff::Described { target, .. } => target,
        }
    }
}

/// Regex extraction of a value from the output.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutputExtraction {
    /// Regular expression (dot-all, case-insensitive); group 1 or the whole match is kept.
    pub pattern: String,
    /// State key the value is stored under.
    pub store_as: String,
    /// Fail the cell when nothing matches.
    #[serde(default)]
    pub required: Option<bool>,
    /// How to read the match: `text`, `json` or `code`.
    #[serde(default)]
    pub format: Option<ExtractionFormat>,
}

/// How an extracted value is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExtractionFormat {
    /// As text.
    Text,
    /// Parsed as JSON.
    Json,
    /// As code (fences stripped).
    Code,
}

/// Callout labels for log rows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Callouts {
    /// A label for the output.
    Label(String),
    /// Labels for the output and messages.
    Spec {
        /// Label for the output.
        #[serde(default)]
        output: Option<String>,
        /// Label for the messages.
        #[serde(default)]
        messages: Option<String>,
        /// Which messages: `all`, `assistant_only`, `last_turn`.
        #[serde(default)]
        messages_filter: Option<String>,
    },
}

/// Human input after the cell: `true` for a confirmation, or a full specification.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum HumanInput {
    /// `true`: a confirmation.
    Enabled(bool),
    /// A full specification.
    Spec(Box<HumanInputSpec>),
}

/// A human input request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct HumanInputSpec {
    /// `confirmation`, `choice`, `multi_choice`, `rating`, `text`, `form`, `review`, `auto` or `htmx`.
    #[serde(rename = "type")]
    pub kind: Option<HumanInputType>,
    /// The question shown.
    pub prompt: Option<String>,
    /// Choices for `choice`/`multi_choice`.
    pub options: Option<Vec<Value>>,
    /// Scale of a rating (default 5).
    pub max_rating: Option<u32>,
    /// Labels of rating values.
    pub rating_labels: Option<Value>,
    /// Fields of a form.
    pub fields: Option<Value>,
    /// A hint shown under the question.
    pub hint: Option<String>,
    /// Prompt that generates the UI (`auto`).
    pub generator_prompt: Option<String>,
    /// A template boolean; ask only when it renders true.
    pub condition: Option<String>,
    /// Give up after this many seconds.
    pub timeout_seconds: Option<u64>,
    /// On timeout: `abort`, `continue`, `default` or `escalate`.
    pub on_timeout: Option<String>,
    /// The answer used with `on_timeout: default`.
    pub default_value: Option<Value>,
    /// Who to escalate to.
    pub escalate_to: Option<String>,
    /// Ask for the reasoning behind the answer.
    pub capture_reasoning: Option<bool>,
    /// Ask for a confidence level.
    pub capture_confidence: Option<bool>,
}

/// Kinds of human input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HumanInputType {
    /// Yes or no.
    Confirmation,
    /// One of several options.
    Choice,
    /// Several options.
    MultiChoice,
    /// A rating.
    Rating,
    /// Free text.
    Text,
    /// A form.
    Form,
    /// A review of the output.
    Review,
    /// Generated UI.
    Auto,
    /// An HTML screen.
    Htmx,
}

/// A cascade run before the cell.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SubCascade {
    /// Path of the cascade, relative to this file.
    #[serde(rename = "ref")]
    pub reference: String,
    /// Child input keys mapped to parent state/input keys or literals.
    #[serde(default)]
    pub input_map: Option<Map<String, Value>>,
    /// Pass the parent state as input (default true).
    #[serde(default)]
    pub context_in: Option<bool>,
    /// Merge the child's state, lineage and errors back (default true).
    #[serde(default)]
    pub context_out: Option<bool>,
}

/// A cascade started in the background.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AsyncCascade {
    /// Path of the cascade, relative to this file.
    #[serde(rename = "ref")]
    pub reference: String,
    /// Child input keys mapped to parent state/input keys or literals.
    #[serde(default)]
    pub input_map: Option<Map<String, Value>>,
    /// Pass the parent state as input (default true).
    #[serde(default)]
    pub context_in: Option<bool>,
    /// When to start: `on_start` or `on_end`.
    #[serde(default)]
    pub trigger: Option<AsyncTrigger>,
}

/// When an async cascade starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AsyncTrigger {
    /// Before the cell runs.
    OnStart,
    /// After the cell finishes.
    OnEnd,
}

/// What a deterministic cell does when its tool fails.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum OnError {
    /// A cell name to route to, or `auto_fix`.
    Target(String),
    /// `auto_fix` settings or an inline LLM cell.
    Spec(Box<OnErrorSpec>),
}

/// An inline fallback: `auto_fix` settings, or the keys of an LLM cell run as `<cell>_fallback`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct OnErrorSpec {
    /// Let an LLM rewrite the failing code and re-run the tool.
    pub auto_fix: Option<AutoFix>,
    /// Instructions of the inline fallback LLM cell.
    pub instructions: Option<String>,
    /// Model of the fallback cell.
    pub model: Option<ModelSpec>,
    /// Tools of the fallback cell.
    pub traits: Option<Traits>,
    /// Rules of the fallback cell.
    pub rules: Option<Rules>,
    /// Output schema of the fallback cell.
    pub output_schema: Option<Value>,
    /// Context of the fallback cell.
    pub context: Option<Context>,
    /// Native tool calling for the fallback cell.
    pub use_native_tools: Option<bool>,
}

/// `auto_fix` settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum AutoFix {
    /// On with defaults.
    Enabled(bool),
    /// Settings.
    Spec {
        /// Rewrite attempts (default 2).
        #[serde(default)]
        max_attempts: Option<u32>,
        /// Model that rewrites the code.
        #[serde(default)]
        model: Option<String>,
        /// Prompt template (`{{ tool_type }}`, `{{ error }}`, `{{ original_code }}`, `{{ inputs }}`).
        #[serde(default)]
        prompt: Option<String>,
    },
}

/// Retries of a failing tool.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Retry {
    /// Attempts in total (default 3).
    #[schemars(range(min = 1))]
    pub max_attempts: Option<u32>,
    /// `none`, `linear` (default) or `exponential`.
    pub backoff: Option<Backoff>,
    /// Base delay in seconds (default 1.0).
    pub backoff_base_seconds: Option<f64>,
}

/// Backoff between tool retries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Backoff {
    /// No delay.
    None,
    /// base × attempt.
    Linear,
    /// base × 2^(attempt−1).
    Exponential,
}
