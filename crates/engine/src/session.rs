//! One session of a cascade, start to end ([`Engine::run`]): the session record and `cascade_start`,
//! the sequential loop over cells with the routing precedence of §3.4 (`route_to` → a deterministic
//! route → `on_error` → the first handoff → the next cell), and the end (`cascade_complete`,
//! `cascade_error` or `cascade_cancelled`, the session's final status, a flush). Each cell goes
//! through the pipeline in `cells/mod.rs`.

use std::path::Path;
use std::time::Instant;

use rvbbit_cascade::model::{Cell, OnError};
use rvbbit_core::{EventKind, SessionId, SessionStatus, Timestamp};
use rvbbit_store::{Heartbeat, Session};
use serde_json::{Map, Value, json};
use tracing::Instrument;

use crate::emit::Emitter;
use crate::engine::{Engine, MAX_DEPTH, MAX_STEPS};
use crate::error::{Error, Result};
use crate::outcome::Outcome;
use crate::request::RunRequest;
use crate::run::{Parts, Run, micros};
use crate::template::Templates;

impl Engine {
    /// Run a cascade to the end. Never returns early with an error: failures are in [`Outcome::error`]
    /// with the session marked failed (or cancelled), and every event is flushed to the writer first.
    ///
    /// # Cancel safety
    /// Cancel through [`RunRequest::cancel`] rather than dropping the future, so the session is marked
    /// cancelled and its events flushed.
    pub async fn run(&self, mut request: RunRequest) -> Outcome {
        self.stamp_tenant(&mut request);
        let session_id = request.session_id.clone().unwrap_or_else(SessionId::new_woodland);
        let span = tracing::info_span!(
            "run",
            session_id = %session_id,
            caller_id = %request.caller_id,
            cascade_id = %request.cascade.cascade_id
        );
        self.run_inner(request, session_id).instrument(span).await
    }

    /// The session of `request` under `session_id`: open it, run its cells, end it.
    pub(crate) async fn run_inner(&self, mut request: RunRequest, session_id: SessionId) -> Outcome {
        let started = Instant::now();
        let cascade = request.cascade.clone();
        let resume = request.resume.take();
        let (emit, session) = self.open(&request, &session_id, resume.as_deref()).await;
        let mut state = Map::new();
        state.insert("input".into(), request.input.clone());
        let mut run = Run::new(Parts {
            engine: self,
            cascade: &cascade,
            emit,
            templates: Templates::new(&self.limits, request.cancel.clone()),
            input: request.input.clone(),
            state,
            model_override: request.model.clone(),
            sampling: request.sampling,
            session_id: session_id.clone(),
            session_dir: std::env::temp_dir().join(format!("rvbbit-{}", session_id.as_str())),
            cancel: request.cancel.clone(),
            compose: crate::children::Composition::new(&request, &session_id),
            session: session.clone(),
        });
        let journaled = match resume {
            Some(r) => {
                run.restore(r);
                Ok(())
            }
            None => self.open_journal(&mut run, &request).await,
        };
        let result = match journaled {
            Ok(()) => self.drive(&mut run, &request).await,
            Err(e) => Err(e),
        };
        match result {
            // The session belongs to the process that resumed it: record nothing more.
            Err(e @ Error::ResumedElsewhere { .. }) => run.into_outcome(
                request.caller_id,
                SessionStatus::Running,
                Value::Null,
                Some(e),
                started.elapsed(),
            ),
            Err(e @ Error::Waiting { .. }) => suspended(run, session, request, e, started).await,
            other => finish(run, session, request, other, started).await,
        }
    }

