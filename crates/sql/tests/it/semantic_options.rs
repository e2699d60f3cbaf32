//! A statement's own options (docs/semantic-sql.md, "Statement options"): `… WITH (cascade =
//! 'cheap/model', cheap_threshold = 0.9, batch_size = 4, cache = '1h')` at the end of a query sets them
//! for that statement only; a cheap model answers first on the one-row path too (K = 1), with the same
//! `sql_query_log.decided_by`; bad options are refused (RVB-Q008) before anything is asked.

use rvbbit_testkit::{Reply, Script, TestServer, batch_rows};
use serde_json::{Value, json};

use crate::support::{Harness, column};

/// The prompt of a request.
fn prompt_of(body: &Value) -> String {
    body["messages"][0]["content"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The `Text: …` line of a one-row prompt.
fn text_of(one_row_prompt: &str) -> String {
    one_row_prompt
        .lines()
        .find_map(|l| l.strip_prefix("Text: "))
        .unwrap_or_default()
        .to_lowercase()
}

/// Whether the text names red, navy or green (the right answer of "a colour").
fn colour(one: &str) -> bool {
    ["red", "navy", "green"].iter().any(|c| text_of(one).contains(c))
}

/// A model that answers differently per model: `cheap/model` answers batch prompts (one row or many)
/// with a confidence, sure (0.95) of the rows naming red or blue only, and wrong about blue; any
/// other model answers batch prompts and one-row prompts right.
async fn two_models() -> TestServer {
    TestServer::start(Script::rule(|body: &Value| {
        let prompt = prompt_of(body);
        match batch_rows(&prompt) {
            Some(rows) if body["model"] == "cheap/model" => {
                let items: Vec<Value> = rows
                    .iter()
                    .map(|(id, one)| {
                        let text = text_of(one);
                        let sure = text.contains("red") || text.contains("blue");
                        json!({"id": id, "answer": colour(one) || text.contains("blue"),
                               "confidence": if sure { 0.95 } else { 0.3 }})
                    })
                    .collect();
                Reply::text(Value::Array(items).to_string())
            }
            Some(rows) => {
                let items: Vec<Value> = rows
                    .iter()
                    .map(|(id, one)| json!({"id": id, "answer": colour(one)}))
                    .collect();
                Reply::text(Value::Array(items).to_string())
            }
            None => Reply::text(if colour(&prompt) { "true" } else { "false" }),
        }
    }))
    .await
}

const ROWS: &str = "(VALUES ('red hat'), ('blue sky'), ('navy cap'), ('green tea'), ('plain hat')) AS t(x)";

/// The models of the requests from `from` on.
fn models(server: &TestServer, from: u64) -> Vec<String> {
    server.bodies()[usize::try_from(from).unwrap()..]
        .iter()
        .map(|b| b["model"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn decided(session: &rvbbit_sql::SqlSession, r: &rvbbit_sql::QueryResult) -> Option<Value> {
    let log = session
        .execute(&format!(
            "SELECT decided_by FROM sql_query_log WHERE caller_id = '{}'",
            r.caller_id
        ))
        .await
        .unwrap();
    column(&log, 0)
        .into_iter()
        .next()
        .flatten()
        .map(|d| serde_json::from_str(&d).unwrap())
}

/// `WITH (cascade = 'cheap/model')` asks the cheap model first for this statement only: the rows it is
/// sure of are its answers (blue sky, wrongly, as a cheap model may be), the others go to the main
/// model, and `sql_query_log.decided_by` counts both; the next statement asks the main model only, and
/// `cascade = off` turns a session's cheap model off for one statement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_cascade_asks_a_cheap_model_first_for_that_statement_only() {
    let server = two_models().await;
    let h = Harness::new(&server.base_url(), 4).await;
    let session = h.runtime.session();
    let r = session
        .execute(&format!(
            "SELECT x, x MEANS 'a colour' FROM {ROWS} ORDER BY x\nWITH (cascade = 'cheap/model', cheap_threshold = 0.9);"
        ))
        .await
        .unwrap();
    let answers: Vec<Option<String>> = column(&r, 1);
    assert_eq!(
        answers,
        ["true", "true", "true", "false", "true"].map(|a| Some(a.to_owned())),
        "blue sky (the cheap model's), green tea, navy cap, plain hat, red hat"
    );
    assert_eq!(models(&server, 0), ["cheap/model", "test/model"]);
    assert_eq!(
        decided(&session, &r).await,
        Some(json!({"cheap/model": 2, "test/model": 3}))
    );
    let options = h
        .events(r.caller_id.as_str(), rvbbit_core::EventKind::SqlQuery)
        .await;
    assert_eq!(
        options[0].event.metadata["options"],
        json!({"cascade": "cheap/model", "cheap_threshold": 0.9})
    );

    // The session has no cheap model: the next statement asks the main model only.
    let asked = server.requests();
    let r = session
        .execute("SELECT x MEANS 'a colour' FROM (VALUES ('red car'), ('blue car')) AS t(x)")
        .await
        .unwrap();
    assert_eq!(models(&server, asked), ["test/model"]);
    assert_eq!(decided(&session, &r).await, None);

    // A session's cheap model, turned off for one statement.
    session
        .execute("SET rvbbit.semantic_cheap_model = 'cheap/model'")
        .await
        .unwrap();
    let asked = server.requests();
    session
        .execute(
            "SELECT x MEANS 'a colour' FROM (VALUES ('red cup'), ('blue cup')) AS t(x) WITH (cascade = off)",
        )
        .await
        .unwrap();
    assert_eq!(models(&server, asked), ["test/model"]);
}

/// The cheap model on the one-row path: with one row per call (`SET rvbbit.semantic_batch_size = 1`,
/// or an operator file's `batch_size: 1`) the cheap model is asked each row alone, and only the rows it
/// is unsure of run the function's own one-row cascade; `decided_by` counts both as on the batched
/// path, and EXPLAIN shows the two stages. A function whose cascade cannot be asked this way (two
/// cells) says so in a notice and its own model answers every row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cheap_model_answers_first_one_row_per_call() {
    let server = two_models().await;
    let h = Harness::new(&server.base_url(), 4).await;
    h.write(
        "cascades/is_colour.yaml",
        "cascade_id: is_colour\nsql_function:\n  args: [{name: text}]\n  returns: BOOLEAN\n  batch_size: 1\n\
         cells:\n  - name: judge\n    instructions: \"Decide whether the text names a colour.\\nText: {{ input.text }}\"\n",
    );
    h.write(
        "cascades/two_step.yaml",
        "cascade_id: two_step\nsql_function:\n  args: [{name: text}]\n  returns: BOOLEAN\n\
         cells:\n  - name: look\n    instructions: \"Describe it.\\nText: {{ input.text }}\"\n  \
         - name: judge\n    instructions: \"Decide.\\nText: {{ input.text }}\"\n",
    );
    let session = h.runtime.session();
    session
        .execute("SET rvbbit.semantic_batch_size = 1")
        .await
        .unwrap();
    let r = session
        .execute(&format!(
            "SELECT x, x MEANS 'a colour' FROM {ROWS} ORDER BY x WITH (cascade = 'cheap/model')"
        ))
        .await
        .unwrap();
    assert_eq!(
        column(&r, 1),
        ["true", "true", "true", "false", "true"].map(|a| Some(a.to_owned()))
    );
    let bodies = server.bodies();
    let cheap: Vec<&Value> = bodies.iter().filter(|b| b["model"] == "cheap/model").collect();
    assert_eq!(cheap.len(), 5, "the cheap model is asked each row alone");
    assert!(
        cheap
            .iter()
            .all(|b| batch_rows(&prompt_of(b)).map(|r| r.len()) == Some(1))
    );
    assert!(prompt_of(cheap[0]).contains("\"confidence\""));
    let mut main: Vec<String> = bodies
        .iter()
        .filter(|b| b["model"] == "test/model")
        .map(|b| {
            let prompt = prompt_of(b);
            assert!(
                batch_rows(&prompt).is_none(),
                "the main model gets one-row prompts: {prompt}"
            );
            text_of(&prompt)
        })
        .collect();
    main.sort();
    assert_eq!(main, ["green tea", "navy cap", "plain hat"]);
    assert_eq!(
        decided(&session, &r).await,
        Some(json!({"cheap/model": 2, "test/model": 3}))
    );

    // An operator file asked one row per call, whatever the session's batch size.
    session
        .execute("SET rvbbit.semantic_batch_size = 16")
        .await
        .unwrap();
    let explain = session
        .execute("EXPLAIN SELECT is_colour(x) FROM (VALUES ('red ink'), ('grey ink')) AS t(x) WITH (cascade = 'cheap/model')")
        .await
        .unwrap();
    let lines: Vec<String> = column(&explain, 1).into_iter().flatten().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("is_colour:") && l.contains("two stages: cheap/model first (2 call(s))")),
        "{lines:?}"
    );
    let asked = server.requests();
    let r = session
        .execute("SELECT is_colour(x) FROM (VALUES ('red ink'), ('grey ink')) AS t(x) WITH (cascade = 'cheap/model')")
        .await
        .unwrap();
    assert_eq!(
        models(&server, asked),
        ["cheap/model", "cheap/model", "test/model"]
    );
    assert_eq!(
        decided(&session, &r).await,
        Some(json!({"cheap/model": 1, "test/model": 1}))
    );

    // Two cells: no cheap model, and a notice saying why.
    let asked = server.requests();
    let r = session
        .execute("SELECT two_step(x) FROM (VALUES ('red pen')) AS t(x) WITH (cascade = 'cheap/model')")
        .await
        .unwrap();
    assert!(models(&server, asked).iter().all(|m| m == "test/model"));
    assert!(
        r.notices.iter().any(|n| n.contains(
            "two_step: the cheap model cheap/model is not asked first: its cascade has more than one cell"
        )),
        "{:?}",
        r.notices
    );
}

/// `WITH (cache = '1h')` keeps the statement's new cache entries for an hour (served meanwhile);
/// `cache = false` neither reads nor fills the cache for that statement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_cache_sets_the_lifetime_of_the_statement_s_entries() {
    let server = two_models().await;
    let h = Harness::new(&server.base_url(), 4).await;
    let session = h.runtime.session();
    let sql =
        "SELECT x MEANS 'a colour' FROM (VALUES ('red hat'), ('plain hat')) AS t(x) WITH (cache = '1h')";
    let before = rvbbit_core::Timestamp::now();
    session.execute(sql).await.unwrap();
    assert_eq!(server.requests(), 1);
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
    session.execute(sql).await.unwrap();
    assert_eq!(server.requests(), 1, "served from the cache while it lasts");
    session
        .execute(
            "SELECT x MEANS 'a colour' FROM (VALUES ('red hat'), ('plain hat')) AS t(x) WITH (cache = false)",
        )
        .await
        .unwrap();
    assert_eq!(server.requests(), 2, "cache = false asks again");
}

