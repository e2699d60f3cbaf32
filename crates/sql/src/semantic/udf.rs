//! A SCALAR/ROW/AGGREGATE semantic function as a DataFusion async UDF ([`SemanticUdf`]): per batch, a row with a
//! NULL required argument gives NULL without a call, distinct argument tuples run once (statement memo,
//! persistent cache, concurrent runs through `calls::answer`), and each answer is typed by the
//! function's `returns` (`coerce.rs`): unparsable or failed is NULL with a notice, or an error under
//! `rvbbit.udf_errors = 'raise'`. An AGGREGATE function first makes each group's values its context
//! argument (`aggregate.rs`). A function of a shape this version does not run is registered as
//! [`Unsupported`], which fails while planning with a message saying so.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, StringArray, StringBuilder,
};
use datafusion::arrow::datatypes::DataType;
use datafusion::error::Result;
use datafusion::logical_expr::async_udf::AsyncScalarUDFImpl;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};
use rvbbit_cascade::model::{SqlShape, SqlType};
use serde_json::{Map, Value};

use super::aggregate::{self, Grouped};
use super::annotate::Overrides;
use super::batch;
use super::coerce::{Typed, coerce};
use super::registry::Definition;
use crate::batch_args::{self, args_key, get, text_columns};
use crate::calls::{self, Call};
use crate::error::Error;
use crate::options::{RvbbitOptions, UdfErrors};
use crate::runtime::Runtime;
use crate::shared::Shared;
use crate::statement::{Answer, Estimate, Statement};

/// The Arrow type of a declared result type.
pub(crate) fn arrow_type(returns: SqlType) -> DataType {
    match returns {
        SqlType::Boolean => DataType::Boolean,
        SqlType::Integer => DataType::Int64,
        SqlType::Double => DataType::Float64,
        SqlType::Varchar | SqlType::Json | SqlType::DoubleList | SqlType::Table => DataType::Utf8,
    }
}

/// One semantic function bound to a session, under one of its names.
#[derive(Debug)]
pub(crate) struct SemanticUdf {
    name: String,
    definition: Arc<Definition>,
    signature: Signature,
    shared: Arc<Shared>,
    /// The statement memo's tag of its answers: the function's name, or the annotated call's.
    tag: String,
    /// What the call's `-- @` annotations set (`annotate.rs`), for an annotated call.
    overrides: Option<Arc<Overrides>>,
}

impl SemanticUdf {
    /// One annotated call (`name@k`) of `definition` (already [`Definition::annotated`]), with the
    /// settings its annotations override.
    pub(crate) fn annotated(
        call: String,
        definition: Arc<Definition>,
        shared: Arc<Shared>,
        overrides: Overrides,
    ) -> SemanticUdf {
        let mut udf = SemanticUdf::new(call.clone(), definition, shared);
        udf.tag = call;
        udf.overrides = Some(Arc::new(overrides));
        udf
    }

    /// The settings in force for this call: the session's, the statement's `WITH (…)` on top, and its
    /// annotations' on top of those.
    fn options(&self, args: &ScalarFunctionArgs, stmt: &Statement) -> RvbbitOptions {
        let options = batch_args::options(args, stmt);
        match &self.overrides {
            Some(o) => o.apply(options),
            None => options,
        }
    }

