//! REST endpoints: runs, sessions, events pages, cascades, costs, metrics, OpenAPI.

use serde_json::{Value, json};

use crate::{Running, assert_error_shape};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waited_run_returns_its_outcome_and_is_recorded_under_an_http_caller() {
    let s = Running::start(|c| c).await;
    let (status, out) = s
        .post(
            "/api/v1/runs?wait=true",
            &json!({"cascade": "three.yaml", "input": {"name": "Ada"}}),
        )
        .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["status"], "completed", "{out}");
    assert_eq!(out["output"]["stdout"], "Hello Ada, best 95\n");
    assert_eq!(out["path"], json!(["scores", "remember", "greet"]));
    assert_eq!(out["tool_calls"], 3);
    let id = out["session_id"].as_str().unwrap().to_owned();
    assert!(out["caller_id"].as_str().unwrap().starts_with("http-"), "{out}");

    let (status, list) = s.get("/api/v1/sessions?status=completed").await;
    assert_eq!(status, 200);
    let sessions = list["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0]["session_id"], id.as_str());
    assert_eq!(
        sessions[0]["cascade_file"], "three.yaml",
        "a path relative to the root"
    );

    let (status, one) = s.get(&format!("/api/v1/sessions/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(one["status"], "completed");
    assert_eq!(one["input"], json!({"name": "Ada"}));
    assert!(one["events"].as_u64().unwrap() >= 8, "{one}");
    assert_eq!(one["cost_micro_usd"], 0);

    let (status, trace) = s.get(&format!("/api/v1/sessions/{id}/trace")).await;
    assert_eq!(status, 200);
    let cells: Vec<&str> = trace["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["kind"] == "cell")
        .map(|n| n["label"].as_str().unwrap())
        .collect();
    assert_eq!(cells, ["scores", "remember", "greet"], "{trace}");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_pages_follow_the_cursor_without_gaps_or_repeats() {
    let s = Running::start(|c| c).await;
    let (_, out) = s
        .post(
            "/api/v1/runs?wait=true",
            &json!({"cascade": "nested/three.yaml", "input": {"name": "Bo"}}),
        )
        .await;
    let id = out["session_id"].as_str().unwrap().to_owned();
    let (_, all) = s.get(&format!("/api/v1/sessions/{id}/events?limit=5000")).await;
    let all_seqs: Vec<i64> = all["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["store_seq"].as_i64().unwrap())
        .collect();
    assert!(all["done"].as_bool().unwrap());
    let mut seen = Vec::new();
    let mut cursor = 0;
    let mut pages = 0;
    loop {
        let (status, page) = s
            .get(&format!("/api/v1/sessions/{id}/events?cursor={cursor}&limit=3"))
            .await;
        assert_eq!(status, 200, "{page}");
        pages += 1;
        for e in page["events"].as_array().unwrap() {
            seen.push(e["store_seq"].as_i64().unwrap());
            assert_eq!(e["session_id"], id.as_str());
        }
        cursor = page["next_cursor"].as_i64().unwrap();
        if page["done"].as_bool().unwrap() {
            break;
        }
        assert!(pages < 100);
    }
    assert_eq!(seen, all_seqs);
    assert!(pages >= 3, "small pages: {pages}");
    let kinds: Vec<&str> = all["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.first(), Some(&"cascade_start"));
    assert_eq!(kinds.last(), Some(&"cascade_complete"));
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_cascades_are_refused_with_positioned_diagnostics() {
    let s = Running::start(|c| c).await;
    let (status, err) = s.post("/api/v1/runs", &json!({"cascade": "bad.yaml"})).await;
    assert_eq!(status, 422, "{err}");
    assert_error_shape(&err, "RVB-V008", &s.root());
    let d = &err["diagnostics"][0];
    assert_eq!(d["file"], "bad.yaml");
    assert_eq!(d["line"], 6, "{d}");
    assert!(d["message"].as_str().unwrap().contains("nowhere"));

    let (status, get) = s.get("/api/v1/cascades/bad.yaml").await;
    assert_eq!(status, 200);
    assert_eq!(get["errors"], 1);
    assert!(get["source"].as_str().unwrap().contains("handoffs: [nowhere]"));

    let (status, v) = s
        .post(
            "/api/v1/cascades/validate",
            &json!({"text": "cascade_id: x\ncells:\n  - name: a\n    instructions: hi\n    rules: {max_turn: 2}\n"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        (v["valid"].as_bool(), v["warnings"].as_u64()),
        (Some(true), Some(1)),
        "{v}"
    );
    assert_eq!(v["diagnostics"][0]["code"], "RVB-V004");
    assert_eq!(v["diagnostics"][0]["file"], "posted.yaml");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cascade_list_shows_every_cascade_under_the_roots() {
    let s = Running::start(|c| c).await;
    let (status, list) = s.get("/api/v1/cascades").await;
    assert_eq!(status, 200);
    let paths: Vec<&str> = list["cascades"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "bad.yaml",
            "confirm.yaml",
            "nested/three.yaml",
            "slow.yaml",
            "three.yaml"
        ]
    );
    let three = &list["cascades"][4];
    assert_eq!(three["cascade_id"], "three");
    assert_eq!(three["inputs"], json!(["name"]));
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_json_errors() {
    let s = Running::start(|c| c).await;
    let root = s.root();
    let (status, e) = s.get("/api/v1/sessions?limit=abc").await;
    assert_eq!(status, 400);
    assert_error_shape(&e, "RVB-A001", &root);
    let (status, e) = s.get("/api/v1/sessions?status=sleeping").await;
    assert_eq!(status, 400);
    assert!(e["hint"].as_str().unwrap().contains("completed"));
    let (status, e) = s.get("/api/v1/nothing/here").await;
    assert_eq!(status, 404);
    assert_error_shape(&e, "RVB-A003", &root);
    let (status, e) = s.get("/api/v1/sessions/no-such-session").await;
    assert_eq!(status, 404);
    assert_error_shape(&e, "RVB-S005", &root);
    let (status, e) = s.get("/api/v1/costs?group=planet").await;
    assert_eq!(status, 400);
    assert_error_shape(&e, "RVB-A001", &root);
    let (status, e) = s.post("/api/v1/runs", &json!({"input": {}})).await;
    assert_eq!(status, 400, "missing `cascade`");
    assert!(e["message"].as_str().unwrap().contains("cascade"), "{e}");
    let (status, e) = s
        .post("/api/v1/runs", &json!({"cascade": "three.yaml", "input": [1, 2]}))
        .await;
    assert_eq!(status, 400);
    assert!(e["message"].as_str().unwrap().contains("object"), "{e}");
    let r = s
        .http
        .post(s.url("/api/v1/runs"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let e: Value = r.json().await.unwrap();
    assert_error_shape(&e, "RVB-A001", &root);
    let r = s.http.delete(s.url("/api/v1/sessions")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 405);
    let big = "x".repeat(9 * 1024 * 1024);
    let (status, e) = s.post("/api/v1/cascades/validate", &json!({"text": big})).await;
    assert_eq!(status, 413);
    assert_error_shape(&e, "RVB-A005", &root);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn costs_metrics_health_and_the_openapi_document() {
    let s = Running::start(|c| c).await;
    let (_, out) = s
        .post(
            "/api/v1/runs?wait=true",
            &json!({"cascade": "three.yaml", "input": {"name": "Cy"}}),
        )
        .await;
    let caller = out["caller_id"].as_str().unwrap().to_owned();
    assert_eq!(s.get("/healthz").await, (200, json!({"status": "ok"})));
    assert_eq!(
        s.get("/readyz").await,
        (
            200,
            json!({"status": "ready", "store": "ok", "records": {"spilled": 0, "lost": 0}})
        )
    );
    // A deterministic run makes no priced calls: nothing to sum (LLM costs: studio.rs).
    let (status, costs) = s.get("/api/v1/costs?group=caller").await;
    assert_eq!(status, 200);
    assert_eq!(costs["rows"], json!([]), "{costs} (caller {caller})");
    assert_eq!(s.get("/api/v1/costs?since=24h").await.0, 200);
    let metrics = s
        .http
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"rvbbit_http_requests_total{method="GET",route="/healthz",status="200"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"rvbbit_sessions{status="completed"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains("rvbbit_store_write_queue_depth"), "{metrics}");
    assert!(metrics.contains("rvbbit_store_records_spilled 0"), "{metrics}");
    assert!(metrics.contains("rvbbit_store_records_lost 0"), "{metrics}");
    let ping: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("rvbbit_store_ping_seconds "))
        .unwrap_or_else(|| panic!("no store ping in {metrics}"))
        .parse()
        .unwrap();
    assert!(ping > 0.0 && ping < 5.0, "{ping}");
    assert!(
        metrics.contains("rvbbit_events_sink_events_pending 0"),
        "{metrics}"
    );
    assert!(metrics.contains("rvbbit_store_cache_hits 0"), "{metrics}");
    // Two hits on a cached result show up at the next scrape.
    let now = rvbbit_core::Timestamp::now();
    s.store.cache_put("k", &json!(1), now, None).await.unwrap();
    for _ in 0..2 {
        assert!(s.store.cache_get("k", now).await.unwrap().is_some());
    }
    let metrics = s
        .http
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("rvbbit_store_cache_hits 2"), "{metrics}");
    assert!(metrics.contains("rvbbit_store_cache_entries 1"), "{metrics}");
    assert!(
        metrics.contains("rvbbit_http_request_duration_seconds_bucket"),
        "{metrics}"
    );
    let (status, doc) = s.get("/api/v1/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    // Every documented route answers something other than the "no route" fallback.
    for (method, path) in rvbbit_server::ROUTES {
        let concrete = path
            .replace("{id}", "no-such-session")
            .replace("{path}", "three.yaml");
        let r = s
            .http
            .request(method.parse().unwrap(), s.url(&concrete))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        assert!(
            !body["message"].as_str().unwrap_or("").starts_with("no route"),
            "{method} {path}: {body}"
        );
    }
    s.shutdown().await;
}

/// A "billion laughs" cascade of about 500 bytes (nine levels of nine aliases: 9^9 strings expanded).
fn yaml_bomb() -> String {
    let mut text = String::from("cascade_id: bomb\nl0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..9 {
        let refs = vec![format!("*l{}", i - 1); 9].join(",");
        text.push_str(&format!("l{i}: &l{i} [{refs}]\n"));
    }
    text
}

/// Issue 13: a 496-byte body used to expand to gigabytes and kill the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_13_a_yaml_bomb_is_refused_with_400_and_the_server_keeps_serving() {
    let s = Running::start(|c| c).await;
    let bomb = yaml_bomb();
    assert!(bomb.len() < 600, "{} bytes", bomb.len());
    let started = std::time::Instant::now();
    let (status, e) = s.post("/api/v1/cascades/validate", &json!({"text": bomb})).await;
    assert_eq!(status, 400, "{e}");
    assert_error_shape(&e, "RVB-V024", &s.root());
    assert!(
        e["message"].as_str().unwrap().contains("limits.yaml_nodes"),
        "{e}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(s.get("/healthz").await, (200, json!({"status": "ok"})));
    // An ordinary invalid cascade still answers 200 with its diagnostics.
    let (status, out) = s
        .post("/api/v1/cascades/validate", &json!({"text": "cascade_id: x\n"}))
        .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["valid"], false);
    s.shutdown().await;
}

/// Issue 13 item 5: `POST /api/v1/runs` with a chosen `session_id` claims it in the store before running,
/// so of concurrent requests with one id exactly one starts a run; the rest get 409 RVB-S-conflict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_runs_with_one_chosen_session_id_start_exactly_one() {
    let s = Running::start(|c| c).await;
    for trial in 0..10 {
        let id = format!("chosen-{trial}");
        let body = json!({"cascade": "three.yaml", "input": {"name": "Ada"}, "session_id": id});
        let requests = (0..4).map(|_| s.post("/api/v1/runs", &body));
        let answers = futures::future::join_all(requests).await;
        let started = answers.iter().filter(|(status, _)| *status == 202).count();
        let refused: Vec<&Value> = answers
            .iter()
            .filter(|(status, _)| *status == 409)
            .map(|(_, body)| body)
            .collect();
        assert_eq!(started, 1, "trial {trial}: {answers:?}");
        assert_eq!(refused.len(), 3, "trial {trial}: {answers:?}");
        for body in refused {
            assert!(
                body["message"].as_str().unwrap().contains("already exists"),
                "{body}"
            );
        }
    }
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spending_limit_used_up_refuses_run_submissions_with_429() {
    use rvbbit_store::limits::{LimitPeriod, LimitScope, SpendLimit};
    let s = Running::start(|c| c).await;
    // `0/day` for every HTTP run: used up before anything is spent.
    let zero = SpendLimit::new(
        LimitScope::Caller,
        "http",
        LimitPeriod::Day,
        rvbbit_core::MicroUsd::ZERO,
    );
    s.store.limit_set(&zero).await.unwrap();
    for path in ["/api/v1/runs?wait=true", "/api/v1/runs"] {
        let (status, err) = s
            .post(path, &json!({"cascade": "three.yaml", "input": {"name": "Ada"}}))
            .await;
        assert_eq!(status, 429, "{err}");
        assert_error_shape(&err, "RVB-B030", &s.root());
        assert!(
            err["message"].as_str().unwrap().contains("caller `http`"),
            "{err}"
        );
        assert!(
            err["hint"]
                .as_str()
                .unwrap()
                .contains("rvbbit costs limit set AMOUNT/day --caller http"),
            "{err}"
        );
    }
    let (_, list) = s.get("/api/v1/sessions").await;
    assert_eq!(list["sessions"], json!([]), "nothing was started");
    // Another door's limit does not count HTTP runs.
    s.store
        .limit_remove(LimitScope::Caller, "http", LimitPeriod::Day)
        .await
        .unwrap();
    let cli_only = SpendLimit::new(
        LimitScope::Caller,
        "cli",
        LimitPeriod::Day,
        rvbbit_core::MicroUsd::ZERO,
    );
    s.store.limit_set(&cli_only).await.unwrap();
    let (status, out) = s
        .post(
            "/api/v1/runs?wait=true",
            &json!({"cascade": "three.yaml", "input": {"name": "Ada"}}),
        )
        .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["status"], "completed", "{out}");
    s.shutdown().await;
}
