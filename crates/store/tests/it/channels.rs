//! Chat identities: the conformance check every backend runs through `store_conformance!`.

use std::sync::Arc;

use rvbbit_store::{IdentityKey, Store, StoredIntegration};
use serde_json::json;

pub async fn identities_link_by_fact_once_even_when_two_channels_race(store: Arc<dyn Store>, url: &str) {
    let email = vec!["email:alice@example.com".to_owned()];
    let slack = IdentityKey::new("acme", "slack", "team", "U1");
    assert_eq!(store.identity(&slack).await.unwrap(), None);
    let a = store.identity_link(&slack, &email, "person-a").await.unwrap();
    assert_eq!(a, "person-a");
    assert_eq!(store.identity(&slack).await.unwrap().as_deref(), Some("person-a"));
    // The same fact from another channel joins the same interlocutor.
    let mm = IdentityKey::new("acme", "mattermost", "ops", "mm-7");
    assert_eq!(
        store.identity_link(&mm, &email, "person-b").await.unwrap(),
        "person-a"
    );
    // An identity keeps its interlocutor; a new fact of it is linked to it.
    let phone = vec!["phone:+15551234567".to_owned()];
    assert_eq!(
        store.identity_link(&slack, &phone, "person-c").await.unwrap(),
        "person-a"
    );
    let sms = IdentityKey::new("acme", "webhook", "sms", "+15551234567");
    assert_eq!(
        store.identity_link(&sms, &phone, "person-d").await.unwrap(),
        "person-a"
    );
    // Another tenant never sees the link; no facts: the fresh interlocutor.
    let other = IdentityKey::new("globex", "mattermost", "ops", "mm-7");
    assert_eq!(
        store.identity_link(&other, &email, "person-e").await.unwrap(),
        "person-e"
    );
    let bare = IdentityKey::new("acme", "slack", "team", "U2");
    assert_eq!(
        store.identity_link(&bare, &[], "person-f").await.unwrap(),
        "person-f"
    );

    // First messages of one person from eight channels at once, through eight handles on the store
    // (eight processes): one interlocutor.
    let fact = vec!["email:bob@example.com".to_owned()];
    let racers = (0..8).map(|i| {
        let fact = fact.clone();
        let url = url.to_owned();
        let store = store.clone();
        tokio::spawn(async move {
            let handle = if i % 2 == 0 {
                store
            } else {
                rvbbit_store::open(&url, std::path::Path::new("/")).await.unwrap()
            };
            let key = IdentityKey::new("acme", "slack", format!("team-{i}"), format!("U{i}"));
            handle
                .identity_link(&key, &fact, &format!("racer-{i}"))
                .await
                .unwrap()
        })
    });
    let mut won = Vec::new();
    for r in racers.collect::<Vec<_>>() {
        won.push(r.await.unwrap());
    }
    won.dedup();
    assert_eq!(won.len(), 1, "one interlocutor: {won:?}");
}

pub async fn integrations_are_put_replaced_listed_and_deleted(store: Arc<dyn Store>, _url: &str) {
    assert!(store.integrations(10).await.unwrap().is_empty());
    let hook = StoredIntegration::new(
        "hook",
        "acme",
        "webhook",
        json!({"kind": "webhook", "secret": "s1"}),
    );
    store.integration_put(&hook).await.unwrap();
    let mut replaced = StoredIntegration::new(
        "hook",
        "acme",
        "webhook",
        json!({"kind": "webhook", "secret": "s2"}),
    );
    replaced.updated_at = rvbbit_core::Timestamp::from_micros(hook.updated_at.micros() + 1);
    store.integration_put(&replaced).await.unwrap();
    store
        .integration_put(&StoredIntegration::new(
            "alpha",
            "default",
            "web",
            json!({"kind": "web"}),
        ))
        .await
        .unwrap();
    assert_eq!(store.integration("hook").await.unwrap(), Some(replaced));
    let names: Vec<String> = store
        .integrations(10)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(names, ["alpha", "hook"]);
    assert_eq!(store.integrations(1).await.unwrap().len(), 1);
    assert!(store.integration_delete("hook").await.unwrap());
    assert!(!store.integration_delete("hook").await.unwrap());
    assert_eq!(store.integration("hook").await.unwrap(), None);
}
