//! Sessions, the result cache and signals in SQLite.

use std::collections::HashMap;

use async_trait::async_trait;
use rusqlite::types::Value as SqlValue;
use rusqlite::{OptionalExtension, Row, TransactionBehavior, params, params_from_iter};
use rvbbit_core::{MicroUsd, SessionId, SessionStatus, Timestamp};
use serde_json::Value;

use super::{Fail, SqliteStore, corrupt};
use crate::error::{Error, Result};
use crate::model::{CacheEntry, Cleanup, Session, SessionFilter, SessionSummary, Signal, SignalStatus};
use crate::traits::{ResultCache, SessionStore, SignalStore};

const SESSION_COLUMNS: &str = "session_id, cascade_id, parent_session_id, root_session_id, caller_id,
    invocation_metadata, depth, status, current_cell, input, output, error, cascade_file, cascade_text,
    cascade_hash, started_at_us, updated_at_us, ended_at_us, heartbeat_at_us, cancel_requested";

fn decode_session(url: &str, r: &Row<'_>) -> Result<Session, Fail> {
    let json = |i: usize| -> Result<Option<Value>, Fail> {
        let t: Option<String> = r.get(i)?;
        t.map(|t| serde_json::from_str(&t).map_err(|e| corrupt(url, "session", e)))
            .transpose()
    };
    let sid = |i: usize| -> Result<Option<SessionId>, Fail> {
        let t: Option<String> = r.get(i)?;
        t.map(|t| t.parse().map_err(|e| corrupt(url, "session", e)))
            .transpose()
    };
    let caller: Option<String> = r.get(4)?;
    let status: String = r.get(7)?;
    let depth: i64 = r.get(6)?;
    Ok(Session {
        session_id: sid(0)?.ok_or_else(|| corrupt(url, "session", "no session id"))?,
        cascade_id: r.get(1)?,
        parent_session_id: sid(2)?,
        root_session_id: sid(3)?.ok_or_else(|| corrupt(url, "session", "no root session id"))?,
        caller_id: caller
            .map(|c| c.parse().map_err(|e| corrupt(url, "session", e)))
            .transpose()?,
        invocation_metadata: json(5)?.unwrap_or(Value::Null),
        depth: u32::try_from(depth).unwrap_or(0),
        status: status.parse().map_err(|e| corrupt(url, "session", e))?,
        current_cell: r.get(8)?,
        input: json(9)?.unwrap_or(Value::Null),
        output: json(10)?,
        error: r.get(11)?,
        cascade_file: r.get(12)?,
        cascade_text: r.get(13)?,
        cascade_hash: r.get(14)?,
        started_at: Timestamp::from_micros(r.get(15)?),
        updated_at: Timestamp::from_micros(r.get(16)?),
        ended_at: r.get::<_, Option<i64>>(17)?.map(Timestamp::from_micros),
        heartbeat_at: Timestamp::from_micros(r.get(18)?),
        cancel_requested: r.get::<_, i64>(19)? != 0,
    })
}

fn load_session(c: &rusqlite::Connection, url: &str, id: &str) -> Result<Option<Session>, Fail> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {SESSION_COLUMNS} FROM sessions WHERE session_id = ?1"
    ))?;
    let mut rows = stmt.query([id])?;
    match rows.next()? {
        Some(r) => Ok(Some(decode_session(url, r)?)),
        None => Ok(None),
    }
}

fn not_found(id: &str) -> Fail {
    Fail::Store(Error::NotFound {
        what: "session",
        id: id.to_owned(),
    })
}

