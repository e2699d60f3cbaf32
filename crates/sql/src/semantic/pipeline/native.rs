//! The relational stages: `THEN SAMPLE n`, `THEN TOP column n`, `THEN STATS` and `THEN PASS`, run as
//! SQL over the table so far (registered as `_table` in a context of their own), without a model.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;

use crate::error::{Error, Result};

/// A relational stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Native {
    /// `THEN SAMPLE n`: n rows picked at random.
    Sample,
    /// `THEN TOP column n`: the n rows with the largest `column` (NULLs last).
    Top,
    /// `THEN STATS`: one row per column: type, rows, non-null, distinct, min, max, mean.
    Stats,
    /// `THEN PASS`: the table unchanged.
    Pass,
}

impl Native {
    pub(crate) const ALL: [Native; 4] = [Native::Sample, Native::Top, Native::Stats, Native::Pass];

    /// The spelling after `THEN`.
    pub(crate) fn pieces(self) -> Vec<Option<String>> {
        let keyword = |w: &str| Some(w.to_owned());
        match self {
            Native::Sample => vec![keyword("SAMPLE"), None],
            Native::Top => vec![keyword("TOP"), None, None],
            Native::Stats => vec![keyword("STATS")],
            Native::Pass => vec![keyword("PASS")],
        }
    }

    /// The names of its values.
    pub(crate) fn args(self) -> &'static [&'static str] {
        match self {
            Native::Sample => &["n"],
            Native::Top => &["column", "n"],
            Native::Stats | Native::Pass => &[],
        }
    }

    /// The SQL over `_table` (with columns `schema`) the stage runs, `None` for PASS.
    fn sql(self, schema: &SchemaRef, values: &[String]) -> Result<Option<String>> {
        Ok(match self {
            Native::Pass => None,
            Native::Sample => Some(format!(
                "SELECT * FROM _table ORDER BY random() LIMIT {}",
                count(self, values.first())?
            )),
            Native::Top => {
                let column = values.first().map(String::as_str).unwrap_or_default();
                if schema.column_with_name(column).is_none() {
                    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                    return Err(Error::Argument {
                        message: format!(
                            "THEN TOP: the table has no column `{column}`; its columns are {}",
                            names.join(", ")
                        ),
                    });
                }
                Some(format!(
                    "SELECT * FROM _table ORDER BY {} DESC NULLS LAST LIMIT {}",
                    quoted(column),
                    count(self, values.get(1))?
                ))
            }
            Native::Stats => Some(stats_sql(schema)),
        })
    }

    /// Run the stage over `batches`.
    pub(crate) async fn run(
        self,
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
        values: &[String],
    ) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        let Some(sql) = self.sql(&schema, values)? else {
            return Ok((schema, batches));
        };
        let failed = |e: &dyn std::fmt::Display| Error::Execution {
            message: format!("THEN {}: {e}", self.pieces()[0].as_deref().unwrap_or_default()),
        };
        let ctx = SessionContext::new();
        let table = MemTable::try_new(schema, vec![batches]).map_err(|e| failed(&e))?;
        ctx.register_table("_table", Arc::new(table))
            .map_err(|e| failed(&e))?;
        let df = ctx.sql(&sql).await.map_err(|e| failed(&e))?;
        let out: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let batches = df.collect().await.map_err(|e| failed(&e))?;
        Ok((out, batches))
    }
}

/// A row count given to SAMPLE or TOP: a whole number.
fn count(stage: Native, value: Option<&String>) -> Result<u64> {
    let text = value.map(String::as_str).unwrap_or_default();
    text.parse::<u64>().map_err(|_| Error::Argument {
        message: format!(
            "THEN {}: `{text}` is not a number of rows; write a whole number such as 10",
            stage.pieces()[0].as_deref().unwrap_or_default()
        ),
    })
}

/// `name` as a SQL identifier.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `name` as a SQL string.
fn string(name: &str) -> String {
    format!("'{}'", name.replace('\'', "''"))
}

/// One `SELECT` per column, in order: name, type, rows, non-null, distinct, min, max (as text) and mean
/// (numbers); nested columns give NULL for what they cannot be compared by.
fn stats_sql(schema: &SchemaRef) -> String {
    if schema.fields().is_empty() {
        return "SELECT CAST(NULL AS VARCHAR) AS column WHERE false".into();
    }
    let mut parts = Vec::new();
    for (i, field) in schema.fields().iter().enumerate() {
        let c = quoted(field.name());
        let comparable = !field.data_type().is_nested();
        let numeric = field.data_type().is_numeric();
        let or_null = |yes: bool, expr: String, ty: &str| {
            if yes { expr } else { format!("CAST(NULL AS {ty})") }
        };
        parts.push(format!(
            "SELECT {i} AS position, {name} AS column, {ty} AS type, count(*) AS rows, count({c}) AS non_null, \
             {distinct} AS distinct_values, {min} AS min, {max} AS max, {mean} AS mean FROM _table",
            name = string(field.name()),
            ty = string(&type_name(field.data_type())),
            distinct = or_null(comparable, format!("count(DISTINCT {c})"), "BIGINT"),
            min = or_null(comparable, format!("CAST(min({c}) AS VARCHAR)"), "VARCHAR"),
            max = or_null(comparable, format!("CAST(max({c}) AS VARCHAR)"), "VARCHAR"),
            mean = or_null(numeric, format!("CAST(avg({c}) AS DOUBLE)"), "DOUBLE"),
        ));
    }
    format!(
        "SELECT column, type, rows, non_null, distinct_values, min, max, mean FROM ({}) ORDER BY position",
        parts.join(" UNION ALL ")
    )
}

/// The SQL name of a column type.
fn type_name(t: &DataType) -> String {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "VARCHAR".into(),
        DataType::Int64 => "BIGINT".into(),
        DataType::Int32 => "INTEGER".into(),
        DataType::Float64 => "DOUBLE".into(),
        DataType::Boolean => "BOOLEAN".into(),
        other => other.to_string(),
    }
}