/// Hostile and malformed clauses: an unknown option (the message lists the known ones), an option
/// twice, a value out of range or over 256 bytes, a clause that is not `key = value`; each is RVB-Q008
/// before anything is asked. A `WITH (…)` inside a string, a comment or a subquery is not the
/// statement's, and other statements keep their own `WITH`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_statement_options_are_refused_before_anything_is_asked() {
    let server = two_models().await;
    let h = Harness::new(&server.base_url(), 4).await;
    let session = h.runtime.session();
    let q = "SELECT x MEANS 'a colour' FROM (VALUES ('red')) AS t(x)";
    let long = "m".repeat(300);
    for (clause, expected) in [
        (
            "WITH (casacde = 'cheap/model')",
            "unknown statement option `casacde`; the statement options are: cascade, cheap_threshold, batch_size, cache",
        ),
        (
            "WITH (cascade = 'a', cascade = 'b')",
            "the option `cascade` is given twice",
        ),
        (
            "WITH (cheap_threshold = 1.5)",
            "`cheap_threshold` cannot be '1.5'",
        ),
        ("WITH (batch_size = 100000)", "from 1 to 1000"),
        ("WITH (cache = 'forever')", "a lifetime such as"),
        (&format!("WITH (cascade = '{long}')"), "at most 256 bytes"),
        ("WITH (cascade)", "expected `key = value`"),
        ("WITH ()", "sets no option"),
        ("WITH (cascade = 'a\tb')", "control characters"),
    ] {
        let e = session.execute(&format!("{q} {clause}")).await.unwrap_err();
        assert_eq!(e.code().code, "RVB-Q008", "{clause}: {e}");
        assert!(e.to_string().contains(expected), "{clause}: {e}");
        assert!(
            e.to_string()
                .contains("(in the statement's WITH (…) at Line: 1, Column: "),
            "{clause}: {e}"
        );
    }
    assert_eq!(server.requests(), 0, "nothing was asked");
    let r = session
        .execute("SELECT 'x WITH (casacde = 1)' AS w -- WITH (casacde = 1)\n")
        .await
        .unwrap();
    assert_eq!(column(&r, 0), [Some("x WITH (casacde = 1)".to_owned())]);
    let e = session
        .execute("SELECT * FROM (SELECT 1 AS a WITH (cache = false)) s")
        .await
        .unwrap_err();
    assert_eq!(e.code().code, "RVB-Q001", "not the statement's: {e}");
}

