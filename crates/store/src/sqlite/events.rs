//! Events in SQLite: batched idempotent inserts, filtered reads and cost totals.

use async_trait::async_trait;
use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{Row, TransactionBehavior, params_from_iter};
use rvbbit_core::event::{CostStatus, EventId, Tokens};
use rvbbit_core::{Event, EventKind, MicroUsd, Timestamp};
use serde_json::Value;

use super::{Fail, SqliteStore, corrupt};
use crate::error::Result;
use crate::model::{CostGroup, CostRow, EventFilter, StoredEvent};
use crate::traits::EventSink;

const INSERT: &str =
    "INSERT OR IGNORE INTO events (event_id, seq, ts_us, kind, session_id, parent_session_id,
    root_session_id, caller_id, invocation_metadata, cascade_id, cell_name, trace_id, parent_trace_id, depth,
    candidate_index, attempt, turn, model, model_requested, provider, request_id, tokens_in, tokens_out,
    tokens_reasoning, tokens_cached, cost_micro_usd, cost_status, duration_us, content, request, response,
    error, metadata)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21,
    ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, ?33)";

const COLUMNS: &str = "store_seq, event_id, seq, ts_us, kind, session_id, parent_session_id, root_session_id,
    caller_id, invocation_metadata, cascade_id, cell_name, trace_id, parent_trace_id, depth, candidate_index,
    attempt, turn, model, model_requested, provider, request_id, tokens_in, tokens_out, tokens_reasoning,
    tokens_cached, cost_micro_usd, cost_status, duration_us, content, request, response, error, metadata";

fn json_text(v: &Value) -> String {
    v.to_string()
}

fn opt_json(v: &Option<Value>) -> Option<String> {
    v.as_ref().map(json_text)
}

/// A SQL value as JSON (for backups): blobs become hex strings.
pub(crate) fn sql_to_json(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::from(i),
        ValueRef::Real(f) => Value::from(f),
        ValueRef::Text(t) => Value::String(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::String(b.iter().map(|x| format!("{x:02x}")).collect()),
    }
}

/// The WHERE clause and parameters of an event filter.
pub(crate) fn event_where(f: &EventFilter) -> (String, Vec<SqlValue>) {
    let mut clauses = Vec::new();
    let mut params = Vec::new();
    let mut add = |clause: &str, v: SqlValue| {
        clauses.push(clause.replace('?', &format!("?{}", params.len() + 1)));
        params.push(v);
    };
    if let Some(s) = &f.session_id {
        add("session_id = ?", SqlValue::Text(s.as_str().to_owned()));
    }
    if let Some(c) = &f.cascade_id {
        add("cascade_id = ?", SqlValue::Text(c.clone()));
    }
    if let Some(c) = &f.caller_id {
        add("caller_id = ?", SqlValue::Text(c.clone()));
    }
    if let Some(t) = f.since {
        add("ts_us >= ?", SqlValue::Integer(t.micros()));
    }
    if let Some(t) = f.until {
        add("ts_us < ?", SqlValue::Integer(t.micros()));
    }
    if let Some(seq) = f.after_seq {
        add("store_seq > ?", SqlValue::Integer(seq));
    }
    if let Some(k) = f.kind {
        add("kind = ?", SqlValue::Text(k.as_str().to_owned()));
    }
    if let Some(s) = f.session_status {
        add(
            "session_id IN (SELECT session_id FROM sessions WHERE status = ?)",
            SqlValue::Text(s.as_str().to_owned()),
        );
    }
    let sql = if clauses.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", clauses.join(" AND "))
    };
    (sql, params)
}

fn parse_json(url: &str, text: Option<String>) -> Result<Option<Value>, Fail> {
    text.map(|t| serde_json::from_str(&t).map_err(|e| corrupt(url, "event", format!("bad JSON column: {e}"))))
        .transpose()
}

fn decode(url: &str, row: &Row<'_>) -> Result<StoredEvent, Fail> {
    let id: Vec<u8> = row.get(1)?;
    let id: [u8; 16] = id
        .try_into()
        .map_err(|_| corrupt(url, "event", "event_id is not 16 bytes"))?;
    let kind: String = row.get(4)?;
    let cost_status: String = row.get(27)?;
    let session = |i: usize| -> Result<Option<rvbbit_core::SessionId>, Fail> {
        let v: Option<String> = row.get(i)?;
        v.map(|s| s.parse().map_err(|e| corrupt(url, "event", e)))
            .transpose()
    };
    let caller: Option<String> = row.get(8)?;
    let depth: i64 = row.get(14)?;
    let event = Event {
        event_id: EventId::from_bytes(id),
        seq: row.get(2)?,
        ts_us: Timestamp::from_micros(row.get(3)?),
        kind: kind.parse::<EventKind>().map_err(|e| corrupt(url, "event", e))?,
        session_id: session(5)?.ok_or_else(|| corrupt(url, "event", "no session id"))?,
        parent_session_id: session(6)?,
        root_session_id: session(7)?.ok_or_else(|| corrupt(url, "event", "no root session id"))?,
        caller_id: caller
            .map(|c| c.parse().map_err(|e| corrupt(url, "event", e)))
            .transpose()?,
        invocation_metadata: parse_json(url, row.get(9)?)?.unwrap_or(Value::Null),
        cascade_id: row.get(10)?,
        cell_name: row.get(11)?,
        trace_id: row.get(12)?,
        parent_trace_id: row.get(13)?,
        depth: u32::try_from(depth).unwrap_or(0),
        candidate_index: row.get(15)?,
        attempt: row.get(16)?,
        turn: row.get(17)?,
        model: row.get(18)?,
        model_requested: row.get(19)?,
        provider: row.get(20)?,
        request_id: row.get(21)?,
        tokens: Tokens {
            input: row.get(22)?,
            output: row.get(23)?,
            reasoning: row.get(24)?,
            cached: row.get(25)?,
        },
        cost: row.get::<_, Option<i64>>(26)?.map(MicroUsd::from_micros),
        cost_status: cost_status
            .parse::<CostStatus>()
            .map_err(|e| corrupt(url, "event", e))?,
        duration_us: row.get(28)?,
        content: parse_json(url, row.get(29)?)?.unwrap_or(Value::Null),
        request: parse_json(url, row.get(30)?)?,
        response: parse_json(url, row.get(31)?)?,
        error: parse_json(url, row.get(32)?)?,
        metadata: parse_json(url, row.get(33)?)?.unwrap_or(Value::Null),
    };
    Ok(StoredEvent {
        store_seq: row.get(0)?,
        event,
    })
}

