//! The `sql_data` tool inside a cascade run: earlier cells' tables as `_<cell>`, templated queries,
//! failures as tool errors.

use std::path::Path;

use rvbbit_cascade::{Catalog, Severity, load_str, validate};
use rvbbit_core::SessionStatus;
use rvbbit_engine::tools::Registry;
use rvbbit_engine::{Engine, RunRequest};
use serde_json::{Value, json};

fn engine() -> Engine {
    let mut registry = Registry::builtin();
    rvbbit_sql::register_tools(&mut registry);
    Engine::new(registry)
}

fn cascade(text: &str, engine: &Engine) -> rvbbit_cascade::model::Cascade {
    let mut catalog = Catalog::builtin();
    engine.registry().fill_catalog(&mut catalog);
    let report = validate::validate_loaded(
        load_str(Path::new("test.yaml"), text),
        &mut catalog,
        &validate::Options::default(),
    );
    let errors: Vec<_> = report
        .diagnostics()
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| d.message.clone())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    report.loaded.document.and_then(|d| d.cascade().cloned()).unwrap()
}

// The first and third cells of the corpus's data_cascade_test.yaml (its middle cell needs pandas).
const CHAIN: &str = r#"cascade_id: sql_chain
inputs_schema:
  threshold: Minimum id
cells:
- name: generate
  tool: sql_data
  inputs:
    query: "SELECT * FROM (VALUES\n  (1, 'alice', 100),\n  (2, 'bob', 200),\n  (3, 'charlie', 300),\n  (4, 'diana', 400),\n  (5, 'eve', 500)\n) AS t(id, name, amount)\nWHERE id >= {{ input.threshold | int }}\n"
- name: summary
  tool: sql_data
  inputs:
    query: "SELECT CASE WHEN amount >= 300 THEN 'high' ELSE 'low' END AS category, COUNT(*) AS count, SUM(amount) AS total FROM _generate GROUP BY 1 ORDER BY 1"
- name: empty
  tool: sql_data
  inputs:
    query: "SELECT name FROM _generate WHERE amount > 10000"
- name: final
  tool: sql_data
  inputs:
    query: "SELECT (SELECT count(*) FROM _empty) AS empty_rows, (SELECT sum(total) FROM _summary) AS grand_total"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_data_cells_pass_tables_between_cells() {
    let engine = engine();
    let outcome = engine
        .run(RunRequest::new(cascade(CHAIN, &engine)).with_input(json!({"threshold": 2})))
        .await;
    assert_eq!(outcome.status, SessionStatus::Completed, "{:?}", outcome.error);
    assert_eq!(outcome.outputs["generate"]["row_count"], 4);
    assert_eq!(
        outcome.outputs["generate"]["columns"],
        json!(["id", "name", "amount"])
    );
    assert_eq!(
        outcome.outputs["summary"]["rows"],
        json!([
            {"category": "high", "count": 3, "total": 1200},
            {"category": "low", "count": 1, "total": 200}
        ])
    );
    assert_eq!(outcome.outputs["empty"]["row_count"], 0);
    assert_eq!(
        outcome.output["rows"],
        json!([{"empty_rows": 0, "grand_total": 1400}])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_query_fails_the_cell_with_the_sql_code() {
    let engine = engine();
    let text = "cascade_id: bad\ncells:\n- name: q\n  tool: sql_data\n  inputs:\n    query: SELECT * FROM _nothing\n";
    let outcome = engine.run(RunRequest::new(cascade(text, &engine))).await;
    assert_eq!(outcome.status, SessionStatus::Failed);
    let message = outcome.error.map(|e| e.to_string()).unwrap_or_default();
    assert!(
        message.contains("RVB-Q001") && message.contains("_nothing"),
        "{message}"
    );
    assert_eq!(outcome.output, Value::Null);
}
