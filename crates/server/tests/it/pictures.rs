//! Issue 14 (the Studio's pictures) and item 8 (humans in the loop) over HTTP: cost, tokens and latency
//! over time with a range picker, a session's waterfall with the route taken, two runs compared and a
//! re-run, paged lists with totals, invalid cascades marked, the layout fixes, and a screen's routes as
//! buttons (no wait shown as an error once answered).

use std::time::Duration;

use rvbbit_core::{SessionId, Timestamp};
use rvbbit_store::Session;
use rvbbit_testkit::{Reply, Script, TestServer};
use serde_json::{Value, json};

use crate::{ANSWER_WAIT, Running};

/// A screen with two route buttons between two deterministic cells.
const SCREEN: &str = r#"
cascade_id: review_screen
cells:
  - name: draft
    tool: set_state
    inputs: {key: summary, value: "A short draft"}
  - name: approve
    htmx: |
      <h3>Review</h3><p>{{ state.summary }}</p>
      {{ route_button("Ship it", "publish") }} {{ route_button("Redo", "draft") }}
    handoffs: [publish, draft]
  - name: publish
    tool: set_state
    inputs: {key: shipped, value: "yes"}
"#;

async fn page(s: &Running, path: &str) -> (u16, String) {
    let r = s.http.get(s.url(path)).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.text().await.unwrap().replace("&#x2f;", "/"))
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// POST a Studio form as the browser would (same origin); the status and the `Location`.
async fn post_form(s: &Running, path: &str, form: &[(&str, &str)]) -> (u16, String, String) {
    let host = s.base.trim_start_matches("http://").to_owned();
    let r = no_redirects()
        .post(s.url(path))
        .header("origin", format!("http://{host}"))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let location = r
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, location, r.text().await.unwrap_or_default())
}

