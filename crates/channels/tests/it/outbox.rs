//! Inbound verification and the sender: a bad token runs nothing; replies survive a 429 (honouring
//! `Retry-After`, in order) and 5xx answers (retried on the 1 s, 5 s, 15 s schedule).

use std::collections::BTreeMap;
use std::time::Duration;

use rvbbit_core::EventKind;
use rvbbit_testkit::chat::FakeChat;

use crate::support::{Harness, TOKEN, mattermost, mm_request};

#[tokio::test]
async fn a_bad_token_is_refused_and_nothing_runs_or_is_sent() {
    let fake = FakeChat::start().await;
    let h = Harness::new(BTreeMap::from([("ops".to_owned(), mattermost(&fake))])).await;
    let e = h
        .channels
        .receive("mattermost", "ops", mm_request("wrong", "alice", "!run hello"))
        .unwrap_err();
    assert_eq!((e.status(), e.code().code), (401, "RVB-K002"));
    assert!(
        !e.public_message().contains("token"),
        "the failed check is not told: {e}"
    );
    let e = h
        .channels
        .receive("slack", "ops", mm_request(TOKEN, "alice", "!help"))
        .unwrap_err();
    assert_eq!(e.status(), 404, "a kind mismatch is unknown");
    let e = h
        .channels
        .receive("mattermost", "nope", mm_request(TOKEN, "alice", "!help"))
        .unwrap_err();
    assert_eq!(e.status(), 404);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(fake.posted().is_empty());
    assert!(
        h.audit(EventKind::CommandAttempt).await.is_empty(),
        "not even attempted"
    );
}

#[tokio::test]
async fn a_429_is_waited_out_and_replies_stay_in_order() {
    let fake = FakeChat::start().await;
    let h = Harness::new(BTreeMap::from([("ops".to_owned(), mattermost(&fake))])).await;
    fake.rate_limit_next(1);
    h.channels
        .receive("mattermost", "ops", mm_request(TOKEN, "alice", "!help run"))
        .unwrap();
    // Give the first reply a head start so the order of arrival is the order of sending.
    tokio::time::sleep(Duration::from_millis(300)).await;
    h.channels
        .receive("mattermost", "ops", mm_request(TOKEN, "alice", "!help list"))
        .unwrap();
    let posted = fake.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(fake.refused(), 1);
    assert!(posted[0].text().starts_with("!run CASCADE"), "{posted:?}");
    assert!(posted[1].text().starts_with("!list"), "{posted:?}");
}

#[tokio::test(start_paused = true)]
async fn server_errors_are_retried_after_1_5_and_15_seconds() {
    let fake = FakeChat::start().await;
    let h = Harness::new(BTreeMap::from([("ops".to_owned(), mattermost(&fake))])).await;
    fake.fail_next(3);
    let started = tokio::time::Instant::now();
    h.channels
        .receive("mattermost", "ops", mm_request(TOKEN, "alice", "!agents"))
        .unwrap();
    let posted = fake.wait_for(1, Duration::from_secs(60)).await;
    let waited = started.elapsed();
    assert_eq!(fake.refused(), 3);
    assert!(posted[0].text().contains("no agents"), "{posted:?}");
    assert!(
        waited >= Duration::from_secs(21),
        "1 + 5 + 15 s of backoff, took {waited:?}"
    );
    assert!(waited < Duration::from_secs(23), "took {waited:?}");
}

/// `ops` replying through the Mattermost REST API of `fake` with a bot token.
fn mattermost_rest(fake: &FakeChat) -> rvbbit_core::config::ChannelConfig {
    let mut c = mattermost(fake);
    c.outbound_url = None;
    c.api_url = Some(fake.mattermost_api());
    c.bot_token = Some("mm-bot-token".into());
    c
}

#[tokio::test]
async fn a_mattermost_rest_reply_is_one_post_in_the_inbound_channel_and_thread_and_a_429_is_retried() {
    let fake = FakeChat::start().await;
    let h = Harness::new(BTreeMap::from([("ops".to_owned(), mattermost_rest(&fake))])).await;
    let mut request = mm_request(TOKEN, "alice", "!help run");
    request.body.extend_from_slice(b"&post_id=p42");
    h.channels.receive("mattermost", "ops", request).unwrap();
    let posted = fake.wait_for(1, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fake.posted().len(), 1, "one reply, one post: {posted:?}");
    let p = &posted[0];
    assert_eq!(p.path, "/api/v4/posts");
    assert_eq!(p.bearer(), Some("mm-bot-token"));
    assert_eq!(p.body["channel_id"], "c1");
    assert_eq!(p.body["root_id"], "p42", "the reply stays in the post's thread");
    assert!(p.text().starts_with("!run CASCADE"), "{p:?}");
    // A 429 with Retry-After is waited out and the post is made again.
    fake.rate_limit_next(1);
    let started = tokio::time::Instant::now();
    h.channels
        .receive("mattermost", "ops", mm_request(TOKEN, "alice", "!agents"))
        .unwrap();
    let posted = fake.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(fake.refused(), 1);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 was honoured"
    );
    assert_eq!(posted[1].path, "/api/v4/posts");
    assert_eq!(posted[1].bearer(), Some("mm-bot-token"));
    assert!(posted[1].text().contains("no agents"), "{posted:?}");
    assert!(posted[1].body.get("root_id").is_none(), "{posted:?}");
}
