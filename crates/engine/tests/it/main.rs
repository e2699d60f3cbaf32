//! Integration tests of rvbbit-engine: real subprocesses, the testkit's OpenAI-compatible server and a
//! real SQLite store in a temporary directory.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    unreachable_pub
)]

mod budget;
mod compose;
mod corpus_llm;
mod declarative;
mod deterministic;
mod failures;
mod hitl;
mod journal;
mod llm;
mod polyglot;
mod sandbox;
mod spawn;
mod support;
mod takes;
mod templates;
mod vision;
mod wards;
