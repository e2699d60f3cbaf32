//! Issue 13: breakers per model (and per endpoint only for connection failures), a fallback chain that
//! is tried before a breaker opens, one deadline per call, retried 200s without `choices`, recorded
//! retries, and a missing key that fails at once.

use std::time::Duration;

use rvbbit_llm::{BreakerSettings, BreakerState, Client, Error, Provider, ProviderSettings, RetryPolicy};
use rvbbit_testkit::{Reply, Script, TestServer};
use serde_json::{Value, json};

use crate::support::{ask, settings};

/// `bad/*` models fail with 500, everything else answers.
fn bad_and_good(body: &Value) -> Reply {
    let model = body["model"].as_str().unwrap_or_default();
    if model.starts_with("bad/") {
        Reply::server_error()
    } else {
        Reply::text(format!("answered by {model}"))
    }
}

/// The defaults rvbbit ships: 4 retries (five attempts) and a breaker opening after 5 failures.
fn defaults(server: &TestServer) -> ProviderSettings {
    let mut s = settings(server);
    s.retry = RetryPolicy {
        jitter: false,
        ..RetryPolicy::default()
    };
    s.breaker = BreakerSettings::default();
    assert_eq!(s.retry.max_retries, 4);
    assert_eq!(s.breaker.failure_threshold, 5);
    s
}

#[tokio::test(start_paused = true)]
async fn issue_13_a_bad_model_falls_back_to_a_good_one_under_the_defaults() {
    let server = TestServer::start(Script::rule(bad_and_good)).await;
    let client = Client::new(defaults(&server)).unwrap();
    let reply = client
        .chat(&ask("bad/model", "hi").with_fallbacks(["good/model"]))
        .await
        .unwrap();
    assert_eq!(reply.text, "answered by good/model");
    // Five attempts of the bad model, all recorded with the reply, then the good one.
    assert_eq!(reply.failed_attempts.len(), 5, "{:?}", reply.failed_attempts);
    assert!(
        reply
            .failed_attempts
            .iter()
            .all(|a| a.model == "bad/model" && a.code == "RVB-L006")
    );
    assert_eq!(server.requests(), 6);

    // The bad model's breaker is open now; the endpoint's and the good model's are not.
    assert_eq!(client.breaker_state("bad/model").unwrap(), BreakerState::Open);
    assert_eq!(client.breaker_state("good/model").unwrap(), BreakerState::Closed);
    assert_eq!(
        client.endpoint_breaker_state("good/model").unwrap(),
        BreakerState::Closed
    );

    // A second call skips the open model at once and still answers.
    let reply = client
        .chat(&ask("bad/model", "again").with_fallbacks(["good/model"]))
        .await
        .unwrap();
    assert_eq!(reply.text, "answered by good/model");
    assert_eq!(reply.failed_attempts.len(), 1);
    assert_eq!(reply.failed_attempts[0].code, "RVB-L008");
    assert_eq!(server.requests(), 7, "the open model was not called");
}

#[tokio::test(start_paused = true)]
async fn issue_13_a_bad_model_does_not_block_other_models_on_its_endpoint() {
    let server = TestServer::start(Script::rule(bad_and_good)).await;
    let client = Client::new(defaults(&server)).unwrap();
    let err = client.chat(&ask("bad/model", "hi")).await.unwrap_err();
    assert_eq!(err.code().code, "RVB-L006", "{err}");
    assert_eq!(client.breaker_state("bad/model").unwrap(), BreakerState::Open);
    let err = client.chat(&ask("bad/model", "hi")).await.unwrap_err();
    assert_eq!(err.code().code, "RVB-L008", "{err}");
    // Every other model on the same endpoint still gets through.
    for model in ["good/one", "good/two", "other/three"] {
        let reply = client.chat(&ask(model, "hi")).await.unwrap();
        assert_eq!(reply.text, format!("answered by {model}"));
    }
}

