//! Paths, keys, headers: the security rules of the HTTP door.

use rvbbit_core::Timestamp;
use serde_json::json;

use crate::{Running, assert_error_shape};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_outside_the_roots_are_refused_without_revealing_anything() {
    let s = Running::start(|c| c).await;
    let root = s.root();
    // A secret outside the root, reachable by a symbolic link inside it.
    std::fs::write(
        s.dir.path().join("secret.yaml"),
        "cascade_id: secret\ncells: []\n",
    )
    .unwrap();
    std::os::unix::fs::symlink(s.dir.path().join("secret.yaml"), root.join("leak.yaml")).unwrap();
    for path in [
        "/api/v1/cascades/..%2Fsecret.yaml",
        "/api/v1/cascades/..%2F..%2F..%2Fetc%2Fpasswd",
        "/api/v1/cascades/%2Fetc%2Fpasswd",
        "/api/v1/cascades/leak.yaml",
        "/api/v1/cascades/nested%2F..%2F..%2Fsecret.yaml",
    ] {
        let (status, e) = s.get(path).await;
        assert_eq!(status, 400, "{path}: {e}");
        assert_error_shape(&e, "RVB-A004", &root);
        assert!(!e.to_string().contains("cascade_id: secret"));
    }
    for cascade in ["../secret.yaml", "/etc/passwd", "leak.yaml"] {
        let (status, e) = s.post("/api/v1/runs", &json!({"cascade": cascade})).await;
        assert_eq!(status, 400, "{cascade}: {e}");
        assert_error_shape(&e, "RVB-A004", &root);
    }
    let (status, e) = s.get("/api/v1/cascades/missing.yaml").await;
    assert_eq!(status, 404);
    assert_error_shape(&e, "RVB-A003", &root);
    // The listing does not follow the link either.
    let (_, list) = s.get("/api/v1/cascades").await;
    assert!(!list.to_string().contains("secret"), "{list}");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_carry_security_headers_and_a_request_id() {
    let s = Running::start(|c| c).await;
    let r = s
        .http
        .get(s.url("/healthz"))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    let h = r.headers();
    assert_eq!(h["x-request-id"], "trace-me-42");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert!(
        h["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    assert!(h.get("access-control-allow-origin").is_none(), "CORS is off");
    let r = s
        .http
        .get(s.url("/healthz"))
        .header("x-request-id", "bad id with spaces")
        .send()
        .await
        .unwrap();
    assert!(r.headers()["x-request-id"].to_str().unwrap().starts_with("req_"));
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_are_required_when_the_server_demands_them() {
    let s = Running::start(|c| c.with_required_key(true)).await;
    let root = s.root();
    // Probes stay open for orchestrators.
    assert_eq!(s.get("/healthz").await.0, 200);
    assert_eq!(s.get("/readyz").await.0, 200);
    let r = s.http.get(s.url("/api/v1/sessions")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    assert_error_shape(&r.json().await.unwrap(), "RVB-A002", &root);
    assert_eq!(
        s.http
            .get(s.url("/metrics"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        401
    );

    let new = rvbbit_server::auth::generate("tests");
    s.store.key_insert(&new.key).await.unwrap();
    let ok = s
        .http
        .get(s.url("/api/v1/sessions"))
        .bearer_auth(&new.secret)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    let ok = s
        .http
        .get(s.url("/api/v1/sessions"))
        .header("x-api-key", &new.secret)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    let wrong = s
        .http
        .get(s.url("/api/v1/sessions"))
        .bearer_auth(format!("{}0", new.secret))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);

    s.store
        .key_revoke(&new.key.key_id, Timestamp::now())
        .await
        .unwrap();
    let revoked = s
        .http
        .get(s.url("/api/v1/sessions"))
        .bearer_auth(&new.secret)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status().as_u16(), 401);
    let e: serde_json::Value = revoked.json().await.unwrap();
    assert!(e["message"].as_str().unwrap().contains("revoked"));
    // The store keeps only the hash.
    let keys = s.store.keys().await.unwrap();
    assert!(keys.iter().all(|k| !k.secret_hash.contains(&new.secret[4..])));
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_allows_only_the_configured_origins_and_preflights_need_no_key() {
    let s = Running::start(|c| {
        c.with_required_key(true)
            .with_cors_origins(vec!["https://dash.example.com".into()])
    })
    .await;
    let preflight = |origin: &'static str| {
        s.http
            .request(reqwest::Method::OPTIONS, s.url("/api/v1/sql"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization,content-type")
            .send()
    };
    let ok = preflight("https://dash.example.com").await.unwrap();
    assert!(ok.status().is_success(), "{}", ok.status());
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://dash.example.com"
    );
    assert!(
        ok.headers()["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("authorization")
    );
    assert!(ok.headers().get("access-control-allow-credentials").is_none());
    let other = preflight("https://evil.example.net").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
    // The real request still needs its key.
    let r = s
        .http
        .get(s.url("/api/v1/sessions"))
        .header("origin", "https://dash.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://dash.example.com"
    );
    s.shutdown().await;
}