async fn run(s: &Running, cascade: &str, input: Value) -> String {
    let (status, out) = s
        .post(
            "/api/v1/runs?wait=true",
            &json!({"cascade": cascade, "input": input}),
        )
        .await;
    assert_eq!(status, 200, "{out}");
    out["session_id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_14_costs_show_cost_tokens_and_latency_over_time_with_a_range_picker() {
    let llm = TestServer::start(Script::sequence([Reply::text("Ahoy, Ada!").usage(1000, 200)])).await;
    let s = Running::start_llm(&llm.base_url(), |c| c).await;
    run(&s, "hello.yaml", json!({"name": "Ada"})).await;

    let (status, html) = page(&s, "/costs?range=24h&by=model").await;
    assert_eq!(status, 200, "{html}");
    for id in ["chart-cost", "chart-tokens", "chart-latency"] {
        assert!(
            html.contains(&format!("<svg class=\"chart line\" id=\"{id}\" role=\"img\"")),
            "{id}: {html}"
        );
    }
    // One line per model, hourly buckets over the day, and the range picker marks 24h.
    assert!(
        html.contains("<title id=\"chart-cost-title\">Cost per model, last 24h</title>"),
        "{html}"
    );
    assert!(
        html.contains("gpt-4o-mini\"><path d=\"M"),
        "a line per model: {html}"
    );
    assert!(html.contains("over 25 buckets"), "{html}");
    assert!(
        html.contains("class=\"on\" aria-current=\"true\">24h</a>"),
        "{html}"
    );
    // The call: 150 + 120 µ$ (gpt-4o-mini's prices), 1200 tokens.
    assert!(html.contains("· $0.00027</title></circle>"), "{html}");
    assert!(html.contains("· 1.2k</title></circle>"), "{html}");
    assert!(html.contains(" ms</title></circle>"), "latency is drawn: {html}");
    // No bar per day any more.
    assert!(!html.contains("<svg class=\"chart bars\""), "{html}");

    let (_, by_cascade) = page(&s, "/costs?range=7d&by=cascade").await;
    assert!(by_cascade.contains("data-series=\"hello_llm\""), "{by_cascade}");
    assert!(
        by_cascade.contains("over 29 buckets"),
        "six-hour buckets: {by_cascade}"
    );
    let (status, bad) = page(&s, "/costs?range=1y").await;
    assert_eq!(status, 400);
    assert!(
        bad.contains("RVB-A001") && bad.contains("24h, 7d, 30d or 90d"),
        "{bad}"
    );
    s.shutdown().await;
    llm.shutdown().await;
}

async fn waiting(s: &Running, id: &str) {
    for _ in 0..400 {
        let (_, sess) = s.get(&format!("/api/v1/sessions/{id}")).await;
        if sess["status"] == "waiting" {
            let (_, w) = s.get(&format!("/api/v1/sessions/{id}/waits")).await;
            if w["waits"].as_array().is_some_and(|w| !w.is_empty()) {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("session {id} never waited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_8_a_screen_is_answered_with_its_route_buttons_and_its_wait_is_no_error_once_answered() {
    ANSWER_WAIT.with(|w| w.set(Duration::ZERO));
    let s = Running::start(|c| c).await;
    std::fs::write(s.root().join("screen.yaml"), SCREEN).unwrap();
    let (_, started) = s.post("/api/v1/runs", &json!({"cascade": "screen.yaml"})).await;
    let id = started["session_id"].as_str().unwrap().to_owned();
    waiting(&s, &id).await;

    let (_, html) = page(&s, &format!("/sessions/{id}")).await;
    // The screen as text and one button per route, not a bare JSON box.
    assert!(
        html.contains("<pre class=\"screen\" id=\"screen-approve\">Review\nA short draft</pre>"),
        "{html}"
    );
    assert!(
        html.contains("<button name=\"value\" value=\"{&quot;_route&quot;:&quot;publish&quot;}\" title=\"goes on to publish\">Ship it</button>"),
        "{html}"
    );
    assert!(
        html.contains("title=\"goes on to draft\">Redo</button>"),
        "{html}"
    );
    assert!(
        html.contains("<span class=\"badge waiting\">waiting</span>"),
        "the cell waits: {html}"
    );
    assert!(!html.contains("RVB-H001"), "a wait is not an error: {html}");
    assert!(
        html.contains("<h2 class=\"live-title\" hidden>Live</h2>"),
        "no empty Live heading: {html}"
    );

    let (status, location, body) = post_form(
        &s,
        &format!("/sessions/{id}/answer"),
        &[
            ("signal", "approve"),
            ("kind", "screen"),
            ("value", r#"{"_route":"publish"}"#),
        ],
    )
    .await;
    assert_eq!(status, 303, "{body}");
    assert_eq!(location, format!("/sessions/{id}"));
    let done = s.wait_finished(&id).await;
    assert_eq!(done["status"], "completed", "{done}");

    let (_, html) = page(&s, &format!("/sessions/{id}")).await;
    assert!(
        !html.contains("RVB-H001"),
        "the answered wait is not an error card: {html}"
    );
    assert!(!html.contains("class=\"cell error\""), "{html}");
    assert!(
        html.contains("<span class=\"badge waited\">waited</span>"),
        "{html}"
    );
    assert!(html.contains("routed to <strong>publish</strong>"), "{html}");
    // The waterfall marks the route the screen took, and the human's answer.
    let svg = html
        .split("<svg class=\"chart waterfall\"")
        .nth(1)
        .expect("a waterfall")
        .split("</svg>")
        .next()
        .unwrap();
    assert!(svg.contains("routes taken: approve → publish"), "{svg}");
    assert!(svg.contains("class=\"route\""), "{svg}");
    assert!(
        svg.contains("<g class=\"bar wait d1\">"),
        "the human's answer is a bar: {svg}"
    );
    assert!(
        svg.contains(">draft</text>") && svg.contains(">publish</text>"),
        "{svg}"
    );
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_14_two_runs_compare_side_by_side_and_a_session_reruns_with_its_input() {
    let s = Running::start(|c| c).await;
    let first = run(&s, "three.yaml", json!({"name": "Ada"})).await;
    let (_, html) = page(&s, &format!("/sessions/{first}")).await;
    assert!(
        html.contains("id=\"rerun\""),
        "a finished session offers a re-run: {html}"
    );

    let (status, location, body) = post_form(&s, &format!("/sessions/{first}/rerun"), &[]).await;
    assert_eq!(status, 303, "{body}");
    let second = location.strip_prefix("/sessions/").unwrap().to_owned();
    assert_ne!(second, first);
    let done = s.wait_finished(&second).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["input"], json!({"name": "Ada"}), "the same input");
    assert_eq!(done["cascade_id"], "three");

    // The first run's page offers the second to compare with.
    let (_, html) = page(&s, &format!("/sessions/{first}")).await;
    assert!(html.contains(&format!("<option value=\"{second}\">")), "{html}");
    let (status, cmp) = page(&s, &format!("/compare?a={first}&b={second}")).await;
    assert_eq!(status, 200, "{cmp}");
    assert!(
        cmp.contains(&format!("href=\"/sessions/{first}\""))
            && cmp.contains(&format!("href=\"/sessions/{second}\""))
    );
    let table = cmp.split("id=\"compare-path\"").nth(1).unwrap();
    for cell in ["scores", "remember", "greet"] {
        assert!(
            table.contains(&format!("<strong>{cell}</strong>")),
            "{cell}: {table}"
        );
    }
    assert!(!table.contains("class=\"differs\""), "same path: {table}");
    let facts = cmp
        .split("id=\"compare\"")
        .nth(1)
        .unwrap()
        .split("</table>")
        .next()
        .unwrap();
    assert!(facts.contains("Input") && facts.contains("Ada"), "{facts}");
    assert!(
        !facts.contains("class=\"differs\""),
        "same input, output and status: {facts}"
    );

    // A different input differs.
    let third = run(&s, "three.yaml", json!({"name": "Bo"})).await;
    let (_, cmp) = page(&s, &format!("/compare?a={first}&b={third}")).await;
    let input_row = cmp.split("<tr class=\"differs\"><th scope=\"row\">Input").nth(1);
    assert!(input_row.is_some(), "the input differs: {cmp}");

    // A session without recorded cascade text cannot be re-run: 409, RVB-A007, as a page.
    let mut bare = Session::new("no-text-1".parse::<SessionId>().unwrap());
    bare.cascade_id = Some("three".into());
    bare.status = rvbbit_core::SessionStatus::Completed;
    bare.ended_at = Some(Timestamp::now());
    s.store.put_sessions(&[bare]).await.unwrap();
    let (status, _, body) = post_form(&s, "/sessions/no-text-1/rerun", &[]).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body.contains("RVB-A007") && body.contains("recorded no cascade text"),
        "{body}"
    );
    // And the form is refused from another site.
    let r = no_redirects()
        .post(s.url(&format!("/sessions/{first}/rerun")))
        .header("origin", "http://evil.example")
        .form(&[("model", "")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_14_lists_are_paged_with_totals_and_invalid_cascades_are_marked() {
    let s = Running::start(|c| c).await;
    let base = Timestamp::now().micros() - 3_600_000_000;
    let sessions: Vec<Session> = (0..57)
        .map(|i| {
            let mut x = Session::new(format!("paged-{i:02}").parse::<SessionId>().unwrap());
            x.cascade_id = Some("paged".into());
            x.status = if i % 10 == 0 {
                rvbbit_core::SessionStatus::Failed
            } else {
                rvbbit_core::SessionStatus::Completed
            };
            x.started_at = Timestamp::from_micros(base + i * 1_000_000);
            x.ended_at = Some(Timestamp::from_micros(base + i * 1_000_000 + 500));
            x
        })
        .collect();
    s.store.put_sessions(&sessions).await.unwrap();

    let (status, first) = page(&s, "/?cascade_id=paged").await;
    assert_eq!(status, 200);
    assert!(first.contains("57 session(s) match, costing $0"), "{first}");
    assert!(
        first.contains(">51 completed</span>") && first.contains(">6 failed</span>"),
        "{first}"
    );
    assert_eq!(
        first
            .matches("<tr>\n    <td class=\"mono\"><a href=\"/sessions/paged-")
            .count(),
        50,
        "{first}"
    );
    assert!(
        first.contains("paged-56") && !first.contains("paged-06<"),
        "newest first"
    );
    let older = first
        .split("id=\"older\"")
        .next()
        .unwrap()
        .rsplit("href=\"")
        .next()
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .replace("&amp;", "&");
    assert!(older.starts_with("/?cascade_id=paged&before="), "{older}");
    let (_, second) = page(&s, &older).await;
    assert_eq!(second.matches("href=\"/sessions/paged-").count(), 7, "{second}");
    assert!(
        second.contains("paged-00") && !second.contains("paged-07<"),
        "{second}"
    );
    assert!(
        second.contains("id=\"newest\"") && !second.contains("id=\"older\""),
        "{second}"
    );
    let (status, bad) = page(&s, "/?before=yesterday").await;
    assert_eq!(status, 400, "{bad}");

    let (_, list) = page(&s, "/cascades").await;
    assert!(list.contains("cascade(s) under the server's roots"), "{list}");
    let bad_row = list
        .split("<tr class=\"invalid\">")
        .nth(1)
        .expect("bad.yaml is marked")
        .split("</tr>")
        .next()
        .unwrap();
    assert!(
        bad_row.contains("bad.yaml") && bad_row.contains("invalid · 1 error(s)"),
        "{bad_row}"
    );
    let good_row = list
        .split("href=\"/cascades/three.yaml\"")
        .nth(1)
        .unwrap()
        .split("</tr>")
        .next()
        .unwrap();
    assert!(!good_row.contains("invalid"), "{good_row}");
    assert!(
        good_row.contains("badge ok\">valid") || good_row.contains("warning(s)"),
        "{good_row}"
    );
    assert!(list.contains("1 invalid"), "{list}");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_14_the_source_view_is_single_spaced_and_words_are_not_broken() {
    let s = Running::start(|c| c).await;
    let (_, bad) = page(&s, "/cascades/bad.yaml").await;
    let source = bad
        .split("<ol class=\"code\" id=\"source\">")
        .nth(1)
        .unwrap()
        .split("</ol>")
        .next()
        .unwrap();
    // Each line is one `<li>` with nothing but its code (and diagnostics) inside: no blank text that a
    // `white-space: pre` would turn into empty lines.
    for li in source.split("<li ").skip(1) {
        let inner = li.split_once('>').unwrap().1.split("</li>").next().unwrap();
        assert!(inner.starts_with("<span class=\"ln\">"), "{inner:?}");
        let after_code = inner.split("</code>").nth(1).unwrap();
        assert!(
            after_code.is_empty() || after_code.starts_with("<div class=\"diag"),
            "{after_code:?}"
        );
    }
    let css = s
        .http
        .get(s.url("/static/studio.css"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !css.contains("break-all"),
        "words such as `tokens` are not broken mid-word"
    );
    assert!(css.contains("ol.code li code { white-space: pre; }"));
    s.shutdown().await;
}
