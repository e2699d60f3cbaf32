//! Hostile input to the SQL door (issue 13): expression depth, statement count and text size limits
//! (RVB-Q006), probed just below (the statement runs, with the right answer) and just above (refused);
//! statements far past the limits that used to overflow a thread's stack; and the network doors' file
//! rule through folders (a symbolic link inside an allowed folder that leads outside) and for the
//! server's secret files. After each refusal the session and a new one still answer.

use std::path::Path;

use rvbbit_sql::{Settings, SqlSession};
use rvbbit_testkit::{Script, TestServer};
use tempfile::TempDir;

use crate::support::{Harness, column};

/// `SELECT 1+1+…` with `n` terms: `n` expression levels under the query (depth n + 1).
fn chain(n: usize) -> String {
    format!("SELECT {} AS v", vec!["1"; n].join("+"))
}

/// `SELECT true AND true AND …` with `n` terms (depth n + 1).
fn and_chain(n: usize) -> String {
    format!("SELECT {} AS v", vec!["true"; n].join(" AND "))
}

/// `n` nested `CASE WHEN true THEN … ELSE 0 END` around `1`.
fn nested_case(n: usize) -> String {
    let open = "CASE WHEN true THEN ".repeat(n);
    let close = " ELSE 0 END".repeat(n);
    format!("SELECT {open}1{close} AS v")
}

/// `n` parentheses around `1`.
fn parens(n: usize) -> String {
    format!("SELECT {}1{} AS v", "(".repeat(n), ")".repeat(n))
}

/// `n` nested `abs(…)` calls around `1`.
fn calls(n: usize) -> String {
    format!("SELECT {}1{} AS v", "abs(".repeat(n), ")".repeat(n))
}

/// `n` nested scalar subqueries around `1`.
fn subqueries(n: usize) -> String {
    let open = "SELECT (".repeat(n);
    let close = ") AS v".repeat(n);
    format!("{open}SELECT 1 AS v{close}")
}

async fn value(session: &SqlSession, sql: &str) -> Option<String> {
    let result = session
        .execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{e} ({} bytes)", sql.len()));
    column(&result, 0).into_iter().next().flatten()
}

async fn refused(session: &SqlSession, sql: &str) -> rvbbit_sql::Error {
    session
        .execute(sql)
        .await
        .expect_err(&format!("refused ({} bytes): {:.80}", sql.len(), sql))
}

/// The session and a new one of the same runtime still answer.
async fn still_serving(h: &Harness, session: &SqlSession) {
    assert_eq!(value(session, "SELECT 1").await.as_deref(), Some("1"));
    assert_eq!(
        value(&h.runtime.session(), "SELECT 1").await.as_deref(),
        Some("1")
    );
}

async fn harness(configure: impl FnOnce(&mut Settings)) -> (TestServer, Harness) {
    let llm = TestServer::start(Script::echo()).await;
    let h = Harness::configured(&llm.base_url(), 4, &[], configure).await;
    (llm, h)
}

/// issue_13: chains that sqlparser builds without recursion (`1+1+…`, `AND`) are measured against
/// `limits.sql_expression_depth` (default 256): one level below runs and is right, one above is refused
/// with RVB-Q006 naming the setting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_13_chains_run_up_to_the_depth_limit_and_are_refused_past_it() {
    let (_llm, h) = harness(|_| {}).await;
    let session = h.runtime.session_for(rvbbit_core::Origin::Sql, "postgresql_wire");
    // The default limit: 255 terms are 256 levels deep.
    assert_eq!(value(&session, &chain(255)).await.as_deref(), Some("255"));
    let e = refused(&session, &chain(256)).await;
    assert_eq!(e.code().code, "RVB-Q006", "{e}");
    assert!(e.to_string().contains("limits.sql_expression_depth = 256"), "{e}");
    assert!(e.to_string().contains("rvbbit.toml [limits]"), "{e}");
    assert_eq!(value(&session, &and_chain(255)).await.as_deref(), Some("true"));
    assert_eq!(refused(&session, &and_chain(256)).await.code().code, "RVB-Q006");
    still_serving(&h, &session).await;
}

