//! `RVBBIT RUN` / `LARS RUN` and `rvbbit_run_batch`: one cascade run over the whole result set, which its
//! `sql_data` cells read as a table; `EXPLAIN` with a cost estimate from history and no LLM call.

use std::time::Duration;

use rvbbit_core::EventKind;
use rvbbit_testkit::{Options, Reply, Script, TestServer};
use serde_json::Value;

use crate::support::{Harness, column};

/// Replies with the prompt's `Rows: …` line, at $0.001 per call.
fn script() -> Script {
    Script::rule(|body| {
        let prompt = body["messages"][0]["content"].as_str().unwrap_or_default();
        let line = prompt
            .lines()
            .find(|l| l.starts_with("Rows:"))
            .unwrap_or("none")
            .to_owned();
        Reply::text(format!("summary of {line}")).cost(0.001)
    })
}

/// A deterministic cell reads the batch table; an LLM cell summarises it.
const SUMMARIZE: &str = r#"cascade_id: summarize
inputs_schema:
  data_table: The table holding the rows.
  row_count: How many rows.
cells:
  - name: stats
    tool: sql_data
    inputs:
      query: "SELECT count(*) AS n, sum(amount) AS total FROM {{ input.data_table }}"
  - name: judge
    instructions: |-
      Summarise.
      Rows: {{ input.row_count }} in {{ input.data_table }}
    rules:
      max_turns: 1
"#;

/// Only the deterministic cell.
const TOTAL: &str = r#"cascade_id: total
cells:
  - name: stats
    tool: sql_data
    inputs:
      query: "SELECT count(*) AS n, sum(amount) AS total FROM {{ input.data_table }}"
"#;

async fn setup() -> (TestServer, Harness) {
    let server = TestServer::start_with(Options::new(script()).latency(Duration::ZERO)).await;
    let h = Harness::new(&server.base_url(), 8).await;
    h.write("summarize.yaml", SUMMARIZE);
    h.write("total.yaml", TOTAL);
    (server, h)
}

