//! `for_each_row` cells (issue 19) through `rvbbit run`: a cascade per row of an earlier table as child
//! runs, inputs rendered per row, results as a table later SQL reads (also under `result_table`),
//! `on_error: continue` keeping the good rows and `fail_fast` failing the cell, and a table that is no
//! earlier cell's refused naming the cells there are.

use serde_json::{Value, json};
use tempfile::TempDir;

use crate::run_command::{JsonOutcome, write};
use crate::rvbbit;

const CHILD: &str = r#"
cascade_id: analyze_customer
cells:
  - name: analyze
    tool: python_data
    inputs:
      code: |
        if input["segment"] == "bad":
            raise ValueError("bad row " + input["customer_name"])
        result = {"risk": len(input["customer_name"]), "who": input["customer_name"]}
  - name: remember
    tool: set_state
    inputs:
      key: risk
      value: "{{ outputs.analyze.result.risk }}"
"#;

fn parent(on_error: &str) -> String {
    format!(
        r#"
cascade_id: mapping
cells:
  - name: load_customers
    tool: sql_data
    inputs:
      query: "SELECT * FROM (VALUES (1, 'Acme', 'enterprise'), (2, 'Shop', 'smb'), (3, 'Oops', 'bad')) AS t(customer_id, customer_name, segment)"
  - name: analyze_customers
    for_each_row:
      table: _load_customers
      cascade: traits/analyze_customer.yaml
      inputs:
        customer_name: "{{{{ row.customer_name }}}}"
        segment: "{{{{ row.segment }}}}"
      max_parallel: 2
      result_table: _customer_analysis
      on_error: {on_error}
  - name: summary
    tool: sql_data
    inputs:
      query: "SELECT customer_name, result_status, result_session_id IS NOT NULL AS ran FROM _customer_analysis ORDER BY customer_id"
"#
    )
}

fn project(on_error: &str) -> (TempDir, String) {
    let dir = TempDir::new().unwrap();
    std::fs::create_dir_all(dir.path().join("traits")).unwrap();
    write(dir.path(), "traits/analyze_customer.yaml", CHILD);
    let file = write(dir.path(), "mapping.yaml", &parent(on_error));
    (dir, file)
}

#[test]
fn for_each_row_runs_a_cascade_per_row_and_later_sql_reads_the_results_table() {
    let (dir, file) = project("continue");
    let out = rvbbit(dir.path())
        .args(["--output", "json", "run", &file])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: JsonOutcome = serde_json::from_slice(&out.stdout).unwrap();
    let each = &doc.outputs["analyze_customers"];
    assert_eq!(
        (
            each["total"].clone(),
            each["count"].clone(),
            each["failed"].clone()
        ),
        (json!(3), json!(2), json!(1))
    );
    assert_eq!(each["_route"], "partial");
    assert_eq!(each["results"][0], json!({"key": "risk", "value": "4"}));
    assert_eq!(each["results"][2], Value::Null);
    assert!(
        each["errors"][0]["error"]
            .as_str()
            .unwrap()
            .contains("bad row Oops"),
        "{each}"
    );
    assert_eq!(each["errors"][0]["index"], 2);
    let sid = each["session_ids"][0].as_str().unwrap();
    assert!(sid.starts_with(&format!("{}_row_0_", doc.session_id)), "{sid}");
    assert_eq!(each["rows"][1]["result_state"]["risk"], "4");
    assert_eq!(each["rows"][1]["customer_id"], 2);
    // The results table, read by SQL under its result_table name.
    assert_eq!(
        doc.outputs["summary"]["rows"],
        json!([
            {"customer_name": "Acme", "result_status": "completed", "ran": true},
            {"customer_name": "Shop", "result_status": "completed", "ran": true},
            {"customer_name": "Oops", "result_status": "failed", "ran": true},
        ])
    );
}

#[test]
fn fail_fast_fails_the_cell_and_an_unknown_table_names_the_earlier_cells() {
    let (dir, file) = project("fail_fast");
    let out = rvbbit(dir.path())
        .args(["--output", "json", "run", &file])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.contains("row 2 failed (on_error: fail_fast)") && text.contains("bad row Oops"),
        "{text}"
    );

    let file = write(
        dir.path(),
        "missing.yaml",
        &parent("continue").replace("table: _load_customers", "table: _nowhere"),
    );
    let out = rvbbit(dir.path())
        .args(["--output", "json", "run", &file])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.contains("`_nowhere` is no earlier cell's table (earlier cells: load_customers)"),
        "{text}"
    );
}