/// Upsert session records inside an open transaction (newer `updated_at` wins). A finished session
/// (`completed`, `failed`, `cancelled`) keeps its status: a late write from a process that did not know
/// (a waiting run cancelled from the command line, a zombie marked orphaned) cannot revive or re-end it.
pub(crate) fn upsert_sessions(tx: &rusqlite::Transaction<'_>, sessions: &[Session]) -> Result<(), Fail> {
    let mut stmt = tx.prepare_cached(&format!(
        "INSERT INTO sessions ({SESSION_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12,
         ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)
         ON CONFLICT (session_id) DO UPDATE SET cascade_id = excluded.cascade_id,
         parent_session_id = excluded.parent_session_id, root_session_id = excluded.root_session_id,
         caller_id = excluded.caller_id, invocation_metadata = excluded.invocation_metadata,
         depth = excluded.depth, status = excluded.status, current_cell = excluded.current_cell,
         input = excluded.input, output = excluded.output, error = excluded.error,
         cascade_file = excluded.cascade_file, cascade_text = excluded.cascade_text,
         cascade_hash = excluded.cascade_hash, started_at_us = excluded.started_at_us,
         updated_at_us = excluded.updated_at_us, ended_at_us = excluded.ended_at_us,
         heartbeat_at_us = max(heartbeat_at_us, excluded.heartbeat_at_us),
         cancel_requested = max(cancel_requested, excluded.cancel_requested)
         WHERE excluded.updated_at_us >= sessions.updated_at_us
         AND (sessions.status NOT IN ('completed', 'failed', 'cancelled') OR excluded.status = sessions.status)"
    ))?;
    for s in sessions {
        stmt.execute(params![
            s.session_id.as_str(),
            s.cascade_id,
            s.parent_session_id.as_ref().map(|x| x.as_str()),
            s.root_session_id.as_str(),
            s.caller_id.as_ref().map(|x| x.as_str()),
            s.invocation_metadata.to_string(),
            s.depth,
            s.status.as_str(),
            s.current_cell,
            s.input.to_string(),
            s.output.as_ref().map(|v| v.to_string()),
            s.error,
            s.cascade_file,
            s.cascade_text,
            s.cascade_hash,
            s.started_at.micros(),
            s.updated_at.micros(),
            s.ended_at.map(Timestamp::micros),
            s.heartbeat_at.micros(),
            i64::from(s.cancel_requested),
        ])?;
    }
    Ok(())
}

