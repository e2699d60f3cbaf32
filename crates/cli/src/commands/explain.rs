//! `rvbbit explain CODE`.

use rvbbit_core::codes;
use serde_json::json;

use super::Outcome;
use crate::output::{self, Format, Out};

/// Arguments of `rvbbit explain`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The error code, such as RVB-V004 (the RVB- prefix is optional). Without it, list every code.
    code: Option<String>,
}

pub(crate) fn run(args: &Args, out: Out) -> Outcome {
    let Some(wanted) = &args.code else {
        match out.format {
            Format::Json => {
                let all: Vec<_> = codes::ALL
                    .iter()
                    .map(|c| json!({"code": c.code, "exit_code": c.exit_code(), "title": c.title}))
                    .collect();
                output::json(&all)?;
            }
            Format::Text => {
                let mut text = String::new();
                for c in codes::ALL {
                    text.push_str(&format!("{}  exit {}  {}\n", c.code, c.exit_code(), c.title));
                }
                output::stdout(&text)?;
            }
        }
        return Ok(0);
    };
    match codes::lookup(wanted) {
        Some(code) => {
            match out.format {
                Format::Json => output::json(&json!({
                    "code": code.code, "exit_code": code.exit_code(), "title": code.title,
                    "what": code.what, "causes": code.causes, "fix": code.fix,
                }))?,
                Format::Text => output::stdout(&code.render_markdown())?,
            }
            Ok(0)
        }
        None => {
            let message = format!("`{wanted}` is not an rvbbit error code");
            match out.format {
                Format::Json => output::json(&json!({
                    "status": "error", "exit_code": 6, "code": codes::C_USAGE.code, "message": message,
                    "hint": "run `rvbbit explain` to list every code",
                }))?,
                Format::Text => output::stderr(&format!(
                    "error: {message}\n  hint: run `rvbbit explain` to list every code\n"
                )),
            }
            Ok(codes::C_USAGE.exit_code())
        }
    }
}
