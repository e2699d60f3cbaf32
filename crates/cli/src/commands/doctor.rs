//! `rvbbit doctor`: check configuration, the store (and that its file, `-wal`, `-shm` and directory are
//! writable), zombie sessions and waiting spill files; every finding comes with the command or change
//! that fixes it.

use rvbbit_core::{Timestamp, codes};
use serde::Serialize;
use serde_json::json;

use super::storage::{block_on, fail};
use super::{Failure, Outcome, load_config};
use crate::cli::Cli;
use crate::output::{self, Format, Out};

#[derive(Debug, Serialize)]
struct Finding {
    check: &'static str,
    level: &'static str,
    message: String,
    fix: Option<String>,
}

fn finding(check: &'static str, level: &'static str, message: String, fix: Option<String>) -> Finding {
    Finding {
        check,
        level,
        message,
        fix,
    }
}

pub(crate) fn run(cli: &Cli, out: Out) -> Outcome {
    let mut findings = Vec::new();
    let mut exit = 0u8;
    let loaded = match load_config(cli, out) {
        Ok(l) => {
            findings.push(finding(
                "config",
                "ok",
                "configuration loads and validates".into(),
                None,
            ));
            l
        }
        Err(Failure::Config(e)) => {
            findings.push(finding(
                "config",
                "error",
                format!(
                    "{e}: {}",
                    e.problems
                        .iter()
                        .map(|p| p.message.clone())
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
                Some(
                    "fix rvbbit.toml or the RVBBIT_* variables; `rvbbit config show` lists every setting"
                        .into(),
                ),
            ));
            return render(&findings, 6, out);
        }
        Err(other) => return Err(other),
    };
    let provider = &loaded.config.provider;
    if provider.api_key.is_some() || std::env::var(&provider.api_key_env).is_ok_and(|k| !k.is_empty()) {
        findings.push(finding(
            "provider",
            "ok",
            format!("provider key configured ({})", provider.api_key_env),
            None,
        ));
    } else {
        findings.push(finding(
            "provider",
            "warning",
            format!("no provider key: {} is not set", provider.api_key_env),
            Some(format!("export {}=<your key>", provider.api_key_env)),
        ));
    }
    let base = std::env::current_dir().unwrap_or_default();
    let url = loaded.config.store.url.clone();
    let spill_dir = base.join(".rvbbit").join("spill");
    // Before opening the store: a descriptor of the database closed later would drop SQLite's locks.
    let file_problems = store_files(&url, &base);
    if let Some(code) = file_problems
        .iter()
        .find_map(|f| (f.level == "error").then_some(5))
    {
        exit = code;
    }
    findings.extend(file_problems);
    let store_findings = block_on(async {
        let mut f = Vec::new();
        let store = rvbbit_store::open(&url, &base).await.map_err(fail)?;
        let status = store.status().await.map_err(fail)?;
        f.push(finding(
            "store",
            "ok",
            format!(
                "store {} reachable, schema version {}, {} events",
                status.url, status.schema_version, status.events
            ),
            None,
        ));
        let zombies = store
            .cleanup(Timestamp::now().add_micros(-90_000_000), None, true)
            .await
            .map_err(fail)?
            .orphaned;
        if zombies.is_empty() {
            f.push(finding("sessions", "ok", "no zombie sessions".into(), None));
        } else {
            f.push(finding(
                "sessions",
                "warning",
                format!(
                    "{} running session(s) with a heartbeat older than 90s (their process is gone): {}",
                    zombies.len(),
                    zombies
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                Some("rvbbit sessions cleanup".into()),
            ));
        }
        Ok(f)
    });
    match store_findings {
        Ok(f) => findings.extend(f),
        Err(Failure::Coded(c)) => {
            exit = c.code.exit_code();
            findings.push(finding(
                "store",
                "error",
                format!("[{}] {}", c.code.code, c.message),
                Some(c.hint),
            ));
        }
        Err(other) => return Err(other),
    }
    match rvbbit_store::spill::pending(&spill_dir) {
        Ok(files) if files.is_empty() => {
            findings.push(finding("spill", "ok", "no spill files waiting".into(), None))
        }
        Ok(files) => findings.push(finding(
            "spill",
            "warning",
            format!(
                "{} spill file(s) waiting in .rvbbit/spill/ (events written while the store was unavailable)",
                files.len()
            ),
            Some("rvbbit db replay".into()),
        )),
        Err(e) => findings.push(finding("spill", "error", e.to_string(), Some(e.hint()))),
    }
    render(&findings, exit, out)
}

/// The store's files and directory: each one this process cannot write is an error (RVB-S007) naming
/// the file and the fix. Only the SQLite backend has files.
fn store_files(url: &str, base: &std::path::Path) -> Vec<Finding> {
    let Ok(options) = rvbbit_store::sqlite::SqliteOptions::from_url(url, base) else {
        return Vec::new();
    };
    let problems = options.check_files();
    if problems.is_empty() {
        return vec![finding(
            "files",
            "ok",
            format!(
                "{} and its -wal/-shm files and directory are writable",
                options.path.display()
            ),
            None,
        )];
    }
    problems
        .iter()
        .map(|p| {
            finding(
                "files",
                "error",
                format!(
                    "[{}] the store's {} {} is not writable: {}",
                    codes::S_FILE.code,
                    p.role,
                    p.path.display(),
                    p.error
                ),
                Some(p.fix()),
            )
        })
        .collect()
}

fn render(findings: &[Finding], exit: u8, out: Out) -> Outcome {
    match out.format {
        Format::Json => output::json(&json!({
            "status": if exit == 0 { "ok" } else { "error" },
            "exit_code": exit,
            "findings": findings,
        }))?,
        Format::Text => {
            let mut text = String::new();
            for f in findings {
                text.push_str(&format!("{:7}  {:8}  {}\n", f.level, f.check, f.message));
                if let Some(fix) = &f.fix {
                    text.push_str(&format!("{:7}  {:8}  fix: {fix}\n", "", ""));
                }
            }
            output::stdout(&text)?;
        }
    }
    Ok(exit)
}
