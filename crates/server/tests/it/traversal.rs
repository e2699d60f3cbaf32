//! The path-traversal suite: every endpoint that takes a path or a name, attacked with `..`, URL
//! encoding, double encoding, absolute paths, backslashes, NUL and control bytes, symbolic links out of
//! the root, over-long paths and names, sent as raw bytes on the wire (no client normalises them). Every
//! attempt must be answered 400 or 404, no response may carry the secret outside the root or a server
//! path, and the cascade outside the root (which would leave a marker file) must never run.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::Running;

/// Text only the files outside the root contain.
const SECRET: &str = "SECRET-OUTSIDE-THE-ROOT";

/// Paths as a client would name them (JSON fields, form fields, SQL strings): raw, before any URL
/// encoding.
fn raw_attacks(outside: &Path) -> Vec<String> {
    let abs = outside.join("secret.yaml").display().to_string();
    let mut v: Vec<String> = [
        "../secret.yaml",
        "../../secret.yaml",
        "../../../../../../../../etc/passwd",
        "nested/../../secret.yaml",
        "./../secret.yaml",
        "nested/./../../secret.yaml",
        "three.yaml/../../secret.yaml",
        "..",
        "../",
        "/etc/passwd",
        "//etc/passwd",
        "/proc/self/environ",
        "..\\secret.yaml",
        "nested\\..\\..\\secret.yaml",
        "C:\\Windows\\win.ini",
        "\\\\server\\share\\secret.yaml",
        "secret.yaml\0.yaml",
        "three.yaml\0/../../secret.yaml",
        "%00../secret.yaml",
        "three.yaml\n../secret.yaml",
        "three.yaml\r\nX-Injected: 1",
        "%2e%2e/secret.yaml",
        "%2e%2e%2fsecret.yaml",
        "..%2fsecret.yaml",
        "%252e%252e%252fsecret.yaml",
        "..%252fsecret.yaml",
        "..%c0%afsecret.yaml",
        "%2e%2e%5csecret.yaml",
        "leak.yaml",
        "escape/secret.yaml",
        "nested/leak.yaml",
        "escape",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    v.push(abs.clone());
    v.push(format!("file://{abs}"));
    v.push(format!("{}/../secret.yaml", outside.join("x").display()));
    v.push("a/".repeat(700) + "secret.yaml");
    v
}

/// Percent-encode every byte that is not unreserved, so the router decodes exactly `raw`.
fn encode_all(raw: &str) -> String {
    raw.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Request targets written as attackers write them, sent byte for byte.
fn wire_targets(prefix: &str, outside: &Path) -> Vec<String> {
    let mut v: Vec<String> = [
        "../secret.yaml",
        "../../../../etc/passwd",
        "nested/../../secret.yaml",
        "..%2fsecret.yaml",
        "..%2Fsecret.yaml",
        "%2e%2e/secret.yaml",
        "%2e%2e%2fsecret.yaml",
        "%2E%2E%2Fsecret.yaml",
        ".%2e/secret.yaml",
        "%252e%252e%252fsecret.yaml",
        "..%252fsecret.yaml",
        "..%5csecret.yaml",
        "..\\secret.yaml",
        "%5c..%5csecret.yaml",
        "%2fetc%2fpasswd",
        "%2F%2Fetc%2Fpasswd",
        "three.yaml%00.json",
        "%00",
        "three.yaml%0a",
        "leak.yaml",
        "escape/secret.yaml",
        "escape%2fsecret.yaml",
        "..%c0%afsecret.yaml",
        "%c0%ae%c0%ae/secret.yaml",
    ]
    .into_iter()
    .map(|t| format!("{prefix}{t}"))
    .collect();
    for raw in raw_attacks(outside) {
        v.push(format!("{prefix}{}", encode_all(&raw)));
    }
    v
}

/// Percent-decode `text` once (bytes that do not decode stay as they are).
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

struct Reply {
    status: u16,
    body: String,
}

/// One HTTP/1.1 request with the target and body exactly as given.
async fn raw(base: &str, method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    stream.write_all(&bytes).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut out))
        .await
        .expect("the server answered in time")
        .unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line for {method} {target}: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Reply { status, body }
}

struct Checker {
    base: String,
    forbidden: Vec<String>,
    attempts: usize,
    failures: Vec<String>,
}

