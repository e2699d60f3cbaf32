//! SQL tests as data: every `crates/sql/tests/slt/*.slt` file (sqllogictest format) runs twice against
//! a fresh store and the testkit LLM server:
//!
//! - **in process**: `SqlSession::execute`, values rendered by `rvbbit_sql::pgwire::text_rows` (the
//!   wire's own text encoder) and errors by `rvbbit_sql::pgwire::sqlstate`;
//! - **over the PostgreSQL wire**: a `WireServer` on a loopback port, read with tokio-postgres' simple
//!   query protocol (the text psql shows).
//!
//! The same expected block must hold both ways. `onlyif wire` / `skipif wire` (and `inprocess`) mark the
//! few records only one door answers (the `pg_catalog` rewrite is a wire feature). NULL is written
//! `NULL`, the empty string `(empty)`. `statement error (42P01)` expects a SQLSTATE.
//!
//! `RVBBIT_BLESS=1 cargo test -p rvbbit-sql --test it slt` rewrites the expected results (in process
//! first, then over the wire), then runs every file both ways as usual.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use rvbbit_sql::datafusion::arrow::datatypes::DataType;
use rvbbit_sql::pgwire::{WireAuth, WireServer};
use rvbbit_sql::{SqlSession, pgwire};
use rvbbit_testkit::{Reply, Script, TestServer};
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType, QueryExpect, Record, Runner};
use tokio::net::TcpListener;
use tokio_postgres::{NoTls, SimpleQueryMessage};

use crate::support::Harness;

/// What a statement failed with: the SQLSTATE the wire reports and the message.
#[derive(Debug)]
struct SltError {
    sqlstate: String,
    message: String,
}

impl std::fmt::Display for SltError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.sqlstate, self.message)
    }
}

impl std::error::Error for SltError {}

fn cell(value: Option<&str>) -> String {
    match value {
        None => "NULL".to_owned(),
        Some("") => "(empty)".to_owned(),
        Some(v) => v.to_owned(),
    }
}

/// A row whose cells hold several lines (an `EXPLAIN` plan) becomes one row a line, the other cells
/// blank on the continuation rows: the `.slt` format has one row a line.
fn expand(rows: Vec<Vec<String>>) -> Vec<Vec<String>> {
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let lines: Vec<Vec<&str>> = row.iter().map(|c| c.lines().collect()).collect();
        let height = lines.iter().map(Vec::len).max().unwrap_or(1).max(1);
        for i in 0..height {
            out.push(
                lines
                    .iter()
                    .map(|l| l.get(i).map_or_else(String::new, |s| (*s).to_owned()))
                    .collect(),
            );
        }
    }
    out
}

/// `sqllogictest::default_validator` on whole lines: a row's cells joined, then normalized (so the blank
/// first cell of an [`expand`]ed continuation row does not leave a leading space).
fn validator(normalizer: sqllogictest::Normalizer, actual: &[Vec<String>], expected: &[String]) -> bool {
    let lines: Vec<Vec<String>> = actual.iter().map(|row| vec![row.join(" ")]).collect();
    sqllogictest::default_validator(normalizer, &lines, expected)
}

fn column_type(dt: &DataType) -> DefaultColumnType {
    if dt.is_integer() {
        DefaultColumnType::Integer
    } else if dt.is_floating() || matches!(dt, DataType::Decimal128(..) | DataType::Decimal256(..)) {
        DefaultColumnType::FloatingPoint
    } else if matches!(dt, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) {
        DefaultColumnType::Text
    } else {
        DefaultColumnType::Any
    }
}

/// One `SqlSession` for the whole file.
struct InProcess(SqlSession);

#[async_trait]
impl AsyncDB for InProcess {
    type Error = SltError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SltError> {
        let result = self.0.execute(sql).await.map_err(|e| SltError {
            sqlstate: pgwire::sqlstate(&e),
            message: e.to_string(),
        })?;
        if result.schema.fields().is_empty() {
            return Ok(DBOutput::StatementComplete(0));
        }
        let types = result
            .schema
            .fields()
            .iter()
            .map(|f| column_type(f.data_type()))
            .collect();
        let rows = pgwire::text_rows(&result).map_err(|e| SltError {
            sqlstate: "XX000".into(),
            message: e.to_string(),
        })?;
        let rows = rows
            .into_iter()
            .map(|r| r.iter().map(|v| cell(v.as_deref())).collect())
            .collect();
        Ok(DBOutput::Rows {
            types,
            rows: expand(rows),
        })
    }

    async fn shutdown(&mut self) {}

    fn error_sql_state(err: &SltError) -> Option<String> {
        Some(err.sqlstate.clone())
    }

