//! Magic tables over the store, read when they are scanned: `sql_query_log` (one row per SQL statement
//! that reached an rvbbit function), `all_data` (one row per event), `sessions` (one row per session
//! record), `cascade_runs` (one row per run, with its cascade text and input, for replay), `checkpoints`,
//! `signals` and `rvbbit_functions` (the session's semantic SQL functions).
//!
//! Each table is data: a struct with its schema, the columns it pushes equality filters for, its time
//! column, and how its rows are read ([`MagicTable`]). One generic provider ([`Served`]) serves them
//! all: it declares the pushdown (inexact, see `pushdown.rs`) and scans the rows read for the filters.

mod all_data;
mod checkpoints;
mod functions;
mod pushdown;
mod sessions;
mod signals;
mod sql_query_log;

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{MemTable, Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::error::Result;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;

pub(crate) use all_data::AllData;
pub(crate) use checkpoints::Checkpoints;
pub(crate) use functions::Functions;
pub(crate) use sessions::{SessionView, Sessions};
pub(crate) use signals::Signals;
pub(crate) use sql_query_log::SqlQueryLog;

/// One magic table: its schema, its declared pushdown and how its rows are read.
#[async_trait]
pub(crate) trait MagicTable: std::fmt::Debug + Send + Sync {
    /// The columns.
    fn schema(&self) -> SchemaRef;

    /// The columns whose equality filters (`column = 'literal'`) the table pushes to the store.
    fn pushed_columns(&self) -> &'static [&'static str];

    /// The time column whose ranges are pushed: (RFC 3339 text column, microseconds column).
    fn time_column(&self) -> Option<(&'static str, Option<&'static str>)> {
        None
    }

    /// The rows for `filters` (a superset of what they keep) and `limit`, read from the store.
    async fn rows(&self, filters: &[Expr], limit: Option<usize>) -> Result<RecordBatch>;
}

/// The provider of a magic table: a view whose pushdown is the table's declaration.
#[derive(Debug)]
pub(crate) struct Served<T>(pub(crate) T);

#[async_trait]
impl<T: MagicTable + 'static> TableProvider for Served<T> {
    fn schema(&self) -> SchemaRef {
        self.0.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(pushdown::pushdown(
            filters,
            self.0.pushed_columns(),
            self.0.time_column(),
        ))
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let schema = self.0.schema();
        let table = MemTable::try_new(schema, vec![vec![self.0.rows(filters, limit).await?]])?;
        table.scan(state, projection, filters, limit).await
    }
}
