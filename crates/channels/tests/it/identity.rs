//! Linking identities across channels by a verified email (docs/channels.md, "Linking identities"):
//! real HTTP on loopback, the fake Slack and Mattermost answering their user directories, the
//! testkit's scripted model; the model's second request shows whether the agent saw the first turn.

use std::collections::BTreeMap;
use std::time::Duration;

use rvbbit_channels::{LINKED_CHANNEL, Request};
use rvbbit_core::config::{ChannelConfig, ChannelKind, TenantConfig};
use rvbbit_testkit::chat::{FakeChat, Posted, slack_headers, slack_message_event, unix_now, webhook_headers};
use rvbbit_testkit::{Reply, Script, TestServer};

use crate::support::{Harness, TOKEN, mattermost, mm_request};

const SIGNING_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
const BOT_TOKEN: &str = "mm-bot-token";
const WEBHOOK_SECRET: &str = "webhook-secret";
const FIRST: &str = "My name is Alice and I like tea.";

fn slack(fake: &FakeChat) -> ChannelConfig {
    let mut c = ChannelConfig::new(ChannelKind::Slack);
    c.signing_secret = Some(SIGNING_SECRET.into());
    c.token = Some("xoxb-test-bot".into());
    c.outbound_url = Some(fake.slack_api());
    c.agent = Some("helper".into());
    c
}

/// Mattermost replying (and reading users) through its REST API with a bot token.
fn mattermost_rest(fake: &FakeChat) -> ChannelConfig {
    let mut c = mattermost(fake);
    c.outbound_url = None;
    c.api_url = Some(fake.mattermost_api());
    c.bot_token = Some(BOT_TOKEN.into());
    c.agent = Some("helper".into());
    c
}

fn webhook(fake: &FakeChat) -> ChannelConfig {
    let mut c = ChannelConfig::new(ChannelKind::Webhook);
    c.secret = Some(WEBHOOK_SECRET.into());
    c.outbound_url = Some(fake.webhook_url());
    c.agent = Some("helper".into());
    c
}

fn linking(on: bool) -> BTreeMap<String, TenantConfig> {
    let t = TenantConfig { link_identities: on };
    BTreeMap::from([("default".to_owned(), t)])
}

fn slack_says(h: &Harness, user: &str, text: &str) {
    let body = slack_message_event(user, "C1", text);
    let request = Request {
        headers: slack_headers(SIGNING_SECRET, unix_now(), &body)
            .into_iter()
            .collect(),
        body: body.into_bytes(),
    };
    h.channels.receive("slack", "team", request).unwrap();
}

/// Alice says [`FIRST`] on Slack, then asks her name on Mattermost; the two replies posted.
async fn slack_then_mattermost(h: &Harness, fake: &FakeChat) -> Vec<Posted> {
    slack_says(h, "U123", FIRST);
    fake.wait_for(1, Duration::from_secs(20)).await;
    h.channels
        .receive(
            "mattermost",
            "ops",
            mm_request(TOKEN, "alice", "What is my name?"),
        )
        .unwrap();
    fake.wait_for(2, Duration::from_secs(20)).await
}

fn webhook_says(h: &Harness, body: serde_json::Value) {
    let body = body.to_string();
    let request = Request {
        headers: webhook_headers(WEBHOOK_SECRET, unix_now(), &body)
            .into_iter()
            .collect(),
        body: body.into_bytes(),
    };
    h.channels.receive("webhook", "hook", request).unwrap();
}

async fn harness(fake: &FakeChat, llm: &TestServer, link: bool) -> Harness {
    let configs = BTreeMap::from([
        ("team".to_owned(), slack(fake)),
        ("ops".to_owned(), mattermost_rest(fake)),
        ("hook".to_owned(), webhook(fake)),
    ]);
    let mut h = Harness::with_agent(configs, &llm.base_url()).await;
    h.channels = h.channels.clone().with_tenants(&linking(link));
    h
}

/// The bodies of the model's requests, as text.
fn prompts(llm: &TestServer) -> Vec<String> {
    llm.received().iter().map(|r| r.body.to_string()).collect()
}

