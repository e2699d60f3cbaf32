//! Declarative tools: `*.tool.json` / `*.tool.yaml` files with a `tool_id`, found in the tool directories
//! (`traits/`, `tackle/`, `skills/`, `cascades/`) beside a cascade, exactly where `rvbbit validate` finds
//! them, so every tool name validation accepts also runs.
//!
//! - `shell`: `command` is a Jinja template over the arguments (values are substituted as written, as in
//!   RVBBIT: the file's author owns the quoting); run with `bash -c` in the session directory, time
//!   limited, output capped. The result is stdout (`output_transform: lines` → a list of lines, `json` →
//!   parsed). A non-zero exit fails the call with stderr.
//! - `http`: `url`, `headers` and `body` are templates; the call goes through `http_request`; the body
//!   is filtered by `response_jq` when it is a path (`.`, `.a.b`, `.items[0]`).
//! - `python`: `function: module.name` is imported from the tool file's directory and called with the
//!   arguments as keyword arguments; its return value (JSON) is the result.
//! - `composite`: `steps` call other tools in order; `args` and `condition` are templates over `input`
//!   (the arguments) and `steps` (`[{success, result, error}]` so far). The result is
//!   `{steps, result}` with the last executed step's result.
//! - `gradio`: refused (RVB-E003: it needs a network service this rewrite does not call).

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use rvbbit_cascade::Content;
use rvbbit_cascade::model::{ToolDefinition, ToolType};
use rvbbit_core::config::LimitsConfig;
use serde_json::{Map, Value, json};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use super::{SideEffect, Tool, ToolContext, ToolError};
use crate::template::{RenderError, Templates};

/// A tool defined in a file.
#[derive(Debug)]
pub struct DeclarativeTool {
    def: ToolDefinition,
    dir: PathBuf,
    parameters: Value,
}

impl DeclarativeTool {
    /// Load the tool defined in `path`; `None` when the file is not a tool definition.
    pub fn from_file(path: &Path) -> Option<Self> {
        let loaded = rvbbit_cascade::load_file(path);
        match loaded.document.map(|d| d.content) {
            Some(Content::Tool(def)) => Some(Self::new(*def, path.parent().unwrap_or(Path::new(".")))),
            _ => None,
        }
    }

    /// The tool `def`, whose relative paths (python modules) resolve in `dir`.
    pub fn new(def: ToolDefinition, dir: &Path) -> Self {
        let mut properties = Map::new();
        for (key, desc) in def.inputs_schema.iter().flatten() {
            let prop = match desc {
                Value::Object(o) if o.contains_key("type") => desc.clone(),
                Value::String(d) => json!({"type": "string", "description": d}),
                other => json!({"type": "string", "description": other.to_string()}),
            };
            properties.insert(key.clone(), prop);
        }
        DeclarativeTool {
            parameters: json!({"type": "object", "properties": properties}),
            def,
            dir: dir.to_path_buf(),
        }
    }

    /// The run's template environment (its limits and cancellation), or the defaults outside a run.
    fn templates(ctx: &ToolContext) -> Templates {
        match &ctx.scope {
            Some(scope) => Templates::new(scope.limits(), scope.cancel().clone()),
            None => Templates::new(&LimitsConfig::default(), CancellationToken::new()),
        }
    }

    fn template_error(&self, e: RenderError) -> ToolError {
        ToolError::InvalidArguments(format!(
            "the template of tool `{}` does not render: {e}",
            self.def.tool_id
        ))
    }

    async fn render(&self, template: &str, vars: &Value, ctx: &ToolContext) -> Result<String, ToolError> {
        Self::templates(ctx)
            .render(template, vars)
            .await
            .map_err(|e| self.template_error(e))
    }

    /// Render every string inside `value` (objects and lists too).
    async fn render_value(&self, value: &Value, vars: &Value, ctx: &ToolContext) -> Result<Value, ToolError> {
        Self::templates(ctx)
            .render_value(value, vars)
            .await
            .map_err(|e| self.template_error(e))
    }

    fn transform(&self, text: String) -> Result<Value, ToolError> {
        match self.def.output_transform.as_deref() {
            None | Some("" | "text" | "raw") => Ok(Value::String(text)),
            Some("lines") => Ok(Value::Array(
                text.lines()
                    .filter(|l| !l.is_empty())
                    .map(|l| Value::String(l.to_owned()))
                    .collect(),
            )),
            Some("json") => serde_json::from_str(text.trim())
                .map_err(|e| ToolError::Failed(format!("the output is not JSON ({e}): {}", excerpt(&text)))),
            Some(other) => Err(ToolError::InvalidArguments(format!(
                "tool `{}`: output_transform `{other}` is not one of text, lines, json",
                self.def.tool_id
            ))),
        }
    }