    /// The cheap model and confidence that answer first, when they apply: the settings name one and
    /// the function is a BOOLEAN or label function whose cascade is one plain cell (asked many rows per
    /// prompt, or one row per call at K = 1).
    fn cheap<'o>(&self, options: &'o RvbbitOptions) -> Option<(&'o str, f64)> {
        let batching = self.definition.batching.as_ref().ok()?;
        if !batching.takes_cheap() {
            return None;
        }
        options
            .semantic_cheap_model
            .as_deref()
            .map(|m| (m, options.semantic_confidence))
    }
    /// `definition` called as `name`: its required arguments, then up to all of them.
    pub(crate) fn new(name: String, definition: Arc<Definition>, shared: Arc<Shared>) -> SemanticUdf {
        let total = definition.spec.args.len();
        let arities: Vec<TypeSignature> = (definition.required()..=total)
            .map(|n| {
                if n == 0 {
                    TypeSignature::Nullary
                } else {
                    TypeSignature::Any(n)
                }
            })
            .collect();
        SemanticUdf {
            tag: definition.name.clone(),
            overrides: None,
            name,
            definition,
            // Volatile: the planner never folds a call with constant arguments.
            signature: Signature::one_of(arities, Volatility::Volatile),
            shared,
        }
    }
}

impl PartialEq for SemanticUdf {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && Arc::ptr_eq(&self.definition, &other.definition)
            && Arc::ptr_eq(&self.shared, &other.shared)
    }
}

impl Eq for SemanticUdf {}

impl Hash for SemanticUdf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
        Arc::as_ptr(&self.definition).hash(state);
        Arc::as_ptr(&self.shared).hash(state);
    }
}

impl ScalarUDFImpl for SemanticUdf {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(arrow_type(self.definition.returns()))
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        // DataFusion runs async functions through `invoke_async_with_args`; reaching this is a bug.
        Err(Error::Execution {
            message: format!("{} cannot be evaluated synchronously; this is a bug", self.name),
        }
        .into_datafusion())
    }
}

/// Where a row's value comes from.
#[derive(Clone, Copy)]
enum Slot {
    Null,
    Call(usize),
    Known(usize),
}

/// The distinct calls of one batch and each row's slot.
struct BatchPlan {
    slots: Vec<Slot>,
    calls: Vec<Call>,
    known: Vec<Answer>,
    pending: Vec<(usize, String)>,
}

#[async_trait]
impl AsyncScalarUDFImpl for SemanticUdf {
    async fn invoke_async_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let stmt = self.shared.statement();
        let options = self.options(&args, &stmt);
        let n = args.number_rows;
        if stmt.is_estimating() && self.definition.spec.call_shape() == SqlShape::Aggregate {
            // One call per group (more when a group is map-reduced); nothing is asked.
            stmt.estimate(
                &self.name,
                Estimate {
                    rows: n as u64,
                    distinct: n as u64,
                    calls: n as u64,
                    rows_per_call: 1,
                    cascade: Some(self.definition.cascade.clone()),
                    ..Estimate::default()
                },
            );
            return Ok(ColumnarValue::Array(self.column(
                &vec![Slot::Call(0); n],
                &[placeholder(self.definition.returns())],
                &[],
            )));
        }
        let cols = if self.definition.spec.call_shape() == SqlShape::Aggregate {
            aggregate::columns(self, &args, &stmt, &options).await?
        } else {
            text_columns(&args)?
        };
        let started = std::time::Instant::now();
        let plan = self.plan_batch(&stmt, &cols, n, &options);
        tracing::debug!(
            target: "rvbbit::timings",
            function = %self.name,
            rows = n,
            calls = plan.calls.len(),
            ms = format!("{:.2}", started.elapsed().as_secs_f64() * 1000.0),
            "Semantic function's rows keyed"
        );
        let runtime = &self.shared.runtime;
        if stmt.is_estimating() {
            return Ok(self.estimate(&stmt, &plan, &options).await);
        }
        let answers = match &self.definition.batching {
            _ if plan.calls.is_empty() => Vec::new(),
            Ok(batching)
                if batching.rows_per_prompt(options.semantic_batch_size) > 1
                    || self.cheap(&options).is_some() =>
            {
                let caller = batch::Caller {
                    name: &self.name,
                    batching,
                    runtime,
                    batch_size: options.semantic_batch_size,
                    context_bytes: options.semantic_context_bytes,
                    max_calls: options.max_calls,
                    cheap: self.cheap(&options),
                    default_model: &runtime.settings.default_model,
                };
                batch::answer(&caller, &stmt, plan.calls)
                    .await
                    .map_err(Error::into_datafusion)?
            }
            other => {
                if let (Err(why), Some(cheap)) = (other, options.semantic_cheap_model.as_deref())
                    && self.definition.returns() == SqlType::Boolean
                {
                    stmt.note_once(&format!(
                        "{}: the cheap model {cheap} is not asked first: {why}, so the function's own \
                         cascade answers every row",
                        self.name
                    ));
                }
                calls::answer_within(runtime, &stmt, plan.calls, options.max_calls)
                    .await
                    .map_err(Error::into_datafusion)?
            }
        };
        if let Some(model) = self.overrides.as_ref().and_then(|o| o.model.as_deref())
            && self.cheap(&options).is_none()
        {
            // The annotated model decided every row it was asked (the cheap stage counts its own).
            stmt.decided_by(model, answers.len() as u64);
        }
        stmt.remember_answers(plan.pending.into_iter().map(|(i, key)| (key, answers[i].clone())));
        // Each distinct answer is typed once; only this batch's fresh answers are noted (a known answer
        // was noted by the batch that got it).
        let fresh = self.typed(&stmt, &answers, &options, true)?;
        let known = self.typed(&stmt, &plan.known, &options, false)?;
        let column = self.column(&plan.slots, &fresh, &known);
        tracing::debug!(
            target: "rvbbit::timings",
            function = %self.name,
            ms = format!("{:.2}", started.elapsed().as_secs_f64() * 1000.0),
            "Semantic function answered"
        );
        Ok(ColumnarValue::Array(column))
    }
}

