//! Writing to stdout and stderr. The only module allowed to print.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{self, IsTerminal, Write};

use serde::Serialize;

/// How results are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    /// Text for people.
    Text,
    /// One JSON document on stdout.
    Json,
}

/// Output settings shared by every command.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Out {
    pub(crate) format: Format,
    pub(crate) color: bool,
    pub(crate) quiet: bool,
    pub(crate) verbose: bool,
}

impl Out {
    /// Decide colors: never with `--no-color`, `NO_COLOR` or when stderr is not a terminal.
    pub(crate) fn new(format: Format, no_color: bool, quiet: bool, verbose: bool) -> Self {
        let no_color_env = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let color = !no_color && !no_color_env && io::stderr().is_terminal();
        Out {
            format,
            color,
            quiet,
            verbose,
        }
    }
}

/// Data could not be written to stdout.
#[derive(Debug)]
pub(crate) enum BrokenPipe {
    /// The reader went away (`| head`): exit quietly, as ripgrep does.
    Closed,
    /// Any other failure (a full disk, `/dev/full`, a read-only file): the command fails with
    /// RVB-S009 (exit 5), since its result is incomplete.
    Failed(io::Error),
}

fn check(result: io::Result<()>) -> Result<(), BrokenPipe> {
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Err(BrokenPipe::Closed),
        Err(e) => Err(BrokenPipe::Failed(e)),
    }
}

/// Write text to stdout.
pub(crate) fn stdout(text: &str) -> Result<(), BrokenPipe> {
    let mut out = io::stdout().lock();
    check(out.write_all(text.as_bytes()).and_then(|()| out.flush()))
}

/// Write one JSON document (pretty, with a trailing newline) to stdout.
pub(crate) fn json<T: Serialize>(value: &T) -> Result<(), BrokenPipe> {
    let text = serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    stdout(&format!("{text}\n"))
}

/// Write to stderr (diagnostics, progress, warnings).
pub(crate) fn stderr(text: &str) {
    let mut err = io::stderr().lock();
    // Nothing sensible can be done when stderr itself is gone.
    let _ = err.write_all(text.as_bytes());
}
