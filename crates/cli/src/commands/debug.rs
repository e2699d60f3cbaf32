//! `rvbbit debug trace|inputs|emit`.

use rvbbit_core::{Event, EventKind, MicroUsd, SessionId, SessionStatus, codes};
use rvbbit_store::{Heartbeat, Session, Writer, WriterOptions, heartbeat, trace};
use serde_json::json;

use super::storage::{Signals, block_on, fail, open, session_with_events};
use super::{Coded, Failure, Outcome};
use crate::cli::Cli;
use crate::commands::sessions::render_tree;
use crate::output::{self, Format, Out};

/// `rvbbit debug` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// The full trace tree of a session: every event under its cell, with content.
    Trace {
        /// The session id.
        id: SessionId,
    },
    /// What a session was given: its input, and every prompt and LLM request (messages sent).
    Inputs {
        /// The session id.
        id: SessionId,
    },
    /// Write synthetic events through the buffered writer (a test and benchmark aid, not for real runs).
    ///
    /// Creates session SESSION (status running), sends COUNT events (every fourth a priced
    /// llm_response), then marks it completed. SIGINT/SIGTERM stop the burst, flush every accepted event,
    /// mark the session cancelled and exit 130/143. If the store fails, events spill to .rvbbit/spill/
    /// and the command exits 5 (RVB-S003) after finishing.
    #[command(hide = true)]
    Emit {
        /// How many events.
        #[arg(long, default_value_t = 1000)]
        count: u64,
        /// The session id.
        #[arg(long)]
        session: SessionId,
        /// Cascade id recorded on the session and events.
        #[arg(long, default_value = "debug-emit")]
        cascade: String,
        /// Print `accepted N` to stderr every N events (0: never).
        #[arg(long, default_value_t = 0)]
        progress: u64,
        /// Pause this many milliseconds after each event (0: a burst), to pace events like a run.
        #[arg(long, default_value_t = 0, value_name = "MS")]
        every_ms: u64,
    },
}

pub(crate) fn run(cli: &Cli, cmd: &Command, out: Out) -> Outcome {
    match cmd {
        Command::Emit {
            count,
            session,
            cascade,
            progress,
            every_ms,
        } => emit(cli, out, *count, session, cascade, *progress, *every_ms),
        Command::Trace { id } | Command::Inputs { id } => block_on(async {
            let opened = open(cli, out).await?;
            let store = opened.store.as_ref();
            let (session, events) = session_with_events(store, id).await?;
            if let Command::Trace { .. } = cmd {
                let tree = trace::build(&events, false);
                match out.format {
                    Format::Json => output::json(&json!({"status": "ok", "session_id": id, "tree": tree}))?,
                    Format::Text => {
                        let mut text = format!("trace of {id} ({} events)\n", events.len());
                        render_tree(&tree, "", true, &mut text);
                        output::stdout(&text)?;
                    }
                }
            } else {
                let inputs: Vec<_> = events
                    .iter()
                    .filter(|e| {
                        matches!(e.event.kind, EventKind::Prompt | EventKind::LlmRequest | EventKind::LlmResponse)
                    })
                    .map(|e| {
                        json!({
                            "event_id": e.event.event_id, "kind": e.event.kind, "cell_name": e.event.cell_name,
                            "model": e.event.model_requested.clone().or_else(|| e.event.model.clone()),
                            "input": if e.event.kind == EventKind::Prompt { Some(e.event.content.clone()) } else { e.event.request.clone() },
                        })
                    })
                    .collect();
                match out.format {
                    Format::Json => output::json(
                        &json!({"status": "ok", "session_id": id, "input": session.input, "calls": inputs}),
                    )?,
                    Format::Text => {
                        let mut text = format!("input of {id}:\n{}\n", pretty(&session.input));
                        for i in &inputs {
                            text.push_str(&format!(
                                "\n{} {} {}:\n{}\n",
                                i["kind"].as_str().unwrap_or(""),
                                i["cell_name"].as_str().unwrap_or("-"),
                                i["model"].as_str().unwrap_or(""),
                                pretty(&i["input"])
                            ));
                        }
                        output::stdout(&text)?;
                    }
                }
            }
            Ok(0)
        }),
    }
}

fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

