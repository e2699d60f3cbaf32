//! Many rows per prompt (docs/semantic-sql.md): a SCALAR operator asks up to
//! `rvbbit.semantic_batch_size` distinct rows in one call, re-asks only the rows a reply missed, halves
//! the batch on a context-length refusal, keeps every row in the cache under its one-row key, and the
//! statement's calls are bounded by `rvbbit.max_calls`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rvbbit_testkit::{Reply, Script, TestServer, batch_answer, batch_rows};
use serde_json::Value;

use crate::support::{Harness, column};

/// The prompt of a request.
fn prompt_of(body: &Value) -> String {
    body["messages"][0]["content"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The built-in MEANS answer of the scripted model: true when the text names a colour of `COLOURS`.
fn means(one_row_prompt: &str) -> bool {
    const COLOURS: [&str; 3] = ["green", "navy", "red"];
    let text = one_row_prompt
        .lines()
        .find_map(|l| l.strip_prefix("Text: "))
        .unwrap_or_default()
        .to_lowercase();
    COLOURS.iter().any(|c| text.contains(c))
}

/// A model answering MEANS prompts, one row or many; `skip` decides which rows a batch reply leaves out
/// (by the row's one-row prompt).
async fn model(skip: impl Fn(&str) -> bool + Send + Sync + 'static) -> TestServer {
    TestServer::start(Script::rule(move |body: &Value| {
        let prompt = prompt_of(body);
        match batch_rows(&prompt) {
            Some(rows) => {
                let answers: Vec<(u64, Value)> = rows
                    .iter()
                    .filter(|(_, one)| !skip(one))
                    .map(|(id, one)| (*id, Value::Bool(means(one))))
                    .collect();
                Reply::text(batch_answer(&answers)).cost(0.002)
            }
            None => Reply::text(if means(&prompt) { "true" } else { "false" }).cost(0.001),
        }
    }))
    .await
}

/// `../shared/fixtures/products.csv` as the table `products` of a new session.
async fn products(h: &Harness) -> rvbbit_sql::SqlSession {
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/products.csv");
    std::fs::copy(&fixture, h.path("products.csv"))
        .expect("../shared/fixtures/products.csv beside the repository");
    let session = h.runtime.session();
    session
        .execute("CREATE TABLE products AS SELECT * FROM read_csv('products.csv')")
        .await
        .unwrap();
    session
}

const QUERY: &str = "SELECT id FROM products WHERE name MEANS 'a fruit' ORDER BY id";

fn ids(r: &rvbbit_sql::QueryResult) -> Vec<String> {
    column(r, 0).into_iter().map(|v| v.unwrap_or_default()).collect()
}

/// The measurement, less its timing (that is `scripts/bench-semantic.sh`): 1,000 rows of
/// products.csv, 795 distinct names, asked 16 per prompt, keep the same rows as one call per row, in
/// at most ⌈distinct ÷ 16⌉ calls (plus one per DataFusion partition that ends a batch short), and a
/// rerun makes no call at all, with either batch size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn where_means_over_products_asks_16_rows_per_call_and_keeps_the_rows_of_one_row_calls() {
    let one_by_one = model(|_| false).await;
    let h1 = Harness::new(&one_by_one.base_url(), 8).await;
    let s1 = products(&h1).await;
    s1.execute("SET rvbbit.semantic_batch_size = 1").await.unwrap();
    let expected = ids(&s1.execute(QUERY).await.unwrap());
    let distinct: usize = column(
        &s1.execute("SELECT count(DISTINCT name) FROM products")
            .await
            .unwrap(),
        0,
    )[0]
    .as_deref()
    .unwrap()
    .parse()
    .unwrap();
    assert_eq!(distinct, 795);
    assert_eq!(
        one_by_one.requests() as usize,
        distinct,
        "one call per distinct row"
    );
    assert!(
        !expected.is_empty() && expected.len() < 1000,
        "{}",
        expected.len()
    );

    let batched = model(|_| false).await;
    let h = Harness::new(&batched.base_url(), 8).await;
    let session = products(&h).await;
    let got = ids(&session.execute(QUERY).await.unwrap());
    assert_eq!(got, expected, "the same rows as one call per row");
    let calls = batched.requests() as usize;
    let partitions = 2;
    assert!(
        calls <= distinct.div_ceil(16) + partitions,
        "{calls} calls for {distinct} distinct rows"
    );
    for body in batched.bodies() {
        let rows = batch_rows(&prompt_of(&body))
            .expect("every call is a batch")
            .len();
        assert!(rows <= 16, "{rows} rows in one prompt");
    }

    // A rerun is answered by the cache, whatever the batch size.
    let again = ids(&session.execute(QUERY).await.unwrap());
    assert_eq!(again, expected);
    session
        .execute("SET rvbbit.semantic_batch_size = 4")
        .await
        .unwrap();
    assert_eq!(ids(&session.execute(QUERY).await.unwrap()), expected);
    assert_eq!(batched.requests() as usize, calls, "no call on rerun");
}

/// One row a batch reply leaves out is asked again alone (its one-row prompt), and only it; a row that
/// no reply ever answers is NULL by itself with a notice, and the other rows keep their answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_missing_from_a_batch_reply_is_re_asked_alone_and_a_row_that_always_fails_is_null_alone() {
    let asked = Arc::new(AtomicUsize::new(0));
    let count = asked.clone();
    // `cherry red` is left out of the first batch reply only; `boom` is never answered, and its
    // one-row call fails.
    let server = TestServer::start(Script::rule(move |body: &Value| {
        let prompt = prompt_of(body);
        match batch_rows(&prompt) {
            Some(rows) => {
                let first = count.fetch_add(1, Ordering::SeqCst) == 0;
                let answers: Vec<(u64, Value)> = rows
                    .iter()
                    .filter(|(_, one)| !(one.contains("boom") || (first && one.contains("cherry red"))))
                    .map(|(id, one)| (*id, Value::Bool(means(one))))
                    .collect();
                Reply::text(batch_answer(&answers))
            }
            None if prompt.contains("boom") => Reply::error(400, "bad request for boom"),
            None => Reply::text(if means(&prompt) { "true" } else { "false" }),
        }
    }))
    .await;
    let h = Harness::new(&server.base_url(), 4).await;
    let session = h.runtime.session();
    let r = session
        .execute(
            "SELECT x, x MEANS 'a colour' FROM (VALUES ('navy cap'), ('cherry red'), ('plain hat'), \
             ('boom'), ('green tea')) AS t(x) ORDER BY x",
        )
        .await
        .unwrap();
    assert_eq!(
        column(&r, 1),
        [
            None,
            Some("true".to_owned()),
            Some("true".to_owned()),
            Some("true".to_owned()),
            Some("false".to_owned())
        ],
        "boom, cherry red, green tea, navy cap, plain hat"
    );
    assert!(r.notices.iter().any(|n| n.contains("boom")), "{:?}", r.notices);
    let prompts: Vec<String> = server.bodies().iter().map(prompt_of).collect();
    assert_eq!(batch_rows(&prompts[0]).map(|r| r.len()), Some(5), "{prompts:?}");
    // Round two asks the two rows the first reply missed in one batch; `boom` is then asked alone.
    let second = batch_rows(&prompts[1]).expect("a second batch");
    assert_eq!(second.len(), 2, "{second:?}");
    assert!(second.iter().any(|(_, p)| p.contains("cherry red")));
    assert_eq!(prompts.len(), 3, "{prompts:?}");
    assert!(batch_rows(&prompts[2]).is_none() && prompts[2].contains("Text: boom"));
}

