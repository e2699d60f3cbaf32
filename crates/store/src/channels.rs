//! Chat identities (`rvbbit-channels`, issue 20): which interlocutor a platform's user is, per tenant,
//! and the verified contact facts (an email, a phone number) that link one person across channels.
//!
//! An *identity* is `(tenant, kind, integration, user id)` → interlocutor; a *link* is `(tenant, fact)`
//! → interlocutor, where a fact is `email:alice@example.com` or `phone:+15551234567` (normalised by
//! the caller). Both are created compare-and-set ([`ChannelStore::identity_link`]): two messages from
//! two channels racing with the same fact end with one interlocutor, on one host or many.
//!
//! Integrations configured through the HTTP API (`PUT /api/v1/channels/{name}`) are kept here too
//! ([`StoredIntegration`]), so every `serve` process sharing the store answers their hooks.

use async_trait::async_trait;
use rvbbit_core::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::Result;

/// A platform's user as one integration of one tenant sees them.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct IdentityKey {
    /// The tenant of the integration.
    pub tenant: String,
    /// The integration's kind (`slack`, `mattermost`, `webhook`, `web`).
    pub kind: String,
    /// The integration's name.
    pub integration: String,
    /// The platform's user id.
    pub user: String,
}

impl IdentityKey {
    /// The key of `user` on integration `integration` (of `kind`) of `tenant`.
    pub fn new(
        tenant: impl Into<String>,
        kind: impl Into<String>,
        integration: impl Into<String>,
        user: impl Into<String>,
    ) -> Self {
        IdentityKey {
            tenant: tenant.into(),
            kind: kind.into(),
            integration: integration.into(),
            user: user.into(),
        }
    }
}

/// An integration configured through the HTTP API: its `[channels.NAME]` keys as JSON, secrets
/// included (the store is as private as rvbbit.toml).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StoredIntegration {
    /// Its name (unique across tenants: it is part of the hook's URL).
    pub name: String,
    /// Its tenant (`tenant`, `default` without one).
    pub tenant: String,
    /// Its kind.
    pub kind: String,
    /// The `[channels.NAME]` keys, as a JSON object.
    pub config: Value,
    /// When it was last written (also its version: a reader rebuilds it when this changes).
    pub updated_at: Timestamp,
}

impl StoredIntegration {
    /// Integration `name` of `tenant` and `kind` with `config`, written now.
    pub fn new(
        name: impl Into<String>,
        tenant: impl Into<String>,
        kind: impl Into<String>,
        config: Value,
    ) -> Self {
        StoredIntegration {
            name: name.into(),
            tenant: tenant.into(),
            kind: kind.into(),
            config,
            updated_at: Timestamp::now(),
        }
    }
}

/// Chat identities and the verified facts linking them.
///
/// # Example
///
/// ```no_run
/// # async fn demo(store: &dyn rvbbit_store::ChannelStore) -> rvbbit_store::Result<()> {
/// use rvbbit_store::IdentityKey;
/// let facts = ["email:alice@example.com".to_owned()];
/// let on_slack = IdentityKey::new("acme", "slack", "team", "U1");
/// let a = store.identity_link(&on_slack, &facts, "person-1").await?;
/// let on_mattermost = IdentityKey::new("acme", "mattermost", "ops", "mm-7");
/// let b = store.identity_link(&on_mattermost, &facts, "person-2").await?;
/// assert_eq!(a, b, "the same verified email is the same interlocutor");
/// # Ok(()) }
/// ```
#[async_trait]
pub trait ChannelStore: Send + Sync {
    /// The interlocutor of `key`, if it has one.
    async fn identity(&self, key: &IdentityKey) -> Result<Option<String>>;

    /// The interlocutor of `key`, linked by `facts` (normalised, most trusted first), creating what is
    /// missing compare-and-set:
    /// - an identity that exists keeps its interlocutor (facts not linked yet are linked to it);
    /// - else each fact not linked yet is linked to `fresh`, the first fact's interlocutor (whoever
    ///   linked it first) becomes the identity's, and the identity is stored unless another writer
    ///   stored it first, whose interlocutor is returned;
    /// - without facts, `fresh` (or the stored one).
    async fn identity_link(&self, key: &IdentityKey, facts: &[String], fresh: &str) -> Result<String>;

    /// Create or replace the integration named `integration.name`.
    async fn integration_put(&self, integration: &StoredIntegration) -> Result<()>;

    /// The integration `name`, if stored.
    async fn integration(&self, name: &str) -> Result<Option<StoredIntegration>>;

    /// The stored integrations by name, at most `limit`.
    async fn integrations(&self, limit: u64) -> Result<Vec<StoredIntegration>>;

    /// Remove the integration `name`; whether it existed.
    async fn integration_delete(&self, name: &str) -> Result<bool>;
}
