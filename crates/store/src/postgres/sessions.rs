//! Sessions, the result cache and signals in PostgreSQL. Every compare-and-set is one conditional
//! statement, so row locks decide between processes on different hosts.

use std::collections::HashMap;

use async_trait::async_trait;
use rvbbit_core::{MicroUsd, SessionId, SessionStatus, Timestamp};
use serde_json::Value;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::{Params, PostgresStore, corrupt, count};
use crate::error::{Error, Result};
use crate::model::{CacheEntry, Cleanup, Session, SessionFilter, SessionSummary, Signal, SignalStatus};
use crate::traits::{ResultCache, SessionStore, SignalStore};

const SESSION_COLUMNS: &str = "session_id, cascade_id, parent_session_id, root_session_id, caller_id,
    invocation_metadata, depth, status, current_cell, input, output, error, cascade_file, cascade_text,
    cascade_hash, started_at_us, updated_at_us, ended_at_us, heartbeat_at_us, cancel_requested";

const SESSION_VALUES: &str =
    "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20";

/// The upsert of one session record: a newer or equal `updated_at` wins, heartbeats only move forward,
/// `cancel_requested` is never cleared, and a finished session keeps its status (a late write from a
/// process that did not know cannot revive or re-end it).
const UPSERT: &str = "ON CONFLICT (session_id) DO UPDATE SET cascade_id = excluded.cascade_id,
    parent_session_id = excluded.parent_session_id, root_session_id = excluded.root_session_id,
    caller_id = excluded.caller_id, invocation_metadata = excluded.invocation_metadata,
    depth = excluded.depth, status = excluded.status, current_cell = excluded.current_cell,
    input = excluded.input, output = excluded.output, error = excluded.error,
    cascade_file = excluded.cascade_file, cascade_text = excluded.cascade_text,
    cascade_hash = excluded.cascade_hash, started_at_us = excluded.started_at_us,
    updated_at_us = excluded.updated_at_us, ended_at_us = excluded.ended_at_us,
    heartbeat_at_us = greatest(sessions.heartbeat_at_us, excluded.heartbeat_at_us),
    cancel_requested = sessions.cancel_requested OR excluded.cancel_requested
    WHERE excluded.updated_at_us >= sessions.updated_at_us
    AND (sessions.status NOT IN ('completed', 'failed', 'cancelled') OR excluded.status = sessions.status)";

fn decode_session(url: &str, r: &Row) -> Result<Session> {
    let sid = |v: Option<String>| -> Result<Option<SessionId>> {
        v.map(|t| t.parse().map_err(|e| corrupt(url, "session", e)))
            .transpose()
    };
    let caller: Option<String> = r.get(4);
    let status: String = r.get(7);
    let depth: i64 = r.get(6);
    Ok(Session {
        session_id: sid(r.get(0))?.ok_or_else(|| corrupt(url, "session", "no session id"))?,
        cascade_id: r.get(1),
        parent_session_id: sid(r.get(2))?,
        root_session_id: sid(r.get(3))?.ok_or_else(|| corrupt(url, "session", "no root session id"))?,
        caller_id: caller
            .map(|c| c.parse().map_err(|e| corrupt(url, "session", e)))
            .transpose()?,
        invocation_metadata: r.get(5),
        depth: u32::try_from(depth).unwrap_or(0),
        status: status.parse().map_err(|e| corrupt(url, "session", e))?,
        current_cell: r.get(8),
        input: r.get(9),
        output: r.get::<_, Option<Value>>(10),
        error: r.get(11),
        cascade_file: r.get(12),
        cascade_text: r.get(13),
        cascade_hash: r.get(14),
        started_at: Timestamp::from_micros(r.get(15)),
        updated_at: Timestamp::from_micros(r.get(16)),
        ended_at: r.get::<_, Option<i64>>(17).map(Timestamp::from_micros),
        heartbeat_at: Timestamp::from_micros(r.get(18)),
        cancel_requested: r.get(19),
    })
}

/// One session's column values, owned, in [`SESSION_COLUMNS`] order.
struct SessionRow {
    session_id: String,
    parent: Option<String>,
    root: String,
    caller: Option<String>,
    depth: i64,
    status: &'static str,
    started: i64,
    updated: i64,
    ended: Option<i64>,
    heartbeat: i64,
}

