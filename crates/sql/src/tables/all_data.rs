//! `all_data`: one row per event, read from the events sink or the store, with equality filters,
//! time ranges and a `LIMIT` pushed down.

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
use super::pushdown::{TimeRange, pushed_on};
use crate::runtime::Runtime;

/// `all_data`: one row per event in the store. Equality filters on `session_id`, `caller_id`,
/// `cascade_id` and `kind`, time ranges on `ts_us` and `timestamp` (see [`time_bound_on`](super::pushdown::time_bound_on)), and a `LIMIT`
/// with only equality filters are pushed down to the store.
#[derive(Debug)]
pub(crate) struct AllData {
    runtime: Arc<Runtime>,
    schema: SchemaRef,
}

/// The columns `all_data` pushes equality filters for.
const PUSHED: &[&str] = &["session_id", "caller_id", "cascade_id", "kind"];

/// `column = 'literal'` (either side) on a pushed column of `all_data`: (column, value).
fn pushed_filter(expr: &Expr) -> Option<(String, String)> {
    pushed_on(expr, PUSHED)
}

/// The time columns of `all_data`: RFC 3339 text and microseconds.
pub(super) const ALL_DATA_TIME: (&str, Option<&str>) = ("timestamp", Some("ts_us"));

impl AllData {
    pub(crate) fn new(runtime: Arc<Runtime>) -> Self {
        let text = |n: &str| Field::new(n, DataType::Utf8, true);
        let int = |n: &str| Field::new(n, DataType::Int64, true);
        let schema = Schema::new(vec![
            int("store_seq"),
            text("event_id"),
            text("timestamp"),
            int("ts_us"),
            text("kind"),
            text("session_id"),
            text("parent_session_id"),
            text("caller_id"),
            text("cascade_id"),
            text("cell_name"),
            text("model"),
            int("tokens_in"),
            int("tokens_out"),
            int("cost_micro_usd"),
            Field::new("cost", DataType::Float64, true),
            text("cost_status"),
            int("duration_us"),
            text("content"),
            text("error"),
            text("metadata"),
        ]);
        AllData {
            runtime,
            schema: Arc::new(schema),
        }
    }
}

#[async_trait]
impl MagicTable for AllData {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn pushed_columns(&self) -> &'static [&'static str] {
        PUSHED
    }

    fn time_column(&self) -> Option<(&'static str, Option<&'static str>)> {
        Some(ALL_DATA_TIME)
    }

    async fn rows(&self, filters: &[Expr], limit: Option<usize>) -> Result<RecordBatch> {
        if let Some(writer) = &self.runtime.writer {
            // A failed flush (logged by the writer) only leaves the newest events unread; the read goes on.
            let _ = writer.flush().await;
        }
        let mut filter = EventFilter::default();
        let mut all_pushed = true;
        let range = TimeRange::of(filters, ALL_DATA_TIME.0, ALL_DATA_TIME.1);
        (filter.since, filter.until) = range.bounds();
        for f in filters {
            match pushed_filter(f) {
                Some((col, value)) => match col.as_str() {
                    "session_id" => match value.parse() {
                        Ok(id) => filter.session_id = Some(id),
                        // Not a valid id: no event can match.
                        Err(_) => filter.limit = Some(0),
                    },
                    "caller_id" => filter.caller_id = Some(value),
                    "cascade_id" => filter.cascade_id = Some(value),
                    _ => match value.parse::<EventKind>() {
                        Ok(k) => filter.kind = Some(k),
                        Err(_) => filter.limit = Some(0),
                    },
                },
                // Not pushed, or a time bound, which may be wider than its filter: either way a
                // LIMIT cannot go to the store.
                None => all_pushed = false,
            }
        }
        if all_pushed && filter.limit.is_none() {
            filter.limit = limit.map(|l| l as u64);
        }
        if range.is_empty() {
            filter.limit = Some(0);
        }
        let from_sink = match (&self.runtime.events, filter.limit) {
            (Some(sink), limit) if limit != Some(0) => match sink.events(&filter).await {
                Ok(events) => {
                    tracing::debug!(events = events.len(), "all_data: read from the events sink");
                    Some(events)
                }
                Err(e) => {
                    // The store holds every event too: answer from it rather than fail the statement.
                    tracing::warn!(error = %rvbbit_core::error_chain(&e), "all_data: the events sink failed; reading the store instead.");
                    None
                }
            },
            _ => None,
        };
        let events = match (from_sink, &self.runtime.store, filter.limit) {
            (Some(events), _, _) => events,
            (None, _, Some(0)) | (None, None, _) => Vec::new(),
            (None, Some(store), _) => store
                .events(&filter)
                .await
                .map_err(|e| DataFusionError::External(Box::new(e)))?,
        };
        let text = |f: &dyn Fn(&rvbbit_core::Event) -> Option<String>| -> ArrayRef {
            Arc::new(events.iter().map(|e| f(&e.event)).collect::<StringArray>())
        };
        let int = |f: &dyn Fn(&rvbbit_core::Event) -> Option<i64>| -> ArrayRef {
            Arc::new(events.iter().map(|e| f(&e.event)).collect::<Int64Array>())
        };
        let json = |v: &Value| (!v.is_null()).then(|| v.to_string());
        let columns: Vec<ArrayRef> = vec![
            Arc::new(events.iter().map(|e| Some(e.store_seq)).collect::<Int64Array>()),
            text(&|e| Some(e.event_id.to_string())),
            text(&|e| Some(e.ts_us.to_rfc3339())),
            int(&|e| Some(e.ts_us.micros())),
            text(&|e| Some(e.kind.as_str().to_owned())),
            text(&|e| Some(e.session_id.to_string())),
            text(&|e| e.parent_session_id.as_ref().map(ToString::to_string)),
            text(&|e| e.caller_id.as_ref().map(ToString::to_string)),
            text(&|e| e.cascade_id.clone()),
            text(&|e| e.cell_name.clone()),
            text(&|e| e.model.clone()),
            int(&|e| e.tokens.input),
            int(&|e| e.tokens.output),
            int(&|e| e.cost.map(|c| c.micros())),
            Arc::new(
                events
                    .iter()
                    .map(|e| e.event.cost.map(|c| c.as_usd_f64()))
                    .collect::<Float64Array>(),
            ),
            text(&|e| Some(e.cost_status.as_str().to_owned())),
            int(&|e| e.duration_us),
            text(&|e| json(&e.content)),
            text(&|e| e.error.as_ref().and_then(json)),
            text(&|e| json(&e.metadata)),
        ];
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}
