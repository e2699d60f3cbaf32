//! `python:module.function` tool references (LARS's way to name a Python function as a tool): the
//! function is imported and called in a `python3` subprocess with the tool's arguments as keyword
//! arguments, over JSON on stdin and stdout (no Python is embedded). Modules are found next to the
//! calling cascade, then in the working directory, then on `PYTHONPATH`. A raised exception is a tool
//! failure naming its type, message and the last frame of its traceback. In a sandbox the module
//! directories are mounted read-only, like a script's.

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};
use tokio::process::Command;

use rvbbit_cascade::catalog::{PYTHON_PREFIX as PREFIX, python_reference_problem as reference_problem};

use super::{SideEffect, Tool, ToolContext, ToolError};

/// The line before the JSON answer on stdout.
const MARKER: &str = "\u{1e}RVBBIT_PYREF\u{1e}";

/// The runner: reads `{module, function, args, path, marker}`, imports and calls, prints the marker and
/// `{result}` or `{error, where}`.
const RUNNER: &str = r#"
import json, sys, io, contextlib, importlib, traceback
_req = json.load(sys.stdin)
for _p in reversed(_req["path"]):
    sys.path.insert(0, _p)
def _plain(v):
    if hasattr(v, "to_dict") and callable(v.to_dict):
        try:
            return v.to_dict(orient="records")
        except TypeError:
            return v.to_dict()
    if hasattr(v, "item") and callable(v.item):
        return v.item()
    if hasattr(v, "tolist") and callable(v.tolist):
        return v.tolist()
    return str(v)
_buf = io.StringIO()
try:
    with contextlib.redirect_stdout(_buf):
        _fn = getattr(importlib.import_module(_req["module"]), _req["function"])
        _out = {"result": _fn(**_req["args"])}
except BaseException as _e:
    _tb = traceback.extract_tb(_e.__traceback__)
    _last = _tb[-1] if _tb else None
    _out = {"error": "%s: %s" % (type(_e).__name__, _e),
            "where": "%s:%s in %s" % (_last.filename, _last.lineno, _last.name) if _last else None}
sys.stdout.write(_buf.getvalue())
sys.stdout.write("\n" + _req["marker"] + "\n")
sys.stdout.write(json.dumps(_out, default=_plain))
"#;

/// A `python:module.function` reference as a tool.
#[derive(Debug)]
pub struct PythonRef {
    name: String,
    module: String,
    function: String,
    description: String,
}

impl PythonRef {
    /// The tool for a well-formed `python:module.function` reference, or None.
    pub fn parse(name: &str) -> Option<PythonRef> {
        if reference_problem(name).is_some() {
            return None;
        }
        let (module, function) = name.strip_prefix(PREFIX)?.rsplit_once('.')?;
        Some(PythonRef {
            name: name.to_owned(),
            module: module.to_owned(),
            function: function.to_owned(),
            description: format!(
                "Call the Python function `{function}` of the module `{module}` with keyword arguments."
            ),
        })
    }

    /// Where modules are looked for: the calling cascade's directory, then the working directory.
    fn search_path(ctx: &ToolContext) -> Vec<PathBuf> {
        let mut path = Vec::new();
        if let Some(dir) = ctx
            .scope
            .as_ref()
            .and_then(|s| {
                s.cascade_file()
                    .and_then(|f| f.parent())
                    .map(std::path::Path::to_path_buf)
            })
            .filter(|d| !d.as_os_str().is_empty())
            .and_then(|d| std::fs::canonicalize(d).ok())
        {
            path.push(dir);
        }
        if let Ok(cwd) = std::env::current_dir()
            && !path.contains(&cwd)
        {
            path.push(cwd);
        }
        path
    }
}

#[async_trait]
impl Tool for PythonRef {
    fn name(&self) -> &str {
        &self.name
    }

    fn description(&self) -> &str {
        &self.description
    }

    fn parameters(&self) -> Value {
        json!({"type": "object", "additionalProperties": true})
    }

    fn compute(&self) -> bool {
        true
    }

    fn side_effect(&self) -> SideEffect {
        SideEffect::Irreversible
    }

    fn default_timeout(&self) -> Option<Duration> {
        Some(Duration::from_secs(300))
    }

    async fn execute(&self, args: Value, ctx: &ToolContext) -> Result<Value, ToolError> {
        let args = match args {
            Value::Object(map) => Value::Object(map),
            Value::Null => json!({}),
            other => {
                return Err(ToolError::InvalidArguments(format!(
                    "`{}` takes keyword arguments (an object), not {other}",
                    self.name
                )));
            }
        };
        let path = Self::search_path(ctx);
        let request = json!({
            "module": self.module,
            "function": self.function,
            "args": args,
            "path": path,
            "marker": MARKER,
        });
        let mut cmd = Command::new("python3");
        cmd.arg("-c").arg(RUNNER);
        ctx.process_env(&mut cmd);
        let timeout = ctx.timeout.or(self.default_timeout());
        let done = super::run_process(ctx, cmd, request.to_string().into_bytes(), timeout, &path).await?;
        let Some((_, answer)) = done.stdout.rsplit_once(MARKER) else {
            return Err(ToolError::Failed(format!(
                "`{}`: python exited with code {} before answering: {}",
                self.name,
                done.code,
                done.stderr.trim().lines().last().unwrap_or("(no stderr)")
            )));
        };
        let answer: Value = serde_json::from_str(answer.trim())
            .map_err(|e| ToolError::Failed(format!("`{}`: the answer is not JSON: {e}", self.name)))?;
        if let Some(error) = answer.get("error").and_then(Value::as_str) {
            let at = answer
                .get("where")
                .and_then(Value::as_str)
                .map(|w| format!(" (at {w})"))
                .unwrap_or_default();
            let hint = if error.starts_with("ModuleNotFoundError") {
                format!(
                    "; put `{}.py` next to the cascade or in the working directory, or add its directory to PYTHONPATH",
                    self.module.replace('.', "/")
                )
            } else {
                String::new()
            };
            return Err(ToolError::Failed(format!(
                "`{}` raised {error}{at}{hint}",
                self.name
            )));
        }
        Ok(answer.get("result").cloned().unwrap_or(Value::Null))
    }
}

#[cfg(test)]
mod tests {
    use super::{PythonRef, reference_problem};

    #[test]
    fn references_are_checked_before_anything_runs() {
        assert!(reference_problem("python:pkg.mod.fn").is_none());
        assert!(reference_problem("other").is_none());
        assert!(reference_problem("python:fn").unwrap().contains("no module"));
        assert!(
            reference_problem("python:os.system;rm")
                .unwrap()
                .contains("not a Python identifier")
        );
        assert!(
            reference_problem("python:a..b")
                .unwrap()
                .contains("not a Python identifier")
        );
        let long = format!("python:a.{}", "b".repeat(300));
        assert!(reference_problem(&long).unwrap().contains("longer than"));
        let tool = PythonRef::parse("python:pkg.mod.fn").unwrap();
        assert_eq!((tool.module.as_str(), tool.function.as_str()), ("pkg.mod", "fn"));
    }
}
