//! Conversations of agents: the conformance check every backend runs through `store_conformance!`.

use std::sync::Arc;

use rvbbit_core::Timestamp;
use rvbbit_store::{Conversation, ConversationMessage, Store, TurnRecord};
use serde_json::json;

pub async fn conversations_are_opened_once_per_key_and_read_only_by_their_tenant(
    store: Arc<dyn Store>,
    _url: &str,
) {
    let first = store
        .conversation_open(&Conversation::new("conv-a", "acme", "travel", "u1", "web"))
        .await
        .unwrap();
    assert_eq!(first.id, "conv-a");
    // The same key opens the same row, whatever id the second opener proposed.
    let again = store
        .conversation_open(&Conversation::new("conv-b", "acme", "travel", "u1", "web"))
        .await
        .unwrap();
    assert_eq!(again.id, "conv-a");
    // Another channel or tenant is another conversation.
    let sms = store
        .conversation_open(&Conversation::new("conv-c", "acme", "travel", "u1", "sms"))
        .await
        .unwrap();
    assert_eq!(sms.id, "conv-c");
    let other = store
        .conversation_open(&Conversation::new("conv-d", "globex", "travel", "u1", "web"))
        .await
        .unwrap();
    assert_eq!(other.id, "conv-d");

    // Tenants never see each other's conversations.
    assert!(store.conversation("acme", "conv-a").await.unwrap().is_some());
    assert!(store.conversation("globex", "conv-a").await.unwrap().is_none());
    let listed: Vec<String> = store
        .conversations("acme", "travel", 10)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(listed.len(), 2);
    assert!(listed.contains(&"conv-a".to_owned()) && listed.contains(&"conv-c".to_owned()));
    assert_eq!(
        store.conversations("globex", "travel", 10).await.unwrap().len(),
        1
    );
    assert!(store.conversations("acme", "other", 10).await.unwrap().is_empty());

    // Messages are numbered in order; reads keep to the tenant and the latest N, oldest first.
    for (role, text) in [
        ("user", "Book Paris"),
        ("user", "I meant London"),
        ("agent", "Booked London"),
    ] {
        let m = ConversationMessage::new(&first, role, text, json!([{"url": "x"}]), "turn-1");
        store.message_add(&m).await.unwrap();
    }
    let all = store.messages("acme", "conv-a", 10).await.unwrap();
    let seen: Vec<(i64, &str, &str)> = all
        .iter()
        .map(|m| (m.seq, m.role.as_str(), m.text.as_str()))
        .collect();
    assert_eq!(
        seen,
        vec![
            (1, "user", "Book Paris"),
            (2, "user", "I meant London"),
            (3, "agent", "Booked London")
        ]
    );
    assert_eq!(all[0].attachments, json!([{"url": "x"}]));
    assert_eq!(all[0].tenant, "acme");
    let last2 = store.messages("acme", "conv-a", 2).await.unwrap();
    assert_eq!(last2.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![2, 3]);
    assert!(store.messages("globex", "conv-a", 10).await.unwrap().is_empty());

    // Turns are upserted by id.
    let mut t = TurnRecord::new(&first, "turn-1");
    store.turn_put(&t).await.unwrap();
    t.status = "completed".into();
    t.attempts = 2;
    t.messages = 2;
    t.reply = Some("Booked London".into());
    t.run_session_id = Some("run-1".into());
    t.ended_at = Some(Timestamp::now());
    store.turn_put(&t).await.unwrap();
    let mut t2 = TurnRecord::new(&first, "turn-2");
    t2.started_at = t.started_at.add_micros(1);
    store.turn_put(&t2).await.unwrap();
    let turns = store.turns("acme", "conv-a", 10).await.unwrap();
    assert_eq!(turns.len(), 2);
    assert_eq!(turns[0], t);
    assert_eq!(turns[1].turn_id, "turn-2");
    assert_eq!(turns[1].status, "gathering");
    assert!(store.turns("globex", "conv-a", 10).await.unwrap().is_empty());

    // Variables are replaced and read back.
    store
        .conversation_vars("conv-a", &json!({"tier": "gold"}), Timestamp::now())
        .await
        .unwrap();
    let back = store.conversation("acme", "conv-a").await.unwrap().unwrap();
    assert_eq!(back.vars, json!({"tier": "gold"}));
    assert!(back.updated_at >= back.created_at);
}