impl SessionRow {
    fn new(s: &Session) -> Self {
        SessionRow {
            session_id: s.session_id.as_str().to_owned(),
            parent: s.parent_session_id.as_ref().map(|x| x.as_str().to_owned()),
            root: s.root_session_id.as_str().to_owned(),
            caller: s.caller_id.as_ref().map(|x| x.as_str().to_owned()),
            depth: i64::from(s.depth),
            status: s.status.as_str(),
            started: s.started_at.micros(),
            updated: s.updated_at.micros(),
            ended: s.ended_at.map(Timestamp::micros),
            heartbeat: s.heartbeat_at.micros(),
        }
    }

    fn params<'a>(&'a self, s: &'a Session) -> [&'a (dyn ToSql + Sync); 20] {
        [
            &self.session_id,
            &s.cascade_id,
            &self.parent,
            &self.root,
            &self.caller,
            &s.invocation_metadata,
            &self.depth,
            &self.status,
            &s.current_cell,
            &s.input,
            &s.output,
            &s.error,
            &s.cascade_file,
            &s.cascade_text,
            &s.cascade_hash,
            &self.started,
            &self.updated,
            &self.ended,
            &self.heartbeat,
            &s.cancel_requested,
        ]
    }
}

impl PostgresStore {
    async fn load_session(
        &self,
        c: &impl deadpool_postgres::GenericClient,
        id: &str,
        action: &str,
    ) -> Result<Option<Session>> {
        let row = c
            .query_opt(
                &format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE session_id = $1"),
                &[&id],
            )
            .await
            .map_err(|e| self.fail(action, e))?;
        row.map(|r| decode_session(&self.url, &r)).transpose()
    }
}

fn not_found(id: &str) -> Error {
    Error::NotFound {
        what: "session",
        id: id.to_owned(),
    }
}

fn session_where(f: &SessionFilter, params: &mut Params) -> String {
    let mut clauses = Vec::new();
    if let Some(c) = &f.cascade_id {
        clauses.push(format!("cascade_id = {}", params.push(c.clone())));
    }
    if let Some(c) = &f.caller_id {
        clauses.push(format!("caller_id = {}", params.push(c.clone())));
    }
    if let Some(t) = f.since {
        clauses.push(format!("started_at_us >= {}", params.push(t.micros())));
    }
    if let Some(t) = f.until {
        clauses.push(format!("started_at_us < {}", params.push(t.micros())));
    }
    if let Some(s) = f.status {
        clauses.push(format!("status = {}", params.push(s.as_str())));
    }
    if clauses.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", clauses.join(" AND "))
    }
}

#[async_trait]
impl SessionStore for PostgresStore {
    async fn put_sessions(&self, sessions: &[Session]) -> Result<()> {
        if sessions.is_empty() {
            return Ok(());
        }
        let action = "write sessions";
        let mut c = self.client(action).await?;
        let tx = c.transaction().await.map_err(|e| self.fail(action, e))?;
        let stmt = tx
            .prepare_cached(&format!(
                "INSERT INTO sessions ({SESSION_COLUMNS}) VALUES ({SESSION_VALUES}) {UPSERT}"
            ))
            .await
            .map_err(|e| self.fail(action, e))?;
        for s in sessions {
            let row = SessionRow::new(s);
            tx.execute(&stmt, &row.params(s))
                .await
                .map_err(|e| self.fail(action, e))?;
        }
        super::events::notify(self, &tx, sessions.iter().map(|s| s.session_id.as_str())).await?;
        tx.commit().await.map_err(|e| self.fail(action, e))
    }

    async fn session(&self, id: &SessionId) -> Result<Session> {
        let action = "read a session";
        let c = self.client(action).await?;
        self.load_session(&c, id.as_str(), action)
            .await?
            .ok_or_else(|| not_found(id.as_str()))
    }

