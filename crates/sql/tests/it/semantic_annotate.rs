//! `-- @` annotations and a cheap model first (docs/semantic-sql.md): an annotation sets the model,
//! options and prompt text of the next semantic call only; a cheap model answers BOOLEAN and label
//! functions first with a confidence, and only the rows it is unsure of reach the main model; EXPLAIN
//! and `sql_query_log` show both.

use std::sync::{Arc, Mutex};

use rvbbit_testkit::{Reply, Script, TestServer, batch_answer, batch_rows};
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

/// MEANS 'a colour': the text names red, navy or green.
fn colour(one: &str) -> bool {
    ["red", "navy", "green"].iter().any(|c| text_of(one).contains(c))
}

/// The colour family of the text: the main model's (right) answer.
fn family(one: &str) -> &'static str {
    let text = text_of(one);
    if text.contains("red") {
        "warm"
    } else if text.contains("navy") || text.contains("green") {
        "cool"
    } else {
        "none"
    }
}

/// The text of each row of the batch prompts `bodies` sent with `model`.
fn rows_asked(bodies: &[Value], model: &str) -> Vec<String> {
    let mut rows: Vec<String> = bodies
        .iter()
        .filter(|b| b["model"] == model)
        .flat_map(|b| batch_rows(&prompt_of(b)).unwrap_or_default())
        .map(|(_, one)| text_of(&one))
        .collect();
    rows.sort();
    rows
}

/// The first value of `column` in the `sql_query_log` row of the statement `r`.
async fn logged(session: &rvbbit_sql::SqlSession, r: &rvbbit_sql::QueryResult, col: &str) -> Option<String> {
    let log = session
        .execute(&format!(
            "SELECT {col} FROM sql_query_log WHERE caller_id = '{}'",
            r.caller_id
        ))
        .await
        .unwrap();
    column(&log, 0).into_iter().next().flatten()
}

/// The `rvbbit_estimate` lines of an EXPLAIN result.
fn estimate_lines(r: &rvbbit_sql::QueryResult) -> Vec<String> {
    column(r, 0)
        .into_iter()
        .zip(column(r, 1))
        .filter(|(t, _)| t.as_deref() == Some("rvbbit_estimate"))
        .map(|(_, p)| p.unwrap_or_default())
        .collect()
}

const ANNOTATED: &str = "SELECT x,
  -- @ model: big/model
  -- @ Only colour words count.
  x MEANS 'a colour' AS a,
  x MEANS 'a colour' AS b,
  '-- @ model: nowhere' AS s
FROM (VALUES ('red hat'), ('plain hat')) AS t(x) ORDER BY x";

