//! Events in PostgreSQL: multi-row idempotent inserts in one transaction, filtered reads, cost totals.

use async_trait::async_trait;
use rvbbit_core::event::{CostStatus, EventId, Tokens};
use rvbbit_core::{Event, EventKind, MicroUsd, SessionId, Timestamp};
use serde_json::Value;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::{Params, PostgresStore, corrupt, count};
use crate::error::Result;
use crate::model::{CostGroup, CostRow, EventFilter, StoredEvent};
use crate::traits::EventSink;

const INSERT_COLUMNS: &str = "event_id, seq, ts_us, kind, session_id, parent_session_id,
    root_session_id, caller_id, invocation_metadata, cascade_id, cell_name, trace_id, parent_trace_id, depth,
    candidate_index, attempt, turn, model, model_requested, provider, request_id, tokens_in, tokens_out,
    tokens_reasoning, tokens_cached, cost_micro_usd, cost_status, duration_us, content, request, response,
    error, metadata";

/// The advisory lock event batches take (`rvbbit` + 1 in ASCII); migrations hold `rvbbit`.
const EVENTS_LOCK: i64 = 0x7276_6262_6975;

/// Columns per inserted row.
const WIDTH: usize = 33;

/// Rows per INSERT statement (PostgreSQL takes at most 65,535 parameters per statement).
const ROWS_PER_STATEMENT: usize = 500;

pub(crate) const COLUMNS: &str = "store_seq, event_id, seq, ts_us, kind, session_id, parent_session_id,
    root_session_id, caller_id, invocation_metadata, cascade_id, cell_name, trace_id, parent_trace_id, depth,
    candidate_index, attempt, turn, model, model_requested, provider, request_id, tokens_in, tokens_out,
    tokens_reasoning, tokens_cached, cost_micro_usd, cost_status, duration_us, content, request, response,
    error, metadata";

/// The INSERT for `rows` events.
fn insert_sql(rows: usize) -> String {
    let mut sql = format!("INSERT INTO events ({INSERT_COLUMNS}) VALUES ");
    for r in 0..rows {
        if r > 0 {
            sql.push(',');
        }
        sql.push('(');
        for c in 0..WIDTH {
            if c > 0 {
                sql.push(',');
            }
            sql.push_str(&format!("${}", r * WIDTH + c + 1));
        }
        sql.push(')');
    }
    sql.push_str(" ON CONFLICT (event_id) DO NOTHING");
    sql
}

/// One event's column values, in [`INSERT_COLUMNS`] order.
struct EventRow {
    id: Vec<u8>,
    ts_us: i64,
    depth: i64,
    kind: &'static str,
    session_id: String,
    parent_session_id: Option<String>,
    root_session_id: String,
    caller_id: Option<String>,
    cost: Option<i64>,
    cost_status: &'static str,
}

impl EventRow {
    fn new(e: &Event) -> Self {
        EventRow {
            id: e.event_id.to_bytes().to_vec(),
            ts_us: e.ts_us.micros(),
            depth: i64::from(e.depth),
            kind: e.kind.as_str(),
            session_id: e.session_id.as_str().to_owned(),
            parent_session_id: e.parent_session_id.as_ref().map(|s| s.as_str().to_owned()),
            root_session_id: e.root_session_id.as_str().to_owned(),
            caller_id: e.caller_id.as_ref().map(|c| c.as_str().to_owned()),
            cost: e.cost.map(MicroUsd::micros),
            cost_status: e.cost_status.as_str(),
        }
    }

    fn push<'a>(&'a self, e: &'a Event, out: &mut Vec<&'a (dyn ToSql + Sync)>) {
        out.extend_from_slice(&[
            &self.id,
            &e.seq,
            &self.ts_us,
            &self.kind,
            &self.session_id,
            &self.parent_session_id,
            &self.root_session_id,
            &self.caller_id,
            &e.invocation_metadata,
            &e.cascade_id,
            &e.cell_name,
            &e.trace_id,
            &e.parent_trace_id,
            &self.depth,
            &e.candidate_index,
            &e.attempt,
            &e.turn,
            &e.model,
            &e.model_requested,
            &e.provider,
            &e.request_id,
            &e.tokens.input,
            &e.tokens.output,
            &e.tokens.reasoning,
            &e.tokens.cached,
            &self.cost,
            &self.cost_status,
            &e.duration_us,
            &e.content,
            &e.request,
            &e.response,
            &e.error,
            &e.metadata,
        ]);
    }
}

