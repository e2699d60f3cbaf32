//! Executing a parsed `RVBBIT MAP` natively: its options are read and checked, the USING rows are read,
//! each distinct row becomes one `rvbbit_run` call, and the rows come back with a result column (or typed
//! columns); `EXPLAIN` describes the plan instead, `CREATE TABLE … AS` / `as_table` store the result.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, StringArray};
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::MemTable;
use datafusion::common::TableReference;
use rvbbit_core::MicroUsd;
use serde_json::{Value, json};

use super::columns::{column_named, first_row_per_value, inferred_columns, sql_type};
use super::parse::MapStatement;
use crate::calls::{self, Call};
use crate::cascade::LoadedCascade;
use crate::error::{Error, Result};
use crate::explain::{estimate_line, plan_lines};
use crate::plan::Planner;
use crate::result::{json_field, json_rows};
use crate::runtime::Runtime;
use crate::statement::{Answer, Statement};

/// The options of one MAP statement, read and checked before anything runs.
struct MapOptions {
    limit: u64,
    cache: bool,
    /// `cache = '1h'`: how long the statement's new cache entries are served (LARS's time-limited cache).
    cache_ttl: Option<u64>,
    model: Option<String>,
    parallel: Option<usize>,
    key: Option<String>,
    dedupe_by: Option<String>,
    /// `errors = 'column'`: a `<result>_error` column says why a row's result is NULL.
    error_column: bool,
    infer_schema: bool,
    result_column: String,
    /// `AS (col type, ...)`: typed result columns.
    typed: Vec<(String, DataType)>,
    /// `distributed = true` (or `rvbbit.distributed`): the rows run as jobs on the queue.
    distributed: bool,
}

impl MapOptions {
    /// Read the options of `map` (in the order their errors are reported) and apply `PARALLEL` and
    /// `budget_dollars` to `stmt`.
    fn read(map: &MapStatement, planner: &Planner<'_>, stmt: &Statement) -> Result<MapOptions> {
        let limit = map
            .whole_option("limit")?
            .unwrap_or(planner.rvbbit_options().map_default_limit);
        let (cache, cache_ttl) = map.cache_option()?;
        let model = map.text_option("model", "a string")?;
        let parallel = match map.whole_option("parallel")? {
            Some(n) => Some(usize::try_from(n).unwrap_or(usize::MAX)),
            None => map.parallel,
        };
        if let Some(n) = parallel {
            // A fresh statement has no limit yet: setting it cannot fail, and a second set would keep
            // the first (the same `n`).
            let _ = stmt.parallel.set(Arc::new(tokio::sync::Semaphore::new(n)));
        }
        if let Some(d) = map.dollars_option("budget_dollars")? {
            let micros = MicroUsd::from_usd_f64(d)
                .ok_or_else(|| map.bad_option("budget_dollars", "a dollar amount"))?;
            // As for `parallel`: the first and only budget of the statement.
            let _ = stmt.budget.set(micros.micros());
        }
        let column_name = "a column name of the USING query, such as 'id'";
        let key = map.text_option("key", column_name)?;
        let dedupe_by = map.text_option("dedupe_by", column_name)?;
        let errors_want = "'null' (the default) or 'column'";
        let error_column = match map.text_option("errors", errors_want)? {
            None => false,
            Some(t) if t.eq_ignore_ascii_case("column") => true,
            Some(t) if t.eq_ignore_ascii_case("null") => false,
            Some(_) => return Err(map.bad_option("errors", errors_want)),
        };
        let infer_schema = map.flag_option("infer_schema")?.unwrap_or(false);
        if infer_schema && !map.typed.is_empty() {
            return Err(Error::Argument {
                message: "MAP has both `AS (col type, ...)` and `WITH (infer_schema = true)`; keep one"
                    .into(),
            });
        }
        let result_column = match &map.alias {
            Some(alias) => alias.clone(),
            None => map
                .text_option("result_column", "a column name such as 'tag'")?
                .unwrap_or_else(|| "result".to_owned()),
        };
        // Typed columns are checked before anything runs.
        let mut typed = Vec::with_capacity(map.typed.len());
        for (name, ty) in &map.typed {
            let target = sql_type(ty).ok_or_else(|| Error::Argument {
                message: format!(
                    "unknown column type `{ty}` for `{name}`; use VARCHAR, TEXT, JSON, BIGINT, INTEGER, DOUBLE or BOOLEAN"
                ),
            })?;
            typed.push((name.clone(), target));
        }
        let distributed = map
            .flag_option("distributed")?
            .unwrap_or(planner.rvbbit_options().distributed);
        if distributed && model.is_some() {
            return Err(Error::Argument {
                message: "MAP option `model` cannot be combined with `distributed = true` yet: workers \
                          run the cascade with its own models; drop one of them"
                    .into(),
            });
        }
        Ok(MapOptions {
            distributed,
            limit,
            cache,
            cache_ttl,
            model,
            parallel,
            key,
            dedupe_by,
            error_column,
            infer_schema,
            result_column,
            typed,
        })
    }
}