/// An annotation applies to the next call only: `a` asks `big/model` with the text before its prompt
/// (its own cache entries), `b` the default model with the plain prompt; a `-- @` in a string is text.
/// EXPLAIN shows the renamed call and what it sets, `sql_query_log` the annotations and the model that
/// answered; an unknown key is a notice; over `rvbbit.max_annotations` is RVB-Q007.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_annotation_sets_the_model_and_text_of_the_next_call_only() {
    let server = TestServer::start(Script::rule(|body: &Value| {
        let prompt = prompt_of(body);
        let rows = batch_rows(&prompt).unwrap_or_default();
        let answers: Vec<(u64, Value)> = rows
            .iter()
            .map(|(id, one)| (*id, Value::Bool(colour(one))))
            .collect();
        Reply::text(batch_answer(&answers))
    }))
    .await;
    let h = Harness::new(&server.base_url(), 4).await;
    let session = h.runtime.session();

    let explain = session.execute(&format!("EXPLAIN {ANNOTATED}")).await.unwrap();
    let plan = column(&explain, 1)
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join("\n");
    assert!(plan.contains("semantic_matches@1("), "{plan}");
    let lines = estimate_lines(&explain);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("semantic_matches@1: annotated -- @ ")
                && l.contains("\"model\":\"big/model\"")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("semantic_matches@1: 2 row(s)")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("semantic_matches: 2 row(s)")),
        "{lines:?}"
    );
    assert_eq!(server.requests(), 0, "EXPLAIN asks nothing");

    let r = session.execute(ANNOTATED).await.unwrap();
    let yes_no = [Some("false".to_owned()), Some("true".to_owned())];
    assert_eq!(column(&r, 1), yes_no, "plain hat, red hat");
    assert_eq!(column(&r, 2), yes_no);
    assert_eq!(column(&r, 3)[0].as_deref(), Some("-- @ model: nowhere"));
    let bodies = server.bodies();
    assert_eq!(bodies.len(), 2, "one batch per call");
    let big: Vec<&Value> = bodies.iter().filter(|b| b["model"] == "big/model").collect();
    let plain: Vec<&Value> = bodies.iter().filter(|b| b["model"] == "test/model").collect();
    assert_eq!((big.len(), plain.len()), (1, 1), "{bodies:?}");
    assert!(
        prompt_of(big[0]).contains("Only colour words count."),
        "{}",
        prompt_of(big[0])
    );
    assert!(!prompt_of(plain[0]).contains("Only colour words count."));
    let annotations: Value =
        serde_json::from_str(&logged(&session, &r, "annotations").await.unwrap()).unwrap();
    assert_eq!(annotations[0]["call"], "semantic_matches@1");
    assert_eq!(annotations[0]["model"], "big/model");
    assert_eq!(annotations[0]["text"], "Only colour words count.");
    assert_eq!(annotations[0]["lines"], json!([2, 3]));
    let decided: Value = serde_json::from_str(&logged(&session, &r, "decided_by").await.unwrap()).unwrap();
    assert_eq!(decided, json!({"big/model": 2}));

    // A rerun is answered from the cache, each call from its own entries.
    session.execute(ANNOTATED).await.unwrap();
    assert_eq!(server.requests(), 2);

    let unknown = session
        .execute("SELECT -- @ colour: red\n 'red hat' MEANS 'a colour'")
        .await
        .unwrap();
    assert!(
        unknown
            .notices
            .iter()
            .any(|n| n.contains("`colour` is not an annotation key")),
        "{:?}",
        unknown.notices
    );
    session.execute("SET rvbbit.max_annotations = 1").await.unwrap();
    let err = session
        .execute("SELECT -- @ model: a/b\n -- @ batch_size: 2\n 'x' MEANS 'y'")
        .await
        .unwrap_err();
    assert_eq!(err.code().code, "RVB-Q007");
    assert!(err.to_string().contains("rvbbit.max_annotations = 1"), "{err}");
    let err = session
        .execute("SET rvbbit.max_annotations = 0")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("rvbbit.max_annotations"), "{err}");
}

/// A label function: its cell's `output_schema` is an `enum` of strings.
const COLOUR_FAMILY: &str = "cascade_id: colour_family
sql_function:
  name: colour_family
  description: The colour family a text names.
  args: [{name: text}]
  returns: VARCHAR
  operators: ['COLOUR_FAMILY({{ text }})']
cells:
  - name: answer
    instructions: \"Name the colour family (warm, cool or none).\\nText: {{ input.text }}\"
    output_schema: {type: string, enum: [warm, cool, none]}
    rules: {max_turns: 1}
";

const FAMILIES: &str = "SELECT x,
  -- @ cheap_model: cheap/model
  -- @ cheap_threshold: 0.9
  COLOUR_FAMILY(x)
FROM (VALUES ('red hat'), ('navy cap'), ('green tea'), ('plain hat')) AS t(x) ORDER BY x";

/// The scripted models: `cheap/model` answers every row with a confidence (sure, and right, of red and
/// plain; unsure, and wrong, of navy and green); the main model answers right.
fn families_server(asked: Arc<Mutex<Vec<Value>>>) -> Script {
    Script::rule(move |body: &Value| {
        asked.lock().unwrap().push(body.clone());
        let rows = batch_rows(&prompt_of(body)).unwrap_or_default();
        if body["model"] == "cheap/model" {
            let items: Vec<Value> = rows
                .iter()
                .map(|(id, one)| {
                    let text = text_of(one);
                    let sure = text.contains("red") || text.contains("plain");
                    let answer = if sure { family(one) } else { "warm" };
                    json!({"id": id, "answer": answer, "confidence": if sure { 0.95 } else { 0.4 }})
                })
                .collect();
            return Reply::text(Value::Array(items).to_string());
        }
        let answers: Vec<(u64, Value)> = rows.iter().map(|(id, one)| (*id, json!(family(one)))).collect();
        Reply::text(batch_answer(&answers))
    })
}

