//! Composition (§5.6) as cells see it: `sub_cascades` (run before the cell's own work, their state and
//! lineage merged back), `async_cascades` (started at a trigger, joined before the run ends) and the
//! [`Scope`] of a run that its children start in. Starting, linking and loading child runs is in
//! `children.rs`.

use std::path::Path;
use std::sync::Arc;

use rvbbit_cascade::model::{AsyncTrigger, Cell};
use rvbbit_core::{EventKind, SessionStatus};
use serde_json::{Map, Value, json};

use crate::child_runs::unix_now;
use crate::children::{
    Pending, Scope, SpawnProblem, child_error, child_future, hex6, prepare, run_child, session_id,
};
use crate::error::{Error, Result};
use crate::run::Run;
use crate::tools::ChildRunner;

impl Run<'_> {
    /// The file of the cascade being run, when it came from one (child refs are relative to it).
    pub(crate) fn compose_file(&self) -> Option<&Path> {
        self.compose.cascade_file()
    }

    /// The scope children of this run are started in.
    pub(crate) fn scope(&self) -> Scope {
        Scope {
            engine: self.engine.clone(),
            session_id: self.session_id.clone(),
            root_session_id: self.compose.root().clone(),
            depth: self.compose.depth(),
            caller_id: self.emit.caller().clone(),
            cancel: self.cancel.clone(),
            cascade_file: self.compose.cascade_file().map(Path::to_path_buf),
            model: self.model_override.clone(),
            children: self.compose.children().clone(),
            emit: self.emit.clone(),
        }
    }

    /// The scope the children of this run's tool calls start in (cascade tools, [`crate::ChildRuns`]).
    pub(crate) fn tool_scope(&self) -> Arc<dyn ChildRunner> {
        Arc::new(self.scope())
    }

    /// The sandbox `cell`'s processes run in, when the engine has one.
    pub(crate) fn sandbox_scope(&self, cell: &Cell) -> Option<crate::tools::sandbox::Scope> {
        self.engine
            .sandbox
            .clone()
            .map(|sandbox| crate::tools::sandbox::Scope {
                sandbox,
                cell: cell.name.clone(),
                block: cell.sandbox,
            })
    }
}

/// §5.6 child input: with `context_in`, the parent state (without `input`) and then the parent input's
/// keys; then `input_map` (`child_key: parent_key_or_literal`: a string naming a key of the input or the
/// state copies it, a template is rendered, anything else is a literal).
async fn child_input(
    run: &Run<'_>,
    cell: &Cell,
    context_in: bool,
    map: Option<&Map<String, Value>>,
) -> Result<Value> {
    let state = run.state.lock().map(|s| s.clone()).unwrap_or_default();
    let input = run.input.as_object().cloned().unwrap_or_default();
    let mut out = Map::new();
    if context_in {
        for (k, v) in &state {
            if k != "input" {
                out.insert(k.clone(), v.clone());
            }
        }
        for (k, v) in &input {
            out.insert(k.clone(), v.clone());
        }
    }
    let vars = run.template_ctx();
    for (key, value) in map.into_iter().flatten() {
        let v = match value {
            Value::String(s) if input.contains_key(s) => input[s].clone(),
            Value::String(s) if state.contains_key(s) => state[s].clone(),
            Value::String(s) if s.contains("{{") || s.contains("{%") => {
                let text = run
                    .templates
                    .render(s, &vars)
                    .await
                    .map_err(|e| e.into_cell_error(&cell.name, &format!("input_map.{key}")))?;
                crate::template::json_parse_rule(text)
            }
            other => other.clone(),
        };
        out.insert(key.clone(), v);
    }
    Ok(Value::Object(out))
}

/// Render a `ref` (it may be a template).
async fn render_ref(run: &Run<'_>, cell: &Cell, reference: &str) -> Result<String> {
    if !reference.contains("{{") {
        return Ok(reference.to_owned());
    }
    run.templates
        .render(reference, &run.template_ctx())
        .await
        .map(|s| s.trim().to_owned())
        .map_err(|e| e.into_cell_error(&cell.name, "ref"))
}

async fn child_event(run: &Run<'_>, cell: &Cell, child: &str, what: &str, reference: &str) {
    let mut e = run.emit.event(EventKind::ChildStart, Some(&cell.name));
    e.metadata = json!({"child_session_id": child, "kind": what, "ref": reference});
    run.emit.send(e).await;
}

/// `sub_cascades` (§5.6): each runs synchronously before the cell's own work; a failure fails the cell.
pub(crate) async fn sub_cascades(run: &mut Run<'_>, cell: &Cell) -> Result<()> {
    for sub in cell.sub_cascades.iter().flatten() {
        let reference = render_ref(run, cell, &sub.reference).await?;
        let what = format!("sub-cascade `{reference}`");
        let scope = run.scope();
        let child = prepare(&scope, &cell.name, &reference, &what)?;
        let input = child_input(run, cell, sub.context_in != Some(false), sub.input_map.as_ref()).await?;
        let sid = run.compose.child_id(&format!("{}_sub", run.session_id));
        child_event(run, cell, &sid, "sub_cascade", &reference).await;
        let outcome = run_child(&scope, child, input, session_id(&sid)).await?;
        run.absorb(&outcome);
        if outcome.status != SessionStatus::Completed {
            return Err(child_error(&cell.name, &what, outcome));
        }
        if sub.context_out != Some(false) {
            if let Ok(mut s) = run.state.lock() {
                for (k, v) in &outcome.state {
                    if k != "input" {
                        s.insert(k.clone(), v.clone());
                    }
                }
            }
            run.lineage.extend(outcome.lineage.iter().cloned());
            for w in &outcome.warnings {
                run.warn(format!("{what} (session {}): {w}", outcome.session_id));
            }
        }
    }
    Ok(())
}

