//! `rvbbit sessions list|show|cancel|cleanup|export|artifacts|kill-all`.

use rvbbit_core::{EventKind, MicroUsd, SessionId, SessionStatus, Timestamp, codes};
use rvbbit_store::{SessionFilter, Store, trace};
use serde_json::json;

use super::storage::{
    Filters, block_on, duration_arg, fail, human_duration, open, session_with_events, short_time, table,
};
use super::{Coded, Failure, Outcome};
use crate::cli::Cli;
use crate::output::{self, Format, Out};

/// `rvbbit sessions` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// List sessions, newest first, with status, events, tokens and cost (default limit 50; when more
    /// match, a line on stderr says so, and JSON has `"truncated": true`).
    List(Filters),
    /// Show one session: its record and a tree of cells, LLM calls and tool calls with cost and time.
    ///
    /// The cost in the header is the whole run's, sub-cascades included (the tree's own calls add up
    /// to the part spent in this session).
    Show {
        /// The session id, or `last` for the newest top-level session.
        #[arg(value_name = "ID|last")]
        id: String,
    },
    /// Stop a session: a running one stops at its next cell, turn or tool boundary; a waiting one (at a
    /// human-in-the-loop cell) is cancelled at once, its questions closed, and a later `rvbbit resume` or
    /// `rvbbit signal send` is refused (RVB-S010).
    Cancel {
        /// The session id.
        id: SessionId,
        /// Why (recorded with the session).
        #[arg(long, default_value = "cancelled from the command line")]
        reason: String,
    },
    /// Mark sessions whose heartbeat went stale as failed (orphaned), and with --older-than delete
    /// finished sessions (and their events) that ended before then.
    Cleanup {
        /// Delete finished sessions that ended longer ago than this (30d, 12h, ...).
        #[arg(long, value_name = "AGE", value_parser = duration_arg)]
        older_than: Option<i64>,
        /// A running session is a zombie when its heartbeat is older than this.
        #[arg(long, value_name = "AGE", value_parser = duration_arg, default_value = "90s")]
        stale_after: i64,
        /// Only report what would be done.
        #[arg(long)]
        dry_run: bool,
    },
    /// Print one session and all its events as one JSON document.
    Export {
        /// The session id, or `last` for the newest top-level session.
        #[arg(value_name = "ID|last")]
        id: String,
    },
    /// List the artifacts a session published (`create_artifact`, `create_chart`, `create_plotly`,
    /// `create_vega_lite`), or write them to a directory: `ID.html|md|txt|json` with the body, and
    /// `ID.svg` with a chart's drawing.
    Artifacts {
        /// The session id, or `last` for the newest top-level session.
        #[arg(value_name = "ID|last")]
        id: String,
        /// Write each artifact to this directory (created if missing) instead of only listing them.
        #[arg(long, value_name = "DIR")]
        save: Option<std::path::PathBuf>,
    },
    /// Ask every running or waiting session to stop.
    KillAll,
}

