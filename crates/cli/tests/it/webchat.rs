//! The web chat (`kind = "web"`, docs/channels.md) on the real `rvbbit serve` binary over loopback
//! HTTP, its agent answered by the testkit's scripted model: a message in → the reply on the visitor's
//! Server-Sent Events stream; a reply produced while no stream is open is delivered when the page
//! reconnects; the limits (message size, visitor id, control characters, streams at once) refuse with
//! coded errors and the server keeps serving. Then the page itself in headless Chromium
//! (`e2e/webchat.mjs`, Playwright's `playwright-core`, as `studio_e2e.rs` does) at laptop and phone
//! widths, with screenshots (with `RVBBIT_SCREENSHOTS_DIR=docs/img` they are written there too), and
//! framed by a page of an allowed origin (and refused by another).

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use rvbbit_testkit::{Options, Reply, Script, TestServer};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::run_command::write;
use crate::rvbbit;

const AGENT_CASCADE: &str = "cascade_id: helper_agent\ncells:\n  - name: reply\n    instructions: \"Answer: {{ input.messages | join(' | ') }}\"\n";
const VISITOR: &str = "visitor_0123456789";

/// A served directory with agent `helper` and `[channels.site]` (web) plus `extra` settings.
fn project(extra: &str) -> TempDir {
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
        "[channels.site]\nkind = \"web\"\nagent = \"helper\"\ntitle = \"Ask the helper\"\n{extra}\n\
         [channels.hook]\nkind = \"webhook\"\nsecret = \"s3cret\"\noutbound_url = \"http://127.0.0.1:9/\"\nagent = \"helper\"\n"
    );
    write(dir.path(), "rvbbit.toml", &config);
    dir
}

/// `rvbbit serve` on a free port with the model at `llm`; the child and the base URL.
fn serve(dir: &Path, llm: &str) -> (Child, String) {
    let mut cmd = rvbbit(dir);
    cmd.env("RVBBIT_PROVIDER_BASE_URL", llm)
        .env("OPENROUTER_API_KEY", "test-key")
        .env("RVBBIT_DEFAULT_MODEL", "test/model")
        .args(["--set", "provider.max_retries=0"])
        .args(["serve", "--port", "0", "--root", "cascades"]);
    let (child, port, _) = crate::spawn_server(&mut cmd, "http://");
    (child, format!("http://127.0.0.1:{port}"))
}

/// Stop the server with SIGTERM and check that it ended cleanly (open streams end at shutdown).
fn stop(mut child: Child) {
    let pid = child.id().to_string();
    let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(sent.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "the server did not stop cleanly");
}

/// One Server-Sent Event.
#[derive(Debug)]
struct Sse {
    event: String,
    data: Value,
}

/// Reads the events of a streaming response.
struct Stream {
    response: reqwest::Response,
    buffer: String,
}

impl Stream {
    async fn open(http: &reqwest::Client, url: &str) -> Stream {
        let response = http.get(url).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200, "{url}");
        let kind = response.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(kind.starts_with("text/event-stream"), "{kind}");
        Stream {
            response,
            buffer: String::new(),
        }
    }

    /// The next event (keep-alive comments skipped), within 30 s; None when the stream ended.
    async fn next(&mut self) -> Option<Sse> {
        tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                while let Some(end) = self.buffer.find("\n\n") {
                    let frame: String = self.buffer.drain(..end + 2).collect();
                    let mut event = String::from("message");
                    let mut data = String::new();
                    for line in frame.lines() {
                        if let Some(v) = line.strip_prefix("event:") {
                            event = v.trim().to_owned();
                        } else if let Some(v) = line.strip_prefix("data:") {
                            data.push_str(v.trim_start());
                        }
                    }
                    if !data.is_empty() {
                        return Some(Sse {
                            event,
                            data: serde_json::from_str(&data).unwrap(),
                        });
                    }
                }
                let chunk = self.response.chunk().await.ok()??;
                self.buffer.push_str(&String::from_utf8_lossy(&chunk));
            }
        })
        .await
        .expect("no event within 30 s")
    }

    /// The entries until one from the agent (typing events noted as `typing`).
    async fn until_reply(&mut self) -> Vec<(String, Value)> {
        let mut seen = Vec::new();
        while let Some(e) = self.next().await {
            let agent = e.event == "entry" && e.data["role"] == "agent";
            seen.push((e.event, e.data));
            if agent {
                return seen;
            }
        }
        panic!("the stream ended before a reply: {seen:?}");
    }
}

