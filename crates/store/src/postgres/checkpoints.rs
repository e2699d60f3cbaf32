//! Checkpoints (human-in-the-loop waits and their continuations) in PostgreSQL.

use async_trait::async_trait;
use rvbbit_core::{SessionId, Timestamp};
use serde_json::Value;
use tokio_postgres::Row;

use super::{PostgresStore, corrupt};
use crate::error::Result;
use crate::model::{Checkpoint, CheckpointStatus};
use crate::traits::CheckpointStore;

const COLUMNS: &str =
    "checkpoint_id, session_id, cascade_id, cell_name, checkpoint_type, status, signal_name,
    signal_id, ui_spec, continuation, response, created_at_us, responded_at_us, timeout_at_us";

fn decode(url: &str, r: &Row) -> Result<Checkpoint> {
    let session: String = r.get(1);
    let status: String = r.get(5);
    Ok(Checkpoint {
        checkpoint_id: r.get(0),
        session_id: session.parse().map_err(|e| corrupt(url, "checkpoint", e))?,
        cascade_id: r.get(2),
        cell_name: r.get(3),
        checkpoint_type: r.get(4),
        status: status
            .parse::<CheckpointStatus>()
            .map_err(|e| corrupt(url, "checkpoint", e))?,
        signal_name: r.get(6),
        signal_id: r.get(7),
        ui_spec: r.get(8),
        continuation: r.get(9),
        response: r.get::<_, Option<Value>>(10),
        created_at: Timestamp::from_micros(r.get(11)),
        responded_at: r.get::<_, Option<i64>>(12).map(Timestamp::from_micros),
        timeout_at: r.get::<_, Option<i64>>(13).map(Timestamp::from_micros),
    })
}

#[async_trait]
impl CheckpointStore for PostgresStore {
    async fn checkpoint_put(&self, cp: &Checkpoint) -> Result<()> {
        let action = "write a checkpoint";
        let c = self.client(action).await?;
        c.execute(
            &format!(
                "INSERT INTO checkpoints ({COLUMNS})
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
                 ON CONFLICT (checkpoint_id) DO UPDATE SET session_id = excluded.session_id,
                 cascade_id = excluded.cascade_id, cell_name = excluded.cell_name,
                 checkpoint_type = excluded.checkpoint_type, status = excluded.status,
                 signal_name = excluded.signal_name, signal_id = excluded.signal_id,
                 ui_spec = excluded.ui_spec, continuation = excluded.continuation,
                 response = excluded.response, created_at_us = excluded.created_at_us,
                 responded_at_us = excluded.responded_at_us, timeout_at_us = excluded.timeout_at_us"
            ),
            &[
                &cp.checkpoint_id,
                &cp.session_id.as_str(),
                &cp.cascade_id,
                &cp.cell_name,
                &cp.checkpoint_type,
                &cp.status.as_str(),
                &cp.signal_name,
                &cp.signal_id,
                &cp.ui_spec,
                &cp.continuation,
                &cp.response,
                &cp.created_at.micros(),
                &cp.responded_at.map(Timestamp::micros),
                &cp.timeout_at.map(Timestamp::micros),
            ],
        )
        .await
        .map_err(|e| self.fail(action, e))?;
        Ok(())
    }

    async fn checkpoints(
        &self,
        session: Option<&SessionId>,
        status: Option<CheckpointStatus>,
    ) -> Result<Vec<Checkpoint>> {
        let action = "list checkpoints";
        let c = self.client(action).await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM checkpoints WHERE ($1::text IS NULL OR session_id = $1)
                     AND ($2::text IS NULL OR status = $2) ORDER BY created_at_us DESC, checkpoint_id DESC"
                ),
                &[
                    &session.map(SessionId::as_str),
                    &status.map(CheckpointStatus::as_str),
                ],
            )
            .await
            .map_err(|e| self.fail(action, e))?;
        rows.iter().map(|r| decode(&self.url, r)).collect()
    }
}
