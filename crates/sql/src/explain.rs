//! What `EXPLAIN RVBBIT MAP` / `EXPLAIN RVBBIT RUN` return: a one-column `plan` result and the estimated
//! cost line from the store's history; and the `rvbbit_estimate` rows `EXPLAIN <query>` adds for the
//! semantic functions, from a dry run of the query ([`estimate_lines`]).

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use rvbbit_core::MicroUsd;

use crate::error::{Error, Result};
use crate::plan::Planner;
use crate::runtime::CostHistory;
use crate::statement::Statement;

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
    let stages = e.stages.as_ref().map(|s| format!("; {s}")).unwrap_or_default();
    format!(
        "{function}: {} row(s), {} distinct, {} in the cache -> {} call(s) of up to {} row(s), about {} \
         prompt tokens; {cost}{stages}",
        e.rows,
        e.distinct,
        e.cached,
        e.calls,
        e.rows_per_call.max(1),
        e.prompt_bytes.div_ceil(4)
    )
}

/// Run `query` as a dry run (its rvbbit functions record what they would ask and call nothing;
/// DIMENSION calls read their distinct values only) and describe what each would do.
pub(crate) async fn estimate_lines(planner: &Planner<'_>, query: &str, stmt: &Arc<Statement>) -> Vec<String> {
    let dry = Arc::new(Statement::new(stmt.caller_id.clone()).estimating());
    if let Some(with) = stmt.options() {
        dry.set_options(with.clone());
    }
    planner.shared.set(Some(dry.clone()));
    let ran = async {
        let df = planner.plan_and_check(query).await?;
        df.collect().await.map_err(Error::from_datafusion)
    }
    .await;
    planner.shared.set(Some(stmt.clone()));
    if let Err(e) = ran {
        return vec![format!("rvbbit estimate not available: {e}")];
    }
    let mut lines: Vec<String> = dry
        .annotations()
        .and_then(|a| a.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .map(|a| format!("{}: annotated -- @ {a}", a["call"].as_str().unwrap_or_default()))
        .collect();
    for (function, estimate) in dry.estimates() {
        let history = match &estimate.cascade {
            Some(cascade) => planner.shared.runtime.cost_history(cascade).await,
            None => None,
        };
        lines.push(semantic_line(&function, &estimate, history));
    }
    lines
}

/// The query of `EXPLAIN <query>` (a SELECT or WITH query; not `EXPLAIN ANALYZE`, `VERBOSE` or
/// `FORMAT`, and never a statement that writes).
pub(crate) fn explained_query(sql: &str) -> Option<&str> {
    let t = sql.trim_start();
    let head = t.get(..7)?;
    if !head.eq_ignore_ascii_case("explain") {
        return None;
    }
    let rest = t[7..].trim_start();
    let word: String = rest
        .chars()
        .take_while(char::is_ascii_alphabetic)
        .collect::<String>()
        .to_ascii_lowercase();
    matches!(word.as_str(), "select" | "with").then_some(rest)
}

/// The `EXPLAIN` rows of `lines`, as `plan_type` `rvbbit_estimate` in the schema of the plan's result.
pub(crate) fn estimate_batch(schema: &SchemaRef, lines: &[String]) -> Result<RecordBatch> {
    let text = |values: Vec<&str>| -> datafusion::arrow::array::ArrayRef {
        Arc::new(datafusion::arrow::array::StringArray::from(values))
    };
    let mut columns = vec![
        text(vec!["rvbbit_estimate"; lines.len()]),
        text(lines.iter().map(String::as_str).collect()),
    ];
    for (column, field) in columns.iter_mut().zip(schema.fields()) {
        *column =
            datafusion::arrow::compute::cast(column, field.data_type()).map_err(|e| Error::Execution {
                message: e.to_string(),
            })?;
    }
    if columns.len() != schema.fields().len() {
        return Err(Error::Execution {
            message: "the EXPLAIN result has an unexpected shape".into(),
        });
    }
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| Error::Execution {
        message: e.to_string(),
    })
}
