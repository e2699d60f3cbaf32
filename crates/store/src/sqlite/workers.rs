//! The worker registry in SQLite (see [`crate::workers`]).

use async_trait::async_trait;
use rusqlite::{Row, params};
use rvbbit_core::Timestamp;

use super::{Fail, SqliteStore, corrupt};
use crate::error::Result;
use crate::workers::{WorkerRecord, WorkerStore};

const COLUMNS: &str =
    "name, host, pid, tags, slots, in_flight, settled, state, started_at_us, heartbeat_at_us";

fn decode(url: &str, r: &Row<'_>) -> Result<WorkerRecord, Fail> {
    let tags: String = r.get(3)?;
    let state: String = r.get(7)?;
    Ok(WorkerRecord {
        name: r.get(0)?,
        host: r.get(1)?,
        pid: r.get(2)?,
        tags: serde_json::from_str(&tags).map_err(|e| corrupt(url, "worker", e))?,
        slots: r.get(4)?,
        in_flight: r.get(5)?,
        settled: r.get(6)?,
        state: state.parse().map_err(|e| corrupt(url, "worker", e))?,
        started_at: Timestamp::from_micros(r.get(8)?),
        heartbeat_at: Timestamp::from_micros(r.get(9)?),
    })
}

#[async_trait]
impl WorkerStore for SqliteStore {
    async fn worker_beat(&self, worker: &WorkerRecord) -> Result<()> {
        let w = worker.clone();
        self.with_conn("record a worker heartbeat", move |c, _| {
            c.execute(
                &format!(
                    "INSERT INTO workers ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                     ON CONFLICT (name) DO UPDATE SET host = excluded.host, pid = excluded.pid,
                     tags = excluded.tags, slots = excluded.slots, in_flight = excluded.in_flight,
                     settled = excluded.settled, state = excluded.state,
                     started_at_us = excluded.started_at_us, heartbeat_at_us = excluded.heartbeat_at_us"
                ),
                params![
                    w.name,
                    w.host,
                    w.pid,
                    w.tags.to_string(),
                    w.slots,
                    w.in_flight,
                    w.settled,
                    w.state.as_str(),
                    w.started_at.micros(),
                    w.heartbeat_at.micros()
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn workers(&self) -> Result<Vec<WorkerRecord>> {
        self.with_conn("list workers", move |c, url| {
            let mut stmt = c.prepare(&format!(
                "SELECT {COLUMNS} FROM workers ORDER BY heartbeat_at_us DESC, name"
            ))?;
            let mut rows = stmt.query([])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(decode(url, r)?);
            }
            Ok(out)
        })
        .await
    }
}
