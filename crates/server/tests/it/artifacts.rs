//! A session's artifacts over HTTP: listed without bodies, each body served as an untrusted document
//! (a `sandbox` policy), a chart's drawing as SVG, bad and unknown ids refused, and the Studio's session
//! page showing the chart and framing the HTML.

use serde_json::json;

use crate::Running;

const PUBLISH: &str = r#"
cascade_id: publish
cells:
  - name: page
    tool: create_artifact
    inputs:
      html: "<h1>Report</h1><script>alert(1)</script>"
      title: The <b>report</b>
  - name: bars
    tool: create_chart
    inputs:
      chart_type: bar
      data: '[{"k": "a", "v": 1}, {"k": "b", "v": 3}]'
      x: k
      y: v
      title: Counts
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifacts_are_listed_served_sandboxed_and_shown_on_the_session_page() {
    let s = Running::start(|c| c).await;
    std::fs::write(s.dir.path().join("cascades/publish.yaml"), PUBLISH).unwrap();
    let (status, out) = s
        .post(
            "/api/v1/runs?wait=true",
            &json!({"cascade": "publish.yaml", "input": {}}),
        )
        .await;
    assert_eq!(
        (status, out["status"].as_str()),
        (200, Some("completed")),
        "{out}"
    );
    let id = out["session_id"].as_str().unwrap().to_owned();

    let (status, list) = s.get(&format!("/api/v1/sessions/{id}/artifacts")).await;
    assert_eq!(status, 200, "{list}");
    let items = list["artifacts"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{list}");
    assert!(
        items
            .iter()
            .all(|a| a.get("body").is_none() && a.get("svg").is_none())
    );
    let page = &items[0];
    let chart = &items[1];
    assert_eq!(page["title"], "The <b>report</b>");
    assert!(page["links"].get("svg").is_none());
    let page_id = page["artifact_id"].as_str().unwrap();
    let chart_id = chart["artifact_id"].as_str().unwrap();

    // The body: its own type, under a sandbox policy (the script in it cannot run), not sniffed.
    let r = s
        .http
        .get(s.url(page["links"]["body"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.starts_with("sandbox;") && csp.contains("default-src 'none'"),
        "{csp}"
    );
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert_eq!(
        r.text().await.unwrap(),
        "<h1>Report</h1><script>alert(1)</script>"
    );
    let r = s
        .http
        .get(s.url(chart["links"]["svg"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "image/svg+xml");
    assert!(
        r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .starts_with("sandbox;")
    );
    assert_eq!(r.text().await.unwrap().matches("<rect x=").count(), 2);

    // Refusals: a page with no drawing, a malformed id (no traversal), an unknown id, an unknown session.
    let (status, err) = s
        .get(&format!("/api/v1/sessions/{id}/artifacts/{page_id}/svg"))
        .await;
    assert_eq!(status, 404, "{err}");
    let (status, err) = s
        .get(&format!("/api/v1/sessions/{id}/artifacts/art_..%2F..%2Fetc"))
        .await;
    assert_eq!(status, 400, "{err}");
    assert!(
        err["message"].as_str().unwrap().contains("not an artifact id"),
        "{err}"
    );
    let (status, _) = s
        .get(&format!("/api/v1/sessions/{id}/artifacts/art_0000000000000000"))
        .await;
    assert_eq!(status, 404);
    let (status, _) = s.get("/api/v1/sessions/no-such-session/artifacts").await;
    assert_eq!(status, 404);

    // The Studio: the chart as an image, the HTML in a sandboxed frame, the title escaped.
    let html = s
        .http
        .get(s.url(&format!("/sessions/{id}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        .replace("&#x2f;", "/");
    assert!(html.contains("<h2>Artifacts</h2>"), "{html}");
    assert!(
        html.contains(&format!("src=\"/sessions/{id}/artifacts/{chart_id}/svg\"")),
        "{html}"
    );
    assert!(html.contains(&format!(
        "<iframe class=\"artifact-frame\" sandbox src=\"/sessions/{id}/artifacts/{page_id}\""
    )));
    assert!(html.contains("The &lt;b&gt;report&lt;/b&gt;") && !html.contains("The <b>report"));
    let r = s
        .http
        .get(s.url(&format!("/sessions/{id}/artifacts/{chart_id}/svg")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["content-type"], "image/svg+xml");
    s.shutdown().await;
}
