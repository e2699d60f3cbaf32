//! Client overhead per call against a zero-latency local testkit server.
//!
//! Two measurements on the same server and runtime:
//! - `raw_reqwest`: one POST of the same JSON body with a bare reqwest client, body read and parsed;
//! - `client_chat`: `Client::chat` with default settings (routing, model parsing, encoding, decoding,
//!   breaker, retry bookkeeping, cost from the price table);
//! - `client_chat_limited`: the same with a concurrency limit and request and token rate windows;
//! - `client_layer_only`: `Client::chat` in front of an in-process provider (no HTTP), which isolates
//!   the cost of the reliability layer (chain, routing, limits, breaker, cost) from the transport.
//!
//! The difference is what rvbbit-llm adds to a call. Run: `cargo bench -p rvbbit-llm`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::sync::Arc;

use async_trait::async_trait;

use criterion::{Criterion, criterion_group, criterion_main};
use rvbbit_llm::{ChatRequest, ChatResponse, Client, Limits, Message, Provider, ProviderSettings, Usage};
use rvbbit_testkit::{Script, TestServer};
use serde_json::json;

/// Answers at once, without I/O: isolates the `Client` layer.
struct Canned(ChatResponse);

#[async_trait]
impl Provider for Canned {
    fn name(&self) -> &str {
        "canned"
    }

    async fn chat(&self, _request: &ChatRequest) -> rvbbit_llm::Result<ChatResponse> {
        Ok(self.0.clone())
    }
}

fn client_overhead(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let server = runtime.block_on(TestServer::start(Script::echo()));

    let settings = ProviderSettings::new(server.base_url()).with_api_key("sk-bench");
    let client = Client::new(settings.clone()).unwrap();
    let mut limited = settings;
    limited.limits = Limits::default()
        .with_max_concurrency(64)
        .with_requests_per_minute(u32::MAX)
        .with_tokens_per_minute(u64::MAX / 2);
    let limited = Client::new(limited).unwrap();
    let request = ChatRequest::new(
        "openai/gpt-4o-mini",
        vec![
            Message::system("You are terse."),
            Message::user("Say hello in five words."),
        ],
    )
    .with_temperature(0.0);

    let raw = reqwest::Client::new();
    let url = format!("{}/chat/completions", server.base_url());
    let body = json!({"model": "openai/gpt-4o-mini", "temperature": 0.0, "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Say hello in five words."}]});

    let mut group = c.benchmark_group("per_call");
    group.bench_function("raw_reqwest", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let bytes = raw
                    .post(&url)
                    .bearer_auth("sk-bench")
                    .json(&body)
                    .send()
                    .await
                    .unwrap()
                    .bytes()
                    .await
                    .unwrap();
                black_box(serde_json::from_slice::<serde_json::Value>(&bytes).unwrap())
            })
        })
    });
    group.bench_function("client_chat", |b| {
        b.iter(|| runtime.block_on(async { black_box(client.chat(&request).await.unwrap()) }))
    });
    group.bench_function("client_chat_limited", |b| {
        b.iter(|| runtime.block_on(async { black_box(limited.chat(&request).await.unwrap()) }))
    });
    let mut canned = ChatResponse::new("canned", "openai/gpt-4o-mini", "hello there friend");
    canned.usage = Usage::new(20, 0, 0, 5, 0);
    let canned = Arc::new(Canned(canned));
    let mut layer_settings = ProviderSettings::new("http://127.0.0.1:9/v1");
    layer_settings.limits = Limits::default()
        .with_max_concurrency(64)
        .with_tokens_per_minute(u64::MAX / 2);
    let layer = Client::with_providers(layer_settings, canned.clone(), canned);
    group.bench_function("client_layer_only", |b| {
        b.iter(|| runtime.block_on(async { black_box(layer.chat(&request).await.unwrap()) }))
    });
    group.finish();
    runtime.block_on(server.shutdown());
}

criterion_group!(benches, client_overhead);
criterion_main!(benches);