    async fn sleep(dur: Duration) {
        tokio::time::sleep(dur).await;
    }
}

/// One wire connection for the whole file.
struct Wire(tokio_postgres::Client);

#[async_trait]
impl AsyncDB for Wire {
    type Error = SltError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SltError> {
        let messages = self
            .0
            .simple_query(sql)
            .await
            .map_err(|e| match e.as_db_error() {
                Some(db) => SltError {
                    sqlstate: db.code().code().to_owned(),
                    message: db.message().to_owned(),
                },
                None => SltError {
                    sqlstate: "08000".into(),
                    message: e.to_string(),
                },
            })?;
        let mut columns = None;
        let mut rows = Vec::new();
        let mut count = 0;
        for message in messages {
            match message {
                SimpleQueryMessage::RowDescription(cols) => columns = Some(cols.len()),
                SimpleQueryMessage::Row(row) => {
                    rows.push((0..row.len()).map(|i| cell(row.get(i))).collect());
                }
                SimpleQueryMessage::CommandComplete(n) => count = n,
                _ => {}
            }
        }
        match columns {
            // The wire has no Arrow types: the column letters are checked in process only.
            Some(n) => Ok(DBOutput::Rows {
                types: vec![DefaultColumnType::Any; n],
                rows: expand(rows),
            }),
            None => Ok(DBOutput::StatementComplete(count)),
        }
    }

    async fn shutdown(&mut self) {}

    fn error_sql_state(err: &SltError) -> Option<String> {
        Some(err.sqlstate.clone())
    }

    async fn sleep(dur: Duration) {
        tokio::time::sleep(dur).await;
    }
}

/// The testkit server the files' calls reach. An `rvbbit_udf` prompt (it has an `Input:` line): the
/// input upper-cased; the input `boom` fails with a 400. A built-in semantic function's prompt: the
/// answer [`semantic_reply`] gives.
async fn llm() -> TestServer {
    TestServer::start(Script::rule(|body| {
        let prompt = body["messages"][0]["content"].as_str().unwrap_or_default();
        let Some(input) = prompt.lines().find_map(|l| l.strip_prefix("Input: ")) else {
            return semantic_reply(prompt).unwrap_or_else(|| Reply::error(400, "unknown prompt"));
        };
        match input {
            "boom" => Reply::error(400, "bad request for boom"),
            other => Reply::text(other.to_uppercase()).cost(0.001),
        }
    }))
    .await
}

/// A testkit server answering the built-in semantic functions' prompts with [`semantic_reply`] (an
/// unknown prompt fails with a 400).
pub(crate) async fn semantic_model() -> TestServer {
    TestServer::start(Script::rule(|body| {
        let prompt = body["messages"][0]["content"].as_str().unwrap_or_default();
        semantic_reply(prompt).unwrap_or_else(|| Reply::error(400, "unknown prompt"))
    }))
    .await
}

/// The scripted answers of the built-in semantic functions (`crates/sql/operators/*.yaml`), told apart
/// by the prompt's first line and reading its `Name: value` lines. A yes/no answer is "does the first
/// text contain the first word of the second", in each function's own spelling (`true`, `Yes.`,
/// ` TRUE `, `'1'`) so the coercion is exercised; the text `garble` answers `maybe` (not a boolean) and
/// the text `boom` fails with a 400.
///
/// A batch prompt (many rows in one) is answered row by row the same way, as a JSON array; a row that
/// fails alone is left out of it.
pub(crate) fn semantic_reply(prompt: &str) -> Option<Reply> {
    if let Some(rows) = rvbbit_testkit::batch_rows(prompt) {
        let answers: Vec<(u64, serde_json::Value)> = rows
            .into_iter()
            .filter_map(|(id, one)| match semantic_answer(&one)? {
                Ok(answer) => Some((id, serde_json::Value::String(answer))),
                Err(_) => None,
            })
            .collect();
        return Some(Reply::text(rvbbit_testkit::batch_answer(&answers)).cost(0.001));
    }
    Some(match semantic_answer(prompt)? {
        Ok(answer) => Reply::text(answer).cost(0.001),
        Err(message) => Reply::error(400, message),
    })
}

