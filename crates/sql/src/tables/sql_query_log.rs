//! `sql_query_log`: one row per SQL statement that reached an rvbbit function, from the `sql_query`
//! events; `caller_id` and time ranges on `timestamp` are pushed down.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::Expr;
use rvbbit_core::EventKind;
use rvbbit_store::EventFilter;
use serde_json::Value;

use super::MagicTable;
use super::pushdown::{TimeRange, field, pushed_on};
use crate::runtime::Runtime;

/// `sql_query_log`: one row per statement that used rvbbit functions.
#[derive(Debug)]
pub(crate) struct SqlQueryLog {
    runtime: Arc<Runtime>,
    schema: SchemaRef,
}

impl SqlQueryLog {
    pub(crate) fn new(runtime: Arc<Runtime>) -> Self {
        let text = |n: &str| Field::new(n, DataType::Utf8, true);
        let int = |n: &str| Field::new(n, DataType::Int64, true);
        let schema = Schema::new(vec![
            text("query_id"),
            text("caller_id"),
            text("timestamp"),
            text("query_raw"),
            text("query_hash"),
            text("status"),
            int("duration_ms"),
            int("rows_output"),
            int("runs"),
            int("llm_calls_count"),
            int("cache_hits"),
            int("errors"),
            int("skipped"),
            int("total_cost_micro_usd"),
            Field::new("total_cost", DataType::Float64, true),
            int("avoided_cost_micro_usd"),
            text("error_message"),
            text("protocol"),
            text("decided_by"),
            text("annotations"),
        ]);
        SqlQueryLog {
            runtime,
            schema: Arc::new(schema),
        }
    }

    async fn read(&self, caller_id: Option<String>, range: TimeRange) -> Result<RecordBatch> {
        if let Some(writer) = &self.runtime.writer {
            // Statements finished just before are in the writer's buffer: store them first.
            let _ = writer.flush().await;
        }
        let events = match &self.runtime.store {
            Some(store) => store
                .events(&EventFilter {
                    kind: Some(EventKind::SqlQuery),
                    caller_id,
                    since: range.bounds().0,
                    until: range.bounds().1,
                    ..EventFilter::default()
                })
                .await
                .map_err(|e| DataFusionError::External(Box::new(e)))?,
            None => Vec::new(),
        };
        let m = |e: &rvbbit_store::StoredEvent, k: &str| e.event.metadata.get(k).and_then(Value::as_i64);
        let texts = |f: &dyn Fn(&rvbbit_store::StoredEvent) -> Option<String>| -> ArrayRef {
            Arc::new(events.iter().map(f).collect::<StringArray>())
        };
        let ints = |k: &str| -> ArrayRef { Arc::new(events.iter().map(|e| m(e, k)).collect::<Int64Array>()) };
        let columns: Vec<ArrayRef> = vec![
            texts(&|e| Some(e.event.event_id.to_string())),
            texts(&|e| e.event.caller_id.as_ref().map(ToString::to_string)),
            texts(&|e| Some(e.event.ts_us.to_rfc3339())),
            texts(&|e| field(&e.event.content, "query")),
            texts(&|e| field(&e.event.metadata, "query_hash")),
            texts(&|e| field(&e.event.metadata, "status")),
            Arc::new(
                events
                    .iter()
                    .map(|e| e.event.duration_us.map(|d| d / 1000))
                    .collect::<Int64Array>(),
            ),
            ints("rows_output"),
            ints("runs"),
            ints("llm_calls"),
            ints("cache_hits"),
            ints("errors"),
            ints("skipped"),
            ints("total_cost_micro_usd"),
            Arc::new(
                events
                    .iter()
                    .map(|e| m(e, "total_cost_micro_usd").map(|c| c as f64 / 1e6))
                    .collect::<Float64Array>(),
            ),
            ints("avoided_cost_micro_usd"),
            texts(&|e| {
                e.event
                    .error
                    .as_ref()
                    .and_then(|x| x.get("message"))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            }),
            texts(&|e| field(&e.event.metadata, "protocol")),
            texts(&|e| {
                e.event
                    .metadata
                    .get("decided_by")
                    .filter(|d| d.is_object())
                    .map(ToString::to_string)
            }),
            texts(&|e| {
                e.event
                    .metadata
                    .get("annotations")
                    .filter(|a| a.is_array())
                    .map(ToString::to_string)
            }),
        ];
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

#[async_trait]
impl MagicTable for SqlQueryLog {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn pushed_columns(&self) -> &'static [&'static str] {
        &["caller_id"]
    }

    fn time_column(&self) -> Option<(&'static str, Option<&'static str>)> {
        Some(("timestamp", None))
    }

    async fn rows(&self, filters: &[Expr], _limit: Option<usize>) -> Result<RecordBatch> {
        let caller = filters
            .iter()
            .find_map(|f| pushed_on(f, &["caller_id"]))
            .map(|(_, v)| v);
        let range = TimeRange::of(filters, "timestamp", None);
        self.read(caller, range).await
    }
}
