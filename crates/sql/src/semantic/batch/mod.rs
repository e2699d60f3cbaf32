//! Many rows per prompt (SQL interface spec §12, issue 24): a SCALAR/ROW function whose cascade is one
//! plain LLM cell asks up to K rows in one call (the session's `rvbbit.semantic_batch_size` when set,
//! else the operator's `batch_size`, else 16) and reads a JSON array keyed by row id.
//!
//! - [`Batching::of`] decides, once per function, whether its cascade can be asked this way (one LLM
//!   cell without tools, validators or routing) and builds the one-cell cascade that asks a batch prompt.
//!   A function asked one row per call (K = 1) still goes through [`answer`] when a cheap model is set:
//!   the cheap model gets one row per call, and the rows it is unsure of run the function's own cascade.
//! - [`Batching::prompt`] writes a batch: the task once, with the arguments that differ between the rows
//!   as marks (`⟨text⟩`), when the instructions use them only by interpolation (checked by rendering
//!   with two different marks); otherwise each item carries its whole rendered task.
//! - [`answer`] runs a statement's distinct rows: memo and cache first, then batches sized by row count
//!   and by bytes (`rvbbit.semantic_context_bytes`), concurrently. Each row's answer is validated
//!   against the function's type; a missing or malformed row is asked again (once more in a batch when
//!   several are left, then alone through the function's own cascade, whose failure is NULL for that
//!   row only). A batch refused for its context length is split in halves, and the function's batch
//!   size stays halved for the rest of the process. Every row answered by a batch is kept in the memo
//!   and the persistent cache under the key a one-row call would use, so a rerun, with any batch size,
//!   makes no call.

mod prompt;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rvbbit_cascade::model::{ModelSpec, OutputMode, SqlFunction, SqlShape, SqlType};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::calls::{self, Call};
use crate::cascade::LoadedCascade;
use crate::error::Error;
use crate::options::DEFAULT_BATCH_SIZE;
use crate::runtime::Runtime;
use crate::statement::{Answer, Statement};

/// Version of the batch prompt; part of the batch cascade's hash.
const BATCH_LAYOUT: &str = "rvbbit-semantic-batch-1";

/// Bytes of a batch prompt besides the task and the items (its headings and reply instructions).
const FRAME_BYTES: usize = 700;

/// Batched rounds before the rows still unanswered are asked one by one.
const BATCH_ROUNDS: usize = 2;

/// The keys a cell may set and still be asked many rows at once.
const PLAIN_CELL_KEYS: &[&str] = &[
    "name",
    "instructions",
    "model",
    "rules",
    "output_schema",
    "timeout",
];

/// The keys a cascade may set and still be asked many rows at once.
const PLAIN_CASCADE_KEYS: &[&str] = &[
    "cascade_id",
    "cells",
    "description",
    "inputs_schema",
    "model",
    "sql_function",
];

/// How a function's rows are asked many per prompt.
#[derive(Debug)]
pub(crate) struct Batching {
    /// The one-cell cascade asking one batch prompt (`{{ input.prompt }}`), with the function cell's
    /// model and settings.
    cascade: Arc<LoadedCascade>,
    /// The same without a model of its own, asked with the session's cheap model.
    cheap: Arc<LoadedCascade>,
    /// The model the function's cell names (its own or its cascade's), if any.
    model: Option<String>,
    /// The function cell's instructions (a template over `input`).
    instructions: String,
    /// The cell's name, the key of its output.
    cell: String,
    /// What each row's answer must be, in words for the prompt.
    answer_words: String,
    /// The declared result type.
    returns: SqlType,
    /// The operator's `batch_size` (1: one row per call, whatever the session's batch size; a cheap
    /// model is still asked first, one row per call).
    max_rows: Option<usize>,
    /// A label function's labels: a VARCHAR answer its cell's `output_schema` limits to an `enum` of
    /// strings (empty for any other function).
    labels: Vec<String>,
    /// A batch size learned from a context-length refusal (0: none).
    learned: AtomicUsize,
}

