//! The Studio's pages over HTTP: rendering, escaping, the run form (with its CSRF check), the sign-in
//! cookie, and what an LLM call shows.

use rvbbit_testkit::{Reply, Script, TestServer};
use serde_json::json;

use crate::Running;

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn page(s: &Running, path: &str) -> (u16, String) {
    let r = s.http.get(s.url(path)).send().await.unwrap();
    let status = r.status().as_u16();
    // minijinja escapes `/` as `&#x2f;` (browsers read it back as `/`).
    (status, r.text().await.unwrap().replace("&#x2f;", "/"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_render_sessions_and_escape_what_users_typed() {
    let s = Running::start(|c| c).await;
    let evil = "<script>alert(1)</script>";
    let (_, out) = s
        .post(
            "/api/v1/runs?wait=true",
            &json!({"cascade": "three.yaml", "input": {"name": evil}}),
        )
        .await;
    let id = out["session_id"].as_str().unwrap().to_owned();

    let (status, list) = page(&s, "/").await;
    assert_eq!(status, 200);
    assert!(list.contains(&format!("href=\"/sessions/{id}\"")), "{list}");
    assert!(list.contains("badge completed"));

    let (status, html) = page(&s, &format!("/sessions/{id}")).await;
    assert_eq!(status, 200);
    for cell in ["scores", "remember", "greet"] {
        assert!(
            html.contains(&format!("<span class=\"name\">{cell}</span>")),
            "{cell}"
        );
    }
    assert!(!html.contains(evil), "user input is escaped");
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;"),
        "escaped, not dropped"
    );
    assert!(
        html.contains("data-active=\"false\""),
        "a finished session is not followed live: {}",
        html.lines()
            .filter(|l| l.contains("data-active"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        html.contains("tool call") && html.contains("linux_shell"),
        "tool calls are shown"
    );

    let (status, filtered) = page(&s, "/?status=failed").await;
    assert_eq!(status, 200);
    assert!(!filtered.contains(&id));
    assert!(filtered.contains("No sessions match"));

    let (status, bad) = page(&s, "/?status=sleeping").await;
    assert_eq!(status, 400);
    assert!(
        bad.contains("RVB-A001") && bad.contains("<html"),
        "errors are pages too"
    );

    let css = s.http.get(s.url("/static/studio.css")).send().await.unwrap();
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    let js = s.http.get(s.url("/static/studio.js")).send().await.unwrap();
    assert!(js.text().await.unwrap().contains("EventSource"));
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_page_shows_what_the_model_saw_and_said_and_costs_add_up() {
    let llm = TestServer::start(Script::sequence([Reply::text("Ahoy, Ada!").usage(1000, 200)])).await;
    let s = Running::start_llm(&llm.base_url(), |c| c).await;
    let (_, out) = s
        .post(
            "/api/v1/runs?wait=true",
            &json!({"cascade": "hello.yaml", "input": {"name": "Ada"}}),
        )
        .await;
    assert_eq!(out["status"], "completed", "{out}");
    let id = out["session_id"].as_str().unwrap().to_owned();
    let (_, html) = page(&s, &format!("/sessions/{id}")).await;
    assert!(
        html.contains("Write a one-line greeting for Ada."),
        "the prompt sent"
    );
    assert!(html.contains("Ahoy, Ada!"), "the reply");
    assert!(html.contains("gpt-4o-mini"), "the model");
    assert!(html.contains("1000→200 tokens"), "{html}");
    // gpt-4o-mini: $0.15 / 1M input, $0.60 / 1M output → 150 + 120 µ$.
    assert!(html.contains("$0.00027"), "{html}");

    let (_, api) = s.get("/api/v1/costs?group=caller").await;
    assert_eq!(api["rows"][0]["key"], out["caller_id"], "{api}");
    assert_eq!(api["rows"][0]["cost_micro_usd"], 270);
    assert_eq!(api["rows"][0]["calls"], 1);
    let (status, costs) = page(&s, "/costs?group=model").await;
    assert_eq!(status, 200);
    assert!(costs.contains("gpt-4o-mini"), "{costs}");
    assert!(
        costs.contains("<rect x=\"200\" y=\"3\" height=\"18\" width=\"380\""),
        "{costs}"
    );
    assert!(costs.contains("$0.00027"));
    let (status, by_day) = page(&s, "/costs").await;
    assert_eq!(status, 200);
    assert!(by_day.contains(&rvbbit_core::Timestamp::now().to_rfc3339()[..10]));
    s.shutdown().await;
    llm.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cascade_pages_show_diagnostics_in_place_and_the_run_form_starts_a_run() {
    let s = Running::start(|c| c).await;
    let (status, list) = page(&s, "/cascades").await;
    assert_eq!(status, 200);
    assert!(list.contains("href=\"/cascades/nested/three.yaml\""));

    let (_, bad) = page(&s, "/cascades/bad.yaml").await;
    let line6 = bad
        .split("id=\"L6\"")
        .nth(1)
        .unwrap()
        .split("</li>")
        .next()
        .unwrap();
    assert!(line6.contains("RVB-V008") && line6.contains("nowhere"), "{line6}");
    assert!(
        !bad.contains("id=\"run-form\""),
        "an invalid cascade has no run form"
    );

    let (_, good) = page(&s, "/cascades/three.yaml").await;
    assert!(
        good.contains("name=\"input.name\""),
        "inputs_schema becomes fields"
    );
    assert!(good.contains("0 error(s)"));

    let http = no_redirects();
    let host = s.base.trim_start_matches("http://").to_owned();
    let form = [("cascade", "three.yaml"), ("input.name", "Grace"), ("model", "")];
    let r = http
        .post(s.url("/runs"))
        .header("origin", format!("http://{host}"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let id = location.strip_prefix("/sessions/").unwrap().to_owned();
    let session = s.wait_finished(&id).await;
    assert_eq!(session["status"], "completed");
    assert_eq!(session["input"], json!({"name": "Grace"}));
    assert!(session["caller_id"].as_str().unwrap().starts_with("http-"));

    // Another site cannot make a visitor's browser start runs.
    for origin in [Some("http://evil.example"), None] {
        let mut req = http.post(s.url("/runs")).form(&form);
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status().as_u16(), 403, "{origin:?}");
    }
    let r = http
        .post(s.url("/runs"))
        .header("sec-fetch-site", "cross-site")
        .header("origin", format!("http://{host}"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_keys_required_pages_ask_to_sign_in_and_the_cookie_lets_them_through() {
    let s = Running::start(|c| c.with_required_key(true)).await;
    let http = no_redirects();
    let r = http.get(s.url("/costs?group=model")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(r.headers()["location"], "/login?next=/costs%3Fgroup%3Dmodel");
    assert_eq!(
        http.get(s.url("/login")).send().await.unwrap().status().as_u16(),
        200
    );
    assert_eq!(
        http.get(s.url("/static/studio.css"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    let key = rvbbit_server::auth::generate("browser");
    s.store.key_insert(&key.key).await.unwrap();
    let host = s.base.trim_start_matches("http://").to_owned();
    let wrong = http
        .post(s.url("/login"))
        .header("origin", format!("http://{host}"))
        .form(&[("key", "rvb_wrong"), ("next", "/costs")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 303);
    assert!(
        wrong.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/login?failed=1")
    );
    assert!(wrong.headers().get("set-cookie").is_none());
    let ok = http
        .post(s.url("/login"))
        .header("origin", format!("http://{host}"))
        .form(&[("key", key.secret.as_str()), ("next", "https://evil.example/")])
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 303);
    assert_eq!(ok.headers()["location"], "/", "no open redirect");
    let cookie = ok.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_owned();
    let r = http.get(s.url("/")).header("cookie", &pair).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // The API accepts the cookie too (the Studio's own EventSource uses it).
    let r = http
        .get(s.url("/api/v1/sessions"))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sql_console_shows_rows_keeps_its_session_and_points_at_errors() {
    let s = Running::start(|c| c).await;
    let (status, html) = page(&s, "/sql").await;
    assert_eq!(status, 200);
    assert!(html.contains("<textarea name=\"query\""), "{html}");
    assert!(html.contains("all_data"), "the table list names the magic tables");

    let http = no_redirects();
    let origin = format!("http://{}", s.base.trim_start_matches("http://"));
    let post = |form: Vec<(&'static str, String)>| {
        http.post(s.url("/sql"))
            .header("origin", origin.clone())
            .form(&form)
            .send()
    };
    let r = post(vec![(
        "query",
        "CREATE TABLE notes AS SELECT * FROM (VALUES (1, '<b>bold</b>'), (2, NULL)) AS t(n, body)".into(),
    )])
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let html = r.text().await.unwrap();
    let session = html
        .split("name=\"session_id\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    assert!(session.starts_with("sql_"), "{session}");

    let r = post(vec![
        ("query", "SELECT n, body FROM notes ORDER BY n".into()),
        ("session_id", session.clone()),
    ])
    .await
    .unwrap();
    let html = r.text().await.unwrap();
    assert!(html.contains("id=\"sql-result\""), "{html}");
    assert!(html.contains("2 row(s)"), "{html}");
    assert!(
        html.contains("&lt;b&gt;bold&lt;&#x2f;b&gt;"),
        "values are escaped: {html}"
    );
    assert!(html.contains("<td class=\"null\">NULL</td>"));
    assert!(
        html.contains("caller <a class=\"mono\" href=\"/?caller_id=http-"),
        "{html}"
    );
    assert!(
        html.contains("<code>notes</code>"),
        "the session's own table is listed"
    );

    // An error: code, message, and a caret under the column the parser stopped at.
    let r = post(vec![
        ("query", "SELECT n\nFROM notes WHERE n = = 1".into()),
        ("session_id", session.clone()),
    ])
    .await
    .unwrap();
    let html = r.text().await.unwrap();
    assert!(html.contains("id=\"sql-error\""), "{html}");
    assert!(html.contains("RVB-Q001"));
    let caret = html
        .split("id=\"sql-error-position\">")
        .nth(1)
        .and_then(|rest| rest.split("</pre>").next())
        .unwrap()
        .to_owned();
    let lines: Vec<&str> = caret.lines().collect();
    assert!(lines[0].starts_with("line 2, column "), "{caret}");
    assert_eq!(lines[1], "FROM notes WHERE n = = 1");
    let column: usize = lines[0]
        .trim_start_matches("line 2, column ")
        .trim_end_matches(':')
        .parse()
        .unwrap();
    assert_eq!(lines[2], format!("{}^", " ".repeat(column - 1)));
    assert_eq!(
        &lines[1][column - 1..column],
        "=",
        "the caret is under the second `=`"
    );

    // Cross-site posts are refused like every Studio form.
    let r = http
        .post(s.url("/sql"))
        .header("origin", "http://evil.example")
        .form(&[("query", "SELECT 1")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    s.shutdown().await;
}
