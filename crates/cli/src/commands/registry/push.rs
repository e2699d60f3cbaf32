//! `rvbbit cascade push FILE [--name NAME[:VERSION]] [--force]`.

use std::path::{Path, PathBuf};

use rvbbit_cascade::load_file_with;
use rvbbit_core::codes;
use rvbbit_store::artifacts::{Artifacts, LATEST, Pushed, Tagged, parse_name};
use serde::Serialize;

use super::collect::collect;
use crate::cli::Cli;
use crate::commands::storage::{block_on, fail};
use crate::commands::{Coded, Failure, Outcome, load_config};
use crate::output::{self, Format, Out};

/// Arguments of `rvbbit cascade push`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The cascade file. It is validated first (errors exit 1, nothing is pushed).
    #[arg(value_name = "CASCADE")]
    cascade: PathBuf,
    /// Name the bundle NAME:VERSION (lowercase letters, digits, `.`, `_`, `-`; VERSION defaults to
    /// `latest`). Without it the bundle is stored by hash only.
    #[arg(long, value_name = "NAME[:VERSION]")]
    name: Option<String>,
    /// Move NAME:VERSION to this bundle even when it names other content.
    #[arg(long)]
    force: bool,
}

/// The JSON document of `rvbbit cascade push --output json`.
#[derive(Debug, Serialize)]
pub(crate) struct PushReport {
    #[serde(flatten)]
    pub(crate) pushed: Pushed,
    /// The cascade, relative to the bundle's root.
    entry: String,
    /// `registry:…` references that now run it.
    references: Vec<String>,
    /// What became of each name (`created`, `unchanged`, `moved`).
    names: Vec<NameReport>,
    /// The artifact store.
    store: String,
    /// Templated references the bundle could not follow.
    unfollowed: Vec<String>,
}

#[derive(Debug, Serialize)]
struct NameReport {
    name: String,
    version: String,
    result: Tagged,
}

pub(crate) fn run(cli: &Cli, args: &Args, out: Out) -> Outcome {
    let config = load_config(cli, out)?.config;
    let name = match &args.name {
        Some(n) => Some(parse_name(n).map_err(|why| {
            Failure::Coded(Coded {
                code: codes::C_USAGE,
                message: format!("`--name {n}`: {why}"),
                hint: "for example `--name summarize:1.0`".into(),
                causes: Vec::new(),
            })
        })?),
        None => None,
    };
    let report = push_file(&args.cascade, &config, name.as_ref(), args.force)?;
    render(&report, out)
}

/// Validate `cascade`, collect its bundle, store it and name it `name` (and `NAME:latest`).
pub(crate) fn push_file(
    cascade: &Path,
    config: &rvbbit_core::Config,
    name: Option<&(String, String)>,
    force: bool,
) -> Result<PushReport, Failure> {
    validate(cascade, config)?;
    let artifacts = super::open(config)?;
    let collected = collect(cascade, config, artifacts.limits())?;
    let mut files = Vec::with_capacity(collected.files.len());
    for (path, real) in &collected.files {
        let bytes = std::fs::read(real).map_err(|e| {
            Failure::Coded(Coded {
                code: codes::V_READ,
                message: format!("`{}` cannot be read: {e}", real.display()),
                hint: "check the file's permissions".into(),
                causes: Vec::new(),
            })
        })?;
        files.push((path.clone(), bytes));
    }
    // A name that already names other content refuses the push before anything is uploaded.
    let hash = Artifacts::plan(&collected.entry, collected.roots.clone(), &files).hash();
    block_on(async {
        if let Some((name, version)) = name {
            artifacts
                .check_tag(name, version, &hash, force)
                .await
                .map_err(fail)?;
        }
        let pushed = artifacts
            .push(&collected.entry, collected.roots.clone(), files)
            .await
            .map_err(fail)?;
        let mut names = Vec::new();
        let mut references = vec![format!("registry:{}", pushed.hash)];
        if let Some((name, version)) = name {
            let mut versions = vec![version.clone()];
            if version != LATEST {
                versions.push(LATEST.to_owned());
            }
            for v in versions {
                let result = artifacts.tag(name, &v, &pushed.hash, force).await.map_err(fail)?;
                references.push(format!("registry:{name}:{v}"));
                names.push(NameReport {
                    name: name.clone(),
                    version: v,
                    result,
                });
            }
        }
        Ok(PushReport {
            pushed,
            entry: collected.entry.clone(),
            references,
            names,
            store: artifacts.url().to_owned(),
            unfollowed: collected.unfollowed.clone(),
        })
    })
}

/// Validate the cascade as a run would: nothing invalid is pushed.
fn validate(cascade: &Path, config: &rvbbit_core::Config) -> Result<(), Failure> {
    let registry = crate::commands::run::run_registry(cascade, config);
    let report =
        crate::commands::run::validate_for_run(load_file_with(cascade, &config.limits), &registry, config);
    let Some(d) = report
        .diagnostics()
        .iter()
        .find(|d| d.severity == rvbbit_cascade::Severity::Error)
    else {
        return Ok(());
    };
    let j = d.to_json(&report.loaded.path, report.loaded.source.as_ref());
    let at = match (j.line, j.column) {
        (Some(l), Some(c)) => format!("{}:{l}:{c}", j.file.display()),
        _ => j.file.display().to_string(),
    };
    Err(Failure::Coded(Coded {
        code: d.code,
        message: format!("{at}: {}; nothing was pushed", d.message),
        hint: d
            .hint
            .clone()
            .unwrap_or_else(|| "run `rvbbit validate` on the file".into()),
        causes: Vec::new(),
    }))
}

fn render(report: &PushReport, out: Out) -> Outcome {
    match out.format {
        Format::Json => output::json(report)?,
        Format::Text => {
            output::stdout(&format!("{}\n", report.pushed.hash))?;
            if !out.quiet {
                let p = &report.pushed;
                let mut text = format!(
                    "pushed {} ({} file(s), {} bytes; uploaded {} file(s), {} bytes{}) to {}\n",
                    report.entry,
                    p.files,
                    p.bytes,
                    p.uploaded_files,
                    p.uploaded_bytes,
                    if p.uploaded_manifest {
                        ""
                    } else {
                        "; the bundle was already stored"
                    },
                    report.store
                );
                for n in &report.names {
                    let what = match n.result {
                        Tagged::Created => "now names it",
                        Tagged::Unchanged => "already named it",
                        Tagged::Moved => "moved to it",
                    };
                    text.push_str(&format!("{}:{} {what}\n", n.name, n.version));
                }
                for u in &report.unfollowed {
                    text.push_str(&format!(
                        "warning: the templated reference {u} is resolved only at run time; its file is not in the bundle unless a tool directory holds it\n"
                    ));
                }
                // The version pushed (`references[1]`), else the hash.
                let run = report
                    .references
                    .get(1)
                    .or(report.references.first())
                    .cloned()
                    .unwrap_or_default();
                text.push_str(&format!("run it anywhere: rvbbit run {run}\n"));
                output::stderr(&text);
            }
        }
    }
    Ok(0)
}