/// issue_13: the 166-byte statements of the report and statements near `limits.sql_query_bytes`
/// (1 MiB) that nest hundreds of thousands of levels deep are refused; nothing overflows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_13_statements_that_aborted_the_server_are_refused() {
    let (_llm, h) = harness(|_| {}).await;
    let session = h.runtime.session();
    let reported = [chain(80), nested_case(20), and_chain(200)];
    // Below the default limits these run (on the SQL threads' big stacks).
    assert_eq!(value(&session, &reported[0]).await.as_deref(), Some("80"));
    assert_eq!(value(&session, &reported[1]).await.as_deref(), Some("1"));
    assert_eq!(value(&session, &reported[2]).await.as_deref(), Some("true"));
    let huge = [
        chain(500_000),
        and_chain(100_000),
        format!("SELECT {}", vec!["x::int"; 100_000].join("+")),
        format!("SELECT 1 WHERE {}", vec!["1=1"; 140_000].join(" OR ")),
    ];
    for sql in &huge {
        assert!(sql.len() <= 1024 * 1024, "{}", sql.len());
        let e = refused(&session, sql).await;
        assert_eq!(e.code().code, "RVB-Q006", "{e}");
    }
    still_serving(&h, &session).await;
}

/// issue_13: parentheses, nested CASE, nested function calls and subqueries recurse in the SQL parser;
/// its recursion limit (`datafusion.sql_parser.recursion_limit`, 50, capped at the depth limit) stops
/// them with RVB-Q006 before anything could overflow, also when a client raises it with SET.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_13_nesting_is_bounded_by_the_parser_recursion_limit() {
    let (_llm, h) = harness(|_| {}).await;
    let session = h.runtime.session();
    type Shape = fn(usize) -> String;
    // (shape, deepest accepted at the default recursion limit of 50)
    let shapes: [(&str, Shape, usize); 2] = [("parentheses", parens, 47), ("CASE", nested_case, 47)];
    for (name, shape, deepest) in shapes {
        assert_eq!(
            value(&session, &shape(deepest)).await.as_deref(),
            Some("1"),
            "{name} at {deepest}"
        );
        let e = refused(&session, &shape(deepest + 1)).await;
        assert_eq!(e.code().code, "RVB-Q006", "{name}: {e}");
        assert!(
            e.to_string().contains("datafusion.sql_parser.recursion_limit"),
            "{name}: {e}"
        );
    }
    // Nested subqueries: planning time doubles per level, so they stop at 256 / 20 = 12 levels.
    assert_eq!(value(&session, &subqueries(11)).await.as_deref(), Some("1"));
    let e = refused(&session, &subqueries(12)).await;
    assert_eq!(e.code().code, "RVB-Q006", "{e}");
    assert!(
        e.to_string()
            .contains("subqueries or function calls deeper than 12 levels"),
        "{e}"
    );
    // Nested function calls share that bound (through pgwire, `abs(abs(…))` 47 deep never finished).
    assert_eq!(value(&session, &calls(12)).await.as_deref(), Some("1"));
    let e = refused(&session, &calls(13)).await;
    assert_eq!(e.code().code, "RVB-Q006", "{e}");
    assert!(
        e.to_string().contains("function calls deeper than 12 levels"),
        "{e}"
    );
    // A client cannot lift the parser's limit past limits.sql_expression_depth (256).
    session
        .execute("SET datafusion.sql_parser.recursion_limit = 1000000")
        .await
        .unwrap();
    assert_eq!(value(&session, &parens(200)).await.as_deref(), Some("1"));
    for sql in [
        parens(100_000),
        nested_case(20_000),
        calls(50_000),
        subqueries(10_000),
    ] {
        let e = refused(&session, &sql).await;
        assert_eq!(e.code().code, "RVB-Q006", "{e}");
    }
    still_serving(&h, &session).await;
}

