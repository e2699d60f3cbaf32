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

/// The corpus's `test_cascade_udf.yaml` shape: a `sql_data` cell calls `rvbbit_run` (a cascade next to
/// the calling one) and `rvbbit_udf` per row. Distinct calls run once; each is a child session of the
/// calling run under its caller id, and their cost is part of the run's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_data_calls_rvbbit_functions_as_child_runs_of_the_cell() {
    use rvbbit_testkit::{Reply, Script, TestServer};

    let server = TestServer::start(Script::rule(|body| {
        let prompt = body["messages"]
            .as_array()
            .and_then(|m| m.iter().rev().find_map(|x| x["content"].as_str()))
            .unwrap_or_default()
            .to_owned();
        let text = prompt
            .lines()
            .find_map(|l| l.strip_prefix("Text: "))
            .map(str::to_uppercase)
            .unwrap_or_else(|| format!("LOUD:{}", prompt.len()));
        Reply::text(text).cost(0.001)
    }))
    .await;
    let dir = tempfile::TempDir::new().unwrap();
    let store = rvbbit_store::open("sqlite://rvbbit.db", dir.path())
        .await
        .unwrap();
    let writer = rvbbit_store::Writer::spawn(
        store.clone(),
        rvbbit_store::WriterOptions::new(dir.path().join("spill")),
    );
    let mut provider = rvbbit_llm::ProviderSettings::new(server.base_url()).with_api_key("test-key");
    provider.retry.max_retries = 0;
    let client = rvbbit_llm::Client::new(provider).unwrap();
    let mut registry = Registry::builtin();
    rvbbit_sql::register_tools(&mut registry);
    let engine = Engine::new(registry)
        .with_provider(std::sync::Arc::new(client))
        .with_writer(writer.handle())
        .with_store(store.clone())
        .with_default_model("test/model");
    let folder = dir.path().join("cascades");
    std::fs::create_dir_all(folder.join("traits")).unwrap();
    std::fs::write(
        folder.join("traits/child.yaml"),
        "cascade_id: child\ncells:\n  - name: tag\n    instructions: |-\n      Tag it\n      Text: {{ input.text }}\n",
    )
    .unwrap();
    let parent_text = "cascade_id: per_row\ncells:\n- name: load\n  tool: sql_data\n  inputs:\n    query: \"SELECT * FROM (VALUES ('a'), ('b'), ('a')) AS t(text)\"\n- name: enrich\n  tool: sql_data\n  inputs:\n    query: \"SELECT text, rvbbit_run('traits/child.yaml', json_object('text', text)) AS doc, rvbbit_udf('Shout', text) AS loud FROM _load ORDER BY text\"\n";
    let parent_path = folder.join("per_row.yaml");
    std::fs::write(&parent_path, parent_text).unwrap();
    let mut request = RunRequest::new(cascade(parent_text, &engine));
    request.cascade_file = Some(parent_path);
    let caller = request.caller_id.clone();
    let outcome = engine.run(request).await;
    assert_eq!(outcome.status, SessionStatus::Completed, "{:?}", outcome.error);
    let rows = outcome.output["rows"].as_array().unwrap().clone();
    assert_eq!(rows.len(), 3);
    let doc: Value = serde_json::from_str(rows[0]["doc"].as_str().unwrap()).unwrap();
    assert_eq!(doc["status"], "success", "{doc}");
    assert_eq!(doc["final_output"], "A", "{doc}");
    assert_eq!(rows[2]["text"], "b");
    assert!(rows[0]["loud"].as_str().unwrap().starts_with("LOUD:"), "{rows:?}");
    // Two distinct rvbbit_run inputs and two distinct rvbbit_udf values: four calls, four children.
    assert_eq!(server.requests(), 4);
    writer.handle().flush().await.unwrap();
    let sessions = store
        .sessions(&rvbbit_store::SessionFilter {
            caller_id: Some(caller.as_str().to_owned()),
            ..rvbbit_store::SessionFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(sessions.len(), 5, "the run and its four children");
    let children: Vec<_> = sessions
        .iter()
        .filter(|s| s.session.session_id != outcome.session_id)
        .collect();
    for child in &children {
        assert_eq!(
            child.session.parent_session_id.as_ref(),
            Some(&outcome.session_id)
        );
        assert_eq!(child.session.root_session_id, outcome.session_id);
        assert_eq!(child.session.depth, 1);
        assert_eq!(
            child.session.invocation_metadata["sql"]["protocol"], "cascade",
            "{:?}",
            child.session.invocation_metadata
        );
    }
    // The children's cost is the run's.
    assert_eq!(outcome.cost.micros(), 4_000);
    writer.shutdown().await.unwrap();
}

/// LARS runs a `sql_data` query of several statements and returns the last one's result: a table the
/// first creates is there for the second, and `;` inside strings and comments does not split.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_of_several_statements_runs_them_in_order_and_returns_the_last() {
    let engine = engine();
    let text = format!(
        "{CHAIN}- name: two\n  tool: sql_data\n  inputs:\n    query: \"CREATE TABLE big AS SELECT * FROM _generate WHERE amount >= 300;\\n-- the count; then\\nSELECT count(*) AS n, 'x;y' AS s FROM big;\"\n"
    );
    let outcome = engine
        .run(RunRequest::new(cascade(&text, &engine)).with_input(json!({"threshold": 2})))
        .await;
    assert_eq!(outcome.status, SessionStatus::Completed, "{:?}", outcome.error);
    assert_eq!(outcome.output["rows"], json!([{"n": 3, "s": "x;y"}]));
    assert_eq!(outcome.output["columns"], json!(["n", "s"]));
}

/// More statements than `limits.sql_statements` fail the cell before any runs, naming the setting; a
/// failing statement fails the cell with its own code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_statements_or_a_failing_one_fail_the_cell_with_a_code() {
    let engine = engine();
    let many = "SELECT 1;".repeat(100);
    let text =
        format!("cascade_id: many\ncells:\n- name: q\n  tool: sql_data\n  inputs:\n    query: \"{many}\"\n");
    let outcome = engine.run(RunRequest::new(cascade(&text, &engine))).await;
    assert_eq!(outcome.status, SessionStatus::Failed);
    let message = outcome.error.map(|e| e.to_string()).unwrap_or_default();
    assert!(
        message.contains("RVB-Q006") && message.contains("limits.sql_statements"),
        "{message}"
    );
    let text = "cascade_id: second\ncells:\n- name: q\n  tool: sql_data\n  inputs:\n    query: \"SELECT 1; SELECT * FROM _nothing\"\n";
    let outcome = engine.run(RunRequest::new(cascade(text, &engine))).await;
    assert_eq!(outcome.status, SessionStatus::Failed);
    let message = outcome.error.map(|e| e.to_string()).unwrap_or_default();
    assert!(
        message.contains("RVB-Q001") && message.contains("_nothing"),
        "{message}"
    );
}
