//! A cascade used as a tool (§5.6 Proposed): calling it runs the cascade as a child session of the caller
//! (parent link, caller id, cancel token), with the call's arguments as input, and returns the child's last
//! lineage output.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use rvbbit_cascade::Content;
use rvbbit_cascade::model::Cascade;
use rvbbit_core::SessionStatus;
use serde_json::{Map, Value, json};

use super::{SideEffect, Tool, ToolContext, ToolError};

/// A cascade file callable as a tool, named by its `cascade_id` (or file stem).
#[derive(Debug)]
pub struct CascadeTool {
    name: String,
    cascade_id: String,
    path: PathBuf,
    description: String,
    parameters: Value,
}

impl CascadeTool {
    /// The tool `name` for the cascade at `path`; `None` when the file is not a cascade.
    pub fn from_file(name: &str, path: &Path) -> Option<Self> {
        let loaded = rvbbit_cascade::load_file(path);
        match loaded.document.map(|d| d.content) {
            Some(Content::Cascade(cascade)) => Some(Self::new(name, path, &cascade)),
            _ => None,
        }
    }

    /// The tool `name` for `cascade` (loaded from `path`): its parameters are the `inputs_schema` keys.
    pub fn new(name: &str, path: &Path, cascade: &Cascade) -> Self {
        let mut properties = Map::new();
        for (key, desc) in cascade.inputs_schema.iter().flatten() {
            let prop = match desc {
                Value::Object(o) if o.contains_key("type") => desc.clone(),
                Value::String(d) => json!({"type": "string", "description": d}),
                other => json!({"type": "string", "description": other.to_string()}),
            };
            properties.insert(key.clone(), prop);
        }
        CascadeTool {
            name: name.to_owned(),
            cascade_id: cascade.cascade_id.clone(),
            path: path.to_path_buf(),
            description: cascade
                .description
                .clone()
                .unwrap_or_else(|| format!("Run the cascade `{}`.", cascade.cascade_id)),
            parameters: json!({"type": "object", "properties": properties}),
        }
    }
}

#[async_trait]
impl Tool for CascadeTool {
    fn name(&self) -> &str {
        &self.name
    }

    fn description(&self) -> &str {
        &self.description
    }

    fn parameters(&self) -> Value {
        self.parameters.clone()
    }

    fn side_effect(&self) -> SideEffect {
        SideEffect::Irreversible
    }

    fn cascade_path(&self) -> Option<&Path> {
        Some(&self.path)
    }

    async fn execute(&self, args: Value, ctx: &ToolContext) -> Result<Value, ToolError> {
        let Some(scope) = &ctx.scope else {
            return Err(ToolError::Failed(format!(
                "the cascade tool `{}` can only be called from a run",
                self.name
            )));
        };
        let input = match args {
            Value::Object(_) => args,
            Value::Null => json!({}),
            other => {
                return Err(ToolError::InvalidArguments(format!(
                    "the arguments of the cascade tool `{}` must be an object, not {other}",
                    self.name
                )));
            }
        };
        let what = format!("cascade tool `{}`", self.name);
        let base = format!("tool_{}", self.cascade_id);
        let outcome = scope
            .run_cascade_file(&ctx.cell_name, &what, &self.path, &base, input)
            .await?;
        match outcome.status {
            SessionStatus::Completed => Ok(outcome.output),
            status => Err(ToolError::Failed(format!(
                "the cascade `{}` ended `{status}` in session `{}`{}",
                self.cascade_id,
                outcome.session_id,
                outcome
                    .error
                    .as_ref()
                    .map(|e| format!(": [{}] {e}", e.code().code))
                    .unwrap_or_default()
            ))),
        }
    }
}
