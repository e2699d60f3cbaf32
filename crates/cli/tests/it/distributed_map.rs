//! Distributed SQL (issue 22, item 4): `RVBBIT MAP … WITH (distributed = true)` from a real `rvbbit sql`
//! process, its rows run by four real `rvbbit worker` processes on a throwaway NATS server (JetStream),
//! a throwaway PostgreSQL store they all share and the testkit's scripted LLM server, whose request count
//! says how many calls were made. Plus the statement's errors: no queue, too many rows, no worker.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Instant;

use rvbbit_testkit::nats::TestNats;
use rvbbit_testkit::{Script, TestServer};
use serde_json::Value;
use tempfile::TempDir;

use crate::run_command::write;
use crate::rvbbit;

/// One LLM cell: the testkit echoes the prompt, so each row's answer depends on the row alone.
const TAG: &str = "cascade_id: dmap_tag\ncells:\n  - name: tag\n    instructions: 'Tag item {{ input.n }} named {{ input.name }}'\n    rules:\n      max_turns: 1\n";

/// 1,000 distinct rows, in order.
const ROWS: &str = "SELECT value AS n, concat('item-', CAST(value % 97 AS VARCHAR)) AS name FROM generate_series(1, 1000) ORDER BY n";

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout)
            .chars()
            .take(2000)
            .collect::<String>(),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `rvbbit` in `dir` with the provider at `llm`, the store at `pg` and, when given, the queue at `nats`.
fn cmd(dir: &Path, llm: &str, pg: &str, nats: Option<&str>) -> Command {
    let mut c = rvbbit(dir);
    c.env("RVBBIT_PROVIDER_BASE_URL", llm)
        .env("OPENROUTER_API_KEY", "test-key")
        .env("RVBBIT_DEFAULT_MODEL", "test/model")
        .env("RVBBIT_STORE_URL", pg)
        .env("RVBBIT_QUEUE__ACK_WAIT_SECONDS", "10")
        .env("RVBBIT_QUEUE__NAK_DELAY_SECONDS", "0")
        .args(["--set", "provider.max_retries=0"])
        .stdin(Stdio::null());
    if let Some(nats) = nats {
        c.env("RVBBIT_QUEUE_URL", nats);
    }
    c
}

/// Worker processes, stopped when dropped (also when an assertion fails).
struct Workers(Vec<Child>);

impl Drop for Workers {
    fn drop(&mut self) {
        for w in &mut self.0 {
            // A worker that already exited cannot be killed or waited for again: nothing to do.
            let _ = w.kill();
            let _ = w.wait();
        }
    }
}

fn sql(dir: &Path, llm: &str, pg: &str, nats: Option<&str>, statement: &str) -> Output {
    cmd(dir, llm, pg, nats)
        .args(["--output", "json", "sql", statement])
        .output()
        .unwrap()
}

