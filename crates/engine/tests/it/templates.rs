//! Templates under hostile input (issue 13): shell quoting, the fuel and output budgets, cancellation.

use std::time::{Duration, Instant};

use rvbbit_core::SessionStatus;
use rvbbit_core::config::LimitsConfig;
use rvbbit_engine::{CancellationToken, RunRequest};
use serde_json::json;

use crate::support::{Harness, yaml};

fn shell_cascade(command: &str) -> rvbbit_cascade::model::Cascade {
    yaml(&format!(
        "cascade_id: quoting\ncells:\n  - name: greet\n    tool: linux_shell\n    inputs:\n      command: |\n        {command}\n"
    ))
}

/// Issue 13: `x'; touch MARKER; echo '` runs `touch` unquoted and stays text once quoted with `| q`.
#[tokio::test]
async fn issue_13_shell_quote_keeps_an_injection_as_text() {
    let h = Harness::new().await;
    let dir = tempfile::TempDir::new().unwrap();
    let marker = dir.path().join("injected");
    let input = json!({"x": format!("x'; touch {}; echo '", marker.display())});

    let quoted = shell_cascade("echo {{ input.x | q }}");
    let out = h.run(&h.engine(), quoted, input.clone()).await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    assert!(!marker.exists(), "the quoted input ran a command");
    let stdout = out.output["stdout"].as_str().unwrap();
    assert!(stdout.contains("; touch "), "{stdout}");

    // The same input unquoted does run `touch`: the marker proves the test above can fail.
    let unquoted = shell_cascade("echo '{{ input.x }}'");
    let out = h.run(&h.engine(), unquoted, input).await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    assert!(marker.exists(), "the unquoted injection should have run");
}

fn heavy_cascade(on_error: bool) -> rvbbit_cascade::model::Cascade {
    let route = if on_error { "    on_error: recover\n" } else { "" };
    yaml(&format!(
        r#"cascade_id: heavy
cells:
  - name: spin
    tool: set_state
    inputs:
      key: x
      value: "{{% for i in range(10000) %}}{{% for j in range(10000) %}}{{% for k in range(10000) %}}{{% endfor %}}{{% endfor %}}{{% endfor %}}"
{route}  - name: recover
    tool: set_state
    inputs: {{key: recovered, value: "{{{{ state.last_deterministic_error.error }}}}"}}
"#
    ))
}

#[tokio::test]
async fn template_fuel_ends_the_cell_with_e012_and_on_error_routes_it() {
    let h = Harness::new().await;
    let limits = LimitsConfig {
        template_fuel: 100_000,
        ..LimitsConfig::default()
    };
    let engine = h.engine().with_limits(limits);
    let started = Instant::now();
    let out = h.run(&engine, heavy_cascade(false), json!({})).await;
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(out.status, SessionStatus::Failed);
    let err = out.error.as_ref().unwrap();
    assert_eq!(err.code().code, "RVB-E012", "{err}");
    assert!(err.to_string().contains("limits.template_fuel = 100000"), "{err}");

    let out = h.run(&engine, heavy_cascade(true), json!({})).await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    assert_eq!(out.path, ["spin", "recover"]);
    assert!(
        out.state["recovered"]
            .as_str()
            .unwrap()
            .contains("limits.template_fuel"),
        "{:?}",
        out.state
    );
}

#[tokio::test]
async fn template_output_bytes_is_probed_below_and_above() {
    let h = Harness::new().await;
    let cascade = |n: usize| {
        yaml(&format!(
            "cascade_id: big\ncells:\n  - name: big\n    tool: set_state\n    inputs: {{key: x, value: \"{{{{ 'x' * {n} }}}}\"}}\n"
        ))
    };
    let engine = h.engine().with_limits(LimitsConfig {
        template_output_bytes: 4096,
        ..LimitsConfig::default()
    });
    let out = h.run(&engine, cascade(4096), json!({})).await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    let out = h.run(&engine, cascade(4097), json!({})).await;
    assert_eq!(out.status, SessionStatus::Failed);
    let err = out.error.unwrap();
    assert_eq!(err.code().code, "RVB-E012");
    assert!(
        err.to_string().contains("limits.template_output_bytes = 4096"),
        "{err}"
    );
}

/// A template that would run for minutes stops at once when the run is cancelled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_run_stuck_in_a_template_ends_it_promptly() {
    let h = Harness::new().await;
    // The default fuel: without the race against cancellation the cell would run until the fuel is
    // gone and the run end `failed` with RVB-E012 instead of `cancelled`.
    let engine = h.engine();
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        trigger.cancel();
    });
    let started = Instant::now();
    let mut request = RunRequest::new(heavy_cascade(false));
    request.cancel = cancel;
    let out = engine.run(request).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(out.status, SessionStatus::Cancelled, "{:?}", out.error);
}
