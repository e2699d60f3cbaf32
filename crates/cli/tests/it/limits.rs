//! Hostile inputs against `[limits]` through the real binary (issue 13): a YAML bomb under
//! `rvbbit validate`, a run stuck in a heavy template ended by SIGTERM/SIGINT.

use std::process::Stdio;
use std::time::{Duration, Instant};

use rvbbit_core::{EventKind, SessionStatus};
use tempfile::TempDir;

use crate::run_command::{JsonOutcome, stored, write};
use crate::rvbbit;

/// Issue 13: a 592-byte file grew to 22.5 GB under `rvbbit validate`; now it is refused at once.
#[test]
fn issue_13_a_yaml_bomb_exits_one_with_v024_quickly() {
    let dir = TempDir::new().unwrap();
    let mut text = String::from("cascade_id: bomb\nl0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..9 {
        let refs = vec![format!("*l{}", i - 1); 9].join(", ");
        text.push_str(&format!("l{i}: &l{i} [{refs}]\n"));
    }
    text.push_str("cells: []\n");
    std::fs::write(dir.path().join("bomb.yaml"), &text).unwrap();
    let started = Instant::now();
    let out = rvbbit(dir.path())
        .args(["validate", "bomb.yaml"])
        .output()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(1));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(all.contains("RVB-V024"), "{all}");
    assert!(all.contains("limits.yaml_nodes"), "{all}");
    // Raising the limit in rvbbit.toml is honoured: a tighter alias budget trips first.
    std::fs::write(dir.path().join("rvbbit.toml"), "[limits]\nyaml_aliases = 3\n").unwrap();
    let out = rvbbit(dir.path())
        .args(["validate", "bomb.yaml"])
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(all.contains("limits.yaml_aliases = 3"), "{all}");
}

/// A cascade that touches MARKER, then renders a template of 10^12 loop iterations.
const HEAVY: &str = r#"cascade_id: heavy
cells:
  - name: mark
    tool: linux_shell
    inputs: {command: "touch MARKER"}
  - name: spin
    tool: set_state
    inputs:
      key: x
      value: "{% for i in range(10000) %}{% for j in range(10000) %}{% for k in range(10000) %}{% endfor %}{% endfor %}{% endfor %}"
"#;

/// Issue 13: a run stuck in a heavy template ignored SIGTERM/SIGINT; now it ends at once, `cancelled`.
fn interrupt_heavy_template(signal: rustix::process::Signal, session: &str, exit: i32) {
    let dir = TempDir::new().unwrap();
    let marker = dir.path().join("started");
    let file = write(
        dir.path(),
        "heavy.yaml",
        &HEAVY.replace("MARKER", &marker.display().to_string()),
    );
    // Fuel for hours: only the signal can end this run in time.
    std::fs::write(
        dir.path().join("rvbbit.toml"),
        "[limits]\ntemplate_fuel = 1000000000000\n",
    )
    .unwrap();
    let mut child = rvbbit(dir.path())
        .args(["--output", "json", "run", &file, "--session", session])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !marker.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the run never reached the template"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    let pid = rustix::process::Pid::from_raw(i32::try_from(child.id()).unwrap()).unwrap();
    rustix::process::kill_process(pid, signal).unwrap();
    let signalled = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if signalled.elapsed() > Duration::from_secs(20) {
            let _ = child.kill(); // the test fails below either way; do not leave the process spinning
            panic!("the run ignored the signal for 20 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(exit),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: JsonOutcome = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc.status, "cancelled");
    let (status, kinds) = stored(dir.path(), session);
    assert_eq!(status, SessionStatus::Cancelled);
    assert_eq!(kinds.last(), Some(&EventKind::CascadeCancelled), "{kinds:?}");
}

#[test]
fn issue_13_sigterm_ends_a_run_stuck_in_a_template_with_143() {
    interrupt_heavy_template(rustix::process::Signal::TERM, "heavy-term", 143);
}

#[test]
fn issue_13_sigint_ends_a_run_stuck_in_a_template_with_130() {
    interrupt_heavy_template(rustix::process::Signal::INT, "heavy-int", 130);
}