impl Grouped for SemanticUdf {
    fn label(&self) -> &str {
        &self.name
    }

    fn context_index(&self) -> usize {
        let spec = &self.definition.spec;
        spec.context_arg
            .as_ref()
            .and_then(|name| spec.args.iter().position(|a| &a.name == name))
            .unwrap_or(0)
    }

    fn required(&self) -> usize {
        self.definition.required()
    }

    fn call(&self, raw: &[Option<&str>], options: &RvbbitOptions) -> Call {
        // Cached unless the function or the session says not.
        let cache = options.cache && self.definition.spec.cache != Some(false);
        Call::run(
            &self.shared.runtime,
            self.definition.cascade.clone(),
            self.input(raw),
            None,
            cache,
        )
        .with_ttl(self.definition.spec.cache_ttl)
    }

    fn runtime(&self) -> &Runtime {
        &self.shared.runtime
    }
}

/// The value an estimating statement gives in place of an answer: `true` (so a `WHERE` keeps every row
/// and later functions are estimated on all of them), 0 or an empty text.
fn placeholder(returns: SqlType) -> Option<Typed> {
    Some(match returns {
        SqlType::Boolean => Typed::Bool(true),
        SqlType::Integer => Typed::Int(0),
        SqlType::Double => Typed::Float(0.0),
        SqlType::Varchar | SqlType::Json | SqlType::DoubleList | SqlType::Table => Typed::Text(String::new()),
    })
}