/// The scripted answer to a one-row prompt, `Err` for a row that fails (with a 400).
fn semantic_answer(prompt: &str) -> Option<Result<String, String>> {
    let field = |name: &str| {
        let prefix = format!("{name}: ");
        prompt
            .lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .unwrap_or_default()
            .to_owned()
    };
    let contains = |hay: &str, needle: &str| {
        let word = needle
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_lowercase();
        !word.is_empty() && hay.to_lowercase().contains(&word)
    };
    let yes_no = |yes: bool, spelled: (&str, &str)| if yes { spelled.0 } else { spelled.1 }.to_owned();
    let text = field("Text");
    if text == "boom" || field("First") == "boom" {
        return Some(Err("bad request for boom".to_owned()));
    }
    let first = prompt.lines().next().unwrap_or_default();
    let items: Vec<String> = serde_json::from_str(&field("Texts")).unwrap_or_default();
    if items.iter().any(|i| i == "boom") {
        return Some(Err("bad request for boom".to_owned()));
    }
    if let Some(answer) = crate::semantic_pipeline::pipeline_reply(first, &field) {
        return Some(answer);
    }
    let answer = if let Some(answer) = dimension_reply(first, &items, &field) {
        answer
    } else if let Some(answer) = aggregate_reply(first, &items, &field) {
        answer
    } else if first.starts_with("Decide whether the text matches") {
        if text.contains("garble") {
            "maybe".to_owned()
        } else {
            yes_no(contains(&text, &field("Criterion")), ("true", "false"))
        }
    } else if first.starts_with("Rate how relevant") {
        yes_no(contains(&text, &field("Topic")), ("0.9", "0.1"))
    } else if first.starts_with("Decide whether the premise implies") {
        yes_no(contains(&field("Premise"), &field("Conclusion")), ("Yes.", "No."))
    } else if first.starts_with("Decide whether the two texts contradict") {
        yes_no(contains(&field("First"), &field("Second")), (" TRUE ", "false"))
    } else if first.starts_with("Decide whether the text is in line") {
        yes_no(contains(&text, &field("Value")), ("'1'", "0"))
    } else if first.starts_with("Decide whether the two texts refer") {
        yes_no(contains(&field("First"), &field("Second")), ("true", "false"))
    } else if first.starts_with("Answer the request") {
        format!("{} ({})", text.to_uppercase(), field("Request"))
    } else if first.starts_with("List every item") {
        let found: Vec<&str> = text.split_whitespace().filter(|w| w.contains('@')).collect();
        serde_json::to_string(&found).unwrap()
    } else if first.starts_with("Rewrite the text shorter") {
        text.chars().take(10).collect()
    } else if first.starts_with("Summarize the text") {
        format!("About {}.", text.split_whitespace().next().unwrap_or_default())
    } else if first.starts_with("Rate the sentiment") {
        (if contains(&text, "love") {
            "0.8"
        } else if contains(&text, "hate") {
            "-0.8"
        } else {
            "0"
        })
        .to_owned()
    } else if first.starts_with("Translate the text") {
        format!("[{}] {text}", field("Language"))
    } else if first.starts_with("Correct the spelling") {
        text.replace("teh", "the")
    } else if first.starts_with("Rewrite the value") {
        let digits: String = text.chars().filter(char::is_ascii_digit).collect();
        format!("+{digits}")
    } else if first.starts_with("Find the date") {
        "2024-03-01".to_owned()
    } else if first.starts_with("Name the language") {
        yes_no(contains(&text, "bonjour"), ("fr", "en"))
    } else {
        return None;
    };
    Some(Ok(answer))
}

/// The scripted answers of the built-in DIMENSION functions, a JSON object mapping each of `Texts:` to a
/// bucket: TOPICS names a text's topic by its first word, MEANING by its last (lower case); naming keeps
/// the first `Count` such words and puts the other texts under the first; assigning (`Topics:`/`Groups:`
/// given) picks the listed bucket equal to the word, else the first listed.
fn dimension_reply(first: &str, items: &[String], field: &dyn Fn(&str) -> String) -> Option<String> {
    let (key, listed): (fn(&str) -> String, &str) = if first.starts_with("Sort the texts into topics")
        || first.starts_with("Put each text under the topic")
    {
        (
            |t| t.split_whitespace().next().unwrap_or_default().to_lowercase(),
            "Topics",
        )
    } else if first.starts_with("Sort the texts into groups")
        || first.starts_with("Put each text under the group")
    {
        (
            |t| t.split_whitespace().last().unwrap_or_default().to_lowercase(),
            "Groups",
        )
    } else {
        return None;
    };
    let given: Vec<String> = serde_json::from_str(&field(listed)).unwrap_or_default();
    let buckets: Vec<String> = if given.is_empty() {
        let count = field("Count").trim().parse::<usize>().unwrap_or(5);
        let mut names: Vec<String> = Vec::new();
        for item in items {
            let k = key(item);
            if !names.contains(&k) && names.len() < count {
                names.push(k);
            }
        }
        names
    } else {
        given
    };
    let mut map = serde_json::Map::new();
    for item in items {
        let k = key(item);
        let bucket = if buckets.contains(&k) {
            k
        } else {
            buckets.first().cloned().unwrap_or_default()
        };
        map.insert(item.clone(), serde_json::Value::String(bucket));
    }
    Some(serde_json::Value::Object(map).to_string())
}

