//! `rvbbit-loadgen`: a bounded load test of a running `rvbbit serve` on loopback.
//!
//! Starts one run of `CASCADE` over the API, follows it with `SSE` live clients (Server-Sent Events,
//! all at once), and meanwhile sends `RATE` API reads per second (open loop: a request is sent every
//! 1/RATE s whether or not earlier ones have answered) for `SECONDS`, rotating over the session list, one
//! session, a page of its events, the trace, costs and `/healthz`. Then it checks that every stream got
//! every event of the session exactly once, in order, followed by `complete`, and prints latency
//! percentiles and error counts. Exits 1 on any error.
//!
//! ```text
//! rvbbit-loadgen BASE_URL CASCADE [SSE=200] [RATE=500] [SECONDS=30]
//! ```

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::Value;
use tokio::sync::Mutex;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn summary(name: &str, mut ms: Vec<f64>) -> String {
    ms.sort_by(f64::total_cmp);
    format!(
        "{name:<28} n={:<7} p50 {:8.2} ms  p95 {:8.2} ms  p99 {:8.2} ms  max {:8.2} ms",
        ms.len(),
        percentile(&ms, 0.5),
        percentile(&ms, 0.95),
        percentile(&ms, 0.99),
        ms.last().copied().unwrap_or(f64::NAN)
    )
}

/// What one SSE client saw.
#[derive(Default)]
struct Seen {
    cursors: Vec<i64>,
    /// Arrival − the event's own timestamp, in ms.
    delays: Vec<f64>,
    completed: bool,
    error: Option<String>,
}