/// Over the PostgreSQL wire (extended protocol, tokio-postgres): a query with its own `WITH (…)`
/// options binds `$n` parameters like any query (the clause is parsed apart and put back), and a bad
/// option is the same RVB-Q008 (SQLSTATE 22023).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_options_and_parameters_work_over_the_wire() {
    use rvbbit_sql::pgwire::{WireAuth, WireServer};
    use tokio_postgres::NoTls;

    let server = two_models().await;
    let h = Harness::new(&server.base_url(), 4).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let wire = WireServer::new(
        h.runtime.clone(),
        WireAuth::Trust,
        std::time::Duration::from_secs(5),
    );
    let serving = tokio::spawn(wire.serve(listener, async {
        // Dropped sender or a stop signal: either way the server stops.
        let _ = stopped.await;
    }));
    let config = format!("host=127.0.0.1 port={port} user=lab dbname=lab");
    let (client, connection) = tokio_postgres::connect(&config, NoTls).await.unwrap();
    let connection = tokio::spawn(connection);

    let rows = client
        .query(
            &format!(
                "SELECT x, x MEANS $1 AS m FROM {ROWS} WHERE x <> $2 ORDER BY x WITH (cascade = 'cheap/model');"
            ),
            &[&"a colour", &"plain hat"],
        )
        .await
        .unwrap();
    let got: Vec<(String, bool)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        got,
        [
            ("blue sky".to_owned(), true),
            ("green tea".to_owned(), true),
            ("navy cap".to_owned(), true),
            ("red hat".to_owned(), true)
        ]
    );
    assert_eq!(models(&server, 0), ["cheap/model", "test/model"]);
    assert!(prompt_of(&server.bodies()[0]).contains("Criterion: a colour"));

    let e = client
        .query("SELECT 1 AS a WITH (casacde = 'x')", &[])
        .await
        .unwrap_err();
    let db = e.as_db_error().expect("a server error");
    assert_eq!(db.code().code(), "22023", "{db:?}");
    assert!(
        db.message().contains("unknown statement option `casacde`"),
        "{db:?}"
    );

    drop(client);
    // The connection ends with the client; the server stops when told.
    let _ = connection.await;
    let _ = stop.send(());
    serving.await.unwrap();
}
