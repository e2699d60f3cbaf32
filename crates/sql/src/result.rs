//! A statement's result ([`QueryResult`], [`StatementStats`]) and its rows as a text table, CSV or JSON
//! objects (for the CLI and the HTTP API); JSON rows back into an in-memory table ([`rows_table`]).

use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::csv::WriterBuilder;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::json::ReaderBuilder;
use datafusion::arrow::json::reader::infer_json_schema_from_iterator;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::catalog::MemTable;
use rvbbit_core::{CallerId, MicroUsd};
use rvbbit_engine::tools::ToolError;
use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};

/// The Arrow field metadata key of an extension type.
pub(crate) const EXTENSION_KEY: &str = "ARROW:extension:name";
/// The extension name that marks a text column as JSON (`json` over the wire).
pub(crate) const JSON_EXTENSION: &str = "arrow.json";

/// A nullable text column tagged as JSON.
pub(crate) fn json_field(name: &str) -> datafusion::arrow::datatypes::Field {
    datafusion::arrow::datatypes::Field::new(name, datafusion::arrow::datatypes::DataType::Utf8, true)
        .with_metadata([(EXTENSION_KEY.to_owned(), JSON_EXTENSION.to_owned())].into())
}

fn failed(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Execution {
        message: format!("the result cannot be written as {what}: {e}"),
    }
}

/// Totals of one statement's rvbbit function calls.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StatementStats {
    /// Engine runs (sessions) made: distinct calls that missed the cache.
    pub runs: u64,
    /// Provider calls made by those runs.
    pub llm_calls: u64,
    /// Distinct calls served from the persistent result cache.
    pub cache_hits: u64,
    /// Calls that failed (NULL, `ERROR: …` or a failure document).
    pub errors: u64,
    /// Calls not made because a MAP statement's `budget_dollars` was spent (their rows get NULL).
    pub skipped: u64,
    /// Cost of the runs.
    pub cost: MicroUsd,
    /// What the cache hits would have cost.
    pub avoided_cost: MicroUsd,
}

/// The result of one statement.
#[derive(Debug)]
pub struct QueryResult {
    /// The columns.
    pub schema: SchemaRef,
    /// The rows.
    pub batches: Vec<RecordBatch>,
    /// The statement's caller id (every session it started carries it).
    pub caller_id: CallerId,
    /// Calls, cache hits, errors and cost.
    pub stats: StatementStats,
    /// Messages for the user (a PostgreSQL NOTICE on the wire, warnings on the CLI).
    pub notices: Vec<String>,
    /// Wall time.
    pub duration: Duration,
}

impl QueryResult {
    /// The first column of the first row as text (`None`: NULL, or no row or column).
    pub fn first_value(&self) -> Option<String> {
        let (name, _) = self.columns().into_iter().next()?;
        let rows = self.to_json_rows().ok()?;
        match rows.first()?.get(&name)? {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }
    }

    /// Number of rows.
    pub fn row_count(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

impl QueryResult {
    /// `(name, type)` of every column.
    pub fn columns(&self) -> Vec<(String, String)> {
        self.schema
            .fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().to_string()))
            .collect()
    }

    /// A boxed text table with a header (an empty result still shows the header).
    ///
    /// Errors: [`Error::Execution`] for a value arrow cannot print.
    /// A statement without columns (DDL, `SET`) gives the empty string.
    pub fn to_table(&self) -> Result<String> {
        if self.schema.fields().is_empty() {
            return Ok(String::new());
        }
        let batches: Vec<RecordBatch> = if self.batches.is_empty() {
            vec![RecordBatch::new_empty(self.schema.clone())]
        } else {
            self.batches.clone()
        };
        pretty_format_batches(&batches)
            .map(|t| t.to_string())
            .map_err(|e| failed("a table", e))
    }

    /// CSV with a header line.
    ///
    /// Errors: [`Error::Execution`] for a value arrow cannot write as CSV (nested types).
    pub fn to_csv(&self) -> Result<String> {
        let mut buf = Vec::new();
        {
            let mut writer = WriterBuilder::new().with_header(true).build(&mut buf);
            if self.batches.is_empty() {
                writer
                    .write(&RecordBatch::new_empty(self.schema.clone()))
                    .map_err(|e| failed("CSV", e))?;
            }
            for batch in &self.batches {
                writer.write(batch).map_err(|e| failed("CSV", e))?;
            }
        }
        String::from_utf8(buf).map_err(|e| failed("CSV", e))
    }

    /// One JSON object per row (NULL columns are present as `null`).
    ///
    /// Errors: [`Error::Execution`] for a value arrow cannot write as JSON.
    pub fn to_json_rows(&self) -> Result<Vec<Value>> {
        json_rows(&self.batches)
    }
}

/// One JSON object per row of `batches` (NULL columns are present as `null`).
pub(crate) fn json_rows(batches: &[RecordBatch]) -> Result<Vec<Value>> {
    let mut buf = Vec::new();
    {
        let mut writer = datafusion::arrow::json::WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, datafusion::arrow::json::writer::JsonArray>(&mut buf);
        for batch in batches {
            writer.write(batch).map_err(|e| failed("JSON", e))?;
        }
        writer.finish().map_err(|e| failed("JSON", e))?;
    }
    if buf.is_empty() {
        return Ok(Vec::new());
    }
    match serde_json::from_slice::<Value>(&buf).map_err(|e| failed("JSON", e))? {
        Value::Array(rows) => Ok(rows),
        other => Ok(vec![other]),
    }
}

/// JSON objects as an in-memory table, column types inferred from all rows; with no rows, `columns` as
/// text columns.
pub(crate) fn rows_table(rows: &[Value], columns: &[String]) -> Result<MemTable, ToolError> {
    let failed = |e: &dyn std::fmt::Display| {
        ToolError::Failed(format!("a table of an earlier cell cannot be read: {e}"))
    };
    let schema = if rows.is_empty() {
        // No rows to infer from: the named columns as text.
        Schema::new(
            columns
                .iter()
                .map(|n| Field::new(n, DataType::Utf8, true))
                .collect::<Vec<_>>(),
        )
    } else {
        infer_json_schema_from_iterator(rows.iter().map(Ok)).map_err(|e| failed(&e))?
    };
    let schema = Arc::new(schema);
    let mut batches: Vec<RecordBatch> = Vec::new();
    if !rows.is_empty() {
        let mut decoder = ReaderBuilder::new(schema.clone())
            .build_decoder()
            .map_err(|e| failed(&e))?;
        decoder.serialize(rows).map_err(|e| failed(&e))?;
        if let Some(batch) = decoder.flush().map_err(|e| failed(&e))? {
            batches.push(batch);
        }
    }
    MemTable::try_new(schema, vec![batches]).map_err(|e| failed(&e))
}
