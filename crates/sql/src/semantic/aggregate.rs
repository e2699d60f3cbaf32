//! The arguments of one batch of an AGGREGATE function ([`columns`]): each row is a group, whose
//! context argument (`context_arg`, else the first) holds the group's values (a list, from the
//! `array_agg` the planner wrapped it in). The group's non-NULL values, sorted, become the JSON array of strings
//! the function reads; over `rvbbit.semantic_context_bytes` they are answered map-reduce: one call per
//! chunk of values, then calls on the JSON array of the partial answers, until one array fits. That
//! last array is the context of the group's final call, which runs like a SCALAR call (memo, cache,
//! typing). A failed call makes the group NULL (noted; `raise` fails the statement).

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, GenericListArray, OffsetSizeTrait, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::error::Result;
use datafusion::logical_expr::ScalarFunctionArgs;
use serde_json::Value;

use super::chunk::chunk;
use crate::batch_args::{get, text_column};
use crate::calls::{self, Call};
use crate::error::Error;
use crate::options::{RvbbitOptions, UdfErrors};
use crate::runtime::Runtime;
use crate::statement::{Answer, Statement};

/// What the map-reduce needs of the function it runs for (`udf.rs`'s `SemanticUdf`).
pub(super) trait Grouped: Sync {
    /// The name it is called by, for messages.
    fn label(&self) -> &str;
    /// The position of the argument that reads the group's values.
    fn context_index(&self) -> usize;
    /// How many leading arguments are required.
    fn required(&self) -> usize;
    /// The call of its cascade on one argument tuple.
    fn call(&self, raw: &[Option<&str>], options: &RvbbitOptions) -> Call;
    /// The runtime its calls run in.
    fn runtime(&self) -> &Runtime;
}

/// Where a group stands in the map-reduce.
enum Group {
    /// NULL: no values, a NULL required argument, or a failed call.
    Null,
    /// The JSON arrays still to answer (one: the final call's context).
    Chunks(Vec<String>),
}

/// The text argument columns of one batch of `udf` (an AGGREGATE function), the context column holding
/// each group's final JSON array (after any map-reduce calls).
pub(super) async fn columns(
    udf: &dyn Grouped,
    args: &ScalarFunctionArgs,
    stmt: &Arc<Statement>,
    options: &RvbbitOptions,
) -> Result<Vec<StringArray>> {
    let n = args.number_rows;
    let ctx = udf.context_index();
    let mut cols = args
        .args
        .iter()
        .enumerate()
        .map(|(i, a)| {
            if i == ctx {
                Ok(StringArray::new_null(n))
            } else {
                text_column(a, n)
            }
        })
        .collect::<Result<Vec<_>>>()?;
    let Some(values) = args.args.get(ctx) else {
        return Ok(cols);
    };
    let mut values = group_values(&values.clone().into_array(n)?)?;
    let budget = options.semantic_context_bytes;
    let mut truncated = 0;
    let mut groups: Vec<Group> = (0..n)
        .map(|row| {
            let other_null = (0..udf.required()).any(|i| i != ctx && get(cols.get(i), row).is_none());
            match values.get_mut(row) {
                Some(Some(v)) if !v.is_empty() && !other_null => {
                    // Rows reach a group in no set order: sorted, the same group makes the same
                    // prompts (and hits the cache) every time.
                    v.sort_unstable();
                    let chunks = chunk(v, budget);
                    truncated += chunks.truncated;
                    Group::Chunks(chunks.arrays)
                }
                _ => Group::Null,
            }
        })
        .collect();
    if truncated > 0 {
        stmt.notes.lock().unwrap_or_else(|p| p.into_inner()).push(format!(
            "{}: {truncated} value(s) longer than rvbbit.semantic_context_bytes = {budget} were cut to fit \
             (raise it with SET rvbbit.semantic_context_bytes = n)",
            udf.label()
        ));
    }
    while groups
        .iter()
        .any(|g| matches!(g, Group::Chunks(c) if c.len() > 1))
    {
        reduce_round(udf, &cols, &mut groups, stmt, options).await?;
    }
    let context: StringArray = groups
        .iter()
        .map(|g| match g {
            Group::Chunks(c) => c.first().map(String::as_str),
            Group::Null => None,
        })
        .collect();
    if let Some(slot) = cols.get_mut(ctx) {
        *slot = context;
    }
    Ok(cols)
}

