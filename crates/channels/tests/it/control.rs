//! Chat control's safeguards, each shown on the real code path with a real store and engine.

use std::collections::BTreeMap;

use rvbbit_core::EventKind;
use rvbbit_testkit::chat::FakeChat;

use crate::support::{Harness, mattermost};

async fn harness(tweak: impl FnOnce(&mut rvbbit_core::config::ChannelConfig)) -> (Harness, FakeChat) {
    let fake = FakeChat::start().await;
    let mut ops = mattermost(&fake);
    tweak(&mut ops);
    (
        Harness::new(BTreeMap::from([("ops".to_owned(), ops)])).await,
        fake,
    )
}

#[tokio::test]
async fn run_replies_with_the_cascade_output_and_is_audited_as_a_success() {
    let (h, _fake) = harness(|_| {}).await;
    let reply = h.say("ops", "alice", r#"!run hello {"name": "Ada"}"#).await;
    assert!(
        reply.contains("`hello.yaml`") && reply.contains("completed"),
        "{reply}"
    );
    assert!(
        reply.contains(r#"{"key":"greeting","value":"hello Ada"}"#),
        "{reply}"
    );
    let slash = h.say("ops", "alice", r#"/rvbbit run hello {"name": "Bo"}"#).await;
    assert!(slash.contains("hello Bo"), "{slash}");
    assert_eq!(h.audit(EventKind::CommandAttempt).await.len(), 2);
    let ok = h.audit(EventKind::CommandSuccess).await;
    assert_eq!(ok.len(), 2);
    assert_eq!(ok[0].event.metadata["command"], "run");
    assert_eq!(ok[0].event.metadata["integration"], "ops");
    assert_eq!(ok[0].event.metadata["user"], "alice");
}

#[tokio::test]
async fn a_user_outside_the_allowlist_is_denied_and_a_command_denied_event_is_recorded() {
    let (h, _fake) = harness(|c| {
        c.command_users.insert("list".into(), vec!["bob".into()]);
    })
    .await;
    let reply = h.say("ops", "mallory", r#"!run hello {"name": "Ada"}"#).await;
    assert!(
        reply.starts_with("RVB-K006 `mallory` may not use `!run`"),
        "{reply}"
    );
    // Per-command lists replace `allow_users`: bob may list, alice may not.
    assert!(!h.say("ops", "bob", "!list").await.contains("RVB-K006"));
    assert!(h.say("ops", "alice", "!list").await.starts_with("RVB-K006"));
    assert!(
        !h.say("ops", "mallory", "!help").await.contains("RVB-K006"),
        "help is open"
    );
    let denied = h.audit(EventKind::CommandDenied).await;
    assert_eq!(denied.len(), 2, "{denied:?}");
    let m = &denied[0].event.metadata;
    assert_eq!(
        (m["user"].as_str(), m["command"].as_str()),
        (Some("mallory"), Some("run"))
    );
    assert!(m["reason"].as_str().unwrap().contains("may not use"), "{m}");
    let runs = h.audit(EventKind::CascadeStart).await;
    assert!(runs.is_empty(), "nothing ran: {runs:?}");
}

#[tokio::test]
async fn the_31st_command_in_a_minute_gets_a_rate_limit_reply() {
    let (h, _fake) = harness(|c| {
        c.rate_per_minute = 30;
        c.burst = 30;
    })
    .await;
    for i in 0..30 {
        let reply = h.say("ops", "alice", "!help").await;
        assert!(!reply.contains("rate limit"), "command {}: {reply}", i + 1);
    }
    let reply = h.say("ops", "alice", "!help").await;
    assert!(reply.starts_with("RVB-K007 rate limit"), "{reply}");
    assert!(
        reply.contains("try again in 2 s"),
        "30 a minute refills one every 2 s: {reply}"
    );
    // Another user has a bucket of their own.
    assert!(!h.say("ops", "bob", "!help").await.contains("rate limit"));
    let denied = h.audit(EventKind::CommandDenied).await;
    assert_eq!(denied.len(), 1);
}

#[tokio::test]
async fn traversal_metacharacters_and_a_1_mb_input_are_refused_with_clear_replies() {
    let (h, _fake) = harness(|_| {}).await;
    let cases = [
        ("!run ../../etc/passwd", "cannot contain `..`"),
        ("!run ../secret", "cannot contain `..`"),
        ("!run /etc/passwd", "cannot start with `/`"),
        ("!run hello;rm", "`;` is not allowed in a cascade name"),
        ("!run $(reboot)", "`$` is not allowed"),
        ("!run hello [1]", "must be a JSON object"),
        ("!run nothing_here", "no cascade `nothing_here`"),
    ];
    for (text, why) in cases {
        let reply = h.say("ops", "alice", text).await;
        assert!(
            reply.starts_with("RVB-K005") && reply.contains(why),
            "{text}: {reply}"
        );
    }
    let big = format!(r#"!run hello {{"name": "{}"}}"#, "x".repeat(1024 * 1024));
    let reply = h.say("ops", "alice", &big).await;
    assert!(reply.contains("at most 65536 (64 KiB)"), "{reply}");
    let ctl = h.say("ops", "alice", "!run hello\u{1b}[2J").await;
    assert!(ctl.contains("control character (U+001B)"), "{ctl}");
    assert!(h.audit(EventKind::CascadeStart).await.is_empty(), "nothing ran");
    assert_eq!(h.audit(EventKind::CommandDenied).await.len(), cases.len() + 2);
}

#[tokio::test]
async fn five_failing_runs_open_the_breaker_and_the_sixth_is_paused_without_running() {
    let (h, _fake) = harness(|_| {}).await;
    for i in 0..5 {
        let reply = h.say("ops", "alice", "!run broken").await;
        assert!(reply.contains("failed: RVB-T"), "run {}: {reply}", i + 1);
    }
    let sixth = h.say("ops", "alice", "!run broken").await;
    assert!(sixth.starts_with("RVB-K008 paused"), "{sixth}");
    assert!(
        sixth.contains("try again in 60 s") || sixth.contains("try again in 59 s"),
        "{sixth}"
    );
    let healthy = h.say("ops", "alice", r#"!run hello {"name": "Ada"}"#).await;
    assert!(
        healthy.starts_with("RVB-K008"),
        "the breaker is per integration, for every run: {healthy}"
    );
    assert_eq!(
        h.audit(EventKind::CascadeStart).await.len(),
        5,
        "the sixth never started"
    );
    assert_eq!(h.audit(EventKind::CommandFailed).await.len(), 5);
    // Inspection commands do not execute anything and still answer.
    assert!(h.say("ops", "alice", "!list hello").await.contains("hello.yaml"));
}

#[tokio::test]
async fn status_and_cancel_answer_for_sessions() {
    let (h, _fake) = harness(|_| {}).await;
    let reply = h.say("ops", "alice", r#"!run hello {"name": "Ada"}"#).await;
    let id = reply
        .split("(session ")
        .nth(1)
        .unwrap()
        .split(')')
        .next()
        .unwrap()
        .to_owned();
    h.writer.handle().flush().await.unwrap();
    let status = h.say("ops", "alice", &format!("!status {id}")).await;
    assert!(status.contains("completed (hello_chat)"), "{status}");
    let cancel = h.say("ops", "alice", &format!("!cancel {id}")).await;
    assert!(cancel.contains("no run"), "{cancel}");
    let bad = h.say("ops", "alice", "!status ../x").await;
    assert!(bad.contains("is not a session id"), "{bad}");
    assert!(h.say("ops", "alice", "!agents").await.contains("no agents"));
}

#[tokio::test]
async fn a_member_of_an_allowed_group_may_run_and_a_non_member_is_denied_and_audited() {
    let (h, _fake) = harness(|c| {
        c.groups.insert("ops".into(), vec!["bob".into(), "carol".into()]);
        c.allow_users = vec!["alice".into()];
        c.command_users.insert("run".into(), vec!["@ops".into()]);
    })
    .await;
    let ok = h.say("ops", "bob", r#"!run hello {"name": "Bo"}"#).await;
    assert!(ok.contains("completed") && ok.contains("hello Bo"), "{ok}");
    // alice is in `allow_users` but `run` has its own list, which names only the group.
    let denied = h.say("ops", "alice", r#"!run hello {"name": "Al"}"#).await;
    assert!(
        denied.starts_with("RVB-K006 `alice` may not use `!run`"),
        "{denied}"
    );
    assert!(!h.say("ops", "alice", "!list").await.contains("RVB-K006"));
    let audited = h.audit(EventKind::CommandDenied).await;
    assert_eq!(audited.len(), 1, "{audited:?}");
    let m = &audited[0].event.metadata;
    assert_eq!(
        (m["user"].as_str(), m["command"].as_str()),
        (Some("alice"), Some("run"))
    );
    assert!(
        m["reason"].as_str().unwrap().contains("may not use `!run`"),
        "{m}"
    );
    assert_eq!(
        h.audit(EventKind::CascadeStart).await.len(),
        1,
        "only bob's run started"
    );
}

/// A first cell that ends at once, then one that runs about 2.5 s.
const SLOW: &str = "cascade_id: slow_chat\ncells:\n  - name: prepare\n    tool: set_state\n    inputs: {key: phase, value: ready}\n  - name: wait_a_bit\n    tool: linux_shell\n    inputs: {command: \"sleep 2.5 && echo slept\"}\n";

#[tokio::test]
async fn a_run_from_chat_replies_started_then_progress_naming_the_running_cell_then_the_output() {
    let (h, fake) = harness(|c| c.status_interval_seconds = 1).await;
    std::fs::write(h._dir.path().join("cascades/slow.yaml"), SLOW).unwrap();
    h.channels
        .receive(
            "mattermost",
            "ops",
            crate::support::mm_request(crate::support::TOKEN, "alice", "!run slow"),
        )
        .unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let posted = loop {
        let posted = fake.posted();
        if posted.iter().any(|p| p.text().contains("completed")) {
            break posted;
        }
        assert!(tokio::time::Instant::now() < deadline, "{posted:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let texts: Vec<&str> = posted.iter().map(|p| p.text()).collect();
    assert!(texts[0].starts_with("started "), "{texts:?}");
    let session = texts[0].trim_start_matches("started ").split(' ').next().unwrap();
    let last = texts.last().unwrap();
    assert!(
        last.contains(&format!("(session {session}) completed")) && last.contains("slept"),
        "the output comes last: {texts:?}"
    );
    let progress = &texts[1..texts.len() - 1];
    assert!(!progress.is_empty(), "{texts:?}");
    assert!(progress.len() <= 3, "one a second over about 2.5 s: {texts:?}");
    assert!(
        progress
            .iter()
            .any(|t| t.contains(&format!("session {session}: running cell `wait_a_bit`"))),
        "{texts:?}"
    );
    assert!(posted.iter().all(|p| p.path == "/hooks/incoming"));
    // With the default interval (30 s) a short run gets only "started" and the output.
    let (h, fake) = harness(|_| {}).await;
    h.channels
        .receive(
            "mattermost",
            "ops",
            crate::support::mm_request(crate::support::TOKEN, "alice", r#"!run hello {"name": "Ada"}"#),
        )
        .unwrap();
    let posted = fake.wait_for(2, std::time::Duration::from_secs(20)).await;
    assert!(posted[0].text().starts_with("started "), "{posted:?}");
    assert!(posted[1].text().contains("hello Ada"), "{posted:?}");
}
