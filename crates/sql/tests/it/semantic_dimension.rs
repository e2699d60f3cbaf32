//! DIMENSION functions (docs/semantic-sql.md): `GROUP BY TOPICS(col, n)` asks the model once for the
//! buckets of the column's distinct values, cut to the context budget (the first chunk names the
//! buckets, the others are assigned to them), then groups every row by its value's bucket.

use rvbbit_testkit::{Reply, Script, TestServer};
use serde_json::Value;

use crate::support::{Harness, column};

fn prompt_of(body: &Value) -> String {
    body["messages"][0]["content"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn model() -> TestServer {
    crate::slt::semantic_model().await
}

/// 3,000 rows over 300 distinct values and a 1 KiB budget: the first call names at most 3 topics from a
/// sample spread over the values, every later call assigns a chunk of the rest to those (its prompt lists
/// them), every row lands in one of them, each prompt fits the budget, and a rerun is answered by the
/// cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_by_topics_names_buckets_once_then_assigns_every_chunk_to_them() {
    const BUDGET: usize = 1024;
    let server = model().await;
    let h = Harness::new(&server.base_url(), 4).await;
    let session = h.runtime.session();
    session
        .execute(
            "CREATE TABLE t AS SELECT CASE value % 3 WHEN 0 THEN 'alpha' WHEN 1 THEN 'beta' ELSE 'gamma' END \
             || ' note ' || (value % 300) AS body FROM generate_series(1, 3000)",
        )
        .await
        .unwrap();
    session
        .execute(&format!("SET rvbbit.semantic_context_bytes = {BUDGET}"))
        .await
        .unwrap();
    let sql = "SELECT TOPICS(body, 3) AS topic, count(*) AS n FROM t GROUP BY TOPICS(body, 3) ORDER BY topic";
    let r = session.execute(sql).await.unwrap();
    assert_eq!(
        column(&r, 0),
        [
            Some("alpha".to_owned()),
            Some("beta".to_owned()),
            Some("gamma".to_owned())
        ]
    );
    assert_eq!(
        column(&r, 1),
        [
            Some("1000".to_owned()),
            Some("1000".to_owned()),
            Some("1000".to_owned())
        ]
    );
    let prompts: Vec<String> = server.bodies().iter().map(prompt_of).collect();
    assert!(prompts.len() > 2, "{} calls", prompts.len());
    assert!(
        prompts[0].starts_with("Sort the texts into topics"),
        "{}",
        prompts[0]
    );
    for p in &prompts[1..] {
        assert!(p.starts_with("Put each text under the topic"), "{p}");
        assert!(p.contains(r#"Topics: ["alpha","beta","gamma"]"#), "{p}");
    }
    for p in &prompts {
        let texts = p.lines().find_map(|l| l.strip_prefix("Texts: ")).unwrap();
        assert!(texts.len() <= BUDGET, "{} bytes", texts.len());
    }
    let calls = server.requests();
    let again = session.execute(sql).await.unwrap();
    assert_eq!(column(&again, 1), column(&r, 1));
    assert_eq!(server.requests(), calls, "the rerun is answered by the cache");
}

/// An answer that is not a mapping groups the rows under NULL with a notice; arguments after the column
/// must be literals; the calls count against `rvbbit.max_calls`; a DIMENSION call in a query without FROM says what is missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_answers_and_bad_calls_are_reported() {
    let server = TestServer::start(Script::rule(|_| Reply::text("I cannot do that."))).await;
    let h = Harness::new(&server.base_url(), 4).await;
    let session = h.runtime.session();
    let r = session
        .execute(
            "SELECT topics(x) AS b, count(*) FROM (VALUES ('a'), ('b'), ('a')) AS t(x) GROUP BY topics(x)",
        )
        .await
        .unwrap();
    assert_eq!(column(&r, 0), [None]);
    assert_eq!(column(&r, 1), [Some("3".to_owned())]);
    assert!(
        r.notices
            .iter()
            .any(|n| n.contains("not a JSON object of value → bucket")),
        "{:?}",
        r.notices
    );
    let err = session
        .execute("SELECT count(*) FROM (VALUES ('a')) AS t(x) GROUP BY topics(x, length(x))")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("must be a literal"), "{err}");
    assert_eq!(err.code().code, "RVB-Q001");
    // Its calls count against rvbbit.max_calls: 300 values in 256-byte chunks need more than 2.
    session.execute("SET rvbbit.max_calls = 2").await.unwrap();
    session
        .execute("SET rvbbit.semantic_context_bytes = 256")
        .await
        .unwrap();
    let before = server.requests();
    let err = session
        .execute(
            "SELECT topics(x), count(*) FROM (SELECT 'note ' || value AS x FROM generate_series(1, 300)) \
             GROUP BY topics(x)",
        )
        .await
        .unwrap_err();
    assert_eq!(err.code().code, "RVB-Q006", "{err}");
    assert!(err.to_string().contains("rvbbit.max_calls"), "{err}");
    assert!(server.requests() - before <= 2, "no call past the limit");
    let err = session
        .execute("SELECT 1 GROUP BY topics('a')")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("needs a FROM clause"), "{err}");
}
