//! `rvbbit sql "QUERY"` against the testkit server: the three output formats, the persistent cache
//! across processes, `costs by-caller`, and coded errors with positions.

use rvbbit_testkit::{Reply, Script, TestServer};
use serde_json::Value;
use tempfile::TempDir;

use crate::rvbbit;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn sql(dir: &std::path::Path, base_url: &str, args: &[&str]) -> std::process::Output {
    let mut cmd = rvbbit(dir);
    cmd.env("RVBBIT_PROVIDER_BASE_URL", base_url)
        .env("OPENROUTER_API_KEY", "test-key")
        .env("RVBBIT_DEFAULT_MODEL", "test/model")
        .args(["--set", "provider.max_retries=0"])
        .args(args);
    cmd.output().unwrap()
}

const QUERY: &str =
    "SELECT x, rvbbit_udf('Shout', x) AS r FROM (VALUES ('a'), ('b'), ('a')) AS t(x) ORDER BY x";

#[test]
fn sql_prints_tables_csv_and_json_and_caches_across_processes() {
    let rt = runtime();
    let server = rt.block_on(TestServer::start(Script::rule(|body| {
        let prompt = body["messages"][0]["content"].as_str().unwrap_or_default();
        let input = prompt
            .lines()
            .find_map(|l| l.strip_prefix("Input: "))
            .unwrap_or_default()
            .to_uppercase();
        Reply::text(input).cost(0.002)
    })));
    let dir = TempDir::new().unwrap();
    let url = server.base_url();

    let out = sql(dir.path(), &url, &["sql", QUERY]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        table,
        "+---+---+\n| x | r |\n+---+---+\n| a | A |\n| a | A |\n| b | B |\n+---+---+\n"
    );
    assert_eq!(server.requests(), 2, "duplicates are called once");

    // Another process: every call is a cache hit.
    let out = sql(dir.path(), &url, &["--output", "json", "sql", QUERY]);
    assert_eq!(out.status.code(), Some(0));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["status"], "ok");
    assert_eq!(doc["row_count"], 3);
    assert_eq!(doc["rows"][2], serde_json::json!({"x": "b", "r": "B"}));
    assert_eq!(doc["columns"][1]["name"], "r");
    assert_eq!(doc["stats"]["cache_hits"], 2);
    assert_eq!(doc["stats"]["runs"], 0);
    assert_eq!(doc["stats"]["avoided_cost_usd"], "0.004000");
    assert!(doc["caller_id"].as_str().unwrap().starts_with("sql-"));
    assert_eq!(server.requests(), 2);

    let out = sql(
        dir.path(),
        &url,
        &["sql", "--format", "csv", "SELECT 1 AS n, 'x,y' AS s"],
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "n,s\n1,\"x,y\"\n");

    // The first statement's calls are summed under its caller id.
    let out = sql(dir.path(), &url, &["--output", "json", "costs", "by-caller"]);
    let costs: Value = serde_json::from_slice(&out.stdout).unwrap();
    // Largest cost first: the statement that made the calls (each LLM call counted once), then the
    // one served from the cache: its two hits are one `cache_hit` summary event at zero cost (issue 21).
    let rows = costs["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{costs}");
    assert!(rows[0]["key"].as_str().unwrap().starts_with("sql-"));
    assert_eq!(
        (rows[0]["calls"].as_u64(), rows[0]["cost"].as_i64()),
        (Some(2), Some(4000))
    );
    assert_eq!(rows[1]["key"], doc["caller_id"]);
    assert_eq!(
        (rows[1]["calls"].as_u64(), rows[1]["cost"].as_i64()),
        (Some(1), Some(0))
    );
    rt.block_on(server.shutdown());
}

