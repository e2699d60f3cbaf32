//! Child runs (§5.6): the place of a run in its run tree ([`Composition`]), the [`Scope`] a child starts
//! in, and starting one — for `sub_cascades`, `async_cascades` (`compose.rs`), validator cascades, cascade
//! tools and tools that run requests of their own (`ChildRuns`, in `child_runs.rs`).
//!
//! A child is an ordinary [`Engine::run`] with the parent's engine (writer, provider, registry), caller id
//! and a child of its cancel token, a `parent_session_id` link, the root session of the tree and a depth one
//! deeper (refused past [`MAX_DEPTH`] with RVB-E004). Child files are resolved like the validator resolves
//! them (a path relative to the referring file and its parents, contained; else a cascade id in the tool
//! directories), then loaded and validated before they run (RVB-E006 otherwise).
//!
//! Tools sit below the engine, so they start children through [`crate::tools::ChildRunner`], which
//! [`Scope`] implements in `child_runs.rs`.

use std::collections::HashSet;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use rvbbit_cascade::catalog::Origin as CatalogOrigin;
use rvbbit_cascade::model::Cascade;
use rvbbit_cascade::validate::{Options, validate_loaded};
use rvbbit_cascade::{Catalog, Severity, load_file_with, resolve_cascade_ref, search_bases};
use rvbbit_core::{CallerId, MicroUsd, SessionId};
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::engine::{Engine, MAX_DEPTH};
use crate::error::{Error, Result};
use crate::outcome::Outcome;
use crate::request::RunRequest;

/// The place of a run in its run tree, and its children.
#[derive(Debug)]
pub(crate) struct Composition {
    depth: u32,
    root_session_id: SessionId,
    cascade_file: Option<PathBuf>,
    /// Child session ids handed out by this run (`<sid>_sub`, `<sid>_sub_1`, ...).
    used: HashSet<String>,
    /// Async cascades in flight.
    pending: Vec<Pending>,
    /// Totals of children started by tools (cascade tools), added to the run at its end.
    children: ChildTotals,
    /// Inside a candidate branch: its index, which child ids carry (`<base>_c<i>`) so concurrent
    /// branches never share one.
    branch: Option<u32>,
}

/// Cost and call counts of finished children, shared with the tools that start them, and the tasks the
/// synchronous children run on (each child is its own task, so deep nesting never deepens the stack).
#[derive(Clone, Debug, Default)]
pub(crate) struct ChildTotals {
    totals: Arc<Mutex<(MicroUsd, u32, u32)>>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
    /// Failures of children the run does not wait on (`spawn_cascade`), reported when it ends.
    problems: Arc<Mutex<Vec<SpawnProblem>>>,
}

/// A `spawn_cascade` child that did not complete: its cell, what it was, its session, its error and
/// the message.
#[derive(Debug)]
pub(crate) struct SpawnProblem {
    pub(crate) cell: String,
    pub(crate) session_id: SessionId,
    pub(crate) error: Option<Value>,
    pub(crate) message: String,
}

impl ChildTotals {
    pub(crate) fn add(&self, outcome: &Outcome) {
        if let Ok(mut t) = self.totals.lock() {
            t.0 += outcome.cost;
            t.1 += outcome.llm_calls;
            t.2 += outcome.tool_calls;
        }
    }

    /// Wait for every child task (after a cancellation, the children finish marking themselves cancelled
    /// and flushing before their parent ends).
    pub(crate) async fn join(&self) {
        loop {
            let next = self.tasks.lock().ok().and_then(|mut t| t.pop());
            let Some(handle) = next else { break };
            if let Err(e) = handle.await {
                tracing::warn!(error = %e, "A child run's task failed");
            }
        }
    }

    /// Track a child task the run waits for before it ends.
    pub(crate) fn track(&self, handle: JoinHandle<()>) {
        if let Ok(mut tasks) = self.tasks.lock() {
            tasks.push(handle);
        }
    }

    /// Record a spawned child's failure (reported when the run ends).
    pub(crate) fn problem(&self, problem: SpawnProblem) {
        if let Ok(mut p) = self.problems.lock() {
            p.push(problem);
        }
    }

