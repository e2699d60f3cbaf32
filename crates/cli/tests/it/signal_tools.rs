//! `await_signal` and `fire_signal` (issue 19): a run waits on a named signal in the project's store
//! until another process fires it (a second run's `fire_signal`, or `rvbbit signal send`), routes on
//! `fired`/`timeout`, and bad arguments are tool errors.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use tempfile::TempDir;

use crate::run_command::JsonOutcome;
use crate::rvbbit;

const WAITER: &str = r#"cascade_id: waiter
inputs_schema:
  timeout: how long to wait
cells:
- name: wait
  tool: await_signal
  inputs:
    signal_name: data_ready
    timeout: "{{ input.timeout }}"
    description: waiting for the upstream data
  handoffs: [done, late]
  routing:
    fired: done
    timeout: late
- name: late
  tool: python_data
  inputs:
    code: "result = 'nobody fired'"
  handoffs: [done]
- name: done
  tool: python_data
  inputs:
    code: "result = {'status': outputs['wait']['status'], 'payload': outputs['wait']['payload']}"
"#;

const FIRER: &str = r#"cascade_id: firer
cells:
- name: fire
  tool: fire_signal
  inputs:
    signal_name: data_ready
    payload: '{"rows": 3}'
"#;

/// A waiting run: the child and the file its stderr goes to (read when it fails).
struct Waiter {
    child: Child,
    stderr: std::path::PathBuf,
}

fn start_waiter(dir: &Path, session: &str, timeout: &str) -> Waiter {
    let stderr = dir.join(format!("{session}.stderr"));
    let child = rvbbit(dir)
        .args(["--output", "json", "run", "waiter.yaml", "--session", session])
        .args(["--input", &json!({"timeout": timeout}).to_string()])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    Waiter { child, stderr }
}

fn finish(waiter: Waiter) -> (Option<i32>, JsonOutcome) {
    let out = waiter.child.wait_with_output().unwrap();
    let doc = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            std::fs::read_to_string(&waiter.stderr).unwrap_or_default()
        )
    });
    (out.status.code(), doc)
}

/// Wait until `session`'s signal is registered as waiting (the waiter registers it when its cell
/// starts), reading the store with `rvbbit signal list`; a waiter that exits first fails the test with
/// its own output, so a run that could not wait is not mistaken for a fire that went nowhere.
fn wait_until_waiting(dir: &Path, session: &str, waiter: &mut Waiter) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = rvbbit(dir)
            .args([
                "--output",
                "json",
                "signal",
                "list",
                "--waiting",
                "--session",
                session,
            ])
            .output()
            .unwrap();
        let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or(json!([]));
        if rows.as_array().is_some_and(|rows| !rows.is_empty()) {
            return;
        }
        if let Some(status) = waiter.child.try_wait().unwrap() {
            let mut stdout = String::new();
            if let Some(pipe) = waiter.child.stdout.as_mut() {
                std::io::Read::read_to_string(pipe, &mut stdout).unwrap();
            }
            panic!(
                "the waiter {session} exited ({status}) before waiting: {stdout}\nstderr: {}",
                std::fs::read_to_string(&waiter.stderr).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "{session} never registered its signal in {}",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_run_waits_for_a_signal_another_run_fires_and_routes_on_fired_or_timeout() {
    let dir = TempDir::new().unwrap();
    std::fs::write(dir.path().join("waiter.yaml"), WAITER).unwrap();
    std::fs::write(dir.path().join("firer.yaml"), FIRER).unwrap();
    // Run one, fired by another run's `fire_signal` (a JSON-text payload arrives as JSON).
    let mut waiter = start_waiter(dir.path(), "waiter-one", "60s");
    wait_until_waiting(dir.path(), "waiter-one", &mut waiter);
    let out = rvbbit(dir.path())
        .args(["--output", "json", "run", "firer.yaml"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let fired: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(fired["output"]["fired"], 1, "{fired}");
    assert_eq!(fired["output"]["sessions"], json!(["waiter-one"]));
    let (code, doc) = finish(waiter);
    assert_eq!(code, Some(0), "{:?}", doc.message);
    assert_eq!(
        doc.output["result"],
        json!({"status": "fired", "payload": {"rows": 3}})
    );
    assert!(!doc.outputs.contains_key("late"));
    assert_eq!(doc.outputs["wait"]["source"], json!(fired["session_id"]));

    // Run two, fired from the command line.
    let mut waiter = start_waiter(dir.path(), "waiter-two", "60s");
    wait_until_waiting(dir.path(), "waiter-two", &mut waiter);
    let out = rvbbit(dir.path())
        .args(["signal", "send", "waiter-two", "data_ready", "--value", r#""go""#])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, doc) = finish(waiter);
    assert_eq!(code, Some(0), "{:?}", doc.message);
    assert_eq!(doc.output["result"], json!({"status": "fired", "payload": "go"}));

    // Run three: nobody fires; the wait ends as `timeout` and routes there. A fire now wakes nobody.
    let waiter = start_waiter(dir.path(), "waiter-three", "1s");
    let (code, doc) = finish(waiter);
    assert_eq!(code, Some(0), "{:?}", doc.message);
    assert_eq!(doc.outputs["late"]["result"], "nobody fired");
    assert_eq!(
        doc.output["result"],
        json!({"status": "timeout", "payload": null})
    );
    let out = rvbbit(dir.path())
        .args(["--output", "json", "run", "firer.yaml"])
        .output()
        .unwrap();
    let doc: JsonOutcome = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc.output["fired"], 0);
    assert_eq!(doc.output["_route"], "no_waiters");
}

#[test]
fn bad_signal_arguments_fail_the_cell_before_anything_waits() {
    let dir = TempDir::new().unwrap();
    for (name, inputs, expected) in [
        ("bad_name", "signal_name: 'a b'", "`signal_name` must be"),
        (
            "bad_timeout",
            "signal_name: x\n    timeout: 40d",
            "`timeout` must be a duration",
        ),
    ] {
        let text =
            format!("cascade_id: {name}\ncells:\n- name: w\n  tool: await_signal\n  inputs:\n    {inputs}\n");
        std::fs::write(dir.path().join(format!("{name}.yaml")), text).unwrap();
        let out = rvbbit(dir.path())
            .args(["--output", "json", "run", &format!("{name}.yaml")])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(3),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let doc: JsonOutcome = serde_json::from_slice(&out.stdout).unwrap();
        let message = doc.message.unwrap_or_default();
        assert!(message.contains(expected), "{message}");
    }
}
