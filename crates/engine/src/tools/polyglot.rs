//! `js_data` and `clojure_data`: data cells in JavaScript (Node.js) and Clojure (babashka), as LARS
//! runs them. The code runs in a subprocess of the runtime, in the same sandbox as `python_data`
//! (`run_process`), with the earlier cells' outputs as `data` (a table as its list of rows, another
//! output as its `result`), `state` and `input` in scope; what it leaves in `result` (JavaScript) or
//! evaluates to (Clojure) is the cell's output, shaped as `python_data`'s is ([`super::python::data_output`]).
//!
//! A runtime that is not on `PATH` is RVB-E003 "not configured", at run time and (through
//! [`Tool::unavailable`]) at validate time, so `validate` predicts what a run on this machine does.

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value, json};
use tokio::process::Command;

use super::python::{data_output, state_of};
use super::{SideEffect, Tool, ToolContext, ToolError, str_arg};

/// The line before the JSON result on stdout, and before the error message on stderr.
const MARKER: &str = "\u{1e}RVBBIT_RESULT\u{1e}";

/// The longest `timeout` argument taken, in seconds.
const MAX_TIMEOUT_SECONDS: u64 = 3_600;

/// The Node.js harness: reads `{code, data, state, input, marker}` from stdin, runs `code` as the
/// body of an async function with `data`, `state`, `input`, `outputs` (= `data`) and `require` in
/// scope and `let result;` declared, then prints the marker and `result` as JSON. A thrown error (also
/// one thrown later by a timer or a rejected promise) is printed after the marker on stderr as
/// `Name: message (line N of the code)`, without a stack (which names files of this machine).
const JS_HARNESS: &str = r#"
const marker = process.argv[1];
const req = JSON.parse(require("fs").readFileSync(0, "utf8"));
const AsyncFunction = (async function () {}).constructor;
let failed = false;
function fail(e) {
  if (failed) return;
  failed = true;
  let msg;
  if (e instanceof Error) {
    msg = e.name + ": " + e.message;
    const m = /<anonymous>:(\d+):\d+/.exec(String(e.stack || ""));
    if (m && Number(m[1]) > 3) msg += " (line " + (Number(m[1]) - 3) + " of the code)";
  } else {
    msg = "uncaught " + JSON.stringify(e);
  }
  process.stderr.write("\n" + marker + JSON.stringify(msg) + "\n");
  process.exitCode = 1;
}
process.on("uncaughtException", fail);
process.on("unhandledRejection", fail);
let fn = null;
try {
  fn = new AsyncFunction("data", "state", "input", "outputs", "require", "let result;\n" + req.code + "\n;return result;");
} catch (e) {
  fail(e);
}
if (fn) {
  fn(req.data, req.state, req.input, req.data, require).then((result) => {
    if (failed) return;
    if (result === undefined) {
      fail(new Error("the code did not set `result` (assign the answer to `result`)"));
      return;
    }
    let text;
    try {
      text = JSON.stringify(result);
    } catch (e) {
      fail(e);
      return;
    }
    process.stdout.write("\n" + marker + "\n" + text);
  }, fail);
}
"#;

/// The babashka harness: reads the same request, binds `data` (cell names kebab-cased, as keywords),
/// `state` and `input`, evaluates `code` and prints the marker and the value of its last expression as
/// JSON; an exception's message goes after the marker on stderr.
const CLJ_HARNESS: &str = r#"
(require '[cheshire.core :as json])
(def marker (first *command-line-args*))
(def context (json/parse-string (slurp *in*) true))
(def data (:data context))
(def state (:state context))
(def input (:input context))
(try
  (let [result (load-string (:code context))]
    (println)
    (println marker)
    (print (json/generate-string result))
    (flush))
  (catch Throwable e
    (binding [*out* *err*]
      (println)
      (println (str marker (json/generate-string (str (.getSimpleName (class e)) ": " (ex-message e))))))
    (System/exit 1)))
"#;

/// A data-cell runtime: its tool name, program, what it is called and how to install it.
#[derive(Debug, Clone, Copy)]
struct Runtime {
    tool: &'static str,
    program: &'static str,
    language: &'static str,
    install: &'static str,
    /// The tool's description for the model.
    description: &'static str,
    /// How the code gives its answer (the `code` parameter's description).
    answer: &'static str,
}

const NODE: Runtime = Runtime {
    tool: "js_data",
    program: "node",
    language: "JavaScript",
    install: "install Node.js (`node`, https://nodejs.org, or your distribution's `nodejs` package) on this machine's PATH",
    description: "Run JavaScript (Node.js) that assigns `result`; `data.<cell>` (earlier cells' rows), `state` and `input` are in scope.",
    answer: "assign the answer to `result`.",
};

const BABASHKA: Runtime = Runtime {
    tool: "clojure_data",
    program: "bb",
    language: "Clojure",
    install: "install babashka (`bb`, https://babashka.org, e.g. `bash < <(curl -s https://raw.githubusercontent.com/babashka/babashka/master/install)`) on this machine's PATH",
    description: "Run Clojure (babashka) whose last expression is the result; `data` (earlier cells' rows, kebab-case keywords), `state` and `input` are in scope.",
    answer: "the value of the last expression is the answer.",
};

impl Runtime {
    /// The program on `PATH`, or the "not configured" message.
    fn find(&self) -> Result<PathBuf, String> {
        // Without PATH, process spawning searches `/bin:/usr/bin` (execvp's default): so does this.
        let paths = std::env::var_os("PATH").unwrap_or_else(|| "/bin:/usr/bin".into());
        std::env::split_paths(&paths)
            .map(|dir| dir.join(self.program))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                format!(
                    "not configured: `{}` runs {} with `{}`, which is not on PATH; {}",
                    self.tool, self.language, self.program, self.install
                )
            })
    }
}

