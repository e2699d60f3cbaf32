//! `request_decision` and `ask_human_custom` (OBSERVABILITY.md §7, checkpoint type `choice` /
//! `decision`): human tools the engine answers itself, from an LLM cell's tool call or a deterministic
//! `tool:` cell, through the one wait of `hitl.rs` (signal, checkpoint with the continuation, session
//! `waiting`; answered by `rvbbit signal send`, the HTTP API or a terminal, resumable).
//!
//! - `request_decision(question, options, context?, severity?, html?, timeout_seconds?)`: a choice among
//!   `options` (`{id, label, description}` or strings). The answer must be one of them (by id or
//!   label); anything else is refused when sent and the run keeps waiting. Result
//!   `{"selected": id, "label": label}`.
//! - `ask_human_custom(question, fields?, options?, ui_hint?, context?, data?, layout_hint?, html?,
//!   images?, ui_spec?, timeout_seconds?)`: a form. The declared `fields` (see [`Field::parse`]) are
//!   recorded in the wait and the answer, a JSON object, is checked against them; without fields,
//!   `options` make one choice field `selected` and `ui_hint: confirmation` one boolean field
//!   `confirmed`. Everything else given is kept as the question's `ui` for the screen that shows it.

use std::time::Duration;

use rvbbit_cascade::model::Cell;
use serde_json::{Map, Value, json};

use crate::error::Result;
use crate::human::{Choice, Field, Question, QuestionKind};
use crate::run::Run;

use super::hitl;

/// The human tools answered here.
pub(crate) const TOOLS: &[&str] = &["request_decision", "ask_human_custom"];

/// The longest wait a call may ask for (`timeout_seconds`), 30 days.
const MAX_WAIT_SECONDS: u64 = 30 * 24 * 3600;

/// Ask the question of the human tool `name` with `args`. Returns the tool result (`Err` holds what is
/// wrong with the arguments, or that nobody answered in time); the engine's error when the run
/// suspends ([`crate::Error::Waiting`]) or the store fails.
pub(crate) async fn call(
    run: &mut Run<'_>,
    cell: &Cell,
    name: &str,
    args: &Value,
) -> Result<std::result::Result<Value, String>> {
    let question = match build(run, cell, name, args) {
        Ok(q) => q,
        Err(e) => return Ok(Err(e)),
    };
    let options = question.options.clone();
    let Some(answer) = hitl::ask(run, cell, question).await? else {
        return Ok(Err("no human answered in time".into()));
    };
    let mut answer = answer;
    if name == "request_decision"
        && let Some(selected) = answer.get("selected").cloned()
        && let Some(m) = answer.as_object_mut()
        && let Some(choice) = options.iter().find(|c| c.value == selected)
    {
        m.insert("label".into(), json!(choice.label));
    }
    Ok(Ok(answer))
}

/// The question a call asks, or what is wrong with its arguments.
fn build(run: &Run<'_>, cell: &Cell, name: &str, args: &Value) -> std::result::Result<Question, String> {
    let Some(args) = args.as_object() else {
        return Err(format!("`{name}` takes an object of arguments, not {args}"));
    };
    let prompt = ["question", "prompt", "message", "title"]
        .iter()
        .find_map(|k| args.get(*k).and_then(Value::as_str))
        .map(str::trim)
        .filter(|q| !q.is_empty())
        .ok_or_else(|| format!("`{name}` needs a `question` (a non-empty string)"))?
        .to_owned();
    let timeout = match args.get("timeout_seconds").or_else(|| args.get("timeout")) {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .filter(|s| (1..=MAX_WAIT_SECONDS).contains(s))
                .map(Duration::from_secs)
                .ok_or_else(|| {
                    format!(
                        "`timeout_seconds` must be a whole number of seconds from 1 to {MAX_WAIT_SECONDS}"
                    )
                })?,
        ),
    };
    let options = options(args.get("options"))?;
    let kind = if name == "request_decision" {
        if options.is_empty() {
            return Err(
                "`request_decision` needs `options`: a list of {id, label, description} or strings".into(),
            );
        }
        QuestionKind::Choice
    } else {
        QuestionKind::Form
    };
    let mut question = hitl::question(run, cell, kind, prompt, timeout);
    question.hint = args.get("context").and_then(Value::as_str).map(str::to_owned);
    let mut ui = Map::new();
    for key in [
        "severity",
        "html",
        "data",
        "ui_hint",
        "layout_hint",
        "images",
        "ui_spec",
        "allow_custom",
    ] {
        if let Some(v) = args.get(key).filter(|v| !v.is_null()) {
            ui.insert(key.to_owned(), v.clone());
        }
    }
    if kind == QuestionKind::Choice {
        // Descriptions are shown with the options; the answer is the id.
        let described: Vec<Value> = args
            .get("options")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|o| o.get("description").is_some())
            .cloned()
            .collect();
        if !described.is_empty() {
            ui.insert("options".into(), Value::Array(described));
        }
        question.options = options;
    } else {
        question.fields = fields(args, options)?;
    }
    question.ui = (!ui.is_empty()).then_some(Value::Object(ui));
    Ok(question)
}

/// The options of a call: strings, or objects with `id` (or `value`) and `label`.
fn options(given: Option<&Value>) -> std::result::Result<Vec<Choice>, String> {
    let Some(given) = given.filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let Some(items) = given.as_array() else {
        return Err(format!("`options` must be a list, not {given}"));
    };
    let mut out: Vec<Choice> = Vec::new();
    for item in items {
        let choice = match item {
            Value::Object(m) => {
                let value = m
                    .get("id")
                    .or_else(|| m.get("value"))
                    .or_else(|| m.get("label"))
                    .cloned()
                    .ok_or_else(|| format!("an option has no `id`, `value` or `label`: {item}"))?;
                let label = m
                    .get("label")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .unwrap_or_else(|| value.as_str().map_or_else(|| value.to_string(), str::to_owned));
                Choice { label, value }
            }
            other => hitl::choice(other),
        };
        if out.iter().any(|c| c.value == choice.value) {
            return Err(format!("two options have the value {}", choice.value));
        }
        out.push(choice);
    }
    Ok(out)
}

/// The fields of an `ask_human_custom` call: `fields` as declared; else one choice field `selected`
/// over `options`; else one boolean `confirmed` for `ui_hint: confirmation`; else none (any object).
fn fields(args: &Map<String, Value>, options: Vec<Choice>) -> std::result::Result<Vec<Field>, String> {
    if let Some(given) = args.get("fields").filter(|v| !v.is_null()) {
        let Some(items) = given.as_array() else {
            return Err(format!("`fields` must be a list, not {given}"));
        };
        let mut out: Vec<Field> = Vec::new();
        for item in items {
            let field = Field::parse(item, hitl::choice)?;
            if out.iter().any(|f| f.name == field.name) {
                return Err(format!("two fields are named `{}`", field.name));
            }
            out.push(field);
        }
        return Ok(out);
    }
    let spec = if !options.is_empty() {
        let values: Vec<Value> = options
            .iter()
            .map(|c| json!({"value": c.value, "label": c.label}))
            .collect();
        json!({"name": "selected", "type": "choice", "options": values})
    } else if args.get("ui_hint").and_then(Value::as_str) == Some("confirmation") {
        json!({"name": "confirmed", "type": "boolean"})
    } else {
        return Ok(Vec::new());
    };
    Field::parse(&spec, hitl::choice).map(|f| vec![f])
}
