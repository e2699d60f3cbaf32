//! Integration tests of rvbbit-channels: a real SQLite store and engine, deterministic cascades, the
//! testkit's fake chat platform on loopback.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    unreachable_pub
)]

mod agents;
mod control;
mod identity;
mod outbox;
mod support;
mod web;