/// The earlier cells' outputs as the code sees them (LARS's `_prepare_inputs_for_polyglot`): a table
/// as its rows, a `python_data`-style output as its `result`, anything else as it is. `kebab` renames
/// `raw_customers` to `raw-customers` (Clojure keywords).
fn polyglot_data(outputs: &Map<String, Value>, kebab: bool) -> Value {
    let mut data = Map::new();
    for (name, out) in outputs {
        let value = match out {
            Value::Object(m) if m.get("rows").is_some_and(Value::is_array) => m["rows"].clone(),
            Value::Object(m) if m.contains_key("result") => m["result"].clone(),
            other => other.clone(),
        };
        let key = if kebab {
            name.replace('_', "-")
        } else {
            name.clone()
        };
        data.insert(key, value);
    }
    Value::Object(data)
}

/// The `timeout` argument (seconds), bounded.
fn timeout_arg(args: &Value) -> Result<Option<Duration>, ToolError> {
    match args.get("timeout") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(s) if (1..=MAX_TIMEOUT_SECONDS).contains(&s) => Ok(Some(Duration::from_secs(s))),
            _ => Err(ToolError::InvalidArguments(format!(
                "`timeout` must be a whole number of seconds from 1 to {MAX_TIMEOUT_SECONDS}"
            ))),
        },
    }
}

/// Run `code` with `runtime`; returns the result value and what the code printed.
async fn run_code(
    runtime: Runtime,
    args: &Value,
    ctx: &ToolContext,
    default: Duration,
) -> Result<Value, ToolError> {
    let code = str_arg(args, "code")?;
    let timeout = timeout_arg(args)?.or(ctx.timeout).unwrap_or(default);
    let program = runtime.find().map_err(|message| ToolError::Sandbox {
        code: rvbbit_core::codes::E_UNSUPPORTED,
        message,
    })?;
    let kebab = runtime.program == BABASHKA.program;
    let request = json!({
        "code": code,
        "data": polyglot_data(&ctx.outputs, kebab),
        "state": state_of(ctx)?,
        "input": ctx.input,
    });
    let mut cmd = Command::new(&program);
    if kebab {
        cmd.arg("-e").arg(CLJ_HARNESS).arg(MARKER);
    } else {
        // V8's JIT reserves about 800 MiB of address space at start, above the sandbox's default
        // RLIMIT_AS (512 MiB): sandboxed, node runs interpreted so the memory limit stays meaningful.
        if ctx.sandbox.is_some() {
            cmd.arg("--jitless");
        }
        cmd.arg("-e").arg(JS_HARNESS).arg(MARKER);
    }
    ctx.process_env(&mut cmd);
    let done = super::run_process(
        ctx,
        cmd,
        request.to_string().into_bytes(),
        Some(timeout),
        &[program],
    )
    .await?;
    if done.code != 0 {
        return Err(ToolError::Failed(failure_message(
            runtime,
            &done.stderr,
            done.code,
        )));
    }
    let Some((printed, result)) = done.stdout.rsplit_once(MARKER) else {
        return Err(ToolError::Failed(if done.truncated {
            format!(
                "what the {} code printed passed the output limit before its result, so the result was cut off; print less",
                runtime.language
            )
        } else {
            format!(
                "{} produced no result (the process was cut short)",
                runtime.language
            )
        }));
    };
    let result: Value = serde_json::from_str(result.trim())
        .map_err(|e| ToolError::Failed(format!("the {} result is not JSON: {e}", runtime.language)))?;
    let mut out = data_output(result);
    let printed = printed.trim_end_matches('\n');
    if !printed.trim().is_empty() {
        out["stdout"] = json!(printed);
    }
    Ok(out)
}

