//! Fallback chains: `model` then `fallback_models`, or a named chain from the settings.

use rvbbit_llm::{Client, Error, Provider};
use rvbbit_testkit::{Reply, Script, TestServer};
use serde_json::Value;

use crate::support::{ask, client, settings};

/// `a/*` models are down (500), `b/*` models answer, `c/*` models do not exist.
fn by_model(body: &Value) -> Reply {
    let model = body["model"].as_str().unwrap_or_default();
    if model.starts_with("a/") {
        Reply::server_error()
    } else if model.starts_with("c/") {
        Reply::error(404, format!("model {model} not found"))
    } else {
        Reply::text(format!("answered by {model}"))
    }
}

#[tokio::test(start_paused = true)]
async fn falls_back_to_the_second_model_after_retries() {
    let server = TestServer::start(Script::rule(by_model)).await;
    let reply = client(&server)
        .chat(&ask("a/down", "hi").with_fallbacks(["b/up"]))
        .await
        .unwrap();
    assert_eq!(reply.text, "answered by b/up");
    assert_eq!(reply.model_requested, "b/up");
    let models: Vec<String> = server
        .bodies()
        .iter()
        .map(|b| b["model"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(models, ["a/down", "a/down", "a/down", "a/down", "b/up"]);
}

#[tokio::test(start_paused = true)]
async fn unknown_models_fall_back_without_retrying() {
    let server = TestServer::start(Script::rule(by_model)).await;
    let reply = client(&server)
        .chat(&ask("c/typo", "hi").with_fallbacks(["b/up"]))
        .await
        .unwrap();
    assert_eq!(reply.text, "answered by b/up");
    assert_eq!(server.requests(), 2);
}

#[tokio::test(start_paused = true)]
async fn named_chains_expand_in_order() {
    let server = TestServer::start(Script::rule(by_model)).await;
    let mut s = settings(&server);
    s.retry.max_retries = 0;
    s.chains.insert(
        "resilient".into(),
        vec!["c/typo".into(), "a/down".into(), "b/up".into()],
    );
    let reply = Client::new(s)
        .unwrap()
        .chat(&ask("resilient", "hi"))
        .await
        .unwrap();
    assert_eq!(reply.model_requested, "b/up");
    assert_eq!(server.requests(), 3);
}

#[tokio::test(start_paused = true)]
async fn an_exhausted_chain_names_every_model_tried() {
    let server = TestServer::start(Script::rule(by_model)).await;
    let mut s = settings(&server);
    s.retry.max_retries = 0;
    let err = Client::new(s)
        .unwrap()
        .chat(&ask("a/one", "hi").with_fallbacks(["c/two"]))
        .await
        .unwrap_err();
    let Error::FallbackExhausted { tried, last } = &err else {
        panic!("unexpected {err:?}")
    };
    let models: Vec<&str> = tried.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(models, ["a/one", "c/two"]);
    assert!(matches!(**last, Error::UnknownModel { .. }));
    assert_eq!(err.code().code, "RVB-L004", "the last failure decides the code");
    assert!(err.to_string().contains("all 2 models"));
}