/// A batch the model refuses for its context length is split in halves until it fits, with a notice;
/// every row is still answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_context_length_refusal_halves_the_batch() {
    let server = TestServer::start(Script::rule(|body: &Value| {
        let prompt = prompt_of(body);
        match batch_rows(&prompt) {
            Some(rows) if rows.len() > 4 => Reply::error(
                400,
                "This model's maximum context length is 100 tokens (context_length_exceeded)",
            ),
            Some(rows) => Reply::text(batch_answer(
                &rows
                    .iter()
                    .map(|(id, one)| (*id, Value::Bool(means(one))))
                    .collect::<Vec<_>>(),
            )),
            None => Reply::text(if means(&prompt) { "true" } else { "false" }),
        }
    }))
    .await;
    let h = Harness::new(&server.base_url(), 4).await;
    let session = h.runtime.session();
    let r = session
        .execute(
            "SELECT count(*) FROM generate_series(1, 16) AS t(v) \
             WHERE (CASE WHEN v % 2 = 0 THEN 'red ' ELSE 'blue ' END || v) MEANS 'a colour'",
        )
        .await
        .unwrap();
    assert_eq!(column(&r, 0), [Some("8".to_owned())]);
    assert!(
        r.notices.iter().any(|n| n.contains("context length")),
        "{:?}",
        r.notices
    );
    let sizes: Vec<usize> = server
        .bodies()
        .iter()
        .map(|b| batch_rows(&prompt_of(b)).map_or(1, |r| r.len()))
        .collect();
    // 16 refused, then 8 + 8 refused, then four batches of 4.
    assert_eq!(sizes.iter().filter(|&&n| n == 4).count(), 4, "{sizes:?}");
    assert_eq!(sizes.len(), 7, "{sizes:?}");
}

