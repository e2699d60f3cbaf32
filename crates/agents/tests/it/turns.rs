//! The turn guarantees: one turn per window, supersede before the commit point, queue after it, one
//! turn at a time per conversation with different conversations concurrent.

use std::collections::HashMap;
use std::time::Duration;

use rvbbit_agents::Disposition;
use rvbbit_core::EventKind;
use rvbbit_testkit::{Reply, Script, TestServer};
use serde_json::json;

use crate::support::{Harness, tool_result, turn_text};

/// Books the city the turn's messages name last (London wins over Paris), after `latency`; then
/// confirms from the tool result. Anything else is echoed.
fn travel_script(latency: Duration) -> Script {
    Script::rule(move |body| {
        if let Some(result) = tool_result(body) {
            return Reply::text(format!("Done: {result}"));
        }
        let text = turn_text(body);
        let city = ["Rome", "London", "Paris"].into_iter().find(|c| text.contains(c));
        match city {
            Some(city) => Reply::tool_call("c1", "book_flight", json!({"city": city})).latency(latency),
            None => Reply::text(format!("You said: {text}")).latency(latency),
        }
    })
}

#[tokio::test(start_paused = true)]
async fn three_messages_300ms_apart_on_web_are_one_turn_and_a_fourth_after_2s_is_another() {
    let server = TestServer::start(travel_script(Duration::from_millis(50))).await;
    let h = Harness::new(&server.base_url(), Duration::ZERO, None).await;
    let mut reports = h.agents.subscribe();
    let a = h.send("u1", "web", "hi").await;
    assert_eq!(a.disposition, Disposition::NewTurn);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let b = h.send("u1", "web", "I need some help with my account").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let c = h.send("u1", "web", "can you check it?").await;
    assert_eq!(
        (b.disposition, c.disposition),
        (Disposition::Absorbed, Disposition::Absorbed)
    );
    assert_eq!((&b.turn_id, &c.turn_id), (&a.turn_id, &a.turn_id));

    let first = reports.recv().await.unwrap();
    assert_eq!(first.turn_id, a.turn_id);
    assert_eq!(
        first.messages,
        vec!["hi", "I need some help with my account", "can you check it?"]
    );
    assert_eq!(first.attempts, 1);
    assert_eq!(
        first.reply.as_deref(),
        Some("You said: hi | I need some help with my account | can you check it?")
    );
    assert_eq!(server.requests(), 1, "one model call for the three messages");

    tokio::time::sleep(Duration::from_secs(2)).await;
    let d = h.send("u1", "web", "thanks").await;
    assert_eq!(d.disposition, Disposition::NewTurn);
    assert_ne!(d.turn_id, a.turn_id);
    let second = reports.recv().await.unwrap();
    assert_eq!(second.turn_id, d.turn_id);
    assert_eq!(second.messages, vec!["thanks"]);
    assert_eq!(server.requests(), 2);
    // The second turn saw the first as history (three user messages and the reply).
    assert!(turn_text(&server.bodies()[1]).contains("thanks"));
    assert!(server.bodies()[1].to_string().contains("HISTORY[4]"));

    let kinds = h.kinds(&a.conversation_id).await;
    assert_eq!(
        kinds,
        vec![
            EventKind::AgentMessageAbsorbed,
            EventKind::AgentMessageAbsorbed,
            EventKind::AgentTurnStarted,
            EventKind::AgentTurnCompleted,
            EventKind::AgentTurnStarted,
            EventKind::AgentTurnCompleted,
        ]
    );
    let events = h.events(&a.conversation_id).await;
    let started = &events[2].event;
    assert_eq!(started.cascade_id.as_deref(), Some("travel_agent"));
    assert!(started.caller_id.as_ref().unwrap().as_str().starts_with("agent-"));
    assert_eq!(started.metadata["turn_group"], json!(a.turn_id));
    assert_eq!(
        started.invocation_metadata["conversation_key"],
        json!("acme:travel:u1:web")
    );
    assert_eq!(
        started.content,
        json!(["hi", "I need some help with my account", "can you check it?"])
    );
    // The engine run of the turn shares the turn group's caller id.
    let run = started.metadata["run_session_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let run_events = h.events(&run).await;
    assert!(!run_events.is_empty());
    assert!(run_events.iter().all(|e| e.event.caller_id == started.caller_id));
    h.agents.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_correction_100ms_later_supersedes_the_turn_and_the_irreversible_tool_runs_once() {
    let server = TestServer::start(travel_script(Duration::from_millis(500))).await;
    let h = Harness::new(&server.base_url(), Duration::ZERO, None).await;
    let mut reports = h.agents.subscribe();
    // Voice has no window: the turn starts at once and its model call is in flight 100 ms later.
    let a = h.send("u2", "voice", "Book Paris").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let b = h.send("u2", "voice", "I meant London").await;
    assert_eq!(b.disposition, Disposition::Superseded);
    assert_eq!(b.turn_id, a.turn_id, "same turn group");

    let report = reports.recv().await.unwrap();
    assert_eq!(report.turn_id, a.turn_id);
    assert_eq!(report.attempts, 2);
    assert_eq!(report.messages, vec!["Book Paris", "I meant London"]);
    let reply = report.reply.unwrap();
    assert!(reply.contains("London") && !reply.contains("Paris"), "{reply}");
    assert_eq!(
        *h.calls.lock().unwrap(),
        vec!["London"],
        "the irreversible tool ran once"
    );

    let kinds = h.kinds(&a.conversation_id).await;
    assert_eq!(
        kinds,
        vec![
            EventKind::AgentTurnStarted,
            EventKind::AgentTurnSuperseded,
            EventKind::AgentMessageAbsorbed,
            EventKind::AgentTurnStarted,
            EventKind::AgentCommitReached,
            EventKind::AgentTurnCompleted,
        ]
    );
    let events = h.events(&a.conversation_id).await;
    let superseded = &events[1].event;
    assert_eq!(superseded.metadata["run_status"], json!("cancelled"));
    assert_eq!(events[4].event.metadata["policy"], json!("irreversible"));
    assert_eq!(events[4].event.metadata["tool"], json!("book_flight"));
    // The committing call was claimed under tool:business_key:turn_group.
    let effects = h.store.effects("book_flight:").await.unwrap();
    assert_eq!(effects.len(), 1);
    assert!(
        effects[0].key.ends_with(&format!(":{}", a.turn_id)),
        "{}",
        effects[0].key
    );
    h.agents.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_message_after_the_commit_point_queues_as_a_new_turn() {
    let server = TestServer::start(travel_script(Duration::from_millis(10))).await;
    // The booking takes a second: the turn has committed and is still in flight.
    let h = Harness::new(&server.base_url(), Duration::from_secs(1), None).await;
    let mut reports = h.agents.subscribe();
    let a = h.send("u3", "voice", "Book Rome").await;
    // Wait for the commit point in small steps: the model's reply comes over real loopback HTTP, during
    // which the paused clock may jump, so a fixed sleep could end before the reply (a flake under load).
    // The booking then holds the turn for a whole virtual second, far longer than one step.
    let mut kinds = Vec::new();
    for _ in 0..3000 {
        kinds = h.kinds(&a.conversation_id).await;
        if kinds.contains(&EventKind::AgentCommitReached) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        kinds,
        vec![EventKind::AgentTurnStarted, EventKind::AgentCommitReached]
    );
    let b = h.send("u3", "voice", "and a hotel please").await;
    assert_eq!(b.disposition, Disposition::Queued);
    assert_ne!(b.turn_id, a.turn_id);

    let first = reports.recv().await.unwrap();
    assert_eq!((first.turn_id.as_str(), first.attempts), (a.turn_id.as_str(), 1));
    assert!(first.reply.unwrap().contains("Rome"));
    let second = reports.recv().await.unwrap();
    assert_eq!(second.turn_id, b.turn_id);
    assert_eq!(second.messages, vec!["and a hotel please"]);
    assert_eq!(
        *h.calls.lock().unwrap(),
        vec!["Rome"],
        "booked once, never superseded"
    );
    let kinds = h.kinds(&a.conversation_id).await;
    assert!(!kinds.contains(&EventKind::AgentTurnSuperseded), "{kinds:?}");
    h.agents.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_hundred_conversations_of_twenty_messages_keep_their_turns_in_order_and_apart() {
    let server = TestServer::start(Script::rule(|body| {
        Reply::text(format!("ok {}", turn_text(body))).latency(Duration::from_millis(200))
    }))
    .await;
    let h = std::sync::Arc::new(Harness::new(&server.base_url(), Duration::ZERO, None).await);
    const GAPS: [u64; 5] = [50, 300, 700, 1500, 120];
    let mut tasks = Vec::new();
    for c in 0..100_u64 {
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            let who = format!("user-{c}");
            let mut conversation = None;
            for i in 0..20_u64 {
                let a = h.send(&who, "web", &format!("m{i} of {c}")).await;
                conversation.get_or_insert(a.conversation_id);
                tokio::time::sleep(Duration::from_millis(GAPS[((c + i) % 5) as usize])).await;
            }
            conversation.unwrap()
        }));
    }
    let mut conversations = Vec::new();
    for t in tasks {
        conversations.push(t.await.unwrap());
    }
    // Let every turn finish.
    tokio::time::sleep(Duration::from_secs(30)).await;

    let mut spans: Vec<(usize, i64, i64)> = Vec::new();
    let mut supersedes = 0;
    for (c, conversation) in conversations.iter().enumerate() {
        let events = h.events(conversation).await;
        let mut in_flight: Option<(String, i64)> = None;
        let mut messages: Vec<String> = Vec::new();
        let mut last_started: Vec<String> = Vec::new();
        let mut groups: Vec<String> = Vec::new();
        for e in events.iter().map(|e| &e.event) {
            let group = e.metadata["turn_group"].as_str().unwrap().to_owned();
            match e.kind {
                EventKind::AgentTurnStarted => {
                    assert!(in_flight.is_none(), "conversation {c}: two turns at once");
                    in_flight = Some((group.clone(), e.ts_us.micros()));
                    last_started = serde_json::from_value(e.content.clone()).unwrap();
                    if groups.last() != Some(&group) {
                        groups.push(group);
                    }
                }
                EventKind::AgentTurnSuperseded => {
                    let (g, _) = in_flight.take().expect("superseded while in flight");
                    assert_eq!(g, group);
                    supersedes += 1;
                }
                EventKind::AgentTurnCompleted => {
                    let (g, start) = in_flight.take().expect("completed while in flight");
                    assert_eq!(g, group);
                    assert_eq!(e.metadata["status"], json!("completed"), "{:?}", e.content);
                    spans.push((c, start, e.ts_us.micros()));
                    messages.append(&mut last_started);
                }
                _ => {}
            }
        }
        assert!(in_flight.is_none(), "conversation {c}: a turn never ended");
        let sent: Vec<String> = (0..20).map(|i| format!("m{i} of {c}")).collect();
        assert_eq!(
            messages, sent,
            "conversation {c}: every message answered once, in order"
        );
        // Turn groups never interleave: each group's events are contiguous.
        let unique: std::collections::HashSet<_> = groups.iter().collect();
        assert_eq!(
            unique.len(),
            groups.len(),
            "conversation {c}: a turn group came back"
        );
    }
    // Turns of different conversations overlapped in time.
    let overlapping = spans
        .iter()
        .any(|a| spans.iter().any(|b| a.0 != b.0 && a.1 < b.2 && b.1 < a.2));
    assert!(overlapping, "no two conversations' turns overlapped");
    assert!(
        server.max_concurrency() > 1,
        "model calls of different conversations ran at once"
    );
    let per_conversation: HashMap<usize, usize> = spans.iter().fold(HashMap::new(), |mut m, s| {
        *m.entry(s.0).or_default() += 1;
        m
    });
    assert!(per_conversation.values().all(|n| *n >= 2), "{per_conversation:?}");
    eprintln!("{} turns, {supersedes} supersedes", spans.len());
    h.agents.shutdown().await;
}
