//! Tests of the scripted server itself, with a plain HTTP client.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod server;
