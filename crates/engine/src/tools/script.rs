//! `run_script`: a script file run by its interpreter in the session's work directory (in the cell's
//! sandbox, when there is one), every file it leaves there returned with its content. `rvbbit exec`
//! builds a one-cell cascade around it (docs/exec.md).
//!
//! Arguments: `script` (an absolute path, mounted read-only), `command` (the interpreter and its
//! options, such as `["python3"]` or a venv's python), `args` (strings passed after the script),
//! `mounts` (absolute paths the script may read: files it was given and a venv), and the limits of the
//! files collected, `max_files` and `max_bytes`.
//!
//! A non-zero exit is RVB-B020 with the end of the script's stderr; files past the limits are RVB-B021.
//! Both fail the cell (`on_error` routes them as any tool failure).

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use rvbbit_core::codes;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::process::Command;

use super::{SideEffect, Tool, ToolContext, ToolError, str_arg};

/// The most of each limit a call may ask for, whatever its arguments say.
const CEILING_FILES: u64 = 100_000;
const CEILING_BYTES: u64 = 1024 * 1024 * 1024;
/// Most entries looked at in the work directory (files, folders, links) before giving up.
const MAX_ENTRIES: usize = 200_000;
/// Most arguments, mounts and interpreter words; most bytes of all of them together.
const MAX_ITEMS: usize = 10_000;
const MAX_ARG_BYTES: usize = 1024 * 1024;
/// How much of stderr a failure quotes.
const STDERR_TAIL: usize = 2_000;

/// `run_script(script, command, args?, mounts?, max_files?, max_bytes?)`: returns `{returncode, stdout,
/// stderr, truncated, files: [{path, size, sha256, content_base64}], _route}`.
#[derive(Debug)]
pub struct RunScript;

#[async_trait]
impl Tool for RunScript {
    fn name(&self) -> &str {
        "run_script"
    }
    fn description(&self) -> &str {
        "Run a script file with its interpreter in a private work directory; return its output and every file it wrote there."
    }
    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "script": {"type": "string", "description": "Absolute path of the script."},
                "command": {"type": "array", "items": {"type": "string"}, "description": "The interpreter and its options, e.g. [\"python3\"]."},
                "args": {"type": "array", "items": {"type": "string"}},
                "mounts": {"type": "array", "items": {"type": "string"}, "description": "Absolute paths the script may read."},
                "max_files": {"type": "integer", "minimum": 0},
                "max_bytes": {"type": "integer", "minimum": 0}
            },
            "required": ["script", "command"]
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
        let call = Call::parse(&args)?;
        std::fs::create_dir_all(&ctx.session_dir)
            .map_err(|e| ToolError::Failed(format!("cannot create the script's work directory: {e}")))?;
        let mut cmd = Command::new(&call.command[0]);
        cmd.args(&call.command[1..])
            .arg(&call.script)
            .args(&call.args)
            .current_dir(&ctx.session_dir);
        ctx.process_env(&mut cmd);
        let mut read_only = call.mounts.clone();
        read_only.push(call.script.clone());
        let timeout = ctx.timeout.or(self.default_timeout());
        let done = super::run_process(ctx, cmd, Vec::new(), timeout, &read_only).await?;
        let name = call
            .script
            .file_name()
            .map_or_else(|| "the script".into(), |n| n.to_string_lossy().into_owned());
        if done.code != 0 {
            return Err(ToolError::Sandbox {
                code: codes::B_EXEC_SCRIPT,
                message: format!(
                    "`{name}` exited with code {}; the end of its stderr: {}",
                    done.code,
                    tail(&done.stderr)
                ),
            });
        }
        let files = collect(&ctx.session_dir, call.max_files, call.max_bytes)?;
        Ok(json!({
            "returncode": done.code,
            "stdout": done.stdout,
            "stderr": done.stderr,
            "truncated": done.truncated,
            "files": files,
            "_route": "success",
        }))
    }
}

/// A checked call.
struct Call {
    script: PathBuf,
    command: Vec<String>,
    args: Vec<String>,
    mounts: Vec<PathBuf>,
    max_files: u64,
    max_bytes: u64,
}

impl Call {
    fn parse(args: &Value) -> Result<Call, ToolError> {
        let bad = |m: String| ToolError::InvalidArguments(m);
        let script = PathBuf::from(str_arg(args, "script")?);
        if !script.is_absolute() {
            return Err(bad(format!(
                "`script` must be an absolute path, not {}",
                script.display()
            )));
        }
        let command = strings(args, "command")?;
        if command.is_empty() || command[0].is_empty() {
            return Err(bad(
                "`command` must name the interpreter, such as [\"python3\"]".into()
            ));
        }
        let list = strings(args, "args")?;
        let mounts: Vec<PathBuf> = strings(args, "mounts")?.into_iter().map(PathBuf::from).collect();
        if let Some(m) = mounts.iter().find(|m| !m.is_absolute()) {
            return Err(bad(format!(
                "`mounts` must be absolute paths, not {}",
                m.display()
            )));
        }
        let count = command.len() + list.len() + mounts.len();
        let bytes: usize = command.iter().chain(&list).map(String::len).sum::<usize>()
            + mounts.iter().map(|m| m.as_os_str().len()).sum::<usize>();
        if count > MAX_ITEMS || bytes > MAX_ARG_BYTES {
            return Err(bad(format!(
                "{count} arguments and mounts of {bytes} bytes: more than {MAX_ITEMS} or {MAX_ARG_BYTES} bytes"
            )));
        }
        let limit = |key: &str, default: u64, ceiling: u64| -> Result<u64, ToolError> {
            match args.get(key) {
                None | Some(Value::Null) => Ok(default),
                Some(v) => v
                    .as_u64()
                    .filter(|n| *n <= ceiling)
                    .ok_or_else(|| bad(format!("`{key}` must be a whole number from 0 to {ceiling}"))),
            }
        };
        Ok(Call {
            script,
            command,
            args: list,
            mounts,
            max_files: limit("max_files", 1_000, CEILING_FILES)?,
            max_bytes: limit("max_bytes", 8 * 1024 * 1024, CEILING_BYTES)?,
        })
    }
}