/// One round: every group of several chunks calls once per chunk, and its partial answers become its
/// values for the next round (or its final context, when they fit one array).
async fn reduce_round(
    udf: &dyn Grouped,
    cols: &[StringArray],
    groups: &mut [Group],
    stmt: &Arc<Statement>,
    options: &RvbbitOptions,
) -> Result<()> {
    let ctx = udf.context_index();
    let mut batch: Vec<Call> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    // Per group: the call index of each of its chunks.
    let mut asked: Vec<(usize, Vec<usize>)> = Vec::new();
    for (row, group) in groups.iter().enumerate() {
        let Group::Chunks(chunks) = group else { continue };
        if chunks.len() < 2 {
            continue;
        }
        let mut mine = Vec::with_capacity(chunks.len());
        for array in chunks {
            let raw: Vec<Option<&str>> = (0..cols.len())
                .map(|i| {
                    if i == ctx {
                        Some(array.as_str())
                    } else {
                        get(cols.get(i), row)
                    }
                })
                .collect();
            let call = udf.call(&raw, options);
            let next = batch.len();
            let i = *index.entry(call.key.clone()).or_insert(next);
            if i == next {
                batch.push(call);
            }
            mine.push(i);
        }
        asked.push((row, mine));
    }
    let answers = calls::answer_within(udf.runtime(), stmt, batch, options.max_calls)
        .await
        .map_err(Error::into_datafusion)?;
    for (row, mine) in asked {
        let mut partials = Vec::with_capacity(mine.len());
        let mut failed = None;
        for i in &mine {
            match answers.get(*i) {
                Some(Answer::Ok(doc)) => partials.push(text(doc.get("final_output"))),
                Some(Answer::Failed { message, .. }) => failed = Some(message.clone()),
                None => failed = Some("no answer".to_owned()),
            }
        }
        let next = match failed {
            // The failed run was counted and noted where it ran.
            Some(message) => fail(stmt, options, format!("{} failed: {message}", udf.label()), false)?,
            None => {
                let chunks = chunk(&partials, options.semantic_context_bytes).arrays;
                if chunks.len() > 1 && chunks.len() >= mine.len() {
                    let message = format!(
                        "{}: the partial answers of a group do not fit rvbbit.semantic_context_bytes = {}; \
                         raise it with SET rvbbit.semantic_context_bytes = n",
                        udf.label(),
                        options.semantic_context_bytes
                    );
                    fail(stmt, options, message, true)?
                } else {
                    Group::Chunks(chunks)
                }
            }
        };
        if let Some(group) = groups.get_mut(row) {
            *group = next;
        }
    }
    Ok(())
}

/// A group that cannot be answered: NULL (noted when `note`), or the statement's error under
/// `rvbbit.udf_errors = 'raise'`.
fn fail(stmt: &Statement, options: &RvbbitOptions, message: String, note: bool) -> Result<Group> {
    if note {
        stmt.note_error(&message);
    }
    match options.udf_errors {
        UdfErrors::Raise => Err(Error::FunctionFailed {
            message: format!("{message} (caller {})", stmt.caller_id),
        }
        .into_datafusion()),
        UdfErrors::Null | UdfErrors::Text => Ok(Group::Null),
    }
}

/// A partial answer as text: a string as is, another JSON value as its text, none as empty.
fn text(output: Option<&Value>) -> String {
    match output {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// Each row's non-NULL values as text: a list's items, or a lone value as a group of one (a call whose
/// argument was already an aggregate, `summarize(string_agg(x, ' '))`). `None` for a NULL row.
fn group_values(array: &ArrayRef) -> Result<Vec<Option<Vec<String>>>> {
    match array.data_type() {
        DataType::List(_) => list_values::<i32>(array),
        DataType::LargeList(_) => list_values::<i64>(array),
        _ => {
            let text = cast(array, &DataType::Utf8)?;
            let text = text.as_any().downcast_ref::<StringArray>();
            Ok((0..array.len())
                .map(|row| get(text, row).map(|v| vec![v.to_owned()]))
                .collect())
        }
    }
}

/// The rows of a list array, each as its non-NULL items in text.
fn list_values<O: OffsetSizeTrait>(array: &ArrayRef) -> Result<Vec<Option<Vec<String>>>> {
    let Some(list) = array.as_any().downcast_ref::<GenericListArray<O>>() else {
        return Ok(vec![None; array.len()]);
    };
    (0..list.len())
        .map(|row| {
            if list.is_null(row) {
                return Ok(None);
            }
            let items = cast(&list.value(row), &DataType::Utf8)?;
            let items = items.as_any().downcast_ref::<StringArray>();
            Ok(Some(
                (0..items.map_or(0, Array::len))
                    .filter_map(|i| get(items, i).map(str::to_owned))
                    .collect(),
            ))
        })
        .collect()
}
