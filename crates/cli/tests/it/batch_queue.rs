//! `rvbbit batch` on the queue's workers (issue 18, item 7): with `queue.url` configured, the inputs run
//! as jobs on real `rvbbit worker` processes (a throwaway NATS JetStream and PostgreSQL store), the
//! outputs, summary, cache and exit codes are those of a local batch; `--local` runs here; no worker
//! within `batch.queue_timeout_seconds` is RVB-B023.

use rvbbit_testkit::nats::TestNats;
use serde_json::Value;
use tempfile::TempDir;

use crate::run_command::write;
use crate::workers::{cmd, count, runtime, signal, text, worker};

const STEP: &str = "cascade_id: queued_step\ncells:\n  - name: step\n    tool: bash_data\n    inputs:\n      script: 'test {{ input.n }} -ne 4 && echo \"[{\\\"twice\\\": $(( {{ input.n }} * 2 ))}]\"'\n      persist_session: false\n";

#[test]
fn a_batch_runs_on_the_queues_workers_with_the_same_outputs_cache_and_exit_codes() {
    let rt = runtime();
    let nats = TestNats::start();
    let pg = rvbbit_testkit::postgres::fresh_database();
    let dir = TempDir::new().unwrap();
    let cascade = write(dir.path(), "step.yaml", STEP);
    let rows: Vec<String> = (1..=6).map(|n| format!("{{\"n\": {n}}}")).collect();
    write(dir.path(), "rows.jsonl", &(rows.join("\n") + "\n"));
    let mut workers = vec![
        worker(dir.path(), &nats.url(), &pg, &["--concurrency", "2"]),
        worker(dir.path(), &nats.url(), &pg, &["--concurrency", "2"]),
    ];
    let batch = |extra: &[&str]| {
        let out = cmd(dir.path(), &nats.url(), &pg)
            .args([
                "--output",
                "json",
                "batch",
                &cascade,
                "--inputs",
                "rows.jsonl",
                "--parallel",
                "4",
            ])
            .args(extra)
            .output()
            .unwrap();
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        (out, doc)
    };
    let (out, doc) = batch(&[]);
    assert_eq!(out.status.code(), Some(11), "{}", text(&out));
    assert_eq!(
        (doc["completed"].as_u64(), doc["failed"].as_u64()),
        (Some(5), Some(1)),
        "{doc}"
    );
    let output: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("outputs/rows-3/output.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(output["rows"][0]["twice"], 6, "{output}");
    assert!(dir.path().join("outputs/rows-4/error.json").is_file());
    // The workers ran them: six root sessions under `queue-<batch>-…` callers, none under the batch's own.
    let batch_id = doc["batch_id"].as_str().unwrap().to_owned();
    let queued = count(
        &rt,
        &pg,
        &format!(
            "SELECT count(*) FROM sessions WHERE caller_id LIKE 'queue-{batch_id}-%' AND parent_session_id IS NULL"
        ),
    );
    assert_eq!(queued, 6);
    assert_eq!(
        count(
            &rt,
            &pg,
            "SELECT count(*) FROM sessions WHERE caller_id LIKE 'batch-%'"
        ),
        0
    );
    let failed = doc["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "rows-4")
        .unwrap()
        .clone();
    assert_eq!(failed["code"], "RVB-T001", "{failed}");

    // Again: the five completed inputs come from the cache; only the failing one is enqueued.
    let (out, doc) = batch(&[]);
    assert_eq!(out.status.code(), Some(11), "{}", text(&out));
    assert_eq!(doc["cached"], 5, "{doc}");
    assert_eq!(
        count(
            &rt,
            &pg,
            "SELECT count(*) FROM sessions WHERE parent_session_id IS NULL"
        ),
        7
    );

    // `--local` runs here (a caller of its own), with the same cache.
    let (out, doc) = batch(&["--local", "--refresh", "--no-sandbox"]);
    assert_eq!(out.status.code(), Some(11), "{}", text(&out));
    assert_eq!(doc["completed"], 5, "{doc}");
    assert_eq!(
        count(
            &rt,
            &pg,
            "SELECT count(*) FROM sessions WHERE caller_id LIKE 'batch-%'"
        ),
        6
    );

    for w in &workers {
        signal(w, rustix::process::Signal::TERM);
    }
    for w in &mut workers {
        w.wait().unwrap();
    }
    // No worker: each input's job waits, then fails with RVB-B023 after the timeout (all failed: 12).
    let out = cmd(dir.path(), &nats.url(), &pg)
        .env("RVBBIT_BATCH__QUEUE_TIMEOUT_SECONDS", "2")
        .args([
            "--output",
            "json",
            "batch",
            &cascade,
            "--inputs",
            "rows.jsonl",
            "--no-cache",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(12), "{}", text(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        doc["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["code"] == "RVB-B023"),
        "{doc}"
    );
}
