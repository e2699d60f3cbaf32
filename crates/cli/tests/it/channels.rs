//! Chat integrations through the binary: `POST /hooks/mattermost/NAME` on `rvbbit serve` (a bad token
//! is 401, an unknown integration 404, a command's reply reaches the fake Mattermost), and
//! `rvbbit chat-control` running a command locally.

use rvbbit_testkit::chat::{FakeChat, mattermost_form};
use serde_json::Value;
use tempfile::TempDir;

use crate::run_command::write;
use crate::rvbbit;

const HELLO: &str = "cascade_id: hello_chat\ncells:\n  - name: greet\n    tool: set_state\n    inputs: {key: greeting, value: \"hello {{ input.name }}\"}\n";

fn project(outbound: &str) -> TempDir {
    let dir = TempDir::new().unwrap();
    std::fs::create_dir(dir.path().join("cascades")).unwrap();
    write(&dir.path().join("cascades"), "hello.yaml", HELLO);
    let config = format!(
        "roots = [\"cascades\"]\n\n[channels.ops]\nkind = \"mattermost\"\ntoken = \"mm-token\"\noutbound_url = \"{outbound}\"\ncontrol = true\nallow_users = [\"alice\"]\n"
    );
    write(dir.path(), "rvbbit.toml", &config);
    dir
}

#[test]
fn a_mattermost_hook_on_rvbbit_serve_runs_a_command_and_refuses_a_bad_token() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let fake = rt.block_on(FakeChat::start());
    let dir = project(&fake.mattermost_hook());
    let (mut child, port, _) = crate::spawn_server(
        rvbbit(dir.path()).args(["serve", "--port", "0", "--root", "cascades"]),
        "http://",
    );
    let hook = format!("http://127.0.0.1:{port}/hooks/mattermost/ops");
    rt.block_on(async {
        let http = reqwest::Client::new();
        let post = |url: String, body: String| {
            http.post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
        };
        let bad = post(
            hook.clone(),
            mattermost_form("guess", "u1", "alice", "!run hello"),
        )
        .await
        .unwrap();
        assert_eq!(bad.status().as_u16(), 401);
        let body: Value = bad.json().await.unwrap();
        assert_eq!(body["code"], "RVB-K002", "{body}");
        assert!(!body.to_string().contains("mm-token"));
        let unknown = post(
            format!("http://127.0.0.1:{port}/hooks/slack/ops"),
            mattermost_form("mm-token", "u1", "alice", "!help"),
        )
        .await
        .unwrap();
        assert_eq!(unknown.status().as_u16(), 404, "a kind mismatch is unknown");
        let ok = post(
            hook.clone(),
            mattermost_form("mm-token", "u1", "alice", r#"!run hello {"name": "Ada"}"#),
        )
        .await
        .unwrap();
        assert_eq!(ok.status().as_u16(), 200);
        let posted = fake.wait_for(1, std::time::Duration::from_secs(20)).await;
        assert!(posted[0].text().contains("hello Ada"), "{posted:?}");
        assert_eq!(fake.posted().len(), 1, "the bad token ran nothing");
    });
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn chat_control_runs_one_command_locally_and_applies_an_integrations_allowlist() {
    let dir = project("http://127.0.0.1:9/hooks/incoming");
    let out = rvbbit(dir.path())
        .args(["chat-control", "--user", "alice", r#"!run hello {"name": "Ada"}"#])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(r#""value":"hello Ada""#), "{stdout}");
    let denied = rvbbit(dir.path())
        .args([
            "chat-control",
            "--integration",
            "ops",
            "--user",
            "mallory",
            "!list",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&denied.stdout);
    assert!(
        stdout.starts_with("RVB-K006 `mallory` may not use `!list`"),
        "{stdout}"
    );
    let unknown = rvbbit(dir.path())
        .args(["chat-control", "--integration", "nope", "--user", "a", "!help"])
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(6));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("RVB-K003"));
}