impl Batching {
    /// How `spec`'s rows are asked many per prompt, or why they cannot be.
    pub(crate) fn of(spec: &SqlFunction, cascade: &LoadedCascade) -> Result<Batching, String> {
        if !matches!(spec.call_shape(), SqlShape::Scalar | SqlShape::Row) {
            return Err("only SCALAR and ROW functions are asked many rows per prompt".into());
        }
        if !matches!(spec.output_mode, None | Some(OutputMode::Value)) {
            return Err("its output_mode is not `value`".into());
        }
        let template = &cascade.template.cascade;
        let [cell] = template.cells.as_slice() else {
            return Err("its cascade has more than one cell".into());
        };
        if let Some(key) = set_keys(template)
            .into_iter()
            .find(|k| !PLAIN_CASCADE_KEYS.contains(&k.as_str()))
        {
            return Err(format!("its cascade sets `{key}`"));
        }
        if let Some(key) = set_keys(cell)
            .into_iter()
            .find(|k| !PLAIN_CELL_KEYS.contains(&k.as_str()))
        {
            return Err(format!("its cell sets `{key}`"));
        }
        let rules = cell.rules.as_ref().map(set_keys).unwrap_or_default();
        if let Some(key) = rules.iter().find(|k| k.as_str() != "max_turns") {
            return Err(format!("its cell sets `rules.{key}`"));
        }
        let Some(instructions) = cell.instructions.clone() else {
            return Err("its cell has no instructions".into());
        };
        let returns = spec.result_type();
        let answer_words = match &cell.output_schema {
            Some(schema) => format!("a JSON value matching this JSON schema: {schema}"),
            None => type_words(returns).to_owned(),
        };
        let mut request = cascade.template.clone();
        let mut asking = (*request.cascade).clone();
        asking.sql_function = None;
        if let Some(batch_cell) = asking.cells.first_mut() {
            batch_cell.instructions = Some("{{ input.prompt }}".into());
            batch_cell.output_schema = None;
        }
        let model = match &cell.model {
            Some(ModelSpec::One(m)) => Some(m.clone()),
            Some(ModelSpec::Chain(chain)) => chain.first().cloned(),
            None => template.model.clone(),
        };
        let mut modelless = asking.clone();
        modelless.model = None;
        if let Some(c) = modelless.cells.first_mut() {
            c.model = None;
        }
        request.cascade_file = None;
        request.cascade_text = None;
        let mut cheap_request = request.clone();
        request.cascade = Arc::new(asking);
        cheap_request.cascade = Arc::new(modelless);
        let hash = |tag: &str| {
            hex::encode(Sha256::digest(
                format!("{BATCH_LAYOUT}{tag}\n{}", cascade.hash).as_bytes(),
            ))
        };
        Ok(Batching {
            cascade: Arc::new(LoadedCascade {
                template: request,
                hash: hash(""),
            }),
            cheap: Arc::new(LoadedCascade {
                template: cheap_request,
                hash: hash("-cheap"),
            }),
            model,
            instructions,
            cell: cell.name.clone(),
            answer_words,
            returns,
            labels: match cell.output_schema.as_ref().and_then(|s| s.get("enum")) {
                Some(Value::Array(labels)) if returns == SqlType::Varchar => labels
                    .iter()
                    .map(|l| l.as_str().map(str::to_owned))
                    .collect::<Option<Vec<String>>>()
                    .unwrap_or_default(),
                _ => Vec::new(),
            },
            max_rows: spec.batch_size.map(|n| n as usize),
            learned: AtomicUsize::new(0),
        })
    }

    /// What asking `inputs` (the rows not in the cache) would take: calls, rows per call and prompt
    /// bytes, at the session's `batch_size`.
    pub(crate) fn estimate(&self, inputs: &[&Value], batch_size: Option<usize>) -> (u64, u64, u64) {
        let k = self.rows_per_prompt(batch_size);
        let calls = inputs.len().div_ceil(k);
        let items: usize = inputs.iter().map(|v| v.to_string().len() + 16).sum();
        let bytes = calls * (FRAME_BYTES + self.instructions.len()) + items;
        (calls as u64, k as u64, bytes as u64)
    }

    /// Whether a cheap model may answer first: a BOOLEAN function, or a label function (a VARCHAR
    /// answer its cell's `output_schema` limits to an `enum` of strings).
    pub(crate) fn takes_cheap(&self) -> bool {
        self.returns == SqlType::Boolean || !self.labels.is_empty()
    }

    /// Whether `answer` is one of a label function's labels (any answer of another function).
    pub(crate) fn is_label(&self, answer: &Value) -> bool {
        self.labels.is_empty()
            || answer
                .as_str()
                .is_some_and(|a| self.labels.iter().any(|l| l == a.trim()))
    }

