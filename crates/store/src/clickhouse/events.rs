//! Events in ClickHouse: one `INSERT … FORMAT JSONEachRow` per batch, reads and totals with `FINAL` so an
//! event written twice (a replayed spill, a retried batch) counts once.

use async_trait::async_trait;
use rvbbit_core::{Event, EventKind, MicroUsd, Timestamp};
use serde::{Deserialize, Serialize};

use super::{ClickHouseSink, quote};
use crate::error::{Error, Result};
use crate::model::{CostGroup, CostRow, EventFilter, StoredEvent};
use crate::traits::EventSink;

/// One event as a JSONEachRow line (the columns of migration 1), borrowing from the event: encoded
/// straight to text, with no intermediate JSON tree.
#[derive(Serialize)]
struct Row<'a> {
    event_id: String,
    ts: i64,
    ts_ms: i64,
    ts_us: i64,
    written: i64,
    seq: i64,
    kind: &'a str,
    session_id: &'a str,
    parent_session_id: &'a str,
    root_session_id: &'a str,
    caller_id: &'a str,
    cascade_id: &'a str,
    cell_name: &'a str,
    model: &'a str,
    provider: &'a str,
    tokens_in: i64,
    tokens_out: i64,
    cost_micro_usd: i64,
    cost_known: u8,
    priced: u8,
    duration_us: i64,
    body: String,
}

impl<'a> Row<'a> {
    fn new(e: &'a Event, written: i64, body: String) -> Self {
        let us = e.ts_us.micros();
        let text = |v: &'a Option<String>| v.as_deref().unwrap_or_default();
        let priced = e.cost.is_some()
            || e.tokens.input.is_some()
            || e.tokens.output.is_some()
            || matches!(e.kind, EventKind::LlmResponse | EventKind::LlmError);
        Row {
            event_id: e.event_id.to_string(),
            ts: us.div_euclid(1_000_000).max(0),
            ts_ms: us.rem_euclid(1_000_000) / 1000,
            ts_us: us,
            written,
            seq: e.seq,
            kind: e.kind.as_str(),
            session_id: e.session_id.as_str(),
            parent_session_id: e.parent_session_id.as_ref().map_or("", |s| s.as_str()),
            root_session_id: e.root_session_id.as_str(),
            caller_id: e.caller_id.as_ref().map_or("", |c| c.as_str()),
            cascade_id: text(&e.cascade_id),
            cell_name: text(&e.cell_name),
            model: text(&e.model),
            provider: text(&e.provider),
            tokens_in: e.tokens.input.unwrap_or(0),
            tokens_out: e.tokens.output.unwrap_or(0),
            cost_micro_usd: e.cost.map_or(0, MicroUsd::micros),
            cost_known: u8::from(e.cost.is_some()),
            priced: u8::from(priced),
            duration_us: e.duration_us.unwrap_or(0),
            body,
        }
    }
}

/// The WHERE clause of an event filter (values quoted inline: ClickHouse's HTTP interface of 18.16 has
/// no bound parameters). Errors for a filter the sink cannot answer (it holds no sessions).
fn event_where(sink: &ClickHouseSink, f: &EventFilter) -> Result<String> {
    let mut clauses = Vec::new();
    if let Some(s) = &f.session_id {
        clauses.push(format!("session_id = {}", quote(s.as_str())));
    }
    if let Some(c) = &f.cascade_id {
        clauses.push(format!("cascade_id = {}", quote(c)));
    }
    if let Some(c) = &f.caller_id {
        clauses.push(format!("caller_id = {}", quote(c)));
    }
    if let Some(t) = f.since {
        clauses.push(format!("ts_us >= {}", t.micros()));
    }
    if let Some(t) = f.until {
        clauses.push(format!("ts_us < {}", t.micros()));
    }
    if let Some(seq) = f.after_seq {
        clauses.push(format!("ts_us > {seq}"));
    }
    if let Some(k) = f.kind {
        clauses.push(format!("kind = {}", quote(k.as_str())));
    }
    if f.session_status.is_some() {
        return Err(Error::Unavailable {
            url: sink.url().to_owned(),
            action: "filter events by session status".into(),
            source: "the ClickHouse sink holds events only; ask the primary store (`store.url`)".into(),
        });
    }
    Ok(if clauses.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", clauses.join(" AND "))
    })
}

/// A number from a JSONEachRow cell: 64-bit integers arrive quoted (`"12"`) by default.
fn number<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N {
        I(i64),
        S(String),
    }
    match N::deserialize(d)? {
        N::I(i) => Ok(i),
        N::S(s) => s.parse().map_err(serde::de::Error::custom),
    }
}

#[derive(Deserialize)]
struct BodyRow {
    #[serde(deserialize_with = "number")]
    ts_us: i64,
    body: String,
}