async fn follow(client: reqwest::Client, url: String) -> Seen {
    let mut seen = Seen::default();
    let response = match client
        .get(&url)
        .header("accept", "text/event-stream")
        .send()
        .await
    {
        Ok(r) if r.status().is_success() => r,
        Ok(r) => {
            seen.error = Some(format!("status {}", r.status()));
            return seen;
        }
        Err(e) => {
            seen.error = Some(e.to_string());
            return seen;
        }
    };
    let mut body = response.bytes_stream();
    let mut buffer = String::new();
    let (mut id, mut kind, mut data) = (None::<i64>, String::new(), String::new());
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                seen.error = Some(e.to_string());
                return seen;
            }
        };
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find('\n') {
            let line: String = buffer.drain(..=end).collect();
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if kind == "complete" {
                    seen.completed = true;
                    return seen;
                }
                if let Some(c) = id.take() {
                    seen.cursors.push(c);
                    if let Ok(v) = serde_json::from_str::<Value>(&data)
                        && let Some(at) = v["ts_us"].as_i64()
                    {
                        seen.delays.push((now_micros() - at) as f64 / 1000.0);
                    }
                }
                kind.clear();
                data.clear();
            } else if let Some(v) = line.strip_prefix("id:") {
                id = v.trim().parse().ok();
            } else if let Some(v) = line.strip_prefix("event:") {
                v.trim().clone_into(&mut kind);
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push_str(v.trim_start());
            }
        }
    }
    seen.error = Some("the stream ended without `complete`".into());
    seen
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: rvbbit-loadgen BASE_URL CASCADE [SSE=200] [RATE=500] [SECONDS=30]");
        std::process::exit(2);
    }
    let base = args[0].trim_end_matches('/').to_owned();
    let cascade = args[1].clone();
    let number = |i: usize, default: u64| args.get(i).and_then(|v| v.parse().ok()).unwrap_or(default);
    let (sse, rate, seconds) = (number(2, 200), number(3, 500), number(4, 30));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap_or_else(|e| {
            eprintln!("loadgen: no HTTP client: {e}");
            std::process::exit(2)
        });

    let started: Value = match client
        .post(format!("{base}/api/v1/runs"))
        .json(&serde_json::json!({"cascade": cascade}))
        .send()
        .await
    {
        Ok(r) => r.json().await.unwrap_or(Value::Null),
        Err(e) => {
            eprintln!("loadgen: cannot start the run: {e}");
            std::process::exit(2)
        }
    };
    let Some(session) = started["session_id"].as_str().map(str::to_owned) else {
        eprintln!("loadgen: the run did not start: {started}");
        std::process::exit(2)
    };
    println!("run {session}: {sse} SSE clients, {rate} API reads/s for {seconds} s");

    let streams: Vec<_> = (0..sse)
        .map(|_| {
            tokio::spawn(follow(
                client.clone(),
                format!("{base}/api/v1/sessions/{session}/events"),
            ))
        })
        .collect();

    let reads = [
        "/api/v1/sessions?limit=20".to_owned(),
        format!("/api/v1/sessions/{session}"),
        format!("/api/v1/sessions/{session}/events?limit=100"),
        format!("/api/v1/sessions/{session}/trace"),
        "/api/v1/costs?group=model".to_owned(),
        "/healthz".to_owned(),
    ];
    let latencies = Arc::new(Mutex::new(Vec::<f64>::new()));
    let errors = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(Mutex::new(None::<String>));
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(1) as f64));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let load_started = Instant::now();
    let mut sent = 0u64;
    let mut inflight = Vec::new();
    while load_started.elapsed() < Duration::from_secs(seconds) {
        ticker.tick().await;
        let path = &reads[usize::try_from(sent).unwrap_or(0) % reads.len()];
        sent += 1;
        let (client, url) = (client.clone(), format!("{base}{path}"));
        let (latencies, errors, first_error) = (latencies.clone(), errors.clone(), first_error.clone());
        inflight.push(tokio::spawn(async move {
            let t = Instant::now();
            let outcome = match client.get(&url).send().await {
                Ok(r) if r.status().is_success() => r.bytes().await.map(|_| ()).map_err(|e| e.to_string()),
                Ok(r) => Err(format!("{url}: status {}", r.status())),
                Err(e) => Err(format!("{url}: {e}")),
            };
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            match outcome {
                Ok(()) => latencies.lock().await.push(ms),
                Err(e) => {
                    errors.fetch_add(1, Ordering::Relaxed);
                    first_error.lock().await.get_or_insert(e);
                }
            }
        }));
    }
    for t in inflight {
        // Each task records its own result; a panicked task is a missing sample, not a load failure.
        let _ = t.await;
    }
    let load_secs = load_started.elapsed().as_secs_f64();

    // Every stream: every event once, in order, then `complete`.
    let mut stream_errors = 0u64;
    let mut delays = Vec::new();
    let mut counts = Vec::new();
    let mut first_stream_error = None;
    let mut all_cursors: Option<Vec<i64>> = None;
    for s in streams {
        let seen = s.await.unwrap_or_default();
        let ordered = seen.cursors.windows(2).all(|w| w[0] < w[1]);
        if seen.error.is_some() || !seen.completed || !ordered {
            stream_errors += 1;
            first_stream_error.get_or_insert(seen.error.clone().unwrap_or_else(|| "out of order".into()));
        }
        match &all_cursors {
            None => all_cursors = Some(seen.cursors.clone()),
            Some(c) if *c != seen.cursors => {
                stream_errors += 1;
                first_stream_error.get_or_insert("streams saw different events".into());
            }
            Some(_) => {}
        }
        counts.push(seen.cursors.len());
        delays.extend(seen.delays);
    }
    // The stored events of the session, paged through the API.
    let mut stored = Vec::new();
    let mut cursor = 0i64;
    loop {
        let page: Value = match client
            .get(format!(
                "{base}/api/v1/sessions/{session}/events?cursor={cursor}&limit=5000"
            ))
            .send()
            .await
        {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        };
        let events = page["events"].as_array().cloned().unwrap_or_default();
        stored.extend(events.iter().filter_map(|e| e["store_seq"].as_i64()));
        match page["next_cursor"].as_i64() {
            Some(next) if !events.is_empty() && next > cursor => cursor = next,
            _ => break,
        }
    }
    if all_cursors.as_ref().is_some_and(|c| *c != stored) {
        stream_errors += 1;
        first_stream_error.get_or_insert(format!(
            "streams got {} events, the store has {}",
            all_cursors.as_ref().map_or(0, Vec::len),
            stored.len()
        ));
    }

    let latencies = latencies.lock().await.clone();
    let errors = errors.load(Ordering::Relaxed);
    println!(
        "API reads: {sent} sent in {load_secs:.1} s ({:.0}/s), {errors} error(s)",
        sent as f64 / load_secs
    );
    println!("{}", summary("API read latency", latencies));
    println!(
        "SSE: {sse} clients, {} events each (store: {}), {stream_errors} stream error(s)",
        counts.first().copied().unwrap_or(0),
        stored.len()
    );
    println!("{}", summary("event → SSE client delay", delays));
    if let Some(e) = first_error.lock().await.as_ref() {
        println!("first API error: {e}");
    }
    if let Some(e) = first_stream_error {
        println!("first stream error: {e}");
    }
    if errors > 0 || stream_errors > 0 {
        std::process::exit(1);
    }
}
