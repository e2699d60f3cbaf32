//! Chat identities and their links in PostgreSQL (see [`crate::channels`]).
//!
//! Every insert is `INSERT … ON CONFLICT DO NOTHING` followed by a read of the row, so processes on
//! many hosts racing to create the same identity or link end with the one row that won.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use rvbbit_core::Timestamp;

use super::PostgresStore;
use crate::channels::{ChannelStore, IdentityKey};
use crate::error::Result;

const IDENTITY: &str = "SELECT interlocutor FROM channel_identities
    WHERE tenant = $1 AND kind = $2 AND integration = $3 AND user_id = $4";

impl PostgresStore {
    async fn identity_on(&self, c: &impl GenericClient, k: &IdentityKey) -> Result<Option<String>> {
        let row = c
            .query_opt(IDENTITY, &[&k.tenant, &k.kind, &k.integration, &k.user])
            .await
            .map_err(|e| self.fail("read a chat identity", e))?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Link `fact` to `candidate` unless it is linked already; the fact's interlocutor.
    async fn link_on(
        &self,
        c: &impl GenericClient,
        tenant: &str,
        fact: &str,
        candidate: &str,
    ) -> Result<String> {
        let action = "link a chat identity";
        c.execute(
            "INSERT INTO channel_links (tenant, fact, interlocutor, created_at_us) VALUES ($1, $2, $3, $4)
             ON CONFLICT (tenant, fact) DO NOTHING",
            &[&tenant, &fact, &candidate, &Timestamp::now().micros()],
        )
        .await
        .map_err(|e| self.fail(action, e))?;
        let row = c
            .query_one(
                "SELECT interlocutor FROM channel_links WHERE tenant = $1 AND fact = $2",
                &[&tenant, &fact],
            )
            .await
            .map_err(|e| self.fail(action, e))?;
        Ok(row.get(0))
    }
}

#[async_trait]
impl ChannelStore for PostgresStore {
    async fn identity(&self, key: &IdentityKey) -> Result<Option<String>> {
        let client = self.client("read a chat identity").await?;
        self.identity_on(&client, key).await
    }

    async fn identity_link(&self, k: &IdentityKey, facts: &[String], fresh: &str) -> Result<String> {
        let action = "link a chat identity";
        let client = self.client(action).await?;
        let existing = self.identity_on(&client, k).await?;
        let candidate = existing.clone().unwrap_or_else(|| fresh.to_owned());
        let mut chosen = None;
        for fact in facts {
            let linked = self.link_on(&client, &k.tenant, fact, &candidate).await?;
            chosen.get_or_insert(linked);
        }
        if let Some(existing) = existing {
            return Ok(existing);
        }
        let chosen = chosen.unwrap_or(candidate);
        client
            .execute(
                "INSERT INTO channel_identities (tenant, kind, integration, user_id, interlocutor,
                 created_at_us) VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (tenant, kind, integration, user_id) DO NOTHING",
                &[
                    &k.tenant,
                    &k.kind,
                    &k.integration,
                    &k.user,
                    &chosen,
                    &Timestamp::now().micros(),
                ],
            )
            .await
            .map_err(|e| self.fail(action, e))?;
        Ok(self.identity_on(&client, k).await?.unwrap_or(chosen))
    }
}
