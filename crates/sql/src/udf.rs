//! The async, batched SQL functions `rvbbit_udf` and `rvbbit_run` (with every era's aliases).
//!
//! Each invocation gets a whole batch: rows with a NULL required argument give NULL without a call,
//! duplicate calls within the batch (and the statement) are made once, cache hits are served without a
//! call, and the rest run concurrently (see `calls/`).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{StringArray, StringBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::error::Result;
use datafusion::logical_expr::async_udf::AsyncScalarUDFImpl;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};
use rvbbit_engine::Sampling;
use serde_json::{Map, Value};

use crate::batch_args::{self, args_key, get, text_columns};
use crate::calls::{self, Call};
use crate::error::Error;
use crate::options::{RvbbitOptions, UdfErrors};
use crate::shared::Shared;
use crate::statement::{Answer, Statement};

/// Which function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    /// `rvbbit_udf(instructions, value [, model [, options]])`.
    Udf,
    /// `rvbbit_run(cascade, inputs_json [, field])`.
    Run,
}

/// Every name `rvbbit_udf` answers to (E2, E3 LARS, E1 windlass).
pub const UDF_NAMES: &[&str] = &["rvbbit_udf", "rvbbit", "lars_udf", "lars", "windlass_udf"];
/// Every name `rvbbit_run` answers to.
pub const RUN_NAMES: &[&str] = &[
    "rvbbit_run",
    "rvbbit_cascade_udf",
    "lars_run",
    "lars_cascade_udf",
    "windlass_cascade_udf",
];

/// One rvbbit SQL function bound to a session.
#[derive(Debug)]
pub(crate) struct RvbbitFunction {
    kind: Kind,
    name: &'static str,
    signature: Signature,
    shared: Arc<Shared>,
}

impl RvbbitFunction {
    /// The function `kind` under `name` (one registration per alias: DataFusion's async wrapper does not
    /// forward aliases).
    pub(crate) fn new(kind: Kind, name: &'static str, shared: Arc<Shared>) -> Self {
        let arities = match kind {
            Kind::Udf => vec![2, 3, 4],
            Kind::Run => vec![2, 3],
        };
        RvbbitFunction {
            kind,
            name,
            // Any argument types (numbers are passed as their text); volatile, so the planner never
            // folds a call with constant arguments.
            signature: Signature::one_of(
                arities.into_iter().map(TypeSignature::Any).collect(),
                Volatility::Volatile,
            ),
            shared,
        }
    }

    fn name_str(&self) -> &'static str {
        self.name
    }
}

impl PartialEq for RvbbitFunction {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.name == other.name && Arc::ptr_eq(&self.shared, &other.shared)
    }
}

impl Eq for RvbbitFunction {}

impl Hash for RvbbitFunction {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.kind.hash(state);
        self.name.hash(state);
        Arc::as_ptr(&self.shared).hash(state);
    }
}

impl ScalarUDFImpl for RvbbitFunction {
    fn name(&self) -> &str {
        self.name_str()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        // DataFusion runs async functions through `invoke_async_with_args`; reaching this is a bug.
        Err(Error::Execution {
            message: format!("{} cannot be evaluated synchronously", self.name_str()),
        }
        .into_datafusion())
    }
}

/// Options of `rvbbit_udf`'s 4th argument: a JSON object with `cache` (bool), `model` (text),
/// `temperature` (0 to 2; default 0, spec §2) and `max_tokens` (a positive integer).
struct CallOptions {
    cache: Option<bool>,
    model: Option<String>,
    sampling: Sampling,
}

const OPTIONS_HINT: &str = "`cache` is true/false, `model` a string, `temperature` a number from 0 to 2, \
                            `max_tokens` a positive integer";

fn parse_options(text: Option<&str>) -> Result<CallOptions, Error> {
    let mut out = CallOptions {
        cache: None,
        model: None,
        sampling: Sampling {
            temperature: Some(0.0),
            max_tokens: None,
        },
    };
    let Some(text) = text.filter(|t| !t.trim().is_empty()) else {
        return Ok(out);
    };
    let value: Value = serde_json::from_str(text).map_err(|e| Error::Argument {
        message: format!(
            "rvbbit_udf options `{text}` are not valid JSON: {e}; write them as '{{\"cache\": false}}'"
        ),
    })?;
    let Value::Object(map) = value else {
        return Err(Error::Argument {
            message: format!(
                "rvbbit_udf options `{text}` must be a JSON object such as '{{\"cache\": false}}'"
            ),
        });
    };
    for (k, v) in map {
        match (k.as_str(), &v) {
            ("cache", Value::Bool(b)) => out.cache = Some(*b),
            ("model", Value::String(m)) => out.model = Some(m.clone()),
            ("temperature", Value::Number(n)) if n.as_f64().is_some_and(|t| (0.0..=2.0).contains(&t)) => {
                out.sampling.temperature = n.as_f64();
            }
            ("max_tokens", Value::Number(n)) if n.as_u64().is_some_and(|m| m > 0) => {
                out.sampling.max_tokens = n.as_u64().map(|m| u32::try_from(m).unwrap_or(u32::MAX));
            }
            ("cache" | "model" | "temperature" | "max_tokens", other) => {
                return Err(Error::Argument {
                    message: format!("rvbbit_udf option `{k}` cannot be {other}; {OPTIONS_HINT}"),
                });
            }
            (other, _) => {
                return Err(Error::Argument {
                    message: format!(
                        "unknown rvbbit_udf option `{other}`; the options are `cache`, `model`, \
                         `temperature` and `max_tokens`"
                    ),
                });
            }
        }
    }
    Ok(out)
}

