//! Validators (§6.2), shared by `loop_until` and wards: inline `python`/`bash` code or `{tool, inputs}`,
//! and names. A name resolves in one order everywhere (Proposed): the cascade's `validators:` entry (an
//! LLM judge) → a registered tool → a validator cascade (a cascade tool, or a cascade found like a
//! sub-cascade `ref`), run as a child session with input `{content, original_input}`. An unknown validator
//! is an error, never a pass. `javascript`, `sql` and `clojure` inline validators are refused with RVB-E003.

use rvbbit_cascade::model::{Cell, InlineValidatorSpec, ValidatorSpec};
use rvbbit_core::EventKind;
use rvbbit_llm::{ChatRequest, Expect, Expected, Message};
use serde_json::{Value, json};
use tokio::process::Command;

use super::call::{call_model, extract_json};
use crate::children;
use crate::error::{Error, Result};
use crate::run::Run;
use crate::tools::{ToolContext, ToolError};

/// What a validator is judging for: decides a validator cascade's session id.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Purpose {
    /// `loop_until`, on this attempt (1-based): session `<sid>_validator_<attempt>`.
    LoopUntil(u32),
    /// A ward: session `<sid>_ward`.
    Ward,
}

/// The name of a validator spec, for events and messages.
pub(crate) fn name_of(spec: &ValidatorSpec) -> String {
    match spec {
        ValidatorSpec::Inline(inline) => inline.languages().join("+"),
        ValidatorSpec::Name(name) => name.clone(),
    }
}

/// Judge `content` (with the cascade input as `original_input`): `(valid, reason)`. No event.
pub(crate) async fn judge(
    run: &mut Run<'_>,
    cell: &Cell,
    spec: &ValidatorSpec,
    content: &str,
    purpose: Purpose,
) -> Result<(bool, String)> {
    match spec {
        ValidatorSpec::Inline(inline) => inline_check(run, cell, inline, content).await,
        ValidatorSpec::Name(name) => named_check(run, cell, name, content, purpose).await,
    }
}

/// Judge `content` for `loop_until` on `attempt`: `(valid, reason)`, recorded as a `validation` event.
pub(crate) async fn check(
    run: &mut Run<'_>,
    cell: &Cell,
    spec: &ValidatorSpec,
    content: &str,
    attempt: u32,
) -> Result<(bool, String)> {
    let (valid, reason) = judge(run, cell, spec, content, Purpose::LoopUntil(attempt)).await?;
    let name = name_of(spec);
    let mut e = run.emit.event(EventKind::Validation, Some(&cell.name));
    e.metadata = json!({"check": "loop_until", "validator": name, "passed": valid});
    e.content = json!(reason);
    run.emit.send(e).await;
    Ok((valid, reason))
}

fn verdict(value: &Value) -> (bool, String) {
    match value {
        Value::Bool(b) => (*b, String::new()),
        Value::Object(m) => (
            m.get("valid").and_then(Value::as_bool).unwrap_or(false),
            m.get("reason")
                .map(|r| r.as_str().map(str::to_owned).unwrap_or_else(|| r.to_string()))
                .unwrap_or_default(),
        ),
        _ => (
            false,
            format!("the validator returned {value}, not {{\"valid\": bool, \"reason\": string}}"),
        ),
    }
}

pub(crate) fn tool_ctx(run: &Run<'_>, cell: &Cell) -> ToolContext {
    ToolContext {
        session_id: run.session_id.clone(),
        cell_name: cell.name.clone(),
        session_dir: run.session_dir.clone(),
        state: run.state.clone(),
        outputs: run.outputs.clone(),
        previous: None,
        input: run.input.clone(),
        timeout: None,
        scope: Some(run.tool_scope()),
        sandbox: run.sandbox_scope(cell),
        idempotency_key: None,
    }
}

fn validator_failed(cell: &Cell, e: ToolError) -> Error {
    if let ToolError::Sandbox { code, message } = e {
        return Error::Sandbox {
            cell: cell.name.clone(),
            tool: "loop_until".into(),
            code,
            message,
        };
    }
    Error::CellFailed {
        cell: cell.name.clone(),
        message: format!("the loop_until validator failed to run: {e}"),
    }
}