/// `rvbbit.max_calls` bounds a statement's calls: over it the statement fails with the limit's code and
/// names the setting, before any call is made; the session goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_calls_refuses_a_statement_before_any_call() {
    let server = model(|_| false).await;
    let h = Harness::new(&server.base_url(), 4).await;
    let session = h.runtime.session();
    session.execute("SET rvbbit.max_calls = 3").await.unwrap();
    session
        .execute("SET rvbbit.semantic_batch_size = 2")
        .await
        .unwrap();
    let err = session
        .execute("SELECT count(*) FROM generate_series(1, 10) AS t(v) WHERE ('item ' || v) MEANS 'x'")
        .await
        .unwrap_err();
    assert_eq!(err.code().code, "RVB-Q006", "{err}");
    assert!(err.to_string().contains("rvbbit.max_calls"), "{err}");
    assert_eq!(server.requests(), 0);
    let err = session
        .execute(
            "SELECT count(*) FROM generate_series(1, 4) AS t(v) WHERE rvbbit_udf('Tag', 'v' || v) IS NULL",
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("rvbbit.max_calls"), "{err}");
    let ok = session
        .execute("SELECT count(*) FROM generate_series(1, 6) AS t(v) WHERE ('item ' || v) MEANS 'x'")
        .await
        .unwrap();
    assert_eq!(column(&ok, 0), [Some("0".to_owned())]);
    assert_eq!(server.requests(), 3);
    let bad = session
        .execute("SET rvbbit.semantic_batch_size = 0")
        .await
        .unwrap_err();
    assert!(bad.to_string().contains("rvbbit.semantic_batch_size"), "{bad}");
    for (setting, value) in [("max_calls", "0"), ("semantic_batch_size", "1001")] {
        let bad = session
            .execute(&format!("SET rvbbit.{setting} = {value}"))
            .await
            .unwrap_err();
        assert!(bad.to_string().contains(&format!("rvbbit.{setting}")), "{bad}");
    }
}

/// Instructions that branch on a value cannot share one task with marks: each item of the batch then
/// carries its whole task, and the answers are the same as one row per call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instructions_that_branch_on_a_value_send_each_rows_whole_task() {
    let server = model(|_| false).await;
    let h = Harness::new(&server.base_url(), 4).await;
    let file = "cascade_id: loud\nsql_function:\n  args: [{name: text}]\n  returns: BOOLEAN\n  \
                operators: ['{{ text }} IS_LOUD']\ncells:\n  - name: answer\n    instructions: |-\n      \
                Is it loud?{% if input.text | length > 8 %} It is long.{% endif %}\n      Text: {{ input.text }}\n";
    std::fs::create_dir_all(h.path("cascades")).unwrap();
    std::fs::write(h.path("cascades/loud.yaml"), file).unwrap();
    let session = h.runtime.session();
    let r = session
        .execute("SELECT x IS_LOUD FROM (VALUES ('red'), ('a long navy coat'), ('blue')) AS t(x) ORDER BY x")
        .await
        .unwrap();
    assert_eq!(
        column(&r, 0),
        [
            Some("true".to_owned()),
            Some("false".to_owned()),
            Some("true".to_owned())
        ]
    );
    let prompt = prompt_of(&server.bodies()[0]);
    assert!(prompt.starts_with("Do each of the 3 tasks"), "{prompt}");
    assert!(prompt.contains("It is long."), "{prompt}");
    assert_eq!(server.requests(), 1);
}