    async fn create_session(&self, session: &Session) -> Result<()> {
        let action = "create a session";
        let c = self.client(action).await?;
        let row = SessionRow::new(session);
        let n = c
            .execute(
                &format!(
                    "INSERT INTO sessions ({SESSION_COLUMNS}) VALUES ({SESSION_VALUES}) ON CONFLICT (session_id) DO NOTHING"
                ),
                &row.params(session),
            )
            .await
            .map_err(|e| self.fail(action, e))?;
        if n == 1 {
            return Ok(());
        }
        let id = session.session_id.as_str();
        let state = match self.load_session(&c, id, action).await? {
            Some(existing) => existing.status.to_string(),
            None => "taken".to_owned(),
        };
        Err(Error::Conflict {
            what: "session",
            id: id.to_owned(),
            state,
            reason: "a session with this id already exists; a run never joins another run's session".into(),
        })
    }

    async fn claim_waiting(&self, id: &SessionId, checkpoint_id: &str, now: Timestamp) -> Result<Session> {
        let action = "claim a waiting session";
        let c = self.client(action).await?;
        // The compare-and-set: only a waiting session whose checkpoint is still pending moves. A second
        // claimer blocks on the row lock, then re-checks `status` on the new row version and matches nothing.
        let claimed = c
            .query_opt(
                &format!(
                    "UPDATE sessions SET status = 'running', updated_at_us = greatest(updated_at_us + 1, $2),
                     heartbeat_at_us = greatest(heartbeat_at_us, $2)
                     WHERE session_id = $1 AND status = 'waiting' AND EXISTS (SELECT 1 FROM checkpoints k
                         WHERE k.checkpoint_id = $3 AND k.session_id = $1 AND k.status = 'pending')
                     RETURNING {SESSION_COLUMNS}"
                ),
                &[&id.as_str(), &now.micros(), &checkpoint_id],
            )
            .await
            .map_err(|e| self.fail(action, e))?;
        if let Some(row) = claimed {
            return decode_session(&self.url, &row);
        }
        let session = self
            .load_session(&c, id.as_str(), action)
            .await?
            .ok_or_else(|| not_found(id.as_str()))?;
        let reason = match session.status {
            SessionStatus::Running => "it is already being resumed by another process".to_owned(),
            SessionStatus::Waiting => format!(
                "its checkpoint {checkpoint_id} was answered or replaced meanwhile (another process resumed it)"
            ),
            _ => "only a waiting session can be resumed".to_owned(),
        };
        Err(Error::Conflict {
            what: "session",
            id: id.as_str().to_owned(),
            state: session.status.to_string(),
            reason,
        })
    }

