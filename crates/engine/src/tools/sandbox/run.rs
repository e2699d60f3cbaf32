//! Running a sandboxed command: its output drained (the first `output_kb` kept of each stream), the
//! whole sandbox killed at the wall-clock limit, and a failure that reached a limit named with its code
//! (RVB-B012 memory, RVB-B013 wall-clock time, RVB-B014 processes).

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use rvbbit_core::codes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use super::{Limits, Scope};
use crate::tools::ToolError;
use crate::tools::process::{Finished, kill_group};

/// How long the output of a killed sandbox is still read (its pipes close when its namespace dies).
const DRAIN_AFTER_KILL: Duration = Duration::from_secs(2);

/// Run `inner` in the sandbox of `scope`, `stdin` fed to it, with the work directory `work_dir` and the
/// `read_only` paths. `timeout` is the tool's own time limit (a plain [`ToolError::Timeout`] when it
/// comes first); the sandbox's wall-clock limit is RVB-B013.
///
/// # Errors
/// [`ToolError::Sandbox`] with RVB-B010 (cannot start), RVB-B011 (a limit above its ceiling),
/// RVB-B012, RVB-B013 or RVB-B014 (a limit reached); [`ToolError::Timeout`] for the tool's own limit.
pub(crate) async fn run(
    scope: &Scope,
    inner: Command,
    stdin: Vec<u8>,
    timeout: Option<Duration>,
    work_dir: &std::path::Path,
    read_only: &[PathBuf],
) -> Result<Finished, ToolError> {
    let limits = scope
        .sandbox
        .limits_for(&scope.cell, scope.block.as_ref())
        .map_err(|e| ToolError::Sandbox {
            code: e.code,
            message: format!("{}; {}", e.message, e.hint),
        })?;
    let prepared = scope
        .sandbox
        .wrap(&inner, work_dir, read_only, &limits)
        .map_err(|e| unavailable(&e))?;
    let mut cmd = prepared.command;
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0);
    let mut child = cmd
        .spawn()
        .map_err(|e| unavailable(&format!("cannot start bubblewrap: {e}")))?;
    let mut guard = Guard(child.id());
    let cap = usize::try_from(limits.output_kb.saturating_mul(1024)).unwrap_or(usize::MAX);
    let out = tokio::spawn(drain(child.stdout.take(), cap));
    let err = tokio::spawn(drain(child.stderr.take(), cap));
    if let Some(mut s) = child.stdin.take() {
        tokio::spawn(async move {
            // A script that does not read stdin closes it early; that is not an error.
            let _ = s.write_all(&stdin).await;
        });
    }
    let wall = Duration::from_secs(limits.wall_seconds);
    let tool_first = timeout.is_some_and(|t| t < wall);
    let limit = timeout.map_or(wall, |t| t.min(wall));
    let status = match tokio::time::timeout(limit, child.wait()).await {
        Ok(status) => status.map_err(|e| ToolError::Failed(format!("cannot wait for the sandbox: {e}")))?,
        Err(_) => {
            kill_group(guard.0.take());
            // The group kill above already ended it; this only reaps bubblewrap (or finds it gone).
            let _ = child.kill().await;
            if tool_first {
                return Err(ToolError::Timeout(limit));
            }
            let (_, stderr) = collect(out, err, true).await;
            return Err(wall_reached(&limits, &stderr.0));
        }
    };
    // The sandbox's init is gone, and with it every process of its PID namespace; nothing to kill.
    guard.0 = None;
    let ((stdout, t1), (stderr, t2)) = collect(out, err, false).await;
    let code = status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(-1);
    if code == 1 && stderr.starts_with("bwrap: ") {
        return Err(unavailable(stderr.trim()));
    }
    if let Some(e) = classify(&limits, code, &stderr) {
        return Err(e);
    }
    Ok(Finished {
        stdout,
        stderr,
        code,
        truncated: t1 || t2,
    })
}

type Drained = (String, bool);