impl SemanticUdf {
    /// Under `EXPLAIN`: record what the batch would ask (distinct rows, cache hits, calls, prompt bytes)
    /// and give placeholders.
    async fn estimate(&self, stmt: &Statement, plan: &BatchPlan, options: &RvbbitOptions) -> ColumnarValue {
        let runtime = &self.shared.runtime;
        let cached = calls::cached_count(runtime, &plan.calls).await;
        let open: Vec<&Value> = plan.calls.iter().map(batch::input_of).collect();
        let open = &open[..open
            .len()
            .saturating_sub(usize::try_from(cached).unwrap_or(usize::MAX))];
        let (calls, rows_per_call, prompt_bytes) = match &self.definition.batching {
            Ok(b) if b.rows_per_prompt(options.semantic_batch_size) > 1 => {
                b.estimate(open, options.semantic_batch_size)
            }
            _ => {
                let instructions = self
                    .definition
                    .cascade
                    .template
                    .cascade
                    .cells
                    .iter()
                    .filter_map(|c| c.instructions.as_ref())
                    .map(String::len)
                    .sum::<usize>();
                let bytes: usize = open.iter().map(|v| v.to_string().len() + instructions).sum();
                (open.len() as u64, 1, bytes as u64)
            }
        };
        let rows = plan.slots.iter().filter(|s| !matches!(s, Slot::Null)).count() as u64;
        let stages = self.cheap(options).map(|(cheap, confidence)| {
            let main = self
                .definition
                .batching
                .as_ref()
                .ok()
                .and_then(|b| b.main_model())
                .unwrap_or(&runtime.settings.default_model);
            format!(
                "two stages: {cheap} first ({calls} call(s)), keeping answers of confidence >= {confidence}; \
                 then {main} for the rest (up to {calls} call(s) more)"
            )
        });
        stmt.estimate(
            &self.name,
            Estimate {
                rows,
                distinct: (plan.calls.len() + plan.known.len()) as u64,
                cached: cached + plan.known.len() as u64,
                calls,
                rows_per_call,
                prompt_bytes,
                cascade: Some(self.definition.cascade.clone()),
                stages,
            },
        );
        let fill = placeholder(self.definition.returns());
        ColumnarValue::Array(self.column(
            &plan.slots,
            &vec![fill.clone(); plan.calls.len()],
            &vec![fill; plan.known.len()],
        ))
    }

    fn plan_batch(
        &self,
        stmt: &Statement,
        cols: &[StringArray],
        n: usize,
        options: &RvbbitOptions,
    ) -> BatchPlan {
        let required = self.definition.required();
        let mut plan = BatchPlan {
            slots: Vec::with_capacity(n),
            calls: Vec::new(),
            known: Vec::new(),
            pending: Vec::new(),
        };
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut seen: HashMap<Vec<Option<&str>>, Slot> = HashMap::new();
        for row in 0..n {
            let raw: Vec<Option<&str>> = (0..cols.len()).map(|i| get(cols.get(i), row)).collect();
            if raw.iter().take(required).any(Option::is_none) {
                plan.slots.push(Slot::Null);
                continue;
            }
            if let Some(&slot) = seen.get(&raw) {
                plan.slots.push(slot);
                continue;
            }
            let memo_key = args_key(&self.tag, &raw);
            let slot = if let Some(answer) = stmt.known_answer(&memo_key) {
                plan.known.push(answer);
                Slot::Known(plan.known.len() - 1)
            } else {
                let call = self.call(&raw, options);
                let next = plan.calls.len();
                let i = *index.entry(call.key.clone()).or_insert(next);
                if i == next {
                    plan.calls.push(call);
                }
                plan.pending.push((i, memo_key));
                Slot::Call(i)
            };
            seen.insert(raw, slot);
            plan.slots.push(slot);
        }
        plan
    }

    /// The cascade input `{arg_name: value}`: the given arguments, then the defaults of the optional
    /// ones left out or NULL (an empty text when there is no default).
    fn input(&self, raw: &[Option<&str>]) -> Value {
        let mut input = Map::new();
        for (i, arg) in self.definition.spec.args.iter().enumerate() {
            let value = match (raw.get(i).copied().flatten(), &arg.default) {
                (Some(v), _) => Value::String(v.to_owned()),
                (None, Some(Value::String(d))) => Value::String(d.clone()),
                (None, Some(Value::Null) | None) => Value::String(String::new()),
                (None, Some(other)) => Value::String(other.to_string()),
            };
            input.insert(arg.name.clone(), value);
        }
        Value::Object(input)
    }