async fn inline_check(
    run: &mut Run<'_>,
    cell: &Cell,
    spec: &InlineValidatorSpec,
    content: &str,
) -> Result<(bool, String)> {
    let original = run.input.to_string();
    let timeout = Some(std::time::Duration::from_secs(60));
    if let Some(code) = &spec.python {
        let ctx = tool_ctx(run, cell);
        // `output` too: a corpus validator (fraud_assessment_with_soundings) reads the reply by that name.
        let extra = json!({"content": content, "output": content, "original_input": original});
        let (result, _) = crate::tools::python_runner(code, &ctx, extra, timeout)
            .await
            .map_err(|e| validator_failed(cell, e))?;
        return Ok(verdict(&result));
    }
    if let Some(script) = &spec.bash {
        let mut cmd = Command::new("bash");
        cmd.arg("-c")
            .arg(script)
            .env("CONTENT", content)
            .env("ORIGINAL_INPUT", &original);
        let ctx = tool_ctx(run, cell);
        let done = crate::tools::process_runner(&ctx, cmd, Vec::new(), timeout)
            .await
            .map_err(|e| validator_failed(cell, e))?;
        return Ok(match extract_json(&done.0) {
            Some(v) => verdict(&v),
            None => (done.1 == 0, done.0.trim().to_owned()),
        });
    }
    if let Some(tool) = &spec.tool {
        return tool_check(run, cell, tool, spec.inputs.clone().unwrap_or_default(), content).await;
    }
    Err(Error::Unsupported {
        cell: cell.name.clone(),
        feature: format!("a `{}` loop_until validator", spec.languages().join("/")),
    })
}

async fn tool_check(
    run: &mut Run<'_>,
    cell: &Cell,
    tool: &str,
    mut inputs: serde_json::Map<String, Value>,
    content: &str,
) -> Result<(bool, String)> {
    let Some(t) = run.engine.registry.resolve(tool) else {
        return Err(Error::CellFailed {
            cell: cell.name.clone(),
            message: format!("the loop_until validator `{tool}` is not a known validator or tool"),
        });
    };
    inputs.insert("content".into(), json!(content));
    let ctx = tool_ctx(run, cell);
    let result = t
        .execute(Value::Object(inputs), &ctx)
        .await
        .map_err(|e| validator_failed(cell, e))?;
    Ok(verdict(&result))
}

async fn named_check(
    run: &mut Run<'_>,
    cell: &Cell,
    name: &str,
    content: &str,
    purpose: Purpose,
) -> Result<(bool, String)> {
    let Some(judge) = run.cascade.validators.as_ref().and_then(|v| v.get(name)).cloned() else {
        let path = match run.engine.registry.get(name) {
            Some(tool) => match tool.cascade_path() {
                Some(p) => p.to_path_buf(),
                None => return tool_check(run, cell, name, serde_json::Map::new(), content).await,
            },
            None => match children::resolve(run.engine, run.compose_file(), name) {
                Ok(p) => p,
                Err(why) => {
                    return Err(Error::CellFailed {
                        cell: cell.name.clone(),
                        message: format!(
                            "the validator `{name}` is not defined: not a `validators:` entry of the cascade, not a registered tool, and not a validator cascade ({why})"
                        ),
                    });
                }
            },
        };
        return cascade_check(run, cell, name, &path, content, purpose).await;
    };
    let vars = json!({"input": {"content": content, "original_input": run.input, "has_images": false, "image_count": 0}});
    let prompt = run
        .templates
        .render(&judge.instructions, &vars)
        .await
        .map_err(|e| e.into_cell_error(&cell.name, &format!("validator `{name}`")))?;
    let model = judge
        .model
        .clone()
        .unwrap_or_else(|| super::call::resolve_model(run, cell).0);
    let request = ChatRequest::new(
        model,
        vec![
            Message::system(
                "You are a validator. Reply with only a JSON object {\"valid\": true|false, \"reason\": \"...\"}.",
            ),
            Message::user(prompt),
        ],
    )
    .with_expect(Expect::new(cell.name.clone(), Expected::Verdict));
    let reply = call_model(run, &cell.name, &request, None, None).await?;
    Ok(match extract_json(&reply.text) {
        Some(v) => verdict(&v),
        None => (
            false,
            format!("the validator `{name}` did not reply with JSON: {}", reply.text),
        ),
    })
}

/// Run a validator cascade as a child session with input `{content, original_input}`; its last output
/// is the verdict.
async fn cascade_check(
    run: &mut Run<'_>,
    cell: &Cell,
    name: &str,
    path: &std::path::Path,
    content: &str,
    purpose: Purpose,
) -> Result<(bool, String)> {
    let what = format!("validator cascade `{name}`");
    let scope = run.scope();
    let child = children::prepare_path(&scope, &cell.name, path, &what)?;
    let base = match purpose {
        Purpose::LoopUntil(attempt) => format!("{}_validator_{attempt}", run.session_id),
        Purpose::Ward => format!("{}_ward", run.session_id),
    };
    let sid = run.compose.child_id(&base);
    let input = json!({"content": content, "original_input": run.input});
    let outcome = children::run_child(&scope, child, input, children::session_id(&sid)).await?;
    run.absorb(&outcome);
    if outcome.status != rvbbit_core::SessionStatus::Completed {
        return Err(children::child_error(&cell.name, &what, outcome));
    }
    Ok(match &outcome.output {
        Value::String(text) => match extract_json(text) {
            Some(v) => verdict(&v),
            None => (
                false,
                format!("the validator cascade `{name}` did not reply with JSON: {text}"),
            ),
        },
        other => verdict(other),
    })
}