/// What a row will get: NULL without a call, a fixed text, the answer of a distinct call of this batch,
/// or an answer an earlier batch of the statement already got for the same arguments.
#[derive(Clone)]
enum Slot {
    Null,
    Text(String),
    Call(usize),
    Known(usize),
}

/// The statement-wide memo key of one argument tuple of `kind`.
fn memo_key(kind: Kind, raw: &[Option<&str>; 4]) -> String {
    args_key(
        match kind {
            Kind::Udf => "u",
            Kind::Run => "r",
        },
        raw,
    )
}

#[async_trait]
impl AsyncScalarUDFImpl for RvbbitFunction {
    async fn invoke_async_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let stmt = self.shared.statement();
        let options = batch_args::options(&args, &stmt);
        let n = args.number_rows;
        let cols = text_columns(&args)?;
        let batch = self.plan_batch(&stmt, &cols, n, &options)?;
        if stmt.is_estimating() {
            // Under EXPLAIN: count what would run, call nothing, give NULLs.
            let cached = calls::cached_count(&self.shared.runtime, &batch.calls).await;
            let distinct = batch.calls.len() as u64;
            stmt.estimate(
                self.name(),
                crate::statement::Estimate {
                    rows: n as u64,
                    distinct,
                    cached,
                    calls: distinct.saturating_sub(cached),
                    rows_per_call: 1,
                    ..crate::statement::Estimate::default()
                },
            );
            return Ok(ColumnarValue::Array(datafusion::arrow::array::new_null_array(
                &self.return_type(&[])?,
                n,
            )));
        }
        let answers = if batch.calls.is_empty() {
            Vec::new()
        } else if options.distributed && self.kind == Kind::Run {
            // `SET rvbbit.distributed = on`: the rows run as jobs on the queue.
            let runtime = &self.shared.runtime;
            let window = runtime
                .settings
                .concurrency
                .saturating_mul(crate::runtime::RUN_WINDOW);
            let mut d = crate::map::distributed::Distribute::new(&options, window);
            d.max_calls = Some(options.max_calls);
            crate::map::distributed::answer(runtime, &stmt, batch.calls, &d)
                .await
                .map_err(Error::into_datafusion)?
        } else {
            calls::answer_within(&self.shared.runtime, &stmt, batch.calls, options.max_calls)
                .await
                .map_err(Error::into_datafusion)?
        };
        stmt.remember_answers(
            batch
                .pending
                .into_iter()
                .map(|(i, key)| (key, answers[i].clone())),
        );
        let column = Column {
            slots: &batch.slots,
            answers: &answers,
            known: &batch.known,
            fields: &batch.fields,
        };
        self.write_column(&stmt, &column, &options)
    }
}

/// The calls of one batch of rows and where each row's value comes from.
struct BatchPlan {
    slots: Vec<Slot>,
    calls: Vec<Call>,
    /// Answers earlier batches of the statement got (large columns arrive in many batches).
    known: Vec<Answer>,
    /// The argument keys of this batch's calls, remembered once they are answered.
    pending: Vec<(usize, String)>,
    /// Per-row fields: for rvbbit_run, the optional 3rd argument.
    fields: Vec<Option<String>>,
}

/// What the output column is written from.
struct Column<'a> {
    slots: &'a [Slot],
    answers: &'a [Answer],
    known: &'a [Answer],
    fields: &'a [Option<String>],
}

