//! The `rvbbit` command: run, validate and inspect cascades.
//!
//! Each subcommand parses its flags, makes one library call and renders the result; `run()` maps every
//! error to a documented exit code (see `docs/exit-codes.md`).

// The doc comments of the clap structs are the `--help` text users read (and docs/cli.md is generated
// from it): `<file>` there is a placeholder for the terminal, not an HTML tag.
#![allow(rustdoc::invalid_html_tags)]

mod cli;
mod commands;
mod output;

use std::process::ExitCode;

/// mimalloc instead of the C library's allocator: statements and runs build many small JSON values, and
/// glibc's malloc was a fifth of a semantic statement's CPU time (issue 24; `scripts/bench-semantic.sh`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    cli::run()
}
