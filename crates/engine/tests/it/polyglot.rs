//! `js_data` and `clojure_data` with real runtimes: node under real bubblewrap (rows in, rows out; an
//! exception is a coded cell error with the JavaScript message; a runaway loop meets the wall-clock
//! limit), and babashka's absence as the "not configured" RVB-E003 the validator also reports.

use std::sync::Arc;

use rvbbit_core::SessionStatus;
use rvbbit_core::config::SandboxConfig;
use rvbbit_engine::tools::sandbox::Sandbox;
use rvbbit_engine::{Engine, Outcome};
use serde_json::json;

use crate::support::{Harness, yaml, yaml_allowing};

fn sandboxed(h: &Harness) -> Engine {
    let sandbox = Sandbox::new(&SandboxConfig::default(), &Default::default())
        .unwrap_or_else(|e| panic!("bubblewrap is needed (run scripts/test-deps.sh): {e}"));
    h.engine().with_sandbox(Arc::new(sandbox))
}

/// Rows from `python_data`, then `js_data` with `code` (and an optional `sandbox:` block).
fn cascade(code: &str, block: &str) -> rvbbit_cascade::model::Cascade {
    let code = serde_json::to_string(code).unwrap();
    yaml(&format!(
        "cascade_id: js\ncells:\n  - name: raw_rows\n    tool: python_data\n    inputs:\n      code: 'result = [{{\"n\": 2, \"name\": \"a\"}}, {{\"n\": 3, \"name\": \"b\"}}]'\n  - name: js\n    tool: js_data\n    inputs:\n      code: {code}\n{block}"
    ))
}

fn code_of(out: &Outcome) -> &'static str {
    out.error.as_ref().map_or("none", |e| e.code().code)
}

#[tokio::test]
async fn js_data_reads_earlier_rows_and_its_result_rows_are_a_table() {
    let h = Harness::new().await;
    let code = "const rows = data.raw_rows;\nconsole.log('seen', rows.length);\nresult = rows.map(r => ({...r, cubed: r.n ** 3, min: Number(input.min)}));";
    let out = h.run(&sandboxed(&h), cascade(code, ""), json!({"min": 7})).await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    assert_eq!(
        out.output["rows"],
        json!([{"n": 2, "name": "a", "cubed": 8, "min": 7}, {"n": 3, "name": "b", "cubed": 27, "min": 7}])
    );
    assert_eq!(out.output["columns"], json!(["n", "name", "cubed", "min"]));
    assert_eq!(out.output["row_count"], 2);
    assert_eq!(out.output["stdout"], "seen 2");
}

#[tokio::test]
async fn a_javascript_exception_is_a_coded_cell_error_with_its_message_and_no_paths() {
    let h = Harness::new().await;
    let out = h
        .run(
            &sandboxed(&h),
            cascade("const x = 1;\nnull.boom();", ""),
            json!({}),
        )
        .await;
    assert_eq!(out.status, SessionStatus::Failed);
    assert_eq!(code_of(&out), "RVB-T001");
    let message = out.error.as_ref().unwrap().to_string();
    assert!(
        message.contains("JavaScript error: TypeError: Cannot read properties of null (reading 'boom') (line 2 of the code)"),
        "{message}"
    );
    for internal in ["/tmp", "node:internal", "/usr", "rvbbit-"] {
        assert!(!message.contains(internal), "{internal} in {message}");
    }
    // Code that never sets `result` says so.
    let out = h.run(&sandboxed(&h), cascade("let y = 2;", ""), json!({})).await;
    let message = out.error.as_ref().unwrap().to_string();
    assert!(message.contains("the code did not set `result`"), "{message}");
}

#[tokio::test]
async fn a_runaway_javascript_loop_meets_the_wall_clock_limit() {
    let h = Harness::new().await;
    let started = std::time::Instant::now();
    let out = h
        .run(
            &sandboxed(&h),
            cascade("while (true) {}", "    sandbox: {wall_seconds: 2}\n"),
            json!({}),
        )
        .await;
    assert_eq!(code_of(&out), "RVB-B013", "{:?}", out.error);
    assert!(started.elapsed().as_secs() < 20, "{:?}", started.elapsed());
}

#[tokio::test]
async fn clojure_data_without_babashka_is_not_configured_at_run_and_at_validate() {
    let bb_here =
        std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("bb").is_file()));
    if bb_here {
        // This machine has babashka: the refusal cannot be shown here (its run is the other path).
        return;
    }
    let h = Harness::new().await;
    let out = h
        .run(
            &h.engine(),
            // Validation reports the cell (RVB-V009, an error: the run would fail it), checked here.
            yaml_allowing(
                "cascade_id: clj\ncells:\n  - name: f\n    tool: clojure_data\n    inputs:\n      code: '(+ 1 2)'\n",
                &["RVB-V009"],
            ),
            json!({}),
        )
        .await;
    assert_eq!(out.status, SessionStatus::Failed);
    assert_eq!(code_of(&out), "RVB-E003");
    let message = out.error.as_ref().unwrap().to_string();
    assert!(
        message.contains("not configured: `clojure_data` runs Clojure with `bb`"),
        "{message}"
    );
    assert!(message.contains("install babashka"), "{message}");
    // The validator's catalog from the same registry says the same, before any run.
    let mut catalog = rvbbit_cascade::Catalog::builtin();
    let registry = rvbbit_engine::tools::Registry::builtin();
    catalog.provided_only(&registry.names());
    registry.fill_catalog(&mut catalog);
    match catalog.get("clojure_data") {
        Some(rvbbit_cascade::catalog::Origin::Unavailable { reason }) => {
            assert!(reason.contains("install babashka"), "{reason}")
        }
        other => panic!("clojure_data is {other:?} in the catalog"),
    }
}