    /// The model the function's cell (or cascade) names, if any.
    pub(crate) fn main_model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    /// The most rows of one prompt: the session's `rvbbit.semantic_batch_size` when set, else the
    /// operator's `batch_size`, else [`DEFAULT_BATCH_SIZE`]; lowered by a context-length refusal.
    pub(crate) fn rows_per_prompt(&self, session: Option<usize>) -> usize {
        if self.max_rows == Some(1) {
            return 1;
        }
        let mut k = session.or(self.max_rows).unwrap_or(DEFAULT_BATCH_SIZE);
        let learned = self.learned.load(Ordering::Relaxed);
        if learned > 0 {
            k = k.min(learned);
        }
        k.max(1)
    }
}

/// Words telling the model what one answer of `returns` is.
fn type_words(returns: SqlType) -> &'static str {
    match returns {
        SqlType::Boolean => "true or false (a JSON boolean)",
        SqlType::Integer => "a whole number (a JSON number)",
        SqlType::Double => "a number (a JSON number)",
        SqlType::Json => "the JSON value the task asks for",
        SqlType::Varchar | SqlType::DoubleList | SqlType::Table => "the task's answer as a JSON string",
    }
}

/// The keys of `value`'s JSON form that are set (not null).
fn set_keys(value: &impl serde::Serialize) -> Vec<String> {
    match serde_json::to_value(value) {
        Ok(Value::Object(map)) => map
            .into_iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, _)| k)
            .collect(),
        _ => vec!["(unreadable)".into()],
    }
}

/// Whether a failure message is a model's refusal of a prompt too long for its context.
fn context_overflow(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("context_length_exceeded")
        || (m.contains("context") && (m.contains("length") || m.contains("window") || m.contains("too long")))
        || m.contains("maximum context")
        || m.contains("too many tokens")
}

/// What [`answer`] needs of the function being called.
pub(crate) struct Caller<'a> {
    /// The function's name, for messages.
    pub(crate) name: &'a str,
    pub(crate) batching: &'a Batching,
    pub(crate) runtime: &'a Runtime,
    /// `rvbbit.semantic_batch_size`, when the session set it.
    pub(crate) batch_size: Option<usize>,
    /// `rvbbit.semantic_context_bytes`.
    pub(crate) context_bytes: usize,
    /// `rvbbit.max_calls`.
    pub(crate) max_calls: u64,
    /// `rvbbit.semantic_cheap_model` and `rvbbit.semantic_confidence` (or the call's annotations),
    /// when set and the function takes a cheap model.
    pub(crate) cheap: Option<(&'a str, f64)>,
    /// The runtime's default model (the function's model when its cell names none).
    pub(crate) default_model: &'a str,
}

/// Answer the distinct one-row `calls` of a function (in order), many rows per prompt.
pub(crate) async fn answer(
    caller: &Caller<'_>,
    stmt: &Arc<Statement>,
    calls: Vec<Call>,
) -> Result<Vec<Answer>, Error> {
    let mut known = calls::lookup(caller.runtime, stmt, &calls).await;
    let mut open: Vec<usize> = (0..calls.len()).filter(|&i| known[i].is_none()).collect();
    if let Some(cheap) = caller
        .cheap
        .filter(|_| caller.batching.takes_cheap() && !open.is_empty())
    {
        let (answered, left) = ask_in_batches(caller, stmt, &calls, &open, Some(cheap)).await?;
        stmt.decided_by(cheap.0, answered.len() as u64);
        let main = caller.batching.model.as_deref().unwrap_or(caller.default_model);
        stmt.decided_by(main, left.len() as u64);
        for (i, answer) in answered {
            known[i] = Some(answer);
        }
        open = left;
    }
    // One row per prompt (K = 1): after the cheap model, each row goes through the function's own
    // cascade.
    let rounds = if caller.batching.rows_per_prompt(caller.batch_size) < 2 {
        0
    } else {
        BATCH_ROUNDS
    };
    for _round in 0..rounds {
        if open.len() < 2 {
            break;
        }
        let (answered, left) = ask_in_batches(caller, stmt, &calls, &open, None).await?;
        for (i, answer) in answered {
            known[i] = Some(answer);
        }
        let progress = left.len() < open.len();
        open = left;
        if !progress {
            break;
        }
    }
    // The rows no batch answered, each through the function's own cascade.
    calls::admit(stmt, open.len(), caller.max_calls)?;
    if !open.is_empty() {
        crate::spending::check(caller.runtime, stmt).await?;
    }
    Ok(calls::run(caller.runtime, stmt, &calls, known).await)
}