fn session_where(f: &SessionFilter) -> (String, Vec<SqlValue>) {
    let mut clauses: Vec<String> = Vec::new();
    let mut params: Vec<SqlValue> = Vec::new();
    let mut add = |clause: &str, v: SqlValue| {
        clauses.push(clause.replace('?', &format!("?{}", params.len() + 1)));
        params.push(v);
    };
    if let Some(c) = &f.cascade_id {
        add("cascade_id = ?", SqlValue::Text(c.clone()));
    }
    if let Some(c) = &f.caller_id {
        add("caller_id = ?", SqlValue::Text(c.clone()));
    }
    if let Some(t) = f.since {
        add("started_at_us >= ?", SqlValue::Integer(t.micros()));
    }
    if let Some(t) = f.until {
        add("started_at_us < ?", SqlValue::Integer(t.micros()));
    }
    if let Some(s) = f.status {
        add("status = ?", SqlValue::Text(s.as_str().to_owned()));
    }
    let sql = if clauses.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", clauses.join(" AND "))
    };
    (sql, params)
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn put_sessions(&self, sessions: &[Session]) -> Result<()> {
        if sessions.is_empty() {
            return Ok(());
        }
        let sessions = sessions.to_vec();
        self.with_conn("write sessions", move |c, _| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            upsert_sessions(&tx, &sessions)?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn session(&self, id: &SessionId) -> Result<Session> {
        let id = id.as_str().to_owned();
        self.with_conn("read a session", move |c, url| {
            load_session(c, url, &id)?.ok_or_else(|| not_found(&id))
        })
        .await
    }

    async fn create_session(&self, session: &Session) -> Result<()> {
        let session = session.clone();
        self.with_conn("create a session", move |c, url| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let id = session.session_id.as_str().to_owned();
            if let Some(existing) = load_session(&tx, url, &id)? {
                return Err(Fail::Store(Error::Conflict {
                    what: "session",
                    id,
                    state: existing.status.to_string(),
                    reason: "a session with this id already exists; a run never joins another run's session"
                        .into(),
                }));
            }
            upsert_sessions(&tx, std::slice::from_ref(&session))?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn claim_waiting(&self, id: &SessionId, checkpoint_id: &str, now: Timestamp) -> Result<Session> {
        let id = id.as_str().to_owned();
        let checkpoint_id = checkpoint_id.to_owned();
        self.with_conn("claim a waiting session", move |c, url| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            // The compare-and-set: only a waiting session whose checkpoint is still pending moves.
            let n = tx.execute(
                "UPDATE sessions SET status = 'running', updated_at_us = max(updated_at_us + 1, ?2),
                 heartbeat_at_us = max(heartbeat_at_us, ?2)
                 WHERE session_id = ?1 AND status = 'waiting' AND EXISTS (SELECT 1 FROM checkpoints k
                     WHERE k.checkpoint_id = ?3 AND k.session_id = ?1 AND k.status = 'pending')",
                params![id, now.micros(), checkpoint_id],
            )?;
            let session = load_session(&tx, url, &id)?.ok_or_else(|| not_found(&id))?;
            if n == 0 {
                let reason = match session.status {
                    SessionStatus::Running => "it is already being resumed by another process".to_owned(),
                    SessionStatus::Waiting => format!(
                        "its checkpoint {checkpoint_id} was answered or replaced meanwhile (another process resumed it)"
                    ),
                    _ => "only a waiting session can be resumed".to_owned(),
                };
                return Err(Fail::Store(Error::Conflict {
                    what: "session",
                    id,
                    state: session.status.to_string(),
                    reason,
                }));
            }
            tx.commit()?;
            Ok(session)
        })
        .await
    }

    async fn sessions(&self, filter: &SessionFilter) -> Result<Vec<SessionSummary>> {
        let (clause, params) = session_where(filter);
        let limit = filter.limit.map_or(String::new(), |l| format!(" LIMIT {l}"));
        self.with_conn("list sessions", move |c, url| {
            let sql = format!(
                "SELECT {SESSION_COLUMNS} FROM sessions{clause} ORDER BY started_at_us DESC, session_id{limit}"
            );
            let mut stmt = c.prepare(&sql)?;
            let mut rows = stmt.query(params_from_iter(params))?;
            let mut sessions = Vec::new();
            while let Some(r) = rows.next()? {
                sessions.push(decode_session(url, r)?);
            }
            let mut totals = c.prepare_cached(
                "SELECT count(*), coalesce(sum(cost_micro_usd), 0), coalesce(sum(tokens_in), 0),
                 coalesce(sum(tokens_out), 0) FROM events WHERE session_id = ?1",
            )?;
            let mut out = Vec::with_capacity(sessions.len());
            for s in sessions {
                let (events, cost, tokens_in, tokens_out) =
                    totals.query_row([s.session_id.as_str()], |r| {
                        Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get(2)?, r.get(3)?))
                    })?;
                out.push(SessionSummary {
                    session: s,
                    events: u64::try_from(events).unwrap_or(0),
                    cost: MicroUsd::from_micros(cost),
                    tokens_in,
                    tokens_out,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn heartbeat(&self, id: &SessionId, at: Timestamp) -> Result<()> {
        let id = id.as_str().to_owned();
        self.with_conn("record a heartbeat", move |c, _| {
            let n = c.execute(
                "UPDATE sessions SET heartbeat_at_us = max(heartbeat_at_us, ?2) WHERE session_id = ?1",
                params![id, at.micros()],
            )?;
            if n == 0 {
                return Err(not_found(&id));
            }
            Ok(())
        })
        .await
    }

    async fn request_cancel(&self, id: &SessionId, reason: &str) -> Result<Session> {
        let id = id.as_str().to_owned();
        let reason = reason.to_owned();
        self.with_conn("request cancellation", move |c, url| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut s = load_session(&tx, url, &id)?.ok_or_else(|| not_found(&id))?;
            if !s.status.is_active() {
                return Err(Fail::Store(Error::Conflict {
                    what: "session",
                    id,
                    state: s.status.to_string(),
                    reason: "only running or waiting sessions can be cancelled".into(),
                }));
            }
            if s.status == SessionStatus::Waiting {
                // Nothing may be running a waiting session (it exited with `--detach`, or was never
                // resumed): cancel it here and now. The compare-and-set (`waiting` → `cancelled`) loses
                // to a resume that claimed it first; then the running process stops at its next boundary.
                let now = Timestamp::now().micros();
                let error = format!("cancelled: {reason}");
                let n = tx.execute(
                    "UPDATE sessions SET status = 'cancelled', cancel_requested = 1, error = coalesce(error, ?3),
                     ended_at_us = ?2, updated_at_us = max(updated_at_us + 1, ?2)
                     WHERE session_id = ?1 AND status = 'waiting'",
                    params![id, now, error],
                )?;
                if n == 1 {
                    // Its open questions close with it: nothing offers to answer or resume it.
                    tx.execute(
                        "UPDATE checkpoints SET status = 'cancelled' WHERE session_id = ?1 AND status = 'pending'",
                        [&id],
                    )?;
                    tx.execute(
                        "UPDATE signals SET status = 'cancelled' WHERE session_id = ?1 AND status = 'waiting'",
                        [&id],
                    )?;
                    let s = load_session(&tx, url, &id)?.ok_or_else(|| not_found(&id))?;
                    tx.commit()?;
                    return Ok(s);
                }
            }
            tx.execute(
                "UPDATE sessions SET cancel_requested = 1, error = coalesce(error, ?2) WHERE session_id = ?1",
                params![id, format!("cancel requested: {reason}")],
            )?;
            tx.commit()?;
            s.cancel_requested = true;
            Ok(s)
        })
        .await
    }

    async fn cleanup(
        &self,
        stale_before: Timestamp,
        delete_before: Option<Timestamp>,
        dry_run: bool,
    ) -> Result<Cleanup> {
        self.with_conn("clean up sessions", move |c, url| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let ids = |sql: &str, t: i64| -> Result<Vec<SessionId>, Fail> {
                let mut stmt = tx.prepare(sql)?;
                let rows = stmt.query_map([t], |r| r.get::<_, String>(0))?;
                let mut out = Vec::new();
                for r in rows {
                    out.push(r?.parse().map_err(|e| corrupt(url, "session", e))?);
                }
                Ok(out)
            };
            let orphaned = ids(
                // A waiting session with a pending checkpoint is durable, not orphaned: no process needs
                // to be alive for `rvbbit resume` to continue it.
                "SELECT session_id FROM sessions WHERE heartbeat_at_us < ?1
                 AND (status = 'running' OR (status = 'waiting' AND NOT EXISTS (
                     SELECT 1 FROM checkpoints k WHERE k.session_id = sessions.session_id AND k.status = 'pending')))
                 ORDER BY session_id",
                stale_before.micros(),
            )?;
            let deleted = match delete_before {
                Some(t) => ids(
                    "SELECT session_id FROM sessions WHERE status NOT IN ('running', 'waiting')
                     AND coalesce(ended_at_us, updated_at_us) < ?1 ORDER BY session_id",
                    t.micros(),
                )?,
                None => Vec::new(),
            };
            let mut deleted_events = 0u64;
            for id in &deleted {
                let n: i64 = tx.query_row(
                    "SELECT count(*) FROM events WHERE session_id = ?1",
                    [id.as_str()],
                    |r| r.get(0),
                )?;
                deleted_events += u64::try_from(n).unwrap_or(0);
            }
            if !dry_run {
                let now = Timestamp::now().micros();
                let error = format!(
                    "[{}] orphaned: heartbeat went stale (the process running it is gone)",
                    rvbbit_core::codes::E_ORPHANED.code
                );
                for id in &orphaned {
                    tx.execute(
                        "UPDATE sessions SET status = 'failed', ended_at_us = ?2,
                         updated_at_us = max(updated_at_us + 1, ?2), error = ?3
                         WHERE session_id = ?1",
                        params![id.as_str(), now, error],
                    )?;
                }
                for id in &deleted {
                    tx.execute("DELETE FROM events WHERE session_id = ?1", [id.as_str()])?;
                    tx.execute("DELETE FROM checkpoints WHERE session_id = ?1", [id.as_str()])?;
                    tx.execute("DELETE FROM sessions WHERE session_id = ?1", [id.as_str()])?;
                }
            }
            tx.commit()?;
            Ok(Cleanup {
                orphaned,
                deleted,
                deleted_events,
            })
        })
        .await
    }

    async fn session_counts(&self) -> Result<Vec<(SessionStatus, u64)>> {
        self.with_conn("count sessions", |c, url| {
            let mut stmt =
                c.prepare("SELECT status, count(*) FROM sessions GROUP BY status ORDER BY status")?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
            let mut out = Vec::new();
            for r in rows {
                let (s, n) = r?;
                out.push((
                    s.parse().map_err(|e| corrupt(url, "session", e))?,
                    u64::try_from(n).unwrap_or(0),
                ));
            }
            Ok(out)
        })
        .await
    }
}

#[async_trait]
impl ResultCache for SqliteStore {
    async fn cache_get(&self, key: &str, now: Timestamp) -> Result<Option<CacheEntry>> {
        let key = key.to_owned();
        self.with_conn("read the result cache", move |c, url| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let n = tx.execute(
                "UPDATE result_cache SET hits = hits + 1 WHERE key = ?1
                 AND (expires_at_us IS NULL OR expires_at_us > ?2)",
                params![key, now.micros()],
            )?;
            if n == 0 {
                return Ok(None);
            }
            let entry = tx
                .query_row(
                    "SELECT value, created_at_us, expires_at_us, hits FROM result_cache WHERE key = ?1",
                    [&key],
                    |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, i64>(1)?,
                            r.get::<_, Option<i64>>(2)?,
                            r.get::<_, i64>(3)?,
                        ))
                    },
                )
                .optional()?;
            tx.commit()?;
            entry
                .map(|(v, created, expires, hits)| {
                    Ok(CacheEntry {
                        value: serde_json::from_str(&v).map_err(|e| corrupt(url, "cache entry", e))?,
                        key: key.clone(),
                        created_at: Timestamp::from_micros(created),
                        expires_at: expires.map(Timestamp::from_micros),
                        hits: u64::try_from(hits).unwrap_or(0),
                    })
                })
                .transpose()
        })
        .await
    }

    async fn cache_get_many(&self, keys: &[String], now: Timestamp) -> Result<Vec<Option<CacheEntry>>> {
        let keys = keys.to_vec();
        self.with_conn("read the result cache", move |c, url| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut out = Vec::with_capacity(keys.len());
            {
                let mut hit = tx.prepare_cached(
                    "UPDATE result_cache SET hits = hits + 1 WHERE key = ?1
                     AND (expires_at_us IS NULL OR expires_at_us > ?2)",
                )?;
                let mut read = tx.prepare_cached(
                    "SELECT value, created_at_us, expires_at_us, hits FROM result_cache WHERE key = ?1",
                )?;
                for key in keys {
                    if hit.execute(params![key, now.micros()])? == 0 {
                        out.push(None);
                        continue;
                    }
                    let (v, created, expires, hits) = read.query_row([&key], |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, i64>(1)?,
                            r.get::<_, Option<i64>>(2)?,
                            r.get::<_, i64>(3)?,
                        ))
                    })?;
                    out.push(Some(CacheEntry {
                        value: serde_json::from_str(&v).map_err(|e| corrupt(url, "cache entry", e))?,
                        key,
                        created_at: Timestamp::from_micros(created),
                        expires_at: expires.map(Timestamp::from_micros),
                        hits: u64::try_from(hits).unwrap_or(0),
                    }));
                }
            }
            tx.commit()?;
            Ok(out)
        })
        .await
    }

    async fn cache_peek_many(&self, keys: &[String], now: Timestamp) -> Result<Vec<Option<CacheEntry>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let keys = keys.to_vec();
        // The keys go in as one JSON array: one statement and one index lookup per key inside SQLite,
        // instead of one statement step per key (issue 24: a 1,000-row statement reads ~800 keys).
        let list = serde_json::to_string(&keys)
            .map_err(|e| Error::Internal(format!("cache keys cannot be encoded: {e}")))?;
        self.with_conn("read the result cache", move |c, url| {
            // One read transaction: one snapshot and one lock for the whole batch, nothing written.
            let tx = c.transaction_with_behavior(TransactionBehavior::Deferred)?;
            let mut found: HashMap<String, CacheEntry> = HashMap::new();
            {
                let mut read = tx.prepare_cached(
                    "SELECT key, value, created_at_us, expires_at_us, hits FROM result_cache
                     WHERE key IN (SELECT value FROM json_each(?1))
                     AND (expires_at_us IS NULL OR expires_at_us > ?2)",
                )?;
                let mut rows = read.query(params![list, now.micros()])?;
                while let Some(r) = rows.next()? {
                    let key: String = r.get(0)?;
                    let value: String = r.get(1)?;
                    let entry = CacheEntry {
                        value: serde_json::from_str(&value).map_err(|e| corrupt(url, "cache entry", e))?,
                        key: key.clone(),
                        created_at: Timestamp::from_micros(r.get(2)?),
                        expires_at: r.get::<_, Option<i64>>(3)?.map(Timestamp::from_micros),
                        hits: u64::try_from(r.get::<_, i64>(4)?).unwrap_or(0),
                    };
                    found.insert(key, entry);
                }
            }
            tx.commit()?;
            // In the order asked, a key asked twice answered twice.
            Ok(keys.iter().map(|k| found.get(k).cloned()).collect())
        })
        .await
    }

    async fn cache_put(
        &self,
        key: &str,
        value: &Value,
        now: Timestamp,
        expires_at: Option<Timestamp>,
    ) -> Result<()> {
        self.cache_put_many(&[(key.to_owned(), value.clone())], now, expires_at)
            .await
    }

    async fn cache_put_many(
        &self,
        entries: &[(String, Value)],
        now: Timestamp,
        expires_at: Option<Timestamp>,
    ) -> Result<()> {
        let entries: Vec<(String, String)> =
            entries.iter().map(|(k, v)| (k.clone(), v.to_string())).collect();
        self.with_conn("write the result cache", move |c, _| {
            let tx = c.transaction()?;
            {
                let mut put = tx.prepare_cached(
                    "INSERT INTO result_cache (key, value, created_at_us, expires_at_us, hits) VALUES (?1, ?2, ?3, ?4, 0)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value, created_at_us = excluded.created_at_us,
                     expires_at_us = excluded.expires_at_us, hits = 0",
                )?;
                for (key, value) in &entries {
                    put.execute(params![key, value, now.micros(), expires_at.map(Timestamp::micros)])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn cache_entries(&self, after: Option<&str>, limit: u64) -> Result<Vec<CacheEntry>> {
        let after = after.map(str::to_owned);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with_conn("list the result cache", move |c, url| {
            let mut stmt = c.prepare_cached(
                "SELECT key, value, created_at_us, expires_at_us, hits FROM result_cache
                 WHERE ?1 IS NULL OR key > ?1 ORDER BY key LIMIT ?2",
            )?;
            let mut rows = stmt.query(params![after, limit])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                let v: String = r.get(1)?;
                out.push(CacheEntry {
                    key: r.get(0)?,
                    value: serde_json::from_str(&v).map_err(|e| corrupt(url, "cache entry", e))?,
                    created_at: Timestamp::from_micros(r.get(2)?),
                    expires_at: r.get::<_, Option<i64>>(3)?.map(Timestamp::from_micros),
                    hits: u64::try_from(r.get::<_, i64>(4)?).unwrap_or(0),
                });
            }
            Ok(out)
        })
        .await
    }

    async fn cache_purge(&self, now: Timestamp) -> Result<u64> {
        self.with_conn("purge the result cache", move |c, _| {
            let n = c.execute(
                "DELETE FROM result_cache WHERE expires_at_us IS NOT NULL AND expires_at_us <= ?1",
                [now.micros()],
            )?;
            Ok(n as u64)
        })
        .await
    }
}

fn decode_signal(url: &str, r: &Row<'_>) -> Result<Signal, Fail> {
    let status: String = r.get(2)?;
    let session: Option<String> = r.get(3)?;
    let payload: Option<String> = r.get(7)?;
    Ok(Signal {
        signal_id: r.get(0)?,
        name: r.get(1)?,
        status: status
            .parse::<SignalStatus>()
            .map_err(|e| corrupt(url, "signal", e))?,
        session_id: session
            .map(|s| s.parse().map_err(|e| corrupt(url, "signal", e)))
            .transpose()?,
        created_at: Timestamp::from_micros(r.get(4)?),
        fired_at: r.get::<_, Option<i64>>(5)?.map(Timestamp::from_micros),
        timeout_at: r.get::<_, Option<i64>>(6)?.map(Timestamp::from_micros),
        payload: payload
            .map(|p| serde_json::from_str(&p).map_err(|e| corrupt(url, "signal", e)))
            .transpose()?,
        source: r.get(8)?,
    })
}

const SIGNAL_COLUMNS: &str =
    "signal_id, name, status, session_id, created_at_us, fired_at_us, timeout_at_us, payload, source";

#[async_trait]
impl SignalStore for SqliteStore {
    async fn signal_register(&self, s: &Signal) -> Result<()> {
        let s = s.clone();
        self.with_conn("register a signal", move |c, _| {
            c.execute(
                &format!(
                    "INSERT OR IGNORE INTO signals ({SIGNAL_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
                ),
                params![
                    s.signal_id,
                    s.name,
                    s.status.as_str(),
                    s.session_id.as_ref().map(|x| x.as_str()),
                    s.created_at.micros(),
                    s.fired_at.map(Timestamp::micros),
                    s.timeout_at.map(Timestamp::micros),
                    s.payload.as_ref().map(|p| p.to_string()),
                    s.source,
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn signal_fire(
        &self,
        name: &str,
        payload: &Value,
        source: &str,
        session: Option<&SessionId>,
        now: Timestamp,
    ) -> Result<Vec<Signal>> {
        let (name, payload, source) = (name.to_owned(), payload.to_string(), source.to_owned());
        let session = session.map(|s| s.as_str().to_owned());
        self.with_conn("fire a signal", move |c, url| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let ids: Vec<String> = {
                let mut stmt = tx.prepare(
                    "SELECT signal_id FROM signals WHERE name = ?1 AND status = 'waiting'
                     AND (?2 IS NULL OR session_id = ?2) ORDER BY created_at_us, signal_id",
                )?;
                let rows = stmt.query_map(params![name, session], |r| r.get(0))?;
                rows.collect::<Result<_, _>>()?
            };
            let mut fired = Vec::new();
            for id in ids {
                // Conditional, so a backend without serialized transactions still fires a signal once.
                let n = tx.execute(
                    "UPDATE signals SET status = 'fired', fired_at_us = ?2, payload = ?3, source = ?4
                     WHERE signal_id = ?1 AND status = 'waiting'",
                    params![id, now.micros(), payload, source],
                )?;
                if n == 0 {
                    continue;
                }
                let s = tx.query_row(
                    &format!("SELECT {SIGNAL_COLUMNS} FROM signals WHERE signal_id = ?1"),
                    [&id],
                    |r| Ok(decode_signal(url, r)),
                )??;
                fired.push(s);
            }
            tx.commit()?;
            Ok(fired)
        })
        .await
    }

    async fn signal_cancel(&self, signal_id: &str) -> Result<()> {
        let id = signal_id.to_owned();
        self.with_conn("cancel a signal", move |c, _| {
            let n = c.execute(
                "UPDATE signals SET status = 'cancelled' WHERE signal_id = ?1",
                [&id],
            )?;
            if n == 0 {
                return Err(Fail::Store(Error::NotFound { what: "signal", id }));
            }
            Ok(())
        })
        .await
    }

    async fn signals(&self, name: Option<&str>) -> Result<Vec<Signal>> {
        let name = name.map(str::to_owned);
        self.with_conn("list signals", move |c, url| {
            let mut stmt = c.prepare(&format!(
                "SELECT {SIGNAL_COLUMNS} FROM signals WHERE ?1 IS NULL OR name = ?1
                 ORDER BY created_at_us DESC, signal_id"
            ))?;
            let mut rows = stmt.query([name])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(decode_signal(url, r)?);
            }
            Ok(out)
        })
        .await
    }
}