fn doc(result: &rvbbit_sql::QueryResult) -> Value {
    let text = column(result, 0)[0].clone().unwrap();
    serde_json::from_str(&text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_passes_the_whole_result_set_as_one_table() {
    let (server, h) = setup().await;
    let session = h.runtime.session();
    let result = session
        .execute(
            "RVBBIT RUN 'summarize' USING (SELECT * FROM (VALUES (1, 10), (2, 20), (3, 30)) AS t(id, amount)) \
             WITH (as_table = 'orders_batch')",
        )
        .await
        .unwrap();
    assert_eq!(result.schema.field(0).name(), "result");
    assert_eq!(result.row_count(), 1);
    let d = doc(&result);
    assert_eq!(d["status"], "success", "{d}");
    assert_eq!(d["table_created"], "orders_batch");
    assert_eq!(d["row_count"], 3);
    assert_eq!(d["has_errors"], false);
    assert!(d["session_id"].as_str().unwrap().starts_with("batch-"), "{d}");
    // The sql_data cell read the rows.
    assert_eq!(d["outputs"]["stats"]["rows"][0]["total"], 60, "{d}");
    assert_eq!(d["final_output"], "summary of Rows: 3 in orders_batch");
    assert_eq!(server.requests(), 1);
    // One run under the statement's caller id, and the table stays in the caller's session.
    assert_eq!(h.sessions(result.caller_id.as_str(), None).await, 1);
    assert_eq!(result.stats.runs, 1);
    let read = session
        .execute("SELECT sum(amount) FROM orders_batch")
        .await
        .unwrap();
    assert_eq!(column(&read, 0), [Some("60".into())]);

    // LARS spelling, generated table name, auto-LIMIT overridden; batch runs are not cached.
    let again = session
        .execute(
            "LARS RUN 'total' USING (SELECT * FROM (VALUES (5), (6), (7)) AS t(amount)) WITH (limit = 2)",
        )
        .await
        .unwrap();
    let d = doc(&again);
    let table = d["table_created"].as_str().unwrap();
    assert!(
        table.starts_with("_rvbbit_batch_") && table.len() == "_rvbbit_batch_".len() + 8,
        "{d}"
    );
    assert_eq!(d["row_count"], 2);
    assert_eq!(d["outputs"]["stats"]["rows"][0]["total"], 11, "{d}");
    assert!(
        again.notices.iter().any(|n| n.contains("only the first 2")),
        "{:?}",
        again.notices
    );
    assert_eq!(server.requests(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_batch_function_registers_the_table_and_runs_once() {
    let (_server, h) = setup().await;
    let session = h.runtime.session();
    let result = session
        .execute(
            "SELECT rvbbit_run_batch('total', '[{\"amount\": 1}, {\"amount\": 2.5}]', 'mine') AS r \
             UNION ALL SELECT lars_run_batch('total', 'not json', 'x')",
        )
        .await
        .unwrap();
    let docs: Vec<Value> = column(&result, 0)
        .into_iter()
        .map(|t| serde_json::from_str(&t.unwrap()).unwrap())
        .collect();
    let ok = docs.iter().find(|d| d["status"] == "success").unwrap();
    assert_eq!(ok["table_created"], "mine");
    assert_eq!(ok["outputs"]["stats"]["rows"][0]["total"], 3.5, "{ok}");
    let bad = docs.iter().find(|d| d["status"] == "failed").unwrap();
    assert!(bad["error"].as_str().unwrap().contains("not valid JSON"), "{bad}");
    let read = session.execute("SELECT count(*) FROM mine").await.unwrap();
    assert_eq!(column(&read, 0), [Some("2".into())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_failures_and_explain() {
    let (server, h) = setup().await;
    let session = h.runtime.session();
    // Cascade not found: a statement error before the USING query runs.
    let err = session
        .execute("RVBBIT RUN 'nowhere' USING (SELECT 1 AS amount)")
        .await
        .unwrap_err();
    assert_eq!(err.code().code, "RVB-Q001");
    assert!(err.to_string().contains("Cascade not found: nowhere"), "{err}");

    // A failing run is data: status failed, the error, the session id.
    h.write(
        "broken.yaml",
        "cascade_id: broken\ncells:\n  - name: q\n    tool: sql_data\n    inputs:\n      query: \"SELECT nope FROM {{ input.data_table }}\"\n",
    );
    let failed = session
        .execute("RVBBIT RUN 'broken' USING (SELECT 1 AS amount)")
        .await
        .unwrap();
    let d = doc(&failed);
    assert_eq!(d["status"], "failed", "{d}");
    assert!(d["error"].as_str().unwrap().contains("nope"), "{d}");
    assert!(d["session_id"].as_str().unwrap().starts_with("batch-"), "{d}");

    // EXPLAIN: no history yet, then the average of the earlier run; never an LLM call.
    let before = server.requests();
    let plan = session
        .execute("EXPLAIN RVBBIT RUN 'summarize' USING (SELECT 1 AS id, 2 AS amount)")
        .await
        .unwrap();
    let lines: Vec<String> = column(&plan, 0).into_iter().flatten().collect();
    assert!(lines[0].starts_with("RVBBIT RUN 'summarize'"), "{lines:?}");
    assert!(lines.iter().any(|l| l == "  rows: 1"), "{lines:?}");
    assert!(
        lines.iter().any(|l| l.contains("unknown (no history")),
        "{lines:?}"
    );
    session
        .execute("RVBBIT RUN 'summarize' USING (SELECT 1 AS id, 2 AS amount)")
        .await
        .unwrap();
    let after_run = server.requests();
    let plan = session
        .execute("EXPLAIN RVBBIT RUN 'summarize' USING (SELECT 1 AS id, 2 AS amount)")
        .await
        .unwrap();
    let lines: Vec<String> = column(&plan, 0).into_iter().flatten().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("$0.001") && l.contains("1 earlier completed run")),
        "{lines:?}"
    );
    assert_eq!(server.requests(), after_run);
    assert_eq!(after_run, before + 1);
    // The statement's events: one batch session with its LLM call.
    let caller = failed.caller_id.to_string();
    assert!(h.events(&caller, EventKind::CascadeError).await.len() == 1);
}