#[tokio::test]
async fn the_same_verified_email_on_slack_and_mattermost_is_one_conversation() {
    let llm = TestServer::start(Script::sequence([
        Reply::text("Nice to meet you."),
        Reply::text("You are Alice."),
    ]))
    .await;
    let fake = FakeChat::start().await;
    fake.slack_user("U123", "Alice@Example.com");
    fake.mattermost_user("id-alice", "alice@example.com", true);
    let h = harness(&fake, &llm, true).await;

    let posted = slack_then_mattermost(&h, &fake).await;

    // Each reply goes back where its message came from.
    assert_eq!(posted[0].path, "/api/chat.postMessage");
    assert_eq!(posted[1].path, "/api/v4/posts");
    assert_eq!(posted[1].text(), "You are Alice.");
    // The agent saw the Slack turn when answering on Mattermost.
    let sent = prompts(&llm);
    assert_eq!(sent.len(), 2);
    assert!(
        sent[1].contains(FIRST),
        "the earlier turn is in the prompt: {}",
        sent[1]
    );
    let conversations = h.store.conversations("default", "helper", 10).await.unwrap();
    assert_eq!(conversations.len(), 1, "{conversations:?}");
    assert_eq!(conversations[0].channel, LINKED_CHANNEL);
    // The directories were read with each integration's bot token.
    let lookups = fake.lookups();
    assert!(
        lookups
            .iter()
            .any(|l| l.path == "/api/users.info?user=U123" && l.bearer() == Some("xoxb-test-bot"))
    );
    assert!(
        lookups
            .iter()
            .any(|l| l.path == "/api/v4/users/id-alice" && l.bearer() == Some(BOT_TOKEN))
    );
}

#[tokio::test]
async fn with_linking_off_the_same_person_on_two_channels_is_two_conversations() {
    let llm = TestServer::start(Script::sequence([Reply::text("Hello."), Reply::text("Who?")])).await;
    let fake = FakeChat::start().await;
    fake.slack_user("U123", "alice@example.com");
    fake.mattermost_user("id-alice", "alice@example.com", true);
    let h = harness(&fake, &llm, false).await;

    slack_then_mattermost(&h, &fake).await;

    let sent = prompts(&llm);
    assert!(!sent[1].contains(FIRST), "{}", sent[1]);
    let mut channels: Vec<String> = h
        .store
        .conversations("default", "helper", 10)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.channel)
        .collect();
    channels.sort();
    assert_eq!(channels, ["mattermost", "slack"]);
    assert!(
        fake.lookups().is_empty(),
        "no directory is read when linking is off"
    );
}

#[tokio::test]
async fn an_unverified_email_does_not_link_and_a_signed_verified_one_does() {
    let llm = TestServer::start(Script::sequence([
        Reply::text("One."),
        Reply::text("Two."),
        Reply::text("Three."),
        Reply::text("Four."),
    ]))
    .await;
    let fake = FakeChat::start().await;
    fake.mattermost_user("id-alice", "alice@example.com", false);
    let h = harness(&fake, &llm, true).await;

    // A signed webhook message vouching for the email starts the linked conversation.
    webhook_says(
        &h,
        serde_json::json!({"user": "w-1", "text": FIRST, "email": "alice@example.com", "email_verified": true}),
    );
    fake.wait_for(1, Duration::from_secs(20)).await;
    // Mattermost says the address is not verified: not linked.
    h.channels
        .receive("mattermost", "ops", mm_request(TOKEN, "alice", "Second?"))
        .unwrap();
    fake.wait_for(2, Duration::from_secs(20)).await;
    // The webhook naming the email without vouching for it: not linked either.
    webhook_says(
        &h,
        serde_json::json!({"user": "w-2", "text": "Third?", "email": "alice@example.com"}),
    );
    fake.wait_for(3, Duration::from_secs(20)).await;
    // Another signed, verified message from another webhook user with the same email: linked.
    webhook_says(
        &h,
        serde_json::json!({"user": "w-3", "text": "Fourth?", "email": "ALICE@example.com", "email_verified": true}),
    );
    fake.wait_for(4, Duration::from_secs(20)).await;

    let sent = prompts(&llm);
    assert_eq!(sent.len(), 4);
    assert!(
        !sent[1].contains(FIRST),
        "unverified Mattermost email: {}",
        sent[1]
    );
    assert!(!sent[2].contains(FIRST), "unvouched webhook email: {}", sent[2]);
    assert!(sent[3].contains(FIRST), "verified again: {}", sent[3]);
    let conversations = h.store.conversations("default", "helper", 10).await.unwrap();
    let mut channels: Vec<&str> = conversations.iter().map(|c| c.channel.as_str()).collect();
    channels.sort_unstable();
    assert_eq!(channels, [LINKED_CHANNEL, "mattermost", "webhook"]);
}
