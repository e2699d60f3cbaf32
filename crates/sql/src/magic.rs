//! Magic tables over the store, read when they are scanned: `sql_query_log` (one row per SQL statement
//! that reached an rvbbit function), `all_data` (one row per event), `sessions` (one row per session
//! record), `cascade_runs` (one row per run, with its cascade text and input, for replay), `checkpoints`
//! and `signals`. Equality filters on their key columns are pushed down to the store.

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
        ]);
        SqlQueryLog {
            runtime,
            schema: Arc::new(schema),
        }
    }

    async fn batch(&self, caller_id: Option<String>, range: TimeRange) -> Result<RecordBatch> {
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

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<datafusion::logical_expr::TableProviderFilterPushDown>> {
        Ok(pushdown(filters, &["caller_id"], Some(("timestamp", None))))
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let caller = filters
            .iter()
            .find_map(|f| pushed_on(f, &["caller_id"]))
            .map(|(_, v)| v);
        let range = TimeRange::of(filters, "timestamp", None);
        let table = MemTable::try_new(self.schema.clone(), vec![vec![self.batch(caller, range).await?]])?;
        table.scan(state, projection, filters, limit).await
    }
}

/// `all_data`: one row per event in the store. Equality filters on `session_id`, `caller_id`,
/// `cascade_id` and `kind`, time ranges on `ts_us` and `timestamp` (see [`time_bound_on`]), and a `LIMIT`
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

/// A time range of events, pushed to the store: at or after `since`, before `until` (microseconds).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct TimeRange {
    since: Option<i64>,
    until: Option<i64>,
}

impl TimeRange {
    /// The intersection of the time bounds among `filters` on the text column `text` (and the
    /// microseconds column `micros`).
    fn of(filters: &[Expr], text: &str, micros: Option<&str>) -> TimeRange {
        filters
            .iter()
            .filter_map(|f| time_bound_on(f, text, micros))
            .fold(TimeRange::default(), TimeRange::and)
    }

    /// No time can be in the range.
    fn is_empty(self) -> bool {
        matches!((self.since, self.until), (Some(s), Some(u)) if s >= u)
    }

    /// The range as the store's `(since, until)`.
    fn bounds(self) -> (Option<rvbbit_core::Timestamp>, Option<rvbbit_core::Timestamp>) {
        (
            self.since.map(rvbbit_core::Timestamp::from_micros),
            self.until.map(rvbbit_core::Timestamp::from_micros),
        )
    }

    /// Both ranges at once.
    fn and(self, other: TimeRange) -> TimeRange {
        let pick = |a: Option<i64>, b: Option<i64>, f: fn(i64, i64) -> i64| match (a, b) {
            (Some(x), Some(y)) => Some(f(x, y)),
            (x, y) => x.or(y),
        };
        TimeRange {
            since: pick(self.since, other.since, i64::max),
            until: pick(self.until, other.until, i64::min),
        }
    }
}

/// The time columns of `all_data`: RFC 3339 text and microseconds.
const ALL_DATA_TIME: (&str, Option<&str>) = ("timestamp", Some("ts_us"));

