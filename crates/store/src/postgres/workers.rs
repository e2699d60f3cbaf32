//! The worker registry in PostgreSQL (see [`crate::workers`]).

use async_trait::async_trait;
use rvbbit_core::Timestamp;
use serde_json::Value;
use tokio_postgres::Row;

use super::{PostgresStore, corrupt};
use crate::error::Result;
use crate::workers::{WorkerRecord, WorkerStore};

const COLUMNS: &str =
    "name, host, pid, tags, slots, in_flight, settled, state, started_at_us, heartbeat_at_us";

fn decode(url: &str, r: &Row) -> Result<WorkerRecord> {
    let state: String = r.get(7);
    Ok(WorkerRecord {
        name: r.get(0),
        host: r.get(1),
        pid: r.get(2),
        tags: r.get::<_, Value>(3),
        slots: r.get(4),
        in_flight: r.get(5),
        settled: r.get(6),
        state: state.parse().map_err(|e| corrupt(url, "worker", e))?,
        started_at: Timestamp::from_micros(r.get(8)),
        heartbeat_at: Timestamp::from_micros(r.get(9)),
    })
}

#[async_trait]
impl WorkerStore for PostgresStore {
    async fn worker_beat(&self, w: &WorkerRecord) -> Result<()> {
        let action = "record a worker heartbeat";
        let c = self.client(action).await?;
        c.execute(
            &format!(
                "INSERT INTO workers ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                 ON CONFLICT (name) DO UPDATE SET host = excluded.host, pid = excluded.pid,
                 tags = excluded.tags, slots = excluded.slots, in_flight = excluded.in_flight,
                 settled = excluded.settled, state = excluded.state,
                 started_at_us = excluded.started_at_us, heartbeat_at_us = excluded.heartbeat_at_us"
            ),
            &[
                &w.name,
                &w.host,
                &w.pid,
                &w.tags,
                &w.slots,
                &w.in_flight,
                &w.settled,
                &w.state.as_str(),
                &w.started_at.micros(),
                &w.heartbeat_at.micros(),
            ],
        )
        .await
        .map_err(|e| self.fail(action, e))?;
        Ok(())
    }

    async fn workers(&self) -> Result<Vec<WorkerRecord>> {
        let action = "list workers";
        let c = self.client(action).await?;
        let rows = c
            .query(
                &format!("SELECT {COLUMNS} FROM workers ORDER BY heartbeat_at_us DESC, name"),
                &[],
            )
            .await
            .map_err(|e| self.fail(action, e))?;
        rows.iter().map(|r| decode(&self.url, r)).collect()
    }
}