fn post(http: &reqwest::Client, base: &str, body: &Value) -> reqwest::RequestBuilder {
    http.post(format!("{base}/chat/site/messages")).json(body)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn webchat_replies_arrive_on_the_stream_and_a_reply_made_while_away_comes_on_reconnect() {
    let rt = runtime();
    let llm = rt.block_on(TestServer::start(Script::sequence([
        Reply::text("Hello from the helper."),
        Reply::text("Welcome back, still here."),
    ])));
    let dir = project("");
    let (child, base) = serve(dir.path(), &llm.base_url());
    rt.block_on(async {
        let http = reqwest::Client::new();
        let page = http.get(format!("{base}/chat/site")).send().await.unwrap();
        assert_eq!(page.status().as_u16(), 200);
        let csp = page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(csp.starts_with("default-src 'none'; script-src 'nonce-"), "{csp}");
        assert!(csp.ends_with("frame-ancestors 'self'"), "{csp}");
        assert_eq!(page.headers()["x-frame-options"], "SAMEORIGIN");
        let html = page.text().await.unwrap();
        assert!(html.contains("<title>Ask the helper</title>"));
        let nonce = csp.split("'nonce-").nth(1).unwrap().split('\'').next().unwrap();
        assert!(html.contains(&format!("<script nonce=\"{nonce}\">")));
        assert!(!html.contains("innerHTML") && !html.contains("http://") && !html.contains("https://"));

        let events = format!("{base}/chat/site/events?visitor={VISITOR}");
        let mut stream = Stream::open(&http, &events).await;
        let ready = stream.next().await.unwrap();
        assert_eq!(
            (ready.event.as_str(), &ready.data["visitor"]),
            ("ready", &json!(VISITOR))
        );
        let sent = post(&http, &base, &json!({"visitor": VISITOR, "text": "What is new?"}))
            .send()
            .await
            .unwrap();
        assert_eq!(sent.status().as_u16(), 202);
        assert_eq!(
            sent.json::<Value>().await.unwrap(),
            json!({"accepted": true, "id": 1})
        );
        let seen = stream.until_reply().await;
        let entries: Vec<&Value> = seen
            .iter()
            .filter(|(e, _)| e == "entry")
            .map(|(_, d)| d)
            .collect();
        assert_eq!(
            entries[0],
            &json!({"id": 1, "role": "visitor", "text": "What is new?"})
        );
        assert_eq!(
            entries[1],
            &json!({"id": 2, "role": "agent", "text": "Hello from the helper."})
        );
        assert!(
            seen.iter().any(|(e, d)| e == "typing" && d["typing"] == true),
            "{seen:?}"
        );
        drop(stream);

        // The second reply is produced while the visitor has no stream open.
        let sent = post(
            &http,
            &base,
            &json!({"visitor": VISITOR, "text": "Are you there?"}),
        )
        .send()
        .await
        .unwrap();
        assert_eq!(sent.status().as_u16(), 202);
        while llm.requests() < 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // A stream opened after the reply was kept gets both entries at once, with no typing between.
        let mut kept = None;
        for _ in 0..60 {
            let mut again = Stream::open(&http, &format!("{events}&after=2")).await;
            assert_eq!(again.next().await.unwrap().event, "ready");
            let first = again.next().await.unwrap();
            let second = again.next().await.unwrap();
            if second.event == "entry" {
                kept = Some((first.data, second.data));
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let (first, second) = kept.expect("the reply was never kept");
        assert_eq!(
            first,
            json!({"id": 3, "role": "visitor", "text": "Are you there?"})
        );
        assert_eq!(
            second,
            json!({"id": 4, "role": "agent", "text": "Welcome back, still here."})
        );
        // A browser reconnecting with Last-Event-ID gets only what it missed: nothing here.
        let mut resumed = http
            .get(&events)
            .header("last-event-id", "4")
            .send()
            .await
            .map(|response| Stream {
                response,
                buffer: String::new(),
            })
            .unwrap();
        assert_eq!(resumed.next().await.unwrap().data["after"], 4);
        // Both turns were one conversation: the second prompt carries the visitor's first message.
        let prompts = llm.received();
        assert!(prompts[1].body.to_string().contains("Are you there?"));
        assert_eq!(llm.requests(), 2);
    });
    stop(child);
}

#[test]
fn webchat_limits_refuse_with_coded_errors_and_the_server_keeps_serving() {
    let rt = runtime();
    let llm = rt.block_on(TestServer::start(Script::echo()));
    let dir = project("max_message_bytes = 1024\nmax_streams = 2\n");
    let (child, base) = serve(dir.path(), &llm.base_url());
    rt.block_on(async {
        let http = reqwest::Client::new();
        let code = |body: &Value| body["code"].as_str().unwrap_or_default().to_owned();
        // Over max_message_bytes: 413 before the body is read (the server then drops the connection,
        // so this request does not reuse it).
        let big = http
            .post(format!("{base}/chat/site/messages"))
            .header("connection", "close")
            .header("content-type", "application/json")
            .body(json!({"visitor": VISITOR, "text": "x".repeat(2000)}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(big.status().as_u16(), 413);
        let body: Value = big.json().await.unwrap();
        assert_eq!(code(&body), "RVB-K010", "{body}");
        assert!(
            body["message"].as_str().unwrap().contains("max_message_bytes"),
            "{body}"
        );
        for (text, why) in [("bell \u{7}", "U+0007"), ("  ", "empty")] {
            let r = post(&http, &base, &json!({"visitor": VISITOR, "text": text}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 400, "{text:?}");
            let body: Value = r.json().await.unwrap();
            assert_eq!(code(&body), "RVB-K004");
            assert!(body["message"].as_str().unwrap().contains(why), "{body}");
        }
        let bad_id = post(&http, &base, &json!({"visitor": "../../etc", "text": "hi"}))
            .send()
            .await
            .unwrap();
        assert_eq!(bad_id.status().as_u16(), 400);
        let bad_stream = http
            .get(format!("{base}/chat/site/events?visitor=no"))
            .send()
            .await
            .unwrap();
        assert_eq!(bad_stream.status().as_u16(), 400);
        let foreign = post(&http, &base, &json!({"visitor": VISITOR, "text": "hi"}))
            .header("origin", "https://evil.example")
            .send()
            .await
            .unwrap();
        assert_eq!(foreign.status().as_u16(), 401);
        assert_eq!(llm.requests(), 0, "nothing refused reached the model");
        // Unknown integrations, and integrations of another kind, are 404 on every route.
        for (method, path) in [
            ("GET", "/chat/nope"),
            ("POST", "/chat/nope/messages"),
            ("GET", "/chat/nope/events?visitor=visitor_0123456789"),
            ("GET", "/chat/hook"),
            ("POST", "/chat/hook/messages"),
            ("POST", "/hooks/web/site"),
        ] {
            let r = http
                .request(method.parse().unwrap(), format!("{base}{path}"))
                .json(&json!({"visitor": VISITOR, "text": "hi"}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 404, "{method} {path}");
            let body: Value = r.json().await.unwrap();
            assert_eq!(code(&body), "RVB-K003", "{method} {path}: {body}");
            assert!(!body.to_string().contains(&dir.path().display().to_string()));
        }
        // Two streams are the cap: a third is refused with a coded 503, and the server serves on.
        let events = format!("{base}/chat/site/events?visitor={VISITOR}");
        let mut one = Stream::open(&http, &events).await;
        assert_eq!(one.next().await.unwrap().event, "ready");
        let mut two = Stream::open(&http, &format!("{base}/chat/site/events?visitor=another_visitor")).await;
        assert_eq!(two.next().await.unwrap().event, "ready");
        let third = http.get(&events).send().await.unwrap();
        assert_eq!(third.status().as_u16(), 503);
        let body: Value = third.json().await.unwrap();
        assert_eq!(code(&body), "RVB-K009", "{body}");
        assert!(
            body["message"].as_str().unwrap().contains("max_streams"),
            "{body}"
        );
        let health = http.get(format!("{base}/healthz")).send().await.unwrap();
        assert_eq!(health.status().as_u16(), 200);
        drop(two);
        // The freed place is taken again once the server notices the closed connection.
        let mut reopened = None;
        for _ in 0..100 {
            let r = http.get(&events).send().await.unwrap();
            if r.status().as_u16() == 200 {
                reopened = Some(r);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(reopened.is_some(), "a closed stream's place was never freed");
        // A message still works with the streams open, and its reply arrives on the open stream.
        let ok = post(&http, &base, &json!({"visitor": VISITOR, "text": "ping"}))
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status().as_u16(), 202);
        let seen = one.until_reply().await;
        assert!(
            seen.last().unwrap().1["text"].as_str().unwrap().contains("ping"),
            "{seen:?}"
        );
    });
    // A stream open at shutdown ends cleanly (the end of the body, not a broken connection), and the
    // server exits 0.
    let mut open = rt.block_on(async {
        let url = format!("{base}/chat/site/events?visitor={VISITOR}");
        let mut s = Stream::open(&reqwest::Client::new(), &url).await;
        assert_eq!(s.next().await.unwrap().event, "ready");
        s
    });
    let stopper = std::thread::spawn(move || stop(child));
    rt.block_on(async {
        let end = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                match open.response.chunk().await {
                    Ok(Some(_)) => {}
                    other => return other.map(|_| ()),
                }
            }
        })
        .await
        .expect("the stream did not end at shutdown");
        assert!(end.is_ok(), "the stream broke instead of ending: {end:?}");
    });
    stopper.join().unwrap();
}

fn e2e_dir() -> PathBuf {
    std::env::var_os("RVBBIT_E2E_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../e2e"),
        PathBuf::from,
    )
}

fn chromium() -> String {
    let bin = std::env::var("RVBBIT_CHROMIUM").unwrap_or_else(|_| "chromium".to_owned());
    // Playwright wants a path, not a name to look up.
    let bin = if bin.contains('/') {
        bin
    } else {
        std::env::var_os("PATH")
            .and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|dir| dir.join(&bin))
                    .find(|p| p.is_file())
            })
            .map_or(bin, |p| p.display().to_string())
    };
    match Command::new(&bin).arg("--version").output() {
        Ok(o) if o.status.success() => bin,
        _ => panic!(
            "the web chat browser test needs Chromium: `apt-get install chromium` (Debian) or set \
             RVBBIT_CHROMIUM; `scripts/test-deps.sh` installs it"
        ),
    }
}

#[test]
fn webchat_page_works_in_headless_chromium_on_a_laptop_and_a_phone() {
    let chromium = chromium();
    let e2e = e2e_dir();
    assert!(
        e2e.join("node_modules/playwright-core").is_dir(),
        "Playwright is not installed in {}: run `npm ci --prefix e2e` (needs Node.js >= 20), or \
         `scripts/test-deps.sh`",
        e2e.display()
    );
    let rt = runtime();
    const REPLY: &str = "Hello! I am the helper. Tomorrow looks sunny, with a light breeze from the west.";
    let llm = rt.block_on(TestServer::start_with(
        Options::new(Script::rule(|_| Reply::text(REPLY))).latency(Duration::from_millis(400)),
    ));
    let dir = project("allowed_origins = [\"http://site.example\"]\n");
    let (child, base) = serve(dir.path(), &llm.base_url());
    let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR")).join("webchat-e2e");
    // The artifacts of an earlier run may not exist.
    let _ = std::fs::remove_dir_all(&artifacts);
    let mut node = Command::new("node");
    if let Some(shots) = std::env::var_os("RVBBIT_SCREENSHOTS_DIR") {
        // Relative to the workspace root, as `RVBBIT_SCREENSHOTS_DIR=docs/img` reads.
        node.env(
            "SCREENSHOTS",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(shots),
        );
    }
    let out = node
        .arg(e2e.join("webchat.mjs"))
        .env("CHAT_URL", format!("{base}/chat/site"))
        .env("CHAT_TITLE", "Ask the helper")
        .env("REPLY", REPLY)
        .env("RVBBIT_CHROMIUM", &chromium)
        .env("ARTIFACTS", &artifacts)
        .output()
        .unwrap_or_else(|e| panic!("cannot start `node` ({e}): install Node.js >= 20"));
    stop(child);
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "the browser test failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let passed = stdout.lines().filter(|l| l.starts_with("ok - ")).count();
    assert_eq!(passed, 20, "{stdout}");
    for name in ["webchat-laptop", "webchat-phone"] {
        let png = artifacts.join(format!("{name}.png"));
        let bytes = std::fs::read(&png).unwrap_or_else(|e| panic!("{}: {e}", png.display()));
        assert!(bytes.starts_with(b"\x89PNG"), "{} is not a PNG", png.display());
    }
    println!("screenshots: {}", artifacts.display());
    // One model call per message sent from the browser (one on the laptop, two on the phone, one in
    // the embedded frame).
    assert_eq!(llm.requests(), 4);
}
