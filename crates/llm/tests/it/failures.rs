//! Every failure class: which are retried (429, 5xx, timeouts, malformed or truncated replies,
//! connection failures) and which are not (other 4xx). All on a paused clock: waits are virtual.

use std::time::Duration;

use rvbbit_llm::{Client, Error, Provider, TimeoutPhase};
use rvbbit_testkit::{Reply, Script, TestServer};
use tokio::time::Instant;

use crate::support::{ask, client, settings};

#[tokio::test(start_paused = true)]
async fn rate_limit_is_retried_after_the_retry_after_delay() {
    let server = TestServer::start(Script::sequence([
        Reply::rate_limited(30),
        Reply::text("finally"),
    ]))
    .await;
    let start = Instant::now();
    let reply = client(&server).chat(&ask("m/x", "hi")).await.unwrap();
    let waited = start.elapsed();
    assert_eq!(reply.text, "finally");
    assert_eq!(server.requests(), 2);
    // Exactly the 30 s the server asked for (plus no backoff of our own), measured on the paused clock.
    assert!(
        waited >= Duration::from_secs(30) && waited < Duration::from_secs(31),
        "{waited:?}"
    );
    let arrivals: Vec<Instant> = server.received().iter().map(|r| r.at).collect();
    assert!(arrivals[1] - arrivals[0] >= Duration::from_secs(30));
}

#[tokio::test(start_paused = true)]
async fn retry_after_longer_than_allowed_fails_at_once() {
    let server = TestServer::start(Script::sequence([Reply::rate_limited(3_600)])).await;
    let err = client(&server).chat(&ask("m/x", "hi")).await.unwrap_err();
    assert!(
        matches!(err, Error::RateLimited { status: 429, retry_after: Some(d), .. } if d == Duration::from_secs(3_600))
    );
    assert_eq!(err.code().code, "RVB-L003");
    assert_eq!(server.requests(), 1);
}

#[tokio::test(start_paused = true)]
async fn persistent_rate_limit_exhausts_retries() {
    let server = TestServer::start(Script::rule(|_| Reply::rate_limited(1))).await;
    let err = client(&server).chat(&ask("m/x", "hi")).await.unwrap_err();
    assert_eq!(err.code().code, "RVB-L003");
    assert_eq!(err.status(), Some(429));
    assert_eq!(server.requests(), 4, "1 attempt + 3 retries");
}

#[tokio::test(start_paused = true)]
async fn server_errors_are_retried_with_exponential_backoff() {
    let server = TestServer::start(Script::sequence([
        Reply::server_error(),
        Reply::server_error(),
        Reply::text("ok"),
    ]))
    .await;
    let start = Instant::now();
    let reply = client(&server).chat(&ask("m/x", "hi")).await.unwrap();
    assert_eq!(reply.text, "ok");
    assert_eq!(server.requests(), 3);
    // Jitter is off in these settings: 100 ms then 200 ms.
    assert_eq!(start.elapsed(), Duration::from_millis(300));
}

