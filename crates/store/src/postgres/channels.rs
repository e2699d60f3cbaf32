//! Chat identities and their links in PostgreSQL (see [`crate::channels`]).
//!
//! Every insert is `INSERT … ON CONFLICT DO NOTHING` followed by a read of the row, so processes on
//! many hosts racing to create the same identity or link end with the one row that won.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use rvbbit_core::Timestamp;

use super::{PostgresStore, corrupt};
use crate::channels::{ChannelStore, IdentityKey, StoredIntegration};
use crate::error::Result;

const IDENTITY: &str = "SELECT interlocutor FROM channel_identities
    WHERE tenant = $1 AND kind = $2 AND integration = $3 AND user_id = $4";

const INTEGRATION: &str = "SELECT name, tenant, kind, config, updated_at_us FROM channel_integrations";

fn integration(url: &str, r: &tokio_postgres::Row) -> Result<StoredIntegration> {
    let config: &str = r.get(3);
    Ok(StoredIntegration {
        name: r.get(0),
        tenant: r.get(1),
        kind: r.get(2),
        config: serde_json::from_str(config).map_err(|e| corrupt(url, "channel integration", e))?,
        updated_at: Timestamp::from_micros(r.get(4)),
    })
}

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

    async fn integration_put(&self, i: &StoredIntegration) -> Result<()> {
        let action = "store a channel integration";
        self.client(action)
            .await?
            .execute(
                "INSERT INTO channel_integrations (name, tenant, kind, config, updated_at_us)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (name) DO UPDATE SET tenant = excluded.tenant, kind = excluded.kind,
                 config = excluded.config, updated_at_us = excluded.updated_at_us",
                &[
                    &i.name,
                    &i.tenant,
                    &i.kind,
                    &i.config.to_string(),
                    &i.updated_at.micros(),
                ],
            )
            .await
            .map_err(|e| self.fail(action, e))?;
        Ok(())
    }

    async fn integration(&self, name: &str) -> Result<Option<StoredIntegration>> {
        let action = "read a channel integration";
        let row = self
            .client(action)
            .await?
            .query_opt(&format!("{INTEGRATION} WHERE name = $1"), &[&name])
            .await
            .map_err(|e| self.fail(action, e))?;
        row.map(|r| integration(&self.url, &r)).transpose()
    }

    async fn integrations(&self, limit: u64) -> Result<Vec<StoredIntegration>> {
        let action = "list channel integrations";
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .client(action)
            .await?
            .query(&format!("{INTEGRATION} ORDER BY name LIMIT $1"), &[&limit])
            .await
            .map_err(|e| self.fail(action, e))?;
        rows.iter().map(|r| integration(&self.url, r)).collect()
    }

    async fn integration_delete(&self, name: &str) -> Result<bool> {
        let action = "remove a channel integration";
        let n = self
            .client(action)
            .await?
            .execute("DELETE FROM channel_integrations WHERE name = $1", &[&name])
            .await
            .map_err(|e| self.fail(action, e))?;
        Ok(n > 0)
    }
}
