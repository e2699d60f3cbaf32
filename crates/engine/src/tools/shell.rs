//! `linux_shell` and `bash_data`: shell commands in a subprocess.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};
use tokio::process::Command;

use super::{SideEffect, Tool, ToolContext, ToolError, str_arg};
use crate::table;

/// `linux_shell(command)`: run a command with `bash -c` in the working directory; returns
/// `{stdout, stderr, returncode, _route}` (`_route` is `error` on a non-zero exit).
#[derive(Debug)]
pub struct LinuxShell;

#[async_trait]
impl Tool for LinuxShell {
    fn name(&self) -> &str {
        "linux_shell"
    }
    fn description(&self) -> &str {
        "Run a shell command with bash and return its stdout, stderr and exit code."
    }
    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": {"command": {"type": "string", "description": "The bash command line."}},
            "required": ["command"]
        })
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
        let command = str_arg(&args, "command")?;
        let mut cmd = Command::new("bash");
        cmd.arg("-c").arg(command);
        ctx.process_env(&mut cmd);
        let done =
            super::run_process(ctx, cmd, Vec::new(), ctx.timeout.or(self.default_timeout()), &[]).await?;
        Ok(json!({
            "stdout": done.stdout,
            "stderr": done.stderr,
            "returncode": done.code,
            "truncated": done.truncated,
            "_route": if done.code == 0 { "success" } else { "error" },
        }))
    }
}

/// `bash_data(script, input_table?, output_format=auto, timeout="5m", env?, persist_session=true)`: run
/// a script with bash; its stdout is parsed as a table (`csv`, `json`, `jsonl` or `auto`) and returned as
/// `{rows, columns, row_count, _route}`.
///
/// stdin carries the previous cell's table as CSV (or the table of the cell named by `input_table`).
/// With `persist_session` (the default) exported variables, functions and the working directory carry
/// over to the next `bash_data` call of the same session; the first call starts in the session directory.
/// A non-zero exit is a tool failure (routable with `on_error`).
#[derive(Debug)]
pub struct BashData;

const BASH_STATE: &str = ".rvbbit_bash_state";

#[async_trait]
impl Tool for BashData {
    fn name(&self) -> &str {
        "bash_data"
    }
    fn description(&self) -> &str {
        "Run a bash script and parse its stdout (CSV, JSON or JSON Lines) into a table."
    }
    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "script": {"type": "string"},
                "input_table": {"type": "string"},
                "output_format": {"enum": ["csv", "json", "jsonl", "auto"]},
                "timeout": {"type": "string"},
                "env": {"type": "object"},
                "persist_session": {"type": "boolean"}
            },
            "required": ["script"]
        })
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
        let script = str_arg(&args, "script")?;
        let format = args
            .get("output_format")
            .and_then(Value::as_str)
            .unwrap_or("auto");
        let persist = args
            .get("persist_session")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        let timeout = match args.get("timeout").and_then(Value::as_str) {
            Some(t) => Some(
                rvbbit_cascade::model::parse_duration(t)
                    .map(Duration::from_secs_f64)
                    .ok_or_else(|| {
                        ToolError::InvalidArguments(format!("`timeout: {t}` is not a duration"))
                    })?,
            ),
            None => None,
        };
        let stdin_table = match args.get("input_table").and_then(Value::as_str) {
            Some(name) => ctx.outputs.get(name.trim_start_matches('_')).cloned(),
            None => ctx.previous.clone(),
        };
        let stdin = stdin_table.as_ref().map(table::to_csv).unwrap_or_default();
        tokio::fs::create_dir_all(&ctx.session_dir)
            .await
            .map_err(|e| ToolError::Failed(format!("cannot create {}: {e}", ctx.session_dir.display())))?;
        let wrapped = if persist {
            format!(
                "__rvb_state={state:?}\n\
                 if [ -f \"$__rvb_state\" ]; then . \"$__rvb_state\" 2>/dev/null; fi\n\
                 __rvb_save() {{ __rvb_rc=$?; {{ declare -px; declare -f; printf 'cd %q\\n' \"$PWD\"; }} > \"$__rvb_state.tmp\" 2>/dev/null && mv -f \"$__rvb_state.tmp\" \"$__rvb_state\"; exit $__rvb_rc; }}\n\
                 trap __rvb_save EXIT\n{script}\n",
                state = ctx.session_dir.join(BASH_STATE).display().to_string()
            )
        } else {
            script.to_owned()
        };
        let mut cmd = Command::new("bash");
        cmd.arg("-c").arg(wrapped).current_dir(&ctx.session_dir);
        ctx.process_env(&mut cmd);
        cmd.env("SESSION_DIR", &ctx.session_dir)
            .env("PHASE_NAME", &ctx.cell_name)
            .env("CELL_NAME", &ctx.cell_name);
        if let Some(Value::Object(env)) = args.get("env") {
            for (k, v) in env {
                let v = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                cmd.env(k, v);
            }
        }
        let done = super::run_process(
            ctx,
            cmd,
            stdin.into_bytes(),
            timeout.or(ctx.timeout).or(self.default_timeout()),
            &[],
        )
        .await?;
        if done.code != 0 {
            return Err(ToolError::Failed(format!(
                "the script exited with code {}: {}",
                done.code,
                last_lines(&done.stderr, 5)
            )));
        }
        let mut result = table::parse(&done.stdout, format).map_err(ToolError::Failed)?;
        if let Value::Object(m) = &mut result {
            m.insert("_route".into(), json!("success"));
            if done.truncated {
                m.insert("truncated".into(), json!(true));
            }
        }
        Ok(result)
    }
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(n);
    let tail = lines[start..].join("\n");
    if tail.is_empty() {
        "(no stderr)".into()
    } else {
        tail
    }
}
