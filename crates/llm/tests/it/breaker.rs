//! The circuit breaker: open after N consecutive endpoint failures, half-open after the cool-down,
//! closed again by a successful probe. On a paused clock.

use std::time::Duration;

use rvbbit_llm::{BreakerSettings, BreakerState, Client, Error, Provider};
use rvbbit_testkit::{Reply, Script, TestServer};

use crate::support::{ask, settings};

fn breaker_client(server: &TestServer) -> Client {
    let mut s = settings(server);
    s.retry.max_retries = 0;
    s.breaker = BreakerSettings {
        failure_threshold: 3,
        cooldown: Duration::from_secs(30),
    };
    Client::new(s).unwrap()
}

#[tokio::test(start_paused = true)]
async fn opens_after_consecutive_failures_half_opens_and_closes() {
    let server = TestServer::start(Script::sequence([
        Reply::server_error(),
        Reply::server_error(),
        Reply::server_error(),
        Reply::text("recovered"),
    ]))
    .await;
    let client = breaker_client(&server);
    for _ in 0..3 {
        assert!(matches!(
            client.chat(&ask("m/x", "hi")).await,
            Err(Error::Provider { .. })
        ));
    }
    assert_eq!(client.breaker_state("m/x").unwrap(), BreakerState::Open);

    // While open, calls fail fast without reaching the server.
    let err = client.chat(&ask("m/x", "hi")).await.unwrap_err();
    assert!(
        matches!(err, Error::CircuitOpen { retry_in, .. } if retry_in == Duration::from_secs(30)),
        "{err:?}"
    );
    assert_eq!(err.code().code, "RVB-L008");
    assert_eq!(server.requests(), 3);

    tokio::time::advance(Duration::from_secs(30)).await;
    assert_eq!(client.breaker_state("m/x").unwrap(), BreakerState::HalfOpen);
    let reply = client.chat(&ask("m/x", "hi")).await.unwrap();
    assert_eq!(reply.text, "recovered");
    assert_eq!(client.breaker_state("m/x").unwrap(), BreakerState::Closed);
    assert_eq!(server.requests(), 4);
}

#[tokio::test(start_paused = true)]
async fn a_failed_probe_reopens_the_circuit() {
    let server = TestServer::start(Script::rule(|_| Reply::server_error())).await;
    let client = breaker_client(&server);
    for _ in 0..3 {
        client.chat(&ask("m/x", "hi")).await.unwrap_err();
    }
    tokio::time::advance(Duration::from_secs(30)).await;
    assert!(matches!(
        client.chat(&ask("m/x", "hi")).await,
        Err(Error::Provider { .. })
    ));
    assert_eq!(client.breaker_state("m/x").unwrap(), BreakerState::Open);
    assert!(matches!(
        client.chat(&ask("m/x", "hi")).await,
        Err(Error::CircuitOpen { .. })
    ));
    assert_eq!(server.requests(), 4);
}

#[tokio::test(start_paused = true)]
async fn client_errors_and_rate_limits_do_not_open_the_circuit() {
    let server = TestServer::start(Script::sequence([
        Reply::error(400, "bad"),
        Reply::error(400, "bad"),
        Reply::rate_limited(1),
        Reply::error(400, "bad"),
        Reply::text("fine"),
    ]))
    .await;
    let client = breaker_client(&server);
    for _ in 0..4 {
        client.chat(&ask("m/x", "hi")).await.unwrap_err();
    }
    assert_eq!(client.breaker_state("m/x").unwrap(), BreakerState::Closed);
    assert_eq!(client.chat(&ask("m/x", "hi")).await.unwrap().text, "fine");
}

#[tokio::test(start_paused = true)]
async fn an_open_circuit_falls_back_to_another_endpoint() {
    let remote = TestServer::start(Script::rule(|_| Reply::server_error())).await;
    let local = TestServer::start(Script::echo()).await;
    let mut s = settings(&remote);
    s.retry.max_retries = 0;
    s.breaker = BreakerSettings {
        failure_threshold: 1,
        cooldown: Duration::from_secs(60),
    };
    s.ollama_base_url = local.base_url();
    let client = Client::new(s).unwrap();
    let request = ask("m/x", "hi").with_fallbacks(["ollama/llama3"]);
    assert_eq!(client.chat(&request).await.unwrap().provider, "ollama");
    // The remote circuit is now open: the next call skips it without a request.
    assert_eq!(client.chat(&request).await.unwrap().provider, "ollama");
    assert_eq!((remote.requests(), local.requests()), (1, 2));
}
