//! Integration tests of rvbbit-llm against the testkit's real HTTP server.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod basics;
mod breaker;
mod concurrency;
mod cost;
mod embeddings;
mod failures;
mod fallback;
mod issue_13;
mod limits;
mod replay;
mod streaming;
mod support;