    /// Each answer typed, or `None` (NULL) when it failed or does not parse; with `udf_errors = 'raise'`
    /// the first such answer fails the statement.
    fn typed(
        &self,
        stmt: &Statement,
        answers: &[Answer],
        options: &RvbbitOptions,
        fresh: bool,
    ) -> Result<Vec<Option<Typed>>> {
        let returns = self.definition.returns();
        answers
            .iter()
            .map(|answer| {
                let problem = match answer {
                    Answer::Ok(doc) => match coerce(returns, doc.get("final_output").unwrap_or(&Value::Null))
                    {
                        Ok(typed) => return Ok(Some(typed)),
                        Err(message) => {
                            let message = format!("{} returns {}: {message}", self.name, returns.as_str());
                            if fresh {
                                stmt.note_error(&message);
                            }
                            message
                        }
                    },
                    // The failed run was counted and noted where it ran.
                    Answer::Failed { message, .. } => format!("{} failed: {message}", self.name),
                };
                match options.udf_errors {
                    UdfErrors::Raise => Err(Error::FunctionFailed {
                        message: format!("{problem} (caller {})", stmt.caller_id),
                    }
                    .into_datafusion()),
                    UdfErrors::Text if returns == SqlType::Varchar => {
                        let short: String = problem.chars().take(50).collect();
                        Ok(Some(Typed::Text(format!("ERROR: {short}"))))
                    }
                    UdfErrors::Null | UdfErrors::Text => Ok(None),
                }
            })
            .collect()
    }

    /// The output column of the declared type.
    fn column(&self, slots: &[Slot], fresh: &[Option<Typed>], known: &[Option<Typed>]) -> ArrayRef {
        let value = |slot: &Slot| match slot {
            Slot::Null => None,
            Slot::Call(i) => fresh.get(*i).cloned().flatten(),
            Slot::Known(j) => known.get(*j).cloned().flatten(),
        };
        let n = slots.len();
        match self.definition.returns() {
            SqlType::Boolean => {
                let mut b = BooleanBuilder::with_capacity(n);
                for s in slots {
                    b.append_option(match value(s) {
                        Some(Typed::Bool(v)) => Some(v),
                        _ => None,
                    });
                }
                Arc::new(b.finish())
            }
            SqlType::Integer => {
                let mut b = Int64Builder::with_capacity(n);
                for s in slots {
                    b.append_option(match value(s) {
                        Some(Typed::Int(v)) => Some(v),
                        _ => None,
                    });
                }
                Arc::new(b.finish())
            }
            SqlType::Double => {
                let mut b = Float64Builder::with_capacity(n);
                for s in slots {
                    b.append_option(match value(s) {
                        Some(Typed::Float(v)) => Some(v),
                        _ => None,
                    });
                }
                Arc::new(b.finish())
            }
            SqlType::Varchar | SqlType::Json | SqlType::DoubleList | SqlType::Table => {
                let mut b = StringBuilder::with_capacity(n, n * 16);
                for s in slots {
                    match value(s) {
                        Some(Typed::Text(t)) => b.append_value(t),
                        _ => b.append_null(),
                    }
                }
                Arc::new(b.finish())
            }
        }
    }
}

/// A function this version cannot run (a DIMENSION or PIPELINE operator, a `DOUBLE[]` or
/// `TABLE` result): planning a call fails with `message`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct Unsupported {
    name: String,
    message: String,
    signature: Signature,
}

impl Unsupported {
    /// `name`, failing with `message`.
    pub(crate) fn new(name: String, message: String) -> Unsupported {
        Unsupported {
            name,
            message,
            signature: Signature::one_of(
                vec![TypeSignature::Nullary, TypeSignature::VariadicAny],
                Volatility::Volatile,
            ),
        }
    }
}

impl ScalarUDFImpl for Unsupported {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Err(Error::Invalid {
            message: self.message.clone(),
        }
        .into_datafusion())
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Err(Error::Invalid {
            message: self.message.clone(),
        }
        .into_datafusion())
    }
}
