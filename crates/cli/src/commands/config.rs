//! `rvbbit config show`.

use serde_json::json;

use super::{Outcome, load_config};
use crate::cli::Cli;
use crate::output::{self, Format, Out};

/// `rvbbit config` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Print the effective configuration, secrets masked, with where each value came from
    /// (default, file, env or flag).
    Show,
}

pub(crate) fn run(cli: &Cli, cmd: &Command, out: Out) -> Outcome {
    let Command::Show = cmd;
    let loaded = load_config(cli, out)?;
    let rows = loaded.show();
    match out.format {
        Format::Json => output::json(&json!({
            "file": loaded.file,
            "settings": rows,
            "warnings": loaded.warnings,
        }))?,
        Format::Text => {
            let width = rows.iter().map(|r| r.key.len()).max().unwrap_or(0);
            let vwidth = rows.iter().map(|r| r.value.len()).max().unwrap_or(0).min(48);
            let mut text = match &loaded.file {
                Some(f) => format!("# config file: {}\n", f.display()),
                None => "# config file: none (defaults and environment)\n".to_owned(),
            };
            for r in rows {
                text.push_str(&format!(
                    "{:width$} = {:vwidth$}  # {}\n",
                    r.key, r.value, r.source
                ));
            }
            output::stdout(&text)?;
        }
    }
    Ok(0)
}