/// The WHERE clause of an event filter, its values added to `params`.
pub(crate) fn event_where(f: &EventFilter, params: &mut Params) -> String {
    let mut clauses = Vec::new();
    if let Some(s) = &f.session_id {
        clauses.push(format!("session_id = {}", params.push(s.as_str().to_owned())));
    }
    if let Some(c) = &f.cascade_id {
        clauses.push(format!("cascade_id = {}", params.push(c.clone())));
    }
    if let Some(c) = &f.caller_id {
        clauses.push(format!("caller_id = {}", params.push(c.clone())));
    }
    if let Some(t) = f.since {
        clauses.push(format!("ts_us >= {}", params.push(t.micros())));
    }
    if let Some(t) = f.until {
        clauses.push(format!("ts_us < {}", params.push(t.micros())));
    }
    if let Some(seq) = f.after_seq {
        clauses.push(format!("store_seq > {}", params.push(seq)));
    }
    if let Some(k) = f.kind {
        clauses.push(format!("kind = {}", params.push(k.as_str())));
    }
    if let Some(s) = f.session_status {
        clauses.push(format!(
            "session_id IN (SELECT session_id FROM sessions WHERE status = {})",
            params.push(s.as_str())
        ));
    }
    if clauses.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", clauses.join(" AND "))
    }
}

fn session_id(url: &str, v: Option<String>) -> Result<Option<SessionId>> {
    v.map(|s| s.parse().map_err(|e| corrupt(url, "event", e)))
        .transpose()
}

/// One stored event from a row of [`COLUMNS`].
pub(crate) fn decode(url: &str, row: &Row) -> Result<StoredEvent> {
    let id: Vec<u8> = row.get(1);
    let id: [u8; 16] = id
        .try_into()
        .map_err(|_| corrupt(url, "event", "event_id is not 16 bytes"))?;
    let kind: String = row.get(4);
    let cost_status: String = row.get(27);
    let caller: Option<String> = row.get(8);
    let depth: i64 = row.get(14);
    let event = Event {
        event_id: EventId::from_bytes(id),
        seq: row.get(2),
        ts_us: Timestamp::from_micros(row.get(3)),
        kind: kind.parse::<EventKind>().map_err(|e| corrupt(url, "event", e))?,
        session_id: session_id(url, row.get(5))?.ok_or_else(|| corrupt(url, "event", "no session id"))?,
        parent_session_id: session_id(url, row.get(6))?,
        root_session_id: session_id(url, row.get(7))?
            .ok_or_else(|| corrupt(url, "event", "no root session id"))?,
        caller_id: caller
            .map(|c| c.parse().map_err(|e| corrupt(url, "event", e)))
            .transpose()?,
        invocation_metadata: row.get(9),
        cascade_id: row.get(10),
        cell_name: row.get(11),
        trace_id: row.get(12),
        parent_trace_id: row.get(13),
        depth: u32::try_from(depth).unwrap_or(0),
        candidate_index: row.get(15),
        attempt: row.get(16),
        turn: row.get(17),
        model: row.get(18),
        model_requested: row.get(19),
        provider: row.get(20),
        request_id: row.get(21),
        tokens: Tokens {
            input: row.get(22),
            output: row.get(23),
            reasoning: row.get(24),
            cached: row.get(25),
        },
        cost: row.get::<_, Option<i64>>(26).map(MicroUsd::from_micros),
        cost_status: cost_status
            .parse::<CostStatus>()
            .map_err(|e| corrupt(url, "event", e))?,
        duration_us: row.get(28),
        content: row.get(29),
        request: row.get::<_, Option<Value>>(30),
        response: row.get::<_, Option<Value>>(31),
        error: row.get::<_, Option<Value>>(32),
        metadata: row.get(33),
    };
    Ok(StoredEvent {
        store_seq: row.get(0),
        event,
    })
}

/// Insert `events` inside an open transaction, idempotent by event id; returns rows inserted.
pub(crate) async fn insert_events(
    store: &PostgresStore,
    tx: &deadpool_postgres::Transaction<'_>,
    events: &[Event],
) -> Result<u64> {
    let action = "insert events";
    let mut inserted = 0;
    for chunk in events.chunks(ROWS_PER_STATEMENT) {
        let rows: Vec<EventRow> = chunk.iter().map(EventRow::new).collect();
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(chunk.len() * WIDTH);
        for (row, e) in rows.iter().zip(chunk) {
            row.push(e, &mut params);
        }
        let stmt = tx
            .prepare_cached(&insert_sql(chunk.len()))
            .await
            .map_err(|e| store.fail(action, e))?;
        inserted += tx
            .execute(&stmt, &params)
            .await
            .map_err(|e| store.fail(action, e))?;
    }
    Ok(inserted)
}