/// The USING rows of a MAP statement, cut at its limit and deduplicated.
struct MapInput {
    /// The text of the query the rows came from.
    sql: String,
    schema: SchemaRef,
    rows: RecordBatch,
    /// The USING query had more rows than the limit.
    truncated: bool,
    /// The `key` column, when the option names one.
    key: Option<String>,
}

/// The distinct calls of a MAP statement and, for each row, the call whose answer it gets.
struct MapCalls {
    calls: Vec<Call>,
    slots: Vec<usize>,
}

/// Execute a parsed `RVBBIT MAP` (natively: the USING rows → concurrent cascade runs → the rows plus a
/// result column), its `EXPLAIN`, or its `CREATE TABLE … AS` form.
pub(crate) async fn execute_map(
    planner: &Planner<'_>,
    stmt: &Arc<Statement>,
    map: MapStatement,
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let mut options = MapOptions::read(&map, planner, stmt)?;
    let runtime = &planner.shared.runtime;
    // The cascade path is a literal: a missing or invalid cascade fails the statement before any call.
    let cascade = runtime
        .cascade(stmt, &map.cascade)
        .map_err(|message| Error::Invalid { message })?;
    if options.infer_schema {
        options.typed = inferred_columns(&cascade)?;
    }
    let input = read_input(planner, stmt, &map, &options).await?;
    let planned = plan_calls(runtime, &cascade, &input, &options)?;
    if map.explain {
        let lines = explain(runtime, &cascade, &map, &options, &input, &planned).await;
        return plan_lines(&lines);
    }
    let answers = if options.distributed {
        let window = options.parallel.unwrap_or(
            runtime
                .settings
                .concurrency
                .saturating_mul(crate::runtime::RUN_WINDOW),
        );
        let d = super::distributed::Distribute::new(&planner.rvbbit_options(), window);
        super::distributed::answer(runtime, stmt, planned.calls, &d).await?
    } else {
        calls::answer(runtime, stmt, planned.calls).await?
    };
    // The last cell's `output_schema` makes the (untyped) result column JSON.
    let json_result = cascade.final_schema().is_some();
    let (schema, batch) = result_batch(&input, &planned.slots, &answers, options, json_result)?;
    let as_table = map.text_option("as_table", "a table name such as 'tagged'")?;
    if let Some(table) = map.create_table.as_ref().or(as_table.as_ref()) {
        store_table(planner, table, &schema, &batch, map.create_table.is_none())?;
        if map.create_table.is_some() {
            let empty = Arc::new(Schema::empty());
            return Ok((empty, Vec::new()));
        }
    }
    Ok((schema, vec![batch]))
}

