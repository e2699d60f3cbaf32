//! Spending limits in SQLite (see [`crate::limits`]).

use async_trait::async_trait;
use rusqlite::{Row, params};
use rvbbit_core::{MicroUsd, Timestamp};

use super::{Fail, SqliteStore, corrupt};
use crate::error::Result;
use crate::limits::{LimitPeriod, LimitScope, LimitStore, SpendLimit};

fn decode(url: &str, r: &Row<'_>) -> Result<SpendLimit, Fail> {
    let scope: String = r.get(0)?;
    let period: String = r.get(2)?;
    Ok(SpendLimit {
        scope: scope.parse().map_err(|e| corrupt(url, "spending limit", e))?,
        name: r.get(1)?,
        period: period.parse().map_err(|e| corrupt(url, "spending limit", e))?,
        amount: MicroUsd::from_micros(r.get(3)?),
        updated_at: Timestamp::from_micros(r.get(4)?),
    })
}

#[async_trait]
impl LimitStore for SqliteStore {
    async fn limit_set(&self, limit: &SpendLimit) -> Result<()> {
        let l = limit.clone();
        self.with_conn("set a spending limit", move |c, _| {
            c.execute(
                "INSERT INTO spend_limits (scope, name, period, amount_micro_usd, updated_at_us)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (scope, name, period) DO UPDATE SET
                 amount_micro_usd = excluded.amount_micro_usd, updated_at_us = excluded.updated_at_us",
                params![
                    l.scope.as_str(),
                    l.name,
                    l.period.as_str(),
                    l.amount.micros(),
                    l.updated_at.micros()
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn limits(&self) -> Result<Vec<SpendLimit>> {
        self.with_conn("list spending limits", move |c, url| {
            let mut stmt = c.prepare(
                "SELECT scope, name, period, amount_micro_usd, updated_at_us FROM spend_limits
                 ORDER BY scope, name, period",
            )?;
            let mut rows = stmt.query([])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(decode(url, r)?);
            }
            Ok(out)
        })
        .await
    }

    async fn limit_remove(&self, scope: LimitScope, name: &str, period: LimitPeriod) -> Result<bool> {
        let name = name.to_owned();
        self.with_conn("remove a spending limit", move |c, _| {
            let n = c.execute(
                "DELETE FROM spend_limits WHERE scope = ?1 AND name = ?2 AND period = ?3",
                params![scope.as_str(), name, period.as_str()],
            )?;
            Ok(n == 1)
        })
        .await
    }

    async fn spent(&self, scope: LimitScope, name: &str, since: Timestamp) -> Result<MicroUsd> {
        let name = name.to_owned();
        // `cost_micro_usd IS NOT NULL` keeps to the partial index `events_priced` (ts_us first).
        let whose = match scope {
            LimitScope::All => "",
            LimitScope::Caller => " AND (caller_id = ?2 OR substr(caller_id, 1, length(?2) + 1) = ?2 || '-')",
            LimitScope::Tenant => {
                " AND root_session_id IN (SELECT session_id FROM sessions
                   WHERE json_extract(invocation_metadata, '$.tenant') = ?2)"
            }
        };
        self.with_conn("total a spending limit's spend", move |c, _| {
            let sql = format!(
                "SELECT coalesce(sum(cost_micro_usd), 0) FROM events
                 WHERE ts_us >= ?1 AND cost_micro_usd IS NOT NULL{whose}"
            );
            let micros: i64 = if whose.is_empty() {
                c.query_row(&sql, params![since.micros()], |r| r.get(0))?
            } else {
                c.query_row(&sql, params![since.micros(), name], |r| r.get(0))?
            };
            Ok(MicroUsd::from_micros(micros))
        })
        .await
    }
}
