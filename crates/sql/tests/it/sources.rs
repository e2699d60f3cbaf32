//! Data sources: `[sql.tables]` (CSV, NDJSON, JSON arrays, Parquet, folders, http URLs), `CREATE EXTERNAL
//! TABLE` for the three formats (local and over a real HTTP server), the DuckDB `read_*` table functions,
//! and clear errors for missing files.

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rvbbit_testkit::{Script, TestServer};
use tempfile::TempDir;

use crate::support::{Harness, column};

/// A static file server (GET/HEAD with byte ranges, as object stores read files).
async fn serve_files(dir: PathBuf) -> SocketAddr {
    async fn file(State(dir): State<PathBuf>, Path(path): Path<String>, headers: HeaderMap) -> Response {
        let Ok(bytes) = std::fs::read(dir.join(&path)) else {
            return StatusCode::NOT_FOUND.into_response();
        };
        let len = bytes.len();
        let modified = (header::LAST_MODIFIED, "Wed, 21 Oct 2015 07:28:00 GMT".to_owned());
        let range = headers
            .get(header::RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|r| r.strip_prefix("bytes="))
            .and_then(|r| r.split_once('-'));
        if let Some((a, b)) = range {
            let (start, end) = if a.is_empty() {
                (len.saturating_sub(b.parse::<usize>().unwrap()), len - 1)
            } else {
                let end = if b.is_empty() {
                    len - 1
                } else {
                    b.parse::<usize>().unwrap().min(len - 1)
                };
                (a.parse::<usize>().unwrap(), end)
            };
            return (
                StatusCode::PARTIAL_CONTENT,
                [
                    (header::CONTENT_RANGE, format!("bytes {start}-{end}/{len}")),
                    modified,
                ],
                bytes[start..=end].to_vec(),
            )
                .into_response();
        }
        ([modified], bytes).into_response()
    }
    let app = axum::Router::new()
        .route("/{*path}", axum::routing::get(file))
        .with_state(dir);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn write(dir: &std::path::Path, name: &str, text: &str) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

async fn one(session: &rvbbit_sql::SqlSession, sql: &str) -> Vec<Option<String>> {
    let r = session
        .execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    column(&r, 0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_tables_are_in_every_session() {
    let files = TempDir::new().unwrap();
    write(files.path(), "remote.csv", "id,name\n1,ann\n2,bob\n");
    let addr = serve_files(files.path().to_path_buf()).await;
    let llm = TestServer::start(Script::echo()).await;
    let remote = format!("http://{addr}/remote.csv");
    let h = Harness::with_tables(
        &llm.base_url(),
        4,
        &[
            ("orders", "data/orders.csv"),
            ("events", "logs"),
            ("people", "people.json"),
            ("facts", "facts.parquet"),
            ("remote", &remote),
            ("gone", "nope/missing.csv"),
        ],
    )
    .await;
    let dir = h.dir.path().to_path_buf();
    write(&dir, "data/orders.csv", "id,amount\n1,10\n2,20\n3,30\n");
    write(&dir, "logs/a.jsonl", "{\"kind\": \"x\"}\n{\"kind\": \"y\"}\n");
    write(&dir, "logs/b.jsonl", "{\"kind\": \"x\"}\n");
    write(
        &dir,
        "people.json",
        "[{\"name\": \"ann\", \"age\": 3}, {\"name\": \"bob\", \"age\": 5}]",
    );
    let session = h.runtime.session();
    let parquet = dir.join("facts.parquet");
    session
        .execute(&format!(
            "COPY (SELECT * FROM (VALUES (1, 'x'), (2, 'y')) AS t(k, v)) TO '{}' STORED AS PARQUET",
            parquet.display()
        ))
        .await
        .unwrap();

    assert_eq!(
        one(&session, "SELECT sum(amount) FROM orders").await,
        [Some("60".into())]
    );
    assert_eq!(
        one(&session, "SELECT count(*) FROM events WHERE kind = 'x'").await,
        [Some("2".into())]
    );
    assert_eq!(
        one(&session, "SELECT name FROM people WHERE age > 4").await,
        [Some("bob".into())]
    );
    assert_eq!(
        one(&session, "SELECT v FROM facts WHERE k = 2").await,
        [Some("y".into())]
    );
    assert_eq!(
        one(&session, "SELECT name FROM remote ORDER BY id").await,
        [Some("ann".into()), Some("bob".into())]
    );
    // Another session of the runtime sees them too, and SHOW TABLES lists them.
    let other = h.runtime.session();
    let tables = one(&other, "SELECT table_name FROM information_schema.tables").await;
    assert!(tables.contains(&Some("orders".into())), "{tables:?}");
    assert_eq!(
        one(&other, "SELECT count(*) FROM orders").await,
        [Some("3".into())]
    );

    // A missing file names the table and the path.
    let err = session.execute("SELECT * FROM gone").await.unwrap_err();
    assert_eq!(err.code().code, "RVB-Q002", "{err}");
    let text = err.to_string();
    assert!(
        text.contains("table `gone`") && text.contains("nope/missing.csv"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_tables_and_read_functions_for_every_format() {
    let llm = TestServer::start(Script::echo()).await;
    let h = Harness::new(&llm.base_url(), 4).await;
    let dir = h.dir.path().to_path_buf();
    write(&dir, "data/orders.csv", "id,amount\n1,10\n2,20\n3,30\n");
    write(&dir, "data/semi.tsv", "a\tb\n1\t2\n");
    write(
        &dir,
        "logs/a.json",
        "{\"kind\": \"x\", \"n\": 1}\n{\"kind\": \"y\", \"n\": 2}\n",
    );
    write(&dir, "array.json", "[{\"kind\": \"z\"}]");
    let session = h.runtime.session();
    let parquet = dir.join("facts.parquet");
    session
        .execute(&format!(
            "COPY (SELECT * FROM (VALUES (1, 'x'), (2, 'y')) AS t(k, v)) TO '{}' STORED AS PARQUET",
            parquet.display()
        ))
        .await
        .unwrap();
    let addr = serve_files(dir.clone()).await;

    // CREATE EXTERNAL TABLE: CSV, JSON (newline-delimited) folder, Parquet; then the same over HTTP.
    for (name, format, location) in [
        ("c", "CSV", dir.join("data/orders.csv").display().to_string()),
        ("j", "JSON", format!("{}/", dir.join("logs").display())),
        ("p", "PARQUET", parquet.display().to_string()),
        ("hc", "CSV", format!("http://{addr}/data/orders.csv")),
        ("hj", "JSON", format!("http://{addr}/logs/a.json")),
        ("hp", "PARQUET", format!("http://{addr}/facts.parquet")),
    ] {
        session
            .execute(&format!(
                "CREATE EXTERNAL TABLE {name} STORED AS {format} LOCATION '{location}'"
            ))
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    for t in ["c", "hc"] {
        assert_eq!(
            one(&session, &format!("SELECT sum(amount) FROM {t}")).await,
            [Some("60".into())]
        );
    }
    for t in ["j", "hj"] {
        assert_eq!(
            one(&session, &format!("SELECT sum(n) FROM {t}")).await,
            [Some("3".into())]
        );
    }
    for t in ["p", "hp"] {
        assert_eq!(
            one(&session, &format!("SELECT v FROM {t} WHERE k = 1")).await,
            [Some("x".into())]
        );
    }

    // DuckDB's table functions; relative paths start at the base directory.
    assert_eq!(
        one(
            &session,
            "SELECT sum(amount) FROM read_csv_auto('data/orders.csv')"
        )
        .await,
        [Some("60".into())]
    );
    assert_eq!(
        one(&session, "SELECT a FROM read_csv('data/semi.tsv')").await,
        [Some("1".into())]
    );
    assert_eq!(
        one(&session, "SELECT count(*) FROM read_json('logs')").await,
        [Some("2".into())]
    );
    assert_eq!(
        one(&session, "SELECT kind FROM read_json_auto('array.json')").await,
        [Some("z".into())]
    );
    assert_eq!(
        one(&session, "SELECT count(*) FROM read_parquet('facts.parquet')").await,
        [Some("2".into())]
    );
    assert_eq!(
        one(
            &session,
            &format!("SELECT count(*) FROM read_parquet('http://{addr}/facts.parquet')")
        )
        .await,
        [Some("2".into())]
    );

    let err = session
        .execute("SELECT * FROM read_csv_auto('nope.csv')")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("read_csv_auto('nope.csv')"), "{err}");
    assert!(err.to_string().contains("does not exist"), "{err}");
    for bad in ["read_parquet(42)", "read_csv('data/orders.csv', 'x')"] {
        let err = session
            .execute(&format!("SELECT * FROM {bad}"))
            .await
            .unwrap_err();
        assert_eq!(err.code().code, "RVB-Q004", "{err}");
        assert!(err.to_string().contains("takes one argument"), "{err}");
    }
}

/// The network doors' file rule (`Settings::confine_files`): statements read only local files under the
/// base directory and the roots (symbolic links followed first), name no URLs and write no files;
/// `[sql.tables]` stays the operator's. The command line's sessions are not confined.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_doors_read_only_files_under_their_folders_and_write_none() {
    let outside = TempDir::new().unwrap();
    write(outside.path(), "secret.csv", "token\nSECRET-OUTSIDE\n");
    write(outside.path(), "remote.csv", "id\n7\n");
    let addr = serve_files(outside.path().to_path_buf()).await;
    let llm = TestServer::start(Script::echo()).await;
    let configured = format!("{}", outside.path().join("remote.csv").display());
    let h = Harness::configured(&llm.base_url(), 4, &[("ops", configured.as_str())], |s| {
        s.confine_files = true;
    })
    .await;
    let dir = h.dir.path().to_path_buf();
    write(&dir, "data/orders.csv", "id,amount\n1,10\n2,20\n");
    std::os::unix::fs::symlink(outside.path().join("secret.csv"), dir.join("data/leak.csv")).unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.join("escape")).unwrap();
    let secret = outside.path().join("secret.csv").display().to_string();
    let session = h.runtime.session();

    // Inside: read functions, external tables, in-memory tables that change.
    assert_eq!(
        one(&session, "SELECT sum(amount) FROM read_csv('data/orders.csv')").await,
        [Some("30".into())]
    );
    let inside = dir.join("data/orders.csv").display().to_string();
    session
        .execute(&format!(
            "CREATE EXTERNAL TABLE o STORED AS CSV LOCATION '{inside}'"
        ))
        .await
        .unwrap();
    assert_eq!(one(&session, "SELECT count(*) FROM o").await, [Some("2".into())]);
    session.execute("CREATE TABLE m AS SELECT 1 AS x").await.unwrap();
    session.execute("INSERT INTO m VALUES (2)").await.unwrap();
    assert_eq!(one(&session, "SELECT sum(x) FROM m").await, [Some("3".into())]);
    // The operator's [sql.tables] may point anywhere.
    assert_eq!(one(&session, "SELECT id FROM ops").await, [Some("7".into())]);

    let refused = [
        format!("SELECT * FROM read_csv('{secret}')"),
        "SELECT * FROM read_csv('../secret.csv')".to_owned(),
        format!("SELECT * FROM read_csv('file://{secret}')"),
        "SELECT * FROM read_csv('data/leak.csv')".to_owned(),
        "SELECT * FROM read_csv('escape/secret.csv')".to_owned(),
        "SELECT * FROM read_csv('data/../../secret.csv')".to_owned(),
        format!("SELECT * FROM read_csv('http://{addr}/secret.csv')"),
        "SELECT * FROM read_parquet('s3://bucket/x.parquet')".to_owned(),
        "SELECT * FROM read_json('/etc/passwd')".to_owned(),
        format!("CREATE EXTERNAL TABLE s STORED AS CSV LOCATION '{secret}'"),
        "CREATE EXTERNAL TABLE s STORED AS CSV LOCATION 'escape/'".to_owned(),
        format!("CREATE EXTERNAL TABLE s STORED AS CSV LOCATION 'http://{addr}/secret.csv'"),
        "COPY (SELECT 1 AS x) TO 'out.csv' STORED AS CSV".to_owned(),
        "EXPLAIN COPY (SELECT 1 AS x) TO 'out.json' STORED AS JSON".to_owned(),
        "INSERT INTO o VALUES (3, 30)".to_owned(),
    ];
    for sql in &refused {
        let e = session.execute(sql).await.expect_err(&format!("refused: {sql}"));
        assert_eq!(e.code().code, "RVB-Q005", "{sql}: {e}");
        let text = e.to_string();
        assert!(!text.contains("SECRET-OUTSIDE"), "{sql}: {text}");
        assert!(
            !text.contains(&dir.display().to_string()),
            "{sql} names the server's folder: {text}"
        );
    }
    // Nothing was written, and the external table did not change.
    assert!(!dir.join("out.csv").exists() && !dir.join("out.json").exists());
    assert_eq!(one(&session, "SELECT count(*) FROM o").await, [Some("2".into())]);
    assert!(session.context().table_exist("s").is_ok_and(|exists| !exists));

    // The command line's runtime has no such rule.
    let cli = Harness::new(&llm.base_url(), 4).await;
    assert_eq!(
        one(
            &cli.runtime.session(),
            &format!("SELECT token FROM read_csv('{secret}')")
        )
        .await,
        [Some("SECRET-OUTSIDE".into())]
    );
}
