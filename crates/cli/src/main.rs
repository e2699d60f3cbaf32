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

fn main() -> ExitCode {
    cli::run()
}
