//! `rvbbit sessions list|show|cancel|cleanup|export|kill-all`.

use rvbbit_core::{SessionId, SessionStatus, Timestamp};
use rvbbit_store::{SessionFilter, trace};
use serde_json::json;

use super::Outcome;
use super::storage::{
    Filters, block_on, duration_arg, fail, human_duration, open, session_with_events, short_time, table,
};
use crate::cli::Cli;
use crate::output::{self, Format, Out};

/// `rvbbit sessions` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// List sessions, newest first, with status, events, tokens and cost (default limit 50).
    List(Filters),
    /// Show one session: its record and a tree of cells, LLM calls and tool calls with cost and time.
    Show {
        /// The session id.
        id: SessionId,
    },
    /// Ask a running or waiting session to stop (it stops at its next cell, turn or tool boundary).
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
        /// The session id.
        id: SessionId,
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
                let list = store.sessions(&filters.sessions(Some(50))).await.map_err(fail)?;
                match out.format {
                    Format::Json => output::json(&json!({"status": "ok", "sessions": list}))?,
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
                    }
                }
            }
            Command::Show { id } => {
                let (session, events) = session_with_events(store, id).await?;
                let tree = trace::build(&events, true);
                match out.format {
                    Format::Json => output::json(&json!({"status": "ok", "session": session, "tree": tree}))?,
                    Format::Text => {
                        let total: rvbbit_core::MicroUsd = tree.iter().map(|n| n.cost).sum();
                        let mut text = format!(
                            "session {}  cascade {}  {}  {}  {}\n",
                            session.session_id,
                            session.cascade_id.as_deref().unwrap_or("-"),
                            session.status,
                            total,
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
                    Format::Json => output::json(
                        &json!({"status": "ok", "session_id": s.session_id, "cancel_requested": true}),
                    )?,
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
            Command::Export { id } => {
                let (session, events) = session_with_events(store, id).await?;
                // Export is JSON whatever --output says: it is meant for files and scripts.
                output::json(&json!({"session": session, "events": events}))?;
            }
        }
        Ok(0)
    })
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
