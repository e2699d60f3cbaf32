//! Conversations, messages and turns in the store, with their tenant; history across restarts.

use std::time::Duration;

use rvbbit_agents::{ConversationKey, Message};
use rvbbit_testkit::{Reply, Script, TestServer};

use crate::support::{Harness, turn_text};

#[tokio::test(start_paused = true)]
async fn turns_and_messages_are_stored_per_tenant_and_history_survives_a_restart() {
    let server = TestServer::start(Script::rule(|body| {
        Reply::text(format!("ok {}", turn_text(body))).latency(Duration::from_millis(20))
    }))
    .await;
    let h = Harness::new(&server.base_url(), Duration::ZERO, None).await;
    let mut reports = h.agents.subscribe();
    let a = h.send("u9", "email", "Hello there.").await;
    let report = reports.recv().await.unwrap();
    assert_eq!(report.reply.as_deref(), Some("ok Hello there."));
    h.agents.shutdown().await;

    let id = a.conversation_id.as_str();
    let conversation = h.store.conversation("acme", id).await.unwrap().unwrap();
    assert_eq!(
        (
            conversation.agent.as_str(),
            conversation.interlocutor.as_str(),
            conversation.channel.as_str()
        ),
        ("travel", "u9", "email")
    );
    assert!(
        h.store.conversation("globex", id).await.unwrap().is_none(),
        "another tenant sees nothing"
    );
    let messages = h.store.messages("acme", id, 10).await.unwrap();
    let seen: Vec<(&str, &str)> = messages
        .iter()
        .map(|m| (m.role.as_str(), m.text.as_str()))
        .collect();
    assert_eq!(seen, vec![("user", "Hello there."), ("agent", "ok Hello there.")]);
    assert!(
        messages
            .iter()
            .all(|m| m.turn_id == a.turn_id && m.tenant == "acme")
    );
    let turns = h.store.turns("acme", id, 10).await.unwrap();
    assert_eq!(turns.len(), 1);
    assert_eq!(
        (turns[0].status.as_str(), turns[0].attempts, turns[0].messages),
        ("completed", 1, 1)
    );
    assert!(turns[0].ended_at.is_some() && turns[0].run_session_id.is_some());

    // A new process (nothing in memory) continues the same conversation with its history.
    let agents = h.restarted();
    let mut reports = agents.subscribe();
    let key = ConversationKey::new("acme", "travel", "u9", "email").unwrap();
    let b = agents.send(Message::text(key, "Still there?")).await.unwrap();
    assert_eq!(b.conversation_id, a.conversation_id);
    reports.recv().await.unwrap();
    let last = server.bodies().pop().unwrap();
    assert!(last.to_string().contains("HISTORY[2]"), "{last}");
    assert_eq!(h.store.turns("acme", id, 10).await.unwrap().len(), 2);
    agents.shutdown().await;
}
