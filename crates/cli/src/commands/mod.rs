//! One module per subcommand.

pub(crate) mod batch;
pub(crate) mod chat_control;
pub(crate) mod completions;
pub(crate) mod config;
pub(crate) mod costs;
pub(crate) mod db;
pub(crate) mod debug;
pub(crate) mod doctor;
pub(crate) mod explain;
pub(crate) mod health;
pub(crate) mod hitl;
pub(crate) mod init;
pub(crate) mod keys;
pub(crate) mod metrics;
pub(crate) mod queue;
pub(crate) mod registry;
pub(crate) mod resume;
pub(crate) mod run;
pub(crate) mod sandbox;
pub(crate) mod schema;
pub(crate) mod serve;
pub(crate) mod serve_sql;
pub(crate) mod session_artifacts;
pub(crate) mod sessions;
pub(crate) mod setup;
pub(crate) mod signal;
pub(crate) mod sink;
pub(crate) mod sql;
pub(crate) mod storage;
pub(crate) mod submit;
pub(crate) mod timings;
pub(crate) mod validate;
pub(crate) mod worker;

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
    /// Any other user-facing error: its code decides the exit code.
    Coded(Coded),
}

/// A user-facing error with its code, message, hint and chain of causes.
#[derive(Debug)]
pub(crate) struct Coded {
    /// The error code (decides the exit code and the docs page).
    pub(crate) code: &'static rvbbit_core::ErrorCode,
    /// What went wrong.
    pub(crate) message: String,
    /// How to fix it.
    pub(crate) hint: String,
    /// Underlying causes, outermost first.
    pub(crate) causes: Vec<String>,
}

impl Coded {
    /// A coded error from a library error: its `Display` is the message, its sources are the causes.
    #[allow(dead_code)]
    pub(crate) fn from_error(
        code: &'static rvbbit_core::ErrorCode,
        err: &(dyn std::error::Error + 'static),
        hint: impl Into<String>,
    ) -> Self {
        let mut causes = Vec::new();
        let mut source = err.source();
        while let Some(s) = source {
            causes.push(s.to_string());
            source = s.source();
        }
        Coded {
            code,
            message: err.to_string(),
            hint: hint.into(),
            causes,
        }
    }
}

/// Print a coded error (text on stderr, or the JSON outcome document on stdout).
pub(crate) fn report_coded(err: &Coded, out: Out) {
    match out.format {
        Format::Json => {
            let doc = json!({
                "status": "error",
                "exit_code": err.code.exit_code(),
                "code": err.code.code,
                "message": err.message,
                "hint": err.hint,
                "causes": err.causes,
            });
            if output::json(&doc).is_err() {
                // stdout itself failed (RVB-S009, or a closed pipe): stderr is the only place left.
                report_coded(
                    err,
                    Out {
                        format: Format::Text,
                        ..out
                    },
                );
            }
        }
        Format::Text => {
            let mut text = format!(
                "error[{}]: {}\n  hint: {}\n",
                err.code.code, err.message, err.hint
            );
            for c in &err.causes {
                text.push_str(&format!("  caused by: {c}\n"));
            }
            text.push_str(&format!("  see: rvbbit explain {}\n", err.code.code));
            output::stderr(&text);
        }
    }
}

impl From<BrokenPipe> for Failure {
    fn from(e: BrokenPipe) -> Self {
        match e {
            BrokenPipe::Closed => Failure::BrokenPipe,
            BrokenPipe::Failed(e) => Failure::Coded(Coded {
                code: rvbbit_core::codes::S_OUTPUT,
                message: "the result cannot be written to standard output".into(),
                hint: "free disk space or redirect the output elsewhere, then run the command again".into(),
                causes: vec![e.to_string()],
            }),
        }
    }
}

/// The result of a command: its exit code.
pub(crate) type Outcome = Result<u8, Failure>;

/// Load configuration once, from the working directory, the environment and the global flags.
pub(crate) fn load_config(cli: &Cli, out: Out) -> Result<Loaded, Failure> {
    let mut flags = Vec::new();
    for item in &cli.set {
        let Some((key, value)) = item.split_once('=') else {
            return Err(Failure::Coded(Coded {
                code: rvbbit_core::codes::C_USAGE,
                message: format!("`--set {item}` is not KEY=VALUE"),
                hint: "write it as `--set provider.max_concurrency=4`".into(),
                causes: Vec::new(),
            }));
        };
        flags.push((key.trim().to_owned(), value.to_owned(), format!("--set {item}")));
    }
    let options = LoadOptions {
        explicit_file: cli.config.clone(),
        dir: std::env::current_dir().unwrap_or_default(),
        env: std::env::vars().collect(),
        flags,
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
                "  see: `rvbbit explain CODE` for each code; `rvbbit config show` prints the effective settings\n",
            );
            output::stderr(&text);
        }
    }
}
