//! The SQL tools and the human-decision tools LARS cascades use (issue 19), through `rvbbit run`:
//! `list_sql_connections`, `sql_query` (writes refused, results capped and flagged), `sql_search`,
//! `smart_sql_run` against the testkit (a failing query repaired once), `request_decision` (an answer
//! not offered is refused and the run keeps waiting) and `ask_human_custom` (the answer checked against
//! the declared fields), and `validate` accepting corpus cascades that use them.

use std::process::{Command, Output};

use rvbbit_core::SessionStatus;
use rvbbit_testkit::{Reply, Script, TestServer};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::run_command::{JsonOutcome, stored, write};
use crate::rvbbit;

const CORPUS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/corpus/rvbbit-2025-12-25/examples"
);

const ORDERS: &str = "id,region,product,amount\n1,north,blue widgets,10\n2,south,red gadgets,20\n3,north,red widgets,30\n4,east,green gizmos,40\n";

/// A project with `orders.csv` registered in `[sql.tables]`.
fn project() -> TempDir {
    let dir = TempDir::new().unwrap();
    std::fs::write(dir.path().join("orders.csv"), ORDERS).unwrap();
    std::fs::write(
        dir.path().join("rvbbit.toml"),
        "[sql.tables]\norders = \"orders.csv\"\n",
    )
    .unwrap();
    dir
}

fn ok(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn with_provider<'a>(cmd: &'a mut Command, base_url: &str) -> &'a mut Command {
    cmd.env("RVBBIT_PROVIDER_BASE_URL", base_url)
        .env("OPENROUTER_API_KEY", "test-key")
        .env("RVBBIT_DEFAULT_MODEL", "test/model")
        .args(["--set", "provider.max_retries=0"])
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

const READS: &str = r#"
cascade_id: sql_tools_reads
cells:
  - name: sources
    tool: list_sql_connections
  - name: per_region
    tool: sql_query
    inputs:
      sql: "SELECT region, sum(amount) AS total FROM orders GROUP BY region ORDER BY region"
  - name: big
    tool: sql_query
    inputs:
      sql: "SELECT * FROM generate_series(1, 5000)"
  - name: capped
    tool: sql_query
    inputs:
      sql: "SELECT region FROM _per_region ORDER BY region"
      limit: 2
  - name: found
    tool: sql_search
    inputs:
      query: "red widgets"
"#;

#[test]
fn sql_tools_list_query_cap_and_search_the_configured_tables_and_earlier_cells() {
    let dir = project();
    let file = write(dir.path(), "reads.yaml", READS);
    let out = rvbbit(dir.path())
        .args(["--output", "json", "run", &file])
        .output()
        .unwrap();
    ok(&out, 0);
    let doc: JsonOutcome = serde_json::from_slice(&out.stdout).unwrap();
    // The configured table, with its columns as the SQL door reads them.
    let sources = &doc.outputs["sources"];
    assert_eq!(sources["connections"][0]["name"], "sql_tables", "{sources}");
    let orders = &sources["connections"][0]["tables"][0];
    assert_eq!(orders["name"], "orders");
    assert_eq!(orders["location"], "orders.csv");
    let columns: Vec<&str> = orders["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(columns, ["id", "region", "product", "amount"]);
    let per_region = &doc.outputs["per_region"];
    assert_eq!(
        per_region["rows"],
        json!([{"region": "east", "total": 40}, {"region": "north", "total": 40}, {"region": "south", "total": 20}])
    );
    assert_eq!(per_region["truncated"], false);
    // Over the default row cap: 200 rows kept of 5000, flagged.
    let big = &doc.outputs["big"];
    assert_eq!(big["row_count"], 200);
    assert_eq!(big["total_rows"], 5000);
    assert_eq!(big["truncated"], true);
    assert_eq!(big["rows"].as_array().unwrap().len(), 200);
    // An earlier cell's table, and a `limit` below its rows.
    let capped = &doc.outputs["capped"];
    assert_eq!(capped["rows"], json!([{"region": "east"}, {"region": "north"}]));
    assert_eq!(
        (capped["total_rows"].clone(), capped["truncated"].clone()),
        (json!(3), json!(true))
    );
    // Rows holding both words first, then rows holding one; the table matched by its rows.
    let found = &doc.outputs["found"];
    let rows = found["rows"].as_array().unwrap();
    assert_eq!(rows[0]["table"], "orders");
    assert_eq!(rows[0]["score"], 1.0);
    assert_eq!(rows[0]["row"]["product"], "red widgets");
    assert!(rows[1..].iter().all(|r| r["score"] == 0.5), "{found}");
    assert_eq!(rows.len(), 3, "{found}");
    assert!(
        found["tables"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["table"] == "orders")
    );
}

const WRITES: &str = r#"
cascade_id: sql_tools_write
cells:
  - name: sneaky
    tool: sql_query
    inputs:
      sql: "INSERT INTO orders VALUES (5, 'west', 'x', 1)"
"#;

#[test]
fn a_write_through_sql_query_is_refused_with_a_code() {
    let dir = project();
    let file = write(dir.path(), "write.yaml", WRITES);
    let out = rvbbit(dir.path())
        .args(["--output", "json", "run", &file])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let doc: JsonOutcome = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc.status, "failed");
    let message = doc.message.unwrap_or_default();
    assert!(
        message.contains("[RVB-Q005] this SQL tool only reads: `INSERT INTO` is refused"),
        "{message}"
    );
    assert_eq!(stored(dir.path(), &doc.session_id).0, SessionStatus::Failed);
    // Nothing was written.
    assert_eq!(
        std::fs::read_to_string(dir.path().join("orders.csv")).unwrap(),
        ORDERS
    );
}

