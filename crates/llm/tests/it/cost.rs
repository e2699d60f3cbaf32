//! Cost: from `usage.cost` when the provider reports it, else from the price table, cached tokens at
//! their own rate, zero for local models, unknown (never a silent zero) for unpriced models.

use rvbbit_core::MicroUsd;
use rvbbit_llm::{Client, CostStatus, Price, Provider, Usage};
use rvbbit_testkit::{Reply, Script, TestServer};

use crate::support::{ask, client, settings};

#[tokio::test]
async fn cost_comes_from_usage_cost_when_reported() {
    let server = TestServer::start(Script::sequence([Reply::text("hi")
        .usage(1_000, 200)
        .cost(0.000123)]))
    .await;
    // The price table knows this model, but the provider's own figure wins.
    let reply = client(&server)
        .chat(&ask("openai/gpt-4o-mini", "hi"))
        .await
        .unwrap();
    assert_eq!(reply.cost.amount, Some(MicroUsd::from_micros(123)));
    assert_eq!(reply.cost.status, CostStatus::Exact);
    assert_eq!(reply.usage, Usage::new(1_000, 0, 0, 200, 0));
}

#[tokio::test]
async fn openrouter_is_asked_to_report_cost_inline() {
    let server = TestServer::start(Script::echo()).await;
    let mut s = settings(&server);
    s.request_usage_cost = true;
    Client::new(s).unwrap().chat(&ask("m/x", "hi")).await.unwrap();
    assert_eq!(server.bodies()[0]["usage"]["include"], true);
}

#[tokio::test]
async fn cost_comes_from_the_price_table_otherwise() {
    let server = TestServer::start(Script::sequence([Reply::text("hi").usage(1_000, 500)])).await;
    let mut s = settings(&server);
    // $1 per million input tokens, $2 per million output tokens.
    s.prices.set("acme/model", Price::new(1_000_000, 2_000_000));
    let reply = Client::new(s)
        .unwrap()
        .chat(&ask("acme/model", "hi"))
        .await
        .unwrap();
    assert_eq!(reply.cost.amount, Some(MicroUsd::from_micros(2_000)));
    assert_eq!(reply.cost.status, CostStatus::Estimated);
}

#[tokio::test]
async fn cached_and_reasoning_tokens_are_priced_at_their_own_rates() {
    let server = TestServer::start(Script::sequence([Reply::text("hi")
        .usage(10_000, 1_000)
        .cached_tokens(8_000)
        .reasoning_tokens(400)]))
    .await;
    let mut s = settings(&server);
    s.prices.set(
        "acme/model",
        Price::new(1_000_000, 2_000_000)
            .with_cached_input(100_000)
            .with_reasoning(3_000_000),
    );
    let reply = Client::new(s)
        .unwrap()
        .chat(&ask("acme/model", "hi"))
        .await
        .unwrap();
    assert_eq!(reply.usage, Usage::new(2_000, 8_000, 0, 600, 400));
    // 2000×$1 + 8000×$0.10 + 600×$2 + 400×$3 per million = 2000 + 800 + 1200 + 1200 micro-dollars.
    assert_eq!(reply.cost.amount, Some(MicroUsd::from_micros(5_200)));
}

#[tokio::test]
async fn bundled_prices_cover_the_common_models() {
    let server = TestServer::start(Script::sequence([Reply::text("hi").usage(1_000_000, 0)])).await;
    let reply = client(&server)
        .chat(&ask("openai/gpt-4o-mini", "hi"))
        .await
        .unwrap();
    assert_eq!(reply.cost.amount, Some(MicroUsd::from_micros(150_000)));
    assert_eq!(reply.cost.status, CostStatus::Estimated);
}

#[tokio::test]
async fn unpriced_models_have_unknown_cost_not_zero() {
    let server = TestServer::start(Script::echo()).await;
    let reply = client(&server).chat(&ask("nobody/knows", "hi")).await.unwrap();
    assert_eq!(reply.cost.amount, None);
    assert_eq!(reply.cost.status, CostStatus::Unknown);
}

#[tokio::test]
async fn local_models_cost_exactly_zero() {
    let remote = TestServer::start(Script::echo()).await;
    let local = TestServer::start(Script::sequence([Reply::text("local").usage(5_000, 5_000)])).await;
    let mut s = settings(&remote);
    s.ollama_base_url = local.base_url();
    let reply = Client::new(s)
        .unwrap()
        .chat(&ask("ollama/qwen3", "hi"))
        .await
        .unwrap();
    assert_eq!(reply.cost.amount, Some(MicroUsd::ZERO));
    assert_eq!(reply.cost.status, CostStatus::Exact);
}