    /// The spawned children's failures recorded so far.
    pub(crate) fn take_problems(&self) -> Vec<SpawnProblem> {
        self.problems
            .lock()
            .map(|mut p| std::mem::take(&mut *p))
            .unwrap_or_default()
    }

    pub(crate) fn take(&self) -> (MicroUsd, u32, u32) {
        self.totals
            .lock()
            .map(|mut t| std::mem::replace(&mut *t, (MicroUsd::ZERO, 0, 0)))
            .unwrap_or((MicroUsd::ZERO, 0, 0))
    }
}

/// An async cascade in flight: the cell that started it, what it is, its session and its task.
#[derive(Debug)]
pub(crate) struct Pending {
    pub(crate) cell: String,
    pub(crate) what: String,
    pub(crate) session_id: SessionId,
    pub(crate) handle: JoinHandle<Outcome>,
}

impl Composition {
    pub(crate) fn new(request: &RunRequest, session_id: &SessionId) -> Self {
        Composition {
            depth: request.depth,
            root_session_id: request
                .root_session_id
                .clone()
                .unwrap_or_else(|| session_id.clone()),
            cascade_file: request.cascade_file.clone(),
            used: HashSet::new(),
            pending: Vec::new(),
            children: ChildTotals::default(),
            branch: None,
        }
    }

    /// The composition of candidate branch `index` of this run: the same place in the run tree and the
    /// same child totals, its own child ids. (Async cascades started inside a branch are not awaited by
    /// the parent run.)
    pub(crate) fn for_branch(&self, index: u32) -> Self {
        Composition {
            depth: self.depth,
            root_session_id: self.root_session_id.clone(),
            cascade_file: self.cascade_file.clone(),
            used: HashSet::new(),
            pending: Vec::new(),
            children: self.children.clone(),
            branch: Some(index),
        }
    }

    /// Nesting depth of this run (root 0).
    pub(crate) fn depth(&self) -> u32 {
        self.depth
    }

    /// The root of this run's tree.
    pub(crate) fn root(&self) -> &SessionId {
        &self.root_session_id
    }

    /// The file of the cascade being run, when it came from one (child refs are relative to it).
    pub(crate) fn cascade_file(&self) -> Option<&Path> {
        self.cascade_file.as_deref()
    }

    /// The totals and tasks of children started by tools, shared with the run's [`Scope`]s.
    pub(crate) fn children(&self) -> &ChildTotals {
        &self.children
    }

    /// Track an async cascade started by this run (awaited by `join_async`).
    pub(crate) fn push_pending(&mut self, pending: Pending) {
        self.pending.push(pending);
    }

    /// The async cascades in flight, handed over to be awaited.
    pub(crate) fn take_pending(&mut self) -> Vec<Pending> {
        std::mem::take(&mut self.pending)
    }

    /// `base` the first time, then `base_1`, `base_2`, ... so children of one run never share an id.
    pub(crate) fn child_id(&mut self, base: &str) -> String {
        let base = match self.branch {
            Some(i) => format!("{base}_c{i}"),
            None => base.to_owned(),
        };
        let base = base.as_str();
        let mut id = base.to_owned();
        let mut n = 0;
        while !self.used.insert(id.clone()) {
            n += 1;
            id = format!("{base}_{n}");
        }
        id
    }
}

/// What starting a child run needs from its parent; tools get it through their
/// [`crate::tools::ToolContext`].
#[derive(Clone)]
pub(crate) struct Scope {
    pub(crate) engine: Engine,
    pub(crate) session_id: SessionId,
    pub(crate) root_session_id: SessionId,
    pub(crate) depth: u32,
    pub(crate) caller_id: CallerId,
    pub(crate) cancel: CancellationToken,
    pub(crate) cascade_file: Option<PathBuf>,
    pub(crate) model: Option<String>,
    pub(crate) children: ChildTotals,
    /// The calling run's events (tools record artifacts through it).
    pub(crate) emit: crate::emit::Emitter,
}

impl std::fmt::Debug for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scope")
            .field("session_id", &self.session_id)
            .field("depth", &self.depth)
            .finish_non_exhaustive()
    }
}

