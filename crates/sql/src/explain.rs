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

/// The line `EXPLAIN` adds for one semantic function (or `rvbbit_udf`): what it would ask, from the
/// statement's dry run (nothing called), and a cost from the store's history of one-row runs.
pub(crate) fn semantic_line(
    function: &str,
    e: &crate::statement::Estimate,
    history: Option<CostHistory>,
) -> String {
    let to_ask = e.distinct.saturating_sub(e.cached);
    let cost = match (to_ask, history) {
        (0, _) => "cost $0".to_owned(),
        (_, Some(h)) => format!(
            "cost at most about ${} ({to_ask} row(s) × ${}, the average of {} earlier one-row run(s); asking \
             many rows per call costs less)",
            MicroUsd::from_micros(
                h.average
                    .micros()
                    .saturating_mul(i64::try_from(to_ask).unwrap_or(i64::MAX))
            )
            .to_decimal_string(),
            h.average.to_decimal_string(),
            h.runs
        ),
        (_, None) => "cost unknown (no earlier run of this function in the store)".to_owned(),
    };
    format!(
        "{function}: {} row(s), {} distinct, {} in the cache -> {} call(s) of up to {} row(s), about {} \
         prompt tokens; {cost}",
        e.rows,
        e.distinct,
        e.cached,
        e.calls,
        e.rows_per_call.max(1),
        e.prompt_bytes.div_ceil(4)
    )
}