    /// The session record and, for a fresh run, `cascade_start`; a resumed session keeps its record and
    /// goes on numbering its events (no second `cascade_start`).
    async fn open(
        &self,
        request: &RunRequest,
        session_id: &SessionId,
        resume: Option<&crate::checkpoint::Resume>,
    ) -> (Emitter, Session) {
        let root = request
            .root_session_id
            .clone()
            .unwrap_or_else(|| session_id.clone());
        let emit = Emitter::new(
            self.writer.clone(),
            session_id.clone(),
            request.caller_id.clone(),
            request.cascade.cascade_id.clone(),
        )
        .with_parent(request.parent_session_id.clone(), root.clone(), request.depth)
        .with_progress(request.progress.clone());
        let has_metadata = request.metadata.as_object().is_some_and(|m| !m.is_empty());
        let (emit, session) = match resume {
            Some(r) => {
                let mut session = r.session.clone();
                session.status = SessionStatus::Running;
                session.updated_at = Timestamp::now();
                (emit.start_at(r.continuation.next_seq), session)
            }
            None => (emit, new_session(request, session_id, root, has_metadata)),
        };
        emit.session(session.clone()).await;
        if resume.is_none() {
            let mut start = emit.event(EventKind::CascadeStart, None);
            start.content = request.input.clone();
            if has_metadata {
                start.invocation_metadata = request.metadata.clone();
            }
            emit.send(start).await;
        }
        (emit, session)
    }

    /// The journal of a root run with a run key and a store (`journal.rs`); cascade-level candidates
    /// run the whole cascade as branches and are not journaled.
    async fn open_journal(&self, run: &mut Run<'_>, request: &RunRequest) -> Result<()> {
        match (&request.run_key, &self.store) {
            (Some(key), Some(store))
                if request.depth == 0 && !crate::cells::cascade_takes::applies(run.cascade) =>
            {
                crate::journal::open(store.clone(), key, run).await
            }
            _ => Ok(()),
        }
    }

    /// The cells of the run (with its heartbeat kept fresh), then its async cascades.
    async fn drive(&self, run: &mut Run<'_>, request: &RunRequest) -> Result<()> {
        let heartbeat = self
            .heartbeat
            .as_ref()
            .map(|(store, every)| Heartbeat::spawn(store.clone(), run.session_id.clone(), *every));
        check_inputs(run).await;
        let result = match request.depth {
            d if d > MAX_DEPTH => Err(Error::MaxDepth {
                cell: run
                    .cascade
                    .cells
                    .first()
                    .map(|c| c.name.clone())
                    .unwrap_or_default(),
                what: format!("cascade `{}`", run.cascade.cascade_id),
                depth: d,
                limit: MAX_DEPTH,
            }),
            _ => run_loop(run).await,
        };
        // Async cascades finish (or are cancelled with the run) before the session ends.
        crate::compose::join_async(run).await;
        if let Some(h) = heartbeat {
            h.stop().await;
        }
        result
    }
}

/// The record of a fresh session.
fn new_session(request: &RunRequest, session_id: &SessionId, root: SessionId, has_metadata: bool) -> Session {
    let mut session = Session::new(session_id.clone());
    session.parent_session_id = request.parent_session_id.clone();
    session.root_session_id = root;
    session.depth = request.depth;
    session.cascade_id = Some(request.cascade.cascade_id.clone());
    session.caller_id = Some(request.caller_id.clone());
    session.input = request.input.clone();
    session.cascade_file = request.cascade_file.as_ref().map(|p| p.display().to_string());
    session.cascade_text = request.cascade_text.clone();
    if has_metadata {
        session.invocation_metadata = request.metadata.clone();
    }
    session
}

/// Warn (never fail) on inputs missing from or not named in `inputs_schema`.
async fn check_inputs(run: &mut Run<'_>) {
    let Some(schema) = &run.cascade.inputs_schema else {
        return;
    };
    let given = run.input.as_object().cloned().unwrap_or_default();
    let mut warnings = Vec::new();
    for key in schema.keys() {
        if !given.contains_key(key) {
            warnings.push(format!("input `{key}` (declared in inputs_schema) was not given"));
        }
    }
    for key in given.keys() {
        if !schema.contains_key(key) {
            warnings.push(format!("input `{key}` is not declared in inputs_schema"));
        }
    }
    for w in warnings {
        let mut e = run.emit.event(EventKind::Validation, None);
        e.metadata = json!({"check": "inputs_schema", "severity": "warning", "passed": false});
        e.content = json!(w);
        run.emit.send(e).await;
        // Info, not warn: the outcome's `warnings` reach the caller, which shows them once.
        tracing::info!(session_id = %run.session_id, "{w}");
        run.warn(w);
    }
}

