//! The `rvbbit` command: run, validate and inspect cascades.
//!
//! Each subcommand parses its flags, makes one library call and renders the result; `run()` maps every
//! error to a documented exit code (see `docs/exit-codes.md`).

mod cli;
mod commands;
mod output;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::run()
}
