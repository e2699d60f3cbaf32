//! `rvbbit submit CASCADE`: validate the cascade here, then enqueue a run request carrying its text and
//! input, deduplicated by a submission id; `--wait` follows the run in the shared store.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use rvbbit_cascade::load_file_with;
use rvbbit_core::{SessionStatus, Timestamp, codes};
use rvbbit_store::{EventFilter, Job, Queue, SessionFilter, Store};
use serde_json::json;

use super::queue::QueueArg;
use super::storage::{block_on, fail};
use super::{Coded, Failure, Outcome, load_config};
use crate::cli::Cli;
use crate::output::{self, Format, Out};

/// How often `--wait` looks at the store.
const WAIT_POLL: Duration = Duration::from_millis(250);

/// Arguments of `rvbbit submit`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The cascade file, or a pushed bundle `registry:NAME[:VERSION]` / `registry:sha256:HEX`. It is
    /// validated here first (errors exit 1). With `artifacts.url` set, a file is pushed as a bundle
    /// first and the job names the bundle's hash (workers fetch it, with its tools and sub-cascades);
    /// otherwise its whole text travels in the job. Either way every worker runs exactly what was
    /// submitted.
    #[arg(value_name = "CASCADE")]
    cascade: PathBuf,
    /// The cascade input: a JSON object, or @FILE. Invalid JSON exits 6 (RVB-C006).
    #[arg(long, value_name = "JSON|@FILE")]
    input: Option<String>,
    /// Invocation metadata recorded with the run's session (repeatable).
    #[arg(short = 'm', long = "meta", value_name = "KEY=VALUE")]
    meta: Vec<String>,
    /// The submission id (letters, digits, `_`, `-`; at most 100). The same id submitted again within
    /// `queue.duplicate_window_seconds` is one job. Default: a fresh id. Printed on stdout.
    #[arg(long, value_name = "ID")]
    id: Option<String>,
    /// Wait until a worker has recorded the run's outcome in the store, print its output, and exit as
    /// `rvbbit run` would (0 completed; the error's code otherwise; 5 when the job was dead-lettered).
    #[arg(long)]
    wait: bool,
    #[command(flatten)]
    queue: QueueArg,
}

pub(crate) fn run(cli: &Cli, args: &Args, out: Out) -> Outcome {
    let config = load_config(cli, out)?.config;
    // A bundle (`registry:…`, or the file pushed first when `artifacts.url` is set) or the text alone.
    let (cascade_file, text, bundle) = match super::registry::submission(&args.cascade, &config)? {
        Some((file, text, hash)) => (file, text, Some(hash)),
        None => {
            let (file, text) = validated_text(args, &config)?;
            (file, text, None)
        }
    };
    let input = super::run::parse_input(args.input.as_deref())?;
    let metadata = parse_meta(&args.meta)?;
    let id = match &args.id {
        Some(id) => {
            rvbbit_store::queue::check_id(id)
                .map_err(|e| usage(format!("`--id {id}`: {e}"), "for example `--id order-1182`"))?;
            id.clone()
        }
        None => rvbbit_core::SessionId::new_woodland().to_string(),
    };
    let job = Job {
        id,
        cascade_file,
        cascade_text: text,
        input,
        metadata,
        submitted_at: Timestamp::now().to_rfc3339(),
        bundle,
    };
    block_on(async move {
        let queue = super::queue::open(&config, &args.queue, false).await?;
        let submitted = queue.submit(&job).await.map_err(fail)?;
        if !args.wait {
            match out.format {
                Format::Json => output::json(&submitted)?,
                Format::Text => {
                    output::stdout(&format!("{}\n", submitted.id))?;
                    if submitted.duplicate && !out.quiet {
                        output::stderr(&format!(
                            "submission {} was already queued (sequence {}): nothing new was enqueued\n",
                            submitted.id, submitted.sequence
                        ));
                    }
                }
            }
            return Ok(0);
        }
        if out.format == Format::Text {
            output::stdout(&format!("{}\n", submitted.id))?;
        }
        let base = std::env::current_dir().unwrap_or_default();
        let store = rvbbit_store::open(&config.store.url, &base).await.map_err(fail)?;
        wait(&*store, &*queue, &submitted.id, out).await
    })
}