/// The scripted answers of the built-in AGGREGATE functions, from the JSON array of `Texts:` (a reduce
/// call's items are earlier answers: `<n> items: <first>` for SUMMARIZE, numbers for SENTIMENT_AGG, JSON
/// arrays, flattened, for the JSON functions):
/// - SUMMARIZE: `<n> items: <first item>` (a reduce adds up the n and keeps the first's item);
/// - CONSENSUS: the most frequent item (the earliest on a tie);
/// - DEDUPE: the items without repeats (case-insensitive), as a JSON array;
/// - OUTLIERS: the `Count` longest items (the earliest on a tie), as a JSON array;
/// - BEST: the first item containing the first word of `Criterion`, else the first item;
/// - CLASSIFY: the label of `Labels` contained in the most items (the earliest on a tie);
/// - SENTIMENT_AGG: the mean of 0.8 per item with `love`, -0.8 with `hate`, else 0 (or its number);
/// - THEMES / TOPICS: the first `Count` distinct first / last words (lower case), as a JSON array.
fn aggregate_reply(first: &str, items: &[String], field: &dyn Fn(&str) -> String) -> Option<String> {
    let flat = || -> Vec<String> {
        items
            .iter()
            .flat_map(|i| serde_json::from_str::<Vec<String>>(i).unwrap_or_else(|_| vec![i.clone()]))
            .collect()
    };
    let count = || field("Count").trim().parse::<usize>().unwrap_or(3);
    let distinct = |words: Vec<String>| {
        let mut out: Vec<String> = Vec::new();
        for w in words {
            if !out.iter().any(|o| o.eq_ignore_ascii_case(&w)) {
                out.push(w);
            }
        }
        out
    };
    let first_item = items.first().cloned().unwrap_or_default();
    let answer = if first.starts_with("Summarize these texts") {
        let partial = |i: &String| {
            let (n, rest) = i.split_once(" items: ")?;
            Some((n.parse::<usize>().ok()?, rest.to_owned()))
        };
        let partials: Option<Vec<(usize, String)>> = items.iter().map(partial).collect();
        match partials {
            Some(p) if !p.is_empty() => {
                format!("{} items: {}", p.iter().map(|(n, _)| n).sum::<usize>(), p[0].1)
            }
            _ => format!("{} items: {first_item}", items.len()),
        }
    } else if first.starts_with("Find the view most") {
        let mut best = first_item;
        let mut best_n = 0;
        for i in items {
            let n = items.iter().filter(|j| *j == i).count();
            if n > best_n {
                (best, best_n) = (i.clone(), n);
            }
        }
        best
    } else if first.starts_with("List the distinct meanings") {
        serde_json::to_string(&distinct(flat())).unwrap()
    } else if first.starts_with("Pick the texts that least fit") {
        let mut all = flat();
        all.sort_by_key(|i| std::cmp::Reverse(i.chars().count()));
        all.truncate(count());
        serde_json::to_string(&all).unwrap()
    } else if first.starts_with("Pick the one text that best meets") {
        let word = field("Criterion")
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_lowercase();
        items
            .iter()
            .find(|i| !word.is_empty() && i.to_lowercase().contains(&word))
            .cloned()
            .unwrap_or(first_item)
    } else if first.starts_with("Pick the one label") {
        let labels: Vec<String> = field("Labels").split(',').map(|l| l.trim().to_owned()).collect();
        let hits = |l: &String| {
            items
                .iter()
                .filter(|i| i.to_lowercase().contains(&l.to_lowercase()))
                .count()
        };
        let mut best = labels.first().cloned().unwrap_or_default();
        for l in &labels {
            if hits(l) > hits(&best) {
                best = l.clone();
            }
        }
        best
    } else if first.starts_with("Rate the overall sentiment") {
        let score = |i: &String| {
            i.parse::<f64>().unwrap_or(if i.contains("love") {
                0.8
            } else if i.contains("hate") {
                -0.8
            } else {
                0.0
            })
        };
        let mean = items.iter().map(score).sum::<f64>() / items.len().max(1) as f64;
        format!("{:.2}", mean)
    } else if first.starts_with("Name the main themes") || first.starts_with("Name the topics") {
        let last = first.starts_with("Name the topics");
        let words = flat()
            .iter()
            .filter_map(|i| {
                let mut ws = i.split_whitespace();
                if last { ws.next_back() } else { ws.next() }.map(str::to_lowercase)
            })
            .collect();
        let mut found = distinct(words);
        found.truncate(count());
        serde_json::to_string(&found).unwrap()
    } else {
        return None;
    };
    Some(answer)
}

