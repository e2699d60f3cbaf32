//! The commands themselves: `!run`, `!status`, `!cancel` and `!list`.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rvbbit_cascade::validate::{Options, validate_loaded};
use rvbbit_cascade::{Catalog, Severity};
use rvbbit_core::{CallerId, Origin, SessionId, SessionStatus, codes};
use rvbbit_engine::{Progress, RunRequest};
use serde_json::Value;
use tokio::sync::mpsc::UnboundedSender;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::audit::Who;
use super::{Control, Guard, Outcome, Reply, args, denied, success};

/// Most cascades `!list` names.
const MAX_LISTED: usize = 50;
/// Most progress replies one `!run` sends.
pub(crate) const MAX_PROGRESS_REPLIES: u32 = 20;
/// Longest output text a reply carries (the channel splits it further).
const MAX_OUTPUT_CHARS: usize = 60_000;

fn failed(text: String) -> Reply {
    Reply {
        text,
        outcome: Outcome::Failed,
    }
}

/// `text` without the cascade roots' absolute paths (replies never show server paths).
fn scrub(text: &str, roots: &[PathBuf]) -> String {
    let mut out = text.to_owned();
    for root in roots {
        for form in [root.canonicalize().ok(), Some(root.clone())]
            .into_iter()
            .flatten()
        {
            let shown = format!("{}/", form.display());
            if shown.len() > 2 {
                out = out.replace(&shown, "");
            }
        }
    }
    out
}

impl Control {
    /// Load and validate the cascade file off the async threads; the cascade or why not.
    async fn load(&self, path: PathBuf, shown: &str) -> Result<rvbbit_cascade::model::Cascade, Reply> {
        let mut catalog = Catalog::builtin();
        self.engine.registry().fill_catalog(&mut catalog);
        let options = Options {
            strict: false,
            roots: self.roots.clone(),
        };
        let report = tokio::task::spawn_blocking(move || {
            validate_loaded(rvbbit_cascade::load_file(&path), &mut catalog, &options)
        })
        .await
        .map_err(|e| failed(format!("{} loading the cascade failed: {e}", codes::INTERNAL)))?;
        if let Some(d) = report
            .diagnostics()
            .iter()
            .find(|d| d.severity == Severity::Error)
        {
            return Err(denied(
                d.code,
                &format!(
                    "`{shown}` is not a valid cascade: {}",
                    scrub(&d.message, &self.roots)
                ),
            ));
        }
        report
            .loaded
            .document
            .as_ref()
            .and_then(|d| d.cascade().cloned())
            .ok_or_else(|| {
                denied(
                    codes::K_REFUSED,
                    &format!("`{shown}` is a tool definition, not a cascade"),
                )
            })
    }

    /// `!run CASCADE [json]`: validate, pass the breaker, run, reply with the output or the error.
    pub(super) async fn run(
        &self,
        guard: &Guard,
        who: &Who,
        name: &str,
        input: Option<&str>,
        updates: Option<UnboundedSender<String>>,
    ) -> Reply {
        let (path, shown) = match args::resolve(&self.roots, name) {
            Ok(found) => found,
            Err(why) => return denied(codes::K_REFUSED, &why),
        };
        let input = match args::input(input) {
            Ok(v) => v,
            Err(why) => return denied(codes::K_REFUSED, &why),
        };
        let cascade = match self.load(path.clone(), &shown).await {
            Ok(c) => c,
            Err(reply) => return reply,
        };
        if let Err(wait) = guard.breaker.admit() {
            return denied(
                codes::K_PAUSED,
                &format!(
                    "paused: the last runs on this integration failed; try again in {} s",
                    wait.as_secs_f64().ceil().max(1.0)
                ),
            );
        }
        let mut request = RunRequest::new(cascade);
        let session = SessionId::new_woodland();
        request.input = input;
        request.session_id = Some(session.clone());
        request.caller_id = CallerId::new(if who.kind == "cli" {
            Origin::Cli
        } else {
            Origin::Http
        });
        request.cascade_file = Some(path);
        request.metadata = serde_json::json!({"door": "chat", "integration": who.integration,
            "user": who.user, "tenant": who.tenant});
        let cancel = CancellationToken::new();
        request.cancel = cancel.clone();
        let (progress, watch) = tokio::sync::watch::channel(Progress::default());
        request.progress = Some(progress);
        self.track(&session, Some(cancel));
        // Boxed: the engine's future is large, and it is awaited in two places.
        let run = Box::pin(self.engine.run(request));
        let outcome = match updates {
            Some(tx) => {
                // A closed receiver only means nobody reads the updates any more.
                let _ = tx.send(format!("started {session} (`{shown}`)"));
                match guard.status_interval {
                    Some(every) => with_progress(run, &tx, every, &session, &watch).await,
                    None => run.await,
                }
            }
            None => run.await,
        };
        self.track(&session, None);
        let ok = outcome.status == SessionStatus::Completed;
        guard.breaker.record(ok);
        if ok {
            return success(format!(
                "`{shown}` (session {session}) completed:\n{}",
                render(&outcome.output)
            ));
        }
        let why = outcome.error.as_ref().map_or_else(
            || format!("the run ended {}", outcome.status),
            |e| scrub(&format!("{} {}", e.code(), e), &self.roots),
        );
        failed(format!("`{shown}` (session {session}) {}: {why}", outcome.status))
    }

