//! Test support for rvbbit: a real, scripted OpenAI-compatible HTTP server.
//!
//! [`TestServer`] binds `127.0.0.1:0` and speaks the Chat Completions protocol (JSON and SSE
//! streaming) with replies from a [`Script`]: a sequence of [`Reply`]s, or a rule function of the
//! request. Replies can carry tool calls, usage and OpenRouter-style `usage.cost` blocks and latency,
//! or inject failures: 429 with `Retry-After`, 500, a hang, malformed JSON, a truncated body or stream.
//! Counters (requests, the most requests in flight at once, every body received with its arrival time)
//! let tests assert what the client really sent. Every LLM test in the workspace uses it; the client is
//! never stubbed.
//!
//! [`batch_rows`] and [`batch_answer`] read and answer rvbbit's many-rows prompts row by row.
//!
//! [`chat`] has fake Slack and Mattermost servers that record what they receive, and inbound requests
//! signed the way each platform documents.
//!
//! [`clickhouse`] and [`postgres`] start throwaway database servers for the store tests; [`nats`] starts
//! a throwaway NATS server with JetStream for the job queue's tests; [`s3`] a throwaway S3-compatible
//! server (SeaweedFS) for the artifact store's.
//!
//! This crate is for `[dev-dependencies]` only. It is also a binary for benchmarks:
//! `cargo run -p rvbbit-testkit -- serve --latency 200ms`.
//!
//! ```
//! use rvbbit_testkit::{Reply, Script, TestServer};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let server = TestServer::start(Script::sequence([Reply::rate_limited(2), Reply::text("hello")])).await;
//! assert!(server.base_url().starts_with("http://127.0.0.1:"));
//! server.shutdown().await;
//! # }
//! ```

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod batch;
pub mod chat;
pub mod clickhouse;
mod media;
pub mod nats;
pub mod postgres;
mod reply;
pub mod s3;
mod server;
mod watchdog;

pub use batch::{batch_answer, batch_rows, is_batch};
pub use media::{image_urls, speech_wav};
pub use reply::Reply;
pub use server::{EMBED_DIMS, Options, Received, Rule, Script, TestServer, hashed_embedding};
