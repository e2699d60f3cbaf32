//! Deterministic cells (§5): `tool` with rendered `inputs`, `timeout`, `retry`, `routing`.

use std::time::{Duration, Instant};

use rvbbit_cascade::model::Cell;
use rvbbit_core::EventKind;
use serde_json::{Map, Value, json};
use tracing::Instrument;

use crate::error::{Error, Result};
use crate::run::{CellResult, Run, micros};
use crate::template::json_parse_rule;
use crate::tools::{ToolContext, ToolError};

/// Tools of the cascade language this build does not run yet, with the issue that brings them.
const LATER: &[(&str, &str)] = &[("sql_data", "the SQL issue"), ("rvbbit_data", "a later release")];

pub(crate) async fn run(run: &mut Run<'_>, cell: &Cell) -> Result<CellResult> {
    let tool_name = cell.tool.clone().unwrap_or_default();
    let Some(tool) = run.engine.registry.resolve(&tool_name) else {
        let when = LATER
            .iter()
            .find(|(n, _)| *n == tool_name)
            .map(|(_, when)| format!(" (it comes with {when})"))
            .unwrap_or_default();
        return Err(Error::Unsupported {
            cell: cell.name.clone(),
            feature: format!("the tool `{tool_name}`{when}"),
        });
    };
    let ctx_vars = run.template_ctx();
    let mut args = Map::new();
    for (key, value) in cell.inputs.iter().flatten() {
        if tool.raw_inputs().contains(&key.as_str()) {
            args.insert(key.clone(), value.clone());
            continue;
        }
        let rendered = match value {
            Value::String(s) => json_parse_rule(render(run, cell, s, &ctx_vars).await?),
            // No JSON-parse rule for strings nested in lists and objects.
            other => run
                .templates
                .render_value(other, &ctx_vars)
                .await
                .map_err(|e| e.into_cell_error(&cell.name, "inputs"))?,
        };
        args.insert(key.clone(), rendered);
    }
    let args = Value::Object(args);
    if super::human_tools::TOOLS.contains(&tool_name.as_str()) {
        // The engine answers the human tools itself: the wait suspends the run, a resume replays it.
        return match super::human_tools::call(run, cell, &tool_name, &args).await? {
            Ok(mut output) => {
                // The chosen option routes (`routing: {approve: publish, …}`).
                if let Some(Value::String(selected)) = output.get("selected").cloned()
                    && let Some(m) = output.as_object_mut()
                {
                    m.entry("_route").or_insert(Value::String(selected));
                }
                let route = route_of(cell, &output);
                Ok(CellResult { output, route })
            }
            Err(message) => Err(tool_error(cell, &tool_name, ToolError::Failed(message))),
        };
    }
    let timeout = match &cell.timeout {
        Some(t) => Some(
            t.as_seconds()
                .map(Duration::from_secs_f64)
                .ok_or_else(|| Error::CellFailed {
                    cell: cell.name.clone(),
                    message: "`timeout` is not a duration such as \"30s\"".into(),
                })?,
        ),
        None => None,
    };
    let (attempts, backoff, base) = match &cell.retry {
        Some(r) => (
            r.max_attempts.unwrap_or(3).max(1),
            // `Backoff` is not re-exported by rvbbit-cascade; read its serialised name.
            r.backoff
                .and_then(|b| serde_json::to_value(b).ok())
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| "linear".into()),
            r.backoff_base_seconds.unwrap_or(1.0).max(0.0),
        ),
        None => (1, "none".to_owned(), 0.0),
    };
    let ctx = ToolContext {
        session_id: run.session_id.clone(),
        cell_name: cell.name.clone(),
        session_dir: run.session_dir.clone(),
        state: run.state.clone(),
        outputs: run.outputs.clone(),
        previous: run.lineage.last().map(|l| l.output.clone()),
        input: run.input.clone(),
        timeout,
        scope: Some(run.tool_scope()),
        sandbox: run.sandbox_scope(cell),
        idempotency_key: None,
    };
    let mut last_err = None;
    for attempt in 1..=attempts {
        if attempt > 1 {
            let secs = match backoff.as_str() {
                "none" => 0.0,
                "exponential" => base * 2f64.powi(i32::try_from(attempt).unwrap_or(1) - 2),
                _ => base * f64::from(attempt - 1),
            };
            tokio::time::sleep(Duration::from_secs_f64(secs)).await;
        }
        match call_tool(run, cell, tool.as_ref(), args.clone(), &ctx, timeout, attempt).await {
            Ok(result) => {
                let route = route_of(cell, &result);
                return Ok(CellResult {
                    output: result,
                    route,
                });
            }
            Err(e) => last_err = Some(e),
        }
    }
    let err = last_err.unwrap_or(ToolError::Failed("no attempt was made".into()));
    Err(tool_error(cell, &tool_name, err))
}

/// How much later than its own limit a sandboxed tool call is stopped from outside.
const SANDBOX_GRACE: Duration = Duration::from_secs(5);

