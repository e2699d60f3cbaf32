//! Embeddings in SQL (docs/semantic-sql.md): `a SIMILAR_TO b`, `semantic_similarity`, `rvbbit_embed` and
//! `VECTOR_SEARCH`, against the testkit's `/v1/embeddings` (vectors of hashed words, so texts sharing
//! words are similar), with the result cache, `embedding` events and the limits.

use rvbbit_core::EventKind;
use rvbbit_testkit::{EMBED_DIMS, Script, TestServer, hashed_embedding};

use crate::support::{Harness, column};

const PRODUCTS: &str = "CREATE TABLE products AS SELECT * FROM (VALUES (1, 'red apple'), (2, 'green apple pie'), \
                        (3, 'tax return form'), (4, NULL), (5, 'apple red')) AS v(id, name)";

async fn harness(server: &TestServer) -> Harness {
    Harness::configured(&server.base_url(), 4, &[], |s| {
        s.embed_model = Some("test/embed".into());
    })
    .await
}

fn inputs_asked(server: &TestServer) -> usize {
    server
        .embed_requests()
        .iter()
        .map(|b| b["input"].as_array().map_or(0, Vec::len))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn similar_to_scores_by_meaning_and_every_text_is_embedded_once() {
    let server = TestServer::start(Script::echo()).await;
    let h = harness(&server).await;
    let session = h.runtime.session();
    session.execute(PRODUCTS).await.unwrap();
    let sql = "SELECT id, round(name SIMILAR_TO 'red apple', 3) AS s FROM products ORDER BY id";
    let r = session.execute(sql).await.unwrap();
    let expected = |text: &str| {
        let v = rvbbit_llm::cosine(
            &hashed_embedding(text, EMBED_DIMS),
            &hashed_embedding("red apple", EMBED_DIMS),
        );
        Some((v * 1000.0).round() / 1000.0)
    };
    let scores: Vec<Option<f64>> = column(&r, 1)
        .into_iter()
        .map(|v| v.map(|s| s.parse().unwrap()))
        .collect();
    assert_eq!(
        scores,
        [
            Some(1.0),
            expected("green apple pie"),
            expected("tax return form"),
            None,
            Some(1.0),
        ]
    );
    assert!(scores[1].unwrap() > 0.3 && scores[2] == Some(0.0), "{scores:?}");
    // One request for the 5 distinct texts (4 names and the query; 'red apple' is both).
    assert_eq!(server.embed_requests().len(), 1);
    assert_eq!(inputs_asked(&server), 4);
    assert_eq!(server.requests(), 0, "no chat call");
    let events = h.events(r.caller_id.as_str(), EventKind::Embedding).await;
    assert_eq!(events.len(), 1, "one embedding event per request");
    assert_eq!(events[0].event.model.as_deref(), Some("test/embed"));
    assert!(events[0].event.tokens.input.unwrap_or(0) > 0);

    // A rerun in a new session is answered by the result cache: no request, one cache_hit event.
    let other = h.runtime.session();
    other.execute(PRODUCTS).await.unwrap();
    let again = other.execute(sql).await.unwrap();
    assert_eq!(column(&again, 1), column(&r, 1));
    assert_eq!(server.embed_requests().len(), 1, "served from the cache");
    let hits = h.events(again.caller_id.as_str(), EventKind::CacheHit).await;
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].event.metadata["functions"]["embedding"], 4);

    // A bare SIMILAR_TO in WHERE means > 0.5, as ABOUT does.
    let r = session
        .execute("SELECT id FROM products WHERE name SIMILAR_TO 'apple' ORDER BY id")
        .await
        .unwrap();
    let ids = column(&r, 0);
    assert!(
        ids.contains(&Some("1".to_owned())) && !ids.contains(&Some("3".to_owned())),
        "{ids:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vector_search_returns_the_nearest_rows_with_their_scores() {
    let server = TestServer::start(Script::echo()).await;
    let h = harness(&server).await;
    let session = h.runtime.session();
    session.execute(PRODUCTS).await.unwrap();
    let r = session
        .execute("SELECT id, name FROM VECTOR_SEARCH('red apple', 'products', 'name', 2) AS hits")
        .await
        .unwrap();
    let mut ids = column(&r, 0);
    ids.sort();
    assert_eq!(ids, [Some("1".to_owned()), Some("5".to_owned())]);
    let r = session
        .execute("SELECT id, score FROM VECTOR_SEARCH('tax form', 'products.name', 1)")
        .await
        .unwrap();
    assert_eq!(column(&r, 0), [Some("3".to_owned())]);
    // The rows' vectors were asked once; the second search asked only for its query.
    assert_eq!(inputs_asked(&server), 5);

    // rvbbit_embed gives the vector itself.
    let r = session
        .execute("SELECT array_length(rvbbit_embed('red apple')) AS n, rvbbit_embed(NULL) IS NULL AS none")
        .await
        .unwrap();
    assert_eq!(column(&r, 0), [Some(EMBED_DIMS.to_string())]);
    assert_eq!(column(&r, 1), [Some("true".to_owned())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_and_limits_are_clear_and_the_session_keeps_serving() {
    let server = TestServer::start(Script::echo()).await;
    let h = Harness::new(&server.base_url(), 4).await;
    let session = h.runtime.session();
    // No model anywhere.
    let err = session
        .execute("SELECT 'a' SIMILAR_TO 'b'")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no embedding model") && err.contains("rvbbit.embed_model"),
        "{err}"
    );
    session
        .execute("SET rvbbit.embed_model = 'test/embed'")
        .await
        .unwrap();
    // A failed request is NULL for its texts, with a notice; the statement goes on.
    let r = session
        .execute("SELECT semantic_similarity('!status 400', 'x') AS s")
        .await
        .unwrap();
    assert_eq!(column(&r, 0), [None]);
    assert!(
        r.notices.iter().any(|n| n.contains("embeddings request failed")),
        "{:?}",
        r.notices
    );
    // max_calls counts requests.
    session.execute("SET rvbbit.max_calls = 1").await.unwrap();
    session
        .execute("CREATE TABLE many AS SELECT 'text ' || CAST(v AS VARCHAR) AS t FROM generate_series(1, 300) AS s(v)")
        .await
        .unwrap();
    let err = session
        .execute("SELECT t SIMILAR_TO 'q' FROM many")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("rvbbit.max_calls"), "{err}");
    // Two models in one call are refused; a model per call is fine.
    let err = session
        .execute("SELECT semantic_similarity('a', 'b', m) FROM (VALUES ('x/1'), ('x/2')) AS v(m)")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("one model"), "{err}");
    // A text over rvbbit.semantic_context_bytes is NULL, not sent.
    session.execute("SET rvbbit.max_calls = 100").await.unwrap();
    session
        .execute("SET rvbbit.semantic_context_bytes = 256")
        .await
        .unwrap();
    let before = server.embed_requests().len();
    let r = session
        .execute("SELECT rvbbit_embed(repeat('word ', 100)) IS NULL AS cut")
        .await
        .unwrap();
    assert_eq!(column(&r, 0), [Some("true".to_owned())]);
    assert_eq!(server.embed_requests().len(), before);
    // EXPLAIN asks nothing.
    let _ = session
        .execute("EXPLAIN SELECT 'never asked' SIMILAR_TO 'q'")
        .await
        .unwrap();
    assert_eq!(server.embed_requests().len(), before);
    assert_eq!(session.execute("SELECT 1").await.unwrap().batches.len(), 1);
}
