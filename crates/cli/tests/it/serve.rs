//! `rvbbit serve` and `rvbbit keys` as processes: the unsafe-bind refusal, keys end to end, a run over
//! HTTP, and a graceful SIGTERM.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tempfile::TempDir;

use crate::run_command::write;
use crate::rvbbit;

const HELLO: &str = "cascade_id: hello_http\ncells:\n  - name: greet\n    tool: linux_shell\n    inputs: {command: \"echo hi {{ input.name }}\"}\n";

#[test]
fn serving_beyond_loopback_without_a_key_is_refused() {
    let dir = TempDir::new().unwrap();
    let out = rvbbit(dir.path())
        .args(["serve", "--host", "0.0.0.0", "--port", "0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{stderr}");
    assert!(stderr.contains("RVB-C008"), "{stderr}");
    assert!(stderr.contains("rvbbit keys create"), "{stderr}");
}

#[test]
fn keys_guard_a_network_server_that_runs_cascades_and_stops_gracefully() {
    let dir = TempDir::new().unwrap();
    std::fs::create_dir(dir.path().join("cascades")).unwrap();
    write(&dir.path().join("cascades"), "hello.yaml", HELLO);
    let created = rvbbit(dir.path())
        .args(["--output", "json", "keys", "create", "--name", "ci"])
        .output()
        .unwrap();
    assert_eq!(
        created.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let key: Value = serde_json::from_slice(&created.stdout).unwrap();
    let secret = key["secret"].as_str().unwrap().to_owned();
    let key_id = key["key_id"].as_str().unwrap().to_owned();

    let (mut child, port, first) = crate::spawn_server(
        rvbbit(dir.path()).args(["serve", "--host", "0.0.0.0", "--port", "0", "--root", "cascades"]),
        "http://",
    );
    assert!(first.contains("API keys required"), "{first}");
    let base = format!("http://127.0.0.1:{port}");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let denied = http.get(format!("{base}/api/v1/sessions")).send().await.unwrap();
        assert_eq!(denied.status().as_u16(), 401);
        assert_eq!(
            http.get(format!("{base}/healthz"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16(),
            200
        );
        let run: Value = http
            .post(format!("{base}/api/v1/runs?wait=true"))
            .bearer_auth(&secret)
            .json(&json!({"cascade": "hello.yaml", "input": {"name": "Ada"}}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(run["status"], "completed", "{run}");
        assert_eq!(run["output"]["stdout"], "hi Ada\n");
        assert!(run["caller_id"].as_str().unwrap().starts_with("http-"));
    });

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    let code = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.code();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the server did not stop"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(code, Some(0), "a graceful stop exits 0");

    // The run is in the store the CLI reads.
    let sessions = rvbbit(dir.path())
        .args(["--output", "json", "sessions", "list"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&sessions.stdout);
    assert!(text.contains("hello_http"), "{text}");

    let revoked = rvbbit(dir.path())
        .args(["keys", "revoke", &key_id])
        .output()
        .unwrap();
    assert_eq!(revoked.status.code(), Some(0));
    let list = rvbbit(dir.path()).args(["keys", "list"]).output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(list.contains(&key_id) && list.contains("revoked"), "{list}");
    assert!(!list.contains(&secret[4..]), "secrets are never listed");
    let missing = rvbbit(dir.path())
        .args(["keys", "revoke", "key_nope"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("rvbbit keys list"));
}