/// A cheap model first for a label function, set by annotations: every row goes to the cheap model
/// with the confidence asked; exactly the rows below the threshold reach the main model; the result
/// equals the main model's alone (the cheap model was right where it was sure); `sql_query_log`
/// counts the rows each model decided; EXPLAIN shows the two stages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cheap_model_decides_the_label_rows_it_is_sure_of_and_only_the_rest_reach_the_main_model() {
    let asked = Arc::new(Mutex::new(Vec::new()));
    let server = TestServer::start(families_server(asked.clone())).await;
    let h = Harness::new(&server.base_url(), 4).await;
    h.write("cascades/colour_family.yaml", COLOUR_FAMILY);
    let session = h.runtime.session();

    let explain = session.execute(&format!("EXPLAIN {FAMILIES}")).await.unwrap();
    let lines = estimate_lines(&explain);
    assert!(
        lines.iter().any(|l| l.contains(
            "two stages: cheap/model first (1 call(s)), keeping answers of confidence >= 0.9; then test/model"
        )),
        "{lines:?}"
    );
    assert_eq!(server.requests(), 0);

    let r = session.execute(FAMILIES).await.unwrap();
    let bodies = asked.lock().unwrap().clone();
    assert_eq!(bodies.len(), 2, "one cheap batch, one main batch");
    assert_eq!(bodies[0]["model"], "cheap/model");
    assert!(prompt_of(&bodies[0]).contains("\"confidence\""));
    assert_eq!(
        rows_asked(&bodies, "cheap/model"),
        ["green tea", "navy cap", "plain hat", "red hat"]
    );
    assert_eq!(rows_asked(&bodies, "test/model"), ["green tea", "navy cap"]);
    let decided: Value = serde_json::from_str(&logged(&session, &r, "decided_by").await.unwrap()).unwrap();
    assert_eq!(decided, json!({"cheap/model": 2, "test/model": 2}));

    // The main model alone, on the same scripted answers, in a fresh store.
    let main_only = TestServer::start(families_server(Arc::new(Mutex::new(Vec::new())))).await;
    let h2 = Harness::new(&main_only.base_url(), 4).await;
    h2.write("cascades/colour_family.yaml", COLOUR_FAMILY);
    let alone = h2
        .runtime
        .session()
        .execute(&FAMILIES.replace("cheap/model", "off"))
        .await
        .unwrap();
    assert_eq!(main_only.requests(), 1);
    assert_eq!(column(&r, 1), column(&alone, 1));
    assert_eq!(
        column(&r, 1),
        ["cool", "cool", "none", "warm"].map(|s| Some(s.to_owned())),
        "green tea, navy cap, plain hat, red hat"
    );
}