/// The time range a comparison of the microseconds column `micros` or the RFC 3339 text column `text`
/// (also cast to a timestamp, as in `timestamp > now() - INTERVAL '1 day'`) with a literal keeps,
/// widened where needed so it is always a superset of the rows the comparison keeps (DataFusion applies
/// the filter again). Text literals count only in UTC (`Z`, no zone, or a bare date): a string
/// comparison with another offset does not follow time order.
fn time_bound_on(expr: &Expr, text: &str, micros: Option<&str>) -> Option<TimeRange> {
    use datafusion::logical_expr::{BinaryExpr, Cast, Operator, TryCast};
    use datafusion::scalar::ScalarValue;

    enum Bound {
        /// `ts_us` against whole microseconds.
        Micros(i64),
        /// `timestamp` text against a UTC text literal (microseconds of the literal).
        Text(i64),
        /// `timestamp` cast to a timestamp against an instant (nanoseconds).
        Instant(i128),
    }
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = expr else {
        return None;
    };
    let (column, literal, op) = match (left.as_ref(), right.as_ref()) {
        (c, Expr::Literal(v, _)) => (c, v, *op),
        (Expr::Literal(v, _), c) => (c, v, op.swap()?),
        _ => return None,
    };
    if !matches!(op, Operator::Gt | Operator::GtEq | Operator::Lt | Operator::LtEq) {
        return None;
    }
    let named = |e: &Expr, name: &str| matches!(e, Expr::Column(c) if c.name == name);
    let bound = match (column, literal) {
        (c, ScalarValue::Int64(Some(v))) if micros.is_some_and(|m| named(c, m)) => Bound::Micros(*v),
        (
            c,
            ScalarValue::Utf8(Some(t)) | ScalarValue::Utf8View(Some(t)) | ScalarValue::LargeUtf8(Some(t)),
        ) if named(c, text) => {
            let t = t.trim();
            let zone = t.get(10..).unwrap_or_default();
            if zone.contains('+') || zone.contains('-') {
                return None;
            }
            Bound::Text(t.parse::<rvbbit_core::Timestamp>().ok()?.micros())
        }
        (Expr::Cast(Cast { expr, .. }) | Expr::TryCast(TryCast { expr, .. }), v) if named(expr, text) => {
            let ns = match v {
                ScalarValue::TimestampNanosecond(Some(n), _) => i128::from(*n),
                ScalarValue::TimestampMicrosecond(Some(n), _) => i128::from(*n) * 1_000,
                ScalarValue::TimestampMillisecond(Some(n), _) => i128::from(*n) * 1_000_000,
                ScalarValue::TimestampSecond(Some(n), _) => i128::from(*n) * 1_000_000_000,
                _ => return None,
            };
            Bound::Instant(ns)
        }
        _ => return None,
    };
    let lower = matches!(op, Operator::Gt | Operator::GtEq);
    let to_micros = |ns: i128, up: bool| {
        let m = if up {
            (ns + 999).div_euclid(1_000)
        } else {
            ns.div_euclid(1_000)
        };
        i64::try_from(m).ok()
    };
    let (since, until) = match bound {
        Bound::Micros(v) => match op {
            Operator::Gt => (v.checked_add(1), None),
            Operator::GtEq => (Some(v), None),
            Operator::Lt => (None, Some(v)),
            _ => (None, v.checked_add(1)),
        },
        // The string order of RFC 3339 text puts `…:00.5Z` before `…:00Z`: a second of slack.
        Bound::Text(t) if lower => (Some(t), None),
        Bound::Text(t) => (None, t.checked_add(1_000_000)),
        Bound::Instant(ns) => match op {
            Operator::Gt | Operator::GtEq => (to_micros(ns, false), None),
            Operator::Lt => (None, to_micros(ns, true)),
            _ => (None, to_micros(ns, false).and_then(|m| m.checked_add(1))),
        },
    };
    if since.is_none() && until.is_none() {
        return None;
    }
    Some(TimeRange { since, until })
}

/// Inexact pushdown for the filters `pushed_on(_, columns)` understands and the time bounds on
/// `time = (text column, microseconds column)`, if the table has one (DataFusion still applies them all).
fn pushdown(
    filters: &[&Expr],
    columns: &[&str],
    time: Option<(&str, Option<&str>)>,
) -> Vec<datafusion::logical_expr::TableProviderFilterPushDown> {
    use datafusion::logical_expr::TableProviderFilterPushDown as P;
    filters
        .iter()
        .map(|f| {
            let timed = time.is_some_and(|(text, micros)| time_bound_on(f, text, micros).is_some());
            if timed || pushed_on(f, columns).is_some() {
                P::Inexact
            } else {
                P::Unsupported
            }
        })
        .collect()
}

/// `column = 'literal'` (either side) on one of `columns`: (column, value).
fn pushed_on(expr: &Expr, columns: &[&str]) -> Option<(String, String)> {
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
    if !columns.contains(&col.name.as_str()) {
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
        Ok(pushdown(filters, PUSHED, Some(ALL_DATA_TIME)))
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
        let batch = RecordBatch::try_new(self.schema.clone(), columns)?;
        let table = MemTable::try_new(self.schema.clone(), vec![vec![batch]])?;
        table.scan(state, projection, filters, limit).await
    }
}

