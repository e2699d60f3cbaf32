//! `signals`: named wake-ups between sessions.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::Result;
use datafusion::logical_expr::Expr;

use super::MagicTable;
use super::pushdown::{external, pushed_on};
use crate::runtime::Runtime;

/// `signals`: named wake-ups between sessions. An equality filter on `name` is pushed down.
#[derive(Debug)]
pub(crate) struct Signals {
    runtime: Arc<Runtime>,
    schema: SchemaRef,
}

impl Signals {
    pub(crate) fn new(runtime: Arc<Runtime>) -> Self {
        let text = |n: &str| Field::new(n, DataType::Utf8, true);
        Signals {
            runtime,
            schema: Arc::new(Schema::new(vec![
                text("signal_id"),
                text("name"),
                text("status"),
                text("session_id"),
                text("created_at"),
                text("fired_at"),
                text("timeout_at"),
                text("payload"),
                text("source"),
            ])),
        }
    }
}

#[async_trait]
impl MagicTable for Signals {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn pushed_columns(&self) -> &'static [&'static str] {
        &["name"]
    }

    async fn rows(&self, filters: &[Expr], _limit: Option<usize>) -> Result<RecordBatch> {
        let name = filters
            .iter()
            .find_map(|f| pushed_on(f, &["name"]))
            .map(|(_, v)| v);
        let rows = match &self.runtime.store {
            Some(store) => store.signals(name.as_deref()).await.map_err(external)?,
            None => Vec::new(),
        };
        let text = |f: &dyn Fn(&rvbbit_store::Signal) -> Option<String>| -> ArrayRef {
            Arc::new(rows.iter().map(f).collect::<StringArray>())
        };
        let columns: Vec<ArrayRef> = vec![
            text(&|s| Some(s.signal_id.clone())),
            text(&|s| Some(s.name.clone())),
            text(&|s| Some(s.status.as_str().to_owned())),
            text(&|s| s.session_id.as_ref().map(ToString::to_string)),
            text(&|s| Some(s.created_at.to_rfc3339())),
            text(&|s| s.fired_at.map(|t| t.to_rfc3339())),
            text(&|s| s.timeout_at.map(|t| t.to_rfc3339())),
            text(&|s| s.payload.as_ref().map(ToString::to_string)),
            text(&|s| s.source.clone()),
        ];
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}
