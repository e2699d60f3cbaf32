//! Running a pipeline: the query, then each stage on the table so far. A cascade stage is asked once
//! per part of the table that fits `rvbbit.semantic_context_bytes` (concurrently, cached, counted
//! against `rvbbit.max_calls`); its answers, concatenated, are the next table. `EXPLAIN` shows the
//! query's plan and what each stage would do, and runs nothing.

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use serde_json::{Map, Value};

use super::table::{answer_rows, parts, rows_table};
use super::{Pipeline, Runs, Stage};
use crate::calls::{self, Call};
use crate::error::{Error, Result};
use crate::options::RvbbitOptions;
use crate::plan::Planner;
use crate::statement::{Answer, Statement};

/// Run `pipeline` (or explain it) in the statement `stmt`.
pub(crate) async fn run(
    planner: &Planner<'_>,
    stmt: &Arc<Statement>,
    pipeline: Pipeline,
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let options = planner.rvbbit_options();
    if pipeline.explain {
        let df = planner
            .plan_and_check(&format!("EXPLAIN {}", pipeline.query))
            .await?;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let mut batches = df.collect().await.map_err(Error::from_datafusion)?;
        let mut lines = crate::explain::estimate_lines(planner, &pipeline.query, stmt).await;
        lines.extend(explain_lines(&pipeline, &options));
        batches.push(crate::explain::estimate_batch(&schema, &lines)?);
        return Ok((schema, batches));
    }
    let df = Box::pin(planner.plan_and_check(&pipeline.query)).await?;
    let mut schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let mut batches = df.collect().await.map_err(Error::from_datafusion)?;
    for (stage, values) in &pipeline.stages {
        (schema, batches) = match &stage.runs {
            Runs::Native(native) => native.run(schema, batches, values).await?,
            Runs::Cascade { .. } => {
                let asked = Asked {
                    planner,
                    stmt,
                    options: &options,
                };
                asked.stage(stage, values, &schema, &batches).await?
            }
        };
    }
    match &pipeline.target {
        None => Ok((schema, batches)),
        Some(target) => into_target(planner, target, schema, batches).await,
    }
}

/// `CREATE TABLE name AS` / `INSERT INTO name` (`target`) of the stages' result, run as that statement
/// over the result held in a session table for the while.
async fn into_target(
    planner: &Planner<'_>,
    target: &str,
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let table = super::nested::hold(planner, schema, batches)?;
    let ran = async {
        let df = Box::pin(planner.plan_and_check(&format!("{target} SELECT * FROM {table}"))).await?;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let batches = df.collect().await.map_err(Error::from_datafusion)?;
        Ok::<_, Error>((schema, batches))
    }
    .await;
    super::nested::drop_tables(planner, std::slice::from_ref(&table));
    ran
}

/// One `EXPLAIN` line per stage: what it runs and how many calls it makes.
fn explain_lines(pipeline: &Pipeline, options: &RvbbitOptions) -> Vec<String> {
    pipeline
        .stages
        .iter()
        .map(|(stage, values)| {
            let shown: Vec<String> = values.iter().map(|v| format!("'{v}'")).collect();
            let what = match &stage.runs {
                Runs::Native(_) => "SQL over the table so far, no model call".to_owned(),
                Runs::Cascade { definition, .. } => format!(
                    "the cascade of `{}`: one call per part of the table of at most \
                     rvbbit.semantic_context_bytes = {} bytes (cached)",
                    definition.name, options.semantic_context_bytes
                ),
            };
            format!("pipeline: {} [{}]: {what}", stage.spelling(), shown.join(", "))
        })
        .collect()
}

/// What a cascade stage needs of the statement.
struct Asked<'a> {
    planner: &'a Planner<'a>,
    stmt: &'a Arc<Statement>,
    options: &'a RvbbitOptions,
}

impl Asked<'_> {
    /// Ask the stage's cascade for the next table, part by part.
    async fn stage(
        &self,
        stage: &Stage,
        values: &[String],
        schema: &SchemaRef,
        batches: &[RecordBatch],
    ) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        let Runs::Cascade { definition, args } = &stage.runs else {
            return Ok((schema.clone(), batches.to_vec()));
        };
        let spelling = stage.spelling();
        let rows = crate::result::json_rows(batches)?;
        let budget = self.options.semantic_context_bytes;
        let parts = parts(&rows, budget);
        if parts.oversized > 0 {
            self.stmt.note(&format!(
                "{spelling}: {} row(s) are longer than rvbbit.semantic_context_bytes = {budget} alone and \
                 were sent in a part of their own (raise it with SET rvbbit.semantic_context_bytes = n)",
                parts.oversized
            ));
        }
        let spec = &definition.spec;
        let runtime = &self.planner.shared.runtime;
        let cache = self.options.cache && spec.cache != Some(false);
        let columns: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        let columns = serde_json::to_string(&columns).unwrap_or_default();
        let n = parts.arrays.len();
        let calls: Vec<Call> = parts
            .arrays
            .iter()
            .enumerate()
            .map(|(i, array)| {
                let mut input = Map::new();
                for arg in &spec.args {
                    let given = args
                        .iter()
                        .position(|a| a == &arg.name)
                        .and_then(|p| values.get(p));
                    let value = match (given, &arg.default) {
                        (Some(v), _) => v.clone(),
                        (None, Some(Value::String(d))) => d.clone(),
                        (None, Some(Value::Null) | None) => String::new(),
                        (None, Some(other)) => other.to_string(),
                    };
                    input.insert(arg.name.clone(), Value::String(value));
                }
                input.insert("_table".into(), Value::String(array.clone()));
                input.insert("_columns".into(), Value::String(columns.clone()));
                input.insert("_part".into(), Value::from(i + 1));
                input.insert("_parts".into(), Value::from(n));
                Call::run(
                    runtime,
                    definition.cascade.clone(),
                    Value::Object(input),
                    None,
                    cache,
                )
                .with_ttl(spec.cache_ttl)
            })
            .collect();
        let answers = calls::answer_within(runtime, self.stmt, calls, self.options.max_calls).await?;
        let mut rows = Vec::new();
        for (i, answer) in answers.iter().enumerate() {
            match answer {
                Answer::Ok(doc) => rows.extend(answer_rows(doc.get("final_output").unwrap_or(&Value::Null))),
                Answer::Failed { message, .. } => {
                    return Err(Error::Execution {
                        message: format!(
                            "the stage {spelling} (`{}`) failed on part {} of {n} of the table: {message}",
                            definition.name,
                            i + 1
                        ),
                    });
                }
            }
        }
        if n > 1 {
            self.stmt.note(&format!(
                "{spelling}: the table was asked in {n} parts of at most rvbbit.semantic_context_bytes = \
                 {budget} bytes; the answers of the parts are put one after the other"
            ));
        }
        let (schema, batch) = rows_table(&rows, schema)?;
        Ok((schema, vec![batch]))
    }
}