/// Run cells from the first (or the resumed one) until one routes nowhere, at most [`MAX_STEPS`].
async fn run_loop(run: &mut Run<'_>) -> Result<()> {
    let cascade = run.cascade;
    let Some(mut idx) = (!cascade.cells.is_empty()).then_some(0) else {
        return Ok(());
    };
    if let Some(i) = run.hitl.resume_cell(cascade) {
        idx = i;
    } else if let Some(i) = run.journal.as_ref().and_then(|j| j.start_cell(cascade)) {
        idx = i;
    }
    // Cascade-level candidates run the whole cascade as branches (not on resume: a resumed run
    // continues the branch that waited).
    else if crate::cells::cascade_takes::applies(cascade) {
        return crate::cells::cascade_takes::run(run).await;
    }
    for _step in 0..MAX_STEPS {
        if run.cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let cell = &cascade.cells[idx];
        run.path.push(cell.name.clone());
        run.effect_seq = 0;
        let cancel = run.cancel.clone();
        let result = tokio::select! {
            biased;
            _ = cancel.cancelled() => Err(Error::Cancelled),
            r = crate::cells::run_cell(run, cell) => r,
        };
        let route = match result {
            Ok(r) => {
                run.record(cell, r.output);
                r.route
            }
            Err(e) => on_error(run, cell, e).await?,
        };
        let next = route.or_else(|| cell.handoff_targets().first().map(|s| (*s).to_owned()));
        match next {
            Some(name) => idx = position(cascade, cell, &name)?,
            None if idx + 1 < cascade.cells.len() => idx += 1,
            None => return Ok(()),
        }
        crate::journal::record(run, cell, &cascade.cells[idx].name).await?;
    }
    Err(Error::CellFailed {
        cell: cascade.cells[idx].name.clone(),
        message: format!("the run exceeded {MAX_STEPS} cell executions (a handoff loop that never exits?)"),
    })
}

/// A failed cell: its `on_error` target (the route), its fallback cell, `continue_on_error`, or the
/// run's failure.
async fn on_error(run: &mut Run<'_>, cell: &Cell, e: Error) -> Result<Option<String>> {
    match e {
        Error::Cancelled => return Err(Error::Cancelled),
        // A blocking ward is a hard stop (§6.4): `on_error` does not apply; a wait is not an error.
        e @ (Error::WardBlocked { .. }
        | Error::MaxDepth { .. }
        | Error::Waiting { .. }
        | Error::ResumedElsewhere { .. }
        | Error::Superseded { .. }) => return Err(e),
        _ => {}
    }
    let last_error =
        || json!({"cell": cell.name, "tool": cell.tool, "error": e.to_string(), "code": e.code().code});
    match &cell.on_error {
        Some(OnError::Target(t)) if t != "auto_fix" => {
            run.set_state("last_deterministic_error", last_error());
            Ok(Some(t.clone()))
        }
        Some(OnError::Spec(spec)) if spec.instructions.is_some() => {
            run.set_state("last_deterministic_error", last_error());
            let fallback = Cell {
                name: format!("{}_fallback", cell.name),
                instructions: spec.instructions.clone(),
                model: spec.model.clone(),
                traits: spec.traits.clone(),
                rules: spec.rules.clone(),
                output_schema: spec.output_schema.clone(),
                context: spec.context.clone(),
                use_native_tools: spec.use_native_tools,
                ..Cell::default()
            };
            let r = Box::pin(crate::cells::with_events(run, &fallback)).await?;
            run.record(cell, r.output);
            Ok(None)
        }
        Some(_) => Err(Error::Unsupported {
            cell: cell.name.clone(),
            feature: "on_error: auto_fix".into(),
        }),
        None if cell.continue_on_error == Some(true) => {
            run.record(cell, Value::String(String::new()));
            Ok(None)
        }
        None => Err(e),
    }
}

