//! `RVBBIT RUN` (spec §5) and `rvbbit_run_batch(path, rows_json_array, table)`: one cascade run over a
//! whole result set.
//!
//! The rows become a table of the caller's session (`as_table`, or `_rvbbit_batch_<8 hex>`), the cascade
//! runs once (session `batch-<woodland>`, the statement's caller id) with the input
//! `{"data_table": <table>, "row_count": n}`, and its `sql_data` cells see the same table under that name
//! while the run lasts (the table is shared in memory with the run, by session id). The statement returns
//! one row, column `result`: `{status, session_id, table_created, row_count, has_errors, outputs,
//! final_output, cost_usd}`, or `{error, status: "failed", session_id, ...}` when the run failed. Batch runs
//! are never cached (the input names a table, not its content).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, StringArray, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{MemTable, TableProvider};
use datafusion::common::TableReference;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::async_udf::AsyncScalarUDFImpl;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::batch_args::text_columns;
use crate::calls::{self, Call};
use crate::error::{Error, Result};
use crate::explain::plan_lines;
use crate::map::MapStatement;
use crate::plan::Planner;
use crate::result::rows_table;
use crate::shared::Shared;
use crate::statement::{Answer, Statement};

/// `_rvbbit_batch_<8 hex>` from what identifies the statement and the time.
fn batch_table_name(seed: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let hash = hex::encode(Sha256::digest(format!("{seed}|{now}").as_bytes()));
    format!("_rvbbit_batch_{}", &hash[..8])
}

/// Register `table` as `name` in the caller's session, replacing a table of that name it made.
fn register(shared: &Shared, name: &str, table: Arc<dyn TableProvider>) -> Result<()> {
    let schema = shared.schema();
    // Replacing: a table of that name may or may not exist, and the session schema's deregistering
    // never fails.
    let _ = datafusion::catalog::SchemaProvider::deregister_table(schema.as_ref(), name);
    datafusion::catalog::SchemaProvider::register_table(schema.as_ref(), name.to_owned(), table)
        .map(|_| ())
        .map_err(Error::from_datafusion)
}

/// The result document of a batch run.
fn result_doc(answer: &Answer, table: &str, rows: usize) -> Value {
    match answer {
        Answer::Ok(doc) => json!({
            "status": "success",
            "session_id": doc.get("session_id"),
            "table_created": table,
            "row_count": rows,
            "has_errors": false,
            "outputs": doc.get("outputs"),
            "final_output": doc.get("final_output"),
            "cost_usd": doc.get("cost_usd"),
        }),
        Answer::Failed { message, document } => json!({
            "error": message,
            "status": "failed",
            "session_id": document.get("session_id"),
            "table_created": table,
            "row_count": rows,
            "has_errors": true,
            "outputs": document.get("outputs"),
            "cost_usd": document.get("cost_usd"),
        }),
    }
}

/// Execute a parsed `RVBBIT RUN` (or its `EXPLAIN` / `CREATE TABLE … AS` form).
pub(crate) async fn execute_run(
    planner: &Planner<'_>,
    stmt: &Arc<Statement>,
    map: MapStatement,
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let limit = map
        .whole_option("limit")?
        .unwrap_or(planner.rvbbit_options().run_default_limit);
    let model = map.text_option("model", "a string")?;
    let as_table = map.text_option("as_table", "a table name such as 'orders_batch'")?;
    let shared = planner.shared;
    let runtime = &shared.runtime;
    let cascade = runtime
        .cascade(stmt, &map.cascade)
        .map_err(|message| Error::Invalid { message })?;
    let input_sql = format!(
        "SELECT * FROM ({}) AS rvbbit_input LIMIT {}",
        map.using,
        limit + 1
    );
    let (input_schema, input, truncated) = planner.limited_rows(&input_sql, limit).await?;
    if truncated {
        stmt.notes.lock().unwrap_or_else(|p| p.into_inner()).push(format!(
            "the USING query has more than {limit} rows; only the first {limit} were passed to the \
             cascade (raise it with WITH (limit = n) or SET rvbbit.run_default_limit)"
        ));
    }
    let rows = input.num_rows();
    let table_name = as_table.unwrap_or_else(|| batch_table_name(&format!("{}|{}", map.cascade, map.using)));

    if map.explain {
        let cost = match runtime.cost_history(&cascade).await {
            Some(h) => format!(
                "${} (the average of {} earlier completed run(s) of this cascade content in the store)",
                h.average.to_decimal_string(),
                h.runs
            ),
            None => "unknown (no history: no completed run of this cascade content in the store)".into(),
        };
        let lines = [
            format!("RVBBIT RUN '{}'", map.cascade),
            format!("  input: {input_sql}"),
            format!(
                "  rows: {rows}{}",
                if truncated {
                    format!(" (cut at LIMIT {limit})")
                } else {
                    String::new()
                }
            ),
            format!("  table: {table_name} (the cascade reads it with sql_data)"),
            "  cascade runs: 1 (batch runs are not cached)".to_owned(),
            format!("  estimated cost: {cost}"),
            "  EXPLAIN made no LLM call".to_owned(),
        ];
        return plan_lines(&lines);
    }

    let table: Arc<dyn TableProvider> =
        Arc::new(MemTable::try_new(input_schema.clone(), vec![vec![input]]).map_err(Error::from_datafusion)?);
    register(shared, &table_name, table.clone())?;
    let call = Call::batch(
        runtime,
        cascade,
        json!({"data_table": table_name, "row_count": rows}),
        model.as_deref(),
        (table_name.clone(), table, table_name.clone()),
    );
    let answers = calls::answer(runtime, stmt, vec![call]).await?;
    let doc = answers
        .first()
        .map(|a| result_doc(a, &table_name, rows))
        .unwrap_or(Value::Null);
    let schema = Arc::new(Schema::new(vec![Field::new("result", DataType::Utf8, false)]));
    let column: ArrayRef = Arc::new(StringArray::from(vec![doc.to_string()]));
    let batch = RecordBatch::try_new(schema.clone(), vec![column]).map_err(|e| Error::Execution {
        message: e.to_string(),
    })?;
    if let Some(name) = &map.create_table {
        let mem = MemTable::try_new(schema, vec![vec![batch]]).map_err(Error::from_datafusion)?;
        planner
            .ctx
            .register_table(TableReference::bare(name.clone()), Arc::new(mem))
            .map_err(Error::from_datafusion)?;
        return Ok((Arc::new(Schema::empty()), Vec::new()));
    }
    Ok((schema, vec![batch]))
}

