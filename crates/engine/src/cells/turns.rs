//! The turns of an LLM cell (§4.3, §4.4): the tools offered ([`Offer`]) and one turn ([`Turns::turn`]):
//! a provider call, its tool calls (native or parsed from the text), one follow-up call and its tool
//! calls. A tool failure becomes an `Error: ...` text for the model.

use rvbbit_cascade::model::{Cell, Handoff};
use rvbbit_llm::{ChatRequest, ChatResponse, Expect, Expected, Message, ToolCall, ToolDefinition};
use serde_json::{Value, json};

use super::call::{call_model, resolve_model};
use super::deterministic::call_tool;
use super::tool_calls::{self, Parsed};
use crate::error::Result;
use crate::run::Run;
use crate::tools::{IMAGES_KEY, ToolContext};

/// The tools a cell offers the model: its traits, plus `route_to` when there is a real choice (§3.5).
pub(crate) struct Offer<'c> {
    pub(crate) handoffs: Vec<&'c Handoff>,
    pub(crate) route: bool,
    /// `(name, description, parameters)` of every tool offered, `route_to` last.
    pub(crate) described: Vec<(String, String, Value)>,
    pub(crate) native: bool,
    /// Tools the cell names that nobody provides: not offered; a call to one fails as a tool error the
    /// model sees (LARS runs such cells too).
    pub(crate) missing: Vec<String>,
}

impl<'c> Offer<'c> {
    pub(crate) fn of(run: &Run<'_>, cell: &'c Cell) -> Result<Self> {
        let mut tools = Vec::new();
        let mut missing = Vec::new();
        for name in cell.trait_names() {
            match run.engine.registry.resolve(name) {
                Some(t) => tools.push(t),
                // Routing listed as a skill: `route_to` is offered below when there is a choice.
                None if name == "route_to" => {}
                None => missing.push(name.to_owned()),
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
            missing,
        })
    }
}

/// Per-cell turn machinery.
pub(crate) struct Turns {
    model: String,
    fallbacks: Vec<String>,
    native_defs: Vec<ToolDefinition>,
    native: bool,
    pub(crate) route: Option<String>,
    tool_ctx: ToolContext,
    /// Names of the tools offered (including `route_to`).
    offered: Vec<String>,
    /// Images tool calls returned (`read_image`), attached after the tool results of the turn.
    images: Vec<String>,
}

impl Turns {
    /// The turn machinery of `cell` with the tools of `offer`.
    pub(crate) fn new(run: &Run<'_>, cell: &Cell, offer: Offer<'_>) -> Self {
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
            scope: Some(run.tool_scope()),
            sandbox: run.sandbox_scope(cell),
            idempotency_key: None,
        };
        Turns {
            model,
            fallbacks,
            native_defs,
            native: offer.native,
            route: None,
            tool_ctx,
            offered: offer.described.into_iter().map(|(n, _, _)| n).collect(),
            images: Vec::new(),
        }
    }

    /// One turn: a call, its tool calls, one follow-up call, and the follow-up's tool calls (§4.4).
    /// Returns the turn's text, the tool results as text, and whether tools were called.
    pub(crate) async fn turn(
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
        // Tool messages carry text only: images a tool returned follow as a user message of image
        // parts, which vision models read (OpenAI-compatible `image_url` parts).
        if !self.images.is_empty() {
            let parts = std::mem::take(&mut self.images)
                .into_iter()
                .map(|url| rvbbit_llm::Part::Image { url })
                .collect();
            messages.push(Message::user_with_images("The images the tools returned:", parts));
        }
        Ok(())
    }

    /// Run one call; every failure becomes an `Error: ...` text for the model (§4.3), except a wait for
    /// a human that suspends the run (`ask_human`, `request_decision`, `ask_human_custom`) and
    /// cancellation.
    async fn run_call(&mut self, run: &mut Run<'_>, cell: &Cell, call: &Call) -> Result<String> {
        let args = match &call.arguments {
            Ok(a) => a.clone(),
            Err(e) => return Ok(format!("Error: {e}")),
        };
        if call.name == "ask_human" && cell.trait_names().contains(&"ask_human") {
            return crate::cells::hitl::ask_human(run, cell, &args).await;
        }
        if super::human_tools::TOOLS.contains(&call.name.as_str())
            && cell.trait_names().contains(&call.name.as_str())
        {
            return Ok(
                match super::human_tools::call(run, cell, &call.name, &args).await? {
                    Ok(answer) => answer.to_string(),
                    Err(e) => format!("Error: {e}"),
                },
            );
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
        let Some(tool) = run.engine.registry.resolve(&call.name).filter(|_| listed) else {
            return format!(
                "Error: unknown tool `{}`; available: {}",
                call.name,
                cell.trait_names().join(", ")
            );
        };
        self.tool_ctx.outputs = run.outputs.clone();
        match call_tool(run, cell, tool.as_ref(), args, &self.tool_ctx, None, 1).await {
            Ok(Value::String(s)) => s,
            Ok(Value::Object(mut m)) if m.contains_key(IMAGES_KEY) => {
                if let Some(Value::Array(urls)) = m.remove(IMAGES_KEY) {
                    self.images
                        .extend(urls.into_iter().filter_map(|u| u.as_str().map(str::to_owned)));
                }
                Value::Object(m).to_string()
            }
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
