//! Declarative tool definitions (`*.tool.json` / `*.tool.yaml` files with a `tool_id`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::DurationSpec;

/// A tool defined in a file rather than in code.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolDefinition {
    /// Name of the tool, as used in `traits`.
    pub tool_id: String,
    /// What the tool does (shown to the model).
    #[serde(default)]
    pub description: Option<String>,
    /// Parameter names mapped to descriptions.
    #[serde(default)]
    pub inputs_schema: Option<Map<String, Value>>,
    /// How the tool runs.
    #[serde(rename = "type")]
    pub kind: ToolType,
    /// Shell: the command (a Jinja template over the inputs).
    #[serde(default)]
    pub command: Option<String>,
    /// HTTP: the URL (a template).
    #[serde(default)]
    pub url: Option<String>,
    /// HTTP: the method (default GET).
    #[serde(default)]
    pub method: Option<String>,
    /// HTTP: headers (templates).
    #[serde(default)]
    pub headers: Option<Map<String, Value>>,
    /// HTTP: request body (a template).
    #[serde(default)]
    pub body: Option<Value>,
    /// HTTP: a jq filter applied to the response.
    #[serde(default)]
    pub response_jq: Option<String>,
    /// Python: `module.function` to call.
    #[serde(default)]
    pub function: Option<String>,
    /// Gradio: the Space id.
    #[serde(default)]
    pub space: Option<String>,
    /// Gradio: the endpoint name.
    #[serde(default)]
    pub api_name: Option<String>,
    /// Composite: the steps, run in order.
    #[serde(default)]
    pub steps: Option<Vec<CompositeStep>>,
    /// Time limit (seconds or `"30s"`).
    #[serde(default)]
    pub timeout: Option<DurationSpec>,
    /// Run in a sandbox.
    #[serde(default)]
    pub sandbox: Option<bool>,
    /// Post-processing of the output (`lines`, `json`).
    #[serde(default)]
    pub output_transform: Option<String>,
    /// Free-form labels.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
}

/// How a declarative tool runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ToolType {
    /// A shell command.
    Shell,
    /// An HTTP request.
    Http,
    /// A Python function.
    Python,
    /// A Gradio Space endpoint.
    Gradio,
    /// Other tools in sequence.
    Composite,
}

/// One step of a composite tool.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CompositeStep {
    /// The tool to call.
    pub tool: String,
    /// Its arguments (templates over `input` and `steps`).
    #[serde(default)]
    pub args: Option<Map<String, Value>>,
    /// A template boolean; skip the step when false.
    #[serde(default)]
    pub condition: Option<String>,
}