/// The error of a failed run: the harness's message after the marker, else the last stderr line.
fn failure_message(runtime: Runtime, stderr: &str, code: i32) -> String {
    if let Some((_, after)) = stderr.rsplit_once(MARKER)
        && let Ok(Value::String(message)) = serde_json::from_str(after.lines().next().unwrap_or_default())
    {
        return format!("{} error: {message}", runtime.language);
    }
    let last = stderr
        .trim()
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("(no stderr)");
    format!("{} exited with code {code}: {last}", runtime.program)
}

fn params(language: &str, how: &str) -> Value {
    json!({
        "type": "object",
        "properties": {
            "code": {"type": "string", "description": format!("{language} code; {how}")},
            "timeout": {"type": "integer", "minimum": 1, "maximum": MAX_TIMEOUT_SECONDS, "description": "Seconds before the process is killed (default 30)."}
        },
        "required": ["code"]
    })
}

/// A data cell in another language: `js_data(code, timeout?)` ([`CodeData::javascript`]: Node.js, `data.<cell>` holds
/// earlier cells' rows, the code assigns `result`) and `clojure_data(code, timeout?)` ([`CodeData::clojure`]:
/// babashka, `(:cell-name data)` with names kebab-cased, the last expression is the result). Returns
/// `python_data`'s shape (`rows`/`columns`/`row_count` for a list of objects), plus `stdout` when the
/// code printed.
#[derive(Debug)]
pub struct CodeData(&'static Runtime);

impl CodeData {
    /// `js_data`: JavaScript with Node.js.
    pub fn javascript() -> Self {
        CodeData(&NODE)
    }

    /// `clojure_data`: Clojure with babashka.
    pub fn clojure() -> Self {
        CodeData(&BABASHKA)
    }
}

#[async_trait]
impl Tool for CodeData {
    fn name(&self) -> &str {
        self.0.tool
    }
    fn description(&self) -> &str {
        self.0.description
    }
    fn parameters(&self) -> Value {
        params(self.0.language, self.0.answer)
    }
    fn compute(&self) -> bool {
        true
    }
    fn side_effect(&self) -> SideEffect {
        SideEffect::Irreversible
    }
    fn default_timeout(&self) -> Option<Duration> {
        Some(Duration::from_secs(30))
    }
    fn unavailable(&self) -> Option<String> {
        self.0.find().err()
    }
    async fn execute(&self, args: Value, ctx: &ToolContext) -> Result<Value, ToolError> {
        run_code(*self.0, &args, ctx, Duration::from_secs(30)).await
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn earlier_outputs_reach_the_code_as_rows_results_or_themselves() {
        let outputs = json!({
            "raw_rows": {"rows": [{"a": 1}], "columns": ["a"], "row_count": 1},
            "py": {"result": {"x": 2}, "type": "dict"},
            "text": "hello"
        });
        let Value::Object(outputs) = outputs else {
            unreachable!()
        };
        assert_eq!(
            polyglot_data(&outputs, false),
            json!({"raw_rows": [{"a": 1}], "py": {"x": 2}, "text": "hello"})
        );
        assert_eq!(polyglot_data(&outputs, true)["raw-rows"], json!([{"a": 1}]));
    }

    #[test]
    fn the_timeout_argument_is_bounded() {
        assert_eq!(timeout_arg(&json!({})).unwrap(), None);
        assert_eq!(
            timeout_arg(&json!({"timeout": 5})).unwrap(),
            Some(Duration::from_secs(5))
        );
        assert!(timeout_arg(&json!({"timeout": 0})).is_err());
        assert!(timeout_arg(&json!({"timeout": 99_999})).is_err());
    }

    #[test]
    fn a_failure_reports_the_harness_message_else_the_last_stderr_line() {
        let stderr = format!("noise\n{MARKER}\"TypeError: x is not a function (line 2 of the code)\"\n");
        assert_eq!(
            failure_message(NODE, &stderr, 1),
            "JavaScript error: TypeError: x is not a function (line 2 of the code)"
        );
        assert_eq!(
            failure_message(NODE, "boom\n\n", 2),
            "node exited with code 2: boom"
        );
    }
}
