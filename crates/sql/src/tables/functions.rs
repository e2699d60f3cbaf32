//! `rvbbit_functions`: the session's semantic SQL functions (built-in and from `cascades/`), one row
//! per function.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::Result;
use datafusion::logical_expr::Expr;

use super::MagicTable;
use crate::semantic::Definition;

/// `rvbbit_functions`: name, shape, returns, args, operators, source, description.
#[derive(Debug)]
pub(crate) struct Functions {
    functions: Vec<Arc<Definition>>,
    schema: SchemaRef,
}

impl Functions {
    /// The table of `functions` (the session's registry, fixed for the session).
    pub(crate) fn new(functions: Vec<Arc<Definition>>) -> Self {
        let text = |n: &str| Field::new(n, DataType::Utf8, true);
        Functions {
            functions,
            schema: Arc::new(Schema::new(vec![
                text("name"),
                text("shape"),
                text("returns"),
                text("args"),
                text("operators"),
                text("source"),
                text("description"),
            ])),
        }
    }
}

/// `text, lang` with optional arguments in brackets: `text, [kind]`.
fn args(d: &Definition) -> String {
    d.spec
        .args
        .iter()
        .map(|a| {
            if a.optional == Some(true) {
                format!("[{}]", a.name)
            } else {
                a.name.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[async_trait]
impl MagicTable for Functions {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn pushed_columns(&self) -> &'static [&'static str] {
        &[]
    }

    async fn rows(&self, _filters: &[Expr], _limit: Option<usize>) -> Result<RecordBatch> {
        let text = |f: &dyn Fn(&Definition) -> Option<String>| -> ArrayRef {
            Arc::new(self.functions.iter().map(|d| f(d)).collect::<StringArray>())
        };
        let columns: Vec<ArrayRef> = vec![
            text(&|d| Some(d.name.clone())),
            text(&|d| Some(d.spec.call_shape().as_str().to_owned())),
            text(&|d| Some(d.returns().as_str().to_owned())),
            text(&|d| Some(args(d))),
            text(&|d| Some(d.spec.operators.join("; "))),
            text(&|d| Some(d.source.clone())),
            text(&|d| d.spec.description.clone()),
        ];
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}