/// Start the cell's `async_cascades` with this trigger (default `on_start`). They run concurrently; the
/// run waits for them before it ends ([`join_async`]).
pub(crate) async fn start_async(run: &mut Run<'_>, cell: &Cell, trigger: AsyncTrigger) {
    for spec in cell.async_cascades.iter().flatten() {
        if spec.trigger.unwrap_or(AsyncTrigger::OnStart) != trigger {
            continue;
        }
        // An async child never fails its parent, not even when it cannot start.
        let prepared = async {
            let reference = render_ref(run, cell, &spec.reference).await?;
            let what = format!("async cascade `{reference}`");
            let child = prepare(&run.scope(), &cell.name, &reference, &what)?;
            let input =
                child_input(run, cell, spec.context_in != Some(false), spec.input_map.as_ref()).await?;
            Ok::<_, Error>((child, input, what, reference))
        }
        .await;
        let (child, input, what, reference) = match prepared {
            Ok(c) => c,
            Err(err) => {
                let message = format!("[{}] {err} (the async cascade did not start)", err.code().code);
                let mut e = run.emit.event(EventKind::Error, Some(&cell.name));
                e.content = json!(message);
                e.error =
                    Some(json!({"code": err.code().code, "message": err.to_string(), "hint": err.hint()}));
                e.metadata = json!({"kind": "async_cascade", "severity": "warning", "ref": spec.reference});
                run.emit.send(e).await;
                // Info, not warn: the outcome's `warnings` reach the caller, which shows them once.
                tracing::info!(session_id = %run.session_id, "{message}");
                run.warn(message);
                continue;
            }
        };
        let scope = run.scope();
        let sid = run
            .compose
            .child_id(&format!("spawned_{}_{}", unix_now(), hex6()));
        child_event(run, cell, &sid, "async_cascade", &reference).await;
        let session_id = session_id(&sid);
        let handle = tokio::spawn(child_future(
            &scope,
            child,
            input,
            session_id.clone(),
            scope.cancel.child_token(),
        ));
        run.compose.push_pending(Pending {
            cell: cell.name.clone(),
            what,
            session_id,
            handle,
        });
    }
}

/// An `error` event (`metadata.severity: warning`) and a warning for a child that did not complete.
async fn report_child_problem(run: &mut Run<'_>, problem: SpawnProblem, kind: &str) {
    let mut e = run.emit.event(EventKind::Error, Some(&problem.cell));
    e.content = json!(problem.message);
    e.error = problem.error;
    e.metadata = json!({"child_session_id": problem.session_id, "kind": kind, "severity": "warning"});
    run.emit.send(e).await;
    // Info, not warn: the outcome's `warnings` reach the caller, which shows them once.
    tracing::info!(session_id = %run.session_id, "{}", problem.message);
    run.warn(problem.message);
}

/// Wait for the async cascades still running (they stop early when the run was cancelled: their tokens
/// are children of the run's). A failure is an `error` event and a warning, never the run's failure.
pub(crate) async fn join_async(run: &mut Run<'_>) {
    run.compose.children().join().await;
    let (cost, llm, tools) = run.compose.children().take();
    run.add_calls(cost, llm, tools);
    for problem in run.compose.children().take_problems() {
        report_child_problem(run, problem, "spawn_cascade").await;
    }
    for p in run.compose.take_pending() {
        let problem = match p.handle.await {
            Ok(outcome) => {
                run.absorb(&outcome);
                match outcome.status {
                    SessionStatus::Completed => None,
                    status => Some((
                        outcome.error.as_ref().map(
                            |e| json!({"code": e.code().code, "message": e.to_string(), "hint": e.hint()}),
                        ),
                        format!(
                            "{} of cell `{}` ended `{status}` (session {}){}",
                            p.what,
                            p.cell,
                            p.session_id,
                            outcome
                                .error
                                .as_ref()
                                .map(|e| format!(": [{}] {e}", e.code().code))
                                .unwrap_or_default()
                        ),
                    )),
                }
            }
            Err(e) => Some((
                None,
                format!(
                    "{} of cell `{}` (session {}) did not finish: {e}",
                    p.what, p.cell, p.session_id
                ),
            )),
        };
        if let Some((error, message)) = problem {
            let problem = SpawnProblem {
                cell: p.cell,
                session_id: p.session_id,
                error,
                message,
            };
            report_child_problem(run, problem, "async_cascade").await;
        }
    }
}
