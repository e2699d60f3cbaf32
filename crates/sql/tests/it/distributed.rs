//! Distributed SQL's bad inputs (issue 22, item 4) against a real NATS server with JetStream (testkit), a
//! real SQLite store and the testkit LLM server: no queue configured, more row jobs than the cap, no
//! worker (the gather times out, and a retried statement adds no job), and a row job the queue gives up.
//! Four real workers over 1,000 rows: `rvbbit`'s `it::distributed_map`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rvbbit_sql::QueueSettings;
use rvbbit_store::{Queue, QueueOptions};
use rvbbit_testkit::nats::TestNats;
use rvbbit_testkit::{Script, TestServer};

use crate::support::{Harness, column};

const TAG: &str = "cascade_id: dmap_tag\ncells:\n  - name: tag\n    instructions: 'Tag item {{ input.n }} named {{ input.name }}'\n    rules:\n      max_turns: 1\n";

fn map(rows: u32, extra: &str) -> String {
    format!(
        "RVBBIT MAP 'tag.yaml' USING (SELECT value AS n, 'x' AS name FROM generate_series(1, {rows})) \
         WITH (distributed = true{extra})"
    )
}

async fn harness(server: &TestServer, nats: Option<&TestNats>) -> Harness {
    let queue = nats.map(|n| QueueSettings {
        url: n.url(),
        options: QueueOptions {
            configure_consumer: false,
            ..QueueOptions::default()
        },
    });
    let h = Harness::configured(&server.base_url(), 4, &[], |s| s.queue = queue).await;
    h.write("tag.yaml", TAG);
    h
}

/// The queue as a worker opens it.
async fn worker_queue(nats: &TestNats) -> Arc<dyn Queue> {
    rvbbit_store::queue::open(&nats.url(), &QueueOptions::default())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distributed_without_a_queue_is_rvb_s030_for_map_and_rvbbit_run() {
    let server = TestServer::start(Script::echo()).await;
    let h = harness(&server, None).await;
    let err = h.runtime.session().execute(&map(3, "")).await.unwrap_err();
    assert_eq!(err.code().code, "RVB-S030", "{err}");
    assert_eq!(err.code().exit_code(), 5);
    assert!(err.to_string().contains("[queue] url"), "{err}");
    let session = h.runtime.session();
    session.execute("SET rvbbit.distributed = on").await.unwrap();
    let err = session
        .execute(r#"SELECT rvbbit_run('tag.yaml', '{"n": 1, "name": "x"}') AS r"#)
        .await
        .unwrap_err();
    assert_eq!(err.code().code, "RVB-S030", "{err}");
    // Off again: the same call runs here.
    session.execute("SET rvbbit.distributed = off").await.unwrap();
    let r = session
        .execute(r#"SELECT rvbbit_run('tag.yaml', '{"n": 1, "name": "x"}') AS r"#)
        .await
        .unwrap();
    assert!(
        column(&r, 0)[0]
            .as_deref()
            .unwrap_or_default()
            .contains("Tag item 1")
    );
    assert_eq!(server.requests(), 1);
    let err = session
        .execute("SET rvbbit.distributed_timeout = 0")
        .await
        .unwrap_err();
    assert_eq!(err.code().code, "RVB-Q004", "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_row_cap_nothing_is_enqueued_and_without_workers_the_wait_is_bounded() {
    let nats = TestNats::start();
    let server = TestServer::start(Script::echo()).await;
    let h = harness(&server, Some(&nats)).await;
    let session = h.runtime.session();
    session
        .execute("SET rvbbit.distributed_max_rows = 10")
        .await
        .unwrap();
    let err = session.execute(&map(50, "")).await.unwrap_err();
    assert_eq!(err.code().code, "RVB-S031", "{err}");
    assert!(
        err.to_string().contains("rvbbit.distributed_max_rows = 10"),
        "{err}"
    );
    let queue = worker_queue(&nats).await;
    assert_eq!(queue.status().await.unwrap().messages, 0, "nothing was enqueued");

    // No worker: each row job waits at most rvbbit.distributed_timeout, then the statement fails.
    session
        .execute("SET rvbbit.distributed_timeout = 1")
        .await
        .unwrap();
    let started = Instant::now();
    let err = session.execute(&map(5, "")).await.unwrap_err();
    assert_eq!(err.code().code, "RVB-S032", "{err}");
    assert!(
        err.to_string().contains("rvbbit.distributed_timeout = 1"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(queue.status().await.unwrap().depth, 5);
    // The statement retried: the same deterministic job ids, dropped by the duplicate window.
    let err = session.execute(&map(5, "")).await.unwrap_err();
    assert_eq!(err.code().code, "RVB-S032", "{err}");
    assert_eq!(
        queue.status().await.unwrap().depth,
        5,
        "a retried statement adds no job"
    );
    assert_eq!(server.requests(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_lettered_row_job_fails_its_row_with_the_reason() {
    let nats = TestNats::start();
    let server = TestServer::start(Script::echo()).await;
    let h = harness(&server, Some(&nats)).await;
    // A worker that gives up every job it is handed, as one does with a job it cannot start.
    let queue = worker_queue(&nats).await;
    let giver_upper = tokio::spawn(async move {
        loop {
            if let Ok(Some(delivery)) = queue.pull(Duration::from_millis(500)).await {
                delivery
                    .dead_letter("the cascade is invalid: tag.yaml:1:1: a made-up reason [RVB-V001]")
                    .await
                    .unwrap();
            }
        }
    });
    let r = h
        .runtime
        .session()
        .execute(&map(2, ", errors = 'column'"))
        .await
        .unwrap();
    giver_upper.abort();
    assert_eq!(column(&r, 2), vec![None, None], "no result for a given-up row");
    for error in column(&r, 3) {
        let error = error.unwrap();
        assert!(error.contains("RVB-S033"), "{error}");
        assert!(error.contains("a made-up reason"), "{error}");
    }
    assert_eq!(server.requests(), 0);
}