    async fn sessions(&self, filter: &SessionFilter) -> Result<Vec<SessionSummary>> {
        let action = "list sessions";
        let mut params = Params::default();
        let clause = session_where(filter, &mut params);
        let limit = filter.limit.map_or(String::new(), |l| format!(" LIMIT {l}"));
        let sql = format!(
            "WITH s AS (SELECT {SESSION_COLUMNS} FROM sessions{clause}
                        ORDER BY started_at_us DESC, session_id{limit})
             SELECT s.*, coalesce(t.n, 0), coalesce(t.cost, 0), coalesce(t.tin, 0), coalesce(t.tout, 0)
             FROM s LEFT JOIN LATERAL (
                 SELECT count(*) AS n, sum(cost_micro_usd)::bigint AS cost, sum(tokens_in)::bigint AS tin,
                        sum(tokens_out)::bigint AS tout
                 FROM events e WHERE e.session_id = s.session_id) t ON true
             ORDER BY s.started_at_us DESC, s.session_id"
        );
        let c = self.client(action).await?;
        let rows = c
            .query(&sql, &params.refs())
            .await
            .map_err(|e| self.fail(action, e))?;
        rows.iter()
            .map(|r| {
                Ok(SessionSummary {
                    session: decode_session(&self.url, r)?,
                    events: count(r.get(20)),
                    cost: MicroUsd::from_micros(r.get(21)),
                    tokens_in: r.get(22),
                    tokens_out: r.get(23),
                })
            })
            .collect()
    }

    async fn heartbeat(&self, id: &SessionId, at: Timestamp) -> Result<()> {
        let action = "record a heartbeat";
        let c = self.client(action).await?;
        let n = c
            .execute(
                "UPDATE sessions SET heartbeat_at_us = greatest(heartbeat_at_us, $2) WHERE session_id = $1",
                &[&id.as_str(), &at.micros()],
            )
            .await
            .map_err(|e| self.fail(action, e))?;
        if n == 0 {
            return Err(not_found(id.as_str()));
        }
        Ok(())
    }

    async fn request_cancel(&self, id: &SessionId, reason: &str) -> Result<Session> {
        let action = "request cancellation";
        let mut c = self.client(action).await?;
        let tx = c.transaction().await.map_err(|e| self.fail(action, e))?;
        let row = tx
            .query_opt(
                &format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE session_id = $1 FOR UPDATE"),
                &[&id.as_str()],
            )
            .await
            .map_err(|e| self.fail(action, e))?
            .ok_or_else(|| not_found(id.as_str()))?;
        let mut s = decode_session(&self.url, &row)?;
        if !s.status.is_active() {
            return Err(Error::Conflict {
                what: "session",
                id: id.as_str().to_owned(),
                state: s.status.to_string(),
                reason: "only running or waiting sessions can be cancelled".into(),
            });
        }
        if s.status == SessionStatus::Waiting {
            // Nothing may be running a waiting session: cancel it now, with its open questions. The row
            // is locked (FOR UPDATE above), so a resume claiming it waits and then finds it cancelled.
            let now = Timestamp::now().micros();
            let row = tx
                .query_one(
                    &format!(
                        "UPDATE sessions SET status = 'cancelled', cancel_requested = true,
                         error = coalesce(error, $3), ended_at_us = $2,
                         updated_at_us = greatest(updated_at_us + 1, $2)
                         WHERE session_id = $1 RETURNING {SESSION_COLUMNS}"
                    ),
                    &[&id.as_str(), &now, &format!("cancelled: {reason}")],
                )
                .await
                .map_err(|e| self.fail(action, e))?;
            for sql in [
                "UPDATE checkpoints SET status = 'cancelled' WHERE session_id = $1 AND status = 'pending'",
                "UPDATE signals SET status = 'cancelled' WHERE session_id = $1 AND status = 'waiting'",
            ] {
                tx.execute(sql, &[&id.as_str()])
                    .await
                    .map_err(|e| self.fail(action, e))?;
            }
            super::events::notify(self, &tx, std::iter::once(id.as_str())).await?;
            tx.commit().await.map_err(|e| self.fail(action, e))?;
            return decode_session(&self.url, &row);
        }
        tx.execute(
            "UPDATE sessions SET cancel_requested = true, error = coalesce(error, $2) WHERE session_id = $1",
            &[&id.as_str(), &format!("cancel requested: {reason}")],
        )
        .await
        .map_err(|e| self.fail(action, e))?;
        tx.commit().await.map_err(|e| self.fail(action, e))?;
        s.cancel_requested = true;
        Ok(s)
    }

    async fn cleanup(
        &self,
        stale_before: Timestamp,
        delete_before: Option<Timestamp>,
        dry_run: bool,
    ) -> Result<Cleanup> {
        let action = "clean up sessions";
        let mut c = self.client(action).await?;
        let tx = c.transaction().await.map_err(|e| self.fail(action, e))?;
        let ids = |rows: Vec<Row>| -> Result<Vec<SessionId>> {
            rows.iter()
                .map(|r| {
                    r.get::<_, String>(0)
                        .parse()
                        .map_err(|e| corrupt(&self.url, "session", e))
                })
                .collect()
        };
        // A waiting session with a pending checkpoint is durable, not orphaned: no process needs to be
        // alive for `rvbbit resume` to continue it.
        let orphaned = ids(tx
            .query(
                "SELECT session_id FROM sessions WHERE heartbeat_at_us < $1
                 AND (status = 'running' OR (status = 'waiting' AND NOT EXISTS (
                     SELECT 1 FROM checkpoints k WHERE k.session_id = sessions.session_id AND k.status = 'pending')))
                 ORDER BY session_id FOR UPDATE",
                &[&stale_before.micros()],
            )
            .await
            .map_err(|e| self.fail(action, e))?)?;
        let deleted = match delete_before {
            Some(t) => ids(tx
                .query(
                    "SELECT session_id FROM sessions WHERE status NOT IN ('running', 'waiting')
                     AND coalesce(ended_at_us, updated_at_us) < $1 ORDER BY session_id FOR UPDATE",
                    &[&t.micros()],
                )
                .await
                .map_err(|e| self.fail(action, e))?)?,
            None => Vec::new(),
        };
        let deleted_ids: Vec<&str> = deleted.iter().map(SessionId::as_str).collect();
        let deleted_events: i64 = tx
            .query_one(
                "SELECT count(*) FROM events WHERE session_id = ANY($1)",
                &[&deleted_ids],
            )
            .await
            .map_err(|e| self.fail(action, e))?
            .get(0);
        if !dry_run {
            let orphaned_ids: Vec<&str> = orphaned.iter().map(SessionId::as_str).collect();
            let now = Timestamp::now().micros();
            let error = format!(
                "[{}] orphaned: heartbeat went stale (the process running it is gone)",
                rvbbit_core::codes::E_ORPHANED.code
            );
            tx.execute(
                "UPDATE sessions SET status = 'failed', ended_at_us = $2,
                 updated_at_us = greatest(updated_at_us + 1, $2), error = $3
                 WHERE session_id = ANY($1)",
                &[&orphaned_ids, &now, &error],
            )
            .await
            .map_err(|e| self.fail(action, e))?;
            for table in ["events", "checkpoints", "sessions"] {
                tx.execute(
                    &format!("DELETE FROM {table} WHERE session_id = ANY($1)"),
                    &[&deleted_ids],
                )
                .await
                .map_err(|e| self.fail(action, e))?;
            }
        }
        tx.commit().await.map_err(|e| self.fail(action, e))?;
        Ok(Cleanup {
            orphaned,
            deleted,
            deleted_events: count(deleted_events),
        })
    }

    async fn session_counts(&self) -> Result<Vec<(SessionStatus, u64)>> {
        let action = "count sessions";
        let c = self.client(action).await?;
        let rows = c
            .query(
                "SELECT status, count(*) FROM sessions GROUP BY status ORDER BY status",
                &[],
            )
            .await
            .map_err(|e| self.fail(action, e))?;
        rows.iter()
            .map(|r| {
                let status: String = r.get(0);
                Ok((
                    status.parse().map_err(|e| corrupt(&self.url, "session", e))?,
                    count(r.get(1)),
                ))
            })
            .collect()
    }
}