/// Every name `rvbbit_run_batch` answers to.
pub(crate) const BATCH_NAMES: &[&str] = &["rvbbit_run_batch", "lars_run_batch"];

/// `rvbbit_run_batch(path, rows_json_array, table)`: the function form of `RVBBIT RUN`.
#[derive(Debug)]
pub(crate) struct RunBatch {
    name: &'static str,
    signature: Signature,
    shared: Arc<Shared>,
}

impl RunBatch {
    pub(crate) fn new(name: &'static str, shared: Arc<Shared>) -> Self {
        RunBatch {
            name,
            signature: Signature::one_of(
                vec![TypeSignature::Any(2), TypeSignature::Any(3)],
                Volatility::Volatile,
            ),
            shared,
        }
    }
}

impl PartialEq for RunBatch {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && Arc::ptr_eq(&self.shared, &other.shared)
    }
}

impl Eq for RunBatch {}

impl Hash for RunBatch {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
        Arc::as_ptr(&self.shared).hash(state);
    }
}

impl ScalarUDFImpl for RunBatch {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        Err(Error::Execution {
            message: format!("{} cannot be evaluated synchronously", self.name),
        }
        .into_datafusion())
    }
}

fn failed(message: &str) -> String {
    json!({"error": message, "status": "failed"}).to_string()
}

#[async_trait]
impl AsyncScalarUDFImpl for RunBatch {
    async fn invoke_async_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let n = args.number_rows;
        let cols: Vec<StringArray> = text_columns(&args)?;
        let get = |c: usize, row: usize| cols.get(c).filter(|a| !a.is_null(row)).map(|a| a.value(row));
        let stmt = self.shared.statement();
        let mut out = StringBuilder::with_capacity(n, n * 64);
        // Identical argument tuples in a batch run once.
        let mut done: HashMap<(String, String, Option<String>), String> = HashMap::new();
        for row in 0..n {
            let (Some(path), Some(rows_json)) = (get(0, row), get(1, row)) else {
                out.append_null();
                continue;
            };
            let wanted = get(2, row).filter(|t| !t.trim().is_empty()).map(str::to_owned);
            let key = (path.to_owned(), rows_json.to_owned(), wanted.clone());
            if let Some(doc) = done.get(&key) {
                out.append_value(doc);
                continue;
            }
            let doc = match self.run_one(&stmt, path, rows_json, wanted).await {
                Ok(doc) => doc,
                Err(message) => failed(&message),
            };
            out.append_value(&doc);
            done.insert(key, doc);
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

impl RunBatch {
    async fn run_one(
        &self,
        stmt: &Arc<Statement>,
        path: &str,
        rows_json: &str,
        wanted: Option<String>,
    ) -> std::result::Result<String, String> {
        let runtime = &self.shared.runtime;
        let rows: Vec<Value> = match serde_json::from_str(rows_json) {
            Ok(Value::Array(rows)) if rows.iter().all(Value::is_object) => rows,
            Ok(_) => return Err("rows_json_array must be a JSON array of objects".into()),
            Err(e) => return Err(format!("rows_json_array is not valid JSON: {e}")),
        };
        let cascade = runtime.cascade(stmt, path)?;
        let table = rows_table(&rows, &[]).map_err(|e| e.to_string())?;
        let table: Arc<dyn TableProvider> = Arc::new(table);
        let name = wanted.unwrap_or_else(|| batch_table_name(&format!("{path}|{rows_json}")));
        register(&self.shared, &name, table.clone()).map_err(|e| e.to_string())?;
        let rows_hash = hex::encode(Sha256::digest(rows_json.as_bytes()));
        let call = Call::batch(
            runtime,
            cascade,
            json!({"data_table": name, "row_count": rows.len()}),
            None,
            (name.clone(), table, rows_hash),
        );
        let answers = calls::answer(runtime, stmt, vec![call])
            .await
            .map_err(|e| e.to_string())?;
        Ok(answers
            .first()
            .map(|a| result_doc(a, &name, rows.len()))
            .unwrap_or(Value::Null)
            .to_string())
    }
}
