//! `rvbbit validate FILE|DIR...`.

use std::path::{Path, PathBuf};

use rvbbit_cascade::validate::{Options, Report, validate_loaded};
use rvbbit_cascade::{Catalog, Content, Severity, load_file_with, render};
use serde::Serialize;

use super::{Outcome, load_config};
use crate::cli::Cli;
use crate::output::{self, Format, Out};

/// Arguments of `rvbbit validate`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Cascade files, tool files (`*.tool.json`) or directories (searched recursively for .yaml, .yml and
    /// .json files that look like cascades or tools). `-` reads one cascade from standard input.
    #[arg(required = true, value_name = "FILE|DIR")]
    paths: Vec<PathBuf>,
    /// Treat warnings as errors (exit 1 on any warning). Config: validate.strict.
    #[arg(long)]
    strict: bool,
}

/// Directories never descended into.
const SKIP_DIRS: &[&str] = &["target", "node_modules", ".git", ".rvbbit"];
const MAX_DEPTH: usize = 32;

/// The JSON document printed by `rvbbit validate --output json`.
#[derive(Debug, Serialize)]
struct JsonReport {
    status: &'static str,
    exit_code: u8,
    summary: Summary,
    files: Vec<FileJson>,
    diagnostics: Vec<rvbbit_cascade::DiagnosticJson>,
}

#[derive(Debug, Default, Serialize)]
struct Summary {
    files: usize,
    errors: usize,
    warnings: usize,
}

#[derive(Debug, Serialize)]
struct FileJson {
    path: PathBuf,
    kind: Option<&'static str>,
    errors: usize,
    warnings: usize,
}

pub(crate) fn run(cli: &Cli, args: &Args, out: Out) -> Outcome {
    let config = load_config(cli, out)?;
    let options = Options {
        strict: args.strict || config.config.validate.strict,
        roots: config.config.roots.clone(),
    };
    let limits = &config.config.limits;
    // The catalog of what a run can call: the tools `rvbbit run` registers, so validation refuses what a
    // run would refuse (a deterministic cell's missing tool) instead of passing it silently.
    let mut catalog = Catalog::builtin();
    let registry = super::run::run_registry(std::path::Path::new("cascade.yaml"), &config.config);
    catalog.provided_only(&registry.names());
    registry.fill_catalog(&mut catalog);
    let mut reports = Vec::new();
    for path in &args.paths {
        if path.as_os_str() == "-" {
            reports.push(validate_loaded(read_stdin(limits), &mut catalog, &options));
        } else if path.is_dir() {
            let mut files = Vec::new();
            collect(path, 0, &mut files);
            for file in files {
                let loaded = load_file_with(&file, limits);
                if !looks_like_rvbbit_file(&loaded) {
                    if out.verbose && out.format == Format::Text {
                        output::stderr(&format!(
                            "skipped {} (not a cascade or tool file)\n",
                            file.display()
                        ));
                    }
                    continue;
                }
                reports.push(validate_loaded(loaded, &mut catalog, &options));
            }
        } else {
            reports.push(validate_loaded(
                load_file_with(path, limits),
                &mut catalog,
                &options,
            ));
        }
    }
    let mut summary = Summary {
        files: reports.len(),
        ..Summary::default()
    };
    for r in &reports {
        let (e, w) = r.counts();
        summary.errors += e;
        summary.warnings += w;
    }
    let exit = if summary.errors > 0 {
        rvbbit_core::codes::V_SYNTAX.exit_code()
    } else {
        0
    };
    match out.format {
        Format::Json => output::json(&json_report(&reports, summary, exit))?,
        Format::Text => print_text(&reports, &summary, out),
    }
    Ok(exit)
}

/// Read one cascade from standard input (at most the file-size limit).
fn read_stdin(limits: &rvbbit_core::config::LimitsConfig) -> rvbbit_cascade::Loaded {
    use std::io::Read;
    let mut bytes = Vec::new();
    let limit = rvbbit_cascade::MAX_FILE_BYTES;
    let read = std::io::stdin().lock().take(limit + 1).read_to_end(&mut bytes);
    let path = Path::new("<stdin>");
    let text = match read {
        Ok(_) if bytes.len() as u64 > limit => {
            Err(format!("standard input is larger than {} MiB", limit / 1_048_576))
        }
        Ok(_) => String::from_utf8(bytes).map_err(|_| "standard input is not UTF-8 text".to_owned()),
        Err(e) => Err(format!("cannot read standard input: {e}")),
    };
    match text {
        Ok(text) => rvbbit_cascade::load_str_with(path, &text, limits),
        Err(message) => rvbbit_cascade::Loaded {
            path: path.to_path_buf(),
            source: None,
            document: None,
            diagnostics: vec![
                rvbbit_cascade::Diagnostic::error(rvbbit_core::codes::V_READ, message)
                    .with_hint("pipe a UTF-8 YAML or JSON cascade, or pass a file path"),
            ],
        },
    }
}

fn looks_like_rvbbit_file(loaded: &rvbbit_cascade::Loaded) -> bool {
    let Some(source) = &loaded.source else { return true };
    let parsed = rvbbit_cascade::yaml::parse(source);
    match parsed.root {
        Some(root) => match root.as_map() {
            Some(_) => ["cascade_id", "cells", "phases", "tool_id"]
                .iter()
                .any(|k| root.get(k).is_some()),
            None => true,
        },
        None => true,
    }
}

fn collect(dir: &Path, depth: usize, files: &mut Vec<PathBuf>) {
    if depth > MAX_DEPTH {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            if !name.starts_with('.') && !SKIP_DIRS.contains(&name) {
                collect(&path, depth + 1, files);
            }
        } else if meta.is_file()
            && matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml" | "json")
            )
        {
            files.push(path);
        }
    }
}

fn json_report(reports: &[Report], summary: Summary, exit: u8) -> JsonReport {
    let mut files = Vec::new();
    let mut diagnostics = Vec::new();
    for r in reports {
        let (errors, warnings) = r.counts();
        let kind = r.loaded.document.as_ref().map(|d| match d.content {
            Content::Cascade(_) => "cascade",
            Content::Tool(_) => "tool",
        });
        files.push(FileJson {
            path: r.loaded.path.clone(),
            kind,
            errors,
            warnings,
        });
        for d in r.diagnostics() {
            diagnostics.push(d.to_json(&r.loaded.path, r.loaded.source.as_ref()));
        }
    }
    JsonReport {
        status: if exit == 0 { "ok" } else { "invalid" },
        exit_code: exit,
        summary,
        files,
        diagnostics,
    }
}

fn print_text(reports: &[Report], summary: &Summary, out: Out) {
    let mut text = String::new();
    for r in reports {
        for d in r.diagnostics() {
            if out.quiet && d.severity != Severity::Error {
                continue;
            }
            text.push_str(&render(d, &r.loaded.path, r.loaded.source.as_ref(), out.color));
        }
        if out.verbose && r.diagnostics().is_empty() {
            text.push_str(&format!("ok {}\n", r.loaded.path.display()));
        }
    }
    let files = plural(summary.files, "file");
    if summary.errors > 0 {
        text.push_str(&format!(
            "✗ {}, {} in {files}\n",
            plural(summary.errors, "error"),
            plural(summary.warnings, "warning")
        ));
    } else if !out.quiet {
        match summary.warnings {
            0 => text.push_str(&format!("✓ {files} valid\n")),
            n => text.push_str(&format!("✓ {files} valid, {}\n", plural(n, "warning"))),
        }
    }
    output::stderr(&text);
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}
