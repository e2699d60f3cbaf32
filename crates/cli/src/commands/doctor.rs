//! `rvbbit doctor`: check configuration, the store (and that its file, `-wal`, `-shm` and directory are
//! writable), zombie sessions and waiting spill files; every finding comes with the command or change
//! that fixes it.

use rvbbit_core::{Timestamp, codes};
use serde::Serialize;
use serde_json::json;

use super::storage::{block_on, duration_arg, fail};
use super::{Failure, Outcome, load_config};
use crate::cli::Cli;
use crate::output::{self, Format, Out};

/// Arguments of `rvbbit doctor`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Mark zombie sessions `failed` (RVB-E014, orphaned) instead of only listing them.
    #[arg(long)]
    repair: bool,
    /// A running session is a zombie when its heartbeat is older than this (runs beat every 10s).
    #[arg(long, value_name = "AGE", value_parser = duration_arg, default_value = "90s")]
    stale_after: i64,
}

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

pub(crate) fn run(cli: &Cli, args: &Args, out: Out) -> Outcome {
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
        let stale = human_age(args.stale_after);
        let zombies = store
            .cleanup(Timestamp::now().add_micros(-args.stale_after), None, !args.repair)
            .await
            .map_err(fail)?
            .orphaned;
        let list = zombies
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        if zombies.is_empty() {
            f.push(finding("sessions", "ok", "no zombie sessions".into(), None));
        } else if args.repair {
            f.push(finding(
                "sessions",
                "fixed",
                format!(
                    "marked {} zombie session(s) failed ({}, orphaned: no heartbeat for {stale}): {list}",
                    zombies.len(),
                    codes::E_ORPHANED.code
                ),
                None,
            ));
        } else {
            f.push(finding(
                "sessions",
                "warning",
                format!(
                    "{} running session(s) with a heartbeat older than {stale} (their process is gone): {list}",
                    zombies.len(),
                ),
                Some(format!(
                    "rvbbit doctor --repair{} (marks them failed, {})",
                    if args.stale_after == 90_000_000 {
                        String::new()
                    } else {
                        format!(" --stale-after {stale}")
                    },
                    codes::E_ORPHANED.code
                )),
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
    if let Some(url) = &loaded.config.store.events.url {
        let sink = block_on(async { Ok(super::sink::report(url, &base).await) })?;
        let (level, fix) = if !sink.reachable {
            (
                "warning",
                Some("start ClickHouse or fix `store.events.url`; runs go on and their events wait in .rvbbit/spill/events-sink/".to_owned()),
            )
        } else if sink.pending_events > 0 {
            ("warning", Some("rvbbit db replay".to_owned()))
        } else {
            ("ok", None)
        };
        findings.push(finding("events_sink", level, sink.line(), fix));
    }
    render(&findings, exit, out)
}

/// An age in microseconds as the flag takes it back (`90s`, `5m`, `2h`, `3d`).
fn human_age(us: i64) -> String {
    let s = us / 1_000_000;
    match s {
        s if s >= 86_400 && s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s >= 3_600 && s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s >= 60 && s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
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