impl Checker {
    async fn check(&mut self, method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) {
        let r = raw(&self.base, method, target, headers, body).await;
        self.attempts += 1;
        let what = format!("{method} {target} {}", String::from_utf8_lossy(body));
        if r.status != 400 && r.status != 404 {
            self.failures.push(format!("{what} -> {} {}", r.status, r.body));
        }
        // What the attacker sent may be echoed back (`… is not a session id`); anything else may not.
        let sent = format!("{} {}", decode(target), String::from_utf8_lossy(body));
        for f in &self.forbidden {
            if r.body.contains(f.as_str()) && !sent.contains(f.as_str()) {
                self.failures
                    .push(format!("{what} -> body contains `{f}`: {}", r.body));
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_path_and_name_endpoint_refuses_traversal() {
    let s = Running::start(|c| c).await;
    let root = s.root();
    // Outside the root: a cascade that would leave a marker if it ever ran, and a secret file.
    let outside = s.dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let marker = outside.join("ran.marker");
    let evil = format!(
        "cascade_id: {SECRET}\ncells:\n  - name: touch\n    tool: linux_shell\n    inputs: {{command: \"touch {}\"}}\n",
        marker.display()
    );
    std::fs::write(outside.join("secret.yaml"), &evil).unwrap();
    std::fs::write(s.dir.path().join("secret.yaml"), &evil).unwrap();
    std::fs::write(outside.join("secret.csv"), format!("token\n{SECRET}\n")).unwrap();
    std::os::unix::fs::symlink(outside.join("secret.yaml"), root.join("leak.yaml")).unwrap();
    std::os::unix::fs::symlink(outside.join("secret.yaml"), root.join("nested/leak.yaml")).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("escape")).unwrap();
    let sessions_before = s.get("/api/v1/sessions").await.1["sessions"]
        .as_array()
        .map_or(0, Vec::len);

    let mut c = Checker {
        base: s.base.clone(),
        forbidden: vec![
            SECRET.to_owned(),
            "root:x:0:0".to_owned(),
            s.dir.path().display().to_string(),
            "/tmp/".to_owned(),
            "panicked".to_owned(),
        ],
        attempts: 0,
        failures: Vec::new(),
    };
    let json_type = [("Content-Type", "application/json")];
    let form_type = [
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("Sec-Fetch-Site", "same-origin"),
    ];

    // Paths in the URL: the API's cascade document and the Studio's cascade page.
    for prefix in ["/api/v1/cascades/", "/cascades/"] {
        for target in wire_targets(prefix, &outside) {
            c.check("GET", &target, &[], b"").await;
        }
    }
    // Paths in bodies: starting runs (API JSON, Studio form), and cascades named in SQL.
    let probe_id = "quick-heron-0123456789abcdef";
    for attack in raw_attacks(&outside) {
        let body = json!({"cascade": attack, "input": {}}).to_string();
        c.check("POST", "/api/v1/runs", &json_type, body.as_bytes()).await;
        c.check("POST", "/api/v1/runs?wait=true", &json_type, body.as_bytes())
            .await;
        let form = format!("cascade={}&input.name=x", encode_all(&attack));
        c.check("POST", "/runs", &form_type, form.as_bytes()).await;
        let quoted = attack.replace('\'', "''");
        for query in [
            format!("SELECT * FROM read_csv('{quoted}')"),
            format!("RVBBIT MAP '{quoted}' USING (SELECT 1 AS x)"),
            format!("CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '{quoted}'"),
        ] {
            let body = json!({"query": query}).to_string();
            c.check("POST", "/api/v1/sql", &json_type, body.as_bytes()).await;
        }
    }
    // Names in the URL: session ids (API and Studio) and signal names.
    for suffix in ["", "/trace", "/events", "/waits"] {
        for target in wire_targets("/api/v1/sessions/", &outside) {
            c.check("GET", &format!("{target}{suffix}"), &[], b"").await;
        }
    }
    for action in ["cancel", "resume"] {
        for target in wire_targets("/api/v1/sessions/", &outside).into_iter().take(20) {
            c.check("POST", &format!("{target}/{action}"), &json_type, b"{}")
                .await;
        }
    }
    for target in wire_targets(&format!("/api/v1/sessions/{probe_id}/signals/"), &outside) {
        c.check("POST", &target, &json_type, b"{\"value\": true}").await;
    }
    for target in wire_targets("/sessions/", &outside) {
        c.check("GET", &target, &[], b"").await;
    }
    // Static files are compiled in: nothing next to them can be reached.
    for target in wire_targets("/static/", &outside) {
        c.check("GET", &target, &[], b"").await;
    }

    assert!(c.attempts >= 50, "only {} attempts", c.attempts);
    assert!(
        c.failures.is_empty(),
        "{} of {} attempts got through:\n{}",
        c.failures.len(),
        c.attempts,
        c.failures.join("\n")
    );
    // The cascade outside the root never ran, and no session was started by any attempt.
    assert!(!marker.exists(), "a cascade outside the root ran");
    let (_, after) = s.get("/api/v1/sessions").await;
    let started: Vec<&Value> = after["sessions"]
        .as_array()
        .map(|a| a.iter().filter(|x| x["cascade_id"] == SECRET).collect())
        .unwrap_or_default();
    assert!(started.is_empty(), "{started:?}");
    let sessions_after = after["sessions"].as_array().map_or(0, Vec::len);
    assert_eq!(sessions_before, sessions_after, "an attempt started a run");
    println!("path traversal: {} attempts, all refused", c.attempts);
    s.shutdown().await;
}
