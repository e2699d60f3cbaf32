//! `python_data` and `run_code`: Python code in a `python3` subprocess, results passed back as JSON.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};
use tokio::process::Command;

use super::{SideEffect, Tool, ToolContext, ToolError, str_arg};

/// The line before the JSON result on stdout.
const MARKER: &str = "\u{1e}RVBBIT_RESULT\u{1e}";

/// The harness: reads `{code, state, input, outputs}` from stdin, runs `code` with `state`, `input`,
/// `outputs` and `data` in scope, then prints the marker and `result` as JSON.
///
/// `data` is `outputs` (a dict, `data["cell"]` as before) whose attributes are the earlier cells' outputs
/// as LARS code reads them: `data.generate` is the cell's table as a pandas DataFrame when pandas imports
/// (a list of row dicts otherwise), any other output as it is. A `result` that is a DataFrame or a Series,
/// or holds numpy scalars, becomes plain JSON (records, lists, numbers).
const HARNESS: &str = r#"
import json, sys, io, contextlib
_req = json.load(sys.stdin)
try:
    import pandas as _pd
except Exception:
    _pd = None
class _Data(dict):
    def __getattr__(self, name):
        if name not in self:
            raise AttributeError("no earlier cell is named %r (earlier cells: %s)" % (name, ", ".join(sorted(self)) or "none"))
        out = self[name]
        if isinstance(out, dict) and isinstance(out.get("rows"), list) and all(isinstance(r, dict) for r in out["rows"]):
            if _pd is None:
                return [dict(r) for r in out["rows"]]
            cols = out.get("columns") if isinstance(out.get("columns"), list) else None
            return _pd.DataFrame(out["rows"], columns=cols or None)
        return out
def _plain(v):
    if _pd is not None:
        if isinstance(v, _pd.DataFrame):
            return json.loads(v.to_json(orient="records", date_format="iso"))
        if isinstance(v, _pd.Series):
            return json.loads(v.to_json(orient="values", date_format="iso"))
    if hasattr(v, "item") and callable(v.item):
        return v.item()
    if hasattr(v, "tolist") and callable(v.tolist):
        return v.tolist()
    return str(v)
_data = _Data(_req["outputs"])
_ns = {"state": _req["state"], "input": _req["input"], "outputs": _data, "data": _data}
_ns.update(_req.get("extra") or {})
_buf = io.StringIO()
with contextlib.redirect_stdout(_buf):
    exec(compile(_req["code"], "<cell>", "exec"), _ns)
_res = _ns.get("result")
if _pd is not None and isinstance(_res, (_pd.DataFrame, _pd.Series)):
    _res = _plain(_res)
sys.stdout.write(_buf.getvalue())
sys.stdout.write("\n" + _req["marker"] + "\n")
sys.stdout.write(json.dumps(_res, default=_plain))
"#;

/// Run `code` with python3; returns (`result` as JSON, the printed stdout).
pub(crate) async fn run_python(
    code: &str,
    ctx: &ToolContext,
    extra: Value,
    timeout: Option<Duration>,
) -> Result<(Value, String), ToolError> {
    let state = state_of(ctx)?;
    let request = json!({
        "code": code,
        "state": state,
        "input": ctx.input,
        "outputs": ctx.outputs,
        "extra": extra,
        "marker": MARKER,
    });
    let mut cmd = Command::new("python3");
    cmd.arg("-c").arg(HARNESS);
    ctx.process_env(&mut cmd);
    let done = super::run_process(ctx, cmd, request.to_string().into_bytes(), timeout, &[]).await?;
    if done.code != 0 {
        return Err(ToolError::Failed(format!(
            "python exited with code {}: {}",
            done.code,
            done.stderr.trim().lines().last().unwrap_or("(no stderr)")
        )));
    }
    let Some((printed, result)) = done.stdout.rsplit_once(MARKER) else {
        if done.truncated {
            return Err(ToolError::Sandbox {
                code: rvbbit_core::codes::B_SANDBOX_OUTPUT,
                message: "what the code printed passed the sandbox output limit before its result, so the result was cut off; print less, or raise it with `sandbox: {output_kb: N}` on the cell or `--sandbox-output-kb N` on the batch, up to `sandbox.max_output_kb`".into(),
            });
        }
        return Err(ToolError::Failed(
            "python produced no result (the harness was cut short)".into(),
        ));
    };
    let result: Value = serde_json::from_str(result.trim())
        .map_err(|e| ToolError::Failed(format!("python result is not JSON: {e}")))?;
    Ok((result, printed.trim_end_matches('\n').to_owned()))
}

/// A copy of the session state, for a code tool's process.
pub(crate) fn state_of(ctx: &ToolContext) -> Result<Value, ToolError> {
    ctx.state
        .lock()
        .map(|s| Value::Object(s.clone()))
        .map_err(|_| ToolError::Failed("the session state is poisoned".into()))
}

/// The output of a data tool (`python_data`, `js_data`, `clojure_data`) for its `result`:
/// `{result, type, _route}` (`type` is `dict`, `list` or `scalar`); a non-empty list of objects also
/// gets `rows`, `columns` (first-seen order) and `row_count`, so later cells read it as a table.
pub(crate) fn data_output(result: Value) -> Value {
    let kind = match &result {
        Value::Object(_) => "dict",
        Value::Array(_) => "list",
        _ => "scalar",
    };
    let mut out = json!({"result": result, "type": kind, "_route": "success"});
    if let Value::Array(items) = &out["result"]
        && items.iter().all(Value::is_object)
        && !items.is_empty()
    {
        let rows = items.clone();
        let mut columns: Vec<String> = Vec::new();
        for r in &rows {
            if let Value::Object(m) = r {
                for k in m.keys() {
                    if !columns.contains(k) {
                        columns.push(k.clone());
                    }
                }
            }
        }
        out["row_count"] = json!(rows.len());
        out["rows"] = Value::Array(rows);
        out["columns"] = json!(columns);
    }
    out
}

fn code_params() -> Value {
    json!({
        "type": "object",
        "properties": {"code": {"type": "string", "description": "Python code; assign the answer to `result`."}},
        "required": ["code"]
    })
}

/// `python_data(code)`: run Python that assigns `result`; returns `{result, type, _route}` (`type` is
/// `dict`, `list` or `scalar`; a list of dicts also gets `rows`, `columns`, `row_count`).
#[derive(Debug)]
pub struct PythonData;

#[async_trait]
impl Tool for PythonData {
    fn name(&self) -> &str {
        "python_data"
    }
    fn description(&self) -> &str {
        "Run Python code that assigns `result`; `state`, `input` and `outputs` are in scope."
    }
    fn parameters(&self) -> Value {
        code_params()
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
        let code = str_arg(&args, "code")?;
        let (result, _) = run_python(code, ctx, Value::Null, ctx.timeout.or(self.default_timeout())).await?;
        Ok(data_output(result))
    }
}

/// `run_code(code)`: run Python and return `{stdout, result}`.
#[derive(Debug)]
pub struct RunCode;

#[async_trait]
impl Tool for RunCode {
    fn name(&self) -> &str {
        "run_code"
    }
    fn description(&self) -> &str {
        "Run Python code and return what it printed (and `result`, when it assigns one)."
    }
    fn parameters(&self) -> Value {
        code_params()
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
        let code = str_arg(&args, "code")?;
        let (result, printed) =
            run_python(code, ctx, Value::Null, ctx.timeout.or(self.default_timeout())).await?;
        Ok(json!({"stdout": printed, "result": result}))
    }
}
