//! LLM cells (§4): rendered instructions, context, the turn loop with tools (native and prompt-described),
//! `route_to`, `output_schema` with corrective re-asks, `loop_until`, `output_extraction`.

use std::time::Instant;

use rvbbit_cascade::model::{Cell, Handoff, ModelSpec};
use rvbbit_core::{CostStatus, EventKind, Tokens};
use rvbbit_llm::{ChatRequest, ChatResponse, Expect, Expected, Message, ToolCall, ToolDefinition};
use serde_json::{Value, json};
use tracing::Instrument;

use super::tool_calls::{self, Parsed};
use super::validators;
use crate::cells::deterministic::call_tool;
use crate::error::{Error, Result};
use crate::run::{CellResult, Run, micros};
use crate::tools::ToolContext;

/// The nudge sent on turns after the first when the cell has no `turn_prompt`.
pub(crate) const DEFAULT_CONTINUE: &str =
    "Continue, or refine your previous output if it can be improved; if it is complete, repeat it as is.";

/// The text of a re-ask after a failed check when the cell has no `retry_instructions`.
const DEFAULT_RETRY: &str = "Your previous answer did not pass validation";

/// Features of LLM cells this build does not run yet.
fn unsupported(cell: &Cell) -> Option<&'static str> {
    if cell.candidates.is_some() {
        return Some("candidates (takes/soundings)");
    }
    if matches!(&cell.traits, Some(rvbbit_cascade::model::Traits::One(t)) if t == "manifest") {
        return Some("traits: manifest");
    }
    if cell.rag.is_some() {
        return Some("rag");
    }
    if cell.image_config.is_some() {
        return Some("image_config");
    }
    None
}

/// §4.6 Proposed: cell `model` → the run's override (`--model`) → cascade `model` → the default.
pub(crate) fn resolve_model(run: &Run<'_>, cell: &Cell) -> (String, Vec<String>) {
    match &cell.model {
        Some(ModelSpec::One(m)) => (m.clone(), Vec::new()),
        Some(ModelSpec::Chain(chain)) if !chain.is_empty() => (chain[0].clone(), chain[1..].to_vec()),
        _ => (
            run.model_override
                .clone()
                .or_else(|| run.cascade.model.clone())
                .unwrap_or_else(|| run.engine.default_model.clone()),
            Vec::new(),
        ),
    }
}

