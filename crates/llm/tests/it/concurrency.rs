//! The one timing test: 500 calls with a concurrency limit of 32 against a 50 ms server finish in about
//! 500/32 × 50 ms, and the server never sees more than 32 at once. Real time, generous tolerance.

use std::time::{Duration, Instant};

use rvbbit_llm::{Client, Limits, Provider};
use rvbbit_testkit::{Options, Script, TestServer};

use crate::support::{ask, settings};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_calls_with_a_concurrency_limit_of_32() {
    const CALLS: u32 = 500;
    const LIMIT: usize = 32;
    let latency = Duration::from_millis(50);
    let server = TestServer::start_with(Options::new(Script::echo()).latency(latency)).await;
    let mut s = settings(&server);
    s.limits = Limits::default().with_max_concurrency(LIMIT);
    let client = Client::new(s).unwrap();

    let start = Instant::now();
    let tasks: Vec<_> = (0..CALLS)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move { client.chat(&ask("m/x", &format!("call {i}"))).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let elapsed = start.elapsed();

    let ideal = latency * CALLS / LIMIT as u32; // 781 ms
    assert_eq!(server.requests(), u64::from(CALLS));
    assert!(
        server.max_concurrency() <= LIMIT,
        "server saw {} at once",
        server.max_concurrency()
    );
    assert!(
        elapsed >= ideal,
        "{elapsed:?} is faster than the limit allows ({ideal:?})"
    );
    assert!(
        elapsed < ideal * 2,
        "{elapsed:?} is more than twice the ideal {ideal:?}"
    );
    eprintln!(
        "500 calls, limit 32, 50 ms latency: {elapsed:?} (ideal {ideal:?}), max in flight {}",
        server.max_concurrency()
    );
}
