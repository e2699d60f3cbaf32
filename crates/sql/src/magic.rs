//! Magic tables over the event store. Today: `sql_query_log`, one row per SQL statement that reached an
//! rvbbit function (its `sql_query` event), read from the store when the table is scanned.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{MemTable, Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use rvbbit_core::EventKind;
use rvbbit_store::EventFilter;
use serde_json::Value;

use crate::calls::Runtime;

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
        ]);
        SqlQueryLog {
            runtime,
            schema: Arc::new(schema),
        }
    }

    async fn batch(&self) -> Result<RecordBatch> {
        if let Some(writer) = &self.runtime.writer {
            // Statements finished just before are in the writer's buffer: store them first.
            let _ = writer.flush().await;
        }
        let events = match &self.runtime.store {
            Some(store) => store
                .events(&EventFilter {
                    kind: Some(EventKind::SqlQuery),
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
        ];
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

#[async_trait]
impl TableProvider for SqlQueryLog {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let table = MemTable::try_new(self.schema.clone(), vec![vec![self.batch().await?]])?;
        table.scan(state, projection, filters, limit).await
    }
}

/// `all_data`: one row per event in the store. Equality filters on `session_id`, `caller_id`,
/// `cascade_id` and `kind` (and a `LIMIT` without other filters) are pushed down to the store.
#[derive(Debug)]
pub(crate) struct AllData {
    runtime: Arc<Runtime>,
    schema: SchemaRef,
}

/// The columns `all_data` pushes equality filters for.
const PUSHED: &[&str] = &["session_id", "caller_id", "cascade_id", "kind"];

/// `column = 'literal'` (either side) on a pushed column: (column, value).
fn pushed_filter(expr: &Expr) -> Option<(String, String)> {
    use datafusion::logical_expr::{BinaryExpr, Operator};
    use datafusion::scalar::ScalarValue;
    let Expr::BinaryExpr(BinaryExpr {
        left,
        op: Operator::Eq,
        right,
    }) = expr
    else {
        return None;
    };
    let (col, lit) = match (left.as_ref(), right.as_ref()) {
        (Expr::Column(c), Expr::Literal(v, _)) | (Expr::Literal(v, _), Expr::Column(c)) => (c, v),
        _ => return None,
    };
    if !PUSHED.contains(&col.name.as_str()) {
        return None;
    }
    match lit {
        ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)) | ScalarValue::LargeUtf8(Some(s)) => {
            Some((col.name.clone(), s.clone()))
        }
        _ => None,
    }
}

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
impl TableProvider for AllData {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<datafusion::logical_expr::TableProviderFilterPushDown>> {
        use datafusion::logical_expr::TableProviderFilterPushDown as P;
        // Inexact: DataFusion still applies every filter to what the store returns.
        Ok(filters
            .iter()
            .map(|f| {
                if pushed_filter(f).is_some() {
                    P::Inexact
                } else {
                    P::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if let Some(writer) = &self.runtime.writer {
            let _ = writer.flush().await;
        }
        let mut filter = EventFilter::default();
        let mut all_pushed = true;
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
                None => all_pushed = false,
            }
        }
        if all_pushed && filter.limit.is_none() {
            filter.limit = limit.map(|l| l as u64);
        }
        let events = match (&self.runtime.store, filter.limit) {
            (_, Some(0)) | (None, _) => Vec::new(),
            (Some(store), _) => store
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
        let batch = RecordBatch::try_new(self.schema.clone(), columns)?;
        let table = MemTable::try_new(self.schema.clone(), vec![vec![batch]])?;
        table.scan(state, projection, filters, limit).await
    }
}

/// A string field of an event's JSON (`content` or `metadata`).
fn field(json: &Value, key: &str) -> Option<String> {
    json.get(key).and_then(Value::as_str).map(str::to_owned)
}
