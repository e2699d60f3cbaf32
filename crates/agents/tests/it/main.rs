//! Integration tests of rvbbit-agents: real SQLite store, real engine, the testkit's scripted
//! OpenAI-compatible server over loopback, a paused tokio clock.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    unreachable_pub
)]

mod store;
mod support;
mod turns;