fn decode_entry(key: String, r: &Row, offset: usize) -> CacheEntry {
    CacheEntry {
        key,
        value: r.get(offset),
        created_at: Timestamp::from_micros(r.get(offset + 1)),
        expires_at: r.get::<_, Option<i64>>(offset + 2).map(Timestamp::from_micros),
        hits: count(r.get(offset + 3)),
    }
}

/// Rows of `key, value, created_at_us, expires_at_us, hits` by key.
fn entries_by_key(rows: &[Row]) -> HashMap<String, CacheEntry> {
    rows.iter()
        .map(|r| {
            let key: String = r.get(0);
            (key.clone(), decode_entry(key, r, 1))
        })
        .collect()
}

#[async_trait]
impl ResultCache for PostgresStore {
    async fn cache_get(&self, key: &str, now: Timestamp) -> Result<Option<CacheEntry>> {
        let action = "read the result cache";
        let c = self.client(action).await?;
        let row = c
            .query_opt(
                "UPDATE result_cache SET hits = hits + 1 WHERE key = $1
                 AND (expires_at_us IS NULL OR expires_at_us > $2)
                 RETURNING value, created_at_us, expires_at_us, hits",
                &[&key, &now.micros()],
            )
            .await
            .map_err(|e| self.fail(action, e))?;
        Ok(row.map(|r| decode_entry(key.to_owned(), &r, 0)))
    }

