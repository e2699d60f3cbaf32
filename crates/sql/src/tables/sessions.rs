//! `sessions` and `cascade_runs`: one row per session record (its state, or what it ran).

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::Result;
use datafusion::logical_expr::Expr;
use serde_json::Value;

use super::MagicTable;
use super::pushdown::{TimeRange, external, pushed_on};
use crate::runtime::Runtime;

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
            // A failed flush (logged by the writer) only leaves the newest events unread; the read goes on.
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
impl MagicTable for Sessions {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn pushed_columns(&self) -> &'static [&'static str] {
        SESSION_PUSHED
    }

    fn time_column(&self) -> Option<(&'static str, Option<&'static str>)> {
        Some((self.view.started_column(), None))
    }

    async fn rows(&self, filters: &[Expr], limit: Option<usize>) -> Result<RecordBatch> {
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
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}