#[tokio::test(start_paused = true)]
async fn issue_13_connection_failures_open_the_endpoint_breaker_for_every_model() {
    // A port nothing listens on: connection refused.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    drop(listener);
    let mut s = ProviderSettings::new(url).with_api_key("sk-test");
    s.retry.max_retries = 0;
    s.breaker = BreakerSettings {
        failure_threshold: 2,
        cooldown: Duration::from_secs(30),
    };
    let client = Client::new(s).unwrap();
    for _ in 0..2 {
        let err = client.chat(&ask("a/x", "hi")).await.unwrap_err();
        assert_eq!(err.code().code, "RVB-L001", "{err}");
    }
    assert_eq!(client.endpoint_breaker_state("b/y").unwrap(), BreakerState::Open);
    let err = client.chat(&ask("b/y", "hi")).await.unwrap_err();
    assert!(matches!(err, Error::CircuitOpen { .. }), "{err:?}");
}

#[tokio::test(start_paused = true)]
async fn issue_13_the_timeout_bounds_the_whole_call_not_each_attempt() {
    let server = TestServer::start(Script::rule(|_| Reply::hang())).await;
    let mut s = defaults(&server);
    s.timeouts.total = Duration::from_secs(5);
    s.timeouts.first_byte = Duration::from_secs(2);
    let client = Client::new(s).unwrap();
    let started = tokio::time::Instant::now();
    let err = client
        .chat(&ask("slow/one", "hi").with_fallbacks(["slow/two"]))
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(took <= Duration::from_secs(5), "took {took:?}: {err}");
    assert!(took >= Duration::from_secs(2), "took {took:?}: {err}");
    assert_eq!(err.code().code, "RVB-L006", "{err}");
}

#[tokio::test(start_paused = true)]
async fn issue_13_a_hung_provider_is_bounded_by_the_first_byte_timeout_and_falls_back() {
    let server = TestServer::start(Script::rule(|body| {
        if body["model"] == "slow/one" {
            Reply::hang()
        } else {
            Reply::text("fast")
        }
    }))
    .await;
    let mut s = defaults(&server);
    s.retry.max_retries = 1;
    s.timeouts.total = Duration::from_secs(60);
    s.timeouts.first_byte = Duration::from_secs(3);
    let client = Client::new(s).unwrap();
    let started = tokio::time::Instant::now();
    let reply = client
        .chat(&ask("slow/one", "hi").with_fallbacks(["fast/two"]))
        .await
        .unwrap();
    assert_eq!(reply.text, "fast");
    assert_eq!(reply.failed_attempts.len(), 2);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn issue_13_a_200_without_choices_is_retried_and_recorded() {
    let server = TestServer::start(Script::sequence([
        Reply::json(json!({"id": "gen-1", "object": "chat.completion"})),
        Reply::text("second time lucky"),
    ]))
    .await;
    let reply = Client::new(settings(&server))
        .unwrap()
        .chat(&ask("m/x", "hi"))
        .await
        .unwrap();
    assert_eq!(reply.text, "second time lucky");
    assert_eq!(reply.failed_attempts.len(), 1);
    assert!(
        reply.failed_attempts[0].message.contains("choices"),
        "{:?}",
        reply.failed_attempts
    );
    // The recorded reply carries its failed attempts.
    let recorded = serde_json::to_value(&reply).unwrap();
    assert_eq!(recorded["failed_attempts"][0]["code"], "RVB-L006");
}

#[tokio::test]
async fn issue_14_a_missing_key_fails_at_once_naming_the_variable_and_the_alternatives() {
    let mut s = ProviderSettings::new("https://openrouter.invalid/api/v1");
    s.api_key_env = "OPENROUTER_API_KEY".into();
    let client = Client::new(s).unwrap();
    let started = std::time::Instant::now();
    let err = client
        .chat(&ask("a/x", "hi").with_fallbacks(["b/y"]))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(matches!(err, Error::MissingKey { .. }), "{err:?}");
    assert_eq!(err.code().code, "RVB-C009");
    assert_eq!(err.code().exit_code(), 6);
    assert!(err.to_string().contains("OPENROUTER_API_KEY"), "{err}");
    let hint = err.hint();
    assert!(
        hint.contains("--replay") && hint.contains("RVBBIT_PROVIDER_BASE_URL"),
        "{hint}"
    );
}

#[tokio::test]
async fn issue_14_a_loopback_server_needs_no_key() {
    let server = TestServer::start(Script::sequence([Reply::text("local")])).await;
    let client = Client::new(ProviderSettings::new(server.base_url())).unwrap();
    assert_eq!(client.chat(&ask("m/x", "hi")).await.unwrap().text, "local");
}