/// A string field of an event's JSON (`content` or `metadata`).
fn field(json: &Value, key: &str) -> Option<String> {
    json.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn external(e: rvbbit_store::Error) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// Which view of the session records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SessionView {
    /// `sessions`: the state of each session (status, timing, cost).
    State,
    /// `cascade_runs`: what each run was (cascade text, input), for replay.
    Runs,
}

impl SessionView {
    /// The column holding when the session started (time ranges on it are pushed to the store).
    fn started_column(self) -> &'static str {
        match self {
            SessionView::State => "started_at",
            SessionView::Runs => "created_at",
        }
    }
}

/// `sessions` / `cascade_runs`: one row per session record. Equality filters on `session_id`,
/// `caller_id`, `cascade_id` and `status` are pushed down (and a `LIMIT` when those are the only filters),
/// and time ranges on `started_at` / `created_at` like `all_data`'s.
#[derive(Debug)]
pub(crate) struct Sessions {
    runtime: Arc<Runtime>,
    view: SessionView,
    schema: SchemaRef,
}

const SESSION_PUSHED: &[&str] = &["session_id", "caller_id", "cascade_id", "status"];

impl Sessions {
    pub(crate) fn new(runtime: Arc<Runtime>, view: SessionView) -> Self {
        let text = |n: &str| Field::new(n, DataType::Utf8, true);
        let int = |n: &str| Field::new(n, DataType::Int64, true);
        let fields = match view {
            SessionView::State => vec![
                text("session_id"),
                text("cascade_id"),
                text("status"),
                text("caller_id"),
                text("parent_session_id"),
                text("root_session_id"),
                int("depth"),
                text("current_cell"),
                text("started_at"),
                text("ended_at"),
                text("updated_at"),
                text("heartbeat_at"),
                int("duration_ms"),
                Field::new("cancel_requested", DataType::Boolean, true),
                text("error"),
                text("output"),
                int("events"),
                int("tokens_in"),
                int("tokens_out"),
                int("cost_micro_usd"),
                Field::new("cost", DataType::Float64, true),
                text("cascade_file"),
            ],
            SessionView::Runs => vec![
                text("session_id"),
                text("cascade_id"),
                text("status"),
                text("caller_id"),
                text("parent_session_id"),
                int("depth"),
                text("created_at"),
                text("cascade_file"),
                text("cascade_hash"),
                text("cascade_definition"),
                text("input_data"),
                text("invocation_metadata"),
            ],
        };
        Sessions {
            runtime,
            view,
            schema: Arc::new(Schema::new(fields)),
        }
    }

