//! LLM cells (§4): rendered instructions, context, the turn loop with tools (native and prompt-described),
//! `route_to`, `output_schema` with corrective re-asks, `loop_until`, `output_extraction`.
//!
//! [`run`] reads as its steps: render the instructions, choose the tools offered ([`Offer`]), build the
//! opening messages, then attempts ([`attempts`]) of turns ([`turn_loop`]; one turn is
//! [`Turns::turn`], its provider calls `call.rs`) until the output passes its checks.

use rvbbit_cascade::model::{Cell, Handoff, Rules, ValidatorSpec};
use rvbbit_core::EventKind;
use rvbbit_llm::{ChatRequest, ChatResponse, Expect, Expected, Message, ToolCall, ToolDefinition};
use serde_json::{Value, json};

use super::call::{call_model, resolve_model};
use super::deterministic::call_tool;
use super::output::{check_schema, extract};
use super::tool_calls::{self, Parsed};
use super::{validators, wards};
use crate::error::{Error, Result};
use crate::run::{CellResult, Run};
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

/// The tools a cell offers the model: its traits, plus `route_to` when there is a real choice (§3.5).
struct Offer<'c> {
    handoffs: Vec<&'c Handoff>,
    route: bool,
    /// `(name, description, parameters)` of every tool offered, `route_to` last.
    described: Vec<(String, String, Value)>,
    native: bool,
}

impl<'c> Offer<'c> {
    fn of(run: &Run<'_>, cell: &'c Cell) -> Result<Self> {
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
        let route = handoffs.len() > 1
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
        if route {
            described.push((
                "route_to".into(),
                "Choose the next step of the workflow.".into(),
                json!({"type": "object", "properties": {"target": {"type": "string", "enum": cell.handoff_targets()}}, "required": ["target"]}),
            ));
        }
        Ok(Offer {
            handoffs,
            route,
            described,
            native: cell.use_native_tools == Some(true),
        })
    }
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
    messages.push(Message::user(task));
    let mut prompt = run.emit.event(EventKind::Prompt, Some(&cell.name));
    prompt.content = json!(messages.last().map(Message::text));
    run.emit.send(prompt).await;
    messages
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
    /// The turn machinery of `cell` with the tools of `offer`.
    fn new(run: &Run<'_>, cell: &Cell, offer: Offer<'_>) -> Self {
        let (model, fallbacks) = resolve_model(run, cell);
        let native_defs: Vec<ToolDefinition> = if offer.native {
            offer
                .described
                .iter()
                .map(|(n, d, p)| ToolDefinition::new(n, d, p.clone()))
                .collect()
        } else {
            Vec::new()
        };
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
        Turns {
            model,
            fallbacks,
            native_defs,
            native: offer.native,
            route: None,
            tool_ctx,
            offered: offer.described.into_iter().map(|(n, _, _)| n).collect(),
        }
    }

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