const SMART: &str = r#"
cascade_id: smart_sql
cells:
  - name: answer
    tool: smart_sql_run
    inputs:
      question: "How many orders per region?"
      tables: [orders]
  - name: explain
    traits: [sql_query]
    instructions: "How much did north sell? Use sql_query."
"#;

#[test]
fn smart_sql_run_writes_sql_with_the_model_repairs_it_once_and_sql_query_serves_an_llm_cell() {
    let rt = runtime();
    let server = rt.block_on(TestServer::start(Script::sequence([
        // The writer's first query names a column that does not exist; the repair fixes it.
        Reply::text("```sql\nSELECT regin, count(*) AS n FROM orders GROUP BY regin\n```"),
        Reply::text("```sql\nSELECT region, count(*) AS n FROM orders GROUP BY region ORDER BY region;\n```"),
        // The LLM cell calls sql_query, then answers from its rows.
        Reply::text(
            "```json\n{\"tool\": \"sql_query\", \"arguments\": {\"sql\": \"SELECT sum(amount) AS north FROM orders WHERE region = 'north'\"}}\n```",
        ),
        Reply::text("North sold 40."),
    ])));
    let dir = project();
    let file = write(dir.path(), "smart.yaml", SMART);
    let out = with_provider(&mut rvbbit(dir.path()), &server.base_url())
        .args(["--output", "json", "run", &file])
        .output()
        .unwrap();
    ok(&out, 0);
    let doc: JsonOutcome = serde_json::from_slice(&out.stdout).unwrap();
    let answer = &doc.outputs["answer"];
    assert_eq!(
        answer["sql"],
        "SELECT region, count(*) AS n FROM orders GROUP BY region ORDER BY region"
    );
    assert_eq!(answer["repaired"], true);
    assert_eq!(
        answer["rows"],
        json!([{"region": "east", "n": 1}, {"region": "north", "n": 2}, {"region": "south", "n": 1}])
    );
    assert!(
        answer["attempts"][0]["error"].as_str().unwrap().contains("regin"),
        "{answer}"
    );
    assert_eq!(doc.output, "North sold 40.");
    // The writer's two calls are the run's (child runs, counted), then the cell's two.
    assert_eq!(doc.llm_calls, 4);
    let bodies = server.bodies();
    let first = bodies[0].to_string();
    assert!(first.contains("How many orders per region?"), "{first}");
    assert!(first.contains("orders: id Int64, region Utf8"), "{first}");
    let repair = bodies[1].to_string();
    assert!(
        repair.contains("This query failed:") && repair.contains("regin"),
        "{repair}"
    );
    assert!(bodies[3].to_string().contains(r#"\"north\":40"#), "{}", bodies[3]);
    // Each writer call is a child session with its llm_response event.
    let db = rusqlite::Connection::open(dir.path().join(".rvbbit/rvbbit.db")).unwrap();
    let children: i64 = db
        .query_row(
            "SELECT count(*) FROM events e JOIN sessions s ON s.session_id = e.session_id \
             WHERE s.parent_session_id = ?1 AND e.kind = 'llm_response'",
            [&doc.session_id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(children, 2);
    rt.block_on(server.shutdown());
}

const DECIDE: &str = r#"
cascade_id: decide
cells:
  - name: decide
    tool: request_decision
    inputs:
      question: "Publish the report?"
      context: "It is the Q4 summary."
      options:
        - {id: approve, label: Approve, description: "Publish now"}
        - {id: reject, label: Reject}
    routing:
      approve: publish
      reject: redo
  - name: redo
    tool: linux_shell
    inputs: {command: "echo redo"}
  - name: publish
    tool: linux_shell
    inputs: {command: "echo published"}
"#;

#[test]
fn request_decision_refuses_an_option_not_offered_keeps_waiting_and_routes_on_the_choice() {
    let dir = TempDir::new().unwrap();
    let file = write(dir.path(), "decide.yaml", DECIDE);
    let out = rvbbit(dir.path())
        .args(["run", &file, "--session", "dec-1", "--detach"])
        .output()
        .unwrap();
    ok(&out, 10);
    assert!(String::from_utf8_lossy(&out.stderr).contains("rvbbit signal send dec-1 decide"));
    let list = rvbbit(dir.path())
        .args(["signal", "list", "--session", "dec-1", "--waiting"])
        .output()
        .unwrap();
    ok(&list, 0);
    assert!(
        String::from_utf8_lossy(&list.stdout).contains("Publish the report? (choice: Approve | Reject)"),
        "{}",
        String::from_utf8_lossy(&list.stdout)
    );
    // An answer that is not an option is refused, and the session still waits for a valid one.
    let bad = rvbbit(dir.path())
        .args([
            "--output",
            "json",
            "signal",
            "send",
            "dec-1",
            "decide",
            "--value",
            r#""maybe""#,
        ])
        .output()
        .unwrap();
    ok(&bad, 6);
    let doc: Value = serde_json::from_slice(&bad.stdout).unwrap();
    assert_eq!(doc["code"], "RVB-C007");
    assert!(
        doc["message"]
            .as_str()
            .unwrap()
            .contains(r#""approve", "reject"; "maybe" is not among them"#),
        "{doc}"
    );
    assert_eq!(stored(dir.path(), "dec-1").0, SessionStatus::Waiting);
    ok(
        &rvbbit(dir.path())
            .args(["signal", "send", "dec-1", "decide", "--value", r#""Approve""#])
            .output()
            .unwrap(),
        0,
    );
    let resumed = rvbbit(dir.path())
        .args(["--output", "json", "resume", "dec-1"])
        .output()
        .unwrap();
    ok(&resumed, 0);
    let doc: JsonOutcome = serde_json::from_slice(&resumed.stdout).unwrap();
    assert_eq!(doc.path, ["decide", "publish"]);
    assert_eq!(
        doc.outputs["decide"],
        json!({"selected": "approve", "label": "Approve", "_route": "approve"})
    );
    assert_eq!(stored(dir.path(), "dec-1").0, SessionStatus::Completed);
}

const CUSTOM: &str = r#"
cascade_id: custom_form
cells:
  - name: review
    traits: [ask_human_custom]
    instructions: "Ask the human to review the data."
"#;

#[test]
fn ask_human_custom_records_its_fields_and_takes_only_an_answer_that_fits_them() {
    let rt = runtime();
    let call = "```json\n{\"tool\": \"ask_human_custom\", \"arguments\": {\"question\": \"Review Q4\", \"data\": {\"Sales\": [{\"Region\": \"North\", \"Sales\": 125}]}, \"ui_hint\": \"form\", \"fields\": [{\"name\": \"verdict\", \"type\": \"select\", \"options\": [\"accurate\", \"wrong\"]}, {\"name\": \"confidence\", \"type\": \"integer\"}, {\"name\": \"note\", \"required\": false}]}}\n```";
    let server = rt.block_on(TestServer::start(Script::sequence([
        // First process: the model asks; nobody answers; the run exits waiting.
        Reply::text(call),
        // Resume: the cell runs again, its call gets the answer sent in between.
        Reply::text(call),
        Reply::text("The human says the data is accurate."),
    ])));
    let dir = TempDir::new().unwrap();
    let file = write(dir.path(), "custom.yaml", CUSTOM);
    let out = with_provider(&mut rvbbit(dir.path()), &server.base_url())
        .args(["run", &file, "--session", "form-1", "--detach"])
        .output()
        .unwrap();
    ok(&out, 10);
    // The wait records the fields and what to show.
    let db = rusqlite::Connection::open(dir.path().join(".rvbbit/rvbbit.db")).unwrap();
    let (kind, spec): (String, String) = db
        .query_row(
            "SELECT checkpoint_type, ui_spec FROM checkpoints WHERE session_id = 'form-1'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(kind, "decision");
    let spec: Value = serde_json::from_str(&spec).unwrap();
    assert_eq!(spec["kind"], "form");
    assert_eq!(spec["fields"][0]["name"], "verdict");
    assert_eq!(spec["fields"][0]["type"], "choice");
    assert_eq!(spec["ui"]["data"]["Sales"][0]["Region"], "North");
    // A missing required field and a value outside the options are refused; it still waits.
    for bad in [
        r#"{"verdict": "accurate"}"#,
        r#"{"verdict": "great", "confidence": 3}"#,
    ] {
        let sent = rvbbit(dir.path())
            .args(["signal", "send", "form-1", "review", "--value", bad])
            .output()
            .unwrap();
        ok(&sent, 6);
    }
    assert_eq!(stored(dir.path(), "form-1").0, SessionStatus::Waiting);
    ok(
        &rvbbit(dir.path())
            .args([
                "signal",
                "send",
                "form-1",
                "review",
                "--value",
                r#"{"verdict": "accurate", "confidence": 4}"#,
            ])
            .output()
            .unwrap(),
        0,
    );
    let out = with_provider(&mut rvbbit(dir.path()), &server.base_url())
        .args(["--output", "json", "resume", "form-1"])
        .output()
        .unwrap();
    ok(&out, 0);
    let doc: JsonOutcome = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc.output, "The human says the data is accurate.");
    // The model got the checked answer as the tool result.
    let bodies = server.bodies();
    assert!(
        bodies[2]
            .to_string()
            .contains(r#"{\"verdict\":\"accurate\",\"confidence\":4}"#),
        "{}",
        bodies[2]
    );
    rt.block_on(server.shutdown());
}

#[test]
fn validate_accepts_corpus_cascades_using_the_sql_and_decision_tools() {
    let dir = TempDir::new().unwrap();
    let files: Vec<String> = [
        "sql_analysis_flow.yaml",
        "tool_based_decisions.yaml",
        "deterministic_demo.yaml",
        "test_data_table.yaml",
    ]
    .iter()
    .map(|f| format!("{CORPUS}/{f}"))
    .collect();
    let mut args = vec!["--output", "json", "validate"];
    args.extend(files.iter().map(String::as_str));
    let out = rvbbit(dir.path()).args(&args).output().unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let tools = [
        "sql_query",
        "sql_search",
        "list_sql_connections",
        "smart_sql_run",
        "request_decision",
        "ask_human_custom",
    ];
    for d in report["diagnostics"].as_array().unwrap() {
        let message = d["message"].as_str().unwrap_or_default();
        assert!(!tools.iter().any(|t| message.contains(&format!("`{t}`"))), "{d}");
    }
}

#[test]
fn the_corpus_request_decision_cascade_waits_refuses_a_stray_answer_and_resumes_with_the_choice() {
    let rt = runtime();
    let call = "```json\n{\"tool\": \"request_decision\", \"arguments\": {\"question\": \"Which stack?\", \"options\": [{\"id\": \"a\", \"label\": \"Option A\", \"description\": \"Rust\"}, {\"id\": \"b\", \"label\": \"Option B\"}], \"severity\": \"info\"}}\n```";
    let server = rt.block_on(TestServer::start(Script::sequence([
        // First process: the model asks; the run exits waiting.
        Reply::text(call),
        // Resume: the cell runs again and its call is answered from the checkpoint.
        Reply::text(call),
        Reply::text("Going with B."),
        Reply::text("Done: built with B."),
    ])));
    let dir = TempDir::new().unwrap();
    let file = format!("{CORPUS}/tool_based_decisions.yaml");
    let out = with_provider(&mut rvbbit(dir.path()), &server.base_url())
        .args([
            "run",
            &file,
            "--session",
            "tbd-1",
            "--detach",
            "--input",
            r#"{"task": "pick a stack"}"#,
        ])
        .output()
        .unwrap();
    ok(&out, 10);
    let stray = rvbbit(dir.path())
        .args([
            "signal",
            "send",
            "tbd-1",
            "analyze_and_decide",
            "--value",
            r#""c""#,
        ])
        .output()
        .unwrap();
    ok(&stray, 6);
    assert_eq!(stored(dir.path(), "tbd-1").0, SessionStatus::Waiting);
    ok(
        &rvbbit(dir.path())
            .args([
                "signal",
                "send",
                "tbd-1",
                "analyze_and_decide",
                "--value",
                r#""Option B""#,
            ])
            .output()
            .unwrap(),
        0,
    );
    let out = with_provider(&mut rvbbit(dir.path()), &server.base_url())
        .args(["--output", "json", "resume", "tbd-1"])
        .output()
        .unwrap();
    ok(&out, 0);
    let doc: JsonOutcome = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc.path, ["analyze_and_decide", "execute"]);
    assert_eq!(doc.output, "Done: built with B.");
    let bodies = server.bodies();
    assert!(
        bodies[2]
            .to_string()
            .contains(r#"{\"selected\":\"b\",\"label\":\"Option B\"}"#),
        "{}",
        bodies[2]
    );
    rt.block_on(server.shutdown());
}
