//! The DuckDB-named table functions `read_csv_auto('file')` and friends ([`ReadFunction`]).

use std::sync::Arc;

use datafusion::catalog::TableFunctionArgs;
use datafusion::catalog::{TableFunctionImpl, TableProvider};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::Expr;
use datafusion::scalar::ScalarValue;

use super::{Format, Sources};
use crate::error::Error;

/// `read_csv_auto('file')` and friends.
#[derive(Debug)]
pub(crate) struct ReadFunction {
    name: &'static str,
    format: Format,
    sources: Arc<Sources>,
}

/// The table functions and the format each reads.
pub(crate) const READ_FUNCTIONS: &[(&str, Format)] = &[
    ("read_csv_auto", Format::Csv),
    ("read_csv", Format::Csv),
    ("read_json", Format::Json),
    ("read_json_auto", Format::Json),
    ("read_ndjson", Format::Json),
    ("read_parquet", Format::Parquet),
];

impl ReadFunction {
    pub(crate) fn new(name: &'static str, format: Format, sources: Arc<Sources>) -> Self {
        ReadFunction {
            name,
            format,
            sources,
        }
    }

    fn path(&self, exprs: &[Expr]) -> Result<String> {
        let usage = || {
            Error::Argument {
                message: format!(
                    "{}(path) takes one argument, a file, folder or URL as a string literal; options such as \
                     delim or header are not supported here: use CREATE EXTERNAL TABLE … OPTIONS (…) instead",
                    self.name
                ),
            }
            .into_datafusion()
        };
        match exprs {
            [
                Expr::Literal(
                    ScalarValue::Utf8(Some(s))
                    | ScalarValue::Utf8View(Some(s))
                    | ScalarValue::LargeUtf8(Some(s)),
                    _,
                ),
            ] => Ok(s.clone()),
            _ => Err(usage()),
        }
    }
}

impl TableFunctionImpl for ReadFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let path = self.path(args.exprs())?;
        let what = format!("{}('{path}')", self.name);
        let vetted = self.sources.vet(&what, &path).map_err(Error::into_datafusion)?;
        let sources = self.sources.clone();
        let format = self.format;
        // Planning is synchronous here; opening a file (schema inference) is not.
        block_on(async move { sources.open_vetted(&what, &path, Some(format), vetted).await })
    }
}

/// Run `fut` to completion from synchronous code inside or outside a Tokio runtime.
fn block_on<T: Send + 'static>(
    fut: impl std::future::Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(|| handle.block_on(fut))
        }
        _ => std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| DataFusionError::External(Box::new(e)))?
                .block_on(fut)
        })
        .join()
        .unwrap_or_else(|_| {
            Err(DataFusionError::Internal(
                "a file could not be opened (thread failed)".into(),
            ))
        }),
    }
}
