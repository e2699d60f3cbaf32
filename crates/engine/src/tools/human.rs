//! `ask_human`: the model of an LLM cell asks a human a question.
//!
//! The engine answers the call itself (`cells/hitl.rs`): it records a checkpoint, waits for the answer
//! (terminal, `rvbbit signal send`, resume) and returns it as the tool result and `state[<cell>]`. This
//! registry entry only describes the tool to models and to the validator.

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