    async fn cache_get_many(&self, keys: &[String], now: Timestamp) -> Result<Vec<Option<CacheEntry>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let action = "read the result cache";
        let c = self.client(action).await?;
        // One round trip for the whole batch; a key asked twice counts two hits, as key-by-key would.
        let mut asked: HashMap<&str, i64> = HashMap::new();
        for k in keys {
            *asked.entry(k.as_str()).or_default() += 1;
        }
        let (distinct, times): (Vec<&str>, Vec<i64>) = asked.iter().map(|(k, n)| (*k, *n)).unzip();
        let rows = c
            .query(
                "UPDATE result_cache r SET hits = r.hits + a.n
                 FROM unnest($1::text[], $2::bigint[]) AS a(key, n)
                 WHERE r.key = a.key AND (r.expires_at_us IS NULL OR r.expires_at_us > $3)
                 RETURNING r.key, r.value, r.created_at_us, r.expires_at_us, r.hits",
                &[&distinct, &times, &now.micros()],
            )
            .await
            .map_err(|e| self.fail(action, e))?;
        let found = entries_by_key(&rows);
        // Each occurrence sees the count as key-by-key reads would: the i-th of n asks gets
        // (hits after the batch) - n + i.
        let mut seen: HashMap<&str, i64> = HashMap::new();
        Ok(keys
            .iter()
            .map(|k| {
                let entry = found.get(k)?;
                let i = seen.entry(k.as_str()).or_default();
                *i += 1;
                let n = asked.get(k.as_str()).copied().unwrap_or(1);
                let mut entry = entry.clone();
                entry.hits = entry.hits.saturating_sub(count(n - *i));
                Some(entry)
            })
            .collect())
    }

    async fn cache_peek_many(&self, keys: &[String], now: Timestamp) -> Result<Vec<Option<CacheEntry>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let action = "read the result cache";
        let c = self.client(action).await?;
        // One read for the whole batch; nothing is written (no hit counts).
        let rows = c
            .query(
                "SELECT key, value, created_at_us, expires_at_us, hits FROM result_cache
                 WHERE key = ANY($1) AND (expires_at_us IS NULL OR expires_at_us > $2)",
                &[&keys, &now.micros()],
            )
            .await
            .map_err(|e| self.fail(action, e))?;
        let found = entries_by_key(&rows);
        Ok(keys.iter().map(|k| found.get(k).cloned()).collect())
    }

    async fn cache_put(
        &self,
        key: &str,
        value: &Value,
        now: Timestamp,
        expires_at: Option<Timestamp>,
    ) -> Result<()> {
        let action = "write the result cache";
        let c = self.client(action).await?;
        c.execute(
            "INSERT INTO result_cache (key, value, created_at_us, expires_at_us, hits) VALUES ($1, $2, $3, $4, 0)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, created_at_us = excluded.created_at_us,
             expires_at_us = excluded.expires_at_us, hits = 0",
            &[&key, value, &now.micros(), &expires_at.map(Timestamp::micros)],
        )
        .await
        .map_err(|e| self.fail(action, e))?;
        Ok(())
    }

    async fn cache_entries(&self, after: Option<&str>, limit: u64) -> Result<Vec<CacheEntry>> {
        let action = "list the result cache";
        let c = self.client(action).await?;
        let rows = c
            .query(
                "SELECT key, value, created_at_us, expires_at_us, hits FROM result_cache
                 WHERE $1::text IS NULL OR key > $1 ORDER BY key LIMIT $2",
                &[&after, &i64::try_from(limit).unwrap_or(i64::MAX)],
            )
            .await
            .map_err(|e| self.fail(action, e))?;
        Ok(rows.iter().map(|r| decode_entry(r.get(0), r, 1)).collect())
    }

    async fn cache_purge(&self, now: Timestamp) -> Result<u64> {
        let action = "purge the result cache";
        let c = self.client(action).await?;
        c.execute(
            "DELETE FROM result_cache WHERE expires_at_us IS NOT NULL AND expires_at_us <= $1",
            &[&now.micros()],
        )
        .await
        .map_err(|e| self.fail(action, e))
    }
}

const SIGNAL_COLUMNS: &str =
    "signal_id, name, status, session_id, created_at_us, fired_at_us, timeout_at_us, payload, source";

