//! `rvbbit db init|status|migrate|compact|prune|backup|replay|copy`.

use std::path::PathBuf;

use serde_json::json;

use super::Outcome;
use super::storage::{block_on, duration_arg, fail, open, table};
use crate::cli::Cli;
use crate::output::{self, Format, Out};

/// `rvbbit db` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Create the store (default .rvbbit/rvbbit.db) and apply every migration.
    Init,
    /// Show the store URL, schema version, pending migrations, row counts and size.
    Status,
    /// Apply pending migrations (opening the store does this too; this makes it explicit).
    Migrate,
    /// Reclaim space: checkpoint the write-ahead log and VACUUM.
    Compact,
    /// Delete what is older than --older-than and no live session needs, then compact.
    ///
    /// Removes finished sessions that ended before then with their events and checkpoints, older events
    /// of no session record (SQL statements' `sql_query` and `cache_hit` events), signals no longer
    /// waiting, expired cache entries, and the run-journal steps and side-effect records of queue jobs
    /// (docs/workers.md) written before then. Running and waiting sessions are never touched. Run it
    /// from cron to keep the store at its documented size (docs/performance.md).
    Prune {
        /// Delete what is older than this (30d, 12h, ...).
        #[arg(long, value_name = "AGE", value_parser = duration_arg)]
        older_than: i64,
        /// Only report what would be deleted.
        #[arg(long)]
        dry_run: bool,
        /// Do not VACUUM afterwards (the freed pages are reused by later writes; the file keeps its size).
        #[arg(long)]
        no_compact: bool,
    },
    /// Write every table as JSON Lines (<table>.jsonl) into a directory.
    Backup {
        /// The directory to write into (created if missing).
        #[arg(long, value_name = "DIR")]
        to: PathBuf,
    },
    /// Load events spilled to .rvbbit/spill/ while the store was unavailable. Exactly once: events
    /// already present are skipped by id, and replayed files move to .rvbbit/spill/replayed/. A damaged
    /// line (such as the torn last line a crash leaves) is skipped, reported with its line number and
    /// kept in .rvbbit/spill/rejected/<file>.rejected; the rest of the file is replayed.
    Replay,
    /// Copy every record of this store (sessions, events, checkpoints, signals, API keys, the result
    /// cache) into another one, such as a team's PostgreSQL: `rvbbit db copy --to postgres://…`.
    /// Idempotent and resumable: run it again after an interruption and nothing is copied twice.
    Copy {
        /// The destination store URL (created and migrated if new).
        #[arg(long, value_name = "URL")]
        to: String,
    },
}

