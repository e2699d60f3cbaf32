//! The job queue on a throwaway NATS server (2.9, JetStream): dedup, ack, redelivery, dead letters
//! from the worker's own path and from the server's max-deliveries advisory, retry, and errors.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rvbbit_store::queue::nats::NatsQueue;
use rvbbit_store::{Job, Queue, QueueOptions};
use rvbbit_testkit::nats::TestNats;
use serde_json::json;

fn job(id: &str) -> Job {
    Job {
        id: id.into(),
        cascade_file: "hello.yaml".into(),
        cascade_text: "cascade_id: hello\ncells: []\n".into(),
        input: json!({"n": 1}),
        metadata: Default::default(),
        submitted_at: "2026-01-01T00:00:00Z".into(),
        bundle: None,
    }
}

fn options(ack_wait: u64, max_deliveries: u32) -> QueueOptions {
    QueueOptions {
        ack_wait: Duration::from_secs(ack_wait),
        max_deliveries,
        ..QueueOptions::default()
    }
}

async fn open(nats: &TestNats, options: &QueueOptions) -> Arc<dyn Queue> {
    rvbbit_store::queue::open(&nats.url(), options).await.unwrap()
}

#[tokio::test]
async fn the_same_submission_id_twice_is_one_job() {
    let nats = TestNats::start();
    let queue = open(&nats, &options(30, 5)).await;
    let first = queue.submit(&job("order-1182")).await.unwrap();
    let again = queue.submit(&job("order-1182")).await.unwrap();
    let other = queue.submit(&job("order-1183")).await.unwrap();
    assert!(!first.duplicate);
    assert!(again.duplicate, "{again:?}");
    assert_eq!(again.sequence, first.sequence);
    assert!(!other.duplicate);
    let status = queue.status().await.unwrap();
    assert_eq!(
        (status.depth, status.messages, status.consumers),
        (2, 2, 1),
        "{status:?}"
    );
    assert_eq!((status.ack_wait_seconds, status.max_deliveries), (30, 5));
}

#[tokio::test]
async fn an_acked_job_leaves_the_queue_and_a_nak_brings_it_back() {
    let nats = TestNats::start();
    let queue = open(&nats, &options(30, 5)).await;
    queue.submit(&job("a")).await.unwrap();
    let first = queue.pull(Duration::from_secs(2)).await.unwrap().unwrap();
    assert_eq!(
        (first.id(), first.attempt(), first.max_deliveries()),
        (Some("a"), 1, 5)
    );
    assert_eq!(first.job().unwrap(), job("a"));
    first.progress().await.unwrap();
    assert_eq!(queue.status().await.unwrap().in_flight, 1);
    first.nak(Duration::ZERO).await.unwrap();
    let second = queue.pull(Duration::from_secs(2)).await.unwrap().unwrap();
    assert_eq!(second.attempt(), 2);
    assert_eq!(queue.status().await.unwrap().redelivered, 1);
    second.ack().await.unwrap();
    let status = queue.status().await.unwrap();
    assert_eq!(
        (status.depth, status.in_flight, status.messages),
        (0, 0, 0),
        "{status:?}"
    );
    assert!(queue.pull(Duration::from_millis(300)).await.unwrap().is_none());
}

#[tokio::test]
async fn a_worker_dead_letters_a_job_with_its_reason_and_retry_puts_it_back() {
    let nats = TestNats::start();
    let queue = open(&nats, &options(30, 2)).await;
    queue.submit(&job("poison")).await.unwrap();
    queue.submit(&job("fine")).await.unwrap();
    let d = queue.pull(Duration::from_secs(2)).await.unwrap().unwrap();
    d.nak(Duration::ZERO).await.unwrap();
    let fine = queue.pull(Duration::from_secs(2)).await.unwrap().unwrap();
    assert_eq!(fine.id(), Some("fine"));
    fine.ack().await.unwrap();
    let d = queue.pull(Duration::from_secs(2)).await.unwrap().unwrap();
    assert_eq!((d.id(), d.attempt()), (Some("poison"), 2));
    d.dead_letter("the cascade does not parse").await.unwrap();
    let dead = queue.dead_letters().await.unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(
        (dead[0].id.as_str(), dead[0].reason.as_str(), dead[0].deliveries),
        ("poison", "the cascade does not parse", 2)
    );
    let status = queue.status().await.unwrap();
    assert_eq!((status.messages, status.dead_letters), (0, 1), "{status:?}");

    let err = queue.retry_dead(&["nope".into()]).await.unwrap_err();
    assert_eq!(err.code().code, "RVB-S013", "{err}");
    assert_eq!(queue.retry_dead(&[]).await.unwrap(), vec!["poison".to_owned()]);
    let status = queue.status().await.unwrap();
    assert_eq!((status.depth, status.dead_letters), (1, 0), "{status:?}");
    let back = queue.pull(Duration::from_secs(2)).await.unwrap().unwrap();
    assert_eq!((back.id(), back.attempt()), (Some("poison"), 1));
    assert_eq!(back.job().unwrap(), job("poison"));
}

