//! Run journals and side effects in PostgreSQL (see [`crate::journal`]).

use async_trait::async_trait;
use rvbbit_core::Timestamp;
use serde_json::Value;
use tokio_postgres::Row;

use super::{PostgresStore, corrupt};
use crate::error::Result;
use crate::journal::{Effect, EffectBegin, EffectStatus, JournalEntry, JournalStore};

const EFFECT_COLUMNS: &str =
    "effect_key, session_id, cell_name, tool, status, attempts, result, started_at_us, finished_at_us";

fn decode_effect(url: &str, r: &Row) -> Result<Effect> {
    let session: String = r.get(1);
    let status: String = r.get(4);
    Ok(Effect {
        key: r.get(0),
        session_id: session.parse().map_err(|e| corrupt(url, "effect", e))?,
        cell_name: r.get(2),
        tool: r.get(3),
        status: status.parse().map_err(|e| corrupt(url, "effect", e))?,
        attempts: r.get(5),
        result: r.get::<_, Option<Value>>(6),
        started_at: Timestamp::from_micros(r.get(7)),
        finished_at: r.get::<_, Option<i64>>(8).map(Timestamp::from_micros),
    })
}

#[async_trait]
impl JournalStore for PostgresStore {
    async fn journal_put(&self, entry: &JournalEntry) -> Result<()> {
        let action = "record a journal step";
        let c = self.client(action).await?;
        let n = c
            .execute(
                "INSERT INTO journal (run_key, step, session_id, cell_name, continuation, created_at_us)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (run_key, step) DO NOTHING",
                &[
                    &entry.run_key,
                    &entry.step,
                    &entry.session_id.as_str(),
                    &entry.cell_name,
                    &entry.continuation,
                    &entry.created_at.micros(),
                ],
            )
            .await
            .map_err(|e| self.fail(action, e))?;
        if n == 0 {
            let holder: String = c
                .query_one(
                    "SELECT session_id FROM journal WHERE run_key = $1 AND step = $2",
                    &[&entry.run_key, &entry.step],
                )
                .await
                .map_err(|e| self.fail(action, e))?
                .get(0);
            if holder != entry.session_id.as_str() {
                return Err(crate::journal::conflict(entry, &holder));
            }
        }
        Ok(())
    }

    async fn journal_latest(&self, run_key: &str) -> Result<Option<JournalEntry>> {
        let action = "read a run journal";
        let c = self.client(action).await?;
        let row = c
            .query_opt(
                "SELECT run_key, step, session_id, cell_name, continuation, created_at_us FROM journal
                 WHERE run_key = $1 ORDER BY step DESC LIMIT 1",
                &[&run_key],
            )
            .await
            .map_err(|e| self.fail(action, e))?;
        let Some(r) = row else { return Ok(None) };
        let session: String = r.get(2);
        Ok(Some(JournalEntry {
            run_key: r.get(0),
            step: r.get(1),
            session_id: session
                .parse()
                .map_err(|e| corrupt(&self.url, "journal entry", e))?,
            cell_name: r.get(3),
            continuation: r.get(4),
            created_at: Timestamp::from_micros(r.get(5)),
        }))
    }

    async fn effect_begin(&self, e: &Effect) -> Result<EffectBegin> {
        let action = "record a side effect";
        let c = self.client(action).await?;
        // One statement, so two attempts claiming the same key cannot both see it new.
        let row = c
            .query_opt(
                &format!(
                    "INSERT INTO effects ({EFFECT_COLUMNS}) VALUES ($1, $2, $3, $4, 'started', 1, NULL, $5, NULL)
                     ON CONFLICT (effect_key) DO UPDATE SET attempts = effects.attempts + 1,
                     session_id = excluded.session_id, status = 'started', result = NULL,
                     started_at_us = excluded.started_at_us, finished_at_us = NULL
                     WHERE effects.status <> 'done' RETURNING attempts"
                ),
                &[
                    &e.key,
                    &e.session_id.as_str(),
                    &e.cell_name,
                    &e.tool,
                    &e.started_at.micros(),
                ],
            )
            .await
            .map_err(|err| self.fail(action, err))?;
        match row.map(|r| r.get::<_, i64>(0)) {
            Some(1) => Ok(EffectBegin::First),
            Some(n) => Ok(EffectBegin::Again { attempts: n }),
            None => {
                let r = c
                    .query_one(
                        &format!("SELECT {EFFECT_COLUMNS} FROM effects WHERE effect_key = $1"),
                        &[&e.key],
                    )
                    .await
                    .map_err(|err| self.fail(action, err))?;
                Ok(EffectBegin::Done(decode_effect(&self.url, &r)?))
            }
        }
    }

    async fn effect_finish(
        &self,
        key: &str,
        status: EffectStatus,
        result: &Value,
        at: Timestamp,
    ) -> Result<()> {
        let action = "record a side effect's end";
        let c = self.client(action).await?;
        c.execute(
            "UPDATE effects SET status = $2, result = $3, finished_at_us = $4
             WHERE effect_key = $1 AND status = 'started'",
            &[&key, &status.as_str(), result, &at.micros()],
        )
        .await
        .map_err(|e| self.fail(action, e))?;
        Ok(())
    }

    async fn effects(&self, prefix: &str) -> Result<Vec<Effect>> {
        let action = "list side effects";
        let c = self.client(action).await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {EFFECT_COLUMNS} FROM effects WHERE left(effect_key, length($1)) = $1
                     ORDER BY started_at_us, effect_key"
                ),
                &[&prefix],
            )
            .await
            .map_err(|e| self.fail(action, e))?;
        rows.iter().map(|r| decode_effect(&self.url, r)).collect()
    }
}