/// Over the PostgreSQL wire, an annotated statement reaches the session as written (its parsed tree
/// would have no comments), through the simple and the extended query protocol; an annotated
/// AGGREGATE call asks its own model too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn annotations_work_over_the_wire_and_on_aggregates() {
    use rvbbit_sql::pgwire::{WireAuth, WireServer};
    use tokio_postgres::{NoTls, SimpleQueryMessage};

    let server = TestServer::start(Script::rule(|body: &Value| {
        let prompt = prompt_of(body);
        match batch_rows(&prompt) {
            Some(rows) => {
                let answers: Vec<(u64, Value)> = rows
                    .iter()
                    .map(|(id, one)| (*id, Value::Bool(colour(one))))
                    .collect();
                Reply::text(batch_answer(&answers))
            }
            None => Reply::text("a short summary"),
        }
    }))
    .await;
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

    // Extended protocol (Parse, Describe, Bind, Execute).
    let rows = client
        .query(
            "SELECT x FROM (VALUES ('red hat'), ('plain hat'), ('navy cap')) AS t(x)\n\
             WHERE -- @ model: wire/model\n x MEANS 'a colour' ORDER BY x",
            &[],
        )
        .await
        .unwrap();
    let kept: Vec<String> = rows.iter().map(|r| r.get::<_, String>(0)).collect();
    assert_eq!(kept, ["navy cap", "red hat"]);
    // Simple protocol, an aggregate.
    let messages = client
        .simple_query("SELECT -- @ model: summary/model\n SUMMARIZE(x) FROM (VALUES ('a'), ('b')) AS t(x)")
        .await
        .unwrap();
    let summary: Vec<String> = messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
            _ => None,
        })
        .collect();
    assert_eq!(summary, ["a short summary"]);
    drop(client);
    // The connection ends with the client; the server stops when told.
    let _ = connection.await;
    let _ = stop.send(());
    serving.await.unwrap();

    let models: Vec<String> = server
        .bodies()
        .iter()
        .map(|b| b["model"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(models.contains(&"wire/model".to_owned()), "{models:?}");
    assert!(models.contains(&"summary/model".to_owned()), "{models:?}");
    assert!(
        !models.contains(&"test/model".to_owned()),
        "only annotated calls ran: {models:?}"
    );
}

/// `-- @` annotations together with `$n` parameters over the wire (extended protocol, tokio-postgres):
/// the parameters are bound on the statement's tokens, so the annotation still applies, a `$1` inside
/// a string or a comment stays as written, and a parameter whose value looks like an annotation is a
/// value, never an annotation. A `$n` beyond the values bound is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn annotations_and_parameters_work_together_over_the_wire() {
    use rvbbit_sql::pgwire::{WireAuth, WireServer};
    use tokio_postgres::NoTls;

    let server = TestServer::start(Script::rule(|body: &Value| {
        let prompt = prompt_of(body);
        let rows = batch_rows(&prompt).unwrap_or_default();
        let answers: Vec<(u64, Value)> = rows
            .iter()
            .map(|(id, one)| (*id, Value::Bool(colour(one))))
            .collect();
        Reply::text(batch_answer(&answers))
    }))
    .await;
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

    let sql = "SELECT x, '$1 stays' AS note FROM (VALUES ('red hat'), ('plain hat'), ('navy cap')) AS t(x)\n\
               -- $1 in a comment stays too\n\
               WHERE -- @ model: wire/model\n x MEANS $1 AND x <> $2 ORDER BY x";
    let rows = client.query(sql, &[&"a colour", &"navy cap"]).await.unwrap();
    let kept: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
        .collect();
    assert_eq!(kept, [("red hat".to_owned(), "$1 stays".to_owned())]);
    let models: Vec<String> = server
        .bodies()
        .iter()
        .map(|b| b["model"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(models, ["wire/model"], "the annotated call asked its model");
    let prompt = prompt_of(&server.bodies()[0]);
    assert!(prompt.contains("a colour"), "{prompt}");

    // A value that looks like an annotation line is a string literal.
    let hostile = "x\n-- @ model: evil/model\n";
    let rows = client
        .query(
            "SELECT -- @ model: wire/model\n x MEANS $1 FROM (VALUES ('green tea')) AS t(x)",
            &[&hostile],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert!(
        server.bodies().iter().all(|b| b["model"] == "wire/model"),
        "the parameter set no model"
    );
    let last = prompt_of(server.bodies().last().unwrap());
    assert!(last.contains("-- @ model: evil/model"), "{last}");

    // More placeholders than values.
    let e = client
        .query(
            "SELECT -- @ model: wire/model\n x MEANS $1 FROM (VALUES ('a')) AS t(x) WHERE x <> $2",
            &[&"a"],
        )
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("expected 2 parameters"),
        "described with its two: {e}"
    );

    drop(client);
    // The connection ends with the client; the server stops when told.
    let _ = connection.await;
    let _ = stop.send(());
    serving.await.unwrap();
}
