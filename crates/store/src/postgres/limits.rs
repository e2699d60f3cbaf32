//! Spending limits in PostgreSQL (see [`crate::limits`]).

use async_trait::async_trait;
use rvbbit_core::{MicroUsd, Timestamp};
use tokio_postgres::Row;

use super::{PostgresStore, corrupt};
use crate::error::Result;
use crate::limits::{LimitPeriod, LimitScope, LimitStore, SpendLimit};

fn decode(url: &str, r: &Row) -> Result<SpendLimit> {
    let bad = |e: String| corrupt(url, "spending limit", e);
    Ok(SpendLimit {
        scope: r.get::<_, String>(0).parse().map_err(bad)?,
        name: r.get(1),
        period: r.get::<_, String>(2).parse().map_err(bad)?,
        amount: MicroUsd::from_micros(r.get(3)),
        updated_at: Timestamp::from_micros(r.get(4)),
    })
}

#[async_trait]
impl LimitStore for PostgresStore {
    async fn limit_set(&self, l: &SpendLimit) -> Result<()> {
        let action = "set a spending limit";
        let c = self.client(action).await?;
        c.execute(
            "INSERT INTO spend_limits (scope, name, period, amount_micro_usd, updated_at_us)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (scope, name, period) DO UPDATE SET
             amount_micro_usd = excluded.amount_micro_usd, updated_at_us = excluded.updated_at_us",
            &[
                &l.scope.as_str(),
                &l.name,
                &l.period.as_str(),
                &l.amount.micros(),
                &l.updated_at.micros(),
            ],
        )
        .await
        .map_err(|e| self.fail(action, e))?;
        Ok(())
    }

    async fn limits(&self) -> Result<Vec<SpendLimit>> {
        let action = "list spending limits";
        let c = self.client(action).await?;
        let rows = c
            .query(
                "SELECT scope, name, period, amount_micro_usd, updated_at_us FROM spend_limits
                 ORDER BY scope, name, period",
                &[],
            )
            .await
            .map_err(|e| self.fail(action, e))?;
        rows.iter().map(|r| decode(&self.url, r)).collect()
    }

    async fn limit_remove(&self, scope: LimitScope, name: &str, period: LimitPeriod) -> Result<bool> {
        let action = "remove a spending limit";
        let c = self.client(action).await?;
        let n = c
            .execute(
                "DELETE FROM spend_limits WHERE scope = $1 AND name = $2 AND period = $3",
                &[&scope.as_str(), &name, &period.as_str()],
            )
            .await
            .map_err(|e| self.fail(action, e))?;
        Ok(n == 1)
    }

    async fn spent(&self, scope: LimitScope, name: &str, since: Timestamp) -> Result<MicroUsd> {
        let action = "total a spending limit's spend";
        // `cost_micro_usd IS NOT NULL` keeps to the partial index `events_priced` (ts_us first).
        let whose = match scope {
            LimitScope::All => "",
            LimitScope::Caller => " AND (caller_id = $2::text OR starts_with(caller_id, $2::text || '-'))",
            LimitScope::Tenant => {
                " AND root_session_id IN (SELECT session_id FROM sessions
                   WHERE invocation_metadata->>'tenant' = $2::text)"
            }
        };
        let sql = format!(
            "SELECT coalesce(sum(cost_micro_usd), 0)::bigint FROM events
             WHERE ts_us >= $1 AND cost_micro_usd IS NOT NULL{whose}"
        );
        let c = self.client(action).await?;
        let since = since.micros();
        let row = if whose.is_empty() {
            c.query_one(&sql, &[&since]).await
        } else {
            c.query_one(&sql, &[&since, &name]).await
        }
        .map_err(|e| self.fail(action, e))?;
        Ok(MicroUsd::from_micros(row.get(0)))
    }
}