/// A child cascade, resolved, loaded and validated.
#[derive(Debug)]
pub(crate) struct Child {
    pub(crate) cascade: Cascade,
    pub(crate) path: PathBuf,
    pub(crate) text: Option<String>,
}

/// Resolve `reference` like the validator does: a path relative to `from`'s directory or its parents (or
/// the engine's roots) that stays inside that directory, else a cascade id (or file stem) found in the
/// tool directories (`traits/`, `tackle/`, `skills/`, `cascades/`) there.
pub(crate) fn resolve(
    engine: &Engine,
    from: Option<&Path>,
    reference: &str,
) -> std::result::Result<PathBuf, String> {
    let mut bases = match from {
        Some(f) => search_bases(f),
        None => vec![PathBuf::from(".")],
    };
    bases.extend(engine.roots.iter().cloned());
    if let Some(found) = resolve_cascade_ref(reference, &bases)? {
        return Ok(found);
    }
    let mut catalog = Catalog::default();
    for base in &bases {
        catalog.discover_under(base);
    }
    if let Some(CatalogOrigin::Cascade(path)) = catalog.get(reference) {
        return Ok(path.clone());
    }
    Err(format!(
        "`{reference}` was not found: it is neither a file relative to {} nor a cascade id in their {} directories",
        bases
            .iter()
            .map(|b| format!("`{}`", b.display()))
            .collect::<Vec<_>>()
            .join(", "),
        rvbbit_cascade::catalog::TOOL_DIRS.join("/")
    ))
}

/// Load and validate the cascade at `path` with the engine's registry; any validation error refuses it.
pub(crate) fn load(engine: &Engine, path: &Path) -> std::result::Result<Child, String> {
    let mut catalog = Catalog::builtin();
    engine.registry.fill_catalog(&mut catalog);
    let options = Options {
        strict: false,
        roots: engine.roots.clone(),
    };
    let report = validate_loaded(load_file_with(path, &engine.limits), &mut catalog, &options);
    if let Some(d) = report
        .diagnostics()
        .iter()
        .find(|d| d.severity == Severity::Error)
    {
        let at = match (&report.loaded.source, d.span) {
            (Some(src), Some(span)) => {
                let lc = src.line_col(span.start);
                format!(":{}:{}", lc.line, lc.col)
            }
            _ => String::new(),
        };
        return Err(format!(
            "{}{at} is not a valid cascade: [{}] {} (run `rvbbit validate {}`)",
            path.display(),
            d.code.code,
            d.message,
            path.display()
        ));
    }
    match report.loaded.document.as_ref().and_then(|d| d.cascade().cloned()) {
        Some(cascade) => Ok(Child {
            cascade,
            path: path.to_path_buf(),
            text: report.loaded.source.as_ref().map(|s| s.text().to_owned()),
        }),
        None => Err(format!("{} is a tool definition, not a cascade", path.display())),
    }
}

/// Resolve, load and validate a child named by `reference` from the run's cascade file.
pub(crate) fn prepare(scope: &Scope, cell: &str, reference: &str, what: &str) -> Result<Child> {
    check_depth(scope, cell, what)?;
    let path = resolve(&scope.engine, scope.cascade_file.as_deref(), reference)
        .map_err(|message| invalid(cell, what, message))?;
    load(&scope.engine, &path).map_err(|message| invalid(cell, what, message))
}

/// Load and validate the child cascade at `path` (already resolved).
pub(crate) fn prepare_path(scope: &Scope, cell: &str, path: &Path, what: &str) -> Result<Child> {
    check_depth(scope, cell, what)?;
    load(&scope.engine, path).map_err(|message| invalid(cell, what, message))
}

pub(crate) fn check_depth(scope: &Scope, cell: &str, what: &str) -> Result<()> {
    if scope.depth + 1 > MAX_DEPTH {
        return Err(Error::MaxDepth {
            cell: cell.to_owned(),
            what: what.to_owned(),
            depth: scope.depth + 1,
            limit: MAX_DEPTH,
        });
    }
    Ok(())
}

fn invalid(cell: &str, what: &str, message: String) -> Error {
    Error::ChildInvalid {
        cell: cell.to_owned(),
        what: what.to_owned(),
        message,
    }
}

