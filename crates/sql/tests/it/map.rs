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

/// `WITH (errors = 'column')`, `dedupe_by`, `infer_schema`, `SET rvbbit.map_default_limit`, and where
/// each run came from (`source` in its session's invocation metadata).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn map_error_column_dedupe_by_infer_schema_default_limit_and_row_source() {
    // `bad` is refused permanently; everything else is tagged.
    let server = TestServer::start(Script::rule(|body| {
        let prompt = body["messages"][0]["content"].as_str().unwrap_or_default();
        let text = prompt
            .lines()
            .find_map(|l| l.strip_prefix("Text: "))
            .unwrap_or_default()
            .to_owned();
        if text == "bad" {
            return Reply::error(400, "this input is rejected");
        }
        Reply::text(format!(
            "{{\"tag\": \"{}\", \"n\": {}, \"ok\": true}}",
            text.to_uppercase(),
            text.len()
        ))
    }))
    .await;
    let h = Harness::new(&server.base_url(), 4).await;
    h.write("tagger.yaml", TAGGER);
    h.write(
        "typed.yaml",
        "cascade_id: typed\ncells:\n  - name: tag\n    instructions: |-\n      Tag it\n      Text: {{ input.text }}\n    output_schema:\n      type: object\n      properties:\n        tag: {type: string}\n        n: {type: integer}\n        ok: {type: boolean}\n",
    );
    let session = h.runtime.session();

    // errors = 'column': the failed row's result is NULL and `<result>_error` says why.
    let r = session
        .execute(
            "RVBBIT MAP 'tagger' AS tag USING (SELECT * FROM (VALUES ('a'), ('bad')) AS t(text)) \
             WITH (errors = 'column')",
        )
        .await
        .unwrap();
    let names: Vec<String> = r.columns().into_iter().map(|c| c.0).collect();
    assert_eq!(names, ["text", "tag", "tag_error"]);
    assert_eq!(column(&r, 1)[1], None);
    assert_eq!(column(&r, 2)[0], None);
    let why = column(&r, 2)[1].clone().unwrap();
    assert!(why.contains("rejected"), "{why}");
    // The result column is JSON (the last cell has an output_schema): psql and drivers see `json`.
    let field = r.schema.field(1);
    assert_eq!(
        field.metadata().get("ARROW:extension:name").map(String::as_str),
        Some("arrow.json")
    );
    // Without the option there is no error column.
    let plain = session
        .execute("RVBBIT MAP 'tagger' USING (SELECT 'a' AS text)")
        .await
        .unwrap();
    assert_eq!(plain.columns().len(), 2);

    // dedupe_by: the first row of each `grp`, in input order, then one run per remaining row.
    let before = server.requests();
    let r = session
        .execute(
            "RVBBIT MAP 'tagger' AS tag USING (SELECT * FROM (VALUES (1, 'x', 'p'), (2, 'y', 'p'), \
             (3, 'z', 'q'), (4, 'w', NULL), (5, 'v', NULL)) AS t(id, text, grp)) WITH (dedupe_by = 'grp')",
        )
        .await
        .unwrap();
    assert_eq!(
        column(&r, 0),
        [Some("1".into()), Some("3".into()), Some("4".into())]
    );
    assert_eq!(server.requests() - before, 3);
    let e = session
        .execute("RVBBIT MAP 'tagger' USING (SELECT 1 AS id) WITH (dedupe_by = 'nope')")
        .await
        .unwrap_err();
    assert_eq!(e.code().code, "RVB-Q004");
    assert!(e.to_string().contains("its columns: id"), "{e}");

    // infer_schema: typed columns from the last cell's output_schema properties.
    let r = session
        .execute("RVBBIT MAP 'typed' USING (SELECT 'abc' AS text) WITH (infer_schema = true)")
        .await
        .unwrap();
    assert_eq!(
        r.columns(),
        [
            ("text".to_owned(), "Utf8".to_owned()),
            ("tag".to_owned(), "Utf8".to_owned()),
            ("n".to_owned(), "Int64".to_owned()),
            ("ok".to_owned(), "Boolean".to_owned()),
        ]
    );
    assert_eq!(column(&r, 1), [Some("ABC".into())]);
    assert_eq!(column(&r, 2), [Some("3".into())]);
    assert_eq!(column(&r, 3), [Some("true".into())]);
    for sql in [
        "RVBBIT MAP 'tagger' USING (SELECT 'a' AS text) WITH (infer_schema = true)",
        "RVBBIT MAP 'typed' AS (tag TEXT) USING (SELECT 'a' AS text) WITH (infer_schema = true)",
        "RVBBIT MAP 'typed' USING (SELECT 'a' AS text) WITH (errors = 'sometimes')",
    ] {
        let e = session.execute(sql).await.unwrap_err();
        assert_eq!(e.code().code, "RVB-Q004", "{sql}: {e}");
    }

    // SET rvbbit.map_default_limit: the cap without WITH (limit = n), with a notice when it cuts.
    session.execute("SET rvbbit.map_default_limit = 2").await.unwrap();
    let shown = session.execute("SHOW rvbbit.map_default_limit").await.unwrap();
    assert_eq!(column(&shown, 1), [Some("2".into())]);
    let r = session
        .execute("RVBBIT MAP 'tagger' USING (SELECT * FROM (VALUES ('a'), ('b'), ('c')) AS t(text))")
        .await
        .unwrap();
    assert_eq!(r.row_count(), 2);
    assert!(
        r.notices.iter().any(|n| n.contains("only the first 2")),
        "{:?}",
        r.notices
    );
    let r = session
        .execute("RVBBIT MAP 'tagger' USING (SELECT * FROM (VALUES ('a'), ('b'), ('c')) AS t(text)) WITH (limit = 3)")
        .await
        .unwrap();
    assert_eq!(r.row_count(), 3);
    let e = session
        .execute("SET rvbbit.map_default_limit = 0")
        .await
        .unwrap_err();
    assert_eq!(e.code().code, "RVB-Q004");

    // Each run records where it came from: the statement (origin, trigger, query hash) and its row.
    let r = session
        .execute(
            "RVBBIT MAP 'tagger' USING (SELECT * FROM (VALUES ('s1', 'k'), ('s2', 'l')) AS t(sku, text)) \
             WITH (key = 'sku')",
        )
        .await
        .unwrap();
    h.flush().await;
    let sessions = h
        .store
        .sessions(&rvbbit_store::SessionFilter {
            caller_id: Some(r.caller_id.as_str().to_owned()),
            ..rvbbit_store::SessionFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(sessions.len(), 2);
    let mut sources: Vec<Value> = sessions
        .iter()
        .map(|s| {
            let m = &s.session.invocation_metadata;
            assert_eq!(m["origin"], "sql", "{m}");
            assert_eq!(m["triggered_by"], "cli", "{m}");
            assert_eq!(m["sql"]["protocol"], "cli", "{m}");
            assert_eq!(m["sql"]["query_hash"].as_str().map(str::len), Some(16), "{m}");
            assert!(m["sql"]["query"].as_str().unwrap().starts_with("RVBBIT MAP"));
            m["source"].clone()
        })
        .collect();
    sources.sort_by_key(|s| s["row_index"].as_u64());
    assert_eq!(
        sources,
        [
            serde_json::json!({"row_index": 0, "column": "sku", "row_key": "s1"}),
            serde_json::json!({"row_index": 1, "column": "sku", "row_key": "s2"}),
        ]
    );
}

/// `WITH (cache = '1h')` (LARS's time-limited cache): the rows are cached with that lifetime, served
/// while it lasts and asked again once it is over; a bad lifetime says what it takes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_lifetime_expires_the_statement_s_entries() {
    let (server, h) = setup(Duration::ZERO).await;
    let session = h.runtime.session();
    let map = |life: &str| {
        format!(
            "RVBBIT MAP 'tagger' USING (SELECT * FROM (VALUES ('kiwi'), ('fig')) AS v(text)) WITH (cache = '{life}')"
        )
    };
    let before = rvbbit_core::Timestamp::now();
    session.execute(&map("1h")).await.unwrap();
    assert_eq!(server.requests(), 2);
    let entries = h.store.cache_entries(None, 100).await.unwrap();
    let lifetimes: Vec<i64> = entries
        .iter()
        .filter_map(|e| e.expires_at.map(|x| x.micros() - before.micros()))
        .collect();
    assert_eq!(lifetimes.len(), 2, "{entries:?}");
    assert!(
        lifetimes
            .iter()
            .all(|us| (3_590_000_000..=3_700_000_000).contains(us)),
        "{lifetimes:?}"
    );
    session.execute(&map("1h")).await.unwrap();
    assert_eq!(server.requests(), 2, "served from the cache while it lasts");

    // Other rows with a 1-second lifetime: served at once, asked again after it.
    let short = "RVBBIT MAP 'tagger' USING (SELECT 'plum' AS text) WITH (cache = '1s')";
    session.execute(short).await.unwrap();
    session.execute(short).await.unwrap();
    assert_eq!(server.requests(), 3);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    session.execute(short).await.unwrap();
    assert_eq!(server.requests(), 4, "an expired entry is not served");

    for bad in ["soon", "0s", "400d", "1y"] {
        let err = session.execute(&map(bad)).await.unwrap_err().to_string();
        assert!(err.contains("'30m', '1h' or '7d'"), "{bad}: {err}");
    }
}