/// Read the USING rows (one more than the limit, to know whether it cut), note a cut, resolve the `key`
/// column and apply `dedupe_by`.
async fn read_input(
    planner: &Planner<'_>,
    stmt: &Statement,
    map: &MapStatement,
    options: &MapOptions,
) -> Result<MapInput> {
    let limit = options.limit;
    let select = if map.distinct {
        "SELECT DISTINCT *"
    } else {
        "SELECT *"
    };
    let sql = format!(
        "{select} FROM ({}) AS rvbbit_input LIMIT {}",
        map.using,
        limit + 1
    );
    let (schema, mut rows, truncated) = planner.limited_rows(&sql, limit).await?;
    if truncated {
        stmt.notes.lock().unwrap_or_else(|p| p.into_inner()).push(format!(
            "the USING query has more than {limit} rows; only the first {limit} were mapped \
             (raise it with WITH (limit = n) or SET rvbbit.map_default_limit)"
        ));
    }
    // `key`: rows with the same (non-NULL) value in that column share the first such row's run.
    let key = options
        .key
        .as_ref()
        .map(|k| column_named(&schema, "key", k))
        .transpose()?;
    // `dedupe_by`: keep the first row of each value of that column (DISTINCT ON), in input order.
    if let Some(column) = &options.dedupe_by {
        let column = column_named(&schema, "dedupe_by", column)?;
        rows = first_row_per_value(&rows, &column)?;
    }
    Ok(MapInput {
        sql,
        schema,
        rows,
        truncated,
        key,
    })
}

/// One `rvbbit_run` call per distinct row (or per distinct `key` value), each recording where it came
/// from (spec §6 `source`).
fn plan_calls(
    runtime: &Runtime,
    cascade: &Arc<LoadedCascade>,
    input: &MapInput,
    options: &MapOptions,
) -> Result<MapCalls> {
    let rows = json_rows(std::slice::from_ref(&input.rows))?;
    let key = &input.key;
    let mut calls = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut by_key: HashMap<String, usize> = HashMap::new();
    let mut slots = Vec::with_capacity(rows.len());
    for (row_index, row) in rows.into_iter().enumerate() {
        let row_value = key.as_ref().and_then(|k| row.get(k)).filter(|v| !v.is_null());
        let row_key = row_value.map(Value::to_string);
        if let Some(&i) = row_key.as_ref().and_then(|k| by_key.get(k)) {
            slots.push(i);
            continue;
        }
        // Where the run came from, in its session's invocation metadata (spec §6 `source`).
        let mut source = json!({"row_index": row_index});
        if let (Some(k), Some(v)) = (key, row_value) {
            source["column"] = json!(k);
            source["row_key"] = v.clone();
        }
        let call = Call::run(
            runtime,
            cascade.clone(),
            row,
            options.model.as_deref(),
            options.cache,
        )
        .with_ttl(options.cache_ttl)
        .with_source(source);
        let next = calls.len();
        let i = *index.entry(call.key.clone()).or_insert(next);
        if i == next {
            calls.push(call);
        }
        if let Some(k) = row_key {
            by_key.insert(k, i);
        }
        slots.push(i);
    }
    Ok(MapCalls { calls, slots })
}

/// The lines of `EXPLAIN RVBBIT MAP`: input, rows, distinct runs, cache hits, concurrency and the
/// estimated cost (reads the cache and the store; makes no LLM call).
async fn explain(
    runtime: &Runtime,
    cascade: &LoadedCascade,
    map: &MapStatement,
    options: &MapOptions,
    input: &MapInput,
    planned: &MapCalls,
) -> Vec<String> {
    let (cache, limit, calls) = (options.cache, options.limit, &planned.calls);
    let cached = if cache {
        calls::cached_count(runtime, calls).await
    } else {
        0
    };
    let to_make = calls.len() as u64 - cached.min(calls.len() as u64);
    let history = runtime.cost_history(cascade).await;
    vec![
        format!("RVBBIT MAP '{}' AS {}", map.cascade, options.result_column),
        format!("  input: {}", input.sql),
        format!(
            "  rows: {}{}",
            planned.slots.len(),
            if input.truncated {
                format!(" (cut at LIMIT {limit})")
            } else {
                String::new()
            }
        ),
        format!(
            "  distinct cascade runs: at most {} (cache {}; hits are free)",
            calls.len(),
            if cache { "on" } else { "off" }
        ),
        format!(
            "  cached: {cached} of {} distinct run(s) are in the result cache{}",
            calls.len(),
            if cache { "" } else { " (not read: cache = false)" }
        ),
        if options.distributed {
            format!(
                "  distributed: row jobs on the queue, at most {} outstanding",
                options.parallel.unwrap_or(
                    runtime
                        .settings
                        .concurrency
                        .saturating_mul(crate::runtime::RUN_WINDOW)
                )
            )
        } else {
            format!(
                "  concurrency: {}",
                options.parallel.unwrap_or(runtime.settings.concurrency)
            )
        },
        estimate_line(to_make, history),
        "  EXPLAIN made no LLM call".to_owned(),
    ]
}