/// `cache_ttl` of an operator file bounds its cache entries, whether a row was answered alone or in a
/// batch: each entry expires `cache_ttl` seconds after it was written, and an expired entry is not
/// served (the row is asked again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_ttl_bounds_the_cache_entries_of_an_operator() {
    let server = model(|_| false).await;
    let h = Harness::new(&server.base_url(), 4).await;
    let file = "cascade_id: red_ttl\nsql_function:\n  args: [{name: text}]\n  returns: BOOLEAN\n  cache_ttl: 3600\n  \
                operators: ['{{ text }} IS_RED']\ncells:\n  - name: answer\n    instructions: |-\n      Is it red?\n      \
                Text: {{ input.text }}\n";
    std::fs::create_dir_all(h.path("cascades")).unwrap();
    std::fs::write(h.path("cascades/red.yaml"), file).unwrap();
    let session = h.runtime.session();
    let sql = "SELECT x IS_RED FROM (VALUES ('red hat'), ('blue'), ('green')) AS t(x) ORDER BY x";
    session.execute(sql).await.unwrap();
    session.execute("SELECT 'one red' IS_RED").await.unwrap();
    let entries = h.store.cache_entries(None, 100).await.unwrap();
    assert_eq!(entries.len(), 4, "{entries:?}");
    for e in &entries {
        let ttl = e.expires_at.expect("an expiry").micros() - e.created_at.micros();
        assert_eq!(ttl, 3_600_000_000, "{e:?}");
    }
    // An expired entry is not served: the row is asked again.
    let calls = server.requests();
    let later = rvbbit_core::Timestamp::now().add_micros(3_700_000_000);
    let found = h
        .store
        .cache_peek_many(&[entries[0].key.clone()], later)
        .await
        .unwrap();
    assert!(found[0].is_none(), "expired entries are not served");
    session.execute(sql).await.unwrap();
    assert_eq!(server.requests(), calls, "still fresh now: served from the cache");
}

/// With `rvbbit.semantic_cheap_model`, the cheap model answers every row first, with a confidence; only
/// the rows below `rvbbit.semantic_confidence` go to the function's own model, and
/// `sql_query_log.decided_by` counts the rows each model decided.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cheap_model_decides_the_rows_it_is_sure_of_and_the_rest_go_to_the_main_model() {
    let server = TestServer::start(Script::rule(|body: &Value| {
        let prompt = prompt_of(body);
        let rows = batch_rows(&prompt).unwrap_or_default();
        if body["model"] == "cheap/model" {
            // Sure of red and blue only (and wrong about nothing it is sure of).
            let items: Vec<Value> = rows
                .iter()
                .map(|(id, one)| {
                    let sure = one.contains("red") || one.contains("blue");
                    serde_json::json!({"id": id, "answer": means(one), "confidence": if sure { 0.95 } else { 0.3 }})
                })
                .collect();
            return Reply::text(Value::Array(items).to_string());
        }
        let answers: Vec<(u64, Value)> = rows.iter().map(|(id, one)| (*id, Value::Bool(means(one)))).collect();
        Reply::text(batch_answer(&answers))
    }))
    .await;
    let h = Harness::new(&server.base_url(), 4).await;
    let session = h.runtime.session();
    session
        .execute("SET rvbbit.semantic_cheap_model = 'cheap/model'")
        .await
        .unwrap();
    let r = session
        .execute(
            "SELECT x, x MEANS 'a colour' FROM (VALUES ('red hat'), ('blue sky'), ('navy cap'), ('green tea'), \
             ('plain hat')) AS t(x) ORDER BY x",
        )
        .await
        .unwrap();
    assert_eq!(
        column(&r, 1),
        [
            Some("false".to_owned()),
            Some("true".to_owned()),
            Some("true".to_owned()),
            Some("false".to_owned()),
            Some("true".to_owned())
        ],
        "blue sky, green tea, navy cap, plain hat, red hat"
    );
    let bodies = server.bodies();
    assert_eq!(bodies.len(), 2, "one cheap batch, one main batch");
    assert_eq!(bodies[0]["model"], "cheap/model");
    assert!(prompt_of(&bodies[0]).contains("\"confidence\""));
    assert_eq!(bodies[1]["model"], "test/model");
    assert_eq!(batch_rows(&prompt_of(&bodies[1])).map(|r| r.len()), Some(3));
    // Exactly the rows the cheap model was unsure of reach the main model.
    let mut main_rows: Vec<String> = batch_rows(&prompt_of(&bodies[1]))
        .unwrap_or_default()
        .iter()
        .filter_map(|(_, one)| {
            one.lines()
                .find_map(|l| l.strip_prefix("Text: "))
                .map(str::to_owned)
        })
        .collect();
    main_rows.sort();
    assert_eq!(main_rows, ["green tea", "navy cap", "plain hat"]);
    let log = session
        .execute(&format!(
            "SELECT decided_by FROM sql_query_log WHERE caller_id = '{}'",
            r.caller_id
        ))
        .await
        .unwrap();
    let decided: Value = serde_json::from_str(column(&log, 0)[0].as_deref().unwrap()).unwrap();
    assert_eq!(decided, serde_json::json!({"cheap/model": 2, "test/model": 3}));
    let bad = session
        .execute("SET rvbbit.semantic_confidence = 2")
        .await
        .unwrap_err();
    assert!(bad.to_string().contains("rvbbit.semantic_confidence"), "{bad}");
}

