//! Chat identities and their links in SQLite (see [`crate::channels`]).
//!
//! [`ChannelStore::identity_link`] runs in one immediate transaction, and every insert is
//! `ON CONFLICT DO NOTHING` followed by a read, so a second process writing the same file ends with
//! the same interlocutor.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use rvbbit_core::Timestamp;

use super::{Fail, SqliteStore};
use crate::channels::{ChannelStore, IdentityKey};
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
}
