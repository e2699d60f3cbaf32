//! `checkpoints`: human-in-the-loop waits.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::Result;
use datafusion::logical_expr::Expr;
use serde_json::Value;

use super::MagicTable;
use super::pushdown::{external, pushed_on};
use crate::runtime::Runtime;

/// `checkpoints`: human-in-the-loop waits. Equality filters on `session_id` and `status` are pushed down.
#[derive(Debug)]
pub(crate) struct Checkpoints {
    runtime: Arc<Runtime>,
    schema: SchemaRef,
}

impl Checkpoints {
    pub(crate) fn new(runtime: Arc<Runtime>) -> Self {
        let text = |n: &str| Field::new(n, DataType::Utf8, true);
        Checkpoints {
            runtime,
            schema: Arc::new(Schema::new(vec![
                text("checkpoint_id"),
                text("session_id"),
                text("cascade_id"),
                text("cell_name"),
                text("checkpoint_type"),
                text("status"),
                text("signal_name"),
                text("ui_spec"),
                text("response"),
                text("created_at"),
                text("responded_at"),
                text("timeout_at"),
            ])),
        }
    }
}

#[async_trait]
impl MagicTable for Checkpoints {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn pushed_columns(&self) -> &'static [&'static str] {
        &["session_id", "status"]
    }

    async fn rows(&self, filters: &[Expr], _limit: Option<usize>) -> Result<RecordBatch> {
        let mut session = None;
        let mut status = None;
        let mut none = false;
        for f in filters {
            match pushed_on(f, &["session_id", "status"]) {
                Some((c, v)) if c == "session_id" => match v.parse::<rvbbit_core::SessionId>() {
                    Ok(id) => session = Some(id),
                    Err(_) => none = true,
                },
                Some((_, v)) => match v.parse::<rvbbit_store::CheckpointStatus>() {
                    Ok(s) => status = Some(s),
                    Err(_) => none = true,
                },
                None => {}
            }
        }
        let rows = match &self.runtime.store {
            Some(store) if !none => {
                if let Some(writer) = &self.runtime.writer {
                    // A failed flush (logged by the writer) only leaves the newest events unread; the read goes on.
                    let _ = writer.flush().await;
                }
                store
                    .checkpoints(session.as_ref(), status)
                    .await
                    .map_err(external)?
            }
            _ => Vec::new(),
        };
        let text = |f: &dyn Fn(&rvbbit_store::Checkpoint) -> Option<String>| -> ArrayRef {
            Arc::new(rows.iter().map(f).collect::<StringArray>())
        };
        let json = |v: &Value| (!v.is_null()).then(|| v.to_string());
        let columns: Vec<ArrayRef> = vec![
            text(&|c| Some(c.checkpoint_id.clone())),
            text(&|c| Some(c.session_id.to_string())),
            text(&|c| c.cascade_id.clone()),
            text(&|c| Some(c.cell_name.clone())),
            text(&|c| Some(c.checkpoint_type.clone())),
            text(&|c| Some(c.status.as_str().to_owned())),
            text(&|c| Some(c.signal_name.clone())),
            text(&|c| json(&c.ui_spec)),
            text(&|c| c.response.as_ref().and_then(json)),
            text(&|c| Some(c.created_at.to_rfc3339())),
            text(&|c| c.responded_at.map(|t| t.to_rfc3339())),
            text(&|c| c.timeout_at.map(|t| t.to_rfc3339())),
        ];
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}
