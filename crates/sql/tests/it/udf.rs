use std::time::{Duration, Instant};

use rvbbit_core::{EventKind, SessionStatus, codes};
use rvbbit_store::{CostGroup, EventFilter};
use rvbbit_testkit::{Options, Reply, Script, TestServer};
use serde_json::Value;

use crate::support::{Harness, LATENCY, column};

/// The `Input: …` line of the request's last user message.
fn input_of(body: &Value) -> String {
    let last = body["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_owned();
    last.lines()
        .find_map(|l| l.strip_prefix("Input: "))
        .unwrap_or_default()
        .to_owned()
}

/// Replies `<instruction word>:<input>`; inputs starting with `bad` get a permanent 400.
fn script() -> Script {
    Script::rule(|body| {
        let input = input_of(body);
        if input.starts_with("bad") {
            return Reply::error(400, "this input is rejected");
        }
        let prompt = body["messages"][0]["content"].as_str().unwrap_or_default();
        let word = prompt.split_whitespace().next().unwrap_or_default().to_owned();
        Reply::text(format!("  {word}:{input}\n")).cost(0.001)
    })
}

async fn server(latency: Duration) -> TestServer {
    TestServer::start_with(Options::new(script()).latency(latency)).await
}

/// ⌈distinct / concurrency⌉ × latency: the fastest any client can go.
fn physical_limit(distinct: u64, concurrency: u64, latency: Duration) -> Duration {
    latency * u32::try_from(distinct.div_ceil(concurrency)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_rows_respect_concurrency_dedupe_and_the_persistent_cache() {
    let server = server(LATENCY).await;
    let h = Harness::new(&server.base_url(), 32).await;
    let session = h.runtime.session();
    // 1,000 rows over 500 distinct values.
    session
        .execute("CREATE TABLE items AS SELECT 'item' || CAST(value % 500 AS VARCHAR) AS v FROM generate_series(0, 999)")
        .await
        .unwrap();

    let query = "SELECT v, rvbbit_udf('Tag each item', v) AS tag FROM items";
    let started = Instant::now();
    let first = session.execute(query).await.unwrap();
    let elapsed = started.elapsed();
    let limit = physical_limit(500, 32, LATENCY);
    eprintln!("1,000 rows, 500 distinct: {elapsed:?} (physical limit {limit:?})");
    assert_eq!(first.row_count(), 1000);
    assert_eq!(server.requests(), 500, "one call per distinct value");
    assert!(
        server.max_concurrency() <= 32,
        "{} in flight",
        server.max_concurrency()
    );
    assert!(
        server.max_concurrency() >= 16,
        "calls ran concurrently: {}",
        server.max_concurrency()
    );
    // The time bound (within 1.2× of the limit) is measured by scripts/bench-sql.sh, not asserted here:
    // a timed assertion would fail on a loaded machine without anything being wrong.
    let values = column(&first, 0);
    let tags = column(&first, 1);
    for (v, tag) in values.iter().zip(&tags) {
        // Trimmed text; the same value always gets the same answer.
        assert_eq!(
            tag.as_deref(),
            Some(format!("Tag:{}", v.as_deref().unwrap()).as_str())
        );
    }
    assert_eq!(first.stats.runs, 500);
    assert_eq!(first.stats.llm_calls, 500);
    assert_eq!(first.stats.cache_hits, 0);
    assert_eq!(first.stats.errors, 0);
    assert_eq!(first.stats.cost.micros(), 500_000);
    assert!(first.caller_id.as_str().starts_with("sql-"));

    // The same query again: no call at all, every distinct value from the persistent cache.
    let second = session.execute(query).await.unwrap();
    assert_eq!(server.requests(), 500, "the second run makes zero calls");
    assert_eq!(second.stats.runs, 0);
    assert_eq!(second.stats.cache_hits, 500);
    assert_eq!(second.stats.avoided_cost.micros(), 500_000);
    assert_eq!(column(&second, 1), tags);
    assert_ne!(second.caller_id, first.caller_id, "one caller id per statement");
    // Issue 21: 500 hits are one summary event (count, avoided cost, keys by reference), not 500.
    let hits = h.events(second.caller_id.as_str(), EventKind::CacheHit).await;
    assert_eq!(hits.len(), 1, "one cache_hit event per statement");
    let summary = &hits[0].event;
    assert_eq!(summary.cost.map(|c| c.micros()), Some(0));
    assert_eq!(summary.session_id.as_str(), second.caller_id.as_str());
    assert_eq!(summary.metadata["count"], 500);
    assert_eq!(summary.metadata["avoided_cost_micro_usd"], 500_000);
    assert_eq!(summary.metadata["functions"]["rvbbit_udf"], 500);
    assert_eq!(
        summary.metadata["keys"]["sample"].as_array().map(Vec::len),
        Some(8)
    );
    assert_eq!(
        summary.metadata["keys"]["sha256"].as_str().map(str::len),
        Some(64)
    );
    // The query log still shows the statement's hits and avoided cost.
    let log = session
        .execute(&format!(
            "SELECT cache_hits, avoided_cost_micro_usd FROM sql_query_log WHERE caller_id = '{}'",
            second.caller_id
        ))
        .await
        .unwrap();
    assert_eq!(column(&log, 0), vec![Some("500".to_owned())]);
    assert_eq!(column(&log, 1), vec![Some("500000".to_owned())]);

    // A new session (another connection) shares the persistent cache.
    let other = h.runtime.session();
    other
        .execute("CREATE TABLE items AS SELECT 'item' || CAST(value % 500 AS VARCHAR) AS v FROM generate_series(0, 999)")
        .await
        .unwrap();
    assert_eq!(other.execute(query).await.unwrap().stats.cache_hits, 500);
    assert_eq!(server.requests(), 500);

    // Other instructions: calls again.
    let edited = session
        .execute("SELECT rvbbit_udf('Label each item', v) FROM items")
        .await
        .unwrap();
    assert_eq!(edited.stats.runs, 500);
    assert_eq!(server.requests(), 1000);
    assert_eq!(column(&edited, 0)[0].as_deref(), Some("Label:item0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_give_null_are_counted_and_can_raise_or_return_text() {
    let server = server(Duration::ZERO).await;
    let h = Harness::new(&server.base_url(), 8).await;
    let session = h.runtime.session();
    // 100 rows, 5 of them (5 %) rejected permanently by the provider.
    session
        .execute(
            "CREATE TABLE t AS SELECT CASE WHEN value % 20 = 7 THEN 'bad' || CAST(value AS VARCHAR) \
             ELSE 'ok' || CAST(value AS VARCHAR) END AS v FROM generate_series(0, 99)",
        )
        .await
        .unwrap();
    let result = session
        .execute("SELECT v, rvbbit_udf('Echo', v) AS r FROM t ORDER BY v")
        .await
        .unwrap();
    assert_eq!(result.row_count(), 100, "every row comes back");
    let values = column(&result, 0);
    let answers = column(&result, 1);
    let nulls: Vec<&str> = values
        .iter()
        .zip(&answers)
        .filter(|(_, a)| a.is_none())
        .map(|(v, _)| v.as_deref().unwrap())
        .collect();
    assert_eq!(nulls.len(), 5);
    assert!(nulls.iter().all(|v| v.starts_with("bad")), "{nulls:?}");
    assert_eq!(result.stats.errors, 5);
    assert_eq!(result.notices.len(), 1);
    assert!(
        result.notices[0].contains("5 rvbbit function call(s) failed"),
        "{}",
        result.notices[0]
    );
    assert!(result.notices[0].contains("RVB-L005"), "{}", result.notices[0]);

    // Recorded: five failed sessions under the statement's caller, and the statement's summary.
    let caller = result.caller_id.as_str();
    assert_eq!(h.sessions(caller, Some(SessionStatus::Failed)).await, 5);
    assert_eq!(h.sessions(caller, Some(SessionStatus::Completed)).await, 95);
    let log = h.events(caller, EventKind::SqlQuery).await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].event.metadata["errors"], 5);
    assert_eq!(log[0].event.metadata["runs"], 100);
    assert_eq!(log[0].event.metadata["rows_output"], 100);
    assert_eq!(log[0].event.metadata["status"], "completed");
    // ... queryable as the magic table `sql_query_log`.
    let logged = session
        .execute(&format!(
            "SELECT errors, runs, rows_output, status, total_cost, query_raw FROM sql_query_log \
             WHERE caller_id = '{caller}'"
        ))
        .await
        .unwrap();
    assert_eq!(logged.row_count(), 1);
    let row: Vec<Option<String>> = (0..6).map(|c| column(&logged, c)[0].clone()).collect();
    assert_eq!(
        row[..4],
        [
            Some("5".into()),
            Some("100".into()),
            Some("100".into()),
            Some("completed".into())
        ]
    );
    assert_eq!(row[4].as_deref(), Some("0.095"), "95 successful calls at $0.001");
    assert!(row[5].as_deref().unwrap().contains("rvbbit_udf('Echo', v)"));

    // Errors are never cached: the failed inputs are called again, the good ones are hits.
    let before = server.requests();
    let again = session
        .execute("SELECT rvbbit_udf('Echo', v) FROM t")
        .await
        .unwrap();
    assert_eq!(server.requests() - before, 5);
    assert_eq!(again.stats.cache_hits, 95);

    // 'text' mode: RVBBIT's `ERROR: …` strings.
    session.execute("SET rvbbit.udf_errors = 'text'").await.unwrap();
    let text = session
        .execute("SELECT rvbbit_udf('Echo', 'bad-one')")
        .await
        .unwrap();
    let answer = column(&text, 0)[0].clone().unwrap();
    assert!(answer.starts_with("ERROR: [RVB-L005]"), "{answer}");
    assert!(answer.chars().count() <= 57);

    // 'raise' mode: the statement fails with RVB-Q003 naming the cause.
    session.execute("SET rvbbit.udf_errors = 'raise'").await.unwrap();
    let err = session
        .execute("SELECT v, rvbbit_udf('Echo', v) FROM t")
        .await
        .unwrap_err();
    assert_eq!(err.code(), codes::Q_FUNCTION_FAILED);
    assert!(err.to_string().contains("RVB-L005"), "{err}");

    // A setting outside its choices is refused with the choices.
    let err = session
        .execute("SET rvbbit.udf_errors = 'rais'")
        .await
        .unwrap_err();
    assert_eq!(err.code(), codes::Q_ARGUMENT);
    assert!(err.to_string().contains("'null', 'raise' or 'text'"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_statement_is_one_caller_and_costs_sum_by_caller() {
    let server = server(Duration::ZERO).await;
    let h = Harness::new(&server.base_url(), 4).await;
    let session = h.runtime.session();
    let result = session
        .execute(
            "SELECT rvbbit_udf('Upper', x), lars('Upper', x), rvbbit('Lower', x) \
             FROM (VALUES ('a'), ('b'), ('c'), ('a'), (NULL)) AS t(x)",
        )
        .await
        .unwrap();
    assert_eq!(result.row_count(), 5);
    // Aliases share one function: 'Upper' × {a, b, c} = 3 runs (+ 3 for 'Lower'); NULL makes no call.
    assert_eq!(result.stats.runs, 6);
    assert_eq!(server.requests(), 6);
    assert_eq!(column(&result, 1), column(&result, 0));
    assert_eq!(column(&result, 0)[4], None);
    let caller = result.caller_id.as_str();
    assert_eq!(
        h.sessions(caller, None).await,
        6,
        "every per-row session carries the caller id"
    );
    h.flush().await;
    let by_caller = h
        .store
        .costs(
            CostGroup::Caller,
            &EventFilter {
                caller_id: Some(caller.to_owned()),
                ..EventFilter::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(by_caller.len(), 1);
    assert_eq!(by_caller[0].key, caller);
    assert_eq!(by_caller[0].calls, 6);
    assert_eq!(by_caller[0].cost.micros(), 6_000);
    assert_eq!(result.stats.cost.micros(), 6_000);

    // The same from SQL: `all_data` (filters on caller_id and kind go to the store).
    let sums = session
        .execute(&format!(
            "SELECT count(*), sum(cost_micro_usd), count(DISTINCT session_id) FROM all_data \
             WHERE caller_id = '{caller}' AND kind = 'llm_response'"
        ))
        .await
        .unwrap();
    assert_eq!(
        (0..3)
            .map(|c| column(&sums, c)[0].clone().unwrap())
            .collect::<Vec<_>>(),
        ["6", "6000", "6"]
    );
    let starts = session
        .execute("SELECT session_id FROM all_data WHERE kind = 'cascade_start' AND cascade_id = 'sql_udf'")
        .await
        .unwrap();
    assert_eq!(starts.row_count(), 6);
    assert!(
        column(&starts, 0)
            .iter()
            .all(|s| s.as_deref().unwrap().starts_with("udf-"))
    );
    let none = session
        .execute("SELECT * FROM all_data WHERE kind = 'no_such_kind'")
        .await
        .unwrap();
    assert_eq!(none.row_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rvbbit_run_returns_documents_and_misses_the_cache_when_the_cascade_changes() {
    let server = server(Duration::ZERO).await;
    let h = Harness::new(&server.base_url(), 4).await;
    let cascade = "cascade_id: tagger\ncells:\n  - name: tag\n    instructions: |-\n      Tag it\n      Input: {{ input.text }}\n";
    h.write("tagger.yaml", cascade);
    let session = h.runtime.session();
    let query = "SELECT rvbbit_run('tagger', '{\"text\": \"hello\"}') AS doc, \
                 rvbbit_cascade_udf('tagger.yaml', '{\"text\": \"hello\"}', 'missing') AS none";
    let result = session.execute(query).await.unwrap();
    let doc: Value = serde_json::from_str(column(&result, 0)[0].as_deref().unwrap()).unwrap();
    assert_eq!(doc["status"], "success");
    // The cascade's output as it is (rvbbit_udf trims; rvbbit_run returns data untouched).
    assert_eq!(doc["final_output"], "  Tag:hello\n");
    assert_eq!(doc["outputs"]["tag"], "  Tag:hello\n");
    assert!(doc["session_id"].as_str().unwrap().starts_with("udf-"));
    assert_eq!(column(&result, 1)[0], None, "an absent field is NULL");
    assert_eq!(result.stats.runs, 1, "both spellings are one distinct call");

    assert_eq!(session.execute(query).await.unwrap().stats.runs, 0);
    assert_eq!(server.requests(), 1);

    // Editing the cascade file misses the cache.
    h.write("tagger.yaml", &cascade.replace("Tag it", "Tag it well"));
    assert_eq!(session.execute(query).await.unwrap().stats.runs, 1);
    assert_eq!(server.requests(), 2);

    // A missing cascade and a non-object input are failure documents, not errors.
    let bad = session
        .execute("SELECT rvbbit_run('nope', '{}'), rvbbit_run('tagger', '[1]'), rvbbit_run('../x', '{}')")
        .await
        .unwrap();
    let missing: Value = serde_json::from_str(column(&bad, 0)[0].as_deref().unwrap()).unwrap();
    assert_eq!(missing["status"], "failed");
    let error = missing["error"].as_str().unwrap();
    assert!(error.starts_with("Cascade not found: nope ("), "{error}");
    assert!(
        column(&bad, 1)[0]
            .as_deref()
            .unwrap()
            .contains("must be a JSON object")
    );
    assert!(column(&bad, 2)[0].as_deref().unwrap().contains("\"failed\""));
    // Each is a counted error, and the statement's NOTICE names the first one's cascade (issue 14 item
    // 7: a wrong path was a silent NULL in the field form).
    assert_eq!(bad.stats.errors, 3, "{:?}", bad.stats);
    assert_eq!(bad.notices.len(), 1, "{:?}", bad.notices);
    assert!(
        bad.notices[0].starts_with("3 rvbbit function call(s) failed"),
        "{:?}",
        bad.notices
    );
    assert!(
        bad.notices[0].contains("rvbbit_run('nope', …): Cascade not found: nope"),
        "{:?}",
        bad.notices
    );

    // The field form of a missing cascade: NULL, but counted and noticed.
    let field = session
        .execute("SELECT rvbbit_run('missing/triage.yaml', '{}', 'label')")
        .await
        .unwrap();
    assert_eq!(column(&field, 0)[0], None);
    assert_eq!(field.stats.errors, 1);
    assert!(
        field.notices[0].contains("missing/triage.yaml"),
        "{:?}",
        field.notices
    );
    // No path of this machine reaches the client.
    let base = h.dir.path().display().to_string();
    assert!(!field.notices[0].contains(&base), "{:?}", field.notices);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_errors_carry_codes_and_positions() {
    let server = server(Duration::ZERO).await;
    let h = Harness::new(&server.base_url(), 4).await;
    let session = h.runtime.session();
    let err = session.execute("SELEC 1").await.unwrap_err();
    assert_eq!(err.code(), codes::Q_SYNTAX);
    let err = session
        .execute("SELECT *\n  FROM t WHERE x = = 1")
        .await
        .unwrap_err();
    assert_eq!(err.code(), codes::Q_SYNTAX);
    assert_eq!(
        err.to_string(),
        "Expected: an expression, found: = at Line: 2, Column: 20"
    );
    let err = session.execute("SELECT * FROM missing_table").await.unwrap_err();
    assert_eq!(err.code(), codes::Q_SYNTAX);
    assert!(err.to_string().contains("missing_table"), "{err}");
    for bad in [
        r#"{"temperature": 3}"#,
        r#"{"temperature": "hot"}"#,
        r#"{"max_tokens": 0}"#,
        r#"{"top_p": 1}"#,
    ] {
        let err = session
            .execute(&format!("SELECT rvbbit_udf('x', 'y', NULL, '{bad}')"))
            .await
            .unwrap_err();
        assert_eq!(err.code(), codes::Q_ARGUMENT, "{bad}");
        let key = if bad.contains("top_p") {
            "top_p"
        } else {
            bad.split('"').nth(1).unwrap()
        };
        assert!(err.to_string().contains(key), "{bad}: {err}");
    }
    // The options argument can bypass the cache for one call.
    let first = session
        .execute("SELECT rvbbit_udf('Say', 'hi', NULL, '{\"cache\": false}')")
        .await
        .unwrap();
    let second = session
        .execute("SELECT rvbbit_udf('Say', 'hi', NULL, '{\"cache\": false}')")
        .await
        .unwrap();
    assert_eq!((first.stats.runs, second.stats.runs), (1, 1));
    assert_eq!(server.requests(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udf_requests_are_deterministic_by_default_and_sampling_options_reach_the_provider() {
    let server = server(Duration::ZERO).await;
    let h = Harness::new(&server.base_url(), 4).await;
    let session = h.runtime.session();
    session.execute("SELECT rvbbit_udf('Say', 'a')").await.unwrap();
    session
        .execute(r#"SELECT rvbbit_udf('Say', 'a', NULL, '{"temperature": 0.7, "max_tokens": 64}')"#)
        .await
        .unwrap();
    // The same call again: served from the cache, which keys on the sampling settings.
    let again = session
        .execute(r#"SELECT rvbbit_udf('Say', 'a', NULL, '{"temperature": 0.7, "max_tokens": 64}')"#)
        .await
        .unwrap();
    assert_eq!(again.stats.runs, 0);
    let bodies = server.bodies();
    assert_eq!(bodies.len(), 2, "{bodies:?}");
    assert_eq!(bodies[0]["temperature"], 0.0);
    assert!(bodies[0].get("max_tokens").is_none(), "{}", bodies[0]);
    assert_eq!(bodies[1]["temperature"], 0.7);
    assert_eq!(bodies[1]["max_tokens"], 64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn later_batches_of_a_statement_reuse_earlier_answers_row_for_row() {
    let server = server(Duration::ZERO).await;
    let h = Harness::new(&server.base_url(), 4).await;
    let session = h.runtime.session();
    session
        .execute("SET datafusion.execution.batch_size = 64")
        .await
        .unwrap();
    // 1,000 rows in 16 batches over 40 values, a few of them failing.
    let sql = "SELECT v, rvbbit_udf('Tag', v) AS r FROM \
               (SELECT CASE WHEN value % 40 = 7 THEN 'bad' ELSE 'v' END || CAST(value % 40 AS VARCHAR) AS v \
                FROM generate_series(1, 1000)) ORDER BY v";
    let result = session.execute(sql).await.unwrap();
    let (values, answers) = (column(&result, 0), column(&result, 1));
    assert_eq!(values.len(), 1000);
    for (v, r) in values.iter().zip(&answers) {
        let v = v.as_deref().unwrap();
        if v.starts_with("bad") {
            assert_eq!(r, &None, "{v}");
        } else {
            assert_eq!(r.as_deref(), Some(format!("Tag:{v}").as_str()), "{v}");
        }
    }
    assert_eq!(
        server.requests(),
        40,
        "one call per distinct value across all batches"
    );
    assert_eq!((result.stats.runs, result.stats.cache_hits), (40, 0));
    // Failed calls count once per distinct call, not per batch.
    assert_eq!(result.stats.errors, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_statement_cancels_its_runs_and_records_them_as_cancelled() {
    use rvbbit_store::SessionFilter;
    let server = server(Duration::from_secs(5)).await;
    let h = Harness::new(&server.base_url(), 4).await;
    let session = h.runtime.session();
    let sql = "SELECT rvbbit_udf('Tag', 'v' || CAST(value AS VARCHAR)) FROM generate_series(1, 3)";
    // What a CancelRequest or a closed connection does: the statement's future is dropped mid-call.
    let abandoned = tokio::time::timeout(Duration::from_millis(500), session.execute(sql)).await;
    assert!(abandoned.is_err(), "the calls take 5 s");
    let by_status = |status| {
        let store = h.store.clone();
        async move {
            store
                .sessions(&SessionFilter {
                    status: Some(status),
                    limit: Some(100),
                    ..SessionFilter::default()
                })
                .await
                .unwrap()
                .len()
        }
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        h.flush().await;
        if by_status(SessionStatus::Cancelled).await == 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the three runs were not recorded as cancelled"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(by_status(SessionStatus::Running).await, 0);
    // The SQL session goes on working.
    let next = session.execute("SELECT 1 AS one").await.unwrap();
    assert_eq!(column(&next, 0), [Some("1".to_owned())]);
}
