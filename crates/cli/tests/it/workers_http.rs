//! `POST /api/v1/runs?queue=true`: the HTTP door enqueues for workers, deduplicated by submission id.

use std::time::Duration;

use rvbbit_testkit::nats::TestNats;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::workers::{cmd, count, eventually, queue_status, runtime, worker};

const ECHO: &str = "cascade_id: queued_echo\ncells:\n  - name: echo\n    tool: linux_shell\n    inputs:\n      command: 'echo hello {{ input.name | q }}'\n";

#[test]
fn queued_http_runs_go_to_workers_once_per_submission_id() {
    let rt = runtime();
    let nats = TestNats::start();
    let pg = rvbbit_testkit::postgres::fresh_database();
    let dir = TempDir::new().unwrap();
    std::fs::create_dir(dir.path().join("cascades")).unwrap();
    std::fs::write(dir.path().join("cascades/echo.yaml"), ECHO).unwrap();
    let (mut server, port, _) = crate::spawn_server(
        cmd(dir.path(), &nats.url(), &pg).args(["serve", "--port", "0", "--root", "cascades"]),
        "http://",
    );
    let base = format!("http://127.0.0.1:{port}");
    let post = |query: &str, body: Value| -> (u16, Value) {
        rt.block_on(async {
            let r = reqwest::Client::new()
                .post(format!("{base}/api/v1/runs{query}"))
                .json(&body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json().await.unwrap())
        })
    };
    let body = json!({"cascade": "echo.yaml", "input": {"name": "Ada"}, "submission_id": "order-1182"});
    let (code, first) = post("?queue=true", body.clone());
    assert_eq!(code, 202, "{first}");
    assert_eq!(
        (
            first["submission_id"].clone(),
            first["duplicate"].clone(),
            first["status"].clone()
        ),
        ("order-1182".into(), false.into(), "queued".into())
    );
    assert_eq!(first["caller_id"], "queue-order-1182");
    assert_eq!(
        first["links"]["sessions"],
        "/api/v1/sessions?caller_id=queue-order-1182"
    );
    let (code, again) = post("?queue=true", body);
    assert_eq!(code, 202, "{again}");
    assert_eq!(
        again["duplicate"], true,
        "the same submission id is one job: {again}"
    );
    assert_eq!(queue_status(dir.path(), &nats.url(), &pg)["status"]["depth"], 1);

    // Refused before anything is enqueued: combinations a queued run cannot honour, a bad id, an
    // invalid cascade, and a submission id without `queue=true`.
    for (query, body, wanted) in [
        (
            "?queue=true&wait=true",
            json!({"cascade": "echo.yaml"}),
            "`wait=true` cannot be combined",
        ),
        (
            "?queue=true",
            json!({"cascade": "echo.yaml", "model": "m"}),
            "`model` cannot be chosen",
        ),
        (
            "?queue=true",
            json!({"cascade": "echo.yaml", "submission_id": "a/b"}),
            "`submission_id`",
        ),
        (
            "?queue=true",
            json!({"cascade": "echo.yaml", "submission_id": "x".repeat(101)}),
            "a submission id has 1 to 100 characters",
        ),
        (
            "",
            json!({"cascade": "echo.yaml", "submission_id": "x"}),
            "only taken with `queue=true`",
        ),
    ] {
        let (code, err) = post(query, body);
        assert_eq!(code, 400, "{query}: {err}");
        assert!(err["message"].as_str().unwrap().contains(wanted), "{err}");
    }
    assert_eq!(
        queue_status(dir.path(), &nats.url(), &pg)["status"]["depth"],
        1,
        "nothing more was enqueued"
    );

    // A worker runs it once; the session is the queue's caller.
    let mut w = worker(dir.path(), &nats.url(), &pg, &[]);
    assert!(eventually(Duration::from_secs(60), || {
        count(
            &rt,
            &pg,
            "SELECT count(*) FROM sessions WHERE caller_id = 'queue-order-1182' AND status = 'completed'",
        ) == 1
    }));
    let sessions: Value = rt.block_on(async {
        reqwest::get(format!("{base}/api/v1/sessions?caller_id=queue-order-1182"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    assert_eq!(
        sessions["sessions"].as_array().map(Vec::len),
        Some(1),
        "{sessions}"
    );
    crate::workers::signal(&w, rustix::process::Signal::TERM);
    assert_eq!(
        crate::workers::exit_within(&mut w, Duration::from_secs(30)),
        Some(0)
    );
    server.kill().unwrap();
    server.wait().unwrap();
}

#[test]
fn a_server_without_a_queue_or_with_an_unreachable_one_refuses_queued_runs_with_a_code() {
    let rt = runtime();
    let dir = TempDir::new().unwrap();
    std::fs::create_dir(dir.path().join("cascades")).unwrap();
    std::fs::write(dir.path().join("cascades/echo.yaml"), ECHO).unwrap();
    let dead_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for (queue, status, code) in [
        (None, 409, "RVB-C003"),
        (
            Some(format!("nats://ops:s3cret@127.0.0.1:{dead_port}")),
            503,
            "RVB-S011",
        ),
    ] {
        let mut c = crate::rvbbit(dir.path());
        c.args(["serve", "--port", "0", "--root", "cascades"]);
        if let Some(url) = &queue {
            c.env("RVBBIT_QUEUE_URL", url);
        }
        let (mut server, port, _) = crate::spawn_server(&mut c, "http://");
        let (got, body): (u16, Value) = rt.block_on(async {
            let r = reqwest::Client::new()
                .post(format!("http://127.0.0.1:{port}/api/v1/runs?queue=true"))
                .json(&json!({"cascade": "echo.yaml"}))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json().await.unwrap())
        });
        assert_eq!(got, status, "{body}");
        assert_eq!(body["code"], code, "{body}");
        let shown = body.to_string();
        assert!(
            !shown.contains("s3cret") && !shown.contains(&dead_port.to_string()),
            "{shown}"
        );
        // The server keeps serving.
        let health = rt.block_on(async {
            reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
                .await
                .unwrap()
                .status()
                .as_u16()
        });
        assert_eq!(health, 200);
        server.kill().unwrap();
        server.wait().unwrap();
    }
}
