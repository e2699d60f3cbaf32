//! The human tools: `ask_human` (the model of an LLM cell asks a question), `request_decision` (a
//! choice among options) and `ask_human_custom` (a form of declared fields).
//!
//! The engine answers these calls itself (`cells/hitl.rs`, `cells/human_tools.rs`): it records a
//! checkpoint, waits for the answer (terminal, `rvbbit signal send`, the HTTP API, resume), checks it
//! against the question and returns it as the tool result and `state[<cell>]`. These registry entries
//! only describe the tools to models and to the validator; `request_decision` and `ask_human_custom`
//! also run as deterministic `tool:` cells.

use async_trait::async_trait;
use serde_json::{Value, json};

use super::{SideEffect, Tool, ToolContext, ToolError};

/// `ask_human(question, context?)`: ask a human and get the answer as text.
#[derive(Debug)]
pub struct AskHuman;

#[async_trait]
impl Tool for AskHuman {
    fn name(&self) -> &str {
        "ask_human"
    }
    fn description(&self) -> &str {
        "Ask the human a question and wait for the answer (returned as text)."
    }
    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "question": {"type": "string", "description": "The question to ask."},
                "context": {"type": "string", "description": "Optional background shown with it."}
            },
            "required": ["question"]
        })
    }
    fn side_effect(&self) -> SideEffect {
        SideEffect::Irreversible
    }
    async fn execute(&self, _args: Value, ctx: &ToolContext) -> Result<Value, ToolError> {
        Err(ToolError::Failed(format!(
            "ask_human only runs as a tool of an LLM cell (`traits: [ask_human]`); cell `{}` calls it directly: \
             use `human_input` on the cell instead",
            ctx.cell_name
        )))
    }
}

/// `request_decision(question, options, context?, severity?, html?, timeout_seconds?)`: a human picks
/// one of the options; the result is `{"selected": id, "label": label}`.
#[derive(Debug)]
pub struct RequestDecision;

#[async_trait]
impl Tool for RequestDecision {
    fn name(&self) -> &str {
        "request_decision"
    }
    fn description(&self) -> &str {
        "Ask the human to decide between options and wait for the choice. Returns {\"selected\": <option id>, \"label\": <option label>}."
    }
    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "question": {"type": "string", "description": "The decision to make."},
                "options": {
                    "type": "array",
                    "description": "2-6 choices: {id, label, description} objects or strings.",
                    "items": {"anyOf": [
                        {"type": "string"},
                        {"type": "object", "properties": {
                            "id": {"type": "string"}, "label": {"type": "string"}, "description": {"type": "string"}
                        }, "required": ["id"]}
                    ]}
                },
                "context": {"type": "string", "description": "Why the decision matters (shown with it)."},
                "severity": {"type": "string", "enum": ["info", "warning", "error"]},
                "html": {"type": "string", "description": "Optional HTML shown with the question."},
                "timeout_seconds": {"type": "integer", "minimum": 1, "description": "Give up after this long (default: wait)."}
            },
            "required": ["question", "options"]
        })
    }
    fn side_effect(&self) -> SideEffect {
        SideEffect::Irreversible
    }
    async fn execute(&self, _args: Value, ctx: &ToolContext) -> Result<Value, ToolError> {
        Err(outside_a_run("request_decision", ctx))
    }
}

/// `ask_human_custom(question, fields?, options?, ui_hint?, context?, data?, …)`: a human fills in a
/// form; the result is the submitted object, checked against the declared fields.
#[derive(Debug)]
pub struct AskHumanCustom;

#[async_trait]
impl Tool for AskHumanCustom {
    fn name(&self) -> &str {
        "ask_human_custom"
    }
    fn description(&self) -> &str {
        "Ask the human through a custom form and wait for it: declare `fields` (name, type text|number|integer|boolean|choice|multi_choice|json, options, required) and show `data` tables, `html` or `images` with it. Returns the submitted object, checked against the fields."
    }
    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "question": {"type": "string", "description": "What to ask."},
                "context": {"type": "string", "description": "Background shown with it."},
                "fields": {
                    "type": "array",
                    "description": "The answer's fields: names, or {name, type, label, required (default true), options}.",
                    "items": {"anyOf": [{"type": "string"}, {"type": "object", "required": ["name"]}]}
                },
                "options": {"type": "array", "description": "Without fields: one choice `selected` among these."},
                "ui_hint": {"type": "string", "description": "confirmation (one boolean `confirmed`), choice, text, …"},
                "data": {"type": "object", "description": "Tables to show: {title: [rows]}."},
                "layout_hint": {"type": "string"},
                "html": {"type": "string"},
                "images": {"type": "array", "items": {"type": "string"}},
                "timeout_seconds": {"type": "integer", "minimum": 1}
            },
            "required": ["question"]
        })
    }
    fn side_effect(&self) -> SideEffect {
        SideEffect::Irreversible
    }
    async fn execute(&self, _args: Value, ctx: &ToolContext) -> Result<Value, ToolError> {
        Err(outside_a_run("ask_human_custom", ctx))
    }
}

/// The error of a human tool called outside a run's cell (the engine answers them inside).
fn outside_a_run(tool: &str, ctx: &ToolContext) -> ToolError {
    ToolError::Failed(format!(
        "{tool} waits for a human through the run's checkpoints, so it runs only as a tool of a cell in a \
         cascade run (`traits: [{tool}]` or `tool: {tool}`); cell `{}` called it elsewhere",
        ctx.cell_name
    ))
}