/// The index of the cell `name` that `cell` routes to.
fn position(cascade: &rvbbit_cascade::model::Cascade, cell: &Cell, name: &str) -> Result<usize> {
    cascade
        .cells
        .iter()
        .position(|c| c.name == name)
        .ok_or_else(|| Error::CellFailed {
            cell: cell.name.clone(),
            message: format!(
                "routes to `{name}`, which is not a cell; cells: {}",
                cascade.cell_names().collect::<Vec<_>>().join(", ")
            ),
        })
}

/// End a run that did not wait: the end event with the totals, the session's final status, a flush,
/// and the session's scratch directory removed.
async fn finish(
    run: Run<'_>,
    mut session: Session,
    request: RunRequest,
    result: Result<()>,
    started: Instant,
) -> Outcome {
    let (status, error) = match result {
        Ok(()) => (SessionStatus::Completed, None),
        Err(Error::Cancelled) => (SessionStatus::Cancelled, Some(Error::Cancelled)),
        // Another attempt of the job continues the run: this one is not its outcome.
        Err(e @ Error::Superseded { .. }) => (SessionStatus::Cancelled, Some(e)),
        Err(e) => (SessionStatus::Failed, Some(e)),
    };
    crate::cells::hitl::abandon(&run).await;
    let output = run
        .lineage
        .last()
        .map(|l| l.output.clone())
        .unwrap_or(Value::Null);
    let duration = started.elapsed();
    let kind = match status {
        SessionStatus::Completed => EventKind::CascadeComplete,
        SessionStatus::Cancelled => EventKind::CascadeCancelled,
        _ => EventKind::CascadeError,
    };
    let mut end = run.emit.event(kind, None);
    end.content = output.clone();
    end.duration_us = Some(micros(duration));
    // The total goes in metadata, not `cost`: cost rollups sum the `llm_response` events, and a
    // priced `cascade_complete` would count every call twice (and children once more).
    end.metadata = json!({
        "status": status.as_str(),
        "llm_calls": run.totals().llm_calls(),
        "tool_calls": run.totals().tool_calls(),
        "cost_micro_usd": run.totals().cost().micros(),
        "parent_session_id": request.parent_session_id,
    });
    if let Some(e) = &error {
        end.error = Some(json!({"code": e.code().code, "message": e.to_string(), "hint": e.hint()}));
    }
    run.emit.send(end).await;
    session.finish(
        status,
        Some(output.clone()),
        error.as_ref().map(ToString::to_string),
    );
    run.emit.session(session).await;
    run.emit.flush().await;
    remove_session_dir(&run.session_dir).await;
    run.into_outcome(request.caller_id, status, output, error, duration)
}

/// The session directory only holds scratch files of shell tools.
async fn remove_session_dir(dir: &Path) {
    if tokio::fs::try_exists(dir).await.unwrap_or(false)
        && let Err(e) = tokio::fs::remove_dir_all(dir).await
    {
        tracing::warn!(error = %e, dir = %dir.display(), "Session directory not removed");
    }
}

/// End a run that waits for a human: the session stays `waiting` (not ended), everything is flushed, and
/// the outcome carries [`Error::Waiting`].
async fn suspended(
    run: Run<'_>,
    mut session: Session,
    request: RunRequest,
    error: Error,
    started: Instant,
) -> Outcome {
    session.status = SessionStatus::Waiting;
    session.current_cell = run.path.last().cloned();
    session.updated_at = Timestamp::now();
    session.heartbeat_at = session.updated_at;
    run.emit.session(session).await;
    run.emit.flush().await;
    let output = run
        .lineage
        .last()
        .map(|l| l.output.clone())
        .unwrap_or(Value::Null);
    run.into_outcome(
        request.caller_id,
        SessionStatus::Waiting,
        output,
        Some(error),
        started.elapsed(),
    )
}