pub(crate) fn run(cli: &Cli, cmd: &Command, out: Out) -> Outcome {
    block_on(async {
        let opened = open(cli, out).await?;
        let store = opened.store.as_ref();
        match cmd {
            Command::Init | Command::Migrate => {
                let applied = store.migrate().await.map_err(fail)?;
                let status = store.status().await.map_err(fail)?;
                match out.format {
                    Format::Json => output::json(&json!({
                        "status": "ok", "url": status.url, "schema_version": status.schema_version,
                        "applied": applied,
                    }))?,
                    Format::Text => output::stdout(&format!(
                        "store {} at schema version {} ({})\n",
                        status.url,
                        status.schema_version,
                        if applied.is_empty() {
                            "up to date".to_owned()
                        } else {
                            format!("applied {}", applied.join(", "))
                        }
                    ))?,
                }
            }
            Command::Status => {
                let s = store.status().await.map_err(fail)?;
                let spill = rvbbit_store::spill::pending(&opened.spill_dir()).map_err(fail)?;
                match out.format {
                    Format::Json => output::json(&json!({
                        "status": "ok", "store": s, "spill_files": spill.len(),
                    }))?,
                    Format::Text => {
                        let rows = vec![
                            vec!["url".into(), s.url.clone()],
                            vec![
                                "schema version".into(),
                                format!("{} (latest {})", s.schema_version, s.latest_version),
                            ],
                            vec![
                                "pending migrations".into(),
                                if s.pending.is_empty() {
                                    "none".into()
                                } else {
                                    s.pending.join(", ")
                                },
                            ],
                            vec!["events".into(), s.events.to_string()],
                            vec!["sessions".into(), s.sessions.to_string()],
                            vec!["cache entries".into(), s.cache_entries.to_string()],
                            vec!["cache hits".into(), s.cache_hits.to_string()],
                            vec!["signals".into(), s.signals.to_string()],
                            vec![
                                "size".into(),
                                s.size_bytes.map_or("unknown".into(), |b| format!("{b} bytes")),
                            ],
                            vec!["spill files waiting".into(), spill.len().to_string()],
                        ];
                        output::stdout(
                            &table(&["", ""], &rows)
                                .lines()
                                .skip(1)
                                .map(|l| format!("{l}\n"))
                                .collect::<String>(),
                        )?;
                    }
                }
            }
            Command::Compact => {
                store.compact().await.map_err(fail)?;
                let s = store.status().await.map_err(fail)?;
                match out.format {
                    Format::Json => output::json(&json!({"status": "ok", "size_bytes": s.size_bytes}))?,
                    Format::Text => output::stdout(&format!(
                        "compacted {} ({} bytes)\n",
                        s.url,
                        s.size_bytes.unwrap_or(0)
                    ))?,
                }
            }
            Command::Prune {
                older_than,
                dry_run,
                no_compact,
            } => {
                let now = rvbbit_core::Timestamp::now();
                let before = store.status().await.map_err(fail)?.size_bytes;
                let pruned = store
                    .prune(now.add_micros(-older_than), now, *dry_run)
                    .await
                    .map_err(fail)?;
                if !dry_run && !no_compact {
                    store.compact().await.map_err(fail)?;
                }
                let after = store.status().await.map_err(fail)?.size_bytes;
                match out.format {
                    Format::Json => output::json(&json!({
                        "status": "ok", "dry_run": dry_run, "pruned": pruned,
                        "size_bytes_before": before, "size_bytes": after,
                    }))?,
                    Format::Text => output::stdout(&format!(
                        "{} {} session(s), {} event(s), {} checkpoint(s), {} signal(s), {} expired cache \
                         entr(ies), {} journal record(s), {} worker record(s), {} batch record(s); store {} bytes (was {})\n",
                        if *dry_run { "would delete" } else { "deleted" },
                        pruned.sessions,
                        pruned.events,
                        pruned.checkpoints,
                        pruned.signals,
                        pruned.cache_entries,
                        pruned.journal,
                        pruned.workers,
                        pruned.batches,
                        after.unwrap_or(0),
                        before.unwrap_or(0),
                    ))?,
                }
            }
            Command::Backup { to } => {
                let tables = store.backup(to).await.map_err(fail)?;
                match out.format {
                    Format::Json => output::json(&json!({
                        "status": "ok", "dir": to,
                        "tables": tables.iter().map(|(t, n)| json!({"table": t, "rows": n})).collect::<Vec<_>>(),
                    }))?,
                    Format::Text => {
                        let rows: Vec<Vec<String>> = tables
                            .iter()
                            .map(|(t, n)| vec![format!("{t}.jsonl"), n.to_string()])
                            .collect();
                        output::stdout(&format!(
                            "backup written to {}\n{}",
                            to.display(),
                            table(&["FILE", "ROWS"], &rows)
                        ))?;
                    }
                }
            }
            Command::Copy { to } => {
                let base = std::env::current_dir().unwrap_or_default();
                let dest = rvbbit_store::open(to, &base).await.map_err(fail)?;
                let show = out.format == Format::Text && !out.quiet;
                let report = rvbbit_store::copy_all(store, dest.as_ref(), |r| {
                    if show {
                        output::stderr(&format!(
                            "copying: {} sessions, {} events, {} cache entries\n",
                            r.sessions, r.events, r.cache_entries
                        ));
                    }
                })
                .await
                .map_err(fail)?;
                match out.format {
                    Format::Json => output::json(&json!({
                        "status": "ok", "from": store.url(), "to": dest.url(), "copied": report,
                    }))?,
                    Format::Text => output::stdout(&format!(
                        "copied {} into {}: {} sessions, {} events ({} new), {} checkpoints, {} signals, \
                         {} API keys ({} already there), {} cache entries\n",
                        store.url(),
                        dest.url(),
                        report.sessions,
                        report.events,
                        report.events_inserted,
                        report.checkpoints,
                        report.signals,
                        report.api_keys,
                        report.api_keys_present,
                        report.cache_entries
                    ))?,
                }
            }
            Command::Replay => {
                let r = rvbbit_store::spill::replay(store, &opened.spill_dir())
                    .await
                    .map_err(fail)?;
                // The event sink's own spill (`[store.events] url`), sent to the sink. A sink that
                // fails is reported after the store's replay, which stands.
                let mut sink_failure = None;
                let sink = match &opened.events_url {
                    Some(url) => {
                        let dir = super::sink::spill_dir(&opened.base);
                        let replayed = match rvbbit_store::open_sink(url).await {
                            Ok(sink) => rvbbit_store::spill::replay_events(sink.as_ref(), &dir).await,
                            Err(e) => Err(e),
                        };
                        match replayed {
                            Ok(report) => Some(report),
                            Err(e) => {
                                sink_failure = Some(fail(e));
                                None
                            }
                        }
                    }
                    None => None,
                };
                match out.format {
                    Format::Json => output::json(&json!({"status": "ok", "replay": r, "events_sink": sink}))?,
                    Format::Text => {
                        let mut text = format!(
                            "replayed {} spill file(s): {} records, {} events inserted, {} already present, {} session records, {} damaged line(s) set aside\n",
                            r.files.len(),
                            r.records,
                            r.events_inserted,
                            r.events_already_present,
                            r.sessions,
                            r.rejected.len()
                        );
                        if let Some(s) = &sink {
                            text.push_str(&format!(
                                "replayed {} events-sink spill file(s): {} events sent to the events sink\n",
                                s.files.len(),
                                s.records
                            ));
                        }
                        output::stdout(&text)?
                    }
                }
                if !r.rejected.is_empty() && !out.quiet && out.format == Format::Text {
                    let mut text = String::new();
                    for x in &r.rejected {
                        text.push_str(&format!(
                            "warning[{}]: line {} of {} is damaged and was not replayed ({}); kept in {}\n",
                            rvbbit_core::codes::S_FILE.code,
                            x.line,
                            x.file.display(),
                            x.error,
                            x.kept_in.display()
                        ));
                    }
                    text.push_str(
                        "  the other records were replayed; a torn last line is what a crash mid-write leaves. \
                         Fix a kept line and save it as a .jsonl file in .rvbbit/spill/ to replay it\n",
                    );
                    output::stderr(&text);
                }
                if !r.in_use.is_empty() && out.format == Format::Text {
                    output::stderr(&format!(
                        "warning: {} spill file(s) are still being written by a running rvbbit; \
                         replay again once it ends\n",
                        r.in_use.len()
                    ));
                }
                if let Some(failure) = sink_failure {
                    return Err(failure);
                }
            }
        }
        Ok(0)
    })
}
