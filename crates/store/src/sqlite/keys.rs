//! API keys of the HTTP door in SQLite (hashed secrets only).

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Row, params};
use rvbbit_core::Timestamp;

use super::{Fail, SqliteStore};
use crate::error::{Error, Result};
use crate::model::ApiKey;
use crate::traits::ApiKeyStore;

const KEY_COLUMNS: &str = "key_id, name, secret_hash, created_at_us, revoked_at_us, last_used_at_us, tenant";

/// Uses closer together than this are not written back (authentication stays a read).
const LAST_USED_RESOLUTION_US: i64 = 60_000_000;

fn decode(r: &Row<'_>) -> Result<ApiKey, Fail> {
    let ts = |v: Option<i64>| v.map(Timestamp::from_micros);
    Ok(ApiKey {
        key_id: r.get(0)?,
        name: r.get(1)?,
        secret_hash: r.get(2)?,
        created_at: Timestamp::from_micros(r.get(3)?),
        revoked_at: ts(r.get(4)?),
        last_used_at: ts(r.get(5)?),
        tenant: r.get(6)?,
    })
}

#[async_trait]
impl ApiKeyStore for SqliteStore {
    async fn key_insert(&self, key: &ApiKey) -> Result<()> {
        let key = key.clone();
        self.with_conn("create an API key", move |c, _| {
            let inserted = c.execute(
                &format!(
                    "INSERT OR IGNORE INTO api_keys ({KEY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
                ),
                params![
                    key.key_id,
                    key.name,
                    key.secret_hash,
                    key.created_at.micros(),
                    key.revoked_at.map(Timestamp::micros),
                    key.last_used_at.map(Timestamp::micros),
                    key.tenant,
                ],
            )?;
            if inserted == 0 {
                return Err(Fail::Store(Error::Conflict {
                    what: "api key",
                    id: key.key_id,
                    state: "taken".into(),
                    reason: "a key with this id or secret already exists".into(),
                }));
            }
            Ok(())
        })
        .await
    }

    async fn key_authenticate(&self, secret_hash: &str, now: Timestamp) -> Result<Option<ApiKey>> {
        let hash = secret_hash.to_owned();
        self.with_conn("check an API key", move |c, _| {
            let key = c
                .query_row(
                    &format!(
                        "SELECT {KEY_COLUMNS} FROM api_keys WHERE secret_hash = ?1 AND revoked_at_us IS NULL"
                    ),
                    [&hash],
                    |r| Ok(decode(r)),
                )
                .optional()?
                .transpose()?;
            if let Some(k) = &key {
                let stale = k
                    .last_used_at
                    .is_none_or(|t| now.micros() - t.micros() >= LAST_USED_RESOLUTION_US);
                if stale {
                    c.execute(
                        "UPDATE api_keys SET last_used_at_us = ?1 WHERE key_id = ?2",
                        params![now.micros(), k.key_id],
                    )?;
                }
            }
            Ok(key)
        })
        .await
    }

    async fn keys(&self) -> Result<Vec<ApiKey>> {
        self.with_conn("list API keys", |c, _| {
            let mut stmt = c.prepare(&format!(
                "SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created_at_us, key_id"
            ))?;
            let rows = stmt.query_map([], |r| Ok(decode(r)))?;
            let mut out = Vec::new();
            for row in rows {
                out.push(row??);
            }
            Ok(out)
        })
        .await
    }

    async fn key_revoke(&self, key_id: &str, now: Timestamp) -> Result<ApiKey> {
        let id = key_id.to_owned();
        self.with_conn("revoke an API key", move |c, _| {
            c.execute(
                "UPDATE api_keys SET revoked_at_us = ?1 WHERE key_id = ?2 AND revoked_at_us IS NULL",
                params![now.micros(), id],
            )?;
            c.query_row(
                &format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE key_id = ?1"),
                [&id],
                |r| Ok(decode(r)),
            )
            .optional()?
            .transpose()?
            .ok_or_else(|| {
                Fail::Store(Error::NotFound {
                    what: "api key",
                    id: id.clone(),
                })
            })
        })
        .await
    }

    async fn active_keys(&self) -> Result<u64> {
        self.with_conn("count API keys", |c, _| {
            let n: i64 = c.query_row(
                "SELECT count(*) FROM api_keys WHERE revoked_at_us IS NULL",
                [],
                |r| r.get(0),
            )?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
        .await
    }
}