impl RvbbitFunction {
    /// The distinct calls of a batch of `n` rows (argument columns `cols`) and each row's slot.
    fn plan_batch(
        &self,
        stmt: &Arc<Statement>,
        cols: &[StringArray],
        n: usize,
        options: &RvbbitOptions,
    ) -> Result<BatchPlan> {
        let runtime = &self.shared.runtime;
        let mut slots = Vec::with_capacity(n);
        let mut calls: Vec<Call> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        // Answers earlier batches of the statement got (large columns arrive in many batches), and the
        // argument keys of this batch's calls, remembered once they are answered.
        let mut known: Vec<Answer> = Vec::new();
        let mut pending: Vec<(usize, String)> = Vec::new();
        // Per-row fields: for rvbbit_run, the optional 3rd argument.
        let fields: Vec<Option<String>> = (0..n)
            .map(|row| match self.kind {
                Kind::Run => get(cols.get(2), row).map(str::to_owned),
                Kind::Udf => None,
            })
            .collect();
        // Rows with the same arguments share a slot: the cache key (canonical JSON + SHA-256) is computed
        // once per distinct argument tuple, which keeps large, repetitive columns cheap.
        let mut seen: HashMap<[Option<&str>; 4], usize> = HashMap::new();
        for row in 0..n {
            let (Some(first), Some(second)) = (get(cols.first(), row), get(cols.get(1), row)) else {
                slots.push(Slot::Null);
                continue;
            };
            let raw = [
                Some(first),
                Some(second),
                get(cols.get(2), row),
                get(cols.get(3), row),
            ];
            if let Some(&earlier) = seen.get(&raw) {
                let slot = slots[earlier].clone();
                slots.push(slot);
                continue;
            }
            seen.insert(raw, row);
            let memo_key = memo_key(self.kind, &raw);
            if let Some(answer) = stmt.known_answer(&memo_key) {
                known.push(answer);
                slots.push(Slot::Known(known.len() - 1));
                continue;
            }
            let call = match self.kind {
                Kind::Udf => {
                    let opts = parse_options(get(cols.get(3), row)).map_err(Error::into_datafusion)?;
                    let model = get(cols.get(2), row)
                        .filter(|m| !m.trim().is_empty())
                        .map(str::to_owned)
                        .or(opts.model);
                    let cache = options.cache && opts.cache.unwrap_or(true);
                    Call::udf(runtime, first, second, model.as_deref(), opts.sampling, cache)
                }
                Kind::Run => {
                    // A row that cannot run at all (bad inputs, cascade missing or invalid) answers the
                    // failure document like a failed run does, and is counted: the statement's NOTICE
                    // names the first such error, so a wrong path is never a silent NULL.
                    let prepared = match serde_json::from_str(second) {
                        Ok(Value::Object(map)) => runtime
                            .cascade(stmt, first)
                            .map(|cascade| (cascade, Value::Object(map))),
                        Ok(_) => Err("inputs_json must be a JSON object".to_owned()),
                        Err(e) => Err(format!("inputs_json is not valid JSON: {e}")),
                    };
                    match prepared {
                        Ok((cascade, input)) => Call::run(runtime, cascade, input, None, options.cache),
                        Err(message) => {
                            stmt.note_error(&format!("rvbbit_run('{first}', …): {message}"));
                            slots.push(Slot::Text(failed_doc(&message)));
                            continue;
                        }
                    }
                }
            };
            let next = calls.len();
            let i = *index.entry(call.key.clone()).or_insert(next);
            if i == next {
                calls.push(call);
            }
            pending.push((i, memo_key));
            slots.push(Slot::Call(i));
        }

        Ok(BatchPlan {
            slots,
            calls,
            known,
            pending,
            fields,
        })
    }

    /// The output column: each row's answer as text (or the picked field of a run's document), NULL or
    /// `ERROR: …` for a failed `rvbbit_udf` per `rvbbit.udf_errors` (or the statement fails with `raise`).
    fn write_column(
        &self,
        stmt: &Statement,
        column: &Column<'_>,
        options: &RvbbitOptions,
    ) -> Result<ColumnarValue> {
        let Column {
            slots,
            answers,
            known,
            fields,
        } = column;
        let mut out = StringBuilder::with_capacity(slots.len(), slots.len() * 16);
        for (row, slot) in slots.iter().enumerate() {
            let answer = match slot {
                Slot::Null => {
                    out.append_null();
                    continue;
                }
                Slot::Text(t) => {
                    match (self.kind, &fields[row]) {
                        (Kind::Run, Some(_)) => out.append_null(),
                        _ => out.append_value(t),
                    }
                    continue;
                }
                Slot::Call(i) => &answers[*i],
                Slot::Known(j) => &known[*j],
            };
            match (answer, self.kind) {
                (Answer::Ok(Value::String(s)), Kind::Udf) => out.append_value(s),
                (Answer::Ok(other), Kind::Udf) => out.append_value(other.to_string()),
                (Answer::Failed { message, .. }, Kind::Udf) => match options.udf_errors {
                    UdfErrors::Null => out.append_null(),
                    UdfErrors::Text => {
                        let short: String = message.chars().take(50).collect();
                        out.append_value(format!("ERROR: {short}"));
                    }
                    UdfErrors::Raise => {
                        return Err(Error::FunctionFailed {
                            message: format!("rvbbit_udf failed (caller {}): {message}", stmt.caller_id),
                        }
                        .into_datafusion());
                    }
                },
                (Answer::Ok(doc) | Answer::Failed { document: doc, .. }, Kind::Run) => match &fields[row] {
                    None => out.append_value(doc.to_string()),
                    Some(field) => match pick_field(doc, field) {
                        Some(v) => out.append_value(v),
                        None => out.append_null(),
                    },
                },
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

fn failed_doc(message: &str) -> String {
    let mut map = Map::new();
    map.insert("error".into(), Value::String(message.to_owned()));
    map.insert("status".into(), Value::String("failed".into()));
    Value::Object(map).to_string()
}

/// `final_output.<field>`, else `state.<field>`, as text (strings bare, other values as JSON).
fn pick_field(doc: &Value, field: &str) -> Option<String> {
    let found = doc
        .get("final_output")
        .and_then(|o| o.get(field))
        .or_else(|| doc.get("state").and_then(|s| s.get(field)))?;
    match found {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}
