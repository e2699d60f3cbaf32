//! A statement's rows as a text table, CSV or JSON objects (for the CLI and later the HTTP API).

use datafusion::arrow::csv::WriterBuilder;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::session::QueryResult;

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
