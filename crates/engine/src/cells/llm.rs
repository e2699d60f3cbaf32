//! LLM cells (§4): rendered instructions, context, the turn loop with tools (native and prompt-described),
//! `route_to`, `output_schema` with corrective re-asks, `loop_until`, `output_extraction`.
//!
//! [`run`] reads as its steps: render the instructions, choose the tools offered ([`Offer`]), build the
//! opening messages, then attempts ([`attempts`]) of turns ([`turn_loop`]; one turn is
//! `Turns::turn` in `turns.rs`, its provider calls `call.rs`) until the output passes its checks.

use rvbbit_cascade::model::{Cell, Handoff, Rules, ValidatorSpec};
use rvbbit_core::EventKind;
use rvbbit_llm::Message;
use serde_json::{Value, json};

use super::output::{check_schema, extract};
use super::tool_calls;
use super::turns::{Offer, Turns};
use super::{validators, wards};
use crate::error::{Error, Result};
use crate::run::{CellResult, Run};

/// The nudge sent on turns after the first when the cell has no `turn_prompt`.
pub(crate) const DEFAULT_CONTINUE: &str =
    "Continue, or refine your previous output if it can be improved; if it is complete, repeat it as is.";

/// The text of a re-ask after a failed check when the cell has no `retry_instructions`.
const DEFAULT_RETRY: &str = "Your previous answer did not pass validation";

/// Features of LLM cells this build does not run yet (the list the validator reports too:
/// [`rvbbit_cascade::support`]).
fn unsupported(cell: &Cell) -> Option<&'static str> {
    if cell.candidates.is_some() {
        return Some("candidates (takes/soundings)");
    }
    rvbbit_cascade::support::llm_refusal(cell).map(|(_, feature)| feature)
}

/// Run an LLM cell: the steps of the module docs.
pub(crate) async fn run(run: &mut Run<'_>, cell: &Cell) -> Result<CellResult> {
    if let Some(feature) = unsupported(cell) {
        return Err(Error::Unsupported {
            cell: cell.name.clone(),
            feature: feature.into(),
        });
    }
    let vars = run.template_ctx();
    let instructions = render(
        run,
        cell,
        cell.instructions.as_deref().unwrap_or(""),
        &vars,
        "instructions",
    )
    .await?;
    let offer = Offer::of(run, cell)?;
    for name in &offer.missing {
        let w = format!(
            "cell `{}` lists the tool `{name}`, which this rvbbit does not provide: it is not offered to the model, and a call to it fails",
            cell.name
        );
        tracing::info!(session_id = %run.session_id, "{w}");
        run.warn(w);
    }
    let rules = cell.rules.clone().unwrap_or_default();
    let mut messages = opening(run, cell, &offer, &rules, instructions).await;
    let mut turns = Turns::new(run, cell, offer);
    let output = attempts(run, cell, &rules, &mut turns, &mut messages).await?;
    if let Some(ex) = &cell.output_extraction {
        extract(run, cell, ex, &output)?;
    }
    Ok(CellResult {
        output,
        route: turns.route,
    })
}

/// The opening messages (§4.2): injected context, the tools described in the prompt (without native
/// tools), and the task with its routing options and validation requirement; the task is recorded as
/// a `prompt` event.
async fn opening(
    run: &mut Run<'_>,
    cell: &Cell,
    offer: &Offer<'_>,
    rules: &Rules,
    instructions: String,
) -> Vec<Message> {
    let mut messages = Vec::new();
    let injected = inject_context(run, cell, &mut messages).await;
    if !offer.native && !offer.described.is_empty() {
        messages.push(Message::system(tool_calls::describe(&offer.described)));
    }
    let mut task = if injected {
        format!("## New Task\n{instructions}")
    } else {
        instructions
    };
    if offer.route {
        task.push_str(
            "\n\n## Routing Options\nWhen you are done, call `route_to` with one of these targets:\n",
        );
        for h in &offer.handoffs {
            match h {
                Handoff::Described {
                    target,
                    description: Some(d),
                } => task.push_str(&format!("- {target}: {d}\n")),
                other => task.push_str(&format!("- {}\n", other.target())),
            }
        }
    }
    if let Some(lu) = &rules.loop_until
        && rules.loop_until_silent != Some(true)
    {
        let req = match (&rules.loop_until_prompt, lu) {
            (Some(p), _) => p.clone(),
            (None, ValidatorSpec::Name(n)) => {
                format!("Your output will be checked by the validator `{n}`.")
            }
            (None, _) => "Your output will be checked by a validator.".into(),
        };
        task.push_str(&format!("\n\n## Validation Requirement\n{req}"));
    }
    if let Some(schema) = &cell.output_schema
        && rules.schema_in_prompt != Some(false)
    {
        task.push_str(&schema_requirement(schema));
    }
    messages.push(Message::user(task));
    let mut prompt = run.emit.event(EventKind::Prompt, Some(&cell.name));
    prompt.content = json!(messages.last().map(Message::text));
    run.emit.send(prompt).await;
    messages
}