pub(crate) fn tool_error(cell: &Cell, tool: &str, err: ToolError) -> Error {
    match err {
        ToolError::Timeout(after) => Error::ToolTimeout {
            cell: cell.name.clone(),
            tool: tool.to_owned(),
            after,
        },
        ToolError::Sandbox { code, message } => Error::Sandbox {
            cell: cell.name.clone(),
            tool: tool.to_owned(),
            code,
            message,
        },
        other => Error::ToolFailed {
            cell: cell.name.clone(),
            tool: tool.to_owned(),
            message: other.to_string(),
        },
    }
}

/// Call a tool with `tool_call`/`tool_result` events, inside its span and time limit. A tool that
/// changes the world gets an idempotency key; in a journaled run its call is recorded before and after
/// (`journal.rs`), and a call an earlier attempt finished is not made again: its recorded result is
/// returned (a `tool_result` with `replayed: true`).
pub(crate) async fn call_tool(
    run: &mut Run<'_>,
    cell: &Cell,
    tool: &dyn crate::tools::Tool,
    args: Value,
    ctx: &ToolContext,
    timeout: Option<Duration>,
    attempt: u32,
) -> std::result::Result<Value, ToolError> {
    let key = crate::journal::key_for(run, cell, tool);
    let claim = match &key {
        Some(k) => crate::journal::claim(run, cell, tool, k).await?,
        None => crate::journal::Claim::Free,
    };
    let mut e = run.emit.event(EventKind::ToolCall, Some(&cell.name));
    e.content = args.clone();
    e.attempt = Some(i32::try_from(attempt).unwrap_or(i32::MAX) - 1);
    e.metadata = json!({"tool": tool.name(), "side_effect": tool.side_effect(), "idempotency_key": key});
    if let crate::journal::Claim::Claimed { attempts } = &claim {
        e.metadata["effect_attempt"] = json!(attempts);
    }
    run.emit.send(e).await;
    if let crate::journal::Claim::Replay(recorded) = claim {
        let mut e = run.emit.event(EventKind::ToolResult, Some(&cell.name));
        e.content = recorded.clone();
        e.metadata = json!({"tool": tool.name(), "replayed": true, "idempotency_key": key});
        run.emit.send(e).await;
        return Ok(recorded);
    }
    run.count_tool_call();
    let ctx = &ToolContext {
        idempotency_key: key.clone(),
        ..ctx.clone()
    };
    let span = tracing::info_span!(
        "tool",
        tool = tool.name(),
        cell = %cell.name,
        session_id = %run.session_id,
        caller_id = %run.emit.caller()
    );
    let started = Instant::now();
    // In a sandbox the process tools enforce the limit themselves and name the one reached (the cell's
    // `timeout`: RVB-T002; the sandbox's wall-clock limit: RVB-B013); this outer limit only backs them
    // up, a little later, so that it never wins the race against them.
    let limit = timeout.or(tool.default_timeout()).map(|l| {
        if ctx.sandbox.is_some() {
            l + SANDBOX_GRACE
        } else {
            l
        }
    });
    let fut = tool.execute(args, ctx).instrument(span);
    let result = match limit {
        Some(l) => tokio::time::timeout(l, fut)
            .await
            .unwrap_or(Err(ToolError::Timeout(l))),
        None => fut.await,
    };
    let elapsed = started.elapsed();
    let mut e = run.emit.event(EventKind::ToolResult, Some(&cell.name));
    e.duration_us = Some(micros(elapsed));
    e.metadata = json!({"tool": tool.name()});
    match &result {
        Ok(v) => e.content = v.clone(),
        Err(err) => {
            let code = match err {
                ToolError::Timeout(_) => rvbbit_core::codes::T_TIMEOUT,
                ToolError::Sandbox { code, .. } => code,
                _ => rvbbit_core::codes::T_FAILED,
            };
            e.error = Some(json!({"code": code.code, "message": err.to_string()}));
        }
    }
    run.emit.send(e).await;
    crate::spending::charge_compute(run, cell, tool, elapsed).await;
    if let (Some(k), crate::journal::Claim::Claimed { .. }) = (&key, &claim) {
        crate::journal::finish(run, k, &result).await;
    }
    result
}

/// §5.4: route key = `_route`, else `status`, else `success`; then `routing[key]`, `routing.default`, or
/// the single handoff.
fn route_of(cell: &Cell, result: &Value) -> Option<String> {
    let key = result
        .get("_route")
        .and_then(Value::as_str)
        .or_else(|| result.get("status").and_then(Value::as_str))
        .unwrap_or("success");
    if let Some(routing) = &cell.routing
        && let Some(target) = routing.get(key).or_else(|| routing.get("default"))
    {
        return Some(target.clone());
    }
    match cell.handoff_targets().as_slice() {
        [one] => Some((*one).to_owned()),
        _ => None,
    }
}

async fn render(run: &Run<'_>, cell: &Cell, source: &str, ctx: &Value) -> Result<String> {
    run.templates
        .render(source, ctx)
        .await
        .map_err(|e| e.into_cell_error(&cell.name, "inputs"))
}