/// Load and validate the cascade as `rvbbit run` does; its file name and text.
fn validated_text(args: &Args, config: &rvbbit_core::Config) -> Result<(String, String), Failure> {
    let registry = super::run::run_registry(&args.cascade, config);
    let report =
        super::run::validate_for_run(load_file_with(&args.cascade, &config.limits), &registry, config);
    if let Some(d) = report
        .diagnostics()
        .iter()
        .find(|d| d.severity == rvbbit_cascade::Severity::Error)
    {
        let j = d.to_json(&report.loaded.path, report.loaded.source.as_ref());
        let at = match (j.line, j.column) {
            (Some(l), Some(c)) => format!("{}:{l}:{c}", j.file.display()),
            _ => j.file.display().to_string(),
        };
        return Err(Failure::Coded(Coded {
            code: d.code,
            message: format!("{at}: {}; nothing was submitted", d.message),
            hint: d
                .hint
                .clone()
                .unwrap_or_else(|| "run `rvbbit validate` on the file".into()),
            causes: Vec::new(),
        }));
    }
    let text = report
        .loaded
        .source
        .as_ref()
        .map(|s| s.text().to_owned())
        .unwrap_or_default();
    let name = args
        .cascade
        .file_name()
        .map_or_else(|| "cascade.yaml".to_owned(), |n| n.to_string_lossy().into_owned());
    Ok((name, text))
}

/// `-m key=value` pairs.
pub(crate) fn parse_meta(items: &[String]) -> Result<BTreeMap<String, String>, Failure> {
    items
        .iter()
        .map(|item| match item.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
            _ => Err(usage(
                format!("`-m {item}` is not KEY=VALUE"),
                "write it as `-m team=billing`",
            )),
        })
        .collect()
}

fn usage(message: String, hint: &str) -> Failure {
    Failure::Coded(Coded {
        code: codes::C_USAGE,
        message,
        hint: hint.into(),
        causes: Vec::new(),
    })
}

/// Poll the store until a session of this submission has ended (completed or failed), or the job is in
/// the dead-letter stream; render it as `rvbbit run` would.
async fn wait(store: &dyn Store, queue: &dyn Queue, id: &str, out: Out) -> Outcome {
    let filter = SessionFilter {
        caller_id: Some(format!("queue-{id}")),
        ..SessionFilter::default()
    };
    let mut polls = 0u64;
    loop {
        let sessions = store.sessions(&filter).await.map_err(fail)?;
        let ended = sessions
            .iter()
            .map(|s| &s.session)
            // The root session: children (sub-cascades, cascade tools) share the caller id.
            .find(|s| {
                s.parent_session_id.is_none()
                    && matches!(s.status, SessionStatus::Completed | SessionStatus::Failed)
            });
        if let Some(session) = ended {
            return render(store, session, out).await;
        }
        // The dead-letter stream is read less often: it is a scan.
        if polls.is_multiple_of(8)
            && let Some(dead) = queue
                .dead_letters()
                .await
                .map_err(fail)?
                .into_iter()
                .find(|d| d.id == id)
        {
            return Err(Failure::Coded(Coded {
                code: codes::S_QUEUE_JOB,
                message: format!(
                    "submission {id} was given up after {} deliveries: {}",
                    dead.deliveries, dead.reason
                ),
                hint: format!("fix the cause, then `rvbbit queue retry-dead {id}`"),
                causes: Vec::new(),
            }));
        }
        polls += 1;
        tokio::time::sleep(WAIT_POLL).await;
    }
}

async fn render(store: &dyn Store, session: &rvbbit_store::Session, out: Out) -> Outcome {
    let code = match session.status {
        SessionStatus::Completed => None,
        _ => Some(error_code(store, session).await?),
    };
    let exit = code.map_or(0, |c| c.exit_code());
    match out.format {
        Format::Json => output::json(&json!({
            "status": session.status.as_str(),
            "exit_code": exit,
            "session_id": session.session_id.to_string(),
            "caller_id": session.caller_id.as_ref().map(ToString::to_string),
            "output": session.output,
            "code": code.map(|c| c.code),
            "message": session.error,
        }))?,
        Format::Text => match code {
            None => {
                let text =
                    super::run::output_text(session.output.as_ref().unwrap_or(&serde_json::Value::Null));
                if !text.is_empty() {
                    output::stdout(&format!("{}\n", text.trim_end_matches('\n')))?;
                }
                if !out.quiet {
                    output::stderr(&format!(
                        "session {id} completed: rvbbit sessions show {id}\n",
                        id = session.session_id
                    ));
                }
            }
            Some(c) => output::stderr(&format!(
                "error[{}]: {}\n  session: {} (failed)\n  see: rvbbit explain {}\n",
                c.code,
                session.error.as_deref().unwrap_or("the run failed"),
                session.session_id,
                c.code
            )),
        },
    }
    Ok(exit)
}

/// The code of a failed session's error, from its `cascade_error` event (RVB-E001 when none names one).
async fn error_code(
    store: &dyn Store,
    session: &rvbbit_store::Session,
) -> Result<&'static rvbbit_core::ErrorCode, Failure> {
    let events = store
        .events(&EventFilter {
            session_id: Some(session.session_id.clone()),
            ..EventFilter::default()
        })
        .await
        .map_err(fail)?;
    Ok(events
        .iter()
        .rev()
        .find_map(|e| {
            e.event
                .error
                .as_ref()?
                .get("code")?
                .as_str()
                .and_then(codes::lookup)
        })
        .unwrap_or(codes::E_CELL_FAILED))
}
