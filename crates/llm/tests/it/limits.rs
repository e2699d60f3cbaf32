//! Concurrency and rate limits: requests and tokens per minute, estimated before the call and
//! corrected after. On a paused clock; arrival times are the server's.

use std::time::Duration;

use futures::future::join_all;
use rvbbit_llm::{ChatRequest, Client, Limits, Message, Provider};
use rvbbit_testkit::{Options, Reply, Script, TestServer};
use tokio::time::Instant;

use crate::support::{ask, settings};

/// A prompt of about 3,000 tokens (12,000 characters at 4 per token), capped at 100 output tokens.
fn large_prompt() -> ChatRequest {
    ChatRequest::new("m/x", vec![Message::user("x".repeat(12_000))]).with_max_tokens(100)
}

/// The most arrivals in any 60-second window.
fn max_per_minute(arrivals: &[Instant]) -> usize {
    arrivals
        .iter()
        .map(|start| {
            arrivals
                .iter()
                .filter(|t| **t >= *start && **t - *start < Duration::from_secs(60))
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[tokio::test(start_paused = true)]
async fn large_prompts_stay_under_the_tokens_per_minute_limit() {
    let server = TestServer::start(Script::rule(|_| Reply::text("ok").usage(3_000, 100))).await;
    let mut s = settings(&server);
    s.limits = Limits::default().with_tokens_per_minute(10_000);
    let client = Client::new(s).unwrap();
    let start = Instant::now();
    let replies = join_all((0..9).map(|_| async { client.chat(&large_prompt()).await })).await;
    assert!(replies.iter().all(Result::is_ok));
    let arrivals: Vec<Instant> = server.received().iter().map(|r| r.at).collect();
    assert_eq!(arrivals.len(), 9);
    // 3 × 3,100 tokens fit in 10,000 per minute; a fourth would not.
    assert_eq!(max_per_minute(&arrivals), 3);
    assert!(
        start.elapsed() >= Duration::from_secs(120),
        "{:?}",
        start.elapsed()
    );
    assert!(
        start.elapsed() < Duration::from_secs(121),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn the_token_estimate_is_corrected_by_real_usage() {
    // The prompt looks like 3,100 tokens but the provider bills 9,100: after the first call settles,
    // the second must wait for the window even though its estimate would fit.
    let server = TestServer::start(Script::rule(|_| Reply::text("ok").usage(9_000, 100))).await;
    let mut s = settings(&server);
    s.limits = Limits::default().with_tokens_per_minute(10_000);
    let client = Client::new(s).unwrap();
    client.chat(&large_prompt()).await.unwrap();
    client.chat(&large_prompt()).await.unwrap();
    let arrivals: Vec<Instant> = server.received().iter().map(|r| r.at).collect();
    assert!(
        arrivals[1] - arrivals[0] >= Duration::from_secs(60),
        "{:?}",
        arrivals[1] - arrivals[0]
    );
}

#[tokio::test(start_paused = true)]
async fn requests_per_minute_are_counted() {
    let server = TestServer::start(Script::echo()).await;
    let mut s = settings(&server);
    s.limits = Limits::default().with_requests_per_minute(2);
    let client = Client::new(s).unwrap();
    let start = Instant::now();
    let replies = join_all((0..5).map(|i| {
        let client = &client;
        async move { client.chat(&ask("m/x", &format!("call {i}"))).await }
    }))
    .await;
    assert!(replies.iter().all(Result::is_ok));
    assert_eq!(
        max_per_minute(&server.received().iter().map(|r| r.at).collect::<Vec<_>>()),
        2
    );
    assert!(start.elapsed() >= Duration::from_secs(120));
}

#[tokio::test(start_paused = true)]
async fn per_model_concurrency_limits_apply_on_top_of_the_endpoint_limit() {
    let server = TestServer::start_with(Options::new(Script::echo()).latency(Duration::from_secs(1))).await;
    let mut s = settings(&server);
    s.limits = Limits::default().with_max_concurrency(10);
    s.model_limits
        .insert("m/slow".into(), Limits::default().with_max_concurrency(2));
    let client = Client::new(s).unwrap();
    let start = Instant::now();
    let replies = join_all((0..6).map(|_| async { client.chat(&ask("m/slow", "hi")).await })).await;
    assert!(replies.iter().all(Result::is_ok));
    assert_eq!(server.max_concurrency(), 2);
    assert!(start.elapsed() >= Duration::from_secs(3));
}
