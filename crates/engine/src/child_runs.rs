//! How tools start child runs: [`ChildRuns`] (the public face, for tools of other crates), the
//! [`crate::tools::ChildRunner`] implementation of a run's [`Scope`] (cascade tools, `map_cascade`), and
//! the background children of `spawn_cascade`, which the run waits for before it ends.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use rvbbit_core::{CallerId, EventKind, SessionId, SessionStatus};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::children::{
    Child, Scope, SpawnProblem, check_depth, child_future, hex6, link, prepare_path, resolve, run_child,
    session_id,
};
use crate::engine::Engine;
use crate::error::Result;
use crate::outcome::Outcome;
use crate::request::RunRequest;
use crate::tools::{ChildRunner, Registry, ToolContext, ToolError};

/// For tools that start runs of their own (`sql_data` calling `rvbbit_run` per row): the calling run's
/// engine and identity, and [`ChildRuns::run`] to run a request as its child. Get it from
/// [`crate::tools::ToolContext::child_runs`].
#[derive(Clone)]
pub struct ChildRuns {
    scope: Scope,
}

impl std::fmt::Debug for ChildRuns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildRuns")
            .field("session_id", &self.scope.session_id)
            .field("depth", &self.scope.depth)
            .finish_non_exhaustive()
    }
}

impl ChildRuns {
    pub(crate) fn new(scope: Scope) -> ChildRuns {
        ChildRuns { scope }
    }

    /// The engine running the calling run (its provider, writer, store, tools and roots).
    pub fn engine(&self) -> &Engine {
        &self.scope.engine
    }

    /// The calling run's session.
    pub fn session_id(&self) -> &SessionId {
        &self.scope.session_id
    }

    /// The calling run's caller (children share it).
    pub fn caller_id(&self) -> &CallerId {
        &self.scope.caller_id
    }

    /// The calling run's cascade file, when it came from one (relative references start next to it).
    pub fn cascade_file(&self) -> Option<&Path> {
        self.scope.cascade_file.as_deref()
    }

    /// The calling run's `--model` override, if any.
    pub fn model(&self) -> Option<&str> {
        self.scope.model.as_deref()
    }

    /// A token cancelled when the calling run is (give it to each child request).
    pub fn cancel_token(&self) -> CancellationToken {
        self.scope.cancel.child_token()
    }

    /// Run `request` as a child of the calling run: the same caller, `parent_session_id`/root/depth
    /// linked, cancelled with the caller (keep [`ChildRuns::cancel_token`] in the request, or any
    /// token of your own), and its cost and calls added to the caller's totals. A child deeper than
    /// [`crate::engine::MAX_DEPTH`] is not started (RVB-E004).
    pub async fn run(&self, mut request: RunRequest, cell: &str) -> Result<Outcome> {
        check_depth(&self.scope, cell, "child run started by a tool")?;
        link(&self.scope, &mut request);
        if request.model.is_none() {
            request.model = self.scope.model.clone();
        }
        let outcome = self.scope.engine.run(request).await;
        self.scope.children.add(&outcome);
        Ok(outcome)
    }
}

/// A tool's calls start children in the calling run's scope.
#[async_trait]
impl ChildRunner for Scope {
    fn limits(&self) -> &rvbbit_core::config::LimitsConfig {
        self.engine.limits()
    }

    fn cancel(&self) -> &CancellationToken {
        &self.cancel
    }

    fn registry(&self) -> Arc<Registry> {
        self.engine.registry.clone()
    }

    fn cascade_file(&self) -> Option<&Path> {
        self.cascade_file.as_deref()
    }

    fn roots(&self) -> &[PathBuf] {
        &self.engine.roots
    }

    async fn run_cascade_file(
        &self,
        cell: &str,
        what: &str,
        path: &Path,
        base: &str,
        input: Value,
    ) -> std::result::Result<Outcome, ToolError> {
        let child = prepare_path(self, cell, path, what)
            .map_err(|e| ToolError::Failed(format!("[{}] {e}", e.code().code)))?;
        let sid = format!("{base}_{}", hex6());
        let outcome = run_child(self, child, input, session_id(&sid))
            .await
            .map_err(|e| ToolError::Failed(e.to_string()))?;
        self.children.add(&outcome);
        Ok(outcome)
    }

    fn resolve_cascade(&self, reference: &str) -> std::result::Result<PathBuf, String> {
        resolve(&self.engine, self.cascade_file.as_deref(), reference)
    }

    fn check_cascade_file(&self, cell: &str, what: &str, path: &Path) -> std::result::Result<(), ToolError> {
        prepare_path(self, cell, path, what)
            .map(drop)
            .map_err(|e| ToolError::Failed(format!("[{}] {e}", e.code().code)))
    }

    fn spawn_cascade_file(
        &self,
        cell: &str,
        what: &str,
        path: &Path,
        input: Value,
    ) -> std::result::Result<SessionId, ToolError> {
        let child = prepare_path(self, cell, path, what)
            .map_err(|e| ToolError::Failed(format!("[{}] {e}", e.code().code)))?;
        Ok(spawn_child(self, cell, what, child, input))
    }

    async fn record(&self, kind: EventKind, cell: &str, content: Value) {
        let mut event = self.emit.event(kind, Some(cell));
        event.content = content;
        self.emit.send(event).await;
    }
}

impl ToolContext {
    /// Start runs as children of the calling run (`None` outside a run, e.g. a tool called directly).
    pub fn child_runs(&self) -> Option<ChildRuns> {
        let runner: &dyn std::any::Any = self.scope.as_deref()?;
        runner.downcast_ref::<Scope>().cloned().map(ChildRuns::new)
    }
}

/// Seconds since the Unix epoch (0 on a clock before it).
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Start `child` as a `spawn_cascade` child of `scope` on a task of its own and return its session id
/// (`spawned_<unix>_<6 hex>`) at once. It is cancelled with the run; the run waits for it before it ends
/// (`compose::join_async`), adds its cost and calls, and reports a failure as a warning ([`SpawnProblem`]).
fn spawn_child(scope: &Scope, cell: &str, what: &str, child: Child, input: Value) -> SessionId {
    let sid = session_id(&format!("spawned_{}_{}", unix_now(), hex6()));
    let fut = child_future(scope, child, input, sid.clone(), scope.cancel.child_token());
    let children = scope.children.clone();
    let (cell, what) = (cell.to_owned(), what.to_owned());
    scope.children.track(tokio::spawn(async move {
        let outcome = fut.await;
        children.add(&outcome);
        if outcome.status != SessionStatus::Completed {
            children.problem(SpawnProblem {
                message: format!(
                    "{what} of cell `{cell}` ended `{}` (session {}){}",
                    outcome.status,
                    outcome.session_id,
                    outcome
                        .error
                        .as_ref()
                        .map(|e| format!(": [{}] {e}", e.code().code))
                        .unwrap_or_default()
                ),
                error: outcome
                    .error
                    .as_ref()
                    .map(|e| json!({"code": e.code().code, "message": e.to_string(), "hint": e.hint()})),
                session_id: outcome.session_id,
                cell,
            });
        }
    }));
    sid
}
