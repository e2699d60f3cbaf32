//! Which conversation a chat message joins: its platform user's own, or, when the tenant turns
//! `link_identities` on and the sender has a verified email or phone ([`crate::contacts`]), the one
//! conversation of the person linked by it across channels (docs/channels.md, "Linking identities").
//!
//! A linked person shares one conversation per agent (channel [`LINKED_CHANNEL`]), so the agent sees
//! the turns they had on Slack when they write on Mattermost; replies still go back through the
//! integration each message came from. The links live in the store ([`rvbbit_store::ChannelStore`]),
//! created compare-and-set, so two channels racing end with one interlocutor.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, PoisonError, RwLock};

use rvbbit_core::config::{ChannelConfig, TenantConfig};
use rvbbit_store::{IdentityKey, Store};

use crate::adapter::Inbound;
use crate::contacts::Contacts;
use crate::control::audit::Who;
use crate::directory::Directory;

/// The channel part of the conversation key of a person linked across channels by a verified email
/// or phone: one conversation whichever integration they write from (replies still go back where
/// each message came from).
pub const LINKED_CHANNEL: &str = "linked";
/// The tenants that link identities, the store that keeps the links, and the platforms' directories.
pub(crate) struct Identities {
    store: Option<Arc<dyn Store>>,
    linking: RwLock<BTreeSet<String>>,
    directory: Directory,
}

impl std::fmt::Debug for Identities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identities")
            .field("store", &self.store.as_ref().map(|s| s.url().to_owned()))
            .field("linking", &self.linking)
            .finish_non_exhaustive()
    }
}

impl Identities {
    pub(crate) fn new(store: Option<Arc<dyn Store>>, directory: Directory) -> Self {
        Identities {
            store,
            linking: RwLock::new(BTreeSet::new()),
            directory,
        }
    }

    /// Link for the tenants of `tenants` with `link_identities = true` (and no others).
    pub(crate) fn set_tenants(&self, tenants: &BTreeMap<String, TenantConfig>) {
        let linking = tenants
            .iter()
            .filter(|(_, t)| t.link_identities)
            .map(|(name, _)| name.clone())
            .collect();
        *self.linking.write().unwrap_or_else(PoisonError::into_inner) = linking;
    }

    /// The interlocutor and channel of `message`'s conversation: the platform's user id and the kind,
    /// unless the tenant links identities and the sender is linked by a verified email or phone (or
    /// was before), then the linked person and [`LINKED_CHANNEL`]. A store failure falls back to the
    /// unlinked conversation (logged): the message is still answered.
    pub(crate) async fn conversation_of(
        &self,
        name: &str,
        config: &ChannelConfig,
        who: &Who,
        message: &Inbound,
    ) -> (String, String) {
        let unlinked = (who.user.clone(), who.kind.clone());
        let linking = self
            .linking
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&who.tenant);
        let (true, Some(store)) = (linking, &self.store) else {
            return unlinked;
        };
        let mut contacts: Contacts = message.contacts.clone();
        if contacts.is_empty() {
            contacts = self.directory.contacts(name, config, &message.user).await;
        }
        let key = IdentityKey::new(&who.tenant, &who.kind, name, &who.user);
        let linked = if contacts.is_empty() {
            // Unverified now, perhaps linked before (the platform's directory failed this time).
            store.identity(&key).await
        } else {
            let fresh = format!("person-{}", rvbbit_core::woodland_name());
            store
                .identity_link(&key, &contacts.facts(), &fresh)
                .await
                .map(Some)
        };
        match linked {
            Ok(Some(person)) => (person, LINKED_CHANNEL.to_owned()),
            Ok(None) => unlinked,
            Err(e) => {
                tracing::warn!(integration = %name, error = %e,
                    "A chat identity could not be linked; the message stays in its channel's conversation.");
                unlinked
            }
        }
    }
}