pub(crate) fn run(cli: &Cli, cmd: &Command, out: Out) -> Outcome {
    block_on(async {
        let opened = open(cli, out).await?;
        let store = opened.store.as_ref();
        match cmd {
            Command::List(filters) => {
                // One row more than asked tells whether the list was cut.
                let mut filter = filters.sessions(Some(50));
                let limit = filter.limit.unwrap_or(50);
                filter.limit = Some(limit.saturating_add(1));
                let mut list = store.sessions(&filter).await.map_err(fail)?;
                let truncated = list.len() as u64 > limit;
                list.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
                match out.format {
                    Format::Json => {
                        output::json(&json!({"status": "ok", "sessions": list, "truncated": truncated}))?
                    }
                    Format::Text => {
                        let rows: Vec<Vec<String>> = list
                            .iter()
                            .map(|s| {
                                let x = &s.session;
                                vec![
                                    x.session_id.to_string(),
                                    x.cascade_id.clone().unwrap_or_default(),
                                    x.status.to_string(),
                                    short_time(x.started_at),
                                    x.ended_at
                                        .map(|e| human_duration(e.micros() - x.started_at.micros()))
                                        .unwrap_or_else(|| "-".into()),
                                    s.events.to_string(),
                                    format!("{}/{}", s.tokens_in, s.tokens_out),
                                    s.cost.to_string(),
                                ]
                            })
                            .collect();
                        output::stdout(&table(
                            &[
                                "SESSION",
                                "CASCADE",
                                "STATUS",
                                "STARTED (UTC)",
                                "TOOK",
                                "EVENTS",
                                "TOKENS IN/OUT",
                                "COST",
                            ],
                            &rows,
                        ))?;
                        if truncated && !out.quiet {
                            output::stderr(&format!(
                                "showing the newest {limit} sessions; more match (raise --limit, or narrow \
                                 with --since, --status, --cascade)\n"
                            ));
                        }
                    }
                }
            }
            Command::Show { id } => {
                let id = resolve(store, id).await?;
                let (session, events) = session_with_events(store, &id).await?;
                let tree = trace::build(&events, true);
                let own: MicroUsd = tree.iter().map(|n| n.cost).sum();
                let total = run_cost(&events).unwrap_or(own).max(own);
                match out.format {
                    Format::Json => output::json(&json!({
                        "status": "ok",
                        "session": session,
                        "cost_usd": total.to_decimal_string(),
                        "own_cost_usd": own.to_decimal_string(),
                        "tree": tree,
                    }))?,
                    Format::Text => {
                        let cost = if total == own {
                            total.to_string()
                        } else {
                            format!("{total} (sub-cascades {})", total - own)
                        };
                        let mut text = format!(
                            "session {}  cascade {}  {}  {}  {}\n",
                            session.session_id,
                            session.cascade_id.as_deref().unwrap_or("-"),
                            session.status,
                            cost,
                            session
                                .ended_at
                                .map(|e| human_duration(e.micros() - session.started_at.micros()))
                                .unwrap_or_else(|| "running".into())
                        );
                        if let Some(err) = &session.error {
                            text.push_str(&format!("error: {err}\n"));
                        }
                        render_tree(&tree, "", false, &mut text);
                        output::stdout(&text)?;
                    }
                }
            }
            Command::Cancel { id, reason } => {
                let s = store.request_cancel(id, reason).await.map_err(fail)?;
                match out.format {
                    Format::Json => output::json(&json!({
                        "status": "ok",
                        "session_id": s.session_id,
                        "cancel_requested": true,
                        "session_status": s.status,
                    }))?,
                    // A waiting session is cancelled at once in the store (no process may be running it).
                    Format::Text if s.status == SessionStatus::Cancelled => output::stdout(&format!(
                        "cancelled {}: it was waiting; its questions are closed and it cannot be resumed\n",
                        s.session_id
                    ))?,
                    Format::Text => output::stdout(&format!(
                        "cancel requested for {}; it stops at its next cell, turn or tool boundary\n",
                        s.session_id
                    ))?,
                }
            }
            Command::KillAll => {
                let mut cancelled = Vec::new();
                for status in [SessionStatus::Running, SessionStatus::Waiting] {
                    let filter = SessionFilter {
                        status: Some(status),
                        ..SessionFilter::default()
                    };
                    for s in store.sessions(&filter).await.map_err(fail)? {
                        let s = store
                            .request_cancel(&s.session.session_id, "kill-all")
                            .await
                            .map_err(fail)?;
                        cancelled.push(s.session_id);
                    }
                }
                match out.format {
                    Format::Json => output::json(&json!({"status": "ok", "cancel_requested": cancelled}))?,
                    Format::Text => {
                        output::stdout(&format!("cancel requested for {} session(s)\n", cancelled.len()))?
                    }
                }
            }
            Command::Cleanup {
                older_than,
                stale_after,
                dry_run,
            } => {
                let now = Timestamp::now();
                let report = store
                    .cleanup(
                        now.add_micros(-stale_after),
                        older_than.map(|d| now.add_micros(-d)),
                        *dry_run,
                    )
                    .await
                    .map_err(fail)?;
                match out.format {
                    Format::Json => {
                        output::json(&json!({"status": "ok", "dry_run": dry_run, "cleanup": report}))?
                    }
                    Format::Text => {
                        let verb = if *dry_run { "would mark" } else { "marked" };
                        let mut text = format!(
                            "{verb} {} zombie session(s) failed (orphaned)\n",
                            report.orphaned.len()
                        );
                        for id in &report.orphaned {
                            text.push_str(&format!("  {id}\n"));
                        }
                        let verb = if *dry_run { "would delete" } else { "deleted" };
                        text.push_str(&format!(
                            "{verb} {} finished session(s) and {} event(s)\n",
                            report.deleted.len(),
                            report.deleted_events
                        ));
                        output::stdout(&text)?;
                    }
                }
            }
            Command::Artifacts { id, save } => {
                let id = resolve(store, id).await?;
                super::session_artifacts::show(store, &id, save.as_deref(), out).await?;
            }
            Command::Export { id } => {
                let id = resolve(store, id).await?;
                let (session, events) = session_with_events(store, &id).await?;
                // Export is JSON whatever --output says: it is meant for files and scripts.
                output::json(&json!({"session": session, "events": events}))?;
            }
        }
        Ok(0)
    })
}

