//! `rvbbit init [DIR] [--force]`: write a starter project (a cascade, a recording of its model calls,
//! `rvbbit.toml`) that runs offline at once.

use std::path::{Path, PathBuf};

use rvbbit_core::codes;
use serde_json::json;

use super::{Coded, Failure, Outcome};
use crate::output::{self, Format, Out};

/// Arguments of `rvbbit init`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The project folder (created when missing; default: the current directory).
    #[arg(value_name = "DIR", default_value = ".")]
    dir: PathBuf,
    /// Overwrite scaffold files that already exist (other files are never touched).
    #[arg(long)]
    force: bool,
}

/// The scaffold: path inside the project, contents (embedded at build time from `crates/cli/scaffold/`).
pub(crate) const FILES: [(&str, &str); 4] = [
    ("hello.yaml", include_str!("../../scaffold/hello.yaml")),
    (
        "recordings/hello.jsonl",
        include_str!("../../scaffold/recordings/hello.jsonl"),
    ),
    ("rvbbit.toml", include_str!("../../scaffold/rvbbit.toml")),
    (".gitignore", include_str!("../../scaffold/gitignore")),
];

/// The input the shipped recording answers.
const INPUT: &str = r#"{"name": "Ada", "style": "pirate"}"#;

pub(crate) fn run(args: &Args, out: Out) -> Outcome {
    let existing: Vec<&str> = FILES
        .iter()
        .map(|(name, _)| *name)
        .filter(|name| args.dir.join(name).exists())
        .collect();
    if !existing.is_empty() && !args.force {
        return Err(Failure::Coded(Coded {
            code: codes::C_INIT_EXISTS,
            message: format!(
                "{} already holds {}; nothing was written",
                shown(&args.dir),
                existing.join(", ")
            ),
            hint: "pass another folder (`rvbbit init my-project`), or --force to overwrite these files"
                .into(),
            causes: Vec::new(),
        }));
    }
    for (name, text) in FILES {
        write(&args.dir.join(name), text)?;
    }
    let cd = if args.dir == Path::new(".") {
        String::new()
    } else {
        format!("cd {} && ", shown(&args.dir))
    };
    let next = [
        format!("{cd}rvbbit validate hello.yaml"),
        format!("{cd}rvbbit run hello.yaml --replay recordings/hello.jsonl --input '{INPUT}'"),
        format!("{cd}rvbbit sessions list"),
    ];
    match out.format {
        Format::Json => output::json(&json!({
            "status": "ok",
            "dir": shown(&args.dir),
            "files": FILES.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            "overwritten": existing,
            "next": next,
        }))?,
        Format::Text => {
            let mut text = String::new();
            for (name, _) in FILES {
                let verb = if existing.contains(&name) {
                    "overwrote"
                } else {
                    "created"
                };
                text.push_str(&format!("{verb} {}\n", shown(&args.dir.join(name))));
            }
            text.push_str("\nNext steps (offline, no API key needed):\n");
            for step in &next {
                text.push_str(&format!("  {step}\n"));
            }
            text.push_str(
                "With a key (export OPENROUTER_API_KEY=...), drop --replay to call the model; \
                 `rvbbit completions bash` sets up shell completion.\n",
            );
            output::stdout(&text)?;
        }
    }
    Ok(0)
}

fn shown(path: &Path) -> String {
    path.display().to_string()
}

fn write(path: &Path, text: &str) -> Result<(), Failure> {
    let result = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => std::fs::create_dir_all(parent),
        _ => Ok(()),
    }
    .and_then(|()| std::fs::write(path, text));
    result.map_err(|e| {
        Failure::Coded(Coded {
            code: codes::C_INIT_WRITE,
            message: format!("cannot write {}", shown(path)),
            hint: "check that the folder is writable, or pass another folder".into(),
            causes: vec![e.to_string()],
        })
    })
}
