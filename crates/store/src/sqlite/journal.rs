//! Run journals and side effects in SQLite (see [`crate::journal`]).

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Row, params};
use rvbbit_core::Timestamp;
use serde_json::Value;

use super::{Fail, SqliteStore, corrupt};
use crate::error::Result;
use crate::journal::{Effect, EffectBegin, EffectStatus, JournalEntry, JournalStore};

const EFFECT_COLUMNS: &str =
    "effect_key, session_id, cell_name, tool, status, attempts, result, started_at_us, finished_at_us";

fn decode_effect(url: &str, r: &Row<'_>) -> Result<Effect, Fail> {
    let session: String = r.get(1)?;
    let status: String = r.get(4)?;
    let result: Option<String> = r.get(6)?;
    Ok(Effect {
        key: r.get(0)?,
        session_id: session.parse().map_err(|e| corrupt(url, "effect", e))?,
        cell_name: r.get(2)?,
        tool: r.get(3)?,
        status: status.parse().map_err(|e| corrupt(url, "effect", e))?,
        attempts: r.get(5)?,
        result: result
            .map(|t| serde_json::from_str(&t).map_err(|e| corrupt(url, "effect", e)))
            .transpose()?,
        started_at: Timestamp::from_micros(r.get(7)?),
        finished_at: r.get::<_, Option<i64>>(8)?.map(Timestamp::from_micros),
    })
}

fn decode_entry(url: &str, r: &Row<'_>) -> Result<JournalEntry, Fail> {
    let session: String = r.get(2)?;
    let continuation: String = r.get(4)?;
    Ok(JournalEntry {
        run_key: r.get(0)?,
        step: r.get(1)?,
        session_id: session.parse().map_err(|e| corrupt(url, "journal entry", e))?,
        cell_name: r.get(3)?,
        continuation: serde_json::from_str(&continuation).map_err(|e| corrupt(url, "journal entry", e))?,
        created_at: Timestamp::from_micros(r.get(5)?),
    })
}

#[async_trait]
impl JournalStore for SqliteStore {
    async fn journal_put(&self, entry: &JournalEntry) -> Result<()> {
        let e = entry.clone();
        self.with_conn("record a journal step", move |c, _| {
            let n = c.execute(
                "INSERT INTO journal (run_key, step, session_id, cell_name, continuation, created_at_us)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (run_key, step) DO NOTHING",
                params![
                    e.run_key,
                    e.step,
                    e.session_id.as_str(),
                    e.cell_name,
                    e.continuation.to_string(),
                    e.created_at.micros()
                ],
            )?;
            if n == 0 {
                let holder: String = c.query_row(
                    "SELECT session_id FROM journal WHERE run_key = ?1 AND step = ?2",
                    params![e.run_key, e.step],
                    |r| r.get(0),
                )?;
                if holder != e.session_id.as_str() {
                    return Err(Fail::Store(crate::journal::conflict(&e, &holder)));
                }
            }
            Ok(())
        })
        .await
    }

    async fn journal_latest(&self, run_key: &str) -> Result<Option<JournalEntry>> {
        let key = run_key.to_owned();
        self.with_conn("read a run journal", move |c, url| {
            let mut stmt = c.prepare(
                "SELECT run_key, step, session_id, cell_name, continuation, created_at_us FROM journal
                 WHERE run_key = ?1 ORDER BY step DESC LIMIT 1",
            )?;
            let mut rows = stmt.query([key])?;
            match rows.next()? {
                Some(r) => Ok(Some(decode_entry(url, r)?)),
                None => Ok(None),
            }
        })
        .await
    }

    async fn effect_begin(&self, effect: &Effect) -> Result<EffectBegin> {
        let e = effect.clone();
        self.with_conn("record a side effect", move |c, url| {
            // One statement, so two attempts claiming the same key cannot both see it new.
            let attempts: Option<i64> = c
                .query_row(
                    &format!(
                        "INSERT INTO effects ({EFFECT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, 'started', 1, NULL, ?5, NULL)
                         ON CONFLICT (effect_key) DO UPDATE SET attempts = effects.attempts + 1,
                         session_id = excluded.session_id, status = 'started', result = NULL,
                         started_at_us = excluded.started_at_us, finished_at_us = NULL
                         WHERE effects.status <> 'done' RETURNING attempts"
                    ),
                    params![e.key, e.session_id.as_str(), e.cell_name, e.tool, e.started_at.micros()],
                    |r| r.get(0),
                )
                .optional()?;
            match attempts {
                Some(1) => Ok(EffectBegin::First),
                Some(n) => Ok(EffectBegin::Again { attempts: n }),
                None => {
                    let done = c.query_row(
                        &format!("SELECT {EFFECT_COLUMNS} FROM effects WHERE effect_key = ?1"),
                        [&e.key],
                        |r| Ok(decode_effect(url, r)),
                    )??;
                    Ok(EffectBegin::Done(done))
                }
            }
        })
        .await
    }

    async fn effect_finish(
        &self,
        key: &str,
        status: EffectStatus,
        result: &Value,
        at: Timestamp,
    ) -> Result<()> {
        let key = key.to_owned();
        let result = result.to_string();
        self.with_conn("record a side effect's end", move |c, _| {
            c.execute(
                "UPDATE effects SET status = ?2, result = ?3, finished_at_us = ?4
                 WHERE effect_key = ?1 AND status = 'started'",
                params![key, status.as_str(), result, at.micros()],
            )?;
            Ok(())
        })
        .await
    }

    async fn effects(&self, prefix: &str) -> Result<Vec<Effect>> {
        let prefix = prefix.to_owned();
        self.with_conn("list side effects", move |c, url| {
            let mut stmt = c.prepare(&format!(
                "SELECT {EFFECT_COLUMNS} FROM effects WHERE substr(effect_key, 1, length(?1)) = ?1
                 ORDER BY started_at_us, effect_key"
            ))?;
            let mut rows = stmt.query([prefix])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(decode_effect(url, r)?);
            }
            Ok(out)
        })
        .await
    }
}
