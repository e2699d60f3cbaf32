//! The Studio end to end in a real browser: `rvbbit serve` as a process over a store seeded by
//! `rvbbit run`, LLM cells answered by the testkit server, and `e2e/studio.mjs` (Playwright's
//! `playwright-core` driving Chromium headless) clicking through the sessions list, a session's LLM
//! messages, the SQL console, the run form with a live run, the cost explorer (cost, tokens and latency
//! over time), a screen answered with its route buttons, the waterfall, a re-run compared with its
//! original, the lists' totals and invalid-cascade marks, and every page at phone width. Screenshots
//! land in `<target>/tmp/studio-e2e/` (the path is printed); with `RVBBIT_SCREENSHOTS_DIR=docs/images`
//! (relative to the workspace root) the documentation's screenshots are written there too.
//!
//! Needs Node.js with `npm ci --prefix e2e` done (`RVBBIT_E2E_DIR` overrides the folder) and Chromium
//! (`RVBBIT_CHROMIUM`, default `chromium`); `scripts/test-deps.sh` and `.ci/run` install both. Without
//! them the test fails and says how to install them.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use rvbbit_testkit::{Options, Reply, Script, TestServer};
use tempfile::TempDir;

use crate::run_command::write;
use crate::rvbbit;

const HELLO: &str = r#"
cascade_id: hello_llm
inputs_schema:
  name: who to greet
cells:
  - name: greet
    instructions: "Write a one-line greeting for {{ input.name }}."
"#;

/// A screen with a route button per way on (issue 8).
const SCREEN: &str = r#"
cascade_id: review_screen
description: A draft waits for a person's go-ahead.
cells:
  - name: draft
    tool: set_state
    inputs: {key: summary, value: "A short draft of the announcement"}
  - name: approve
    htmx: |
      <h3>Review</h3><p>{{ state.summary }}</p>
      {{ route_button("Ship it", "publish") }} {{ route_button("Redo", "draft") }}
    handoffs: [publish, draft]
  - name: publish
    tool: set_state
    inputs: {key: shipped, value: "yes"}
"#;

/// A cascade that does not validate (a handoff to a cell that does not exist).
const BAD: &str = "cascade_id: broken\ncells:\n  - name: a\n    tool: linux_shell\n    inputs: {command: echo}\n    handoffs: [nowhere]\n";

/// A shell step that takes a moment, then an LLM cell: long enough to be watched live.
const SLOW: &str = r#"
cascade_id: slow_llm
inputs_schema:
  name: who to greet
cells:
  - name: warm_up
    tool: linux_shell
    inputs: {command: "sleep 1.5; echo ready"}
  - name: greet
    instructions: "Write a one-line greeting for {{ input.name }}."
"#;

fn e2e_dir() -> PathBuf {
    std::env::var_os("RVBBIT_E2E_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../e2e"),
        PathBuf::from,
    )
}

fn chromium() -> String {
    let bin = std::env::var("RVBBIT_CHROMIUM").unwrap_or_else(|_| "chromium".to_owned());
    match Command::new(&bin).arg("--version").output() {
        Ok(o) if o.status.success() => bin,
        _ => panic!(
            "the Studio browser test needs Chromium: `apt-get install chromium` (Debian) or set \
             RVBBIT_CHROMIUM; `scripts/test-deps.sh` installs it"
        ),
    }
}

fn with_provider<'a>(cmd: &'a mut Command, base_url: &str) -> &'a mut Command {
    cmd.env("RVBBIT_PROVIDER_BASE_URL", base_url)
        .env("OPENROUTER_API_KEY", "test-key")
        .env("RVBBIT_DEFAULT_MODEL", "test/model")
        .args(["--set", "provider.max_retries=0"])
}