/// The settings of the network doors (`rvbbit serve`, `rvbbit serve sql`): files confined to the project;
/// 4 open cursors per connection (`cursors.slt` reaches the limit).
async fn harness(base_url: &str) -> Harness {
    Harness::configured(base_url, 4, &[], |s| {
        s.confine_files = true;
        s.limits.cursors = 4;
    })
    .await
}

fn slt_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/slt");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .collect();
    files.sort();
    files
}

async fn in_process(file: &Path, base_url: &str, bless: bool) -> Result<(), String> {
    let h = harness(base_url).await;
    let runtime = h.runtime.clone();
    let mut runner = Runner::new(move || {
        let session = runtime.session();
        async move { Ok::<_, SltError>(InProcess(session)) }
    });
    runner.add_label("inprocess");
    runner.with_validator(validator);
    bless_or_run(&mut runner, file, "in process", bless).await
}

/// Run `file`, or (`bless`) rewrite the expected rows of its `query` records from this door's answers
/// (error records are kept as written: sqllogictest's own updater would turn a `(SQLSTATE)` into the
/// message, caller ids and all).
async fn bless_or_run<D, M>(
    runner: &mut Runner<D, M>,
    file: &Path,
    door: &str,
    bless: bool,
) -> Result<(), String>
where
    D: AsyncDB<ColumnType = DefaultColumnType>,
    M: sqllogictest::MakeConnection<Conn = D>,
{
    if !bless {
        return runner
            .run_file_async(file)
            .await
            .map_err(|e| format!("{} ({door}): {e}", file.display()));
    }
    let records = sqllogictest::parse_file::<DefaultColumnType>(file)
        .map_err(|e| format!("{}: {e}", file.display()))?;
    let mut text = String::new();
    for record in records {
        let output = runner.apply_record(record.clone()).await;
        let is_query = matches!(
            &record,
            Record::Query {
                expected: QueryExpect::Results { .. },
                ..
            }
        );
        let updated = is_query
            .then(|| {
                sqllogictest::update_record_with_output(
                    &record,
                    &output,
                    " ",
                    validator,
                    sqllogictest::default_normalizer,
                    sqllogictest::default_column_validator,
                )
            })
            .flatten();
        text.push_str(&updated.unwrap_or(record).to_string());
        text.push('\n');
    }
    std::fs::write(file, text.trim_end().to_owned() + "\n").map_err(|e| format!("{}: {e}", file.display()))
}

async fn over_the_wire(file: &Path, base_url: &str, bless: bool) -> Result<(), String> {
    let h = harness(base_url).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = WireServer::new(h.runtime.clone(), WireAuth::Trust, Duration::from_secs(5));
    let serving = tokio::spawn(server.serve(listener, async {
        // Dropped sender or a stop signal: either way the server stops.
        let _ = stopped.await;
    }));
    let mut runner = Runner::new(move || async move {
        let config = format!("host=127.0.0.1 port={port} user=slt dbname=lab");
        let (client, connection) = tokio_postgres::connect(&config, NoTls)
            .await
            .map_err(|e| SltError {
                sqlstate: "08001".into(),
                message: e.to_string(),
            })?;
        tokio::spawn(connection);
        Ok::<_, SltError>(Wire(client))
    });
    runner.add_label("wire");
    runner.with_validator(validator);
    let outcome = bless_or_run(&mut runner, file, "over the wire", bless).await;
    runner.shutdown_async().await;
    // The server may already be gone when a test failed; stopping is best effort.
    let _ = stop.send(());
    serving.await.unwrap();
    outcome
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_slt_file_passes_in_process_and_over_the_wire() {
    let llm = llm().await;
    let files = slt_files();
    assert!(files.len() >= 5, "the .slt files are missing: {files:?}");
    let mut failures = Vec::new();
    for file in &files {
        // Blessing: the in-process answers first, then the wire's for the records only it runs (and it
        // must agree with the rest); each pass on a fresh store.
        if std::env::var_os("RVBBIT_BLESS").is_some() {
            for outcome in [
                in_process(file, &llm.base_url(), true).await,
                over_the_wire(file, &llm.base_url(), true).await,
            ] {
                failures.extend(outcome.err());
            }
        }
        failures.extend(in_process(file, &llm.base_url(), false).await.err());
        failures.extend(over_the_wire(file, &llm.base_url(), false).await.err());
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
