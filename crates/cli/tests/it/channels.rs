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
        let posted = fake.wait_for(2, std::time::Duration::from_secs(20)).await;
        assert!(posted[0].text().starts_with("started "), "{posted:?}");
        assert!(posted[1].text().contains("hello Ada"), "{posted:?}");
        assert_eq!(
            fake.posted().len(),
            2,
            "the bad token ran nothing (a run replies \"started\", then its output)"
        );
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

#[test]
fn an_allowlist_naming_an_unknown_group_is_a_config_error_naming_the_key() {
    let dir = project("http://127.0.0.1:9/hooks/incoming");
    let path = dir.path().join("rvbbit.toml");
    let config = std::fs::read_to_string(&path).unwrap().replace(
        "allow_users = [\"alice\"]",
        "allow_users = [\"alice\", \"@ghosts\"]\ngroups = { ops = [\"bob\"] }",
    );
    std::fs::write(&path, config).unwrap();
    let out = rvbbit(dir.path())
        .args(["chat-control", "--integration", "ops", "--user", "bob", "!list"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("RVB-K001") && stderr.contains("channels.ops.allow_users"),
        "{stderr}"
    );
    assert!(stderr.contains("`@ghosts`"), "{stderr}");
    assert!(out.stdout.is_empty(), "nothing ran");
}

#[test]
fn a_mattermost_bot_token_is_masked_by_config_show() {
    let dir = project("unused");
    let path = dir.path().join("rvbbit.toml");
    let config = std::fs::read_to_string(&path).unwrap().replace(
        "outbound_url = \"unused\"",
        "api_url = \"https://mm.example.com\"\nbot_token = \"mm-bot-very-secret\"",
    );
    std::fs::write(&path, config).unwrap();
    let out = rvbbit(dir.path()).args(["config", "show"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stdout.contains("channels.ops.bot_token"), "{stdout}");
    assert!(stdout.contains("https://mm.example.com"), "{stdout}");
    assert!(
        !stdout.contains("mm-bot-very-secret") && !stderr.contains("mm-bot-very-secret"),
        "{stdout}"
    );
}

const AGENT_CASCADE: &str = "cascade_id: helper_agent\ncells:\n  - name: reply\n    instructions: \"Answer: {{ input.messages | join(' | ') }}\"\n";

/// A reply of `sentences` sentences, a line break after every tenth.
fn long_reply(sentences: usize) -> String {
    (0..sentences)
        .map(|i| {
            let end = if i % 10 == 9 { "\n" } else { " " };
            format!("Sentence {i} of the forecast says it will be sunny and mild all afternoon.{end}")
        })
        .collect()
}

#[test]
fn a_signed_slack_event_on_rvbbit_serve_gets_an_agent_reply_split_at_4000_and_a_bad_signature_is_401() {
    use rvbbit_testkit::chat::{slack_headers, slack_message_event, unix_now};
    use rvbbit_testkit::{Reply, Script, TestServer};

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let reply = long_reply(130);
    let llm = rt.block_on(TestServer::start(Script::sequence([Reply::text(reply.clone())])));
    let fake = rt.block_on(FakeChat::start());
    let dir = TempDir::new().unwrap();
    let root = dir.path().join("cascades");
    std::fs::create_dir_all(root.join("agents")).unwrap();
    write(&root, "helper_agent.yaml", AGENT_CASCADE);
    write(
        &root.join("agents"),
        "helper.yaml",
        "cascade: ../helper_agent.yaml\n",
    );
    let config = format!(
        "[channels.team]\nkind = \"slack\"\nsigning_secret = \"shh\"\ntoken = \"xoxb-bot\"\noutbound_url = \"{}\"\nagent = \"helper\"\n",
        fake.slack_api()
    );
    write(dir.path(), "rvbbit.toml", &config);
    let mut cmd = rvbbit(dir.path());
    cmd.env("RVBBIT_PROVIDER_BASE_URL", llm.base_url())
        .env("OPENROUTER_API_KEY", "test-key")
        .env("RVBBIT_DEFAULT_MODEL", "test/model")
        .args(["serve", "--port", "0", "--root", "cascades"]);
    let (mut child, port, _) = crate::spawn_server(&mut cmd, "http://");
    let hook = format!("http://127.0.0.1:{port}/hooks/slack/team");
    rt.block_on(async {
        let http = reqwest::Client::new();
        let send = |secret: &str, body: String| {
            let mut request = http.post(hook.clone()).header("content-type", "application/json");
            for (name, value) in slack_headers(secret, unix_now(), &body) {
                request = request.header(name, value);
            }
            request.body(body).send()
        };
        let body = slack_message_event("U1", "C9", "Weather tomorrow?");
        let bad = send("wrong-secret", body.clone()).await.unwrap();
        assert_eq!(bad.status().as_u16(), 401);
        // The server answers 413 without reading the body and drops the connection: `Connection: close`
        // keeps the client from reusing it for the next request (which then failed as an incomplete message).
        let big = http
            .post(hook.clone())
            .header("connection", "close")
            .body(vec![b'x'; 300 * 1024])
            .send()
            .await
            .unwrap();
        assert_eq!(big.status().as_u16(), 413);
        let challenge = send("shh", r#"{"type":"url_verification","challenge":"c-42"}"#.into())
            .await
            .unwrap();
        let answer: Value = challenge.json().await.unwrap();
        assert_eq!(answer["challenge"], "c-42");
        assert_eq!(llm.requests(), 0, "nothing ran for the refused requests");
        let ok = send("shh", body).await.unwrap();
        assert_eq!(ok.status().as_u16(), 200);
        let posted = fake.wait_for(3, std::time::Duration::from_secs(30)).await;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let posted_now = fake.posted();
        assert_eq!(posted_now.len(), posted.len(), "one reply, nothing more");
        let texts: Vec<&str> = posted_now.iter().map(|p| p.text()).collect();
        assert!(
            texts
                .iter()
                .all(|t| t.chars().count() <= 4000 && t.ends_with('.'))
        );
        let squeeze = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
        assert_eq!(squeeze(&texts.concat()), squeeze(&reply));
        assert!(
            posted_now
                .iter()
                .all(|p| p.body["channel"] == "C9" && p.header("authorization") == Some("Bearer xoxb-bot"))
        );
        assert_eq!(llm.requests(), 1);
    });
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_tenant_table_with_a_bad_name_is_a_config_error_naming_the_key() {
    let dir = project("http://127.0.0.1:9/hooks/incoming");
    let path = dir.path().join("rvbbit.toml");
    let mut config = std::fs::read_to_string(&path).unwrap();
    config.push_str(
        "\n[tenants.\"acme corp\"]\nlink_identities = true\n\n[tenants.default]\nlink_identities = true\n",
    );
    std::fs::write(&path, config).unwrap();
    let out = rvbbit(dir.path())
        .args(["chat-control", "--integration", "ops", "--user", "alice", "!list"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("RVB-K001") && stderr.contains("tenants.acme corp"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("tenants.default"),
        "a good tenant is no problem: {stderr}"
    );
    assert!(out.stdout.is_empty(), "nothing ran");
}
