//! Latency of the HTTP door, printed with the goal it is measured against:
//! - event → client: a run emits events (20 shell cells); a live SSE client timestamps each on arrival;
//!   latency = arrival − the event's own timestamp (both taken on this machine's clock). Goal < 100 ms.
//! - request round trip: `GET /healthz` and `GET /api/v1/sessions?limit=10` over keep-alive HTTP.
//!
//! Run: `cargo bench -p rvbbit-server --bench latency`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout, missing_docs)]

use std::time::{Duration, Instant};

use futures::StreamExt;
use rvbbit_core::Timestamp;
use rvbbit_engine::Engine;
use rvbbit_engine::tools::Registry;
use rvbbit_server::{Server, ServerConfig};
use rvbbit_store::{Writer, WriterOptions};
use serde_json::{Value, json};

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn report(name: &str, mut ms: Vec<f64>, goal_ms: Option<f64>) {
    ms.sort_by(|a, b| a.total_cmp(b));
    let p50 = percentile(&ms, 0.5);
    let p95 = percentile(&ms, 0.95);
    let max = *ms.last().unwrap();
    let goal = goal_ms.map_or(String::new(), |g| {
        format!(
            "  goal < {g} ms: p95/goal = {:.2} ({})",
            p95 / g,
            if p95 < g { "met" } else { "NOT met" }
        )
    });
    println!(
        "{name:<34} n={:<5} p50 {p50:7.2} ms  p95 {p95:7.2} ms  max {max:7.2} ms{goal}",
        ms.len()
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::TempDir::new().unwrap();
        let root = dir.path().join("cascades");
        std::fs::create_dir_all(&root).unwrap();
        let mut cascade = String::from("cascade_id: ticks\ncells:\n");
        for i in 0..20 {
            cascade.push_str(&format!(
                "  - name: c{i}\n    tool: linux_shell\n    inputs: {{command: \"sleep 0.05; echo {i}\"}}\n"
            ));
        }
        std::fs::write(root.join("ticks.yaml"), cascade).unwrap();
        let store = rvbbit_store::open("sqlite://rvbbit.db", dir.path())
            .await
            .unwrap();
        let writer = Writer::spawn(store.clone(), WriterOptions::new(dir.path().join("spill")));
        let engine = Engine::new(Registry::builtin()).with_writer(writer.handle());
        let server = Server::new(store, engine, ServerConfig::new(vec![root])).with_writer(writer.handle());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(server.serve(listener, async move {
            // Dropped sender or a stop signal: either way the server stops.
            let _ = stopped.await;
        }));
        let http = reqwest::Client::new();

        // Event → client latency over SSE, three runs.
        let mut latencies = Vec::new();
        for _ in 0..3 {
            let started: Value = http
                .post(format!("{base}/api/v1/runs"))
                .json(&json!({"cascade": "ticks.yaml"}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let id = started["session_id"].as_str().unwrap().to_owned();
            let response = http
                .get(format!("{base}/api/v1/sessions/{id}/events"))
                .header("accept", "text/event-stream")
                .send()
                .await
                .unwrap();
            let mut body = response.bytes_stream();
            let mut buffer = String::new();
            let mut replaying = true;
            'stream: while let Some(chunk) = body.next().await {
                let now = Timestamp::now();
                buffer.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
                while let Some(end) = buffer.find("\n\n") {
                    let block: String = buffer.drain(..end + 2).collect();
                    if block.contains("event: complete") {
                        break 'stream;
                    }
                    let Some(data) = block.lines().find_map(|l| l.strip_prefix("data: ")) else {
                        continue;
                    };
                    let v: Value = serde_json::from_str(data).unwrap();
                    let Some(ts) = v["ts_us"].as_i64() else { continue };
                    let ts = Timestamp::from_micros(ts);
                    let ms = (now.micros() - ts.micros()) as f64 / 1000.0;
                    // Events stored before the stream opened are a replay, not live latency.
                    if replaying && ms > 200.0 {
                        continue;
                    }
                    replaying = false;
                    latencies.push(ms);
                }
            }
        }
        report("event -> SSE client (live)", latencies, Some(100.0));

        // Request round trips.
        for (name, path) in [
            ("GET /healthz", "/healthz"),
            ("GET /api/v1/sessions?limit=10", "/api/v1/sessions?limit=10"),
        ] {
            let mut ms = Vec::new();
            for i in 0..520 {
                let t = Instant::now();
                let r = http.get(format!("{base}{path}")).send().await.unwrap();
                // The body is read to time the whole response; its bytes are not needed.
                let _ = r.bytes().await.unwrap();
                if i >= 20 {
                    ms.push(t.elapsed().as_secs_f64() * 1000.0);
                }
            }
            report(name, ms, None);
        }
        // The server may already be gone; the timeout below judges the stop.
        let _ = stop.send(());
        tokio::time::timeout(Duration::from_secs(30), serving)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        writer.shutdown().await.unwrap();
    });
}