/// `EXPLAIN` of a semantic query says what it would ask before anything is spent: rows, distinct
/// values, cache hits, calls at the batch size, prompt tokens and a cost; after a run, the same EXPLAIN
/// finds every row in the cache. DIMENSION and `rvbbit_udf` calls are estimated too, and nothing is
/// called.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_estimates_rows_calls_and_tokens_without_calling() {
    let server = model(|_| false).await;
    let h = Harness::new(&server.base_url(), 8).await;
    let session = products(&h).await;
    let lines = |r: &rvbbit_sql::QueryResult| -> Vec<String> {
        let types = column(r, 0);
        let plans = column(r, 1);
        types
            .into_iter()
            .zip(plans)
            .filter(|(t, _)| t.as_deref() == Some("rvbbit_estimate"))
            .map(|(_, p)| p.unwrap_or_default())
            .collect()
    };
    let explain = format!("EXPLAIN {QUERY}");
    let before = lines(&session.execute(&explain).await.unwrap());
    assert_eq!(before.len(), 1, "{before:?}");
    assert!(
        before[0].starts_with(
            "semantic_matches: 1000 row(s), 795 distinct, 0 in the cache -> 50 call(s) of up to 16 row(s), about "
        ),
        "{}",
        before[0]
    );
    assert!(before[0].contains("cost unknown"), "{}", before[0]);
    assert_eq!(server.requests(), 0, "EXPLAIN asks nothing");

    session.execute(QUERY).await.unwrap();
    let calls = server.requests();
    let after = lines(&session.execute(&explain).await.unwrap());
    assert!(
        after[0].contains("795 distinct, 795 in the cache -> 0 call(s)") && after[0].ends_with("cost $0"),
        "{}",
        after[0]
    );

    let other = lines(
        &session
            .execute(
                "EXPLAIN SELECT TOPICS(name, 3) AS t, count(*) FROM products GROUP BY TOPICS(name, 3) \
                 HAVING max(rvbbit_udf('Tag', brand)) IS NOT NULL",
            )
            .await
            .unwrap(),
    );
    assert!(
        other
            .iter()
            .any(|l| l.starts_with("topics_dimension: 795 row(s), 795 distinct")),
        "{other:?}"
    );
    assert!(other.iter().any(|l| l.starts_with("rvbbit_udf: ")), "{other:?}");
    assert_eq!(server.requests(), calls, "nothing asked");
}