    async fn shell(&self, args: &Value, ctx: &ToolContext) -> Result<Value, ToolError> {
        let template = self
            .def
            .command
            .as_deref()
            .ok_or_else(|| missing(&self.def, "command"))?;
        let command = self.render(template, args, ctx).await?;
        let dir = match cascade_dir(ctx) {
            Some(dir) => dir,
            None => {
                tokio::fs::create_dir_all(&ctx.session_dir)
                    .await
                    .map_err(|e| ToolError::Failed(format!("cannot create the session directory: {e}")))?;
                ctx.session_dir.clone()
            }
        };
        let mut cmd = Command::new("bash");
        cmd.arg("-c").arg(&command).current_dir(&dir);
        ctx.process_env(&mut cmd);
        let done = super::run_process(ctx, cmd, Vec::new(), self.limit(ctx), &[dir]).await?;
        if done.code != 0 {
            return Err(ToolError::Failed(format!(
                "`{}` exited with {}: {}",
                self.def.tool_id,
                done.code,
                excerpt(&done.stderr)
            )));
        }
        self.transform(done.stdout)
    }

    async fn http(&self, args: &Value, ctx: &ToolContext) -> Result<Value, ToolError> {
        let url = self
            .render(
                self.def.url.as_deref().ok_or_else(|| missing(&self.def, "url"))?,
                args,
                ctx,
            )
            .await?;
        let mut call = json!({"url": url, "method": self.def.method.clone().unwrap_or_else(|| "GET".into())});
        if let Some(h) = &self.def.headers {
            call["headers"] = self.render_value(&Value::Object(h.clone()), args, ctx).await?;
        }
        match &self.def.body {
            Some(Value::String(s)) => call["body"] = Value::String(self.render(s, args, ctx).await?),
            Some(other) => call["json"] = self.render_value(other, args, ctx).await?,
            None => {}
        }
        let mut ctx = ctx.clone();
        ctx.timeout = self.limit(&ctx);
        let response = super::http::HttpRequest::default().execute(call, &ctx).await?;
        let status = response.get("status").and_then(Value::as_u64).unwrap_or(0);
        if status >= 400 {
            return Err(ToolError::Failed(format!(
                "`{}`: HTTP {status}: {}",
                self.def.tool_id,
                excerpt(&response.get("body").map(Value::to_string).unwrap_or_default())
            )));
        }
        let body = response.get("body").cloned().unwrap_or(Value::Null);
        match self.def.response_jq.as_deref() {
            None => Ok(body),
            Some(path) => jq_path(&body, path).ok_or_else(|| {
                ToolError::InvalidArguments(format!(
                    "tool `{}`: response_jq `{path}` is not a path rvbbit reads (`.`, `.a.b`, `.items[0]`)",
                    self.def.tool_id
                ))
            }),
        }
    }

    async fn python(&self, args: &Value, ctx: &ToolContext) -> Result<Value, ToolError> {
        let function = self
            .def
            .function
            .as_deref()
            .ok_or_else(|| missing(&self.def, "function"))?;
        let Some((module, name)) = function.rsplit_once('.') else {
            return Err(ToolError::InvalidArguments(format!(
                "tool `{}`: function `{function}` must be `module.function`",
                self.def.tool_id
            )));
        };
        let program = "import importlib, json, sys\n\
            sys.path.insert(0, sys.argv[1])\n\
            fn = getattr(importlib.import_module(sys.argv[2]), sys.argv[3])\n\
            result = fn(**json.load(sys.stdin))\n\
            sys.stdout.write(json.dumps(result, default=str))\n";
        // Absolute: in a sandbox the process starts in the session's work directory.
        let dir = std::fs::canonicalize(&self.dir).unwrap_or_else(|_| self.dir.clone());
        let mut cmd = Command::new("python3");
        cmd.arg("-c").arg(program).arg(&dir).arg(module).arg(name);
        ctx.process_env(&mut cmd);
        let stdin = serde_json::to_vec(args).unwrap_or_default();
        let done = super::run_process(ctx, cmd, stdin, self.limit(ctx), &[dir]).await?;
        if done.code != 0 {
            return Err(ToolError::Failed(format!(
                "`{function}` raised: {}",
                excerpt(done.stderr.lines().last().unwrap_or(&done.stderr))
            )));
        }
        serde_json::from_str(done.stdout.trim())
            .map_err(|e| ToolError::Failed(format!("`{function}` returned something that is not JSON: {e}")))
    }

    async fn composite(&self, args: &Value, ctx: &ToolContext) -> Result<Value, ToolError> {
        let steps = self
            .def
            .steps
            .as_deref()
            .ok_or_else(|| missing(&self.def, "steps"))?;
        let registry =
            ctx.scope.as_ref().map(|s| s.registry()).ok_or_else(|| {
                ToolError::Failed("a composite tool needs a run to call its steps in".into())
            })?;
        let mut done: Vec<Value> = Vec::new();
        let mut last = Value::Null;
        for (i, step) in steps.iter().enumerate() {
            let vars = json!({"input": args, "steps": done});
            if let Some(cond) = &step.condition {
                let verdict = self.render(cond, &vars, ctx).await?;
                if matches!(
                    verdict.trim().to_ascii_lowercase().as_str(),
                    "" | "false" | "0" | "none" | "no"
                ) {
                    done.push(json!({"tool": step.tool, "skipped": true, "success": false}));
                    continue;
                }
            }
            let tool = registry.resolve(&step.tool).ok_or_else(|| {
                ToolError::InvalidArguments(format!(
                    "step {} of `{}` calls `{}`, which is not a tool here",
                    i + 1,
                    self.def.tool_id,
                    step.tool
                ))
            })?;
            let step_args = self
                .render_value(&Value::Object(step.args.clone().unwrap_or_default()), &vars, ctx)
                .await?;
            match tool.execute(step_args, ctx).await {
                Ok(result) => {
                    last = result.clone();
                    done.push(json!({"tool": step.tool, "success": true, "result": result}));
                }
                Err(e) => {
                    done.push(json!({"tool": step.tool, "success": false, "error": e.to_string()}));
                }
            }
        }
        Ok(json!({"steps": done, "result": last}))
    }

