//! What `EXPLAIN RVBBIT MAP` / `EXPLAIN RVBBIT RUN` return: a one-column `plan` result and the estimated
//! cost line from the store's history.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use rvbbit_core::MicroUsd;

use crate::error::{Error, Result};
use crate::runtime::CostHistory;

/// A one-column `plan` result.
pub(crate) fn plan_lines(lines: &[String]) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let schema = Arc::new(Schema::new(vec![Field::new("plan", DataType::Utf8, false)]));
    let column: ArrayRef = Arc::new(StringArray::from(lines.to_vec()));
    let batch = RecordBatch::try_new(schema.clone(), vec![column]).map_err(|e| Error::Execution {
        message: e.to_string(),
    })?;
    Ok((schema, vec![batch]))
}

/// The estimated cost line of `EXPLAIN RVBBIT MAP`: calls to make × the average cost of earlier runs.
pub(crate) fn estimate_line(to_make: u64, history: Option<CostHistory>) -> String {
    if to_make == 0 {
        return "  estimated cost: $0 (every distinct run is in the result cache)".to_owned();
    }
    match history {
        Some(h) => {
            let total = MicroUsd::from_micros(
                h.average
                    .micros()
                    .saturating_mul(i64::try_from(to_make).unwrap_or(i64::MAX)),
            );
            format!(
                "  estimated cost: ${} = {to_make} run(s) × ${} (the average of {} earlier completed run(s) of \
                 this cascade content in the store, any model)",
                total.to_decimal_string(),
                h.average.to_decimal_string(),
                h.runs
            )
        }
        None => format!(
            "  estimated cost: unknown (no history: no completed run of this cascade content in the store); \
             {to_make} run(s) to make"
        ),
    }
}
