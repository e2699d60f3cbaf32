//! `map_cascade` and `spawn_cascade` (§5.3): tools that start child runs of the calling run.
//!
//! `map_cascade` runs a cascade file once per item of a list, at most `max_parallel` at a time, each item
//! a child session `<sid>_map_<i>_<6 hex>` of the caller; it returns the outputs in input order.
//! `spawn_cascade` starts one child session `spawned_<unix>_<6 hex>` and returns at once (the calling run
//! waits for it before it ends, as for `async_cascades`). Both link their children to the caller (parent
//! session, root, depth + 1, caller id), add their cost and calls to the caller's, and cancel them with it
//! (`children.rs`).

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use rvbbit_core::SessionStatus;
use serde_json::{Map, Value, json};

use super::{ChildRunner, SideEffect, Tool, ToolContext, ToolError, str_arg};
use crate::template::{Templates, json_parse_rule};

/// Items one `map_cascade` call may map over.
pub(crate) const MAX_ITEMS: usize = 10_000;
/// The highest `max_parallel` of a `map_cascade` call.
pub(crate) const MAX_PARALLEL: usize = 32;
/// `max_parallel` when the call gives none.
const DEFAULT_PARALLEL: usize = 5;
/// The modes `map_cascade` knows.
const MODES: &[&str] = &["aggregate"];
/// The arguments `map_cascade` knows (others, such as the design draft's `on_error`, `retry_failed` or
/// `timeout`, are refused rather than silently ignored; `_`-prefixed ones are skipped).
const MAP_ARGS: &[&str] = &[
    "cascade",
    "map_over",
    "input_key",
    "input_mapping",
    "mode",
    "max_parallel",
];

/// `map_cascade`: run a cascade file once per item, with bounded parallelism.
#[derive(Debug, Default)]
pub struct MapCascade;

/// `spawn_cascade`: start a cascade file as a child run and return its session id at once.
#[derive(Debug, Default)]
pub struct SpawnCascade;

/// The calling run's child scope, or an error naming the tool.
fn scope<'a>(tool: &str, ctx: &'a ToolContext) -> Result<&'a Arc<dyn ChildRunner>, ToolError> {
    ctx.scope
        .as_ref()
        .ok_or_else(|| ToolError::Failed(format!("`{tool}` can only be called from a run")))
}

/// The `cascade` argument, resolved like a sub-cascade `ref`.
fn cascade_path(tool: &str, args: &Value, scope: &dyn ChildRunner) -> Result<PathBuf, ToolError> {
    let reference = str_arg(args, "cascade")?;
    scope.resolve_cascade(reference).map_err(|e| {
        ToolError::InvalidArguments(format!(
            "`{tool}`: the cascade {e}; give `cascade` as a path relative to the calling cascade file \
             (or a cascade id in its traits/ directory)"
        ))
    })
}

/// A short preview of a value for error messages.
fn preview(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(80) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text,
    }
}

/// The value of text holding JSON or a Python-style literal (what a template renders a list or a dict
/// to), or `None`.
fn literal(text: &str) -> Option<Value> {
    serde_json::from_str::<Value>(text.trim())
        .ok()
        .or_else(|| super::pyliteral::parse(text))
}

/// The items of `map_over`: a JSON array, a string holding one (templates render to text), or a table
/// output (`{rows: [...]}`, as `sql_data` returns).
pub(crate) fn items(map_over: Option<&Value>) -> Result<Vec<Value>, ToolError> {
    let value = match map_over {
        None | Some(Value::Null) => {
            return Err(ToolError::InvalidArguments(
                "`map_cascade`: `map_over` is required: a JSON array of items (or a table output with `rows`)"
                    .into(),
            ));
        }
        Some(Value::String(s)) => literal(s).unwrap_or_else(|| Value::String(s.clone())),
        Some(other) => other.clone(),
    };
    let list = match value {
        Value::Array(list) => list,
        Value::Object(mut o) if o.get("rows").is_some_and(Value::is_array) => match o.remove("rows") {
            Some(Value::Array(rows)) => rows,
            _ => Vec::new(),
        },
        other => {
            return Err(ToolError::InvalidArguments(format!(
                "`map_cascade`: `map_over` must be a JSON array (or a table output with `rows`), not {}",
                preview(&other)
            )));
        }
    };
    if list.len() > MAX_ITEMS {
        return Err(ToolError::InvalidArguments(format!(
            "`map_cascade`: `map_over` has {} items, more than the limit of {MAX_ITEMS} per call; split the \
             list and map each part in a cell of its own",
            list.len()
        )));
    }
    Ok(list)
}