/// Tell listeners (at commit) which sessions changed: one `NOTIFY` per distinct session.
pub(crate) async fn notify<'a>(
    store: &PostgresStore,
    tx: &deadpool_postgres::Transaction<'_>,
    sessions: impl Iterator<Item = &'a str>,
) -> Result<()> {
    let mut ids: Vec<&str> = sessions.collect();
    ids.sort_unstable();
    ids.dedup();
    tx.execute(
        &format!(
            "SELECT pg_notify('{}', s) FROM unnest($1::text[]) AS s",
            super::CHANGES
        ),
        &[&ids],
    )
    .await
    .map_err(|e| store.fail("notify listeners", e))?;
    Ok(())
}

#[async_trait]
impl EventSink for PostgresStore {
    async fn append(&self, events: &[Event]) -> Result<u64> {
        if events.is_empty() {
            return Ok(0);
        }
        let action = "insert events";
        let mut c = self.client(action).await?;
        let tx = c.transaction().await.map_err(|e| self.fail(action, e))?;
        // Event batches commit one at a time, so `store_seq` grows in commit order and a live stream
        // resuming after a cursor never misses a row committed late by a slower transaction.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&EVENTS_LOCK])
            .await
            .map_err(|e| self.fail(action, e))?;
        let n = insert_events(self, &tx, events).await?;
        notify(self, &tx, events.iter().map(|e| e.session_id.as_str())).await?;
        tx.commit().await.map_err(|e| self.fail(action, e))?;
        Ok(n)
    }

    async fn events(&self, filter: &EventFilter) -> Result<Vec<StoredEvent>> {
        let action = "read events";
        let mut params = Params::default();
        let clause = event_where(filter, &mut params);
        let limit = filter.limit.map_or(String::new(), |l| format!(" LIMIT {l}"));
        let c = self.client(action).await?;
        let rows = c
            .query(
                &format!("SELECT {COLUMNS} FROM events{clause} ORDER BY store_seq{limit}"),
                &params.refs(),
            )
            .await
            .map_err(|e| self.fail(action, e))?;
        rows.iter().map(|r| decode(&self.url, r)).collect()
    }

    async fn count_events(&self, filter: &EventFilter) -> Result<u64> {
        let action = "count events";
        let mut params = Params::default();
        let clause = event_where(filter, &mut params);
        let c = self.client(action).await?;
        let row = c
            .query_one(&format!("SELECT count(*) FROM events{clause}"), &params.refs())
            .await
            .map_err(|e| self.fail(action, e))?;
        Ok(count(row.get(0)))
    }

    async fn costs(&self, group: CostGroup, filter: &EventFilter) -> Result<Vec<CostRow>> {
        let action = "total costs";
        let key = match group {
            CostGroup::Total => "'total'",
            CostGroup::Model => "coalesce(model, '(none)')",
            CostGroup::Cascade => "coalesce(cascade_id, '(none)')",
            CostGroup::Caller => "coalesce(caller_id, '(none)')",
            CostGroup::Day => "to_char(to_timestamp(ts_us / 1000000) AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
        };
        let mut params = Params::default();
        let clause = event_where(filter, &mut params);
        // The same predicate as the partial index `events_priced`, so PostgreSQL can use it.
        let priced = "(cost_micro_usd IS NOT NULL OR tokens_in IS NOT NULL OR tokens_out IS NOT NULL \
                      OR kind IN ('llm_response', 'llm_error'))";
        let clause = if clause.is_empty() {
            format!(" WHERE {priced}")
        } else {
            format!("{clause} AND {priced}")
        };
        let sql = format!(
            "SELECT {key} AS k, count(DISTINCT session_id), count(*), coalesce(sum(tokens_in), 0)::bigint,
             coalesce(sum(tokens_out), 0)::bigint, coalesce(sum(cost_micro_usd), 0)::bigint,
             count(*) FILTER (WHERE cost_micro_usd IS NULL),
             coalesce(sum(cost_micro_usd) FILTER (WHERE kind = 'compute_cost'), 0)::bigint
             FROM events{clause} GROUP BY k ORDER BY 6 DESC, k"
        );
        let c = self.client(action).await?;
        let rows = c
            .query(&sql, &params.refs())
            .await
            .map_err(|e| self.fail(action, e))?;
        Ok(rows
            .iter()
            .map(|r| CostRow {
                key: r.get(0),
                sessions: count(r.get(1)),
                calls: count(r.get(2)),
                tokens_in: r.get(3),
                tokens_out: r.get(4),
                cost: MicroUsd::from_micros(r.get(5)),
                unknown_cost: count(r.get(6)),
                compute_cost: MicroUsd::from_micros(r.get(7)),
            })
            .collect())
    }
}
