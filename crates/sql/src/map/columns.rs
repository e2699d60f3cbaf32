//! The columns of a MAP statement: a USING column named by an option, the first row per value
//! (`dedupe_by`), and typed result columns (`AS (col type, ...)`, `infer_schema`).

use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use serde_json::Value;

use crate::cascade::LoadedCascade;
use crate::error::{Error, Result};

/// The column of `schema` named `name` (exactly, else ignoring case) for MAP option `option`.
pub(super) fn column_named(schema: &Schema, option: &str, name: &str) -> Result<String> {
    let fields = schema.fields();
    let found = fields
        .iter()
        .find(|f| f.name() == name)
        .or_else(|| fields.iter().find(|f| f.name().eq_ignore_ascii_case(name)));
    match found {
        Some(f) => Ok(f.name().clone()),
        None => {
            let names: Vec<&str> = fields.iter().map(|f| f.name().as_str()).collect();
            Err(Error::Argument {
                message: format!(
                    "MAP option `{option}` names `{name}`, which is not a column of the USING query \
                     (its columns: {})",
                    names.join(", ")
                ),
            })
        }
    }
}

/// The first row of each distinct value of `column` (NULLs count as one value), in input order.
pub(super) fn first_row_per_value(batch: &RecordBatch, column: &str) -> Result<RecordBatch> {
    let failed = |e: datafusion::arrow::error::ArrowError| Error::Execution {
        message: e.to_string(),
    };
    let values = batch.column_by_name(column).ok_or_else(|| Error::Execution {
        message: format!("column `{column}` disappeared from the USING rows"),
    })?;
    let formatter = datafusion::arrow::util::display::ArrayFormatter::try_new(
        values.as_ref(),
        &datafusion::arrow::util::display::FormatOptions::default(),
    )
    .map_err(failed)?;
    let mut seen = std::collections::HashSet::new();
    let mut keep = Vec::new();
    for row in 0..batch.num_rows() {
        let value = if values.is_null(row) {
            None
        } else {
            Some(formatter.value(row).to_string())
        };
        if seen.insert(value) {
            keep.push(u32::try_from(row).unwrap_or(u32::MAX));
        }
    }
    let indices = datafusion::arrow::array::UInt32Array::from(keep);
    let columns = batch
        .columns()
        .iter()
        .map(|c| datafusion::arrow::compute::take(c.as_ref(), &indices, None))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(failed)?;
    RecordBatch::try_new(batch.schema(), columns).map_err(failed)
}

/// `WITH (infer_schema = true)`: typed result columns from the properties of the last cell's
/// `output_schema` (string → VARCHAR, integer → BIGINT, number → DOUBLE, boolean → BOOLEAN, array and
/// object → JSON text).
pub(super) fn inferred_columns(cascade: &LoadedCascade) -> Result<Vec<(String, DataType)>> {
    let missing = || Error::Argument {
        message: format!(
            "MAP option `infer_schema` needs an `output_schema` with `properties` on the last cell of \
             cascade `{}`; add one, or name the columns with AS (col type, ...)",
            cascade.cascade_id()
        ),
    };
    let schema = cascade.final_schema().ok_or_else(missing)?;
    let properties = schema
        .get("properties")
        .and_then(Value::as_object)
        .filter(|p| !p.is_empty())
        .ok_or_else(missing)?;
    Ok(properties
        .iter()
        .map(|(name, spec)| {
            let ty = match spec.get("type").and_then(Value::as_str) {
                Some("integer") => DataType::Int64,
                Some("number") => DataType::Float64,
                Some("boolean") => DataType::Boolean,
                _ => DataType::Utf8,
            };
            (name.clone(), ty)
        })
        .collect())
}

/// The Arrow type of a MAP column type name (`AS (col type, ...)`).
pub(super) fn sql_type(name: &str) -> Option<DataType> {
    match name {
        "VARCHAR" | "TEXT" | "STRING" | "JSON" => Some(DataType::Utf8),
        "BIGINT" | "INTEGER" | "INT" => Some(DataType::Int64),
        "DOUBLE" | "FLOAT" | "REAL" => Some(DataType::Float64),
        "BOOLEAN" | "BOOL" => Some(DataType::Boolean),
        _ => None,
    }
}
