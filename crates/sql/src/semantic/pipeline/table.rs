//! A stage's table as its cascade reads and answers it: rows as JSON objects, cut into parts that fit
//! `rvbbit.semantic_context_bytes` ([`parts`]), and the answered rows back as a table ([`rows_table`]),
//! keeping a column's type when every answered value still has it.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray, new_null_array,
};
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// Rows cut into parts.
#[derive(Debug, Default)]
pub(crate) struct Parts {
    /// Each part as the JSON array of its rows, in order.
    pub(crate) arrays: Vec<String>,
    /// Rows over the budget alone (each sent in a part of its own).
    pub(crate) oversized: usize,
}

/// Cut `rows` (JSON objects) into JSON arrays of at most `budget` bytes; a row over the budget alone
/// is a part of its own (counted in [`Parts::oversized`]). An empty table is one empty part, so the
/// stage still answers (ANALYZE of no rows).
pub(crate) fn parts(rows: &[Value], budget: usize) -> Parts {
    let mut out = Parts::default();
    let mut current: Vec<String> = Vec::new();
    let mut used = 2;
    for row in rows {
        let text = row.to_string();
        let len = text.len() + usize::from(!current.is_empty());
        if !current.is_empty() && used + len > budget {
            out.arrays.push(format!("[{}]", current.join(",")));
            current.clear();
            used = 2;
        }
        if text.len() + 2 > budget {
            out.oversized += 1;
        }
        used += text.len() + usize::from(!current.is_empty());
        current.push(text);
    }
    if !current.is_empty() || out.arrays.is_empty() {
        out.arrays.push(format!("[{}]", current.join(",")));
    }
    out
}

/// The rows of one answer: a JSON array of objects, an object holding one (`{"rows": […]}`), or one
/// object; a JSON value of another kind, or plain text, is one row `{"result": …}`.
pub(crate) fn answer_rows(answer: &Value) -> Vec<Map<String, Value>> {
    let parsed = match answer {
        Value::String(text) => {
            let body = unfenced(text);
            serde_json::from_str::<Value>(body).unwrap_or_else(|_| Value::String(text.trim().to_owned()))
        }
        other => other.clone(),
    };
    let one = |v: Value| match v {
        Value::Object(map) => map,
        other => Map::from_iter([("result".to_owned(), other)]),
    };
    match parsed {
        Value::Array(items) => items.into_iter().map(one).collect(),
        Value::Object(mut map) if map.len() == 1 && map.get("rows").is_some_and(Value::is_array) => {
            match map.remove("rows") {
                Some(Value::Array(items)) => items.into_iter().map(one).collect(),
                _ => Vec::new(),
            }
        }
        other => vec![one(other)],
    }
}

/// `text` without a surrounding Markdown code fence.
fn unfenced(text: &str) -> &str {
    let t = text.trim();
    let Some(inner) = t.strip_prefix("```") else {
        return t;
    };
    let inner = inner.strip_suffix("```").unwrap_or(inner);
    // The fence's language tag (`json`) ends at the first line break.
    inner.split_once('\n').map_or(inner, |(_, rest)| rest).trim()
}

/// The answered rows as a table: the columns in order of first appearance; a column of `before` keeps
/// its type when every value converts to it, any other column is typed by its values (all booleans,
/// all integers, all numbers, else text; objects and arrays as JSON text).
pub(crate) fn rows_table(
    rows: &[Map<String, Value>],
    before: &SchemaRef,
) -> Result<(SchemaRef, RecordBatch)> {
    let mut names: Vec<String> = Vec::new();
    for row in rows {
        for key in row.keys() {
            if !names.contains(key) {
                names.push(key.clone());
            }
        }
    }
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for name in &names {
        let values: Vec<Option<&Value>> = rows
            .iter()
            .map(|r| r.get(name).filter(|v| !v.is_null()))
            .collect();
        let inferred = inferred_column(&values);
        let kept = before
            .field_with_name(name)
            .ok()
            .and_then(|f| kept_type(&inferred, f.data_type()));
        let column = kept.unwrap_or(inferred);
        fields.push(Field::new(name, column.data_type().clone(), true));
        columns.push(column);
    }
    let schema: SchemaRef = Arc::new(Schema::new(fields));
    let options = RecordBatchOptions::new().with_row_count(Some(rows.len()));
    let batch = RecordBatch::try_new_with_options(schema.clone(), columns, &options).map_err(|e| {
        Error::Execution {
            message: format!("the stage's rows do not make a table: {e}"),
        }
    })?;
    Ok((schema, batch))
}