fn ok_doc(out: &Output) -> Value {
    assert_eq!(out.status.code(), Some(0), "{}", text(out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// One query's rows against the store's database.
fn query(rt: &tokio::runtime::Runtime, url: &str, sql: &str) -> Vec<tokio_postgres::Row> {
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        client.query(sql, &[]).await.unwrap()
    })
}

#[test]
fn distributed_map_of_1000_rows_on_4_workers_equals_local_map_and_reruns_without_calls() {
    let rt = runtime();
    let server = rt.block_on(TestServer::start(Script::echo()));
    let llm = server.base_url();
    let nats = TestNats::start();
    let pg = rvbbit_testkit::postgres::fresh_database();
    let dir = TempDir::new().unwrap();
    write(dir.path(), "tag.yaml", TAG);
    let _workers = Workers(
        (0..4)
            .map(|w| {
                cmd(dir.path(), &llm, &pg, Some(&nats.url()))
                    .args(["worker", "--concurrency", "8", "--tag", &format!("n={w}")])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect(),
    );
    let distributed =
        format!("RVBBIT MAP 'tag.yaml' USING ({ROWS}) WITH (distributed = true, parallel = 64)");
    let started = Instant::now();
    let first = ok_doc(&sql(dir.path(), &llm, &pg, Some(&nats.url()), &distributed));
    eprintln!(
        "distributed MAP of 1,000 rows on 4 workers: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(first["row_count"], 1000);
    assert_eq!(
        server.requests(),
        1000,
        "one LLM call per row, made by the workers"
    );
    let rows = first["rows"].as_array().unwrap().clone();
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row["n"], i as u64 + 1, "rows come back in input order");
        let result = row["result"]
            .as_str()
            .unwrap_or_else(|| panic!("row {i} has no result: {row}"));
        assert!(result.contains(&format!("Tag item {} named", i + 1)), "{result}");
    }
    // The workers ran every row under `queue-map-…`, each recording the statement's caller id.
    let caller = first["caller_id"].as_str().unwrap().to_owned();
    let sessions = query(
        &rt,
        &pg,
        &format!(
            "SELECT count(*), count(DISTINCT caller_id), \
                    count(*) FILTER (WHERE invocation_metadata->'meta'->>'sql_caller_id' = '{caller}'), \
                    count(DISTINCT invocation_metadata->'worker'->>'name') \
             FROM sessions WHERE caller_id LIKE 'queue-map-%' AND status = 'completed'"
        ),
    );
    let (n, callers, of_statement, workers): (i64, i64, i64, i64) = (
        sessions[0].get(0),
        sessions[0].get(1),
        sessions[0].get(2),
        sessions[0].get(3),
    );
    assert_eq!((n, callers, of_statement), (1000, 1000, 1000));
    assert!(
        workers >= 2,
        "the rows were spread over the workers ({workers} took any)"
    );

    // The rerun: every row from the result cache, nothing enqueued, no call.
    let rerun = ok_doc(&sql(dir.path(), &llm, &pg, Some(&nats.url()), &distributed));
    assert_eq!(server.requests(), 1000, "the rerun made no LLM call");
    assert_eq!(rerun["stats"]["cache_hits"], 1000);
    assert_eq!(rerun["stats"]["runs"], 0);
    assert_eq!(rerun["rows"].as_array().unwrap(), &rows);

    // A local `rvbbit_run` of the first row is served by the entry the gatherer cached: the same result
    // document, with the cell's output read from the worker's events.
    let call = r#"SELECT rvbbit_run('tag.yaml', '{"n": 1, "name": "item-1"}') AS doc"#;
    let one = ok_doc(&sql(dir.path(), &llm, &pg, None, call));
    let doc = match &one["rows"][0]["doc"] {
        Value::String(text) => serde_json::from_str::<Value>(text).unwrap(),
        other => other.clone(),
    };
    assert_eq!(one["stats"]["cache_hits"], 1, "{one}");
    assert_eq!(doc["final_output"], rows[0]["result"], "{doc}");
    assert_eq!(doc["outputs"]["tag"], rows[0]["result"], "{doc}");
    assert_eq!(doc["status"], "success", "{doc}");
    assert_eq!(server.requests(), 1000);

    // The same MAP run here, without the cache: exactly the same rows.
    let local = format!("RVBBIT MAP 'tag.yaml' USING ({ROWS}) WITH (cache = false)");
    let local = ok_doc(&sql(dir.path(), &llm, &pg, None, &local));
    assert_eq!(server.requests(), 2000, "the local MAP ran every row");
    assert_eq!(local["rows"].as_array().unwrap(), &rows);
}

/// (The row cap, the gather timeout and dead letters are tested in `rvbbit-sql`'s `it::distributed`, where
/// one session can `SET` them.)
#[test]
fn distributed_map_without_a_queue_exits_5_saying_how_to_configure_one() {
    let rt = runtime();
    let server = rt.block_on(TestServer::start(Script::echo()));
    let llm = server.base_url();
    let pg = rvbbit_testkit::postgres::fresh_database();
    let dir = TempDir::new().unwrap();
    write(dir.path(), "tag.yaml", TAG);
    let map = |extra: &str| {
        format!(
            "RVBBIT MAP 'tag.yaml' USING (SELECT value AS n, 'x' AS name FROM generate_series(1, 3)) \
             WITH (distributed = true{extra})"
        )
    };
    let out = sql(dir.path(), &llm, &pg, None, &map(""));
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    let all = text(&out);
    assert!(all.contains("RVB-S030"), "{all}");
    assert!(all.contains("[queue] url"), "{all}");
    assert!(doc.is_null() || doc["code"] == "RVB-S030", "{doc}");
    // `model` cannot travel to the workers yet: refused before anything runs.
    let out = sql(dir.path(), &llm, &pg, None, &map(", model = 'other/model'"));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("RVB-Q004"), "{}", text(&out));
    assert_eq!(server.requests(), 0, "nothing ran");
}
