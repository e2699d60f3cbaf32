//! The top level of a cascade file.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{AutoContext, Candidates, Cell, Narrator, SqlFunction, TokenBudget, ToolCaching, Trigger};

/// A cascade: a named list of cells run from the first one, with routing between them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Cascade {
    /// Identifier of the cascade, used in logs, as the tool name when the cascade is used as a tool, and as
    /// the SQL function name fallback.
    pub cascade_id: String,
    /// The steps of the cascade (E1 spelling: `phases`). Execution starts at the first cell.
    pub cells: Vec<Cell>,
    /// Shown to the LLM when the cascade is offered as a tool.
    #[serde(default)]
    pub description: Option<String>,
    /// Input names mapped to descriptions. Also the parameter list when the cascade is used as a tool.
    #[serde(default)]
    pub inputs_schema: Option<Map<String, Value>>,
    /// Default model for every LLM cell of this cascade (a cell's own `model` wins).
    #[serde(default)]
    pub model: Option<String>,
    /// Run the whole cascade several times and keep the best result (E1 `soundings`, E3 `takes`).
    #[serde(default)]
    pub candidates: Option<Candidates>,
    /// Cascade-scoped LLM validators, usable by name in `loop_until`, `wards` and `candidates.validator`.
    #[serde(default)]
    pub validators: Option<BTreeMap<String, InlineValidator>>,
    /// Named conversational memory bank; exposes a search tool of that name.
    #[serde(default)]
    pub memory: Option<String>,
    /// Token budget enforced before each model call.
    #[serde(default)]
    pub token_budget: Option<TokenBudget>,
    /// Caching of tool results.
    #[serde(default)]
    pub tool_caching: Option<ToolCaching>,
    /// Named per-cascade research database; adds `research_query`/`research_execute` tools.
    #[serde(default)]
    pub research_db: Option<String>,
    /// Declarative schedules exported to external schedulers (never self-executing).
    #[serde(default)]
    pub triggers: Option<Vec<Trigger>>,
    /// Background spoken commentary (ignored unless text-to-speech is configured).
    #[serde(default)]
    pub narrator: Option<Narrator>,
    /// Defaults for automatic context selection.
    #[serde(default)]
    pub auto_context: Option<AutoContext>,
    /// Cap on cells run in parallel when parallel mode applies (default 5).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub max_parallel: Option<u32>,
    /// Force parallel execution of independent cells on (`true`) or off (`false`). Default: sequential.
    #[serde(default)]
    pub parallel: Option<bool>,
    /// Expose the cascade as a SQL function (see the SQL interface spec §12.1).
    #[serde(default)]
    pub sql_function: Option<SqlFunction>,
    /// Opt out of analytics.
    #[serde(default)]
    pub internal: Option<bool>,
    /// Visible to the tool selector (`traits: manifest`).
    #[serde(default)]
    pub manifest: Option<bool>,
    /// Shown in the UI picker.
    #[serde(default)]
    pub explorer: Option<bool>,
    /// Free-form labels.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// Layout saved by the visual editor; ignored by the engine.
    #[serde(default, rename = "_playground")]
    pub playground: Option<Value>,
}

/// A cascade-scoped LLM validator (`validators.<name>`): a one-cell cascade whose reply is
/// `{"valid": bool, "reason": string}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InlineValidator {
    /// The judge prompt; sees `input.content`, `input.original_input`, `input.has_images`, `input.image_count`.
    pub instructions: String,
    /// Model for the judge (default: a cheap model).
    #[serde(default)]
    pub model: Option<String>,
    /// Turns for the judge (default 1).
    #[serde(default)]
    pub max_turns: Option<u32>,
}

impl Cascade {
    /// The cell with this name.
    pub fn cell(&self, name: &str) -> Option<&Cell> {
        self.cells.iter().find(|c| c.name == name)
    }

    /// Names of all cells, in order.
    pub fn cell_names(&self) -> impl Iterator<Item = &str> {
        self.cells.iter().map(|c| c.name.as_str())
    }
}
