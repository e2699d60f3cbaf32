//! The arguments of one batch of an async function call, shared by `rvbbit_udf`/`rvbbit_run` and the
//! semantic functions: every argument column as text, row access that treats NULL as absent, the
//! `rvbbit.*` settings of the call, and the statement-wide memo key of one argument tuple.

use datafusion::arrow::array::{Array, ArrayRef, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::error::Result;
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs};

use crate::options::RvbbitOptions;
use crate::statement::Statement;

/// The arguments of one batch as optional strings, row by row (numbers and other types as their text).
pub(crate) fn text_columns(args: &ScalarFunctionArgs) -> Result<Vec<StringArray>> {
    let n = args.number_rows;
    args.args.iter().map(|a| text_column(a, n)).collect()
}

/// One argument of `n` rows as optional strings.
pub(crate) fn text_column(arg: &ColumnarValue, n: usize) -> Result<StringArray> {
    let array: ArrayRef = arg.clone().into_array(n)?;
    let text = cast(&array, &DataType::Utf8)?;
    Ok(text
        .as_any()
        .downcast_ref::<StringArray>()
        .cloned()
        .unwrap_or_else(|| StringArray::from(vec![None::<&str>; n])))
}

/// The value of `col` at `row`; `None` for NULL or a missing column.
pub(crate) fn get(col: Option<&StringArray>, row: usize) -> Option<&str> {
    col.filter(|c| !c.is_null(row)).map(|c| c.value(row))
}

/// The `rvbbit.*` settings the call runs under: the session's, with the statement's own `WITH (…)`
/// options on top.
pub(crate) fn options(args: &ScalarFunctionArgs, stmt: &Statement) -> RvbbitOptions {
    stmt.settings(
        args.config_options
            .extensions
            .get::<RvbbitOptions>()
            .cloned()
            .unwrap_or_default(),
    )
}

/// The statement-wide memo key of one argument tuple: a tag naming the function, then each argument
/// length-prefixed (so no two tuples share a key).
pub(crate) fn args_key(tag: &str, raw: &[Option<&str>]) -> String {
    let mut key =
        String::with_capacity(tag.len() + raw.iter().flatten().map(|a| a.len() + 8).sum::<usize>() + 1);
    key.push_str(tag);
    key.push('\u{0}');
    for arg in raw {
        match arg {
            None => key.push('-'),
            Some(a) => {
                key.push_str(&a.len().to_string());
                key.push(':');
                key.push_str(a);
            }
        }
    }
    key
}
