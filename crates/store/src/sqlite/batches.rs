//! Batch records in SQLite (see [`crate::batches`]).

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Row, params};
use rvbbit_core::Timestamp;
use serde_json::Value;

use super::{Fail, SqliteStore, corrupt};
use crate::batches::{BatchRecord, BatchStore};
use crate::error::{Error, Result};

fn decode(url: &str, r: &Row<'_>) -> Result<BatchRecord, Fail> {
    let body: Option<String> = r.get(5)?;
    Ok(BatchRecord {
        batch_id: r.get(0)?,
        cascade_id: r.get(1)?,
        status: r.get(2)?,
        started_at: Timestamp::from_micros(r.get(3)?),
        updated_at: Timestamp::from_micros(r.get(4)?),
        body: match body {
            Some(b) => serde_json::from_str(&b).map_err(|e| corrupt(url, "batch", e))?,
            None => Value::Null,
        },
    })
}

#[async_trait]
impl BatchStore for SqliteStore {
    async fn batch_put(&self, batch: &BatchRecord) -> Result<()> {
        let b = batch.clone();
        self.with_conn("record a batch", move |c, _| {
            c.execute(
                "INSERT INTO batches (batch_id, cascade_id, status, started_at_us, updated_at_us, body)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (batch_id) DO UPDATE SET cascade_id = excluded.cascade_id,
                 status = excluded.status, updated_at_us = excluded.updated_at_us, body = excluded.body",
                params![
                    b.batch_id,
                    b.cascade_id,
                    b.status,
                    b.started_at.micros(),
                    b.updated_at.micros(),
                    b.body.to_string()
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn batch(&self, batch_id: &str) -> Result<BatchRecord> {
        let id = batch_id.to_owned();
        self.with_conn("read a batch", move |c, url| {
            let found = c
                .query_row(
                    "SELECT batch_id, cascade_id, status, started_at_us, updated_at_us, body FROM batches
                     WHERE batch_id = ?1",
                    [&id],
                    |r| Ok(decode(url, r)),
                )
                .optional()?;
            match found {
                Some(b) => b,
                None => Err(Fail::Store(Error::NotFound { what: "batch", id })),
            }
        })
        .await
    }

    async fn batch_progress(&self, batch_id: &str, body: &Value) -> Result<bool> {
        let (id, body) = (batch_id.to_owned(), body.to_string());
        let now = Timestamp::now().micros();
        self.with_conn("record a batch's progress", move |c, _| {
            let n = c.execute(
                "UPDATE batches SET body = ?2, updated_at_us = ?3 WHERE batch_id = ?1 AND status = 'running'",
                params![id, body, now],
            )?;
            Ok(n == 1)
        })
        .await
    }

    async fn batch_cancel(&self, batch_id: &str) -> Result<bool> {
        let id = batch_id.to_owned();
        let now = Timestamp::now().micros();
        self.with_conn("cancel a batch", move |c, _| {
            let n = c.execute(
                "UPDATE batches SET status = 'cancelling', updated_at_us = ?2
                 WHERE batch_id = ?1 AND status = 'running'",
                params![id, now],
            )?;
            Ok(n == 1)
        })
        .await
    }

    async fn batches(&self, limit: u32) -> Result<Vec<BatchRecord>> {
        self.with_conn("list batches", move |c, url| {
            let mut stmt = c.prepare(
                "SELECT batch_id, cascade_id, status, started_at_us, updated_at_us, NULL FROM batches
                 ORDER BY started_at_us DESC, batch_id LIMIT ?1",
            )?;
            let mut rows = stmt.query([limit])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(decode(url, r)?);
            }
            Ok(out)
        })
        .await
    }
}
