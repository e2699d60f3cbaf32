//! One module per subcommand.

pub(crate) mod config;
pub(crate) mod explain;
pub(crate) mod schema;
pub(crate) mod validate;

use rvbbit_core::config::{ConfigError, LoadOptions, Loaded};
use serde_json::json;

use crate::cli::Cli;
use crate::output::{self, BrokenPipe, Format, Out};

/// Why a command could not finish normally.
#[derive(Debug)]
pub(crate) enum Failure {
    /// stdout was closed by the reader.
    BrokenPipe,
    /// Configuration is invalid (exit 6).
    Config(ConfigError),
}

impl From<BrokenPipe> for Failure {
    fn from(_: BrokenPipe) -> Self {
        Failure::BrokenPipe
    }
}

/// The result of a command: its exit code.
pub(crate) type Outcome = Result<u8, Failure>;

/// Load configuration once, from the working directory, the environment and the global flags.
pub(crate) fn load_config(cli: &Cli, out: Out) -> Result<Loaded, Failure> {
    let options = LoadOptions {
        explicit_file: cli.config.clone(),
        dir: std::env::current_dir().unwrap_or_default(),
        env: std::env::vars().collect(),
        flags: Vec::new(),
    };
    let loaded = rvbbit_core::config::load(&options).map_err(Failure::Config)?;
    if !out.quiet && out.format == Format::Text {
        for w in &loaded.warnings {
            output::stderr(&format!("warning: {w}\n"));
        }
    }
    Ok(loaded)
}

/// Print every configuration problem (text on stderr, or the JSON outcome document on stdout).
pub(crate) fn report_config_error(err: &ConfigError, out: Out) {
    match out.format {
        Format::Json => {
            let first = err.problems.first();
            let doc = json!({
                "status": "error",
                "exit_code": 6,
                "code": first.map(|p| p.code.code),
                "message": err.to_string(),
                "hint": first.map(|p| p.hint.clone()),
                "problems": err.problems,
            });
            // A closed stdout leaves nowhere to report to.
            let _ = output::json(&doc);
        }
        Format::Text => {
            let mut text = format!("error: {err}\n");
            for p in &err.problems {
                text.push_str(&format!("  - {}\n", p.to_string().replace('\n', "\n    ")));
            }
            text.push_str(
                "  see: docs/errors/ for each code; `rvbbit config show` prints the effective settings\n",
            );
            output::stderr(&text);
        }
    }
}