/// A session id from the command line: `last` is the newest top-level session (sub-cascade runs start
/// after their parent, so the newest session of all may be a child).
pub(crate) async fn resolve(store: &dyn Store, text: &str) -> Result<SessionId, Failure> {
    if text == "last" {
        let filter = SessionFilter {
            limit: Some(LAST_SCAN),
            ..SessionFilter::default()
        };
        let list = store.sessions(&filter).await.map_err(fail)?;
        let newest = list
            .iter()
            .find(|s| s.session.parent_session_id.is_none())
            .or(list.first());
        return match newest {
            Some(s) => Ok(s.session.session_id.clone()),
            None => Err(Failure::Coded(Coded {
                code: codes::S_NOT_FOUND,
                message: format!("`last`: there are no sessions in {} yet", store.url()),
                hint: "run a cascade first (`rvbbit run CASCADE`), or point --config / RVBBIT_STORE__URL \
                       at the store that has them"
                    .into(),
                causes: Vec::new(),
            })),
        };
    }
    text.parse::<SessionId>().map_err(|e| {
        Failure::Coded(Coded {
            code: codes::C_USAGE,
            message: format!("`{text}` is not a session id: {e}"),
            hint: "copy the id from `rvbbit sessions list`, or write `last` for the newest session".into(),
            causes: Vec::new(),
        })
    })
}

/// How many of the newest sessions `last` looks through for a top-level one.
const LAST_SCAN: u64 = 500;

/// The whole run's cost as its end event recorded it (`cost_micro_usd`: its own calls plus every
/// sub-cascade's); `None` while it runs.
fn run_cost(events: &[rvbbit_store::StoredEvent]) -> Option<MicroUsd> {
    events
        .iter()
        .rev()
        .find(|e| {
            matches!(
                e.event.kind,
                EventKind::CascadeComplete | EventKind::CascadeError | EventKind::CascadeCancelled
            )
        })
        .and_then(|e| e.event.metadata.get("cost_micro_usd"))
        .and_then(serde_json::Value::as_i64)
        .map(MicroUsd::from_micros)
}

/// Render trace nodes as a tree with box-drawing branches.
pub(crate) fn render_tree(nodes: &[trace::Node], prefix: &str, with_content: bool, text: &mut String) {
    for (i, n) in nodes.iter().enumerate() {
        let last = i + 1 == nodes.len();
        let mut line = format!(
            "{prefix}{}{} {}",
            if last { "└─ " } else { "├─ " },
            n.kind,
            n.label
        );
        if n.tokens != (0, 0) {
            line.push_str(&format!("  tokens {}/{}", n.tokens.0, n.tokens.1));
        }
        if n.cost.micros() != 0 {
            line.push_str(&format!("  {}", n.cost));
        }
        if let Some(d) = n.duration_us {
            line.push_str(&format!("  {}", human_duration(d)));
        }
        if let Some(c) = n.content.as_ref().filter(|c| with_content && !c.is_null()) {
            let mut s = c.to_string();
            if s.chars().count() > 100 {
                s = s.chars().take(100).collect::<String>() + "…";
            }
            line.push_str(&format!("  {s}"));
        }
        text.push_str(&line);
        text.push('\n');
        let child_prefix = format!("{prefix}{}", if last { "   " } else { "│  " });
        render_tree(&n.children, &child_prefix, with_content, text);
    }
}
