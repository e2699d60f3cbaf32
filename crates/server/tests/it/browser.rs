//! The Studio in a real browser: headless Chromium loads a running session's page and its script follows
//! the run live over SSE until it completes (the DOM Chromium dumps at the end shows the finished run,
//! which the page only knows through its script).
//!
//! Needs Chromium: `RVBBIT_CHROMIUM` names the binary (default `chromium` on the PATH; `.ci/run`
//! installs Debian's `chromium` package). Without it the test fails and says how to install it.

use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::Running;

const TWO_SECONDS: &str = r#"
cascade_id: two_seconds
cells:
  - name: first
    tool: linux_shell
    inputs: {command: "sleep 1; echo one"}
  - name: second
    tool: linux_shell
    inputs: {command: "sleep 1; echo two"}
"#;

fn chromium() -> String {
    let bin = std::env::var("RVBBIT_CHROMIUM").unwrap_or_else(|_| "chromium".to_owned());
    let found = Command::new(&bin).arg("--version").output();
    match found {
        Ok(o) if o.status.success() => bin,
        _ => panic!(
            "the Studio browser test needs Chromium: install it (Debian: `apt-get install chromium`) or set \
             RVBBIT_CHROMIUM to its path; `.ci/run` installs it"
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_follows_a_running_session_live_until_it_completes() {
    let bin = chromium();
    let s = Running::start(|c| c).await;
    std::fs::write(s.root().join("two_seconds.yaml"), TWO_SECONDS).unwrap();
    let (status, started) = s
        .post("/api/v1/runs", &json!({"cascade": "two_seconds.yaml"}))
        .await;
    assert_eq!(status, 202, "{started}");
    let id = started["session_id"].as_str().unwrap().to_owned();
    // What the server renders now: a running session with at most its first cell.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let served = s
        .http
        .get(s.url(&format!("/sessions/{id}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(served.contains("id=\"status\">running<"), "{served}");
    assert!(!served.contains("<span class=\"name\">second</span>"));

    let profile = tempfile::TempDir::new().unwrap();
    let url = s.url(&format!("/sessions/{id}"));
    let out = tokio::task::spawn_blocking(move || {
        Command::new(bin)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                &format!("--user-data-dir={}", profile.path().display()),
                "--virtual-time-budget=15000",
                "--dump-dom",
                &url,
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("id=\"status\">completed<"),
        "the script followed the run to its end: {dom}"
    );
    assert!(dom.contains("<span class=\"name\">first</span>"));
    assert!(dom.contains("<span class=\"name\">second</span>"), "{dom}");
    s.shutdown().await;
}
