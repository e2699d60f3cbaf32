//! API keys of the HTTP door in PostgreSQL (hashed secrets only).

use async_trait::async_trait;
use rvbbit_core::Timestamp;
use tokio_postgres::Row;

use super::{PostgresStore, count};
use crate::error::{Error, Result};
use crate::model::ApiKey;
use crate::traits::ApiKeyStore;

const KEY_COLUMNS: &str = "key_id, name, secret_hash, created_at_us, revoked_at_us, last_used_at_us, tenant";

/// Uses closer together than this are not written back (authentication stays a read).
const LAST_USED_RESOLUTION_US: i64 = 60_000_000;

fn decode(r: &Row) -> ApiKey {
    let ts = |v: Option<i64>| v.map(Timestamp::from_micros);
    ApiKey {
        key_id: r.get(0),
        name: r.get(1),
        secret_hash: r.get(2),
        created_at: Timestamp::from_micros(r.get(3)),
        revoked_at: ts(r.get(4)),
        last_used_at: ts(r.get(5)),
        tenant: r.get(6),
    }
}

#[async_trait]
impl ApiKeyStore for PostgresStore {
    async fn key_insert(&self, key: &ApiKey) -> Result<()> {
        let action = "create an API key";
        let c = self.client(action).await?;
        let inserted = c
            .execute(
                &format!(
                    "INSERT INTO api_keys ({KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING"
                ),
                &[
                    &key.key_id,
                    &key.name,
                    &key.secret_hash,
                    &key.created_at.micros(),
                    &key.revoked_at.map(Timestamp::micros),
                    &key.last_used_at.map(Timestamp::micros),
                    &key.tenant,
                ],
            )
            .await
            .map_err(|e| self.fail(action, e))?;
        if inserted == 0 {
            return Err(Error::Conflict {
                what: "api key",
                id: key.key_id.clone(),
                state: "taken".into(),
                reason: "a key with this id or secret already exists".into(),
            });
        }
        Ok(())
    }

    async fn key_authenticate(&self, secret_hash: &str, now: Timestamp) -> Result<Option<ApiKey>> {
        let action = "check an API key";
        let c = self.client(action).await?;
        let key = c
            .query_opt(
                &format!(
                    "SELECT {KEY_COLUMNS} FROM api_keys WHERE secret_hash = $1 AND revoked_at_us IS NULL"
                ),
                &[&secret_hash],
            )
            .await
            .map_err(|e| self.fail(action, e))?
            .map(|r| decode(&r));
        if let Some(k) = &key {
            let stale = k
                .last_used_at
                .is_none_or(|t| now.micros() - t.micros() >= LAST_USED_RESOLUTION_US);
            if stale {
                c.execute(
                    "UPDATE api_keys SET last_used_at_us = $1 WHERE key_id = $2",
                    &[&now.micros(), &k.key_id],
                )
                .await
                .map_err(|e| self.fail(action, e))?;
            }
        }
        Ok(key)
    }

    async fn keys(&self) -> Result<Vec<ApiKey>> {
        let action = "list API keys";
        let c = self.client(action).await?;
        let rows = c
            .query(
                &format!("SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created_at_us, key_id"),
                &[],
            )
            .await
            .map_err(|e| self.fail(action, e))?;
        Ok(rows.iter().map(decode).collect())
    }

    async fn key_revoke(&self, key_id: &str, now: Timestamp) -> Result<ApiKey> {
        let action = "revoke an API key";
        let c = self.client(action).await?;
        c.execute(
            "UPDATE api_keys SET revoked_at_us = $1 WHERE key_id = $2 AND revoked_at_us IS NULL",
            &[&now.micros(), &key_id],
        )
        .await
        .map_err(|e| self.fail(action, e))?;
        c.query_opt(
            &format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE key_id = $1"),
            &[&key_id],
        )
        .await
        .map_err(|e| self.fail(action, e))?
        .map(|r| decode(&r))
        .ok_or_else(|| Error::NotFound {
            what: "api key",
            id: key_id.to_owned(),
        })
    }

    async fn active_keys(&self) -> Result<u64> {
        let action = "count API keys";
        let c = self.client(action).await?;
        let row = c
            .query_one("SELECT count(*) FROM api_keys WHERE revoked_at_us IS NULL", &[])
            .await
            .map_err(|e| self.fail(action, e))?;
        Ok(count(row.get(0)))
    }
}
