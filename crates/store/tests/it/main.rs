//! Integration tests of rvbbit-store: the conformance suite on every backend, the writer and spill replay.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    unreachable_pub
)]

#[macro_use]
mod conformance;
mod artifacts;
mod channels;
mod clickhouse;
mod conversations;
mod journal;
mod limits;
mod postgres;
mod postgres_tls;
mod queue;
mod sqlite;
mod writer;

use rvbbit_core::{Event, EventKind, MicroUsd, SessionId};

/// `n` events of session `sid`, every third one an LLM response with tokens and cost.
pub fn events(sid: &str, n: usize) -> Vec<Event> {
    let sid: SessionId = sid.parse().unwrap();
    (0..n)
        .map(|i| {
            let kind = if i.is_multiple_of(3) {
                EventKind::LlmResponse
            } else {
                EventKind::ToolCall
            };
            let mut e = Event::new(kind, sid.clone(), i as i64);
            e.cascade_id = Some("demo".into());
            if kind == EventKind::LlmResponse {
                e.model = Some("m1".into());
                e.tokens.input = Some(10);
                e.tokens.output = Some(5);
                e.cost = Some(MicroUsd::from_micros(100));
            }
            e
        })
        .collect()
}
