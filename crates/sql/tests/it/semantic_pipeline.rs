//! PIPELINE stages (docs/semantic-sql.md): `SELECT … THEN FILTER 'x' THEN ENRICH 'y' AS c THEN STATS`.
//! A cascade stage gets the table so far as a JSON array in `input._table`, cut into parts that fit
//! `rvbbit.semantic_context_bytes`; the relational stages run as SQL without a model.

use rvbbit_testkit::TestServer;
use serde_json::{Value, json};

use crate::support::{Harness, column};

async fn model() -> TestServer {
    crate::slt::semantic_model().await
}

fn prompt_of(body: &Value) -> String {
    body["messages"][0]["content"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The scripted answers of the built-in stages (`crates/sql/operators/pipeline_*.yaml`), reading the
/// prompt's `Table:` line (a JSON array of rows; a row with the text `boom` fails the call):
/// - FILTER keeps the rows with a text containing the first word of `Criterion` (any case);
/// - ENRICH adds the field `Field`: the first word of `Request`, `:`, the row's first text upper-cased;
/// - ANALYZE answers `[{"answer": "<n> rows: <question>"}]`;
/// - DEDUPE drops a row whose first text equals an earlier row's, ignoring case.
pub(crate) fn pipeline_reply(first: &str, field: &dyn Fn(&str) -> String) -> Option<Result<String, String>> {
    let rows: Vec<serde_json::Map<String, Value>> = serde_json::from_str(&field("Table")).unwrap_or_default();
    let texts = |row: &serde_json::Map<String, Value>| -> Vec<String> {
        row.values()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    };
    if rows.iter().any(|r| texts(r).iter().any(|t| t == "boom")) {
        return Some(Err("bad request for boom".to_owned()));
    }
    let first_word = |s: &str| s.split_whitespace().next().unwrap_or_default().to_lowercase();
    let answer: Vec<Value> = if first.starts_with("Keep the rows of the table") {
        let word = first_word(&field("Criterion"));
        rows.into_iter()
            .filter(|r| texts(r).iter().any(|t| t.to_lowercase().contains(&word)))
            .map(Value::Object)
            .collect()
    } else if first.starts_with("Add one field to every row") {
        let word = first_word(&field("Request"));
        let name = field("Field");
        rows.into_iter()
            .map(|mut r| {
                let text = texts(&r).first().cloned().unwrap_or_default().to_uppercase();
                r.insert(name.clone(), Value::String(format!("{word}:{text}")));
                Value::Object(r)
            })
            .collect()
    } else if first.starts_with("Answer the question about the table") {
        vec![json!({"answer": format!("{} rows: {}", rows.len(), field("Question"))})]
    } else if first.starts_with("Drop every row of the table") {
        let mut seen: Vec<String> = Vec::new();
        rows.into_iter()
            .filter(|r| {
                let key = texts(r).first().cloned().unwrap_or_default().to_lowercase();
                let fresh = !seen.contains(&key);
                seen.push(key);
                fresh
            })
            .map(Value::Object)
            .collect()
    } else {
        return None;
    };
    Some(Ok(Value::Array(answer).to_string()))
}

const FRUIT: &str = "CREATE TABLE fruit AS SELECT * FROM (VALUES (1, 'Apple pie', 2.5), (2, 'apple juice', 1.25), \
                     (3, 'Banana bread', 3.0), (4, 'Cherry tart', NULL)) AS v(id, name, price)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stages_chain_keep_column_types_and_are_cached() {
    let server = model().await;
    let h = Harness::new(&server.base_url(), 4).await;
    let session = h.runtime.session();
    session.execute(FRUIT).await.unwrap();
    let sql = "SELECT id, name, price FROM fruit ORDER BY id THEN FILTER 'apple things' THEN ENRICH 'brand of' AS brand";
    let r = session.execute(sql).await.unwrap();
    let types: Vec<String> = r
        .schema
        .fields()
        .iter()
        .map(|f| format!("{} {}", f.name(), f.data_type()))
        .collect();
    assert_eq!(types, ["id Int64", "name Utf8", "price Float64", "brand Utf8"]);
    assert_eq!(column(&r, 0), [Some("1".to_owned()), Some("2".to_owned())]);
    assert_eq!(
        column(&r, 3),
        [
            Some("brand:APPLE PIE".to_owned()),
            Some("brand:APPLE JUICE".to_owned())
        ]
    );
    assert_eq!(server.requests(), 2, "one call per stage");
    let prompts: Vec<String> = server.bodies().iter().map(prompt_of).collect();
    assert!(
        prompts[1].contains(r#"Table: [{"id":1,"name":"Apple pie","price":2.5}"#),
        "{}",
        prompts[1]
    );
    let again = session.execute(sql).await.unwrap();
    assert_eq!(column(&again, 3), column(&r, 3));
    assert_eq!(server.requests(), 2, "the rerun is answered by the cache");
    // ANALYZE gives one row, and DEDUPE drops the repeat.
    let r = session
        .execute(
            "SELECT lower(name) AS n FROM fruit UNION ALL SELECT 'APPLE PIE' THEN DEDUPE THEN ANALYZE 'what sells?'",
        )
        .await
        .unwrap();
    assert_eq!(column(&r, 0), [Some("4 rows: what sells?".to_owned())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_table_is_asked_in_parts_that_fit_the_context_budget() {
    const BUDGET: usize = 2048;
    let server = model().await;
    let h = Harness::new(&server.base_url(), 4).await;
    let session = h.runtime.session();
    session
        .execute(&format!("SET rvbbit.semantic_context_bytes = {BUDGET}"))
        .await
        .unwrap();
    let r = session
        .execute(
            "SELECT value AS id, CASE WHEN value % 4 = 0 THEN 'apple ' ELSE 'pear ' END || value AS name \
             FROM generate_series(1, 1000) ORDER BY id THEN FILTER 'apple'",
        )
        .await
        .unwrap();
    let ids = column(&r, 0);
    assert_eq!(ids.len(), 250);
    assert!(
        ids.iter()
            .all(|id| id.as_deref().unwrap().parse::<i64>().unwrap() % 4 == 0)
    );
    let prompts: Vec<String> = server.bodies().iter().map(prompt_of).collect();
    assert!(prompts.len() > 10, "{} calls", prompts.len());
    for p in &prompts {
        let table = p.lines().find_map(|l| l.strip_prefix("Table: ")).unwrap();
        assert!(table.len() <= BUDGET, "{} bytes", table.len());
    }
    assert!(
        r.notices
            .iter()
            .any(|n| n.contains(&format!("{} parts", prompts.len()))),
        "{:?}",
        r.notices
    );
    // The calls count against rvbbit.max_calls before any is made.
    session.execute("SET rvbbit.max_calls = 3").await.unwrap();
    let before = server.requests();
    let e = session
        .execute(
            "SELECT value AS id, 'kiwi ' || value AS name FROM generate_series(1, 1000) THEN FILTER 'kiwi'",
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("rvbbit.max_calls"), "{e}");
    assert_eq!(server.requests(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relational_stages_run_as_sql_without_a_model() {
    let server = model().await;
    let h = Harness::new(&server.base_url(), 4).await;
    let session = h.runtime.session();
    session.execute(FRUIT).await.unwrap();
    let r = session
        .execute("SELECT * FROM fruit THEN TOP price 2")
        .await
        .unwrap();
    assert_eq!(column(&r, 0), [Some("3".to_owned()), Some("1".to_owned())]);
    let r = session
        .execute("SELECT id FROM fruit THEN SAMPLE 3 THEN PASS")
        .await
        .unwrap();
    let mut ids = column(&r, 0);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3);
    let r = session.execute("SELECT * FROM fruit THEN STATS").await.unwrap();
    assert_eq!(
        column(&r, 0),
        [
            Some("id".to_owned()),
            Some("name".to_owned()),
            Some("price".to_owned())
        ]
    );
    // price: 4 rows, 3 non-null, 3 distinct, min 1.25, max 3.0, mean 2.25.
    let price: Vec<Option<String>> = (1..8).map(|c| column(&r, c)[2].clone()).collect();
    assert_eq!(
        price,
        ["DOUBLE", "4", "3", "3", "1.25", "3.0", "2.25"].map(|v| Some(v.to_owned()))
    );
    assert_eq!(server.requests(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_stages_are_clear_errors_and_the_session_keeps_serving() {
    let server = model().await;
    let h = Harness::new(&server.base_url(), 4).await;
    let session = h.runtime.session();
    session.execute(FRUIT).await.unwrap();
    let cases = [
        ("SELECT * FROM fruit THEN EXPLODE 'x'", "is not a pipeline stage"),
        ("SELECT * FROM fruit THEN TOP nosuch 3", "no column `nosuch`"),
        ("SELECT * FROM fruit THEN SAMPLE lots", "not a number of rows"),
        ("SELECT * FROM fruit THEN FILTER", "is not a pipeline stage"),
        (
            "SELECT name FROM fruit UNION ALL SELECT 'boom' THEN FILTER 'apple'",
            "the stage THEN FILTER <criterion> (`pipeline_filter`) failed on part 1 of 1",
        ),
        ("DELETE FROM fruit THEN PASS", "follow a query"),
        ("SELECT pipeline_filter('x')", "is a PIPELINE stage"),
    ];
    for (sql, expected) in cases {
        let e = session.execute(sql).await.unwrap_err();
        assert!(e.to_string().contains(expected), "{sql}: {e}");
    }
    let r = session.execute("SELECT count(*) FROM fruit").await.unwrap();
    assert_eq!(column(&r, 0), [Some("4".to_owned())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_shows_the_stages_and_runs_nothing() {
    let server = model().await;
    let h = Harness::new(&server.base_url(), 4).await;
    let session = h.runtime.session();
    session.execute(FRUIT).await.unwrap();
    let r = session
        .execute("EXPLAIN SELECT name FROM fruit THEN FILTER 'apple' THEN STATS")
        .await
        .unwrap();
    let lines: Vec<String> = column(&r, 1).into_iter().flatten().collect();
    assert!(
        lines.iter().any(|l| l
            .starts_with("pipeline: THEN FILTER <criterion> ['apple']: the cascade of `pipeline_filter`")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("pipeline: THEN STATS []: SQL")),
        "{lines:#?}"
    );
    assert_eq!(server.requests(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_stage_is_loaded_from_cascades_and_replaces_a_relational_one() {
    let server = rvbbit_testkit::TestServer::start(rvbbit_testkit::Script::rule(|body: &Value| {
        let prompt = prompt_of(body);
        let rows = prompt
            .lines()
            .find_map(|l| l.strip_prefix("Rows: "))
            .unwrap_or("[]");
        let n = serde_json::from_str::<Vec<Value>>(rows).map_or(0, |r| r.len());
        rvbbit_testkit::Reply::text(format!(
            "```json\n{{\"rows\": [{{\"summary\": \"{n} rows\"}}]}}\n```"
        ))
    }))
    .await;
    let h = Harness::new(&server.base_url(), 4).await;
    h.write(
        "cascades/semantic_sql/my_stats.yaml",
        "cascade_id: my_stats\nsql_function:\n  args: []\n  returns: TABLE\n  shape: PIPELINE\n  \
         operators: ['THEN STATS']\ncells:\n  - name: answer\n    instructions: |-\n      Describe.\n      \
         Rows: {{ input._table }}\n",
    );
    let session = h.runtime.session();
    let r = session
        .execute("SELECT * FROM generate_series(1, 7) THEN STATS")
        .await
        .unwrap();
    assert_eq!(column(&r, 0), [Some("7 rows".to_owned())]);
    assert_eq!(server.requests(), 1);
    let r = session
        .execute("SELECT shape, source FROM rvbbit_functions WHERE name = 'my_stats'")
        .await
        .unwrap();
    assert_eq!(column(&r, 0), [Some("PIPELINE".to_owned())]);
}

/// Stages inside parentheses and under CREATE TABLE … AS / INSERT INTO (issue 24): a derived table, a
/// CTE's body and an `IN (…)` query run their stages first, in the same statement, and their results
/// take their place; `CREATE TABLE name AS SELECT … THEN …` keeps the stages' result as a table and
/// `INSERT INTO name SELECT … THEN …` adds it. No helper table is left in the session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stages_run_inside_subqueries_and_make_tables() {
    let server = model().await;
    let h = Harness::new(&server.base_url(), 4).await;
    let session = h.runtime.session();
    session.execute(FRUIT).await.unwrap();
    let ids = |r: &rvbbit_sql::QueryResult| -> Vec<String> { column(r, 0).into_iter().flatten().collect() };

    session
        .execute("CREATE TABLE apples AS SELECT id, name FROM fruit THEN FILTER 'apple'")
        .await
        .unwrap();
    let r = session
        .execute("SELECT id FROM apples ORDER BY id")
        .await
        .unwrap();
    assert_eq!(ids(&r), ["1", "2"]);

    let r = session
        .execute(
            "SELECT s.id, s.brand FROM (SELECT id, name FROM fruit THEN ENRICH 'brand of' AS brand) s \
             WHERE s.id < 3 ORDER BY s.id",
        )
        .await
        .unwrap();
    assert_eq!(
        column(&r, 1),
        [
            Some("brand:APPLE PIE".to_owned()),
            Some("brand:APPLE JUICE".to_owned())
        ]
    );
    let r = session
        .execute("WITH b AS (SELECT id, name FROM fruit THEN FILTER 'banana') SELECT count(*) FROM b")
        .await
        .unwrap();
    assert_eq!(ids(&r), ["1"]);
    let r = session
        .execute(
            "SELECT name FROM fruit WHERE id IN (SELECT id FROM (SELECT id, name FROM fruit \
             THEN FILTER 'cherry') c)",
        )
        .await
        .unwrap();
    assert_eq!(ids(&r), ["Cherry tart"]);
    session
        .execute("INSERT INTO apples SELECT id, name FROM fruit THEN FILTER 'cherry'")
        .await
        .unwrap();
    let r = session
        .execute("SELECT id FROM apples ORDER BY id")
        .await
        .unwrap();
    assert_eq!(ids(&r), ["1", "2", "4"]);
    // A top-level stage over a subquery's stages.
    let r = session
        .execute("SELECT * FROM (SELECT id, name FROM fruit THEN FILTER 'apple') s THEN ANALYZE 'how many?'")
        .await
        .unwrap();
    assert_eq!(ids(&r), ["2 rows: how many?"]);
    let r = session
        .execute("SELECT count(*) FROM information_schema.tables WHERE table_name LIKE '__rvbbit_stage%'")
        .await
        .unwrap();
    assert_eq!(ids(&r), ["0"], "no helper table is left");
}

/// Where stages cannot run, RVB-Q009 says where and what to write instead, and nothing is asked: a
/// view, EXPLAIN of a subquery's stages, a subquery that names the statement's CTE, a statement that
/// makes no table of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stages_where_they_cannot_run_are_refused_naming_the_place() {
    let server = model().await;
    let h = Harness::new(&server.base_url(), 4).await;
    let session = h.runtime.session();
    session.execute(FRUIT).await.unwrap();
    for (sql, expected) in [
        (
            "CREATE VIEW v AS SELECT * FROM fruit THEN FILTER 'apple'",
            "a view cannot end with THEN stages",
        ),
        (
            "EXPLAIN SELECT * FROM (SELECT * FROM fruit THEN FILTER 'apple') s",
            "EXPLAIN cannot show the subquery with THEN stages at Line: 1, Column: 23",
        ),
        (
            "WITH a AS (SELECT * FROM fruit) SELECT * FROM (SELECT * FROM a THEN FILTER 'apple') s",
            "the subquery with THEN stages at Line: 1, Column: 47 runs on its own",
        ),
        ("DELETE FROM fruit THEN PASS", "THEN stages follow a query"),
    ] {
        let e = session.execute(sql).await.unwrap_err();
        assert_eq!(e.code().code, "RVB-Q009", "{sql}: {e}");
        assert!(e.to_string().contains(expected), "{sql}: {e}");
    }
    assert_eq!(server.requests(), 0, "nothing was asked");
    let r = session
        .execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'v'")
        .await
        .unwrap();
    assert_eq!(column(&r, 0), [Some("0".to_owned())]);
}