/// `max_parallel`: a number or a string holding one, 1 to [`MAX_PARALLEL`] (default 5).
pub(crate) fn max_parallel(value: Option<&Value>) -> Result<usize, ToolError> {
    let n = match value {
        None | Some(Value::Null) => return Ok(DEFAULT_PARALLEL),
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
        Some(_) => None,
    };
    match n {
        Some(n) if n >= 1 && n <= MAX_PARALLEL as u64 => Ok(n as usize),
        _ => Err(ToolError::InvalidArguments(format!(
            "`map_cascade`: `max_parallel` must be a whole number from 1 to {MAX_PARALLEL} (the limit of \
             child runs at once per call), not {}",
            value.map(preview).unwrap_or_default()
        ))),
    }
}

/// Every argument is one of [`MAP_ARGS`] (or starts with `_`).
fn known_args(args: &Value) -> Result<(), ToolError> {
    let unknown: Vec<&String> = args
        .as_object()
        .into_iter()
        .flat_map(Map::keys)
        .filter(|k| !k.starts_with('_') && !MAP_ARGS.contains(&k.as_str()))
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    Err(ToolError::InvalidArguments(format!(
        "`map_cascade`: unknown argument{} {}; the known arguments are {} (a failed item never stops the \
         others; a cell's `timeout` and `retry` apply to the whole call)",
        if unknown.len() == 1 { "" } else { "s" },
        unknown
            .iter()
            .map(|k| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(", "),
        MAP_ARGS
            .iter()
            .map(|k| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(", ")
    )))
}

/// The `mode`: one of [`MODES`] (default `aggregate`).
fn mode(args: &Value) -> Result<(), ToolError> {
    match args.get("mode") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(m)) if MODES.contains(&m.as_str()) => Ok(()),
        Some(other) => Err(ToolError::InvalidArguments(format!(
            "`map_cascade`: unknown `mode` {}; the known modes are {}",
            preview(other),
            MODES
                .iter()
                .map(|m| format!("`{m}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// How each item becomes a child's input.
#[derive(Clone)]
enum Shape {
    /// `{<key>: item}` (`input_key`, default `item`; an object item without `input_key` is the input).
    Key(Option<String>),
    /// `input_mapping`: each field a template over `row`/`item`, `index`, `input`, `state`, `outputs`.
    Mapping(Value, Templates),
}

impl Shape {
    fn of(args: &Value, scope: &dyn ChildRunner) -> Result<Shape, ToolError> {
        if let Some(mapping) = args.get("input_mapping").filter(|m| !m.is_null()) {
            if !mapping.is_object() {
                return Err(ToolError::InvalidArguments(format!(
                    "`map_cascade`: `input_mapping` must be an object of `field: template`, not {}",
                    preview(mapping)
                )));
            }
            return Ok(Shape::Mapping(
                mapping.clone(),
                Templates::new(scope.limits(), scope.cancel().clone()),
            ));
        }
        match args.get("input_key") {
            None | Some(Value::Null) => Ok(Shape::Key(None)),
            Some(Value::String(k)) if !k.trim().is_empty() => Ok(Shape::Key(Some(k.trim().to_owned()))),
            Some(other) => Err(ToolError::InvalidArguments(format!(
                "`map_cascade`: `input_key` must be a non-empty string, not {}",
                preview(other)
            ))),
        }
    }

    async fn input(&self, index: usize, item: Value, ctx: &ToolContext) -> Result<Value, ToolError> {
        match self {
            Shape::Key(Some(key)) => Ok(json!({ key.as_str(): item })),
            Shape::Key(None) if item.is_object() => Ok(item),
            Shape::Key(None) => Ok(json!({ "item": item })),
            Shape::Mapping(mapping, templates) => {
                let state = ctx.state.lock().map(|s| s.clone()).unwrap_or_default();
                let vars = json!({
                    "row": item, "item": item, "index": index, "input": ctx.input,
                    "state": state, "outputs": ctx.outputs,
                });
                let rendered = templates.render_value(mapping, &vars).await.map_err(|e| {
                    ToolError::InvalidArguments(format!(
                        "`map_cascade`: `input_mapping` does not render for item {index}: {e}"
                    ))
                })?;
                let fields: Map<String, Value> = match rendered {
                    Value::Object(o) => o
                        .into_iter()
                        .map(|(k, v)| match v {
                            Value::String(s) => (k, json_parse_rule(s)),
                            other => (k, other),
                        })
                        .collect(),
                    _ => Map::new(),
                };
                Ok(Value::Object(fields))
            }
        }
    }
}

/// A child run that completed: its session, final output and final state.
pub(crate) struct Done {
    pub(crate) session_id: String,
    pub(crate) output: Value,
    pub(crate) state: Map<String, Value>,
}

/// One item's result: the completed child, or its error (with its session when it ran).
pub(crate) type ItemResult = Result<Done, (Option<String>, String)>;

/// Run one item as a child and say how it ended.
async fn run_item(
    scope: &dyn ChildRunner,
    ctx: &ToolContext,
    (shape, path, label): (&Shape, &std::path::Path, &str),
    index: usize,
    item: Value,
) -> ItemResult {
    if scope.cancel().is_cancelled() {
        return Err((None, "not started: the run was cancelled".into()));
    }
    let input = shape
        .input(index, item, ctx)
        .await
        .map_err(|e| (None, e.to_string()))?;
    let what = format!("`{}` {label} {index}", ctx.cell_name);
    let base = format!("{}_{label}_{index}", ctx.session_id);
    let outcome = scope
        .run_cascade_file(&ctx.cell_name, &what, path, &base, input)
        .await
        .map_err(|e| (None, e.to_string()))?;
    match outcome.status {
        SessionStatus::Completed => Ok(Done {
            session_id: outcome.session_id.to_string(),
            output: outcome.output,
            state: outcome.state,
        }),
        status => Err((
            Some(outcome.session_id.to_string()),
            format!(
                "ended `{status}`{}",
                outcome
                    .error
                    .as_ref()
                    .map(|e| format!(": [{}] {e}", e.code().code))
                    .unwrap_or_default()
            ),
        )),
    }
}

/// The aggregate of the items' results, in input order; an error when every item failed.
fn aggregate(results: Vec<ItemResult>) -> Result<Value, ToolError> {
    let count = results.len();
    let mut outputs = Vec::with_capacity(count);
    let mut sessions = Vec::with_capacity(count);
    let mut errors = Vec::new();
    for (index, r) in results.into_iter().enumerate() {
        match r {
            Ok(done) => {
                outputs.push(done.output);
                sessions.push(json!(done.session_id));
            }
            Err((session_id, error)) => {
                outputs.push(Value::Null);
                sessions.push(json!(session_id));
                errors.push(json!({"index": index, "session_id": session_id, "error": error}));
            }
        }
    }
    if count > 0 && errors.len() == count {
        return Err(ToolError::Failed(format!(
            "`map_cascade`: every one of the {count} items failed; item 0: {}",
            errors[0]["error"].as_str().unwrap_or_default()
        )));
    }
    Ok(
        json!({"results": outputs, "count": count, "failed": errors.len(), "errors": errors, "session_ids": sessions}),
    )
}

/// Run `args.cascade` once per item of `args.map_over` (`max_parallel` at once, `input_key` or
/// `input_mapping` shaping each input) as children `<session>_<label>_<index>_<hex>` of the calling run;
/// the results in input order. `tool` names the caller in errors.
pub(crate) async fn map_all(
    tool: &str,
    args: &Value,
    ctx: &ToolContext,
    label: &str,
) -> Result<Vec<ItemResult>, ToolError> {
    let scope = scope(tool, ctx)?.as_ref();
    let parallel = max_parallel(args.get("max_parallel"))?;
    let list = items(args.get("map_over"))?;
    let shape = Shape::of(args, scope)?;
    let path = cascade_path(tool, args, scope)?;
    scope.check_cascade_file(&ctx.cell_name, &format!("`{tool}` cascade"), &path)?;
    let results: Vec<ItemResult> = futures::stream::iter(list.into_iter().enumerate())
        .map(|(index, item)| run_item(scope, ctx, (&shape, &path, label), index, item))
        .buffered(parallel)
        .collect()
        .await;
    if scope.cancel().is_cancelled() {
        return Err(ToolError::Failed(format!("`{tool}`: the run was cancelled")));
    }
    Ok(results)
}

#[async_trait]
impl Tool for MapCascade {
    fn name(&self) -> &str {
        "map_cascade"
    }

    fn description(&self) -> &str {
        "Run a cascade once per item of a list (each item a child run, at most `max_parallel` at once) and \
         return {results (in input order), count, failed, errors}."
    }

    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "cascade": {"type": "string", "description": "The cascade file to run per item, relative to the calling cascade."},
                "map_over": {"description": "The items: a JSON array (or a string holding one, or a table output with `rows`)."},
                "input_key": {"type": "string", "description": "The input field each item goes to (default `item`; an object item without it is the input)."},
                "input_mapping": {"type": "object", "description": "Input fields as templates over `row`/`item` and `index`."},
                "mode": {"type": "string", "enum": MODES},
                "max_parallel": {"description": "Child runs at once, 1 to 32 (default 5)."}
            },
            "required": ["cascade", "map_over"]
        })
    }

    fn side_effect(&self) -> SideEffect {
        SideEffect::Irreversible
    }

    fn raw_inputs(&self) -> &[&str] {
        &["input_mapping"]
    }

    async fn execute(&self, args: Value, ctx: &ToolContext) -> Result<Value, ToolError> {
        known_args(&args)?;
        mode(&args)?;
        aggregate(map_all(self.name(), &args, ctx, "map").await?)
    }
}

#[async_trait]
impl Tool for SpawnCascade {
    fn name(&self) -> &str {
        "spawn_cascade"
    }

    fn description(&self) -> &str {
        "Start a cascade as a background child run with an input; returns {session_id, status: started} at once."
    }

    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "cascade": {"type": "string", "description": "The cascade file to start, relative to the calling cascade."},
                "input": {"description": "The child's input: an object (or a string holding one)."}
            },
            "required": ["cascade"]
        })
    }

    fn side_effect(&self) -> SideEffect {
        SideEffect::Irreversible
    }

    async fn execute(&self, args: Value, ctx: &ToolContext) -> Result<Value, ToolError> {
        let scope = scope(self.name(), ctx)?.as_ref();
        let input = match args.get("input") {
            None | Some(Value::Null) => json!({}),
            Some(Value::String(s)) if s.trim().is_empty() => json!({}),
            Some(Value::String(s)) => match literal(s) {
                Some(v @ Value::Object(_)) => v,
                _ => {
                    return Err(ToolError::InvalidArguments(format!(
                        "`spawn_cascade`: `input` must be an object (or a string holding a JSON object), not {}",
                        preview(&Value::String(s.clone()))
                    )));
                }
            },
            Some(v @ Value::Object(_)) => v.clone(),
            Some(other) => {
                return Err(ToolError::InvalidArguments(format!(
                    "`spawn_cascade`: `input` must be an object, not {}",
                    preview(other)
                )));
            }
        };
        let path = cascade_path(self.name(), &args, scope)?;
        let what = format!("`spawn_cascade` child `{}`", path.display());
        let session_id = scope.spawn_cascade_file(&ctx.cell_name, &what, &path, input)?;
        Ok(json!({"session_id": session_id, "status": "started"}))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn map_over_takes_arrays_json_text_and_tables_and_refuses_the_rest() {
        assert_eq!(items(Some(&json!([1, 2]))).unwrap(), vec![json!(1), json!(2)]);
        assert_eq!(items(Some(&json!(" [\"a\"] "))).unwrap(), vec![json!("a")]);
        assert_eq!(
            items(Some(&json!("['a', 'b']"))).unwrap(),
            vec![json!("a"), json!("b")]
        );
        assert_eq!(
            items(Some(&json!({"rows": [{"a": 1}]}))).unwrap(),
            vec![json!({"a": 1})]
        );
        let e = items(Some(&json!("not a list"))).unwrap_err().to_string();
        assert!(e.contains("must be a JSON array"), "{e}");
        assert!(items(None).unwrap_err().to_string().contains("required"));
        let big = Value::Array(vec![json!(0); MAX_ITEMS + 1]);
        let e = items(Some(&big)).unwrap_err().to_string();
        assert!(e.contains("10000"), "{e}");
    }

    #[test]
    fn max_parallel_is_a_bounded_number_or_numeric_text() {
        assert_eq!(max_parallel(None).unwrap(), 5);
        assert_eq!(max_parallel(Some(&json!("3"))).unwrap(), 3);
        assert_eq!(max_parallel(Some(&json!(32))).unwrap(), 32);
        for bad in [json!(0), json!(33), json!("many"), json!(-1), json!(2.5)] {
            let e = max_parallel(Some(&bad)).unwrap_err().to_string();
            assert!(e.contains("from 1 to 32"), "{bad}: {e}");
        }
    }

    #[test]
    fn unknown_arguments_are_refused_naming_the_known_ones() {
        assert!(known_args(&json!({"cascade": "c", "map_over": [], "_cell_name": "x"})).is_ok());
        let e = known_args(&json!({"cascade": "c", "on_error": "fail_fast"}))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown argument `on_error`") && e.contains("`max_parallel`"),
            "{e}"
        );
    }

    #[test]
    fn unknown_modes_name_the_known_ones() {
        assert!(mode(&json!({"mode": "aggregate"})).is_ok());
        let e = mode(&json!({"mode": "first_success"})).unwrap_err().to_string();
        assert!(e.contains("`aggregate`"), "{e}");
    }
}
