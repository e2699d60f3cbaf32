//! `set_state` and `append_state`: write the session state.

use async_trait::async_trait;
use serde_json::{Value, json};

use super::{SideEffect, Tool, ToolContext, ToolError, str_arg};

/// `set_state(key, value)`: `state[key] = value`.
#[derive(Debug)]
pub struct SetState;

/// `append_state(key, value)`: append `value` to the list `state[key]` (created when missing).
#[derive(Debug)]
pub struct AppendState;

fn params() -> Value {
    json!({
        "type": "object",
        "properties": {"key": {"type": "string"}, "value": {}},
        "required": ["key", "value"]
    })
}

#[async_trait]
impl Tool for SetState {
    fn name(&self) -> &str {
        "set_state"
    }
    fn description(&self) -> &str {
        "Store a value in the session state under a key."
    }
    fn parameters(&self) -> Value {
        params()
    }
    fn side_effect(&self) -> SideEffect {
        SideEffect::Idempotent
    }
    async fn execute(&self, args: Value, ctx: &ToolContext) -> Result<Value, ToolError> {
        let key = str_arg(&args, "key")?.to_owned();
        let value = args.get("value").cloned().unwrap_or(Value::Null);
        let mut state = ctx
            .state
            .lock()
            .map_err(|_| ToolError::Failed("the session state is poisoned".into()))?;
        state.insert(key.clone(), value.clone());
        Ok(json!({"key": key, "value": value}))
    }
}

#[async_trait]
impl Tool for AppendState {
    fn name(&self) -> &str {
        "append_state"
    }
    fn description(&self) -> &str {
        "Append a value to a list in the session state."
    }
    fn parameters(&self) -> Value {
        params()
    }
    fn side_effect(&self) -> SideEffect {
        SideEffect::Irreversible
    }
    async fn execute(&self, args: Value, ctx: &ToolContext) -> Result<Value, ToolError> {
        let key = str_arg(&args, "key")?.to_owned();
        let value = args.get("value").cloned().unwrap_or(Value::Null);
        let mut state = ctx
            .state
            .lock()
            .map_err(|_| ToolError::Failed("the session state is poisoned".into()))?;
        let entry = state
            .entry(key.clone())
            .or_insert_with(|| Value::Array(Vec::new()));
        if !entry.is_array() {
            let old = entry.take();
            *entry = Value::Array(vec![old]);
        }
        let len = match entry {
            Value::Array(items) => {
                items.push(value);
                items.len()
            }
            _ => 0,
        };
        Ok(json!({"key": key, "length": len}))
    }
}
