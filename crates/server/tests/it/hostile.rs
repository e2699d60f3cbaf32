//! Issue 13: a keyless loopback server answers only loopback `Host` names (DNS rebinding), slow clients
//! cannot hold its connections (header-read timeout), and it serves a bounded number of connections at
//! once; after each attack it still answers `/healthz`.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::Running;

/// Send `request` as raw bytes and read the whole answer (the request asks the server to close).
async fn exchange(base: &str, request: &str) -> (u16, String) {
    let addr = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut out))
        .await
        .expect("the server answered in time")
        .unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn get(target: &str, host: &str, extra: &str) -> String {
    format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n")
}

async fn healthy(s: &Running) {
    let (status, body) = s.get("/healthz").await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_13_a_keyless_server_refuses_foreign_host_names() {
    let s = Running::start(|c| c.with_allowed_hosts(vec!["studio.example.com".into()])).await;
    let port = s.base.rsplit(':').next().unwrap().to_owned();
    let evil = format!("attacker.example:{port}");
    let origin = format!("Origin: http://{evil}\r\n");

    // The JSON API: no run starts, whatever the body.
    let body = json!({"cascade": "three.yaml", "input": {"name": "x"}}).to_string();
    let post = format!(
        "POST /api/v1/runs?wait=true HTTP/1.1\r\nHost: {evil}\r\n{origin}Content-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let (status, text) = exchange(&s.base, &post).await;
    assert_eq!(status, 403, "{text}");
    let err: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(err["code"], "RVB-A006");
    assert!(
        err["hint"].as_str().unwrap().contains("server.allowed_hosts"),
        "{err}"
    );
    let (_, sessions) = s.get("/api/v1/sessions").await;
    assert_eq!(
        sessions["sessions"].as_array().map_or(0, Vec::len),
        0,
        "{sessions}"
    );

    // The WebSocket upgrade is refused before it upgrades.
    let ws = get(
        "/api/v1/sessions/x/events/ws",
        &evil,
        &format!(
            "{origin}Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        ),
    );
    let (status, _) = exchange(&s.base, &ws).await;
    assert_eq!(status, 403);

    // Studio pages and the probes too.
    for target in ["/", "/healthz", "/api/v1/cascades"] {
        let (status, _) = exchange(&s.base, &get(target, &evil, "")).await;
        assert_eq!(status, 403, "{target}");
    }
    // Rebinding-style names that merely contain a loopback name.
    for host in ["localhost.attacker.example", "127.0.0.1.nip.io", "0.0.0.0"] {
        let (status, _) = exchange(&s.base, &get("/healthz", &format!("{host}:{port}"), "")).await;
        assert_eq!(status, 403, "{host}");
    }

    // Loopback names and the configured name are answered.
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
        format!("studio.example.com:{port}"),
    ] {
        let (status, text) = exchange(&s.base, &get("/api/v1/cascades", &host, "")).await;
        assert_eq!(status, 200, "{host}: {text}");
    }
    healthy(&s).await;
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_13_a_server_with_keys_checks_keys_not_host_names() {
    let s = Running::start(|c| c.with_required_key(true)).await;
    let (status, text) = exchange(&s.base, &get("/api/v1/cascades", "proxy.example.com", "")).await;
    assert_eq!(status, 401, "{text}");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_13_slow_clients_are_cut_off_and_connections_are_capped() {
    let s = Running::start(|c| c.with_connection_limits(8, Duration::from_millis(500))).await;
    let addr = s.base.trim_start_matches("http://").to_owned();

    // Slowloris: 8 connections (the cap) that send half a request line and then nothing.
    let mut slow = Vec::new();
    for _ in 0..8 {
        let mut c = TcpStream::connect(&addr).await.unwrap();
        c.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            .await
            .unwrap();
        slow.push(c);
    }
    // While they hold every slot, a new request waits in the listen queue instead of being served...
    let queued = tokio::spawn({
        let base = s.base.clone();
        async move {
            let started = std::time::Instant::now();
            let r = exchange(&base, &get("/healthz", "127.0.0.1", "")).await;
            (r, started.elapsed())
        }
    });
    // ...and the server cuts each slow client off after the header timeout.
    for mut c in slow {
        let mut buf = [0u8; 256];
        let closed = tokio::time::timeout(Duration::from_secs(10), c.read(&mut buf)).await;
        assert!(closed.is_ok(), "a slow client was not cut off");
    }
    let ((status, _), waited) = queued.await.unwrap();
    assert_eq!(status, 200);
    assert!(
        waited >= Duration::from_millis(200),
        "served at once ({waited:?}) despite the cap"
    );

    // 200 more slow connections, far over the cap: all are dropped, and the server still answers.
    let mut many = Vec::new();
    for _ in 0..200 {
        if let Ok(mut c) = TcpStream::connect(&addr).await {
            // The server may refuse or reset these connections: holding them open is the point.
            let _ = c.write_all(b"GET / HTTP/1.1\r\n").await;
            many.push(c);
        }
    }
    drop(many);
    healthy(&s).await;
    s.shutdown().await;
}
