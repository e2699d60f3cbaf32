//! `for_each_row` cells (§5, ADV): run a cascade once per row of an earlier cell's table, as child runs
//! `<session>_row_<index>_<hex>` (at most `max_parallel` at once, through `map_cascade`'s machinery), with
//! `inputs` rendered per row over `row`, `index`, `input`, `state` and `outputs`.
//!
//! The output is `{results, count, total, failed, errors, session_ids, rows, columns, row_count, _route}`:
//! `rows` are the table's rows with `result_output`, `result_state`, `result_session_id` and
//! `result_status` added, so later SQL reads them as `_<cell>` and, with `result_table: _name`, as `_name`
//! too. `on_error`: `continue` (the default) and `collect_errors` keep going and list failed rows in
//! `errors` (`_route: partial` when some failed); `fail_fast` fails the cell when a row failed (rows
//! already started finish first). The cell fails when every row failed.

use rvbbit_cascade::model::Cell;
use serde_json::{Map, Value, json};

use super::deterministic::tool_error;
use super::validators::tool_ctx;
use crate::error::{Error, Result};
use crate::run::{CellResult, Run};
use crate::tools::ToolError;
use crate::tools::spawn::{ItemResult, map_all};

/// What `on_error` allows.
const ON_ERROR: &[&str] = &["continue", "fail_fast", "collect_errors"];

/// A table name as cells write it (`_load` or `load`) to the cell whose output it is.
fn cell_of(table: &str) -> &str {
    table.strip_prefix('_').unwrap_or(table)
}

/// The rows of the earlier cell `table` names.
fn rows_of(run: &Run<'_>, cell: &Cell, table: &str) -> Result<Vec<Value>> {
    let name = cell_of(table);
    let failed = |message: String| Error::ToolFailed {
        cell: cell.name.clone(),
        tool: "for_each_row".into(),
        message,
    };
    let Some(output) = run.outputs.get(name) else {
        let known: Vec<&str> = run.outputs.keys().map(String::as_str).collect();
        return Err(failed(format!(
            "`for_each_row.table` `{table}` is no earlier cell's table (earlier cells: {})",
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        )));
    };
    match output.get("rows").and_then(Value::as_array) {
        Some(rows) => Ok(rows.clone()),
        None => Err(failed(format!(
            "`for_each_row.table` `{table}`: cell `{name}` produced no table (an output with `rows`, such as sql_data's)"
        ))),
    }
}

/// The row with the child's result columns added.
fn with_result(row: &Value, result: &ItemResult) -> Value {
    let mut out = match row {
        Value::Object(o) => o.clone(),
        other => Map::from_iter([("value".to_owned(), other.clone())]),
    };
    let (output, state, session, status) = match result {
        Ok(done) => (
            done.output.clone(),
            Value::Object(done.state.clone()),
            json!(done.session_id),
            "completed",
        ),
        Err((session, _)) => (Value::Null, Value::Null, json!(session), "failed"),
    };
    out.insert("result_output".into(), output);
    out.insert("result_state".into(), state);
    out.insert("result_session_id".into(), session);
    out.insert("result_status".into(), json!(status));
    Value::Object(out)
}

/// Run a `for_each_row` cell.
pub(crate) async fn run(run: &mut Run<'_>, cell: &Cell) -> Result<CellResult> {
    let Some(spec) = cell.for_each_row.as_ref() else {
        return Err(Error::Unsupported {
            cell: cell.name.clone(),
            feature: "a for_each_row cell without its block".into(),
        });
    };
    let Some(cascade) = spec.cascade.as_deref() else {
        return Err(Error::Unsupported {
            cell: cell.name.clone(),
            feature: "for_each_row with `instructions` (name a `cascade` to run per row)".into(),
        });
    };
    let on_error = spec.on_error.as_deref().unwrap_or("continue");
    let failed = |message: String| tool_error(cell, "for_each_row", ToolError::InvalidArguments(message));
    if !ON_ERROR.contains(&on_error) {
        return Err(failed(format!(
            "`on_error` must be one of {} (got `{on_error}`)",
            ON_ERROR.join(", ")
        )));
    }
    let table = spec.table.as_deref().unwrap_or_default();
    let rows = rows_of(run, cell, table)?;
    let mut args =
        json!({"cascade": cascade, "map_over": rows, "max_parallel": spec.max_parallel.unwrap_or(5)});
    match &spec.inputs {
        Some(inputs) => args["input_mapping"] = Value::Object(inputs.clone()),
        None => args["input_key"] = json!("row"),
    }
    let ctx = tool_ctx(run, cell);
    let results = map_all("for_each_row", &args, &ctx, "row")
        .await
        .map_err(|e| tool_error(cell, "for_each_row", e))?;
    let total = results.len();
    let mut errors = Vec::new();
    for (index, r) in results.iter().enumerate() {
        if let Err((session, error)) = r {
            errors.push(json!({"index": index, "session_id": session, "error": error}));
        }
    }
    let first = || errors[0]["error"].as_str().unwrap_or_default().to_owned();
    if total > 0 && errors.len() == total {
        return Err(failed(format!(
            "every one of the {total} rows failed; row 0: {}",
            first()
        )));
    }
    if on_error == "fail_fast" && !errors.is_empty() {
        return Err(failed(format!(
            "row {} failed (on_error: fail_fast): {}",
            errors[0]["index"],
            first()
        )));
    }
    let table_rows: Vec<Value> = rows
        .iter()
        .zip(&results)
        .map(|(row, r)| with_result(row, r))
        .collect();
    let columns: Vec<String> = table_rows
        .first()
        .and_then(Value::as_object)
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    let output = json!({
        "results": results.iter().map(|r| r.as_ref().map(|d| d.output.clone()).unwrap_or(Value::Null)).collect::<Vec<_>>(),
        "session_ids": results.iter().map(|r| match r {
            Ok(d) => json!(d.session_id),
            Err((s, _)) => json!(s),
        }).collect::<Vec<_>>(),
        "count": total - errors.len(),
        "total": total,
        "failed": errors.len(),
        "errors": errors,
        "rows": table_rows,
        "columns": columns,
        "row_count": total,
        "_route": if errors.is_empty() { "success" } else { "partial" },
    });
    if let Some(name) = spec
        .result_table
        .as_deref()
        .map(cell_of)
        .filter(|n| !n.is_empty() && *n != cell.name)
    {
        run.outputs.insert(name.to_owned(), output.clone());
    }
    Ok(CellResult { output, route: None })
}