/// Insert a batch inside an open transaction; returns rows inserted.
pub(crate) fn insert_events(tx: &rusqlite::Transaction<'_>, events: &[Event]) -> Result<u64, Fail> {
    let mut stmt = tx.prepare_cached(INSERT)?;
    let mut n = 0u64;
    for e in events {
        n += stmt.execute(rusqlite::params![
            e.event_id.to_bytes().as_slice(),
            e.seq,
            e.ts_us.micros(),
            e.kind.as_str(),
            e.session_id.as_str(),
            e.parent_session_id.as_ref().map(|s| s.as_str()),
            e.root_session_id.as_str(),
            e.caller_id.as_ref().map(|c| c.as_str()),
            json_text(&e.invocation_metadata),
            e.cascade_id,
            e.cell_name,
            e.trace_id,
            e.parent_trace_id,
            e.depth,
            e.candidate_index,
            e.attempt,
            e.turn,
            e.model,
            e.model_requested,
            e.provider,
            e.request_id,
            e.tokens.input,
            e.tokens.output,
            e.tokens.reasoning,
            e.tokens.cached,
            e.cost.map(MicroUsd::micros),
            e.cost_status.as_str(),
            e.duration_us,
            json_text(&e.content),
            opt_json(&e.request),
            opt_json(&e.response),
            opt_json(&e.error),
            json_text(&e.metadata),
        ])? as u64;
    }
    Ok(n)
}

#[async_trait]
impl EventSink for SqliteStore {
    async fn append(&self, events: &[Event]) -> Result<u64> {
        if events.is_empty() {
            return Ok(0);
        }
        let events = events.to_vec();
        self.with_conn("insert events", move |c, _| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let n = insert_events(&tx, &events)?;
            tx.commit()?;
            Ok(n)
        })
        .await
    }

    async fn events(&self, filter: &EventFilter) -> Result<Vec<StoredEvent>> {
        let (clause, params) = event_where(filter);
        let limit = filter.limit.map_or(String::new(), |l| format!(" LIMIT {l}"));
        self.with_conn("read events", move |c, url| {
            let sql = format!("SELECT {COLUMNS} FROM events{clause} ORDER BY store_seq{limit}");
            let mut stmt = c.prepare(&sql)?;
            let mut rows = stmt.query(params_from_iter(params))?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(decode(url, row)?);
            }
            Ok(out)
        })
        .await
    }

    async fn count_events(&self, filter: &EventFilter) -> Result<u64> {
        let (clause, params) = event_where(filter);
        self.with_conn("count events", move |c, _| {
            let n: i64 = c.query_row(
                &format!("SELECT count(*) FROM events{clause}"),
                params_from_iter(params),
                |r| r.get(0),
            )?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
        .await
    }

    async fn costs(&self, group: CostGroup, filter: &EventFilter) -> Result<Vec<CostRow>> {
        let key = match group {
            CostGroup::Total => "'total'",
            CostGroup::Model => "coalesce(model, '(none)')",
            CostGroup::Cascade => "coalesce(cascade_id, '(none)')",
            CostGroup::Caller => "coalesce(caller_id, '(none)')",
            CostGroup::Day => "strftime('%Y-%m-%d', ts_us / 1000000, 'unixepoch')",
        };
        let (clause, params) = event_where(filter);
        // The same predicate as the partial index `events_priced` (migration 2), so SQLite uses it.
        let priced = "(cost_micro_usd IS NOT NULL OR tokens_in IS NOT NULL OR tokens_out IS NOT NULL \
                      OR kind IN ('llm_response', 'llm_error'))";
        let clause = if clause.is_empty() {
            format!(" WHERE {priced}")
        } else {
            format!("{clause} AND {priced}")
        };
        self.with_conn("total costs", move |c, _| {
            let sql = format!(
                "SELECT {key} AS k, count(DISTINCT session_id), count(*), coalesce(sum(tokens_in), 0),
                 coalesce(sum(tokens_out), 0), coalesce(sum(cost_micro_usd), 0),
                 sum(CASE WHEN cost_micro_usd IS NULL THEN 1 ELSE 0 END),
                 coalesce(sum(CASE WHEN kind = 'compute_cost' THEN cost_micro_usd END), 0)
                 FROM events{clause} GROUP BY k ORDER BY 6 DESC, k"
            );
            let mut stmt = c.prepare(&sql)?;
            let rows = stmt.query_map(params_from_iter(params), |r| {
                Ok(CostRow {
                    key: r.get(0)?,
                    sessions: u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
                    calls: u64::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
                    tokens_in: r.get(3)?,
                    tokens_out: r.get(4)?,
                    cost: MicroUsd::from_micros(r.get(5)?),
                    unknown_cost: u64::try_from(r.get::<_, i64>(6)?).unwrap_or(0),
                    compute_cost: MicroUsd::from_micros(r.get(7)?),
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }
}