/// The strings of the array `key` (none when it is absent).
fn strings(args: &Value, key: &str) -> Result<Vec<String>, ToolError> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| ToolError::InvalidArguments(format!("`{key}` must hold strings only")))
            })
            .collect(),
        Some(_) => Err(ToolError::InvalidArguments(format!(
            "`{key}` must be an array of strings"
        ))),
    }
}

/// The last lines of `stderr`, at most [`STDERR_TAIL`] bytes, on one line.
fn tail(stderr: &str) -> String {
    let trimmed = stderr.trim_end();
    if trimmed.is_empty() {
        return "(nothing)".into();
    }
    let mut start = trimmed.len().saturating_sub(STDERR_TAIL);
    while !trimmed.is_char_boundary(start) {
        start += 1;
    }
    let cut = if start > 0 { "…" } else { "" };
    format!("{cut}{}", trimmed[start..].replace('\n', " | "))
}

/// Every regular file under `dir` (not following links: a link the script made is skipped), as
/// `{path, size, sha256, content_base64}` sorted by path; RVB-B021 past `max_files` or `max_bytes`.
fn collect(dir: &Path, max_files: u64, max_bytes: u64) -> Result<Vec<Value>, ToolError> {
    let over = |what: String, setting: &str| ToolError::Sandbox {
        code: codes::B_EXEC_FILES,
        message: format!(
            "the script left {what} in its work directory; write fewer or smaller files, or raise `{setting}` (rvbbit.toml [exec])"
        ),
    };
    let mut found: Vec<(String, PathBuf, u64)> = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    let mut seen = 0usize;
    let mut total = 0u64;
    while let Some(folder) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            seen += 1;
            if seen > MAX_ENTRIES {
                return Err(over(
                    format!("more than {MAX_ENTRIES} entries"),
                    "exec.max_output_files",
                ));
            }
            let Ok(kind) = entry.file_type() else { continue };
            let path = entry.path();
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() {
                let Ok(rel) = path.strip_prefix(dir) else { continue };
                let Some(rel) = rel.to_str().map(str::to_owned) else {
                    continue;
                };
                let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
                total = total.saturating_add(size);
                found.push((rel, path, size));
                if found.len() as u64 > max_files {
                    return Err(over(
                        format!("more than {max_files} files"),
                        "exec.max_output_files",
                    ));
                }
                if total > max_bytes {
                    return Err(over(
                        format!("more than {max_bytes} bytes of files"),
                        "exec.max_output_bytes",
                    ));
                }
            }
        }
    }
    found.sort();
    found
        .into_iter()
        .map(|(rel, path, _)| {
            let bytes = std::fs::read(&path)
                .map_err(|e| ToolError::Failed(format!("cannot read the script's file {rel}: {e}")))?;
            Ok(json!({
                "path": rel,
                "size": bytes.len(),
                "sha256": hex::encode(Sha256::digest(&bytes)),
                "content_base64": base64::engine::general_purpose::STANDARD.encode(&bytes),
            }))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_of_stderr_is_one_bounded_line() {
        assert_eq!(tail(""), "(nothing)");
        assert_eq!(tail("a\nb\n"), "a | b");
        let long = "x".repeat(5_000);
        let t = tail(&long);
        assert!(t.starts_with('…') && t.len() <= STDERR_TAIL + '…'.len_utf8());
    }

    #[test]
    fn files_are_collected_without_following_links_and_within_limits() {
        let dir = std::env::temp_dir().join(format!("rvbbit-script-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("a.txt"), "hello").unwrap();
        std::fs::write(dir.join("sub/b.txt"), "world!").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.join("link")).unwrap();
        let files = collect(&dir, 10, 1_000).unwrap();
        let paths: Vec<&str> = files.iter().map(|f| f["path"].as_str().unwrap()).collect();
        assert_eq!(paths, vec!["a.txt", "sub/b.txt"]);
        assert_eq!(files[0]["content_base64"], "aGVsbG8=");
        assert_eq!(files[1]["size"], 6);
        let err = collect(&dir, 1, 1_000).unwrap_err();
        assert!(err.to_string().contains("RVB-B021") && err.to_string().contains("exec.max_output_files"));
        let err = collect(&dir, 10, 10).unwrap_err();
        assert!(err.to_string().contains("exec.max_output_bytes"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