    async fn read(
        &self,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Vec<rvbbit_store::SessionSummary>> {
        let Some(store) = &self.runtime.store else {
            return Ok(Vec::new());
        };
        if let Some(writer) = &self.runtime.writer {
            let _ = writer.flush().await;
        }
        let mut filter = rvbbit_store::SessionFilter::default();
        let mut all_pushed = true;
        let mut session_id = None;
        let range = TimeRange::of(filters, self.view.started_column(), None);
        if range.is_empty() {
            return Ok(Vec::new());
        }
        (filter.since, filter.until) = range.bounds();
        for f in filters {
            match pushed_on(f, SESSION_PUSHED) {
                Some((col, value)) => match col.as_str() {
                    "session_id" => session_id = Some(value),
                    "caller_id" => filter.caller_id = Some(value),
                    "cascade_id" => filter.cascade_id = Some(value),
                    _ => match value.parse::<rvbbit_core::SessionStatus>() {
                        Ok(s) => filter.status = Some(s),
                        Err(_) => return Ok(Vec::new()),
                    },
                },
                None => all_pushed = false,
            }
        }
        if let Some(id) = session_id {
            // One record: read it, then apply the other pushed filters here.
            let Ok(id) = id.parse::<rvbbit_core::SessionId>() else {
                return Ok(Vec::new());
            };
            let mut found = store
                .sessions(&rvbbit_store::SessionFilter {
                    limit: None,
                    ..filter.clone()
                })
                .await
                .map_err(external)?;
            found.retain(|s| s.session.session_id == id);
            return Ok(found);
        }
        if all_pushed {
            filter.limit = limit.map(|l| l as u64);
        }
        store.sessions(&filter).await.map_err(external)
    }
}

#[async_trait]
impl TableProvider for Sessions {
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
        Ok(pushdown(
            filters,
            SESSION_PUSHED,
            Some((self.view.started_column(), None)),
        ))
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        use datafusion::arrow::array::BooleanArray;
        let rows = self.read(filters, limit).await?;
        let text = |f: &dyn Fn(&rvbbit_store::SessionSummary) -> Option<String>| -> ArrayRef {
            Arc::new(rows.iter().map(f).collect::<StringArray>())
        };
        let int = |f: &dyn Fn(&rvbbit_store::SessionSummary) -> Option<i64>| -> ArrayRef {
            Arc::new(rows.iter().map(f).collect::<Int64Array>())
        };
        let json = |v: &Value| (!v.is_null()).then(|| v.to_string());
        let columns: Vec<ArrayRef> = match self.view {
            SessionView::State => vec![
                text(&|s| Some(s.session.session_id.to_string())),
                text(&|s| s.session.cascade_id.clone()),
                text(&|s| Some(s.session.status.as_str().to_owned())),
                text(&|s| s.session.caller_id.as_ref().map(ToString::to_string)),
                text(&|s| s.session.parent_session_id.as_ref().map(ToString::to_string)),
                text(&|s| Some(s.session.root_session_id.to_string())),
                int(&|s| Some(i64::from(s.session.depth))),
                text(&|s| s.session.current_cell.clone()),
                text(&|s| Some(s.session.started_at.to_rfc3339())),
                text(&|s| s.session.ended_at.map(|t| t.to_rfc3339())),
                text(&|s| Some(s.session.updated_at.to_rfc3339())),
                text(&|s| Some(s.session.heartbeat_at.to_rfc3339())),
                int(&|s| {
                    s.session
                        .ended_at
                        .map(|e| (e.micros() - s.session.started_at.micros()) / 1000)
                }),
                Arc::new(
                    rows.iter()
                        .map(|s| Some(s.session.cancel_requested))
                        .collect::<BooleanArray>(),
                ),
                text(&|s| s.session.error.clone()),
                text(&|s| s.session.output.as_ref().and_then(json)),
                int(&|s| i64::try_from(s.events).ok()),
                int(&|s| Some(s.tokens_in)),
                int(&|s| Some(s.tokens_out)),
                int(&|s| Some(s.cost.micros())),
                Arc::new(
                    rows.iter()
                        .map(|s| Some(s.cost.as_usd_f64()))
                        .collect::<Float64Array>(),
                ),
                text(&|s| s.session.cascade_file.clone()),
            ],
            SessionView::Runs => vec![
                text(&|s| Some(s.session.session_id.to_string())),
                text(&|s| s.session.cascade_id.clone()),
                text(&|s| Some(s.session.status.as_str().to_owned())),
                text(&|s| s.session.caller_id.as_ref().map(ToString::to_string)),
                text(&|s| s.session.parent_session_id.as_ref().map(ToString::to_string)),
                int(&|s| Some(i64::from(s.session.depth))),
                text(&|s| Some(s.session.started_at.to_rfc3339())),
                text(&|s| s.session.cascade_file.clone()),
                text(&|s| {
                    s.session.cascade_hash.clone().or_else(|| {
                        use sha2::{Digest, Sha256};
                        s.session
                            .cascade_text
                            .as_ref()
                            .map(|t| hex::encode(Sha256::digest(t.as_bytes())))
                    })
                }),
                text(&|s| s.session.cascade_text.clone()),
                text(&|s| json(&s.session.input)),
                text(&|s| json(&s.session.invocation_metadata)),
            ],
        };
        let batch = RecordBatch::try_new(self.schema.clone(), columns)?;
        let table = MemTable::try_new(self.schema.clone(), vec![vec![batch]])?;
        table.scan(state, projection, filters, limit).await
    }
}

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
impl TableProvider for Checkpoints {
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
        Ok(pushdown(filters, &["session_id", "status"], None))
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
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
        let batch = RecordBatch::try_new(self.schema.clone(), columns)?;
        let table = MemTable::try_new(self.schema.clone(), vec![vec![batch]])?;
        table.scan(state, projection, filters, limit).await
    }
}

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
impl TableProvider for Signals {
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
        Ok(pushdown(filters, &["name"], None))
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
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
        let batch = RecordBatch::try_new(self.schema.clone(), columns)?;
        let table = MemTable::try_new(self.schema.clone(), vec![vec![batch]])?;
        table.scan(state, projection, filters, limit).await
    }
}