#[derive(Deserialize)]
struct CostLine {
    k: String,
    #[serde(deserialize_with = "number")]
    sessions: i64,
    #[serde(deserialize_with = "number")]
    calls: i64,
    #[serde(deserialize_with = "number")]
    tokens_in: i64,
    #[serde(deserialize_with = "number")]
    tokens_out: i64,
    #[serde(deserialize_with = "number")]
    cost: i64,
    #[serde(deserialize_with = "number")]
    compute: i64,
    #[serde(deserialize_with = "number")]
    unknown: i64,
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl ClickHouseSink {
    fn corrupt(&self, what: &'static str, detail: impl std::fmt::Display) -> Error {
        Error::Corrupt {
            url: self.url().to_owned(),
            what,
            detail: detail.to_string(),
        }
    }
}

#[async_trait]
impl EventSink for ClickHouseSink {
    /// One INSERT for the whole batch. Returns the batch size: ClickHouse does not say which rows were
    /// new (duplicates collapse when parts merge, and reads use `FINAL`).
    async fn append(&self, events: &[Event]) -> Result<u64> {
        if events.is_empty() {
            return Ok(0);
        }
        let written = Timestamp::now().micros() / 1_000_000;
        let mut rows = Vec::with_capacity(events.len() * 1024);
        for e in events {
            let encode = |err: serde_json::Error| {
                Error::Internal(format!("event {} cannot be encoded as JSON: {err}", e.event_id))
            };
            let body = serde_json::to_string(e).map_err(encode)?;
            serde_json::to_writer(&mut rows, &Row::new(e, written, body)).map_err(encode)?;
            rows.push(b'\n');
        }
        // serde_json writes UTF-8 only.
        let rows = String::from_utf8(rows)
            .map_err(|err| Error::Internal(format!("JSON rows are not UTF-8: {err}")))?;
        self.run(
            "INSERT INTO events FORMAT JSONEachRow",
            Some(rows),
            "insert events",
        )
        .await?;
        Ok(events.len() as u64)
    }

    async fn events(&self, filter: &EventFilter) -> Result<Vec<StoredEvent>> {
        let clause = event_where(self, filter)?;
        let limit = filter.limit.map_or(String::new(), |l| format!(" LIMIT {l}"));
        let text = self
            .run(
                &format!(
                    "SELECT ts_us, body FROM events FINAL{clause} ORDER BY ts_us, session_id, seq{limit} \
                     FORMAT JSONEachRow"
                ),
                None,
                "read events",
            )
            .await?;
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|line| {
                let r: BodyRow = serde_json::from_str(line).map_err(|e| self.corrupt("event", e))?;
                let event: Event = serde_json::from_str(&r.body).map_err(|e| self.corrupt("event", e))?;
                Ok(StoredEvent {
                    store_seq: r.ts_us,
                    event,
                })
            })
            .collect()
    }

    async fn count_events(&self, filter: &EventFilter) -> Result<u64> {
        let clause = event_where(self, filter)?;
        let text = self
            .run(
                &format!("SELECT count() FROM events FINAL{clause} FORMAT TabSeparated"),
                None,
                "count events",
            )
            .await?;
        text.trim()
            .parse::<u64>()
            .map_err(|e| self.corrupt("event count", format!("`{}`: {e}", text.trim())))
    }

    async fn costs(&self, group: CostGroup, filter: &EventFilter) -> Result<Vec<CostRow>> {
        let key = match group {
            CostGroup::Total => "'total'",
            CostGroup::Model => "if(model = '', '(none)', model)",
            CostGroup::Cascade => "if(cascade_id = '', '(none)', cascade_id)",
            CostGroup::Caller => "if(caller_id = '', '(none)', caller_id)",
            // Days since the epoch from the UTC microseconds (never the server's time zone).
            CostGroup::Day => "toString(toDate(intDiv(ts_us, 86400000000)))",
        };
        let clause = event_where(self, filter)?;
        let clause = if clause.is_empty() {
            " WHERE priced = 1".to_owned()
        } else {
            format!("{clause} AND priced = 1")
        };
        let sql = format!(
            "SELECT {key} AS k, uniqExact(session_id) AS sessions, count() AS calls, \
             sum(tokens_in) AS tokens_in, sum(tokens_out) AS tokens_out, sum(cost_micro_usd) AS cost, \
             countIf(cost_known = 0) AS unknown, sumIf(cost_micro_usd, kind = 'compute_cost') AS compute \
             FROM events FINAL{clause} GROUP BY k \
             ORDER BY cost DESC, k FORMAT JSONEachRow"
        );
        let text = self.run(&sql, None, "total costs").await?;
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|line| {
                let r: CostLine = serde_json::from_str(line).map_err(|e| self.corrupt("cost row", e))?;
                Ok(CostRow {
                    key: r.k,
                    sessions: count(r.sessions),
                    calls: count(r.calls),
                    tokens_in: r.tokens_in,
                    tokens_out: r.tokens_out,
                    cost: MicroUsd::from_micros(r.cost),
                    unknown_cost: count(r.unknown),
                    compute_cost: MicroUsd::from_micros(r.compute),
                })
            })
            .collect()
    }
}
