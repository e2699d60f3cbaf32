//! The cleanup every throwaway server shares: a detached shell that waits for the test process to end,
//! then stops the server and removes its directory (statics are never dropped, and a test run may be
//! killed).

use std::path::Path;
use std::process::Command;

/// Start the watchdog of the server in `dir`: once this process is gone it runs `stop` (a shell
/// command; its output is discarded), then removes `dir`. `what` names the server in a warning.
pub(crate) fn spawn(dir: &Path, stop: &str, what: &str) {
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; {stop} >/dev/null 2>&1; sleep 0.5; rm -rf '{dir}'",
        pid = std::process::id(),
        dir = dir.display()
    );
    // The watchdog is a grandchild reparented to init: nothing waits for it here.
    let spawned = Command::new("sh")
        .args(["-c", &format!("({script}) </dev/null >/dev/null 2>&1 &")])
        .status();
    if let Err(e) = spawned {
        eprintln!("testkit: the {what} watchdog did not start: {e}");
    }
}

/// The stop command of a server whose current pid is in `dir/server.pid` (it may have been restarted).
pub(crate) fn kill_pid_file(dir: &Path) -> String {
    format!("kill -9 $(cat '{}/server.pid')", dir.display())
}