#[cfg(test)]
mod tests {
    use datafusion::prelude::{cast, col, lit};
    use datafusion::scalar::ScalarValue;

    use super::*;

    fn time_bound(expr: &Expr) -> Option<TimeRange> {
        time_bound_on(expr, ALL_DATA_TIME.0, ALL_DATA_TIME.1)
    }

    fn range(since: Option<i64>, until: Option<i64>) -> Option<TimeRange> {
        Some(TimeRange { since, until })
    }

    const DAY: i64 = 1_764_547_200_000_000; // 2025-12-01T00:00:00Z in microseconds

    #[test]
    fn time_bounds_are_supersets_of_their_filters() {
        // ts_us against microseconds: exact.
        assert_eq!(time_bound(&col("ts_us").gt(lit(10_i64))), range(Some(11), None));
        assert_eq!(
            time_bound(&col("ts_us").gt_eq(lit(10_i64))),
            range(Some(10), None)
        );
        assert_eq!(time_bound(&col("ts_us").lt(lit(10_i64))), range(None, Some(10)));
        assert_eq!(
            time_bound(&col("ts_us").lt_eq(lit(10_i64))),
            range(None, Some(11))
        );
        // The literal on the left flips the comparison.
        assert_eq!(time_bound(&lit(10_i64).lt(col("ts_us"))), range(Some(11), None));
        // timestamp text against UTC text: since the instant, until a second after it.
        assert_eq!(
            time_bound(&col("timestamp").gt_eq(lit("2025-12-01"))),
            range(Some(DAY), None)
        );
        assert_eq!(
            time_bound(&col("timestamp").lt(lit("2025-12-01T00:00:00Z"))),
            range(None, Some(DAY + 1_000_000))
        );
        // Another zone does not follow string order: not pushed.
        assert_eq!(
            time_bound(&col("timestamp").gt(lit("2025-12-01T10:00:00-05:00"))),
            None
        );
        assert_eq!(time_bound(&col("timestamp").gt(lit("yesterday"))), None);
        // timestamp cast to an instant (`timestamp > now() - INTERVAL …` after constant folding).
        let instant = |ns: i64| {
            Expr::Literal(
                ScalarValue::TimestampNanosecond(Some(ns), Some("+00:00".into())),
                None,
            )
        };
        let ts = || {
            cast(
                col("timestamp"),
                DataType::Timestamp(
                    datafusion::arrow::datatypes::TimeUnit::Nanosecond,
                    Some("+00:00".into()),
                ),
            )
        };
        assert_eq!(time_bound(&ts().gt(instant(1_500))), range(Some(1), None));
        assert_eq!(time_bound(&ts().lt(instant(1_500))), range(None, Some(2)));
        assert_eq!(time_bound(&ts().lt_eq(instant(1_000))), range(None, Some(2)));
        // Not a time column, not a comparison, not a literal.
        assert_eq!(time_bound(&col("tokens_in").gt(lit(10_i64))), None);
        assert_eq!(time_bound(&col("ts_us").eq(lit(10_i64))), None);
        assert_eq!(time_bound(&col("ts_us").gt(col("duration_us"))), None);
        // A range with nothing in it reads nothing.
        assert!(
            TimeRange {
                since: Some(9),
                until: Some(9)
            }
            .is_empty()
        );
        assert!(
            !TimeRange {
                since: Some(8),
                until: Some(9)
            }
            .is_empty()
        );
        assert!(!TimeRange::default().is_empty());
        // Ranges combine to their intersection.
        let both = TimeRange {
            since: Some(5),
            until: None,
        }
        .and(TimeRange {
            since: Some(7),
            until: Some(9),
        });
        assert_eq!(
            both,
            TimeRange {
                since: Some(7),
                until: Some(9)
            }
        );
    }
}