/// `column` as `target`, when no value is lost on the way.
fn kept_type(column: &ArrayRef, target: &DataType) -> Option<ArrayRef> {
    if column.data_type() == target {
        return Some(column.clone());
    }
    let options = CastOptions {
        safe: false,
        ..CastOptions::default()
    };
    cast_with_options(column, target, &options)
        .ok()
        .filter(|cast| cast.null_count() == column.null_count())
}

/// A column of JSON values typed by what they all are.
fn inferred_column(values: &[Option<&Value>]) -> ArrayRef {
    let present = || values.iter().flatten();
    if present().next().is_none() {
        return new_null_array(&DataType::Utf8, values.len());
    }
    if present().all(|v| v.is_boolean()) {
        return Arc::new(BooleanArray::from_iter(
            values.iter().map(|v| v.and_then(Value::as_bool)),
        ));
    }
    if present().all(|v| v.is_i64()) {
        return Arc::new(Int64Array::from_iter(
            values.iter().map(|v| v.and_then(Value::as_i64)),
        ));
    }
    if present().all(|v| v.is_number()) {
        return Arc::new(Float64Array::from_iter(
            values.iter().map(|v| v.and_then(Value::as_f64)),
        ));
    }
    Arc::new(StringArray::from_iter(values.iter().map(|v| {
        v.map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    })))
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::Array;
    use serde_json::json;

    use super::*;

    #[test]
    fn rows_are_cut_into_parts_that_fit() {
        let rows: Vec<Value> = (0..10).map(|i| json!({"id": i, "name": "abcdefgh"})).collect();
        let one = rows[0].to_string().len();
        let p = parts(&rows, 2 + 3 * one + 2);
        assert_eq!(p.arrays.len(), 4);
        let back: Vec<Value> = p
            .arrays
            .iter()
            .flat_map(|a| serde_json::from_str::<Vec<Value>>(a).unwrap())
            .collect();
        assert_eq!(back, rows);
        assert!(p.arrays.iter().all(|a| a.len() <= 2 + 3 * one + 2));
        assert_eq!(p.oversized, 0);
        assert_eq!(parts(&rows, 5).oversized, 10);
        assert_eq!(parts(&[], 100).arrays, ["[]"]);
    }

    #[test]
    fn answers_are_read_as_rows_in_every_usual_wrapping() {
        let rows = |v: Value| answer_rows(&v).into_iter().map(Value::Object).collect::<Vec<_>>();
        assert_eq!(rows(json!("```json\n[{\"a\": 1}]\n```")), [json!({"a": 1})]);
        assert_eq!(rows(json!({"rows": [{"a": 1}, {"a": 2}]})).len(), 2);
        assert_eq!(rows(json!({"answer": "x"})), [json!({"answer": "x"})]);
        assert_eq!(rows(json!("plain words")), [json!({"result": "plain words"})]);
        assert_eq!(
            rows(json!([1, {"b": 2}])),
            [json!({"result": 1}), json!({"b": 2})]
        );
    }

    #[test]
    fn a_column_keeps_its_type_unless_a_value_would_be_lost() {
        let before: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int32, false),
            Field::new("price", DataType::Float64, true),
        ]));
        let rows: Vec<Map<String, Value>> = [
            json!({"id": 1, "price": "2.5", "tag": true}),
            json!({"id": 2, "price": null, "tag": false, "extra": {"x": 1}}),
        ]
        .into_iter()
        .map(|v| v.as_object().unwrap().clone())
        .collect();
        let (schema, batch) = rows_table(&rows, &before).unwrap();
        let types: Vec<String> = schema
            .fields()
            .iter()
            .map(|f| f.data_type().to_string())
            .collect();
        assert_eq!(types, ["Int32", "Float64", "Boolean", "Utf8"]);
        assert_eq!(batch.num_rows(), 2);
        assert!(batch.column(3).is_null(0));
        // `id` cannot stay an integer when a value is text that is not one.
        let odd: Vec<Map<String, Value>> = vec![json!({"id": "one"}).as_object().unwrap().clone()];
        let (schema, _) = rows_table(&odd, &before).unwrap();
        assert_eq!(schema.field(0).data_type(), &DataType::Utf8);
    }
}