fn emit(
    cli: &Cli,
    out: Out,
    count: u64,
    session_id: &SessionId,
    cascade: &str,
    progress: u64,
    every_ms: u64,
) -> Outcome {
    block_on(async {
        // A store that cannot be opened does not stop the run: its records spill and wait for replay.
        let base = std::env::current_dir().unwrap_or_default();
        let spill_dir = base.join(".rvbbit").join("spill");
        let (store, writer) = match open(cli, out).await {
            Ok(opened) => {
                let mut options = WriterOptions::new(spill_dir);
                if let Some(url) = &opened.events_url {
                    options.sink = super::sink::writer_sink(url, &base).await;
                }
                (Some(opened.store.clone()), Writer::spawn(opened.store, options))
            }
            Err(Failure::Coded(c)) if c.code.class == rvbbit_core::ExitClass::Storage => {
                output::stderr(&format!(
                    "warning[{}]: {}; events spill to .rvbbit/spill/\n",
                    c.code.code, c.message
                ));
                let reason = std::iter::once(c.message)
                    .chain(c.causes)
                    .collect::<Vec<_>>()
                    .join(": ");
                (None, Writer::spill_only(WriterOptions::new(spill_dir), reason))
            }
            Err(other) => return Err(other),
        };
        let mut signals = Signals::install()?;
        let h = writer.handle();
        let send_err = |e: rvbbit_store::Error| fail(e);
        let mut session = Session::new(session_id.clone());
        session.cascade_id = Some(cascade.to_owned());
        session.input = json!({"count": count});
        h.session(session.clone()).await.map_err(send_err)?;
        // The session row must exist before it can beat; flushing also proves the store takes writes.
        h.flush().await.map_err(fail)?;
        let heartbeat =
            store.map(|store| Heartbeat::spawn(store, session_id.clone(), heartbeat::DEFAULT_INTERVAL));
        let mut accepted = 0u64;
        let mut caught = None;
        for i in 0..count {
            let mut e = Event::new(
                if i.is_multiple_of(4) {
                    EventKind::LlmResponse
                } else {
                    EventKind::ToolResult
                },
                session_id.clone(),
                i64::try_from(i).unwrap_or(i64::MAX),
            );
            e.cascade_id = Some(cascade.to_owned());
            e.cell_name = Some(format!("cell_{}", i % 3));
            if e.kind == EventKind::LlmResponse {
                e.model = Some("debug/model".into());
                e.tokens.input = Some(100);
                e.tokens.output = Some(20);
                e.cost = Some(MicroUsd::from_micros(50));
                e.cost_status = rvbbit_core::CostStatus::Exact;
            }
            tokio::select! {
                biased;
                s = signals.recv() => { caught = Some(s); break; }
                r = h.event(e) => r.map_err(send_err)?,
            }
            accepted += 1;
            if progress > 0 && accepted.is_multiple_of(progress) {
                output::stderr(&format!("accepted {accepted}\n"));
            }
            if every_ms > 0 {
                tokio::select! {
                    biased;
                    s = signals.recv() => { caught = Some(s); break; }
                    () = tokio::time::sleep(std::time::Duration::from_millis(every_ms)) => {}
                }
            }
        }
        if let Some(hb) = heartbeat {
            hb.stop().await;
        }
        let status = if caught.is_some() {
            SessionStatus::Cancelled
        } else {
            SessionStatus::Completed
        };
        session.finish(status, Some(json!({"accepted": accepted})), None);
        h.session(session).await.map_err(send_err)?;
        let stats = writer.shutdown().await.map_err(fail)?;
        if stats.spilled > 0 || stats.lost > 0 {
            let message = format!(
                "{accepted} events accepted: {} stored, {} spilled to {}, {} lost",
                stats.events_written,
                stats.spilled,
                stats
                    .spill_files
                    .first()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
                stats.lost
            );
            let code = if stats.lost > 0 {
                codes::S_LOST
            } else {
                codes::S_SPILLED
            };
            return Err(Failure::Coded(Coded {
                code,
                message,
                hint: "fix the store (`rvbbit health`), then run `rvbbit db replay`".into(),
                causes: stats.lost_reason.or(stats.last_error).into_iter().collect(),
            }));
        }
        match out.format {
            Format::Json => output::json(&json!({
                "status": if caught.is_some() { "cancelled" } else { "ok" },
                "session_id": session_id, "accepted": accepted, "written": stats.events_written,
            }))?,
            Format::Text => output::stdout(&format!(
                "session {session_id}: {accepted} events accepted, {} written\n",
                stats.events_written
            ))?,
        }
        Ok(caught.map_or(0, |c| c.exit_code()))
    })
}