/// Run `child` as a child session of `scope`, on its own task (tracked, so the parent waits for it even
/// when it is cancelled mid-way).
pub(crate) async fn run_child(
    scope: &Scope,
    child: Child,
    input: Value,
    session_id: SessionId,
) -> Result<Outcome> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    // If the caller stops waiting (a tool timeout, a cancelled cell), the child is cancelled too.
    let cancel = scope.cancel.child_token();
    let guard = cancel.clone().drop_guard();
    let fut = child_future(scope, child, input, session_id.clone(), cancel);
    let handle = tokio::spawn(async move {
        // The receiver is gone only when the parent was dropped; the child still finished and flushed.
        let _ = tx.send(fut.await);
    });
    scope.children.track(handle);
    let outcome = rx.await.map_err(|_| {
        Error::Internal(format!(
            "the child session `{session_id}` ended without an outcome (its task panicked)"
        ))
    });
    guard.disarm();
    outcome
}

/// The future of a child run of `scope` (boxed: runs nest).
pub(crate) fn child_future(
    scope: &Scope,
    child: Child,
    input: Value,
    session_id: SessionId,
    cancel: CancellationToken,
) -> Pin<Box<dyn Future<Output = Outcome> + Send + 'static>> {
    let mut request = RunRequest::new(child.cascade);
    request.input = input;
    request.session_id = Some(session_id);
    request.model = scope.model.clone();
    request.cascade_file = Some(child.path);
    request.cascade_text = child.text;
    request.cancel = cancel;
    link(scope, &mut request);
    let engine = scope.engine.clone();
    Box::pin(async move { engine.run(request).await })
}

/// Make `request` a child of `scope`'s run: its caller, parent, root and depth.
pub(crate) fn link(scope: &Scope, request: &mut RunRequest) {
    request.caller_id = scope.caller_id.clone();
    request.parent_session_id = Some(scope.session_id.clone());
    request.root_session_id = Some(scope.root_session_id.clone());
    request.depth = scope.depth + 1;
}

/// A session id from `base`, or `base` made valid (children of user-given ids stay valid ids).
pub(crate) fn session_id(base: &str) -> SessionId {
    base.parse().unwrap_or_else(|_| SessionId::new_woodland())
}

/// Six random hex digits (from a fresh woodland id, which comes from a CSPRNG).
pub(crate) fn hex6() -> String {
    let id = SessionId::new_woodland();
    let tail = id.as_str().rsplit('-').next().unwrap_or("000000");
    tail.chars().take(6).collect()
}

/// The child's error, or a clear one when it ended without one.
pub(crate) fn child_error(cell: &str, what: &str, outcome: Outcome) -> Error {
    match outcome.error {
        Some(Error::Cancelled) => Error::Cancelled,
        Some(e) => Error::Child {
            cell: cell.to_owned(),
            what: what.to_owned(),
            child_session: outcome.session_id.to_string(),
            source: Box::new(e),
        },
        None => Error::Internal(format!(
            "the child session `{}` ended `{}` without an error",
            outcome.session_id, outcome.status
        )),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn child_ids_of_one_run_never_repeat() {
        let cascade: Cascade = serde_json::from_value(json!({"cascade_id": "c", "cells": []})).unwrap();
        let request = RunRequest::new(cascade);
        let sid: SessionId = "quiet-heron-abcdef".parse().unwrap();
        let mut c = Composition::new(&request, &sid);
        assert_eq!(c.root_session_id, sid);
        assert_eq!(c.child_id("s_sub"), "s_sub");
        assert_eq!(c.child_id("s_sub"), "s_sub_1");
        assert_eq!(c.child_id("s_ward"), "s_ward");
        assert_eq!(c.child_id("s_sub"), "s_sub_2");
    }

    #[test]
    fn hex6_is_six_hex_digits_and_bad_ids_fall_back_to_woodland() {
        let h = hex6();
        assert_eq!(h.len(), 6);
        assert!(h.chars().all(|c| c.is_ascii_hexdigit()), "{h}");
        assert_eq!(session_id("abc_sub").as_str(), "abc_sub");
        assert_ne!(session_id("has space").as_str(), "has space");
    }
}