/// Ask the `open` rows of `calls` in batches; the rows answered, and the rows still open. With `cheap`
/// (a model and a confidence), that model is asked (a row alone too) and only answers at least that
/// confident are kept.
async fn ask_in_batches(
    caller: &Caller<'_>,
    stmt: &Arc<Statement>,
    calls: &[Call],
    open: &[usize],
    cheap: Option<(&str, f64)>,
) -> Result<(Vec<(usize, Answer)>, Vec<usize>), Error> {
    let limits = caller.runtime.engine.limits();
    let mut queue = pack(caller, calls, open);
    let mut answered = Vec::new();
    let mut left = Vec::new();
    while !queue.is_empty() {
        let mut asked: Vec<(Vec<usize>, Call)> = Vec::new();
        for rows in std::mem::take(&mut queue) {
            if rows.len() < 2 && cheap.is_none() {
                left.extend(rows);
                continue;
            }
            let inputs: Vec<&Value> = rows.iter().map(|&i| input_of(&calls[i])).collect();
            match caller.batching.prompt(&inputs, limits, cheap.is_some()) {
                Ok(prompt) => {
                    let (cascade, model) = match cheap {
                        Some((model, _)) => (caller.batching.cheap.clone(), Some(model)),
                        None => (caller.batching.cascade.clone(), None),
                    };
                    let call = Call::run(caller.runtime, cascade, json!({ "prompt": prompt }), model, false)
                        .with_source(
                            json!({"semantic_batch": {"function": caller.name, "rows": rows.len()}}),
                        );
                    asked.push((rows, call));
                }
                // A template that does not render for these rows: each row alone says why.
                Err(_) => left.extend(rows),
            }
        }
        if asked.is_empty() {
            break;
        }
        calls::admit(stmt, asked.len(), caller.max_calls)?;
        let (rows_of, batch_calls): (Vec<Vec<usize>>, Vec<Call>) = asked.into_iter().unzip();
        let started = std::time::Instant::now();
        tracing::debug!(target: "rvbbit::timings", batches = rows_of.len(), "Semantic batch prompts written");
        let replies = calls::answer(caller.runtime, stmt, batch_calls).await?;
        tracing::debug!(
            target: "rvbbit::timings",
            batches = rows_of.len(),
            ms = format!("{:.2}", started.elapsed().as_secs_f64() * 1000.0),
            "Semantic batches answered"
        );
        let mut kept: Vec<Kept> = Vec::new();
        for (rows, reply) in rows_of.into_iter().zip(replies) {
            match reply {
                Answer::Ok(doc) => {
                    let least = cheap.map_or(0.0, |(_, c)| c);
                    let (batch, missing) = keep_rows(caller, &rows, &doc, least);
                    kept.push(batch);
                    left.extend(missing);
                }
                Answer::Failed { message, .. }
                    if cheap.is_none() && context_overflow(&message) && rows.len() >= 2 =>
                {
                    let half = rows.len() / 2;
                    caller.batching.learned.store(half.max(1), Ordering::Relaxed);
                    stmt.note(&format!(
                        "{}: the model refused {} rows in one prompt for its context length; asking {half} \
                         at a time",
                        caller.name,
                        rows.len()
                    ));
                    queue.push(rows[..half].to_vec());
                    queue.push(rows[half..].to_vec());
                }
                Answer::Failed { .. } => left.extend(rows),
            }
        }
        // Every row this round answered, kept at once: one cache write, not one per batch.
        answered.extend(remember_kept(caller, stmt, calls, kept).await);
    }
    Ok((answered, left))
}