#[tokio::test]
async fn a_job_no_worker_ever_acks_is_dead_lettered_from_the_servers_advisory() {
    let nats = TestNats::start();
    let options = options(1, 2);
    let queue = open(&nats, &options).await;
    // Two workers listen: the advisory reaches both, the dead-letter stream keeps one copy.
    let mut watching = Vec::new();
    for _ in 0..2 {
        let watcher = open(&nats, &options).await;
        watching.push(tokio::spawn(async move { watcher.watch_given_up().await }));
    }
    queue.submit(&job("hangs")).await.unwrap();
    // Two deliveries, neither acked (the worker "died"): the server gives up after the second.
    for attempt in 1..=2 {
        let d = queue.pull(Duration::from_secs(5)).await.unwrap().unwrap();
        assert_eq!(d.attempt(), attempt);
    }
    // The server checks the limit when it would deliver again, so only while a worker is pulling.
    assert!(queue.pull(Duration::from_secs(3)).await.unwrap().is_none());
    let deadline = Instant::now() + Duration::from_secs(15);
    let dead = loop {
        let dead = queue.dead_letters().await.unwrap();
        if !dead.is_empty() || Instant::now() > deadline {
            break dead;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        dead.len(),
        1,
        "no dead letter 15 s after the last delivery: {dead:?}"
    );
    assert_eq!(dead[0].id, "hangs");
    assert!(dead[0].reason.contains("never acked"), "{}", dead[0].reason);
    assert_eq!(dead[0].deliveries, 2);
    assert_eq!(
        queue.status().await.unwrap().messages,
        0,
        "the given-up job stayed in the work queue"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        queue.dead_letters().await.unwrap().len(),
        1,
        "two listeners, two copies"
    );
    for w in watching {
        w.abort();
    }
}

#[tokio::test]
async fn a_queue_that_is_not_there_is_a_coded_error_with_the_masked_url() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("nats://ada:hunter2@127.0.0.1:{port}");
    let err = rvbbit_store::queue::open(&url, &QueueOptions::default())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert_eq!(err.code().code, "RVB-S011", "{text}");
    assert_eq!(err.code().exit_code(), 5);
    assert!(
        text.contains(&format!("nats://ada:****@127.0.0.1:{port}")),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");
    assert!(err.hint().contains("nats-server -js"), "{}", err.hint());
    let err = rvbbit_store::queue::open("amqp://h/", &QueueOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.code().code, "RVB-C003", "{err}");
}

#[tokio::test]
async fn the_user_and_password_of_the_url_authenticate() {
    // The deployment files (docs/deploy.md) run NATS with `--user/--pass` and hand rvbbit
    // `nats://USER:PASSWORD@HOST`: the credentials must reach the server.
    let nats = TestNats::start_with_user("rvbbit", "p@ss:word");
    let port = nats.port();
    let good = format!("nats://rvbbit:p%40ss%3Aword@127.0.0.1:{port}");
    let queue = rvbbit_store::queue::open(&good, &options(30, 5)).await.unwrap();
    let submitted = queue.submit(&job("with-credentials")).await.unwrap();
    assert!(!submitted.duplicate);
    assert_eq!(queue.status().await.unwrap().depth, 1);
    for url in [
        format!("nats://rvbbit:wrong@127.0.0.1:{port}"),
        format!("nats://127.0.0.1:{port}"),
    ] {
        let err = rvbbit_store::queue::open(&url, &options(30, 5))
            .await
            .unwrap_err();
        let text = format!("{err} {:?}", std::error::Error::source(&err));
        assert_eq!(err.code().code, "RVB-S011", "{text}");
        assert!(text.to_lowercase().contains("authorization"), "{text}");
        assert!(!text.contains("wrong"), "the password leaked: {text}");
    }
}

#[tokio::test]
async fn settings_the_server_does_not_hold_are_refused_not_ignored() {
    let nats = TestNats::start();
    // Another deployment made the stream with the default (limits) retention, which cannot change.
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "RVBBIT_JOBS".into(),
        subjects: vec!["RVBBIT_JOBS.jobs".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let err = NatsQueue::open(&nats.url(), &QueueOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.code().code, "RVB-S012", "{err}");
    assert_eq!(err.code().exit_code(), 5);
    assert!(err.to_string().contains("create the stream RVBBIT_JOBS"), "{err}");
    let cause = std::error::Error::source(&err).unwrap().to_string();
    assert!(cause.contains("retention"), "{cause}");
}

#[tokio::test]
async fn only_a_worker_sets_the_shared_consumers_settings() {
    let nats = TestNats::start();
    let worker = options(7, 3);
    let admin = QueueOptions {
        configure_consumer: false,
        ..QueueOptions::default()
    };
    // A submitter first: it creates the consumer, with its settings, since there is none.
    let first = open(&nats, &admin).await;
    assert_eq!(first.status().await.unwrap().ack_wait_seconds, 30);
    // A worker sets its own; a later submitter or admin with the defaults leaves them alone.
    open(&nats, &worker).await;
    let later = open(&nats, &admin).await;
    let status = later.status().await.unwrap();
    assert_eq!(
        (status.ack_wait_seconds, status.max_deliveries),
        (7, 3),
        "{status:?}"
    );
    later.submit(&job("x")).await.unwrap();
    let d = later.pull(Duration::from_secs(2)).await.unwrap().unwrap();
    assert_eq!(
        d.max_deliveries(),
        3,
        "a delivery knows the server's limit, not its opener's"
    );
}