    fn track(&self, session: &SessionId, cancel: Option<CancellationToken>) {
        let mut runs = self
            .runs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match cancel {
            Some(token) => runs.insert(session.to_string(), token),
            None => runs.remove(session.as_str()),
        };
    }

    /// `!status ID`.
    pub(super) async fn status(&self, id: &str) -> Reply {
        let Ok(session) = id.parse::<SessionId>() else {
            return denied(codes::K_REFUSED, &format!("`{id}` is not a session id"));
        };
        let Some(store) = self.engine.store() else {
            return failed(format!("{} no store is configured here", codes::K_REFUSED));
        };
        match store.session(&session).await {
            Ok(s) => success(format!(
                "session {session}: {} ({}){}",
                s.status,
                s.cascade_id.as_deref().unwrap_or("?"),
                s.error
                    .map(|e| format!(": {}", scrub(&e, &self.roots)))
                    .unwrap_or_default()
            )),
            Err(_) => denied(codes::A_NOT_FOUND, &format!("no session `{session}`")),
        }
    }

    /// `!cancel ID`: only runs started from chat in this process.
    pub(super) fn cancel(&self, id: &str) -> Reply {
        let runs = self
            .runs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match runs.get(id) {
            Some(token) => {
                token.cancel();
                success(format!("cancelling session {id}"))
            }
            None => denied(
                codes::A_NOT_FOUND,
                &format!("no run `{id}` started from chat is running here"),
            ),
        }
    }

    /// `!list [filter]`: cascade files under the roots.
    pub(super) async fn list(&self, filter: Option<&str>) -> Reply {
        let roots = self.roots.clone();
        let filter = filter.map(str::to_owned);
        let found = tokio::task::spawn_blocking(move || {
            let mut found = Vec::new();
            for root in &roots {
                walk(root, root, 0, &mut found);
            }
            found.sort();
            found.dedup();
            found.retain(|f| filter.as_deref().is_none_or(|x| f.contains(x)));
            found
        })
        .await
        .unwrap_or_default();
        if found.is_empty() {
            return success("no cascades match".into());
        }
        let more = found.len().saturating_sub(MAX_LISTED);
        let mut text = found.into_iter().take(MAX_LISTED).collect::<Vec<_>>().join("\n");
        if more > 0 {
            text.push_str(&format!("\n… and {more} more (narrow with `!list FILTER`)"));
        }
        success(text)
    }
}

/// Await `run`, sending a progress reply naming the running cell (from the engine's live progress)
/// to `tx` every `every`, at most [`MAX_PROGRESS_REPLIES`] times.
async fn with_progress<F: Future + Unpin>(
    mut run: F,
    tx: &UnboundedSender<String>,
    every: Duration,
    session: &SessionId,
    watch: &tokio::sync::watch::Receiver<Progress>,
) -> F::Output {
    let started = Instant::now();
    let mut ticker = tokio::time::interval_at(started + every, every);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut sent = 0;
    loop {
        tokio::select! {
            outcome = &mut run => return outcome,
            _ = ticker.tick(), if sent < MAX_PROGRESS_REPLIES => {
                sent += 1;
                let cell = watch.borrow().cell.clone();
                let secs = started.elapsed().as_secs();
                let _ = tx.send(match cell { // A closed receiver: nobody reads updates any more.
                    Some(cell) => format!("session {session}: running cell `{cell}` ({secs} s)"),
                    None => format!("session {session}: starting ({secs} s)"),
                });
            }
        }
    }
}

/// Cascade-looking files under `dir`, relative to `root`, three levels deep at most, hidden folders
/// left out.
fn walk(root: &Path, dir: &Path, depth: u32, found: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        if path.is_dir() && depth < 3 {
            walk(root, &path, depth + 1, found);
        } else if [".yaml", ".yml", ".json"].iter().any(|e| name.ends_with(e))
            && let Ok(rel) = path.strip_prefix(root)
        {
            found.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
}

/// An output as chat text: a string as is, anything else as compact JSON, capped.
fn render(output: &Value) -> String {
    let text = match output {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if text.chars().count() > MAX_OUTPUT_CHARS {
        let cut: String = text.chars().take(MAX_OUTPUT_CHARS).collect();
        return format!("{cut}… (cut; the whole output is in the session)");
    }
    text
}