/// The two streams' text; after a kill, waiting at most [`DRAIN_AFTER_KILL`].
async fn collect(
    out: tokio::task::JoinHandle<Drained>,
    err: tokio::task::JoinHandle<Drained>,
    killed: bool,
) -> (Drained, Drained) {
    let both = async {
        let o = out.await.unwrap_or_default();
        let e = err.await.unwrap_or_default();
        (o, e)
    };
    if killed {
        tokio::time::timeout(DRAIN_AFTER_KILL, both)
            .await
            .unwrap_or_default()
    } else {
        both.await
    }
}

/// Read `reader` to its end, keeping the first `cap` bytes; reading goes on past the cap (so the
/// process never blocks on a full pipe) and only flags the rest as dropped.
async fn drain<R: tokio::io::AsyncRead + Unpin>(reader: Option<R>, cap: usize) -> Drained {
    let Some(mut reader) = reader else {
        return (String::new(), false);
    };
    let mut kept = Vec::new();
    let mut truncated = false;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = cap.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
                truncated |= n > room;
            }
        }
    }
    (String::from_utf8_lossy(&kept).into_owned(), truncated)
}

/// The limit a finished sandbox reached, from its exit status and what it printed.
fn classify(limits: &Limits, code: i32, stderr: &str) -> Option<ToolError> {
    if fork_failed(stderr) {
        return Some(ToolError::Sandbox {
            code: codes::B_SANDBOX_PROCESSES,
            message: format!(
                "the script tried to start more than {} processes (sandbox process limit: fork failed); raise it with `sandbox: {{processes: N}}` on the cell or `--sandbox-processes N` on the batch, up to `sandbox.max_processes`",
                limits.processes
            ),
        });
    }
    let signal = match code {
        134 => Some("SIGABRT"),
        137 => Some("SIGKILL"),
        139 => Some("SIGSEGV"),
        _ => None,
    };
    let out_of_memory = [
        "MemoryError",
        "Cannot allocate memory",
        "cannot allocate memory",
        "xmalloc: cannot allocate",
        "std::bad_alloc",
        "out of memory",
    ]
    .iter()
    .any(|s| stderr.contains(s));
    if code != 0 && (out_of_memory || signal.is_some()) {
        let how = match signal {
            Some(sig) if !out_of_memory => {
                format!("was killed by {sig}, which under the sandbox means it most likely")
            }
            _ => "failed to allocate memory: it".to_owned(),
        };
        return Some(ToolError::Sandbox {
            code: codes::B_SANDBOX_MEMORY,
            message: format!(
                "the script {how} used more than {} MiB (sandbox memory limit); raise it with `sandbox: {{memory_mib: N}}` on the cell or `--sandbox-memory-mib N` on the batch, up to `sandbox.max_memory_mib`",
                limits.memory_mib
            ),
        });
    }
    None
}

fn fork_failed(stderr: &str) -> bool {
    stderr.contains("fork: Resource temporarily unavailable")
        || stderr.contains("fork: retry: Resource temporarily unavailable")
        || stderr.contains("Cannot fork")
        || (stderr.contains("BlockingIOError") && stderr.contains("Resource temporarily unavailable"))
}

fn wall_reached(limits: &Limits, stderr: &str) -> ToolError {
    if fork_failed(stderr)
        && let Some(e) = classify(limits, 1, stderr)
    {
        return e;
    }
    ToolError::Sandbox {
        code: codes::B_SANDBOX_WALL,
        message: format!(
            "the script ran longer than {} s (sandbox wall-clock limit) and the sandbox was killed; raise it with `sandbox: {{wall_seconds: N}}` on the cell or `--sandbox-wall-seconds N` on the batch, up to `sandbox.max_wall_seconds`",
            limits.wall_seconds
        ),
    }
}

fn unavailable(why: &str) -> ToolError {
    let e = super::start_failed(why);
    ToolError::Sandbox {
        code: e.code,
        message: format!("{}; {}", e.message, e.hint),
    }
}

/// Kills the sandbox (bubblewrap's process group; its namespace dies with it) on drop unless disarmed.
struct Guard(Option<u32>);

impl Drop for Guard {
    fn drop(&mut self) {
        kill_group(self.0.take());
    }
}
