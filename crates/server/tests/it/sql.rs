//! `POST /api/v1/sql` and `GET /api/v1/sql/tables`: statements through the SQL door under `http-…`
//! caller ids, sessions that keep tables, the four row formats, positioned errors, and the same key
//! rule as the rest of the API.

use rvbbit_testkit::{Reply, Script, TestServer};
use serde_json::json;

use crate::Running;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_returns_records_with_columns_and_a_new_session() {
    let s = Running::start(|c| c).await;
    let (status, body) = s
        .post(
            "/api/v1/sql",
            &json!({"query": "SELECT x, x * 2 AS double FROM (VALUES (1), (2), (3)) AS t(x) ORDER BY x"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true);
    assert_eq!(body["columns"], json!(["x", "double"]));
    assert_eq!(body["column_types"][0]["type"], "Int64");
    assert_eq!(body["row_count"], 3);
    assert_eq!(body["data"][2], json!({"x": 3, "double": 6}));
    assert!(body["session_id"].as_str().unwrap().starts_with("sql_"), "{body}");
    assert!(body["caller_id"].as_str().unwrap().starts_with("http-"), "{body}");
    assert!(body["execution_time_ms"].as_f64().unwrap() >= 0.0);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_keeps_its_tables_and_other_sessions_do_not_see_them() {
    let s = Running::start(|c| c).await;
    let (status, body) = s
        .post(
            "/api/v1/sql",
            &json!({"query": "CREATE TABLE people AS VALUES ('ada', 36), ('linus', 28)"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let session = body["session_id"].as_str().unwrap().to_owned();

    let (status, body) = s
        .post(
            "/api/v1/sql",
            &json!({"query": "SELECT count(*) AS n FROM people", "session_id": session}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"][0]["n"], 2);
    assert_eq!(body["session_id"], session.as_str());

    let (status, body) = s.get(&format!("/api/v1/sql/tables?session_id={session}")).await;
    assert_eq!(status, 200, "{body}");
    let names: Vec<&str> = body["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"people"), "{names:?}");
    assert!(names.contains(&"sql_query_log"), "{names:?}");
    assert!(names.contains(&"all_data"), "{names:?}");

    // A new session does not have it: a planning error with the code and a hint.
    let (status, body) = s
        .post("/api/v1/sql", &json!({"query": "SELECT * FROM people"}))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["success"], false);
    assert_eq!(body["code"], "RVB-Q001");
    assert!(body["message"].as_str().unwrap().contains("people"), "{body}");
    assert!(body["error_id"].as_str().unwrap().starts_with("err_"));

    // An unknown session is a 404 that says how to get one.
    let (status, body) = s
        .post(
            "/api/v1/sql",
            &json!({"query": "SELECT 1", "session_id": "sql_0000"}),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["hint"].as_str().unwrap().contains("omit `session_id`"),
        "{body}"
    );
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syntax_errors_carry_the_line_and_column_and_no_query_is_a_400() {
    let s = Running::start(|c| c).await;
    let (status, body) = s
        .post("/api/v1/sql", &json!({"query": "SELECT 1,\n  2 FORM t"}))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "RVB-Q001");
    // `2 FORM` reads as `2 AS form`, so the parser stops at `t`.
    assert_eq!(body["position"], json!({"line": 2, "column": 10}), "{body}");
    assert!(body["hint"].as_str().unwrap().len() > 10);

    for bad in [json!({}), json!({"query": "   "})] {
        let (status, body) = s.post("/api/v1/sql", &bad).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["code"], "RVB-A001");
        assert!(body["message"].as_str().unwrap().contains("no query"), "{body}");
    }
    let (status, body) = s
        .post("/api/v1/sql", &json!({"query": "SELECT 1", "fromat": "csv"}))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("fromat"), "{body}");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_come_back_as_arrays_csv_or_ndjson_on_request() {
    let s = Running::start(|c| c).await;
    let query = "SELECT * FROM (VALUES (1, 'a,b'), (2, NULL)) AS t(n, s) ORDER BY n";
    let (status, body) = s
        .post("/api/v1/sql", &json!({"query": query, "format": "json"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"], json!([[1, "a,b"], [2, null]]));

    let r = s
        .http
        .post(s.url("/api/v1/sql"))
        .json(&json!({"query": query, "format": "csv"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("attachment")
    );
    assert!(
        r.headers()["x-rvbbit-caller-id"]
            .to_str()
            .unwrap()
            .starts_with("http-")
    );
    assert_eq!(r.text().await.unwrap(), "n,s\n1,\"a,b\"\n2,\n");

    let r = s
        .http
        .post(s.url("/api/v1/sql"))
        .json(&json!({"query": query, "format": "ndjson"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "application/x-ndjson");
    let lines: Vec<serde_json::Value> = r
        .text()
        .await
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines, [json!({"n": 1, "s": "a,b"}), json!({"n": 2, "s": null})]);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llm_functions_run_under_one_http_caller_per_statement_and_are_costed() {
    let llm = TestServer::start(Script::rule(|body| {
        let last = body["messages"]
            .as_array()
            .and_then(|m| m.last())
            .and_then(|m| m["content"].as_str())
            .unwrap_or_default()
            .to_owned();
        let word = if last.contains("ada") { "ADA" } else { "LINUS" };
        Reply::text(word).usage(100, 10)
    }))
    .await;
    let s = Running::start_llm(&llm.base_url(), |c| c).await;
    let query = "SELECT name, rvbbit_udf('Upper-case this name', name) AS upper \
                 FROM (VALUES ('ada'), ('linus'), ('ada')) AS t(name) ORDER BY name";
    let (status, body) = s.post("/api/v1/sql", &json!({"query": query})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"],
        json!([
            {"name": "ada", "upper": "ADA"},
            {"name": "ada", "upper": "ADA"},
            {"name": "linus", "upper": "LINUS"}
        ])
    );
    assert_eq!(body["stats"]["runs"], 2, "duplicate inputs make one call: {body}");
    assert_eq!(llm.requests(), 2);
    let caller = body["caller_id"].as_str().unwrap().to_owned();
    assert!(caller.starts_with("http-"));

    // Every per-row session carries the statement's caller, and sql_query_log says it came over HTTP.
    let (_, sessions) = s.get(&format!("/api/v1/sessions?caller_id={caller}")).await;
    assert_eq!(sessions["sessions"].as_array().unwrap().len(), 2, "{sessions}");
    let (status, log) = s
        .post(
            "/api/v1/sql",
            &json!({"query": format!("SELECT protocol, runs FROM sql_query_log WHERE caller_id = '{caller}'")}),
        )
        .await;
    assert_eq!(status, 200, "{log}");
    assert_eq!(log["data"], json!([{"protocol": "http", "runs": 2}]));
    let (_, costs) = s
        .get(&format!("/api/v1/costs?group=caller&caller_id={caller}"))
        .await;
    assert_eq!(costs["rows"][0]["calls"], 2, "{costs}");

    // Again: all from the cache, no call.
    let (_, again) = s.post("/api/v1/sql", &json!({"query": query})).await;
    assert_eq!(again["stats"]["cache_hits"], 2, "{again}");
    assert_eq!(llm.requests(), 2);
    s.shutdown().await;
    llm.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sql_endpoint_needs_a_key_like_the_rest_of_the_api() {
    let s = Running::start(|c| c.with_required_key(true)).await;
    let (status, body) = s.post("/api/v1/sql", &json!({"query": "SELECT 1"})).await;
    assert_eq!(status, 401, "{body}");
    let (status, _) = s.get("/api/v1/sql/tables").await;
    assert_eq!(status, 401);
    let key = rvbbit_server::auth::generate("ci");
    s.store.key_insert(&key.key).await.unwrap();
    let r = s
        .http
        .post(s.url("/api/v1/sql"))
        .bearer_auth(&key.secret)
        .json(&json!({"query": "SELECT 41 + 1 AS answer"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["data"][0]["answer"], 42);
    s.shutdown().await;
}

/// issue_13: a 100-term `1+1+…` used to overflow a worker's stack and abort `rvbbit serve`. Now chains
/// run up to `limits.sql_expression_depth` (256 levels: 255 terms), one more is refused with 400
/// RVB-Q006, and so are statements far past it and 50,000 statements in one request; a folder holding a
/// link that leads outside and a folder holding an `rvbbit.toml` are refused with RVB-Q005; afterwards
/// the server still answers `/healthz` and `SELECT 1`, in the same SQL session and a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_13_hostile_statements_are_refused_and_the_server_keeps_serving() {
    let s = Running::start(|c| c).await;
    let root = s.dir.path().join("cascades");
    let outside = s.dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret.csv"), "a\nSECRET-OUTSIDE\n").unwrap();
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("sub/good.csv"), "a\nfine\n").unwrap();
    std::os::unix::fs::symlink(outside.join("secret.csv"), root.join("sub/evil.csv")).unwrap();
    std::fs::create_dir_all(root.join("conf")).unwrap();
    std::fs::write(root.join("conf/rvbbit.toml"), "a\napi-key-SECRET\n").unwrap();

    let chain = |n: usize| format!("SELECT {} AS v", vec!["1"; n].join("+"));
    let (status, body) = s.post("/api/v1/sql", &json!({"query": chain(100)})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"][0]["v"], 100);
    let session = body["session_id"].as_str().unwrap().to_owned();
    let (status, body) = s
        .post(
            "/api/v1/sql",
            &json!({"query": chain(255), "session_id": session}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"][0]["v"], 255);

    let limit = |query: String| json!({"query": query, "session_id": session});
    for query in [
        chain(256),
        chain(300_000),
        format!("SELECT {} AS v", vec!["true"; 256].join(" AND ")),
        "SELECT 1;".repeat(50_000),
    ] {
        let (status, body) = s.post("/api/v1/sql", &limit(query)).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["code"], "RVB-Q006", "{body}");
        assert!(
            body["message"].as_str().unwrap().contains("limits.sql_"),
            "{body}"
        );
    }
    for query in [
        "SELECT * FROM read_csv('sub/')",
        "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION 'sub/'",
        "SELECT * FROM read_csv('conf/')",
        "SELECT * FROM read_csv('conf/rvbbit.toml')",
    ] {
        let (status, body) = s.post("/api/v1/sql", &limit(query.to_owned())).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["code"], "RVB-Q005", "{query}: {body}");
        let text = body.to_string();
        assert!(!text.contains("SECRET"), "{query}: {text}");
        assert!(!text.contains(&root.display().to_string()), "{query}: {text}");
    }

    let (status, _) = s.get("/healthz").await;
    assert_eq!(status, 200);
    let (status, body) = s.post("/api/v1/sql", &limit("SELECT 1 AS v".to_owned())).await;
    assert_eq!((status, &body["data"][0]["v"]), (200, &json!(1)), "{body}");
    let (status, body) = s.post("/api/v1/sql", &json!({"query": "SELECT 1 AS v"})).await;
    assert_eq!((status, &body["data"][0]["v"]), (200, &json!(1)), "{body}");
    s.shutdown().await;
}