/// issue_13: `limits.sql_statements` and `limits.sql_query_bytes` are checked before parsing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_13_statement_count_and_text_size_are_refused_before_parsing() {
    let (_llm, h) = harness(|s| {
        s.limits.query_bytes = 1000;
        s.limits.statements = 3;
    })
    .await;
    let session = h.runtime.session();
    // Exactly 1000 bytes runs; 1001 is refused.
    let padded = |len: usize| {
        let head = "SELECT 7 AS v -- ";
        format!("{head}{}", "x".repeat(len - head.len()))
    };
    assert_eq!(value(&session, &padded(1000)).await.as_deref(), Some("7"));
    let e = refused(&session, &padded(1001)).await;
    assert_eq!(e.code().code, "RVB-Q006", "{e}");
    assert!(e.to_string().contains("limits.sql_query_bytes = 1000"), "{e}");
    // Three statements are counted and pass the limit (the session then runs one at a time);
    // four are refused as a limit, semicolons in strings and comments do not count.
    let e = refused(&session, "SELECT 1; SELECT 2; SELECT 3").await;
    assert_eq!(e.code().code, "RVB-Q001", "{e}");
    let e = refused(&session, "SELECT 1; SELECT 2; SELECT 3; SELECT 4").await;
    assert_eq!(e.code().code, "RVB-Q006", "{e}");
    assert!(e.to_string().contains("limits.sql_statements = 3"), "{e}");
    assert_eq!(
        value(&session, "SELECT ';;;;' AS v -- ;;;;").await.as_deref(),
        Some(";;;;")
    );
    // 50,000 statements: refused by counting tokens, without parsing or running any.
    let (_llm, h) = harness(|_| {}).await;
    let session = h.runtime.session();
    let e = refused(&session, &"SELECT 1;".repeat(50_000)).await;
    assert!(e.to_string().contains("limits.sql_statements = 64"), "{e}");
    still_serving(&h, &session).await;
}

/// issue_13: RVBBIT MAP's USING query is checked like a client's statement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_13_map_using_queries_are_checked() {
    let (_llm, h) = harness(|s| s.limits.expression_depth = 40).await;
    h.write(
        "echo.yaml",
        "cascade_id: echo\ncells:\n  - name: e\n    instructions: |-\n      Echo {{ input.v }}\n",
    );
    let session = h.runtime.session();
    let sql = format!(
        "RVBBIT MAP 'echo.yaml' USING (SELECT {} AS v)",
        vec!["1"; 100].join("+")
    );
    let e = refused(&session, &sql).await;
    assert_eq!(e.code().code, "RVB-Q006", "{e}");
    still_serving(&h, &session).await;
}

fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// issue_13: a folder inside the allowed folders holding a symbolic link that leads outside is refused
/// for every read function and `CREATE EXTERNAL TABLE` (RVB-Q005, naming the entry, never a server
/// path); a clean folder is read as its vetted files, so a link planted later is not read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_13_folders_with_links_leading_outside_are_refused() {
    let outside = TempDir::new().unwrap();
    write(outside.path(), "secret.csv", "a\nSECRET-OUTSIDE\n");
    write(outside.path(), "secret.json", "{\"a\": \"SECRET-OUTSIDE\"}\n");
    write(outside.path(), "secret.parquet", "SECRET-OUTSIDE");
    let (_llm, h) = harness(|s| s.confine_files = true).await;
    let dir = h.dir.path().to_path_buf();
    let link = |target: &str, at: &str| {
        std::os::unix::fs::symlink(outside.path().join(target), dir.join(at)).unwrap();
    };
    write(&dir, "sub/good.csv", "a\nfine\n");
    link("secret.csv", "sub/evil.csv");
    write(&dir, "js/good.json", "{\"a\": \"fine\"}\n");
    link("secret.json", "js/evil.json");
    std::fs::create_dir_all(dir.join("pq")).unwrap();
    link("secret.parquet", "pq/evil.parquet");
    write(&dir, "clean/a.csv", "a\nfine\n");
    let session = h.runtime.session();
    for sql in [
        "SELECT * FROM read_csv('sub/')",
        "SELECT * FROM read_csv_auto('sub')",
        "SELECT * FROM read_json('js/')",
        "SELECT * FROM read_ndjson('js')",
        "SELECT * FROM read_parquet('pq/')",
        "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION 'sub/'",
        "CREATE EXTERNAL TABLE t STORED AS JSON LOCATION 'js/'",
        "CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION 'pq/'",
    ] {
        let e = refused(&session, sql).await;
        assert_eq!(e.code().code, "RVB-Q005", "{sql}: {e}");
        let text = e.to_string();
        assert!(text.contains("evil."), "{sql} names the entry: {text}");
        assert!(!text.contains("SECRET-OUTSIDE"), "{sql}: {text}");
        assert!(!text.contains(&dir.display().to_string()), "{sql}: {text}");
        assert!(
            !text.contains(&outside.path().display().to_string()),
            "{sql}: {text}"
        );
    }
    assert!(session.context().table_exist("t").is_ok_and(|e| !e));

    // A clean folder reads; a link planted after CREATE EXTERNAL TABLE is not read by the table.
    assert_eq!(
        value(&session, "SELECT count(*) FROM read_csv('clean/')")
            .await
            .as_deref(),
        Some("1")
    );
    session
        .execute("CREATE EXTERNAL TABLE c STORED AS CSV LOCATION 'clean/'")
        .await
        .unwrap();
    link("secret.csv", "clean/late.csv");
    let all = session.execute("SELECT a FROM c").await.unwrap();
    assert_eq!(column(&all, 0), [Some("fine".to_owned())]);
    // …while read_csv of the folder now refuses it.
    let e = refused(&session, "SELECT * FROM read_csv('clean/')").await;
    assert!(e.to_string().contains("late.csv"), "{e}");
    still_serving(&h, &session).await;
}