#[test]
fn the_studio_works_in_a_real_browser_on_a_laptop_and_a_phone() {
    let chromium = chromium();
    let e2e = e2e_dir();
    assert!(
        e2e.join("node_modules/playwright-core").is_dir(),
        "Playwright is not installed in {}: run `npm ci --prefix e2e` (needs Node.js >= 20), or \
         `scripts/test-deps.sh`",
        e2e.display()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // Every call answers with a greeting naming whoever the prompt names.
    let llm = rt.block_on(TestServer::start_with(
        Options::new(Script::rule(|body| {
            let prompt = body["messages"]
                .as_array()
                .and_then(|m| m.last())
                .and_then(|m| m["content"].as_str())
                .unwrap_or_default()
                .to_owned();
            let name = prompt
                .trim_end_matches('.')
                .rsplit(' ')
                .next()
                .unwrap_or("you")
                .to_owned();
            Reply::text(format!("Ahoy, {name}! Fair winds.")).usage(120, 12)
        }))
        .latency(Duration::from_millis(300)),
    ));

    let dir = TempDir::new().unwrap();
    let cascades = dir.path().join("cascades");
    std::fs::create_dir(&cascades).unwrap();
    write(&cascades, "hello_llm.yaml", HELLO);
    write(&cascades, "slow_llm.yaml", SLOW);
    write(&cascades, "review_screen.yaml", SCREEN);
    write(&cascades, "broken.yaml", BAD);

    // Seed the store with one finished LLM session.
    let seeded = with_provider(&mut rvbbit(dir.path()), &llm.base_url())
        .args([
            "--output",
            "json",
            "run",
            "cascades/hello_llm.yaml",
            "--input",
            r#"{"name": "Ada"}"#,
        ])
        .output()
        .unwrap();
    assert_eq!(
        seeded.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&seeded.stderr)
    );
    let outcome: serde_json::Value = serde_json::from_slice(&seeded.stdout).unwrap();
    let session = outcome["session_id"].as_str().unwrap().to_owned();

    let mut server = with_provider(&mut rvbbit(dir.path()), &llm.base_url())
        .args(["serve", "--port", "0", "--root", "cascades"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stderr.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let url = first
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .map(|addr| format!("http://{addr}"))
        .unwrap_or_else(|| panic!("no address in `{first}`"));
    // Keep draining the server's log so it never blocks on a full pipe.
    let log = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());

    let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR")).join("studio-e2e");
    // The artifacts of an earlier run may not exist.
    let _ = std::fs::remove_dir_all(&artifacts);
    let mut node = Command::new("node");
    if let Some(dir) = std::env::var_os("RVBBIT_SCREENSHOTS_DIR") {
        // Relative to the workspace root, as `RVBBIT_SCREENSHOTS_DIR=docs/images` reads.
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(dir);
        node.env("SCREENSHOTS", dir);
    }
    let out = node
        .arg(e2e.join("studio.mjs"))
        .env("STUDIO_URL", &url)
        .env("SEEDED_SESSION", &session)
        .env("SEEDED_PROMPT", "Write a one-line greeting for Ada.")
        .env("SEEDED_REPLY", "Ahoy, Ada! Fair winds.")
        .env("RVBBIT_CHROMIUM", &chromium)
        .env("ARTIFACTS", &artifacts)
        .output()
        .unwrap_or_else(|e| panic!("cannot start `node` ({e}): install Node.js >= 20"));

    // Stop the server gracefully before judging, so a failure still leaves a clean machine.
    let pid = server.id().to_string();
    // The server may already have exited; `wait` below judges how it ended.
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let status = server.wait().unwrap();
    let log = log.join().unwrap_or_default();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "the browser test failed:\n{stdout}\n{stderr}\nserver log:\n{}",
        log.join("\n")
    );
    assert_eq!(status.code(), Some(0), "the server did not stop cleanly");
    // Every check of the script ran, and every screenshot exists.
    let passed = stdout.lines().filter(|l| l.starts_with("ok - ")).count();
    assert_eq!(passed, 34, "{stdout}");
    for name in [
        "1-sessions",
        "2-session",
        "3-sql",
        "4-sql-error",
        "5-run-live",
        "6-run-complete",
        "7-costs",
        "phone-sessions",
        "phone-session",
        "phone-sql",
        "phone-costs",
        "phone-cascades",
        "phone-compare",
        "studio-costs",
        "studio-approve",
        "studio-waterfall",
        "studio-compare",
        "studio-sessions",
        "studio-cascades",
    ] {
        let png = artifacts.join(format!("{name}.png"));
        let bytes = std::fs::read(&png).unwrap_or_else(|e| panic!("{}: {e}", png.display()));
        assert!(bytes.starts_with(b"\x89PNG"), "{} is not a PNG", png.display());
    }
    println!("screenshots: {}", artifacts.display());
    // The model was called by the seed, the run from the form and the re-run, and nothing else.
    assert_eq!(llm.requests(), 3);
    rt.block_on(llm.shutdown());
}
