//! Records of `rvbbit batch` runs: what was run (the cascade, the inputs, the options) and how each input
//! ended, so `rvbbit batch list | status | retry` work from any process that shares the store. The
//! store keeps the record's body as an opaque JSON document; the CLI owns its shape.

use async_trait::async_trait;
use rvbbit_core::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::Result;

/// One batch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BatchRecord {
    /// The batch id (its caller id is `batch-<id>`).
    pub batch_id: String,
    /// The cascade it ran.
    pub cascade_id: String,
    /// `running`, `completed`, `partial`, `failed` or `interrupted`.
    pub status: String,
    /// When it started.
    pub started_at: Timestamp,
    /// When the record last changed.
    pub updated_at: Timestamp,
    /// Everything else (the CLI's document: the run's options, counts, each input's result).
    pub body: Value,
}

impl BatchRecord {
    /// A record of a batch that starts now.
    pub fn start(batch_id: impl Into<String>, cascade_id: impl Into<String>, body: Value) -> Self {
        let now = Timestamp::now();
        BatchRecord {
            batch_id: batch_id.into(),
            cascade_id: cascade_id.into(),
            status: "running".into(),
            started_at: now,
            updated_at: now,
            body,
        }
    }
}

/// Where batch records live.
#[async_trait]
pub trait BatchStore: Send + Sync {
    /// Insert the batch, or replace its record (by id).
    async fn batch_put(&self, batch: &BatchRecord) -> Result<()>;

    /// One batch. Errors: [`crate::Error::NotFound`].
    async fn batch(&self, batch_id: &str) -> Result<BatchRecord>;

    /// The latest `limit` batches, newest first, without their bodies (`body` is `null`).
    async fn batches(&self, limit: u32) -> Result<Vec<BatchRecord>>;

    /// Replace the body of a batch that is still `running` (its live progress): compare-and-set on the
    /// status, so a cancel asked meanwhile is never overwritten. True when the record changed.
    async fn batch_progress(&self, batch_id: &str, body: &Value) -> Result<bool>;

    /// Ask a running batch to stop: compare-and-set of its status from `running` to `cancelling`.
    /// True when this call made the change; false when the batch is not running (or not known).
    async fn batch_cancel(&self, batch_id: &str) -> Result<bool>;
}