/// `rvbbit sql --functions` lists the built-in semantic functions and the directory's own
/// (`cascades/`), as the `rvbbit_functions` table; no model is called.
#[test]
fn sql_functions_lists_the_builtins_and_the_directorys_operator_files() {
    let dir = TempDir::new().unwrap();
    std::fs::create_dir_all(dir.path().join("cascades/semantic_sql")).unwrap();
    std::fs::write(
        dir.path().join("cascades/semantic_sql/spam.yaml"),
        "cascade_id: is_spam\nsql_function:\n  args: [{name: text}]\n  returns: BOOLEAN\n  \
         operators: ['{{ text }} IS_SPAM']\ncells:\n  - name: judge\n    instructions: 'Spam? {{ input.text }}'\n",
    )
    .unwrap();
    let out = sql(
        dir.path(),
        "http://127.0.0.1:9/v1",
        &["--output", "json", "sql", "--functions"],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = doc["rows"].as_array().unwrap();
    let row = |name: &str| rows.iter().find(|r| r["name"] == name).cloned().unwrap();
    assert_eq!(row("semantic_matches")["source"], "builtin");
    assert_eq!(row("semantic_matches")["returns"], "BOOLEAN");
    assert_eq!(row("is_spam")["source"], "cascades/semantic_sql/spam.yaml");
    assert_eq!(row("is_spam")["operators"], "{{ text }} IS_SPAM");
    assert!(rows.len() >= 17, "{doc}");
    let out = sql(dir.path(), "http://127.0.0.1:9/v1", &["sql"]);
    assert_eq!(
        out.status.code(),
        Some(6),
        "a query or --functions is required (a usage error)"
    );
}

#[test]
fn sql_errors_are_coded_with_positions_and_exit_2() {
    let dir = TempDir::new().unwrap();
    let out = sql(
        dir.path(),
        "http://127.0.0.1:9/v1",
        &["sql", "SELECT *\n  FROM t WHERE = 1"],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("error[RVB-Q001]: Expected: an expression, found: = at Line: 2, Column: 16"),
        "{err}"
    );
    // Issue 14 item 10: the hint names the position the parser gave, and only then.
    assert!(
        err.contains("hint: fix the statement near line 2, column 16"),
        "{err}"
    );

    let out = sql(
        dir.path(),
        "http://127.0.0.1:9/v1",
        &["--output", "json", "sql", "SELECT * FROM nope"],
    );
    assert_eq!(out.status.code(), Some(2));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["code"], "RVB-Q001");
    assert!(doc["message"].as_str().unwrap().contains("nope"), "{doc}");
    let hint = doc["hint"].as_str().unwrap();
    assert!(
        hint.contains("SHOW TABLES") && !hint.contains("position"),
        "{doc}"
    );

    // A provider that is down: the row is NULL, the statement succeeds, a notice says why.
    let out = sql(
        dir.path(),
        "http://127.0.0.1:9/v1",
        &["sql", "SELECT rvbbit_udf('x', 'y') AS r"],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("notice: 1 rvbbit function call(s) failed"), "{err}");
    assert!(err.contains("RVB-L001"), "{err}");
}