fn decode_signal(url: &str, r: &Row) -> Result<Signal> {
    let status: String = r.get(2);
    let session: Option<String> = r.get(3);
    Ok(Signal {
        signal_id: r.get(0),
        name: r.get(1),
        status: status
            .parse::<SignalStatus>()
            .map_err(|e| corrupt(url, "signal", e))?,
        session_id: session
            .map(|s| s.parse().map_err(|e| corrupt(url, "signal", e)))
            .transpose()?,
        created_at: Timestamp::from_micros(r.get(4)),
        fired_at: r.get::<_, Option<i64>>(5).map(Timestamp::from_micros),
        timeout_at: r.get::<_, Option<i64>>(6).map(Timestamp::from_micros),
        payload: r.get::<_, Option<Value>>(7),
        source: r.get(8),
    })
}

#[async_trait]
impl SignalStore for PostgresStore {
    async fn signal_register(&self, s: &Signal) -> Result<()> {
        let action = "register a signal";
        let c = self.client(action).await?;
        c.execute(
            &format!(
                "INSERT INTO signals ({SIGNAL_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (signal_id) DO NOTHING"
            ),
            &[
                &s.signal_id,
                &s.name,
                &s.status.as_str(),
                &s.session_id.as_ref().map(|x| x.as_str()),
                &s.created_at.micros(),
                &s.fired_at.map(Timestamp::micros),
                &s.timeout_at.map(Timestamp::micros),
                &s.payload,
                &s.source,
            ],
        )
        .await
        .map_err(|e| self.fail(action, e))?;
        Ok(())
    }

    async fn signal_fire(
        &self,
        name: &str,
        payload: &Value,
        source: &str,
        session: Option<&SessionId>,
        now: Timestamp,
    ) -> Result<Vec<Signal>> {
        let action = "fire a signal";
        let c = self.client(action).await?;
        // One conditional UPDATE: of two concurrent answers, the second waits on the row lock, re-checks
        // `status = 'waiting'` and fires nothing.
        let rows = c
            .query(
                &format!(
                    "UPDATE signals SET status = 'fired', fired_at_us = $3, payload = $4, source = $5
                     WHERE name = $1 AND status = 'waiting' AND ($2::text IS NULL OR session_id = $2)
                     RETURNING {SIGNAL_COLUMNS}"
                ),
                &[
                    &name,
                    &session.map(SessionId::as_str),
                    &now.micros(),
                    payload,
                    &source,
                ],
            )
            .await
            .map_err(|e| self.fail(action, e))?;
        let mut fired = rows
            .iter()
            .map(|r| decode_signal(&self.url, r))
            .collect::<Result<Vec<_>>>()?;
        // Wake whoever waits for these sessions (a run waiting in another process).
        let sessions: Vec<&str> = fired
            .iter()
            .filter_map(|s| s.session_id.as_ref().map(SessionId::as_str))
            .collect();
        if !sessions.is_empty() {
            c.execute(
                &format!(
                    "SELECT pg_notify('{}', s) FROM unnest($1::text[]) AS s",
                    super::CHANGES
                ),
                &[&sessions],
            )
            .await
            .map_err(|e| self.fail(action, e))?;
        }
        fired.sort_by(|a, b| (a.created_at, &a.signal_id).cmp(&(b.created_at, &b.signal_id)));
        Ok(fired)
    }

    async fn signal_cancel(&self, signal_id: &str) -> Result<()> {
        let action = "cancel a signal";
        let c = self.client(action).await?;
        let n = c
            .execute(
                "UPDATE signals SET status = 'cancelled' WHERE signal_id = $1",
                &[&signal_id],
            )
            .await
            .map_err(|e| self.fail(action, e))?;
        if n == 0 {
            return Err(Error::NotFound {
                what: "signal",
                id: signal_id.to_owned(),
            });
        }
        Ok(())
    }

    async fn signals(&self, name: Option<&str>) -> Result<Vec<Signal>> {
        let action = "list signals";
        let c = self.client(action).await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {SIGNAL_COLUMNS} FROM signals WHERE $1::text IS NULL OR name = $1
                     ORDER BY created_at_us DESC, signal_id"
                ),
                &[&name],
            )
            .await
            .map_err(|e| self.fail(action, e))?;
        rows.iter().map(|r| decode_signal(&self.url, r)).collect()
    }
}
