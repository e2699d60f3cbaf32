//! Throughput of the embedded store: events/s (direct batches and through the buffered writer), then
//! `sessions` listing and cost totals on a store of 1M events. Prints numbers; asserts nothing.
//!
//! Run: `cargo bench -p rvbbit-store --bench store` (`RVBBIT_BENCH_EVENTS=N` changes the 1M).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout, missing_docs)]

use std::path::Path;
use std::time::Instant;

use rvbbit_core::{Event, EventKind, MicroUsd, SessionId, SessionStatus};
use rvbbit_store::{CostGroup, EventFilter, Session, SessionFilter, Writer, WriterOptions};

fn event(sid: &SessionId, i: usize) -> Event {
    let kind = if i.is_multiple_of(4) {
        EventKind::LlmResponse
    } else {
        EventKind::ToolResult
    };
    let mut e = Event::new(kind, sid.clone(), i as i64);
    e.cascade_id = Some(format!("cascade-{}", i % 7));
    e.caller_id = Some(format!("cli-c{}", i % 13).parse().unwrap());
    e.cell_name = Some("cell".into());
    e.content = serde_json::json!({"text": "a short message of a typical size for a tool result"});
    if kind == EventKind::LlmResponse {
        e.model = Some(format!("model-{}", i % 3));
        e.tokens.input = Some(1200);
        e.tokens.output = Some(300);
        e.cost = Some(MicroUsd::from_micros(1500));
    }
    e
}

fn main() {
    let total: usize = std::env::var("RVBBIT_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("bench.db").display());
        let store = rvbbit_store::open(&url, Path::new("/")).await.unwrap();

        // 1. Direct batched appends of 2048 events.
        let sid: SessionId = "bench-direct".parse().unwrap();
        let n = 200_000;
        let events: Vec<Event> = (0..n).map(|i| event(&sid, i)).collect();
        let t = Instant::now();
        for chunk in events.chunks(2048) {
            store.append(chunk).await.unwrap();
        }
        let secs = t.elapsed().as_secs_f64();
        println!(
            "append (batches of 2048): {n} events in {secs:.2} s = {:.0} events/s",
            n as f64 / secs
        );

        // 2. Through the buffered writer, as a run would emit them.
        let writer = Writer::spawn(store.clone(), WriterOptions::new(dir.path().join("spill")));
        let h = writer.handle();
        let sid: SessionId = "bench-writer".parse().unwrap();
        let events: Vec<Event> = (0..n).map(|i| event(&sid, i)).collect();
        let t = Instant::now();
        for e in events {
            h.event(e).await.unwrap();
        }
        let stats = writer.shutdown().await.unwrap();
        let secs = t.elapsed().as_secs_f64();
        println!(
            "writer (send + shutdown): {} events in {secs:.2} s = {:.0} events/s",
            stats.events_written,
            n as f64 / secs
        );

        // 3. Fill to `total` events over 1000 sessions, then time the read paths.
        let have = 2 * n;
        let per = (total.saturating_sub(have) / 1000).max(1);
        let t = Instant::now();
        let mut sessions = Vec::new();
        for s in 0..1000 {
            let sid: SessionId = format!("bench-s{s:04}").parse().unwrap();
            let mut session = Session::new(sid.clone());
            session.cascade_id = Some(format!("cascade-{}", s % 7));
            session.finish(SessionStatus::Completed, None, None);
            sessions.push(session);
            let events: Vec<Event> = (0..per).map(|i| event(&sid, i)).collect();
            for chunk in events.chunks(4096) {
                store.append(chunk).await.unwrap();
            }
        }
        store.put_sessions(&sessions).await.unwrap();
        let count = store.count_events(&EventFilter::default()).await.unwrap();
        println!("filled to {count} events in {:.1} s", t.elapsed().as_secs_f64());

        let time =
            |label: &str, t: Instant| println!("{label}: {:.1} ms", t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        let list = store
            .sessions(&SessionFilter {
                limit: Some(50),
                ..SessionFilter::default()
            })
            .await
            .unwrap();
        time(
            &format!("sessions list --limit 50 ({} rows, with totals)", list.len()),
            t,
        );
        let t = Instant::now();
        let rows = store
            .costs(CostGroup::Total, &EventFilter::default())
            .await
            .unwrap();
        time(&format!("costs summary (total {})", rows[0].cost), t);
        let t = Instant::now();
        let rows = store
            .costs(CostGroup::Model, &EventFilter::default())
            .await
            .unwrap();
        time(&format!("costs by-model ({} rows)", rows.len()), t);
        let t = Instant::now();
        let rows = store
            .costs(CostGroup::Day, &EventFilter::default())
            .await
            .unwrap();
        time(&format!("costs summary by day ({} rows)", rows.len()), t);
    });
}