/// issue_13: the server's configuration, secrets and store files are never read through a network
/// door: directly, through a link, or in a folder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_13_secret_files_are_never_read() {
    let (_llm, h) = harness(|s| s.confine_files = true).await;
    let dir = h.dir.path().to_path_buf();
    write(&dir, "rvbbit.toml", "a\nprovider-api-key-SECRET\n");
    write(&dir, ".env", "a\nenv-SECRET\n");
    write(&dir, "conf/rvbbit.toml", "a\nnested-SECRET\n");
    write(&dir, "conf/other.csv", "a\nfine\n");
    write(&dir, ".rvbbit/rvbbit.db", "a\ndb-SECRET\n");
    write(&dir, ".rvbbit/rvbbit.db-wal", "a\nwal-SECRET\n");
    std::os::unix::fs::symlink(dir.join("rvbbit.toml"), dir.join("cfg.csv")).unwrap();
    std::fs::create_dir_all(dir.join("links")).unwrap();
    std::os::unix::fs::symlink(dir.join(".rvbbit/rvbbit.db"), dir.join("links/db.csv")).unwrap();
    let session = h.runtime.session();
    for sql in [
        "SELECT * FROM read_csv('rvbbit.toml')",
        "SELECT * FROM read_csv('./conf/../rvbbit.toml')",
        "SELECT * FROM read_csv('.env')",
        "SELECT * FROM read_csv('.rvbbit/rvbbit.db')",
        "SELECT * FROM read_csv('.rvbbit/rvbbit.db-wal')",
        "SELECT * FROM read_csv('cfg.csv')",
        "SELECT * FROM read_csv('links/')",
        "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION 'rvbbit.toml'",
        "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION 'conf/'",
        "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION 'links/'",
        "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '.rvbbit/'",
    ] {
        let e = refused(&session, sql).await;
        assert_eq!(e.code().code, "RVB-Q005", "{sql}: {e}");
        assert!(!e.to_string().contains("SECRET"), "{sql}: {e}");
    }
    // The folder's other files are still readable by name.
    assert_eq!(
        value(&session, "SELECT a FROM read_csv('conf/other.csv')")
            .await
            .as_deref(),
        Some("fine")
    );
    still_serving(&h, &session).await;
}

/// Measurement probe (run by hand, see docs/sql.md "Limits"): runs shape `RVBBIT_PROBE_SHAPE` with
/// `RVBBIT_PROBE_N` terms in plain DataFusion on a thread of `RVBBIT_PROBE_STACK_MB` MiB; the process
/// aborts when the stack overflows.
#[test]
#[ignore = "a measurement probe, run by hand with its environment variables"]
fn probe_depth() {
    let shape = std::env::var("RVBBIT_PROBE_SHAPE").unwrap();
    let n: usize = std::env::var("RVBBIT_PROBE_N").unwrap().parse().unwrap();
    let mb: usize = std::env::var("RVBBIT_PROBE_STACK_MB").unwrap().parse().unwrap();
    let sql = match shape.as_str() {
        "chain" => chain(n),
        "and" => and_chain(n),
        "case" => nested_case(n),
        "parens" => parens(n),
        "calls" => calls(n),
        "subqueries" => subqueries(n),
        other => panic!("unknown shape {other}"),
    };
    std::thread::Builder::new()
        .stack_size(mb * 1024 * 1024)
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                use rvbbit_sql::datafusion::prelude::{SessionConfig, SessionContext};
                let config =
                    SessionConfig::new().set_usize("datafusion.sql_parser.recursion_limit", 1_000_000);
                let ctx = SessionContext::new_with_config(config);
                ctx.sql(&sql).await.unwrap().collect().await.unwrap();
            });
        })
        .unwrap()
        .join()
        .unwrap();
}