#[tokio::test(start_paused = true)]
async fn server_errors_that_persist_become_a_provider_error() {
    let server = TestServer::start(Script::rule(|_| Reply::error(503, "overloaded"))).await;
    let err = client(&server).chat(&ask("m/x", "hi")).await.unwrap_err();
    match &err {
        Error::Provider {
            provider,
            model,
            status,
            message,
            ..
        } => {
            assert_eq!(
                (provider.as_str(), model.as_str(), *status),
                ("testkit", "m/x", Some(503))
            );
            assert_eq!(message, "overloaded");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(err.code().code, "RVB-L006");
    assert_eq!(server.requests(), 4);
}

#[tokio::test(start_paused = true)]
async fn client_errors_are_never_retried() {
    let server = TestServer::start(Script::sequence([
        Reply::error(400, "context too long"),
        Reply::error(401, "invalid key"),
        Reply::error(403, "forbidden"),
        Reply::error(422, "bad tool schema"),
    ]))
    .await;
    let client = client(&server);
    let bad = client.chat(&ask("m/x", "hi")).await.unwrap_err();
    assert!(matches!(&bad, Error::BadRequest { status: 400, message, .. } if message == "context too long"));
    assert_eq!(bad.code().code, "RVB-L005");
    let auth = client.chat(&ask("m/x", "hi")).await.unwrap_err();
    assert!(matches!(auth, Error::Auth { status: 401, .. }));
    assert_eq!(auth.code().code, "RVB-L002");
    assert_eq!(
        auth.hint(),
        "set OPENROUTER_API_KEY to a valid key for this provider"
    );
    assert!(
        !format!("{auth} {auth:?}").contains("sk-test-secret"),
        "the key must never appear in errors"
    );
    let forbidden = client.chat(&ask("m/x", "hi")).await.unwrap_err();
    assert!(matches!(forbidden, Error::Auth { status: 403, .. }));
    let unprocessable = client.chat(&ask("m/x", "hi")).await.unwrap_err();
    assert!(matches!(unprocessable, Error::BadRequest { status: 422, .. }));
    assert!(!unprocessable.is_transient());
    assert_eq!(server.requests(), 4, "one request per call: nothing retried");
}

#[tokio::test(start_paused = true)]
async fn unknown_models_suggest_close_matches() {
    let server = TestServer::start(Script::sequence([Reply::error(
        404,
        "The model `openai/gpt-4o-mni` does not exist",
    )]))
    .await;
    let err = client(&server)
        .chat(&ask("openai/gpt-4o-mni", "hi"))
        .await
        .unwrap_err();
    let Error::UnknownModel {
        suggestions,
        status: 404,
        ..
    } = &err
    else {
        panic!("unexpected {err:?}")
    };
    assert_eq!(
        suggestions.first().map(String::as_str),
        Some("openai/gpt-4o-mini")
    );
    assert_eq!(err.code().code, "RVB-L004");
    assert!(
        err.hint().contains("did you mean openai/gpt-4o-mini"),
        "{}",
        err.hint()
    );
    assert_eq!(server.requests(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_hanging_server_times_out_and_is_retried() {
    let server = TestServer::start(Script::sequence([Reply::hang(), Reply::text("awake")])).await;
    let start = Instant::now();
    let reply = client(&server).chat(&ask("m/x", "hi")).await.unwrap();
    assert_eq!(reply.text, "awake");
    assert_eq!(server.requests(), 2);
    // The 5 s first-byte limit, then 100 ms of backoff.
    assert_eq!(start.elapsed(), Duration::from_millis(5_100));
}

#[tokio::test(start_paused = true)]
async fn a_server_that_always_hangs_is_a_timeout_error() {
    let server = TestServer::start(Script::rule(|_| Reply::hang())).await;
    let err = client(&server).chat(&ask("m/x", "hi")).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Timeout {
                phase: TimeoutPhase::FirstByte,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.code().code, "RVB-L006");
    assert_eq!(server.requests(), 4);
}

#[tokio::test(start_paused = true)]
async fn malformed_json_is_retried_then_reported() {
    let server = TestServer::start(Script::sequence([Reply::malformed_json(), Reply::text("clean")])).await;
    assert_eq!(
        client(&server).chat(&ask("m/x", "hi")).await.unwrap().text,
        "clean"
    );
    assert_eq!(server.requests(), 2);

    let broken = TestServer::start(Script::rule(|_| Reply::malformed_json())).await;
    let err = client(&broken).chat(&ask("m/x", "hi")).await.unwrap_err();
    assert!(
        matches!(&err, Error::InvalidResponse { message, .. } if message.contains("not JSON")),
        "{err:?}"
    );
    assert_eq!(err.code().code, "RVB-L006");
    assert_eq!(broken.requests(), 4);
}

#[tokio::test(start_paused = true)]
async fn a_truncated_body_is_retried() {
    let server = TestServer::start(Script::sequence([Reply::truncated(), Reply::text("whole")])).await;
    assert_eq!(
        client(&server).chat(&ask("m/x", "hi")).await.unwrap().text,
        "whole"
    );
    assert_eq!(server.requests(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_refused_connection_is_unreachable_after_retries() {
    // Bind, note the port, and close it again: connecting there is refused.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let server = TestServer::start(Script::echo()).await;
    let mut s = settings(&server);
    s.base_url = format!("http://{addr}/v1");
    let start = Instant::now();
    let err = Client::new(s).unwrap().chat(&ask("m/x", "hi")).await.unwrap_err();
    assert!(
        matches!(&err, Error::Unreachable { url, .. } if url.contains(&addr.to_string())),
        "{err:?}"
    );
    assert_eq!(err.code().code, "RVB-L001");
    assert!(err.hint().contains("RVBBIT_PROVIDER_BASE_URL"));
    // Three retries happened: 100 + 200 + 400 ms of backoff.
    assert_eq!(start.elapsed(), Duration::from_millis(700));
}

#[tokio::test(start_paused = true)]
async fn an_error_object_inside_a_200_is_a_retried_provider_error() {
    // OpenRouter reports some upstream failures this way.
    let server = TestServer::start(Script::sequence([
        Reply::error(200, "upstream overloaded"),
        Reply::text("ok"),
    ]))
    .await;
    assert_eq!(client(&server).chat(&ask("m/x", "hi")).await.unwrap().text, "ok");
    assert_eq!(server.requests(), 2);
}