#[test]
fn run_executes_sql_data_cells() {
    let dir = TempDir::new().unwrap();
    std::fs::write(
        dir.path().join("chain.yaml"),
        "cascade_id: chain\ncells:\n- name: numbers\n  tool: sql_data\n  inputs:\n    query: SELECT * FROM (VALUES (1), (2), (3)) AS t(n)\n- name: total\n  tool: sql_data\n  inputs:\n    query: SELECT sum(n) AS total FROM _numbers\n",
    )
    .unwrap();
    let out = rvbbit(dir.path())
        .args(["--output", "json", "run", "chain.yaml"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["output"]["rows"], serde_json::json!([{"total": 6}]));
}

/// SIGTERM while `rvbbit sql` waits on LLM calls: the statement's runs are cancelled, record
/// `cancelled` with their events, and the process exits 143 (nothing left `running`).
#[test]
fn sigterm_mid_statement_records_its_runs_as_cancelled() {
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    let rt = runtime();
    let server = rt.block_on(TestServer::start(Script::rule(|_| {
        Reply::text("too late").latency(Duration::from_secs(60))
    })));
    let dir = TempDir::new().unwrap();
    let child = rvbbit(dir.path())
        .env("RVBBIT_PROVIDER_BASE_URL", server.base_url())
        .env("OPENROUTER_API_KEY", "test-key")
        .env("RVBBIT_DEFAULT_MODEL", "test/model")
        .args(["--set", "provider.max_retries=0"])
        .args([
            "sql",
            "SELECT rvbbit_udf('Shout', x) FROM (VALUES ('a'), ('b')) AS t(x)",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while server.requests() < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the LLM calls never arrived"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = rustix::process::Pid::from_raw(i32::try_from(child.id()).unwrap()).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "the statement did not stop promptly"
    );
    assert_eq!(
        out.status.code(),
        Some(143),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Both runs are in the store, cancelled, with their events.
    let listed = rvbbit(dir.path())
        .args(["--output", "json", "sessions", "list"])
        .output()
        .unwrap();
    let doc: Value = serde_json::from_slice(&listed.stdout).unwrap();
    let sessions = doc["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2, "{doc}");
    for s in sessions {
        assert_eq!(s["session"]["status"], "cancelled", "{s}");
        assert!(s["events"].as_u64().unwrap() >= 2, "{s}");
    }
}

/// `rvbbit sql --test-functions` runs the `test_cases` of the directory's operator files: a value, a
/// `contains` and a `range` expectation, a skipped case and a failing one; it exits 2 because one failed,
/// and the JSON document counts them.
#[test]
fn test_functions_runs_every_test_case_and_exits_2_when_one_fails() {
    let rt = runtime();
    // `Spam?` prompts: `yes` when the text has `win`; `Score` prompts: 0.7.
    let server = rt.block_on(TestServer::start(Script::rule(|body| {
        let prompt = body["messages"][0]["content"].as_str().unwrap_or_default();
        let rows = rvbbit_testkit::batch_rows(prompt).unwrap_or_else(|| vec![(1, prompt.to_owned())]);
        let answer = |one: &str| {
            if one.starts_with("Spam?") {
                Value::String(if one.contains("win") { "yes" } else { "no" }.into())
            } else {
                Value::String("0.7 (a fair match)".into())
            }
        };
        if rvbbit_testkit::is_batch(prompt) {
            let answers: Vec<(u64, Value)> = rows.iter().map(|(id, one)| (*id, answer(one))).collect();
            return Reply::text(rvbbit_testkit::batch_answer(&answers));
        }
        Reply::text(answer(prompt).as_str().unwrap_or_default())
    })));
    let dir = TempDir::new().unwrap();
    std::fs::create_dir_all(dir.path().join("cascades")).unwrap();
    std::fs::write(
        dir.path().join("cascades/spam.yaml"),
        r#"cascade_id: is_spam
sql_function:
  args: [{name: text}]
  returns: BOOLEAN
  operators: ['{{ text }} IS_SPAM']
  test_cases:
    - {sql: "SELECT 'win a prize' IS_SPAM", expect: true, description: obvious spam}
    - {sql: "SELECT 'lunch at noon?' IS_SPAM", expect: true, description: not spam so this fails}
    - {sql: "SELECT 'x' IS_SPAM", expect: false, skip: true}
cells:
  - name: judge
    instructions: "Spam? Answer yes or no. Text: {{ input.text }}"
"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("cascades/score.yaml"),
        r#"cascade_id: fit_score
sql_function:
  args: [{name: text}]
  returns: VARCHAR
  test_cases:
    - {sql: "SELECT fit_score('a')", expect: {type: contains, value: FAIR}}
    - {sql: "SELECT 0.7", expect: {type: range, min: 0.5, max: 0.9}}
cells:
  - name: judge
    instructions: "Score {{ input.text }}"
"#,
    )
    .unwrap();
    let url = server.base_url();
    let out = sql(dir.path(), &url, &["sql", "--test-functions"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("pass is_spam #1 (obvious spam)"), "{text}");
    assert!(
        text.contains("FAIL is_spam #2 (not spam so this fails) [cascades/spam.yaml]: `false` is not `true`"),
        "{text}"
    );
    assert!(text.contains("skip is_spam #3"), "{text}");
    assert!(text.contains("pass fit_score #1"), "{text}");
    assert!(text.contains("pass fit_score #2"), "{text}");
    assert!(
        text.contains("3 of 5 test case(s) passed (1 failed, 1 skipped)"),
        "{text}"
    );

    let out = sql(dir.path(), &url, &["--output", "json", "sql", "--test-functions"]);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["status"], "failed");
    assert_eq!(
        (
            doc["passed"].as_u64(),
            doc["failed"].as_u64(),
            doc["skipped"].as_u64()
        ),
        (Some(3), Some(1), Some(1))
    );
    assert_eq!(doc["cases"].as_array().map(Vec::len), Some(5));
    assert_eq!(out.status.code(), Some(2));
}
