//! Batches over HTTP and in the Studio: the records `rvbbit batch`/`rvbbit exec` keep in the store
//! (written here through the store, as those commands write them), listed, read with their live
//! progress and results, cancelled once (compare-and-set), and the hostile ids and limits refused.

use rvbbit_store::BatchRecord;
use serde_json::json;

use crate::Running;

async fn page(s: &Running, path: &str) -> (u16, String) {
    let r = s.http.get(s.url(path)).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.text().await.unwrap().replace("&#x2f;", "/"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_are_listed_read_live_cancelled_once_and_shown_in_the_studio() {
    let s = Running::start(|c| c).await;
    let mut ended = BatchRecord::start(
        "ended-batch-1",
        "exec-clean",
        json!({
            "inputs": "in/*.txt", "cascade_file": "/x/.rvbbit/exec/cascades/a.yaml",
            "options": {"output_dir": "/x/outputs", "parallel": 2, "no_cache": false},
            "exec": {"script": "/x/clean.py"},
            "counts": {"total": 3, "completed": 1, "cached": 1, "failed": 1, "skipped": 0},
            "cost_usd": "$0.000000", "duration_ms": 1500,
            "results": [
                {"name": "a", "status": "completed", "session_id": "quick-heron-0123456789abcdef", "cost_usd": "$0", "duration_ms": 10},
                {"name": "b", "status": "failed", "code": "RVB-B020", "message": "`clean.py` exited with code 1; <script>x</script>", "session_id": "quick-heron-1123456789abcdef", "cost_usd": "$0", "duration_ms": 12},
                {"name": "c", "status": "cached", "session_id": "quick-heron-2123456789abcdef", "cost_usd": "$0", "avoided_usd": "$0.01", "duration_ms": 0},
            ],
        }),
    );
    ended.status = "partial".into();
    s.store.batch_put(&ended).await.unwrap();
    let running = BatchRecord::start(
        "running-batch-2",
        "slow",
        json!({
            "inputs": "rows.jsonl", "options": {"parallel": 1},
            "progress": {"total": 40, "done": 7, "failed": 1, "cached": 2, "cost_usd": "$0.070000"},
        }),
    );
    s.store.batch_put(&running).await.unwrap();

    let (status, list) = s.get("/api/v1/batches").await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = list["batches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["batch_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["running-batch-2", "ended-batch-1"], "{list}");
    assert_eq!(
        s.get("/api/v1/batches?limit=1").await.1["batches"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(s.get("/api/v1/batches?limit=0").await.0, 400);
    assert_eq!(s.get("/api/v1/batches?limit=1001").await.0, 400);

    let (status, one) = s.get("/api/v1/batches/batch-ended-batch-1").await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["status"], "partial");
    assert_eq!(one["batch"]["results"][1]["code"], "RVB-B020");
    let (_, live) = s.get("/api/v1/batches/running-batch-2").await;
    assert_eq!(live["batch"]["progress"]["done"], 7);

    // Cancel: once for a running batch, then 409; an ended one 409; unknown 404; a bad id 400.
    let (status, body) = s.post("/api/v1/batches/running-batch-2/cancel", &json!({})).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (202, Some("cancelling")),
        "{body}"
    );
    assert_eq!(
        s.store.batch("running-batch-2").await.unwrap().status,
        "cancelling"
    );
    let (status, body) = s.post("/api/v1/batches/running-batch-2/cancel", &json!({})).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "RVB-B006");
    assert_eq!(
        s.post("/api/v1/batches/ended-batch-1/cancel", &json!({})).await.0,
        409
    );
    assert_eq!(s.get("/api/v1/batches/no-such-batch").await.0, 404);
    assert_eq!(s.get("/api/v1/batches/..%2F..%2Fetc").await.0, 400);
    assert_eq!(
        s.get(&format!("/api/v1/batches/{}", "a".repeat(101))).await.0,
        400
    );

    // The Studio: the list, a live page (refreshing, with its progress) and an ended one.
    let (status, html) = page(&s, "/batches").await;
    assert_eq!(status, 200);
    assert!(
        html.contains("href=\"/batches/ended-batch-1\"") && html.contains("running-batch-2"),
        "{html}"
    );
    let (status, html) = page(&s, "/batches/running-batch-2").await;
    assert_eq!(status, 200);
    assert!(
        html.contains("http-equiv=\"refresh\""),
        "a running batch's page refreshes"
    );
    assert!(
        html.contains("7/40 done") && html.contains("$0.070000 so far"),
        "{html}"
    );
    let (_, html) = page(&s, "/batches/ended-batch-1").await;
    assert!(!html.contains("http-equiv=\"refresh\""));
    assert!(
        html.contains("id=\"failures\"") && html.contains("RVB-B020"),
        "{html}"
    );
    assert!(
        html.contains("&lt;script&gt;x&lt;/script&gt;") && !html.contains("<script>x</script>"),
        "escaped: {html}"
    );
    assert!(
        html.contains("href=\"/sessions/quick-heron-1123456789abcdef\""),
        "{html}"
    );
    assert!(html.contains("/x/clean.py") && html.contains("$0.01"), "{html}");
    assert_eq!(page(&s, "/batches/no-such-batch").await.0, 404);
    s.shutdown().await;
}
