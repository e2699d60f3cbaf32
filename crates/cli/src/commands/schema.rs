//! `rvbbit schema export`.

use std::path::PathBuf;

use rvbbit_cascade::schema::{ExportTarget, export};

use super::{Coded, Failure, Outcome};
use crate::output::{self, Out};

/// `rvbbit schema` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Write the JSON Schema of cascade files (or tool files) to stdout or a file.
    ///
    /// Point your editor at it: with the VS Code YAML extension, add to settings.json
    /// `"yaml.schemas": {"./rvbbit.schema.json": ["*.yaml", "cascades/**/*.yaml"]}`.
    Export(ExportArgs),
}

/// Arguments of `rvbbit schema export`.
#[derive(Debug, clap::Args)]
pub(crate) struct ExportArgs {
    /// Schema dialect to write.
    #[arg(long, value_enum, default_value = "jsonschema")]
    format: SchemaFormat,
    /// Which files the schema describes.
    #[arg(long, value_enum, default_value = "cascade")]
    target: Target,
    /// Write to this file instead of stdout.
    #[arg(long, short = 'o', value_name = "PATH")]
    out: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum SchemaFormat {
    /// JSON Schema (draft 2020-12).
    Jsonschema,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum Target {
    /// Cascade files.
    Cascade,
    /// Declarative tool files (`*.tool.json`).
    Tool,
}

pub(crate) fn run(cmd: &Command, _out: Out) -> Outcome {
    let Command::Export(args) = cmd;
    let SchemaFormat::Jsonschema = args.format;
    let target = match args.target {
        Target::Cascade => ExportTarget::Cascade,
        Target::Tool => ExportTarget::ToolDefinition,
    };
    let schema = export(target);
    let text = format!("{}\n", serde_json::to_string_pretty(&schema).unwrap_or_default());
    match &args.out {
        Some(path) => match std::fs::write(path, text) {
            Ok(()) => {
                output::stderr(&format!("wrote {}\n", path.display()));
                Ok(0)
            }
            Err(e) => Err(Failure::Coded(Coded {
                code: rvbbit_core::codes::C_USAGE,
                message: format!("cannot write `{}`", path.display()),
                hint: "check that the directory exists and is writable".into(),
                causes: vec![e.to_string()],
            })),
        },
        None => {
            output::stdout(&text)?;
            Ok(0)
        }
    }
}
