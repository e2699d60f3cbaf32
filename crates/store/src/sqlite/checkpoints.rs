//! Checkpoints (human-in-the-loop waits and their continuations) in SQLite.

use async_trait::async_trait;
use rusqlite::{Row, params};
use rvbbit_core::{SessionId, Timestamp};
use serde_json::Value;

use super::{Fail, SqliteStore, corrupt};
use crate::error::Result;
use crate::model::{Checkpoint, CheckpointStatus};
use crate::traits::CheckpointStore;

const COLUMNS: &str =
    "checkpoint_id, session_id, cascade_id, cell_name, checkpoint_type, status, signal_name,
    signal_id, ui_spec, continuation, response, created_at_us, responded_at_us, timeout_at_us";

fn decode(url: &str, r: &Row<'_>) -> Result<Checkpoint, Fail> {
    let json = |i: usize| -> Result<Option<Value>, Fail> {
        let t: Option<String> = r.get(i)?;
        t.map(|t| serde_json::from_str(&t).map_err(|e| corrupt(url, "checkpoint", e)))
            .transpose()
    };
    let session: String = r.get(1)?;
    let status: String = r.get(5)?;
    Ok(Checkpoint {
        checkpoint_id: r.get(0)?,
        session_id: session.parse().map_err(|e| corrupt(url, "checkpoint", e))?,
        cascade_id: r.get(2)?,
        cell_name: r.get(3)?,
        checkpoint_type: r.get(4)?,
        status: status
            .parse::<CheckpointStatus>()
            .map_err(|e| corrupt(url, "checkpoint", e))?,
        signal_name: r.get(6)?,
        signal_id: r.get(7)?,
        ui_spec: json(8)?.unwrap_or(Value::Null),
        continuation: json(9)?.unwrap_or(Value::Null),
        response: json(10)?,
        created_at: Timestamp::from_micros(r.get(11)?),
        responded_at: r.get::<_, Option<i64>>(12)?.map(Timestamp::from_micros),
        timeout_at: r.get::<_, Option<i64>>(13)?.map(Timestamp::from_micros),
    })
}

#[async_trait]
impl CheckpointStore for SqliteStore {
    async fn checkpoint_put(&self, cp: &Checkpoint) -> Result<()> {
        let cp = cp.clone();
        self.with_conn("write a checkpoint", move |c, _| {
            c.execute(
                &format!(
                    "INSERT OR REPLACE INTO checkpoints ({COLUMNS})
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
                ),
                params![
                    cp.checkpoint_id,
                    cp.session_id.as_str(),
                    cp.cascade_id,
                    cp.cell_name,
                    cp.checkpoint_type,
                    cp.status.as_str(),
                    cp.signal_name,
                    cp.signal_id,
                    cp.ui_spec.to_string(),
                    cp.continuation.to_string(),
                    cp.response.as_ref().map(Value::to_string),
                    cp.created_at.micros(),
                    cp.responded_at.map(Timestamp::micros),
                    cp.timeout_at.map(Timestamp::micros),
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn checkpoints(
        &self,
        session: Option<&SessionId>,
        status: Option<CheckpointStatus>,
    ) -> Result<Vec<Checkpoint>> {
        let session = session.map(|s| s.as_str().to_owned());
        let status = status.map(|s| s.as_str());
        self.with_conn("list checkpoints", move |c, url| {
            let mut stmt = c.prepare(&format!(
                "SELECT {COLUMNS} FROM checkpoints WHERE (?1 IS NULL OR session_id = ?1)
                 AND (?2 IS NULL OR status = ?2) ORDER BY created_at_us DESC, checkpoint_id DESC"
            ))?;
            let mut rows = stmt.query(params![session, status])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(decode(url, r)?);
            }
            Ok(out)
        })
        .await
    }
}
