//! Integration tests of rvbbit-sql: real DataFusion sessions, a real SQLite store and the testkit's real
//! HTTP LLM server.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    unreachable_pub
)]

mod batch;
mod compat;
mod distributed;
mod limits;
mod magic;
mod map;
mod semantic;
mod semantic_annotate;
mod semantic_batch;
mod semantic_dimension;
mod semantic_embed;
mod semantic_options;
mod semantic_pg_proc;
mod semantic_pipeline;
mod slt;
mod sources;
mod support;
mod tool;
mod udf;
