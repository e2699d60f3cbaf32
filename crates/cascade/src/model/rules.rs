//! `rules`, `wards` and validator specifications.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Turn and attempt limits and validation of an LLM cell.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Rules {
    /// Model calls per attempt (default 1). A fixed count, as in RVBBIT, unless `stop_when_no_tool_calls`.
    #[schemars(range(min = 1))]
    pub max_turns: Option<u32>,
    /// Attempts used by `loop_until`, `output_schema` and retry wards (default 1).
    #[schemars(range(min = 1))]
    pub max_attempts: Option<u32>,
    /// Validator checked after each turn and after the turn loop.
    pub loop_until: Option<ValidatorSpec>,
    /// Text of the "validation requirement" block added to the prompt.
    pub loop_until_prompt: Option<String>,
    /// Do not tell the model about the `loop_until` validator.
    pub loop_until_silent: Option<bool>,
    /// Prompt for attempts after the first (`validation_error`, `schema_error`, `attempt`, `max_attempts`).
    pub retry_instructions: Option<String>,
    /// Prompt for turns after the first (`turn`, `max_turns`).
    pub turn_prompt: Option<String>,
    /// End the turn loop early when the model makes no tool call (rvbbit extension).
    pub stop_when_no_tool_calls: Option<bool>,
    /// State the cell's `output_schema` in its prompt (an "Output Format Requirement" section with the
    /// schema), as LARS does (default true; false leaves the prompt as written).
    pub schema_in_prompt: Option<bool>,
}

/// A validator: a name (inline validator, tool or cascade) or inline code.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ValidatorSpec {
    /// The name of a cascade-scoped validator, a tool or a validator cascade.
    Name(String),
    /// Inline code in one language.
    Inline(InlineValidatorSpec),
}

/// An inline validator: exactly one of the language keys. The code sees `content` and `original_input` and
/// produces `{"valid": bool, "reason": string}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct InlineValidatorSpec {
    /// Python code that sets `result`.
    pub python: Option<String>,
    /// JavaScript code.
    pub javascript: Option<String>,
    /// A SQL query returning one row with `valid` and `reason`.
    pub sql: Option<String>,
    /// Clojure code.
    pub clojure: Option<String>,
    /// A bash script printing the JSON result (`CONTENT`, `ORIGINAL_INPUT` in its environment).
    pub bash: Option<String>,
    /// A registered tool called with `content`.
    pub tool: Option<String>,
    /// Extra inputs for `tool`.
    pub inputs: Option<Map<String, Value>>,
}

impl InlineValidatorSpec {
    /// The language keys present.
    pub fn languages(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        for (key, present) in [
            ("python", self.python.is_some()),
            ("javascript", self.javascript.is_some()),
            ("sql", self.sql.is_some()),
            ("clojure", self.clojure.is_some()),
            ("bash", self.bash.is_some()),
            ("tool", self.tool.is_some()),
        ] {
            if present {
                out.push(key);
            }
        }
        out
    }
}

/// Validators run around an LLM cell.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Wards {
    /// Run on the cascade input before the cell.
    pub pre: Option<Vec<Ward>>,
    /// Run on the output after the cell.
    pub post: Option<Vec<Ward>>,
    /// Run after each turn.
    pub turn: Option<Vec<Ward>>,
}

/// One ward.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Ward {
    /// The validator.
    pub validator: ValidatorSpec,
    /// `blocking` (default), `retry` or `advisory`.
    #[serde(default)]
    pub mode: Option<WardMode>,
    /// Attempts for `retry` mode (E1 spelling: `max_retries`).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub max_attempts: Option<u32>,
}

/// What a failing ward does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WardMode {
    /// Stop the cascade.
    Blocking,
    /// Try the cell again (post wards).
    Retry,
    /// Log a warning and continue.
    Advisory,
}
