//! Chat identities and their links in SQLite (see [`crate::channels`]).
//!
//! [`ChannelStore::identity_link`] runs in one immediate transaction, and every insert is
//! `ON CONFLICT DO NOTHING` followed by a read, so a second process writing the same file ends with
//! the same interlocutor.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};
use rvbbit_core::Timestamp;

use super::{Fail, SqliteStore, corrupt};
use crate::channels::{ChannelStore, IdentityKey, StoredIntegration};
use crate::error::Result;

fn identity(conn: &Connection, k: &IdentityKey) -> Result<Option<String>, Fail> {
    Ok(conn
        .query_row(
            "SELECT interlocutor FROM channel_identities
             WHERE tenant = ?1 AND kind = ?2 AND integration = ?3 AND user_id = ?4",
            params![k.tenant, k.kind, k.integration, k.user],
            |r| r.get(0),
        )
        .optional()?)
}

/// Link `fact` to `candidate` unless it is linked already; the fact's interlocutor.
fn link(conn: &Connection, tenant: &str, fact: &str, candidate: &str, now: i64) -> Result<String, Fail> {
    conn.execute(
        "INSERT INTO channel_links (tenant, fact, interlocutor, created_at_us) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (tenant, fact) DO NOTHING",
        params![tenant, fact, candidate, now],
    )?;
    Ok(conn.query_row(
        "SELECT interlocutor FROM channel_links WHERE tenant = ?1 AND fact = ?2",
        params![tenant, fact],
        |r| r.get(0),
    )?)
}

fn identity_link(
    conn: &mut Connection,
    k: &IdentityKey,
    facts: &[String],
    fresh: &str,
) -> Result<String, Fail> {
    let now = Timestamp::now().micros();
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let existing = identity(&tx, k)?;
    let candidate = existing.clone().unwrap_or_else(|| fresh.to_owned());
    let mut chosen = None;
    for fact in facts {
        let linked = link(&tx, &k.tenant, fact, &candidate, now)?;
        chosen.get_or_insert(linked);
    }
    let interlocutor = match existing {
        Some(existing) => existing,
        None => {
            let chosen = chosen.unwrap_or(candidate);
            tx.execute(
                "INSERT INTO channel_identities (tenant, kind, integration, user_id, interlocutor,
                 created_at_us) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (tenant, kind, integration, user_id) DO NOTHING",
                params![k.tenant, k.kind, k.integration, k.user, chosen, now],
            )?;
            identity(&tx, k)?.unwrap_or(chosen)
        }
    };
    tx.commit()?;
    Ok(interlocutor)
}

const INTEGRATION: &str = "SELECT name, tenant, kind, config, updated_at_us FROM channel_integrations";

fn integration(url: &str, r: &Row<'_>) -> Result<StoredIntegration, Fail> {
    let config: String = r.get(3)?;
    Ok(StoredIntegration {
        name: r.get(0)?,
        tenant: r.get(1)?,
        kind: r.get(2)?,
        config: serde_json::from_str(&config).map_err(|e| corrupt(url, "channel integration", e))?,
        updated_at: Timestamp::from_micros(r.get(4)?),
    })
}

#[async_trait]
impl ChannelStore for SqliteStore {
    async fn identity(&self, key: &IdentityKey) -> Result<Option<String>> {
        let k = key.clone();
        self.with_conn("read a chat identity", move |conn, _| identity(conn, &k))
            .await
    }

    async fn identity_link(&self, key: &IdentityKey, facts: &[String], fresh: &str) -> Result<String> {
        let (k, facts, fresh) = (key.clone(), facts.to_vec(), fresh.to_owned());
        self.with_conn("link a chat identity", move |conn, _| {
            identity_link(conn, &k, &facts, &fresh)
        })
        .await
    }

    async fn integration_put(&self, i: &StoredIntegration) -> Result<()> {
        let i = i.clone();
        self.with_conn("store a channel integration", move |conn, _| {
            conn.execute(
                "INSERT INTO channel_integrations (name, tenant, kind, config, updated_at_us)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (name) DO UPDATE SET tenant = excluded.tenant, kind = excluded.kind,
                 config = excluded.config, updated_at_us = excluded.updated_at_us",
                params![
                    i.name,
                    i.tenant,
                    i.kind,
                    i.config.to_string(),
                    i.updated_at.micros()
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn integration(&self, name: &str) -> Result<Option<StoredIntegration>> {
        let name = name.to_owned();
        self.with_conn("read a channel integration", move |conn, url| {
            let mut stmt = conn.prepare(&format!("{INTEGRATION} WHERE name = ?1"))?;
            let mut rows = stmt.query(params![name])?;
            rows.next()?.map(|r| integration(url, r)).transpose()
        })
        .await
    }

    async fn integrations(&self, limit: u64) -> Result<Vec<StoredIntegration>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with_conn("list channel integrations", move |conn, url| {
            let mut stmt = conn.prepare(&format!("{INTEGRATION} ORDER BY name LIMIT ?1"))?;
            let mut rows = stmt.query(params![limit])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(integration(url, r)?);
            }
            Ok(out)
        })
        .await
    }

    async fn integration_delete(&self, name: &str) -> Result<bool> {
        let name = name.to_owned();
        self.with_conn("remove a channel integration", move |conn, _| {
            Ok(conn.execute("DELETE FROM channel_integrations WHERE name = ?1", params![name])? > 0)
        })
        .await
    }
}