/// The prompt's statement of an `output_schema` (as LARS states it): reply with JSON matching it.
fn schema_requirement(schema: &serde_json::Value) -> String {
    let pretty = serde_json::to_string_pretty(schema).unwrap_or_else(|_| schema.to_string());
    format!(
        "\n\n## Output Format Requirement\nYour response must be valid JSON matching this JSON Schema (the JSON only, no other text):\n```json\n{pretty}\n```"
    )
}

/// Why the last attempt failed its checks (for the re-ask).
#[derive(Default)]
struct Failures {
    validation: String,
    schema: String,
}

/// Attempts of the cell within its attempt budget: each runs the turns, then checks the output
/// (`output_schema`, `loop_until`, post wards) and re-asks after a failure while attempts remain.
async fn attempts(
    run: &mut Run<'_>,
    cell: &Cell,
    rules: &Rules,
    turns: &mut Turns,
    messages: &mut Vec<Message>,
) -> Result<Value> {
    let max_attempts = wards::attempt_budget(cell);
    let mut failed = Failures::default();
    let mut output = Value::String(String::new());
    for attempt in 1..=max_attempts {
        if attempt > 1 {
            re_ask(run, cell, rules, &failed, attempt, max_attempts, messages).await?;
        }
        let (text, composite, passed) = turn_loop(run, cell, rules, turns, messages, attempt).await?;
        output = Value::String(text.clone());
        if let Some(schema) = &cell.output_schema {
            match check_schema(schema, &text) {
                Ok(parsed) => {
                    failed.schema.clear();
                    run.set_state("validated_output", parsed.clone());
                    validation_event(run, cell, "output_schema", true, "").await;
                    output = parsed;
                }
                Err(err) => {
                    run.set_state("last_schema_error", json!(err));
                    validation_event(run, cell, "output_schema", false, &err).await;
                    failed.schema = err;
                    if attempt < max_attempts {
                        continue;
                    }
                    return Err(Error::SchemaUnsatisfied {
                        cell: cell.name.clone(),
                        attempts: max_attempts,
                        error: failed.schema,
                    });
                }
            }
        }
        if let Some(lu) = &rules.loop_until
            && !passed
        {
            let (ok, reason) = validators::check(run, cell, lu, &composite, attempt).await?;
            if !ok {
                run.set_state("last_validation_error", json!(reason));
                failed.validation = reason;
                if attempt < max_attempts {
                    continue;
                }
                // Observed behaviour, kept: an exhausted `loop_until` keeps the last output.
                run.warn(format!(
                    "cell `{}`: loop_until never passed in {max_attempts} attempt(s); keeping the last output",
                    cell.name
                ));
            }
        }
        if let Some(reason) = wards::post(run, cell, &wards::text_of(&output)).await? {
            failed.validation = reason;
            if attempt < max_attempts {
                continue;
            }
            wards::exhausted(run, cell, max_attempts, &failed.validation);
        }
        break;
    }
    Ok(output)
}

/// The re-ask before attempt `attempt`: `retry_instructions` (or the default) with why the last one
/// failed, recorded as a `retry` event.
async fn re_ask(
    run: &mut Run<'_>,
    cell: &Cell,
    rules: &Rules,
    failed: &Failures,
    attempt: u32,
    max_attempts: u32,
    messages: &mut Vec<Message>,
) -> Result<()> {
    let mut vars = run.template_ctx();
    vars["validation_error"] = json!(failed.validation);
    vars["schema_error"] = json!(failed.schema);
    vars["attempt"] = json!(attempt);
    vars["max_attempts"] = json!(max_attempts);
    let text = match &rules.retry_instructions {
        Some(t) => render(run, cell, t, &vars, "retry_instructions").await?,
        None => {
            let why = if failed.schema.is_empty() {
                &failed.validation
            } else {
                &failed.schema
            };
            format!("{DEFAULT_RETRY}: {why}\nPlease try again.")
        }
    };
    let mut e = run.emit.event(EventKind::Retry, Some(&cell.name));
    e.attempt = Some(i32::try_from(attempt).unwrap_or(i32::MAX) - 1);
    e.content = json!(text);
    run.emit.send(e).await;
    messages.push(Message::user(text));
    Ok(())
}