/// The USING rows plus the result column (text, or JSON when the cascade declares an output schema),
/// or the typed columns, plus `<result>_error` with `errors = 'column'`.
fn result_batch(
    input: &MapInput,
    slots: &[usize],
    answers: &[Answer],
    options: MapOptions,
    json_result: bool,
) -> Result<(SchemaRef, RecordBatch)> {
    let failed = |e: datafusion::arrow::error::ArrowError| Error::Execution {
        message: e.to_string(),
    };
    let finals: Vec<Option<Value>> = slots
        .iter()
        .map(|&i| match &answers[i] {
            Answer::Ok(doc) => doc.get("final_output").cloned().filter(|v| !v.is_null()),
            Answer::Failed { .. } => None,
        })
        .collect();
    // `errors = 'column'`: why a row's result is NULL (a failed or skipped run), else NULL.
    let row_errors: Option<StringArray> = options.error_column.then(|| {
        slots
            .iter()
            .map(|&i| match &answers[i] {
                Answer::Ok(_) => None,
                Answer::Failed { message, .. } => Some(message.clone()),
            })
            .collect()
    });
    let result_column = &options.result_column;
    let mut fields: Vec<Field> = input.schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    let mut columns: Vec<ArrayRef> = input.rows.columns().to_vec();
    if options.typed.is_empty() {
        let text: StringArray = finals
            .iter()
            .map(|v| {
                v.as_ref().map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
            })
            .collect();
        fields.push(if json_result {
            json_field(result_column)
        } else {
            Field::new(result_column, DataType::Utf8, true)
        });
        columns.push(Arc::new(text));
    } else {
        for (name, target) in options.typed {
            let text: StringArray = finals
                .iter()
                .map(|v| {
                    v.as_ref().and_then(|v| v.get(&name)).and_then(|x| match x {
                        Value::Null => None,
                        Value::String(s) => Some(s.clone()),
                        other => Some(other.to_string()),
                    })
                })
                .collect();
            let safe = CastOptions {
                safe: true,
                ..Default::default()
            };
            let array = cast_with_options(&text, &target, &safe).map_err(failed)?;
            fields.push(Field::new(&name, target, true));
            columns.push(array);
        }
    }
    if let Some(errors) = row_errors {
        fields.push(Field::new(format!("{result_column}_error"), DataType::Utf8, true));
        columns.push(Arc::new(errors));
    }
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), columns).map_err(failed)?;
    Ok((schema, batch))
}

/// Register the result as the session table `table`; `replace` (the `as_table` option) replaces an
/// earlier result of the same name, where `CREATE TABLE` fails on one.
fn store_table(
    planner: &Planner<'_>,
    table: &str,
    schema: &SchemaRef,
    batch: &RecordBatch,
    replace: bool,
) -> Result<()> {
    let mem = MemTable::try_new(schema.clone(), vec![vec![batch.clone()]]).map_err(|e| Error::Execution {
        message: e.to_string(),
    })?;
    if replace {
        // `as_table` replaces an earlier result of the same name; there may be none, and then there is
        // nothing to deregister.
        let _ = planner.ctx.deregister_table(TableReference::bare(table));
    }
    planner
        .ctx
        .register_table(TableReference::bare(table), Arc::new(mem))
        .map_err(Error::from_datafusion)?;
    Ok(())
}
