//! `loop_until` validators: inline `python`/`bash` code, cascade-scoped LLM judges (`validators:`), and
//! registered tools. Other kinds (validator cascades, `javascript`, `sql`, `clojure`) are refused with
//! RVB-E003; an unknown validator is an error, never a pass.

use rvbbit_cascade::model::{Cell, InlineValidatorSpec, ValidatorSpec};
use rvbbit_core::EventKind;
use rvbbit_llm::{ChatRequest, Message};
use serde_json::{Value, json};
use tokio::process::Command;

use super::llm::{call_model, extract_json};
use crate::error::{Error, Result};
use crate::run::Run;
use crate::tools::{ToolContext, ToolError};

/// Judge `content`: `(valid, reason)`, recorded as a `validation` event.
pub(crate) async fn check(
    run: &mut Run<'_>,
    cell: &Cell,
    spec: &ValidatorSpec,
    content: &str,
) -> Result<(bool, String)> {
    let (valid, reason, name) = match spec {
        ValidatorSpec::Inline(inline) => {
            let (v, r) = inline_check(run, cell, inline, content).await?;
            (v, r, inline.languages().join("+"))
        }
        ValidatorSpec::Name(name) => {
            let (v, r) = named_check(run, cell, name, content).await?;
            (v, r, name.clone())
        }
    };
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

fn tool_ctx(run: &Run<'_>, cell: &Cell) -> ToolContext {
    ToolContext {
        session_id: run.session_id.clone(),
        cell_name: cell.name.clone(),
        session_dir: run.session_dir.clone(),
        state: run.state.clone(),
        outputs: run.outputs.clone(),
        previous: None,
        input: run.input.clone(),
        timeout: None,
    }
}

fn validator_failed(cell: &Cell, e: ToolError) -> Error {
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
        let extra = json!({"content": content, "original_input": original});
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
        let done = crate::tools::process_runner(cmd, Vec::new(), timeout)
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
    let Some(t) = run.engine.registry.get(tool).cloned() else {
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

async fn named_check(run: &mut Run<'_>, cell: &Cell, name: &str, content: &str) -> Result<(bool, String)> {
    let Some(judge) = run.cascade.validators.as_ref().and_then(|v| v.get(name)).cloned() else {
        if run.engine.registry.get(name).is_some() {
            return tool_check(run, cell, name, serde_json::Map::new(), content).await;
        }
        return Err(Error::Unsupported {
            cell: cell.name.clone(),
            feature: format!(
                "the validator `{name}` (validator cascades are not run yet; only `validators:` entries, inline python/bash and tools)"
            ),
        });
    };
    let vars = json!({"input": {"content": content, "original_input": run.input, "has_images": false, "image_count": 0}});
    let prompt = run
        .templates
        .render(&judge.instructions, &vars)
        .map_err(|e| Error::CellFailed {
            cell: cell.name.clone(),
            message: format!("template error in validator `{name}`: {e}"),
        })?;
    let model = judge
        .model
        .clone()
        .unwrap_or_else(|| super::llm::resolve_model(run, cell).0);
    let request = ChatRequest::new(
        model,
        vec![
            Message::system(
                "You are a validator. Reply with only a JSON object {\"valid\": true|false, \"reason\": \"...\"}.",
            ),
            Message::user(prompt),
        ],
    );
    let reply = call_model(run, &cell.name, &request, None, None).await?;
    Ok(match extract_json(&reply.text) {
        Some(v) => verdict(&v),
        None => (
            false,
            format!("the validator `{name}` did not reply with JSON: {}", reply.text),
        ),
    })
}
