//! Running a subprocess with a time limit and an output cap.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use super::ToolError;

/// Most bytes kept of a stream (stdout or stderr); the rest is dropped and `truncated` set.
pub(crate) const OUTPUT_CAP: usize = 4 * 1024 * 1024;

/// What a finished process produced.
#[derive(Debug)]
pub(crate) struct Finished {
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    pub(crate) code: i32,
    pub(crate) truncated: bool,
}

/// Run `cmd` (stdin fed from `stdin`), killing its whole process group after `timeout`.
pub(crate) async fn run(
    mut cmd: Command,
    stdin: Vec<u8>,
    timeout: Option<Duration>,
) -> Result<Finished, ToolError> {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0);
    let mut child = cmd
        .spawn()
        .map_err(|e| ToolError::Failed(format!("cannot start the process: {e}")))?;
    let pid = child.id();
    // Kills the whole group if this future is dropped (a cancelled run) or times out.
    let mut guard = GroupGuard(pid);
    let mut child_stdin = child.stdin.take();
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let work = async {
        let feed = async {
            if let Some(mut s) = child_stdin.take() {
                // A script that does not read stdin closes it early; that is not an error.
                let _ = s.write_all(&stdin).await;
            }
        };
        let read_out = read_capped(out.take());
        let read_err = read_capped(err.take());
        let ((), (stdout, t1), (stderr, t2)) = tokio::join!(feed, read_out, read_err);
        let status = child
            .wait()
            .await
            .map_err(|e| ToolError::Failed(format!("cannot wait for the process: {e}")))?;
        Ok::<_, ToolError>(Finished {
            stdout,
            stderr,
            code: status.code().unwrap_or(-1),
            truncated: t1 || t2,
        })
    };
    let result = match timeout {
        None => work.await,
        Some(limit) => match tokio::time::timeout(limit, work).await {
            Ok(r) => r,
            Err(_) => Err(ToolError::Timeout(limit)),
        },
    };
    if !matches!(result, Err(ToolError::Timeout(_))) {
        // The leader exited on its own; its group is left alone (background jobs a script started on purpose).
        guard.0 = None;
    }
    result
}

/// Kills the process group on drop unless disarmed.
struct GroupGuard(Option<u32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        kill_group(self.0.take());
    }
}

async fn read_capped<R: tokio::io::AsyncRead + Unpin>(reader: Option<R>) -> (String, bool) {
    let Some(reader) = reader else {
        return (String::new(), false);
    };
    let mut buf = Vec::new();
    let mut limited = reader.take(OUTPUT_CAP as u64 + 1);
    // A read error leaves what was read so far; the exit status tells the rest.
    let _ = limited.read_to_end(&mut buf).await;
    let truncated = buf.len() > OUTPUT_CAP;
    buf.truncate(OUTPUT_CAP);
    (String::from_utf8_lossy(&buf).into_owned(), truncated)
}

/// Kill the process group `pid` leads (the shell and everything it started).
///
/// Uses the `killpg` system call directly. Shelling out to `kill -KILL -PID` is wrong: procps-ng reads
/// `-PID` after a signal option as a second signal option and then signals far more than the group.
pub(crate) fn kill_group(pid: Option<u32>) {
    let Some(pid) = pid
        .and_then(|p| i32::try_from(p).ok())
        .and_then(rustix::process::Pid::from_raw)
    else {
        return;
    };
    // Best effort: the group may already be gone; `kill_on_drop` still kills the leader.
    let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
}