/// The turns of one attempt (`max_turns`, nudged with `turn_prompt`), each judged by the turn wards;
/// `loop_until` may end them early. Returns the last turn's text, that text with the tool results,
/// and whether `loop_until` passed.
async fn turn_loop(
    run: &mut Run<'_>,
    cell: &Cell,
    rules: &Rules,
    turns: &mut Turns,
    messages: &mut Vec<Message>,
    attempt: u32,
) -> Result<(String, String, bool)> {
    let max_turns = rules.max_turns.unwrap_or(1).max(1);
    let stop_early = rules.stop_when_no_tool_calls == Some(true);
    let mut text = String::new();
    let mut composite = String::new();
    for turn in 1..=max_turns {
        if turn > 1 {
            let mut vars = run.template_ctx();
            // 0-based, as the corpus's turn prompts expect (`turn == 1` on the second call).
            vars["turn"] = json!(turn - 1);
            vars["max_turns"] = json!(max_turns);
            let nudge = match &rules.turn_prompt {
                Some(t) => render(run, cell, t, &vars, "turn_prompt").await?,
                None => DEFAULT_CONTINUE.to_owned(),
            };
            messages.push(Message::user(nudge));
        }
        let (turn_text, results, made_calls) = turns.turn(run, cell, messages, attempt, turn).await?;
        text = turn_text;
        composite = if results.is_empty() {
            text.clone()
        } else {
            format!("{text}\n\nTool Execution Results:\n{results}")
        };
        wards::turn(run, cell, &composite).await?;
        if let Some(lu) = &rules.loop_until
            && turn < max_turns
        {
            let (ok, _) = validators::check(run, cell, lu, &composite, attempt).await?;
            if ok {
                return Ok((text, composite, true));
            }
        }
        if stop_early && !made_calls {
            break;
        }
        if turns.route.is_some() && stop_early {
            break;
        }
    }
    Ok((text, composite, false))
}

/// `context.from` (basic): the outputs of named cells, `previous`/`prev`, `first` or `all`, as user
/// messages, after the cascade input when `include_input` (default true). Returns whether anything was
/// injected.
async fn inject_context(run: &mut Run<'_>, cell: &Cell, messages: &mut Vec<Message>) -> bool {
    let Some(ctx) = &cell.context else { return false };
    let Some(from) = &ctx.from else { return false };
    let exclude: Vec<&str> = ctx.exclude.iter().flatten().map(String::as_str).collect();
    let mut names: Vec<String> = Vec::new();
    for f in from {
        let want = f.name();
        let picked: Vec<String> = match want {
            "all" => run.lineage.iter().map(|l| l.cell.clone()).collect(),
            "previous" | "prev" => run.lineage.last().map(|l| l.cell.clone()).into_iter().collect(),
            "first" => run.lineage.first().map(|l| l.cell.clone()).into_iter().collect(),
            name => vec![name.to_owned()],
        };
        for p in picked {
            if !exclude.contains(&p.as_str()) && !names.contains(&p) {
                names.push(p);
            }
        }
    }
    let mut injected = Vec::new();
    if ctx.include_input != Some(false) && !run.input.as_object().is_some_and(|m| m.is_empty()) {
        messages.push(Message::user(format!("## Input\n{}", run.input)));
    }
    for name in names {
        if let Some(out) = run.outputs.get(&name) {
            let text = match out {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            messages.push(Message::user(format!("## Output of `{name}`\n{text}")));
            injected.push(name);
        }
    }
    let mut e = run.emit.event(EventKind::ContextInjected, Some(&cell.name));
    e.content = json!(injected);
    run.emit.send(e).await;
    !injected.is_empty()
}

async fn render(run: &Run<'_>, cell: &Cell, source: &str, vars: &Value, place: &str) -> Result<String> {
    run.templates
        .render(source, vars)
        .await
        .map_err(|e| e.into_cell_error(&cell.name, place))
}

async fn validation_event(run: &mut Run<'_>, cell: &Cell, check: &str, passed: bool, reason: &str) {
    let mut e = run.emit.event(EventKind::Validation, Some(&cell.name));
    e.metadata = json!({"check": check, "passed": passed});
    e.content = json!(reason);
    run.emit.send(e).await;
}