/// The rows of `open` in batches: at most the batch size each, and at most the context bytes.
fn pack(caller: &Caller<'_>, calls: &[Call], open: &[usize]) -> Vec<Vec<usize>> {
    let k = caller.batching.rows_per_prompt(caller.batch_size);
    let frame = FRAME_BYTES + caller.batching.instructions.len();
    let mut batches: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut bytes = frame;
    for &i in open {
        let item = input_of(&calls[i]).to_string().len() + 16;
        if frame + item > caller.context_bytes {
            // Too big to share a prompt: asked alone.
            batches.push(vec![i]);
            continue;
        }
        if current.len() >= k || bytes + item > caller.context_bytes {
            batches.push(std::mem::take(&mut current));
            bytes = frame;
        }
        current.push(i);
        bytes += item;
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

/// The cascade input of a one-row call.
pub(crate) fn input_of(call: &Call) -> &Value {
    match &call.kind {
        calls::CallKind::Run { input, .. } => input,
        _ => &Value::Null,
    }
}

/// The rows one batch reply answered: each row's document, the reply's run and each row's share of
/// its cost.
struct Kept {
    rows: Vec<(usize, Value)>,
    session_id: String,
    share: i64,
}

/// Keep the answers a batch reply `doc` has for `rows`: the answered rows, and the rows it missed.
fn keep_rows(caller: &Caller<'_>, rows: &[usize], doc: &Value, least: f64) -> (Kept, Vec<usize>) {
    let read: Vec<Option<Value>> = caller
        .batching
        .read_scored(doc.get("final_output").unwrap_or(&Value::Null), rows.len())
        .into_iter()
        .map(|a| a.filter(|(_, c)| *c >= least).map(|(v, _)| v))
        .collect();
    let session = doc.get("session_id").and_then(Value::as_str).unwrap_or_default();
    let cost: i64 = doc
        .get("cost_usd")
        .and_then(Value::as_str)
        .and_then(|c| c.parse::<f64>().ok())
        .and_then(rvbbit_core::MicroUsd::from_usd_f64)
        .map_or(0, |c| c.micros());
    let share = cost / i64::try_from(rows.len()).unwrap_or(1).max(1);
    let mut kept = Vec::new();
    let mut missing = Vec::new();
    for (&i, answer) in rows.iter().zip(read) {
        let Some(value) = answer else {
            missing.push(i);
            continue;
        };
        kept.push((i, row_document(&caller.batching.cell, value, session, rows.len())));
    }
    let kept = Kept {
        rows: kept,
        session_id: session.to_owned(),
        share,
    };
    (kept, missing)
}

/// The document of one row a batch answered, shaped as a one-row run's (`rvbbit_run`'s JSON). Built
/// field by field: `json!` would copy the value through a serializer, for every row.
fn row_document(cell: &str, value: Value, session: &str, rows: usize) -> Value {
    let mut outputs = Map::with_capacity(1);
    outputs.insert(cell.to_owned(), value.clone());
    let mut batch = Map::with_capacity(1);
    batch.insert("rows".into(), Value::from(rows));
    let mut doc = Map::with_capacity(7);
    doc.insert("outputs".into(), Value::Object(outputs));
    doc.insert("state".into(), Value::Object(Map::new()));
    doc.insert("status".into(), Value::from("success"));
    doc.insert("session_id".into(), Value::from(session));
    doc.insert("has_errors".into(), Value::Bool(false));
    doc.insert("final_output".into(), value);
    doc.insert("batch".into(), Value::Object(batch));
    Value::Object(doc)
}

/// Remember the rows of every reply of a round (the statement's memo and one cache write); each row's
/// answer.
async fn remember_kept(
    caller: &Caller<'_>,
    stmt: &Statement,
    calls: &[Call],
    kept: Vec<Kept>,
) -> Vec<(usize, Answer)> {
    let cascade_id = caller.batching.cascade.cascade_id();
    let mut runs: Vec<(String, i64)> = Vec::with_capacity(kept.len());
    let mut rows: Vec<(usize, Value, usize)> = Vec::new();
    for k in kept {
        rows.extend(k.rows.into_iter().map(|(i, doc)| (i, doc, runs.len())));
        runs.push((k.session_id, k.share));
    }
    let order: Vec<usize> = rows.iter().map(|(i, _, _)| *i).collect();
    let entries = rows
        .into_iter()
        .map(|(i, doc, run)| {
            let by = calls::AnsweredBy {
                session_id: &runs[run].0,
                cascade_id,
                cost_micros: runs[run].1,
            };
            (&calls[i], doc, by)
        })
        .collect();
    let answers = calls::remember(caller.runtime, stmt, entries).await;
    order.into_iter().zip(answers).collect()
}

#[cfg(test)]
mod tests {
    use rvbbit_core::config::LimitsConfig;

    use super::*;

    fn batching(returns: SqlType) -> Batching {
        let text = "cascade_id: f\nsql_function:\n  args: [{name: text}, {name: criterion}]\ncells:\n  - name: answer\n    \
                    instructions: \"Criterion: {{ input.criterion }}\\nText: {{ input.text }}\"\n";
        let engine = rvbbit_engine::Engine::new(rvbbit_engine::tools::Registry::builtin());
        let loaded =
            crate::cascade::load_cascade_text(std::path::Path::new("f.yaml"), text, &engine).unwrap();
        let mut spec = loaded.template.cascade.sql_function.clone().unwrap();
        spec.returns = Some(returns);
        Batching::of(&spec, &loaded).unwrap()
    }

    #[test]
    fn replies_are_read_in_the_shapes_models_write_them() {
        let b = batching(SqlType::Boolean);
        let fenced = json!(
            "Here you go:\n```json\n[{\"id\": 2, \"answer\": false}, {\"id\": \"1\", \"answer\": \"yes\"}]\n```"
        );
        assert_eq!(
            b.read_reply(&fenced, 3),
            [Some(json!("yes")), Some(json!(false)), None]
        );
        let wrapped = json!({"results": [{"id": 1, "answer": true}]});
        assert_eq!(b.read_reply(&wrapped, 1), [Some(json!(true))]);
        // Not a boolean, a null answer, an id out of range, conflicting repeats: all missing.
        let bad = json!([
            {"id": 1, "answer": "maybe"},
            {"id": 2, "answer": null},
            {"id": 9, "answer": true},
            {"id": 3, "answer": true},
            {"id": 3, "answer": false},
            {"id": 4, "answer": true},
            {"id": 4, "answer": true},
        ]);
        assert_eq!(b.read_reply(&bad, 4), [None, None, None, Some(json!(true))]);
        assert_eq!(b.read_reply(&json!("no JSON here"), 2), [None, None]);
        assert_eq!(b.read_reply(&json!("[1, 2, {\"id\": 1}]"), 1), [None]);
    }

    #[test]
    fn a_shared_task_marks_only_the_arguments_that_differ() {
        let b = batching(SqlType::Boolean);
        let limits = LimitsConfig::default();
        let rows = [
            json!({"text": "apple", "criterion": "a fruit"}),
            json!({"text": "hammer", "criterion": "a fruit"}),
        ];
        let refs: Vec<&Value> = rows.iter().collect();
        let prompt = b.prompt(&refs, &limits, false).unwrap();
        assert!(prompt.contains("Criterion: a fruit\nText: ⟨text⟩"), "{prompt}");
        assert!(prompt.contains("{\"id\":1,\"text\":\"apple\"}"), "{prompt}");
        assert!(prompt.contains("true or false"), "{prompt}");
        assert!(!prompt.contains("⟨criterion⟩"), "{prompt}");
        assert!(!prompt.contains("confidence"), "{prompt}");
        let sure = b.prompt(&refs, &limits, true).unwrap();
        assert!(sure.contains("\"confidence\": how sure you are"), "{sure}");
        let scored = b.read_scored(
            &json!([{"id": 1, "answer": true, "confidence": 0.9}, {"id": 2, "answer": false, "confidence": 7}]),
            2,
        );
        assert_eq!(scored, [Some((json!(true), 0.9)), Some((json!(false), 0.0))]);
    }

    #[test]
    fn only_plain_one_cell_functions_are_batched() {
        let engine = rvbbit_engine::Engine::new(rvbbit_engine::tools::Registry::builtin());
        let load = |text: &str| {
            crate::cascade::load_cascade_text(std::path::Path::new("f.yaml"), text, &engine).unwrap()
        };
        let two = load(
            "cascade_id: f\nsql_function: {args: [{name: text}]}\ncells:\n  - {name: a, instructions: x}\n  - {name: b, instructions: y}\n",
        );
        let spec = two.template.cascade.sql_function.clone().unwrap();
        assert_eq!(
            Batching::of(&spec, &two).unwrap_err(),
            "its cascade has more than one cell"
        );
        let one = load(
            "cascade_id: f\nsql_function: {args: [{name: text}], batch_size: 1}\ncells:\n  - {name: a, instructions: x}\n",
        );
        let spec = one.template.cascade.sql_function.clone().unwrap();
        // One row per call whatever the session asks, but still a plain cell a cheap model can answer.
        let b = Batching::of(&spec, &one).unwrap();
        assert_eq!(b.rows_per_prompt(Some(16)), 1);
        assert!(context_overflow(
            "This model's maximum context length is 8192 tokens"
        ));
        assert!(!context_overflow("bad request for boom"));
    }
}
