//! `RVBBIT MAP` / `LARS MAP`: parsing errors (snapshot), native execution with dedupe, PARALLEL,
//! DISTINCT, typed columns, budgets, EXPLAIN and CREATE TABLE … AS.

use std::fmt::Write;
use std::time::Duration;

use rvbbit_testkit::{Options, Reply, Script, TestServer};
use serde_json::Value;

use crate::support::{Harness, column};

/// Replies `{"tag": "<TEXT>", "n": <len>}` for the `Text: …` line, at $0.001 per call.
fn script() -> Script {
    Script::rule(|body| {
        let prompt = body["messages"][0]["content"].as_str().unwrap_or_default();
        let text = prompt
            .lines()
            .find_map(|l| l.strip_prefix("Text: "))
            .unwrap_or_default();
        Reply::text(format!(
            "{{\"tag\": \"{}\", \"n\": {}}}",
            text.to_uppercase(),
            text.len()
        ))
        .cost(0.001)
    })
}

const TAGGER: &str = "cascade_id: tagger\ncells:\n  - name: tag\n    instructions: |-\n      Tag it\n      Text: {{ input.text }}\n    output_schema:\n      type: object\n";

async fn setup(latency: Duration) -> (TestServer, Harness) {
    let server = TestServer::start_with(Options::new(script()).latency(latency)).await;
    let h = Harness::new(&server.base_url(), 8).await;
    h.write("tagger.yaml", TAGGER);
    (server, h)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn map_statement_errors_point_at_line_and_column() {
    let (_server, h) = setup(Duration::ZERO).await;
    let session = h.runtime.session();
    let cases = [
        "RVBBIT MAP tagger USING (SELECT 1)",
        "RVBBIT MAP 'tagger' USING SELECT 1",
        "RVBBIT MAP 'tagger' USING (SELECT (1)",
        "RVBBIT MAP 'tagger' USING ()",
        "RVBBIT MAP PARALLEL x 'tagger' USING (SELECT 1)",
        "RVBBIT MAP 'tagger' AS (a BIGINT b TEXT) USING (SELECT 1)",
        "RVBBIT MAP 'tagger' AS 42 USING (SELECT 1)",
        "RVBBIT MAP 'tagger' USING (SELECT 1) WITH (cache)",
        "RVBBIT MAP 'tagger' USING (SELECT 1) WITH (colour = 'red')",
        "RVBBIT MAP 'tagger' USING (SELECT 1) WITH (cache = true",
        "RVBBIT MAP 'tagger' USING (SELECT 1) garbage",
        "RVBBIT MAP 'tagger'\n  USING (SELECT 1)\n  WITH (limit = 'ten')",
        "RVBBIT MAP 'missing' USING (SELECT 1 AS text)",
        "RVBBIT FLY 'tagger' USING (SELECT 1)",
        "LARS RUN 'tagger' USING (SELECT 1 AS text) WITH (cache = false)",
        "RVBBIT RUN 'tagger' AS x USING (SELECT 1 AS text)",
        "RVBBIT RUN 'missing' USING (SELECT 1 AS text)",
        "RVBBIT RUN 'tagger' USING (SELECT 1 AS text) WITH (limit = 0)",
        "RVBBIT RUN 'tagger' USING (SELECT 1 AS text) WITH (as_table = 3)",
        "RVBBIT MAP 'tagger' USING (SELECT 1 AS text) WITH (as_table = true)",
        "-- a comment first\nRVBBIT MAP 'tagger' AS (x WEIRD) USING (SELECT 'a' AS text)",
        "RVBBIT MAP 'tagger' USING (SELECT 1 AS id, 'a' AS text) WITH (key = 'sku')",
        "RVBBIT MAP 'tagger' USING (SELECT 1 AS id, 'a' AS text) WITH (key = 3)",
    ];
    let mut out = String::new();
    for sql in cases {
        let err = session.execute(sql).await.unwrap_err();
        writeln!(
            out,
            "{}\n  => {} {}\n",
            sql.replace('\n', "\\n"),
            err.code().code,
            err
        )
        .unwrap();
    }
    insta::assert_snapshot!(out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn map_runs_the_cascade_once_per_distinct_row_in_order() {
    let (server, h) = setup(Duration::ZERO).await;
    let session = h.runtime.session();
    let sql = "RVBBIT MAP 'tagger' AS tag USING (SELECT * FROM (VALUES (1, 'a'), (2, 'b'), (3, 'a')) AS t(id, text)) WITH (cache = true);";
    let result = session.execute(sql).await.unwrap();
    assert_eq!(
        result.columns().iter().map(|c| c.0.as_str()).collect::<Vec<_>>(),
        ["id", "text", "tag"]
    );
    assert_eq!(
        column(&result, 0),
        [Some("1".into()), Some("2".into()), Some("3".into())]
    );
    // Rows (id, text) are the inputs: three distinct rows, three runs; the output_schema makes the
    // result the parsed object.
    assert_eq!(result.stats.runs, 3);
    let tags: Vec<Value> = column(&result, 2)
        .into_iter()
        .map(|t| serde_json::from_str(&t.unwrap()).unwrap())
        .collect();
    assert_eq!(tags[0]["tag"], "A");
    assert_eq!(tags[1]["tag"], "B");
    assert_eq!(server.requests(), 3);

    // LARS spelling, DISTINCT, typed columns: the inputs differ from the first statement's (only
    // `text`), so one new run per distinct text.
    let typed = session
        .execute("LARS MAP DISTINCT 'tagger' AS (tag VARCHAR, n BIGINT) USING (SELECT text FROM (VALUES ('a'), ('b'), ('a')) AS t(text))")
        .await
        .unwrap();
    assert_eq!(typed.row_count(), 2);
    assert_eq!(typed.columns()[2], ("n".to_owned(), "Int64".to_owned()));
    let mut tags = column(&typed, 1);
    tags.sort();
    assert_eq!(
        tags,
        [Some("A".into()), Some("B".into())],
        "DISTINCT does not keep the order"
    );
    assert_eq!(typed.stats.runs, 2);
    // Again: every row from the cache.
    let again = session
        .execute("LARS MAP DISTINCT 'tagger' AS (tag VARCHAR, n BIGINT) USING (SELECT text FROM (VALUES ('a'), ('b'), ('a')) AS t(text))")
        .await
        .unwrap();
    assert_eq!((again.stats.runs, again.stats.cache_hits), (0, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_limits_calls_in_flight_and_the_limit_cuts_input() {
    let (server, h) = setup(Duration::from_millis(50)).await;
    let session = h.runtime.session();
    let result = session
        .execute("RVBBIT MAP PARALLEL 2 'tagger' USING (SELECT 't' || CAST(value AS VARCHAR) AS text FROM generate_series(1, 20)) WITH (limit = 12)")
        .await
        .unwrap();
    assert_eq!(result.row_count(), 12);
    assert_eq!(server.requests(), 12);
    assert!(server.max_concurrency() <= 2, "{}", server.max_concurrency());
    assert!(
        result.notices.iter().any(|n| n.contains("more than 12 rows")),
        "{:?}",
        result.notices
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_budget_stops_the_statement_before_overspending() {
    let (server, h) = setup(Duration::ZERO).await;
    let session = h.runtime.session();
    let result = session
        .execute("RVBBIT MAP PARALLEL 1 'tagger' AS r USING (SELECT 't' || CAST(value AS VARCHAR) AS text FROM generate_series(1, 10)) WITH (budget_dollars = 0.0035, cache = false)")
        .await
        .unwrap();
    assert_eq!(result.row_count(), 10, "every row comes back");
    // $0.001 per call: three calls fit, a fourth would pass $0.0035.
    assert_eq!(server.requests(), 3);
    assert_eq!(result.stats.cost.micros(), 3_000);
    assert_eq!(result.stats.skipped, 7);
    assert_eq!(column(&result, 1).iter().filter(|v| v.is_none()).count(), 7);
    assert!(
        result.notices.iter().any(|n| n.contains("budget reached")),
        "{:?}",
        result.notices
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_spends_nothing_and_create_table_materialises() {
    let (server, h) = setup(Duration::ZERO).await;
    let session = h.runtime.session();
    let plan = session
        .execute(
            "EXPLAIN RVBBIT MAP 'tagger' USING (SELECT text FROM (VALUES ('a'), ('b'), ('a')) AS t(text))",
        )
        .await
        .unwrap();
    let lines: Vec<String> = column(&plan, 0).into_iter().flatten().collect();
    assert!(lines[0].starts_with("RVBBIT MAP 'tagger' AS result"), "{lines:?}");
    assert!(lines.iter().any(|l| l.contains("LIMIT 1001")), "{lines:?}");
    assert!(lines.iter().any(|l| l == "  rows: 3"), "{lines:?}");
    assert!(lines.iter().any(|l| l.contains("at most 2")), "{lines:?}");
    assert!(
        lines.iter().any(|l| l.contains("unknown (no history")),
        "{lines:?}"
    );
    assert_eq!(server.requests(), 0);

    // After one run: one of the two distinct runs is cached, the other is estimated from history.
    session
        .execute("RVBBIT MAP 'tagger' USING (SELECT 'a' AS text)")
        .await
        .unwrap();
    assert_eq!(server.requests(), 1);
    let plan = session
        .execute(
            "EXPLAIN RVBBIT MAP 'tagger' USING (SELECT text FROM (VALUES ('a'), ('b'), ('a')) AS t(text))",
        )
        .await
        .unwrap();
    let lines: Vec<String> = column(&plan, 0).into_iter().flatten().collect();
    assert!(lines.iter().any(|l| l.contains("cached: 1 of 2")), "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("estimated cost: $0.001") && l.contains("= 1 run(s) × $0.001")),
        "{lines:?}"
    );
    assert_eq!(server.requests(), 1);

    // as_table keeps the result and returns it.
    let kept = session
        .execute("RVBBIT MAP 'tagger' AS t USING (SELECT 'a' AS text) WITH (as_table = 'kept')")
        .await
        .unwrap();
    assert_eq!(kept.row_count(), 1);
    let read = session.execute("SELECT count(*) FROM kept").await.unwrap();
    assert_eq!(column(&read, 0), [Some("1".into())]);

    session
        .execute("CREATE TEMP TABLE tagged AS RVBBIT MAP 'tagger' AS t USING (SELECT 'x' AS text)")
        .await
        .unwrap();
    let read = session.execute("SELECT text, t FROM tagged").await.unwrap();
    assert_eq!(column(&read, 0), [Some("x".into())]);
    assert!(column(&read, 1)[0].as_deref().unwrap().contains("\"X\""));
    // A string literal mentioning RVBBIT MAP is ordinary SQL.
    let plain = session
        .execute("SELECT 'RVBBIT MAP x USING (y)' AS s")
        .await
        .unwrap();
    assert_eq!(column(&plain, 0), [Some("RVBBIT MAP x USING (y)".into())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_shares_one_run_between_rows_with_the_same_key() {
    let (server, h) = setup(Duration::ZERO).await;
    let session = h.runtime.session();
    // Rows 1 and 3 share the key `k1` (their texts differ: the first row's text is mapped); NULL keys
    // never match each other.
    let sql = "RVBBIT MAP 'tagger' AS tag USING (SELECT * FROM (VALUES ('k1', 'a'), ('k2', 'b'), ('k1', 'c'), \
               (NULL, 'd'), (NULL, 'e')) AS t(id, text)) WITH (key = 'ID')";
    let result = session.execute(sql).await.unwrap();
    let tags: Vec<String> = column(&result, 2)
        .into_iter()
        .map(|t| {
            let v: Value = serde_json::from_str(&t.unwrap()).unwrap();
            v["tag"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(tags, ["A", "B", "A", "D", "E"]);
    assert_eq!((result.stats.runs, server.requests()), (4, 4));
}
