//! DuckDB-dialect compatibility (spec §1.2): JSON helpers, `EXCLUDE`, `VALUES … AS t(a, b)`,
//! `DISTINCT ON`, and the corpus's SQL run as written.

use std::path::Path;

use rvbbit_testkit::{Script, TestServer};
use serde_json::Value;

use crate::support::{Harness, column};

async fn session() -> (TestServer, Harness) {
    let server = TestServer::start(Script::echo()).await;
    let h = Harness::new(&server.base_url(), 4).await;
    (server, h)
}

async fn rows(session: &rvbbit_sql::SqlSession, sql: &str) -> Vec<Option<String>> {
    let r = session
        .execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    column(&r, 0)
}

fn s(v: &str) -> Option<String> {
    Some(v.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_helpers_behave_like_duckdb() {
    let (_server, h) = session().await;
    let q = h.runtime.session();
    assert_eq!(
        rows(&q, "SELECT to_json(named_struct('a', 1, 'b', 'x'))").await,
        [s(r#"{"a":1,"b":"x"}"#)]
    );
    assert_eq!(rows(&q, "SELECT to_json(42)").await, [s("42")]);
    assert_eq!(rows(&q, "SELECT to_json('it''s')").await, [s(r#""it's""#)]);
    assert_eq!(rows(&q, "SELECT to_json(NULL)").await, [None]);
    assert_eq!(rows(&q, "SELECT to_json(make_array(1, 2))").await, [s("[1,2]")]);
    assert_eq!(
        rows(&q, "SELECT json_object('a', 1, 'b', 'x', 'c', NULL, 'd', true)").await,
        [s(r#"{"a":1,"b":"x","c":null,"d":true}"#)]
    );
    assert_eq!(
        rows(&q, "SELECT json_object('id', id, 'name', name) FROM (VALUES (1, 'ann'), (2, 'bob')) AS t(id, name) ORDER BY id").await,
        [s(r#"{"id":1,"name":"ann"}"#), s(r#"{"id":2,"name":"bob"}"#)]
    );
    let doc = r#"'{"a": {"b": [10, {"c": "deep"}], "n": null}, "s": "top"}'"#;
    for (path, string, json) in [
        ("$.a.b[1].c", s("deep"), s(r#""deep""#)),
        ("$.a.b[0]", s("10"), s("10")),
        ("$.s", s("top"), s(r#""top""#)),
        ("s", s("top"), s(r#""top""#)),
        ("a.b", s(r#"[10,{"c":"deep"}]"#), s(r#"[10,{"c":"deep"}]"#)),
        ("/a/b/1/c", s("deep"), s(r#""deep""#)),
        ("$.a.n", None, s("null")),
        ("$.missing", None, None),
        ("$.a.b[9]", None, None),
    ] {
        assert_eq!(
            rows(&q, &format!("SELECT json_extract_string({doc}, '{path}')")).await,
            [string],
            "json_extract_string {path}"
        );
        assert_eq!(
            rows(&q, &format!("SELECT json_extract({doc}, '{path}')")).await,
            [json],
            "json_extract {path}"
        );
    }
    assert_eq!(
        rows(&q, "SELECT json_extract_string('not json', '$.a')").await,
        [None]
    );
    let err = q.execute("SELECT json_extract('{}', '$a')").await.unwrap_err();
    assert_eq!(err.code().code, "RVB-Q004", "{err}");
    assert!(err.to_string().contains("JSON path `$a`"), "{err}");

    // json_group_array: the group's values, NULLs included.
    let r = q
        .execute(
            "SELECT g, json_group_array(x) AS xs FROM (VALUES ('a', 1), ('a', 2), ('b', NULL)) AS t(g, x) \
             GROUP BY g ORDER BY g",
        )
        .await
        .unwrap();
    let xs: Vec<Value> = column(&r, 1)
        .into_iter()
        .map(|t| serde_json::from_str(&t.unwrap()).unwrap())
        .collect();
    let mut a: Vec<i64> = xs[0]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    a.sort_unstable();
    assert_eq!(a, [1, 2]);
    assert_eq!(xs[1], serde_json::json!([null]));
    assert_eq!(
        rows(
            &q,
            "SELECT json_group_array(json_object('k', k)) FROM (VALUES (1)) AS t(k)"
        )
        .await,
        // An object built by json_object is text, so it is a JSON string inside the array (as in DuckDB
        // for VARCHAR values).
        [s(r#"["{\"k\":1}"]"#)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duckdb_select_forms_that_datafusion_supports() {
    let (_server, h) = session().await;
    let q = h.runtime.session();
    let r = q
        .execute("SELECT * EXCLUDE (b) FROM (VALUES (1, 2, 3)) AS t(a, b, c)")
        .await
        .unwrap();
    let names: Vec<&String> = r.schema.fields().iter().map(|f| f.name()).collect();
    assert_eq!(names, ["a", "c"]);
    assert_eq!(
        rows(
            &q,
            "SELECT b FROM (VALUES (1, 'x'), (2, 'y')) AS t(a, b) WHERE a = 2"
        )
        .await,
        [s("y")]
    );
    assert_eq!(
        rows(
            &q,
            "SELECT DISTINCT ON (g) v FROM (VALUES ('a', 3), ('a', 1), ('b', 2)) AS t(g, v) ORDER BY g, v"
        )
        .await,
        [s("1"), s("2")]
    );
    // The row-alias form `to_json(t)` is not DataFusion SQL; the error says where.
    let err = q
        .execute("SELECT to_json(t) FROM (VALUES (1)) AS t(a)")
        .await
        .unwrap_err();
    assert_eq!(err.code().code, "RVB-Q001", "{err}");
}

/// The corpus's `sql_data` queries that use DuckDB's JSON helpers, run as written: the earlier cells'
/// tables are created under the `_<cell>` names they use; `rvbbit_run` of cascades that are not here
/// gives failure documents (data), so no LLM is needed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corpus_queries_run_as_written() {
    const CORPUS: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/corpus/rvbbit-2025-12-25/examples"
    );
    let (server, h) = session().await;
    let q = h.runtime.session();
    for file in ["tiered_cascade_routing.yaml", "test_cascade_udf.yaml"] {
        let path = Path::new(CORPUS).join(file);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (the corpus lives in ../shared/corpus beside the repository)",
                path.display()
            )
        });
        let loaded = rvbbit_cascade::load_str(&path, &text);
        let cascade = loaded.document.and_then(|d| d.cascade().cloned()).unwrap();
        let mut last = None;
        for cell in &cascade.cells {
            let Some(query) = cell
                .inputs
                .as_ref()
                .and_then(|i| i.get("query"))
                .and_then(Value::as_str)
            else {
                continue;
            };
            q.execute(&format!("CREATE TABLE _{} AS {query}", cell.name))
                .await
                .unwrap_or_else(|e| panic!("{file} {}: {e}", cell.name));
            last = Some(cell.name.clone());
        }
        let last = last.unwrap();
        let r = q.execute(&format!("SELECT count(*) FROM _{last}")).await.unwrap();
        assert!(column(&r, 0)[0].as_deref().unwrap() != "0", "{file}");
    }
    // tiered routing: the free tier's json_object is read back by json_extract_string.
    assert_eq!(
        rows(&q, "SELECT method_used FROM _summary WHERE tier = 'free'").await,
        [s("simple_udf")]
    );
    assert_eq!(server.requests(), 0);
}
