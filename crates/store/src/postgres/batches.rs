//! Batch records in PostgreSQL (see [`crate::batches`]).

use async_trait::async_trait;
use rvbbit_core::Timestamp;
use serde_json::Value;
use tokio_postgres::Row;

use super::PostgresStore;
use crate::batches::{BatchRecord, BatchStore};
use crate::error::{Error, Result};

fn decode(r: &Row) -> BatchRecord {
    BatchRecord {
        batch_id: r.get(0),
        cascade_id: r.get(1),
        status: r.get(2),
        started_at: Timestamp::from_micros(r.get(3)),
        updated_at: Timestamp::from_micros(r.get(4)),
        body: r.get::<_, Option<Value>>(5).unwrap_or(Value::Null),
    }
}

#[async_trait]
impl BatchStore for PostgresStore {
    async fn batch_put(&self, b: &BatchRecord) -> Result<()> {
        let action = "record a batch";
        let c = self.client(action).await?;
        c.execute(
            "INSERT INTO batches (batch_id, cascade_id, status, started_at_us, updated_at_us, body)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (batch_id) DO UPDATE SET cascade_id = excluded.cascade_id,
             status = excluded.status, updated_at_us = excluded.updated_at_us, body = excluded.body",
            &[
                &b.batch_id,
                &b.cascade_id,
                &b.status,
                &b.started_at.micros(),
                &b.updated_at.micros(),
                &b.body,
            ],
        )
        .await
        .map_err(|e| self.fail(action, e))?;
        Ok(())
    }

    async fn batch(&self, batch_id: &str) -> Result<BatchRecord> {
        let action = "read a batch";
        let c = self.client(action).await?;
        let row = c
            .query_opt(
                "SELECT batch_id, cascade_id, status, started_at_us, updated_at_us, body FROM batches
                 WHERE batch_id = $1",
                &[&batch_id],
            )
            .await
            .map_err(|e| self.fail(action, e))?;
        row.map(|r| decode(&r)).ok_or_else(|| Error::NotFound {
            what: "batch",
            id: batch_id.to_owned(),
        })
    }

    async fn batch_progress(&self, batch_id: &str, body: &Value) -> Result<bool> {
        let action = "record a batch's progress";
        let c = self.client(action).await?;
        let n = c
            .execute(
                "UPDATE batches SET body = $2, updated_at_us = $3 WHERE batch_id = $1 AND status = 'running'",
                &[&batch_id, body, &Timestamp::now().micros()],
            )
            .await
            .map_err(|e| self.fail(action, e))?;
        Ok(n == 1)
    }

    async fn batch_cancel(&self, batch_id: &str) -> Result<bool> {
        let action = "cancel a batch";
        let c = self.client(action).await?;
        let n = c
            .execute(
                "UPDATE batches SET status = 'cancelling', updated_at_us = $2
                 WHERE batch_id = $1 AND status = 'running'",
                &[&batch_id, &Timestamp::now().micros()],
            )
            .await
            .map_err(|e| self.fail(action, e))?;
        Ok(n == 1)
    }

    async fn batches(&self, limit: u32) -> Result<Vec<BatchRecord>> {
        let action = "list batches";
        let c = self.client(action).await?;
        let rows = c
            .query(
                "SELECT batch_id, cascade_id, status, started_at_us, updated_at_us, NULL::jsonb FROM batches
                 ORDER BY started_at_us DESC, batch_id LIMIT $1",
                &[&i64::from(limit)],
            )
            .await
            .map_err(|e| self.fail(action, e))?;
        Ok(rows.iter().map(decode).collect())
    }
}