    fn limit(&self, ctx: &ToolContext) -> Option<Duration> {
        ctx.timeout.or_else(|| self.default_timeout())
    }
}

fn missing(def: &ToolDefinition, key: &str) -> ToolError {
    ToolError::InvalidArguments(format!("tool `{}` has no `{key}`", def.tool_id))
}

fn excerpt(text: &str) -> String {
    let t = text.trim();
    if t.chars().count() > 500 {
        format!("{}…", t.chars().take(500).collect::<String>())
    } else {
        t.to_owned()
    }
}

/// The value at a jq-style path (`.`, `.a.b`, `.items[0].name`); `None` for anything else.
fn jq_path(value: &Value, path: &str) -> Option<Value> {
    let path = path.trim();
    let rest = path.strip_prefix('.')?;
    let mut current = value;
    for segment in rest.split('.').filter(|s| !s.is_empty()) {
        let (key, indexes) = match segment.find('[') {
            Some(i) => (&segment[..i], &segment[i..]),
            None => (segment, ""),
        };
        if !key.is_empty() {
            if !key.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-') {
                return None;
            }
            current = current.get(key).unwrap_or(&Value::Null);
        }
        let mut idx = indexes;
        while let Some(open) = idx.strip_prefix('[') {
            let close = open.find(']')?;
            let n: usize = open[..close].parse().ok()?;
            current = current.get(n).unwrap_or(&Value::Null);
            idx = &open[close + 1..];
        }
        if !idx.is_empty() {
            return None;
        }
    }
    Some(current.clone())
}

#[async_trait]
impl Tool for DeclarativeTool {
    fn name(&self) -> &str {
        &self.def.tool_id
    }
    fn description(&self) -> &str {
        self.def
            .description
            .as_deref()
            .unwrap_or("A tool defined in a file.")
    }
    fn parameters(&self) -> Value {
        self.parameters.clone()
    }
    fn compute(&self) -> bool {
        matches!(self.def.kind, ToolType::Shell | ToolType::Python)
    }
    fn side_effect(&self) -> SideEffect {
        match self.def.kind {
            ToolType::Http
                if self
                    .def
                    .method
                    .as_deref()
                    .is_none_or(|m| m.eq_ignore_ascii_case("GET")) =>
            {
                SideEffect::Idempotent
            }
            _ => SideEffect::Irreversible,
        }
    }
    fn default_timeout(&self) -> Option<Duration> {
        self.def
            .timeout
            .as_ref()
            .and_then(|t| t.as_seconds())
            .map(Duration::from_secs_f64)
    }
    async fn execute(&self, args: Value, ctx: &ToolContext) -> Result<Value, ToolError> {
        let args = if args.is_null() { json!({}) } else { args };
        match self.def.kind {
            ToolType::Shell => self.shell(&args, ctx).await,
            ToolType::Http => self.http(&args, ctx).await,
            ToolType::Python => self.python(&args, ctx).await,
            ToolType::Composite => self.composite(&args, ctx).await,
            ToolType::Gradio => Err(ToolError::Failed(format!(
                "`{}` is a Gradio tool; rvbbit does not call Gradio Spaces (RVB-E003): use an `http` tool",
                self.def.tool_id
            ))),
        }
    }
}

/// The folder of the running cascade's file: relative paths in a shell tool's arguments (`wc -w <
/// README.md`, a cascade input such as `{"directory": "."}`) mean the same thing as the cascade's own
/// references. `None` outside a run or when the file is unknown (the session directory is used then).
fn cascade_dir(ctx: &ToolContext) -> Option<PathBuf> {
    let file = ctx.scope.as_ref()?.cascade_file()?;
    let dir = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    dir.is_dir().then_some(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jq_paths_read_keys_and_indexes() {
        let v = json!({"a": {"b": [10, {"c": "x"}]}});
        assert_eq!(jq_path(&v, "."), Some(v.clone()));
        assert_eq!(jq_path(&v, ".a.b[0]"), Some(json!(10)));
        assert_eq!(jq_path(&v, ".a.b[1].c"), Some(json!("x")));
        assert_eq!(jq_path(&v, ".missing"), Some(Value::Null));
        assert_eq!(jq_path(&v, ".a | keys"), None);
        assert_eq!(jq_path(&v, "a"), None);
    }
}