pub(crate) async fn run(run: &mut Run<'_>, cell: &Cell) -> Result<CellResult> {
    if let Some(feature) = unsupported(cell) {
        return Err(Error::Unsupported {
            cell: cell.name.clone(),
            feature: feature.into(),
        });
    }
    let (model, fallbacks) = resolve_model(run, cell);
    let vars = run.template_ctx();
    let instructions = render(
        run,
        cell,
        cell.instructions.as_deref().unwrap_or(""),
        &vars,
        "instructions",
    )
    .await?;

    // Tools offered: the cell's traits, plus route_to when there is a real choice (§3.5).
    let mut tools = Vec::new();
    for name in cell.trait_names() {
        match run.engine.registry.get(name) {
            Some(t) => tools.push(t.clone()),
            None => {
                return Err(Error::Unsupported {
                    cell: cell.name.clone(),
                    feature: format!(
                        "the tool `{name}` (not in the registry: {})",
                        run.engine.registry.names().join(", ")
                    ),
                });
            }
        }
    }
    let handoffs: Vec<&Handoff> = cell.handoffs.iter().flatten().collect();
    let offer_route = handoffs.len() > 1
        || handoffs.iter().any(|h| {
            matches!(
                h,
                Handoff::Described {
                    description: Some(_),
                    ..
                }
            )
        });
    let mut described: Vec<(String, String, Value)> = tools
        .iter()
        .map(|t| (t.name().to_owned(), t.description().to_owned(), t.parameters()))
        .collect();
    if offer_route {
        described.push((
            "route_to".into(),
            "Choose the next step of the workflow.".into(),
            json!({"type": "object", "properties": {"target": {"type": "string", "enum": cell.handoff_targets()}}, "required": ["target"]}),
        ));
    }
    let native = cell.use_native_tools == Some(true);

    // Messages (§4.2).
    let mut messages = Vec::new();
    let injected = inject_context(run, cell, &mut messages).await;
    if !native && !described.is_empty() {
        messages.push(Message::system(tool_calls::describe(&described)));
    }
    let mut task = if injected {
        format!("## New Task\n{instructions}")
    } else {
        instructions
    };
    if offer_route {
        task.push_str(
            "\n\n## Routing Options\nWhen you are done, call `route_to` with one of these targets:\n",
        );
        for h in &handoffs {
            match h {
                Handoff::Described {
                    target,
                    description: Some(d),
                } => task.push_str(&format!("- {target}: {d}\n")),
                other => task.push_str(&format!("- {}\n", other.target())),
            }
        }
    }
    let rules = cell.rules.clone().unwrap_or_default();
    if let Some(lu) = &rules.loop_until
        && rules.loop_until_silent != Some(true)
    {
        let req = match (&rules.loop_until_prompt, lu) {
            (Some(p), _) => p.clone(),
            (None, rvbbit_cascade::model::ValidatorSpec::Name(n)) => {
                format!("Your output will be checked by the validator `{n}`.")
            }
            (None, _) => "Your output will be checked by a validator.".into(),
        };
        task.push_str(&format!("\n\n## Validation Requirement\n{req}"));
    }
    messages.push(Message::user(task));
    let mut prompt = run.emit.event(EventKind::Prompt, Some(&cell.name));
    prompt.content = json!(messages.last().map(Message::text));
    run.emit.send(prompt).await;

    let native_defs: Vec<ToolDefinition> = if native {
        described
            .iter()
            .map(|(n, d, p)| ToolDefinition::new(n, d, p.clone()))
            .collect()
    } else {
        Vec::new()
    };
    let max_turns = rules.max_turns.unwrap_or(1).max(1);
    let max_attempts = super::wards::attempt_budget(cell);
    let stop_early = rules.stop_when_no_tool_calls == Some(true);
    let tool_ctx = ToolContext {
        session_id: run.session_id.clone(),
        cell_name: cell.name.clone(),
        session_dir: run.session_dir.clone(),
        state: run.state.clone(),
        outputs: run.outputs.clone(),
        previous: run.lineage.last().map(|l| l.output.clone()),
        input: run.input.clone(),
        timeout: None,
        scope: Some(run.scope()),
    };
    let mut turn_state = Turns {
        model,
        fallbacks,
        native_defs,
        native,
        route: None,
        tool_ctx,
        offered: described.iter().map(|(n, _, _)| n.clone()).collect(),
    };

    let mut output = Value::String(String::new());
    let mut validation_error = String::new();
    let mut schema_error = String::new();
    for attempt in 1..=max_attempts {
        if attempt > 1 {
            let mut vars = run.template_ctx();
            vars["validation_error"] = json!(validation_error);
            vars["schema_error"] = json!(schema_error);
            vars["attempt"] = json!(attempt);
            vars["max_attempts"] = json!(max_attempts);
            let text = match &rules.retry_instructions {
                Some(t) => render(run, cell, t, &vars, "retry_instructions").await?,
                None => {
                    let why = if schema_error.is_empty() {
                        &validation_error
                    } else {
                        &schema_error
                    };
                    format!("{DEFAULT_RETRY}: {why}\nPlease try again.")
                }
            };
            let mut e = run.emit.event(EventKind::Retry, Some(&cell.name));
            e.attempt = Some(i32::try_from(attempt).unwrap_or(i32::MAX) - 1);
            e.content = json!(text);
            run.emit.send(e).await;
            messages.push(Message::user(text));
        }
        let mut text = String::new();
        let mut composite = String::new();
        let mut passed = false;
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
            let (turn_text, results, made_calls) =
                turn_state.turn(run, cell, &mut messages, attempt, turn).await?;
            text = turn_text;
            composite = if results.is_empty() {
                text.clone()
            } else {
                format!("{text}\n\nTool Execution Results:\n{results}")
            };
            super::wards::turn(run, cell, &composite).await?;
            if let Some(lu) = &rules.loop_until
                && turn < max_turns
            {
                let (ok, _) = validators::check(run, cell, lu, &composite, attempt).await?;
                if ok {
                    passed = true;
                    break;
                }
            }
            if stop_early && !made_calls {
                break;
            }
            if turn_state.route.is_some() && stop_early {
                break;
            }
        }
        output = Value::String(text.clone());
        if let Some(schema) = &cell.output_schema {
            match check_schema(schema, &text) {
                Ok(parsed) => {
                    schema_error.clear();
                    run.set_state("validated_output", parsed.clone());
                    validation_event(run, cell, "output_schema", true, "").await;
                    output = parsed;
                }
                Err(err) => {
                    run.set_state("last_schema_error", json!(err));
                    validation_event(run, cell, "output_schema", false, &err).await;
                    schema_error = err;
                    if attempt < max_attempts {
                        continue;
                    }
                    return Err(Error::SchemaUnsatisfied {
                        cell: cell.name.clone(),
                        attempts: max_attempts,
                        error: schema_error,
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
                validation_error = reason;
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
        if let Some(reason) = super::wards::post(run, cell, &super::wards::text_of(&output)).await? {
            validation_error = reason;
            if attempt < max_attempts {
                continue;
            }
            super::wards::exhausted(run, cell, max_attempts, &validation_error);
        }
        break;
    }
    if let Some(ex) = &cell.output_extraction {
        extract(run, cell, ex, &output)?;
    }
    Ok(CellResult {
        output,
        route: turn_state.route,
    })
}

/// Per-cell turn machinery.
struct Turns {
    model: String,
    fallbacks: Vec<String>,
    native_defs: Vec<ToolDefinition>,
    native: bool,
    route: Option<String>,
    tool_ctx: ToolContext,
    /// Names of the tools offered (including `route_to`).
    offered: Vec<String>,
}

impl Turns {
    /// One turn: a call, its tool calls, one follow-up call, and the follow-up's tool calls (§4.4).
    /// Returns the turn's text, the tool results as text, and whether tools were called.
    async fn turn(
        &mut self,
        run: &mut Run<'_>,
        cell: &Cell,
        messages: &mut Vec<Message>,
        attempt: u32,
        turn: u32,
    ) -> Result<(String, String, bool)> {
        let mut results = String::new();
        let reply = self.call(run, cell, messages, attempt, turn).await?;
        let calls = self.calls_of(&reply);
        if calls.is_empty() {
            messages.push(Message::assistant(reply.text.clone()));
            return Ok((reply.text, results, false));
        }
        self.push_assistant(messages, &reply);
        self.run_calls(run, cell, messages, calls, &mut results).await?;
        let follow = self.call(run, cell, messages, attempt, turn).await?;
        let more = self.calls_of(&follow);
        if more.is_empty() {
            messages.push(Message::assistant(follow.text.clone()));
        } else {
            self.push_assistant(messages, &follow);
            self.run_calls(run, cell, messages, more, &mut results).await?;
        }
        Ok((follow.text, results, true))
    }

    fn push_assistant(&self, messages: &mut Vec<Message>, reply: &ChatResponse) {
        if self.native {
            messages.push(Message::assistant_tool_calls(
                reply.text.clone(),
                reply.tool_calls.clone(),
            ));
        } else {
            messages.push(Message::assistant(reply.text.clone()));
        }
    }

    /// The calls of a reply: native tool calls, or calls parsed from the text (a malformed call becomes
    /// an error returned to the model).
    fn calls_of(&self, reply: &ChatResponse) -> Vec<Call> {
        if self.native {
            return reply
                .tool_calls
                .iter()
                .map(|c: &ToolCall| Call {
                    id: c.id.clone(),
                    name: c.name.clone(),
                    arguments: c
                        .arguments_json()
                        .map_err(|e| format!("the arguments are not valid JSON: {e}")),
                })
                .collect();
        }
        if self.offered.is_empty() {
            return Vec::new();
        }
        match tool_calls::parse(&reply.text) {
            Ok(parsed) => parsed
                .into_iter()
                .filter(|p| p.explicit || self.offered.contains(&p.name))
                .enumerate()
                .map(|(i, Parsed { name, arguments, .. })| Call {
                    id: format!("call_{i}"),
                    name,
                    arguments: Ok(arguments),
                })
                .collect(),
            Err(e) => vec![Call {
                id: "call_0".into(),
                name: "(unparsed)".into(),
                arguments: Err(e),
            }],
        }
    }

    async fn run_calls(
        &mut self,
        run: &mut Run<'_>,
        cell: &Cell,
        messages: &mut Vec<Message>,
        calls: Vec<Call>,
        results: &mut String,
    ) -> Result<()> {
        let mut prompt_results = Vec::new();
        for call in calls {
            let text = self.run_call(run, cell, &call).await?;
            results.push_str(&format!("[{}]:\n{text}\n", call.name));
            if self.native {
                messages.push(Message::tool_result(call.id.clone(), text));
            } else {
                prompt_results.push(format!("Tool Result ({}):\n{text}", call.name));
            }
        }
        if !prompt_results.is_empty() {
            messages.push(Message::user(prompt_results.join("\n\n")));
        }
        Ok(())
    }

    /// Run one call; every failure becomes an `Error: ...` text for the model (§4.3), except a wait for
    /// a human that suspends the run (`ask_human`) and cancellation.
    async fn run_call(&mut self, run: &mut Run<'_>, cell: &Cell, call: &Call) -> Result<String> {
        let args = match &call.arguments {
            Ok(a) => a.clone(),
            Err(e) => return Ok(format!("Error: {e}")),
        };
        if call.name == "ask_human" && cell.trait_names().contains(&"ask_human") {
            return crate::cells::hitl::ask_human(run, cell, &args).await;
        }
        Ok(self.run_registered(run, cell, call, args).await)
    }

    async fn run_registered(&mut self, run: &mut Run<'_>, cell: &Cell, call: &Call, args: Value) -> String {
        if call.name == "route_to" {
            let target = args.get("target").and_then(Value::as_str).unwrap_or("");
            let targets = cell.handoff_targets();
            return if targets.contains(&target) {
                self.route = Some(target.to_owned());
                format!("Routing to {target}.")
            } else {
                format!(
                    "Error: `{target}` is not a valid target; choose one of: {}",
                    targets.join(", ")
                )
            };
        }
        let listed = cell.trait_names().contains(&call.name.as_str());
        let Some(tool) = run.engine.registry.get(&call.name).cloned().filter(|_| listed) else {
            return format!(
                "Error: unknown tool `{}`; available: {}",
                call.name,
                cell.trait_names().join(", ")
            );
        };
        self.tool_ctx.outputs = run.outputs.clone();
        match call_tool(run, cell, tool.as_ref(), args, &self.tool_ctx, None, 1).await {
            Ok(Value::String(s)) => s,
            Ok(v) => v.to_string(),
            Err(e) => format!("Error: {e}"),
        }
    }

    /// One provider call with its `llm_response` (or `llm_error`) event. The cascade's `token_budget`
    /// may prune `messages` first (`budget.rs`); a candidate branch's sampling settings apply.
    async fn call(
        &self,
        run: &mut Run<'_>,
        cell: &Cell,
        messages: &mut Vec<Message>,
        attempt: u32,
        turn: u32,
    ) -> Result<ChatResponse> {
        super::budget::enforce(run, cell, &self.model, messages).await?;
        let mut request = ChatRequest::new(self.model.clone(), messages.to_vec())
            .with_tools(self.native_defs.clone())
            .with_fallbacks(self.fallbacks.clone());
        request.temperature = run.sampling.temperature;
        request.max_tokens = run.sampling.max_tokens;
        let routes = if self.offered.iter().any(|t| t == "route_to") {
            cell.handoff_targets().into_iter().map(str::to_owned).collect()
        } else {
            Vec::new()
        };
        request.expect = Some(Expect::new(
            cell.name.clone(),
            Expected::Answer {
                schema: cell.output_schema.clone(),
                routes,
            },
        ));
        if let Some(b) = &run.branch {
            request.temperature = b.temperature.or(request.temperature);
            request.max_tokens = b.max_tokens.or(request.max_tokens);
        }
        call_model(run, &cell.name, &request, Some(attempt), Some(turn)).await
    }
}

/// A tool call of the model (arguments may have failed to parse).
struct Call {
    id: String,
    name: String,
    arguments: std::result::Result<Value, String>,
}

/// Call the provider once, recording the call as an event and adding its cost to the run.
pub(crate) async fn call_model(
    run: &mut Run<'_>,
    cell: &str,
    request: &ChatRequest,
    attempt: Option<u32>,
    turn: Option<u32>,
) -> Result<ChatResponse> {
    let Some(provider) = run.engine.provider.clone() else {
        return Err(Error::CellFailed {
            cell: cell.to_owned(),
            message: "no LLM provider is configured for this run".into(),
        });
    };
    debug_assert!(
        request.expect.is_some(),
        "every engine call says what it expects (offline providers answer from it)"
    );
    run.count_llm_call();
    let span = tracing::info_span!(
        "llm_call",
        cell = %cell,
        model = %request.model,
        session_id = %run.session_id,
        caller_id = %run.emit.caller()
    );
    let started = Instant::now();
    let result = provider.chat(request).instrument(span).await;
    let kind = if result.is_ok() {
        EventKind::LlmResponse
    } else {
        EventKind::LlmError
    };
    let mut e = run.emit.event(kind, Some(cell));
    e.duration_us = Some(micros(started.elapsed()));
    e.model_requested = Some(request.model.clone());
    e.attempt = attempt.map(|a| i32::try_from(a).unwrap_or(i32::MAX) - 1);
    e.turn = turn.map(|t| i32::try_from(t).unwrap_or(i32::MAX) - 1);
    e.request = serde_json::to_value(request).ok();
    match &result {
        Ok(reply) => {
            e.model = Some(reply.model.clone());
            e.provider = Some(reply.provider.clone());
            e.request_id = reply.id.clone();
            e.content = json!(reply.text);
            e.response = serde_json::to_value(reply).ok();
            let u = &reply.usage;
            e.tokens = Tokens {
                input: i64::try_from(u.prompt_tokens()).ok(),
                output: i64::try_from(u.output).ok(),
                reasoning: i64::try_from(u.reasoning).ok(),
                cached: i64::try_from(u.cached_input).ok(),
            };
            e.cost = reply.cost.amount;
            e.cost_status = match reply.cost.status {
                rvbbit_llm::CostStatus::Exact => CostStatus::Exact,
                rvbbit_llm::CostStatus::Estimated => CostStatus::Estimated,
                _ => CostStatus::Unknown,
            };
            if let Some(c) = reply.cost.amount {
                run.add_cost(c);
            }
        }
        Err(err) => {
            e.provider = err.provider().map(str::to_owned);
            e.error = Some(json!({"code": err.code().code, "message": err.to_string(), "hint": err.hint()}));
        }
    }
    run.emit.send(e).await;
    result.map_err(|source| Error::Llm {
        cell: cell.to_owned(),
        source: Box::new(source),
    })
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

/// The JSON in a reply (the whole text, a fenced block, or the outermost `{...}`/`[...]`).
pub(crate) fn extract_json(text: &str) -> Option<Value> {
    let t = text.trim();
    if let Ok(v) = serde_json::from_str(t) {
        return Some(v);
    }
    if let Some(start) = t.find("```") {
        let after = &t[start + 3..];
        let body = after.find('\n').map(|i| &after[i + 1..]).unwrap_or(after);
        if let Some(end) = body.find("```")
            && let Ok(v) = serde_json::from_str(body[..end].trim())
        {
            return Some(v);
        }
    }
    for (open, close) in [('{', '}'), ('[', ']')] {
        if let (Some(s), Some(e)) = (t.find(open), t.rfind(close))
            && s < e
            && let Ok(v) = serde_json::from_str(&t[s..=e])
        {
            return Some(v);
        }
    }
    None
}

/// Validate the reply against `schema`; the parsed JSON, or why it does not fit.
fn check_schema(schema: &Value, text: &str) -> std::result::Result<Value, String> {
    let Some(value) = extract_json(text) else {
        return Err("the reply contains no JSON".into());
    };
    let validator =
        jsonschema::validator_for(schema).map_err(|e| format!("output_schema is invalid: {e}"))?;
    let errors: Vec<String> = validator
        .iter_errors(&value)
        .map(|e| {
            let path = e.instance_path().to_string();
            if path.is_empty() {
                e.to_string()
            } else {
                format!("{path}: {e}")
            }
        })
        .collect();
    if errors.is_empty() {
        Ok(value)
    } else {
        Err(errors.join("; "))
    }
}

/// `output_extraction`: a dot-all, case-insensitive regex over the output; group 1 (or the match) goes to
/// `state[store_as]`.
fn extract(
    run: &mut Run<'_>,
    cell: &Cell,
    ex: &rvbbit_cascade::model::OutputExtraction,
    output: &Value,
) -> Result<()> {
    let text = match output {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let re = regex::RegexBuilder::new(&ex.pattern)
        .dot_matches_new_line(true)
        .case_insensitive(true)
        .build()
        .map_err(|e| Error::CellFailed {
            cell: cell.name.clone(),
            message: format!("output_extraction.pattern is not a valid regex: {e}"),
        })?;
    let found = re
        .captures(&text)
        .and_then(|c| c.get(1).or_else(|| c.get(0)))
        .map(|m| m.as_str().to_owned());
    match found {
        Some(s) => {
            // `ExtractionFormat` is not re-exported by rvbbit-cascade; read its serialised name.
            let format = ex
                .format
                .and_then(|f| serde_json::to_value(f).ok())
                .and_then(|v| v.as_str().map(str::to_owned));
            let value = match format.as_deref() {
                Some("json") => serde_json::from_str(s.trim()).unwrap_or(Value::String(s)),
                Some("code") => {
                    let t = s.trim();
                    let t = t
                        .strip_prefix("```")
                        .map(|r| r.split_once('\n').map(|x| x.1).unwrap_or(r))
                        .unwrap_or(t);
                    Value::String(t.strip_suffix("```").unwrap_or(t).trim().to_owned())
                }
                _ => Value::String(s),
            };
            run.set_state(&ex.store_as, value);
            Ok(())
        }
        None if ex.required == Some(true) => Err(Error::CellFailed {
            cell: cell.name.clone(),
            message: format!("output_extraction found no match for `{}`", ex.pattern),
        }),
        None => Ok(()),
    }
}
