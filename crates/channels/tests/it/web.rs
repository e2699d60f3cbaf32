//! The web chat's message path without HTTP: a visitor's message reaches the agent (the testkit's
//! scripted model) in the visitor's own conversation, the reply arrives on the visitor's stream, a
//! stream opened later gets what came while none was open, commands need the allowlist, and the rate
//! limit counts per visitor.

use std::collections::BTreeMap;
use std::time::Duration;

use rvbbit_channels::Request;
use rvbbit_channels::web::{Role, Subscription, WebEvent};
use rvbbit_core::config::{ChannelConfig, ChannelKind};
use rvbbit_testkit::{Reply, Script, TestServer};

use crate::support::Harness;

const VISITOR: &str = "visitor_0123456789";

fn web() -> ChannelConfig {
    let mut c = ChannelConfig::new(ChannelKind::Web);
    c.agent = Some("helper".into());
    c
}

fn message(visitor: &str, text: &str) -> Request {
    Request {
        headers: [("content-type".to_owned(), "application/json".to_owned())].into(),
        body: serde_json::json!({"visitor": visitor, "text": text})
            .to_string()
            .into_bytes(),
    }
}

/// The stream's entries until one from the agent, within 20 s.
async fn until_reply(s: &mut Subscription) -> Vec<(u64, Role, String)> {
    let mut seen = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(e) = s.next().await {
            if let WebEvent::Entry(e) = e {
                seen.push((e.id, e.role, e.text.clone()));
                if e.role == Role::Agent {
                    return;
                }
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no reply on the stream; seen {seen:?}"));
    seen
}

#[tokio::test]
async fn a_visitor_gets_the_agents_reply_on_the_stream_and_a_later_stream_gets_what_came_while_away() {
    let llm = TestServer::start(Script::sequence([
        Reply::text("Hello, visitor."),
        Reply::text("Still here."),
    ]))
    .await;
    let h = Harness::with_agent(BTreeMap::from([("site".to_owned(), web())]), &llm.base_url()).await;
    let mut stream = h.channels.web_subscribe("site", VISITOR, 0).unwrap();
    assert_eq!(
        h.channels
            .web_message("site", message(VISITOR, "Hi there"))
            .unwrap(),
        1
    );
    let seen = until_reply(&mut stream).await;
    assert_eq!(
        seen,
        [
            (1, Role::Visitor, "Hi there".to_owned()),
            (2, Role::Agent, "Hello, visitor.".to_owned())
        ]
    );
    drop(stream);
    assert_eq!(h.channels.web_streams("site"), 0);
    assert_eq!(
        h.channels
            .web_message("site", message(VISITOR, "Are you there?"))
            .unwrap(),
        3
    );
    tokio::time::timeout(Duration::from_secs(20), async {
        while llm.requests() < 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    // The reply is produced with no stream open; the page reconnects with the last id it saw.
    let mut again = h.channels.web_subscribe("site", VISITOR, 2).unwrap();
    let seen = until_reply(&mut again).await;
    assert_eq!(
        seen,
        [
            (3, Role::Visitor, "Are you there?".to_owned()),
            (4, Role::Agent, "Still here.".to_owned())
        ]
    );
    // Both turns went to the one conversation of this visitor on the web.
    let sent = llm.received();
    assert!(sent[1].body.to_string().contains("Are you there?"));
    let agents = h.agents.as_ref().unwrap();
    assert_eq!(agents.live_conversations(), 1);
}

#[tokio::test]
async fn commands_need_control_and_the_allowlist_and_the_rate_counts_per_visitor() {
    let llm = TestServer::start(Script::echo()).await;
    let mut c = web();
    c.control = true;
    c.rate_per_minute = 1;
    c.burst = 2;
    let h = Harness::with_agent(BTreeMap::from([("site".to_owned(), c)]), &llm.base_url()).await;
    let mut stream = h.channels.web_subscribe("site", VISITOR, 0).unwrap();
    h.channels.web_message("site", message(VISITOR, "!list")).unwrap();
    let seen = until_reply(&mut stream).await;
    assert!(seen[1].2.starts_with("RVB-K006"), "{seen:?}");
    h.channels.web_message("site", message(VISITOR, "hello")).unwrap();
    let e = h
        .channels
        .web_message("site", message(VISITOR, "hello again"))
        .unwrap_err();
    assert_eq!((e.status(), e.code().code), (429, "RVB-K007"));
    assert!(e.to_string().contains("rate_per_minute"), "{e}");
    h.channels
        .web_message("site", message("another_visitor_42", "hi"))
        .unwrap();
    let e = h
        .channels
        .web_message("site", message("bad id!", "hi"))
        .unwrap_err();
    assert_eq!(e.status(), 400);
    let e = h.channels.web_subscribe("nope", VISITOR, 0).unwrap_err();
    assert_eq!((e.status(), e.code().code), (404, "RVB-K003"));
    let mut big = message(VISITOR, &"x".repeat(9000));
    big.headers.clear();
    let e = h.channels.web_message("site", big).unwrap_err();
    assert_eq!((e.status(), e.code().code), (413, "RVB-K010"));
    assert_eq!(
        llm.requests(),
        0,
        "no command and no refused message reached the model yet"
    );
}
