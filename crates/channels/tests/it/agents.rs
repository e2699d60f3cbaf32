//! A message in → one agent reply out, split at the channel's limit, over real HTTP on loopback: the
//! fake Slack and Mattermost record what they receive; the model is the testkit's scripted server.

use std::collections::BTreeMap;
use std::time::Duration;

use rvbbit_channels::Request;
use rvbbit_core::config::{ChannelConfig, ChannelKind};
use rvbbit_testkit::chat::{FakeChat, Posted, slack_headers, slack_message_event, unix_now};
use rvbbit_testkit::{Reply, Script, TestServer};

use crate::support::{Harness, TOKEN, mattermost, mm_request};

const SIGNING_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

/// A reply of `sentences` numbered sentences, one per line every tenth.
fn long_reply(sentences: usize) -> String {
    (0..sentences)
        .map(|i| {
            let end = if i % 10 == 9 { "\n" } else { " " };
            format!("Sentence number {i} says something worth reading about the weather today.{end}")
        })
        .collect()
}

fn squeeze(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

/// The parts arrived in order, each within `max`, each ending on a sentence, and together they are
/// the reply.
fn assert_split(posted: &[Posted], reply: &str, max: usize) {
    let texts: Vec<&str> = posted.iter().map(Posted::text).collect();
    assert!(texts.len() >= 2, "a long reply is several parts: {}", texts.len());
    for t in &texts {
        assert!(t.chars().count() <= max, "a part of {} chars", t.chars().count());
        assert!(
            t.ends_with('.'),
            "parts end on a sentence: …{}",
            &t[t.len().saturating_sub(30)..]
        );
    }
    assert_eq!(squeeze(&texts.concat()), squeeze(reply));
}

fn slack(fake: &FakeChat) -> ChannelConfig {
    let mut c = ChannelConfig::new(ChannelKind::Slack);
    c.signing_secret = Some(SIGNING_SECRET.into());
    c.token = Some("xoxb-test-bot".into());
    c.outbound_url = Some(fake.slack_api());
    c.agent = Some("helper".into());
    c
}

fn slack_request(secret: &str, body: &str) -> Request {
    Request {
        headers: slack_headers(secret, unix_now(), body).into_iter().collect(),
        body: body.as_bytes().to_vec(),
    }
}

#[tokio::test]
async fn a_signed_slack_message_gets_one_agent_reply_split_at_4000_characters() {
    let reply = long_reply(120);
    assert!(reply.chars().count() > 8000);
    let llm = TestServer::start(Script::sequence([Reply::text(reply.clone())])).await;
    let fake = FakeChat::start().await;
    let h = Harness::with_agent(
        BTreeMap::from([("team".to_owned(), slack(&fake))]),
        &llm.base_url(),
    )
    .await;
    let body = slack_message_event("U123", "C456", "What is the weather?");
    let ack = h
        .channels
        .receive("slack", "team", slack_request(SIGNING_SECRET, &body))
        .unwrap();
    assert_eq!(ack.body, None, "Slack gets an empty 200 at once");
    let posted = fake.wait_for(3, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let posted_now = fake.posted();
    assert_eq!(posted_now.len(), posted.len(), "nothing more arrives");
    assert_split(&posted_now, &reply, 4000);
    for p in &posted_now {
        assert_eq!(p.path, "/api/chat.postMessage");
        assert_eq!(p.body["channel"], "C456");
        assert_eq!(p.header("authorization"), Some("Bearer xoxb-test-bot"));
    }
    assert_eq!(llm.requests(), 1, "one turn, one model call");
    let sent = llm.received();
    assert!(sent[0].body.to_string().contains("What is the weather?"));
}

#[tokio::test]
async fn a_badly_signed_slack_message_is_401_and_nothing_runs() {
    let llm = TestServer::start(Script::echo()).await;
    let fake = FakeChat::start().await;
    let h = Harness::with_agent(
        BTreeMap::from([("team".to_owned(), slack(&fake))]),
        &llm.base_url(),
    )
    .await;
    let body = slack_message_event("U123", "C456", "hello");
    let e = h
        .channels
        .receive("slack", "team", slack_request("not-the-secret", &body))
        .unwrap_err();
    assert_eq!((e.status(), e.code().code), (401, "RVB-K002"));
    let mut stale = slack_request(SIGNING_SECRET, &body);
    stale.headers = slack_headers(SIGNING_SECRET, unix_now() - 301, &body)
        .into_iter()
        .collect();
    assert_eq!(
        h.channels.receive("slack", "team", stale).unwrap_err().status(),
        401
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        h.agents.as_ref().unwrap().live_conversations(),
        0,
        "no conversation started"
    );
    assert_eq!(llm.requests(), 0);
    assert!(fake.posted().is_empty());
}

#[tokio::test]
async fn a_mattermost_message_gets_one_agent_reply_split_at_16383_characters() {
    let reply = long_reply(500);
    assert!(reply.chars().count() > 2 * 16_383);
    let llm = TestServer::start(Script::sequence([Reply::text(reply.clone())])).await;
    let fake = FakeChat::start().await;
    let mut ops = mattermost(&fake);
    ops.agent = Some("helper".into());
    let h = Harness::with_agent(BTreeMap::from([("ops".to_owned(), ops)]), &llm.base_url()).await;
    h.channels
        .receive(
            "mattermost",
            "ops",
            mm_request(TOKEN, "alice", "Tell me everything."),
        )
        .unwrap();
    let posted = fake.wait_for(3, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fake.posted().len(), posted.len());
    assert_split(&posted, &reply, 16_383);
    assert!(posted.iter().all(|p| p.path == "/hooks/incoming"));
    // A command on the same integration goes to chat control, not to the agent.
    h.channels
        .receive("mattermost", "ops", mm_request(TOKEN, "alice", "!agents"))
        .unwrap();
    let posted = fake.wait_for(posted.len() + 1, Duration::from_secs(10)).await;
    assert_eq!(posted.last().unwrap().text(), "agents: helper");
    assert_eq!(llm.requests(), 1);
}

#[tokio::test]
async fn a_wrong_mattermost_token_is_401_and_nothing_runs() {
    let llm = TestServer::start(Script::echo()).await;
    let fake = FakeChat::start().await;
    let mut ops = mattermost(&fake);
    ops.agent = Some("helper".into());
    let h = Harness::with_agent(BTreeMap::from([("ops".to_owned(), ops)]), &llm.base_url()).await;
    let e = h
        .channels
        .receive("mattermost", "ops", mm_request("guess", "alice", "hi"))
        .unwrap_err();
    assert_eq!(e.status(), 401);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(h.agents.as_ref().unwrap().live_conversations(), 0);
    assert_eq!(llm.requests(), 0);
    assert!(fake.posted().is_empty());
}
