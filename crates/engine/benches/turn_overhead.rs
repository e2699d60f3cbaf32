//! Engine overhead per LLM turn against a zero-latency testkit server (goal < 1 ms).
//!
//! `cargo bench -p rvbbit-engine --bench turn_overhead` prints the time per turn of a one-cell cascade
//! with `max_turns: T` run by the engine (events to a real SQLite store), the time per call of the same
//! conversation sent directly through `rvbbit_llm::Client`, and their difference: what the engine adds
//! per turn (templates, message building, events, state).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use rvbbit_engine::tools::Registry;
use rvbbit_engine::{Engine, RunRequest};
use rvbbit_llm::{ChatRequest, Client, Message, Provider, ProviderSettings};
use rvbbit_store::{Writer, WriterOptions};
use rvbbit_testkit::{Script, TestServer};
use serde_json::json;

const TURNS: u32 = 50;
const ROUNDS: usize = 10;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let server = TestServer::start(Script::echo()).await;
        let mut settings = ProviderSettings::new(server.base_url()).with_api_key("k");
        settings.retry.max_retries = 0;
        let client = Arc::new(Client::new(settings).unwrap());
        let dir = tempfile::TempDir::new().unwrap();
        let store = rvbbit_store::open("sqlite://bench.db", dir.path()).await.unwrap();
        let writer = Writer::spawn(store, WriterOptions::new(dir.path().join("spill")));
        let engine = Engine::new(Registry::builtin())
            .with_provider(client.clone())
            .with_writer(writer.handle())
            .with_default_model("bench/model");
        let text = format!(
            "cascade_id: bench\ncells:\n  - name: talk\n    instructions: 'Talk about {{{{ input.topic }}}}'\n    rules: {{max_turns: {TURNS}}}\n"
        );
        let loaded = rvbbit_cascade::load_str(std::path::Path::new("bench.yaml"), &text);
        let cascade = loaded.document.and_then(|d| d.cascade().cloned()).unwrap();

        let mut engine_times = Vec::new();
        let mut direct_times = Vec::new();
        for _ in 0..ROUNDS {
            let t = Instant::now();
            let out = engine.run(RunRequest::new(cascade.clone()).with_input(json!({"topic": "tea"}))).await;
            assert_eq!(out.llm_calls, TURNS);
            engine_times.push(t.elapsed() / TURNS);

            let t = Instant::now();
            let mut messages = vec![Message::user("Talk about tea")];
            for turn in 0..TURNS {
                if turn > 0 {
                    messages.push(Message::user("Continue, or refine your previous output if it can be improved; if it is complete, repeat it as is."));
                }
                let reply = client.chat(&ChatRequest::new("bench/model", messages.clone())).await.unwrap();
                messages.push(Message::assistant(reply.text));
            }
            direct_times.push(t.elapsed() / TURNS);
        }
        writer.handle().flush().await.unwrap();
        engine_times.sort();
        direct_times.sort();
        let median = |v: &[Duration]| v[v.len() / 2];
        let (e, d) = (median(&engine_times), median(&direct_times));
        println!("turns per run {TURNS}, rounds {ROUNDS} (medians)");
        println!("engine, per turn:          {:8.1} µs", e.as_secs_f64() * 1e6);
        println!("client directly, per call: {:8.1} µs", d.as_secs_f64() * 1e6);
        println!(
            "engine overhead per turn:  {:8.1} µs (ratio {:.2}x; goal < 1000 µs)",
            (e.as_secs_f64() - d.as_secs_f64()) * 1e6,
            e.as_secs_f64() / d.as_secs_f64()
        );
        writer.shutdown().await.unwrap();
        server.shutdown().await;
    });
}
