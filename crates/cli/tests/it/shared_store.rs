//! Real `rvbbit` processes sharing one PostgreSQL store (issue 17): many processes in different working
//! directories, LLM calls against the testkit, racing resumes, and a store that cannot be reached.
//! The server is the testkit's throwaway PostgreSQL (a fresh database per test).

use std::path::Path;
use std::process::{Command, Output, Stdio};

use rvbbit_testkit::{Reply, Script, TestServer};
use tempfile::TempDir;

use crate::run_command::write;
use crate::rvbbit;

const SHELL: &str = "cascade_id: pg_shell\ncells:\n  - name: a\n    tool: linux_shell\n    inputs: {command: 'echo a'}\n  - name: b\n    tool: linux_shell\n    inputs: {command: 'echo b'}\n";
const LLM: &str =
    "cascade_id: pg_llm\ncells:\n  - name: greet\n    instructions: 'Say hi to {{ input.name }}'\n";

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// `rvbbit` in `dir` with its store in PostgreSQL at `url`.
fn on_postgres(dir: &Path, url: &str) -> Command {
    let mut cmd = rvbbit(dir);
    cmd.env("RVBBIT_STORE_URL", url);
    cmd
}

/// Rows of a query against the store's database.
fn query(rt: &tokio::runtime::Runtime, url: &str, sql: &str) -> Vec<tokio_postgres::Row> {
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        client.query(sql, &[]).await.unwrap()
    })
}

#[test]
fn eight_processes_times_25_runs_into_one_postgres_store_record_every_event_once() {
    let rt = runtime();
    let url = rvbbit_testkit::postgres::fresh_database();
    // Every LLM call costs exactly $0.000125 (125 micro-dollars), so the total is known.
    let server = rt.block_on(TestServer::start(Script::rule(|_| {
        Reply::text("hi").usage(10, 5).cost(0.000125)
    })));
    let base_url = server.base_url();
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let (url, base_url) = (url.clone(), base_url.clone());
            std::thread::spawn(move || {
                // Each process in its own working directory, as on separate machines.
                let dir = TempDir::new().unwrap();
                let shell = write(dir.path(), "shell.yaml", SHELL);
                let llm = write(dir.path(), "llm.yaml", LLM);
                for i in 0..25 {
                    let mut cmd = on_postgres(dir.path(), &url);
                    if i % 2 == 0 {
                        cmd.args(["run", &shell]);
                    } else {
                        cmd.env("RVBBIT_PROVIDER_BASE_URL", &base_url)
                            .env("OPENROUTER_API_KEY", "test-key")
                            .env("RVBBIT_DEFAULT_MODEL", "test/model")
                            .args(["run", &llm, "--input", &format!("{{\"name\": \"w{w}-{i}\"}}")]);
                    }
                    let out = cmd.stdin(Stdio::null()).output().unwrap();
                    assert_eq!(out.status.code(), Some(0), "worker {w} run {i}: {}", text(&out));
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let llm_runs = 8 * 12;
    assert_eq!(server.requests(), llm_runs, "one call per LLM run");
    let sessions = query(
        &rt,
        &url,
        "SELECT count(*), count(*) FILTER (WHERE status = 'completed') FROM sessions",
    );
    assert_eq!(
        (sessions[0].get::<_, i64>(0), sessions[0].get::<_, i64>(1)),
        (200, 200)
    );
    let events = query(
        &rt,
        &url,
        "SELECT count(*), count(DISTINCT event_id), coalesce(sum(cost_micro_usd), 0)::bigint,
                count(*) FILTER (WHERE kind = 'llm_response') FROM events",
    );
    let (total, distinct, cost, calls): (i64, i64, i64, i64) = (
        events[0].get(0),
        events[0].get(1),
        events[0].get(2),
        events[0].get(3),
    );
    assert!(total > 200 * 3, "every run recorded its events: {total}");
    assert_eq!(total, distinct, "no event stored twice");
    assert_eq!(calls, llm_runs as i64, "every call recorded once");
    assert_eq!(cost, 125 * llm_runs as i64, "costs equal the sum of the calls");
    // Every run's events are complete: one start and one completion per session.
    let bounds = query(
        &rt,
        &url,
        "SELECT count(*) FILTER (WHERE kind = 'cascade_start'), count(*) FILTER (WHERE kind = 'cascade_complete')
         FROM events",
    );
    assert_eq!(
        (bounds[0].get::<_, i64>(0), bounds[0].get::<_, i64>(1)),
        (200, 200)
    );
    // The same store read back through the CLI from yet another directory.
    let elsewhere = TempDir::new().unwrap();
    let out = on_postgres(elsewhere.path(), &url)
        .args(["--output", "json", "costs", "by-model"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(doc.to_string().contains("test/model"), "{doc}");
    rt.block_on(server.shutdown());
}

const GATED: &str = r#"
cascade_id: pg_gated
cells:
  - name: gate
    tool: linux_shell
    inputs: {command: "echo gated"}
    human_input:
      type: choice
      prompt: "Go on?"
      options: [{label: "Yes", value: go}, {label: "No", value: stop}]
  - name: last
    tool: linux_shell
    inputs: {command: "echo done"}
"#;

#[test]
fn two_processes_racing_to_resume_on_postgres_continue_each_session_once() {
    let rt = runtime();
    let url = rvbbit_testkit::postgres::fresh_database();
    let (a_dir, b_dir) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    let file = write(a_dir.path(), "gated.yaml", GATED);
    for round in 0..10 {
        let session = format!("pg-race-{round}");
        let out = on_postgres(a_dir.path(), &url)
            .args(["run", &file, "--session", &session, "--detach"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(10), "{}", text(&out));
        let sent = on_postgres(b_dir.path(), &url)
            .args(["signal", "send", &session, "gate", "--value", "\"go\""])
            .output()
            .unwrap();
        assert_eq!(sent.status.code(), Some(0), "{}", text(&sent));
        // Two processes in two working directories, on one shared store.
        let spawn = |dir: &Path| {
            on_postgres(dir, &url)
                .args(["resume", &session, "--detach"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (a, b) = (spawn(a_dir.path()), spawn(b_dir.path()));
        let outs = [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()];
        let codes: Vec<Option<i32>> = outs.iter().map(|o| o.status.code()).collect();
        assert!(
            codes.contains(&Some(0)) && codes.contains(&Some(5)),
            "round {round}: exactly one continues\n{}\n{}",
            text(&outs[0]),
            text(&outs[1])
        );
        let loser = outs.iter().find(|o| o.status.code() == Some(5)).unwrap();
        assert!(
            String::from_utf8_lossy(&loser.stderr).contains("error[RVB-S006]"),
            "{}",
            text(loser)
        );
    }
    let rows = query(
        &rt,
        &url,
        "SELECT count(*) FROM events WHERE kind = 'cell_start' AND cell_name = 'last'",
    );
    assert_eq!(
        rows[0].get::<_, i64>(0),
        10,
        "the cell after the wait ran once per session"
    );
    let rows = query(
        &rt,
        &url,
        "SELECT count(*) FROM sessions WHERE status = 'completed'",
    );
    assert_eq!(rows[0].get::<_, i64>(0), 10);
    // A second answer to an answered signal is refused.
    let again = on_postgres(b_dir.path(), &url)
        .args(["signal", "send", "pg-race-0", "gate", "--value", "\"stop\""])
        .output()
        .unwrap();
    assert_ne!(again.status.code(), Some(0), "{}", text(&again));
}

#[test]
fn an_unreachable_postgres_store_spills_and_exits_5_naming_the_url_with_its_password_masked() {
    let dir = TempDir::new().unwrap();
    let file = write(dir.path(), "shell.yaml", SHELL);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://ada:hunter2@127.0.0.1:{port}/rvbbit");
    let out = on_postgres(dir.path(), &url)
        .args(["run", &file])
        .output()
        .unwrap();
    // The run still happens; its records spill (nothing lost) and the command exits 5 saying so.
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("RVB-S003") && err.contains("were spilled"), "{err}");
    assert!(err.contains("unavailable while trying to connect"), "{err}");
    assert!(err.contains("rvbbit db replay"), "{err}");
    let spilled = std::fs::read_dir(dir.path().join(".rvbbit/spill"))
        .unwrap()
        .count();
    assert!(spilled >= 1, "a spill file holds the run");
    assert!(
        err.contains(&format!("postgres://ada:****@127.0.0.1:{port}/rvbbit")),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
    let out = on_postgres(dir.path(), &url).args(["doctor"]).output().unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("hunter2"));
}

#[test]
fn db_copy_moves_a_laptop_store_into_postgres_and_a_second_copy_adds_nothing() {
    let laptop = TempDir::new().unwrap();
    let file = write(laptop.path(), "shell.yaml", SHELL);
    for _ in 0..2 {
        let out = rvbbit(laptop.path()).args(["run", &file]).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }
    let url = rvbbit_testkit::postgres::fresh_database();
    let copy = |expect_new: bool| {
        let out = rvbbit(laptop.path())
            .args(["--output", "json", "db", "copy", "--to", &url])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(doc["copied"]["sessions"], 2, "{doc}");
        let events = doc["copied"]["events"].as_u64().unwrap();
        let inserted = doc["copied"]["events_inserted"].as_u64().unwrap();
        assert!(events > 2);
        assert_eq!(inserted, if expect_new { events } else { 0 }, "{doc}");
    };
    copy(true);
    copy(false);
    let team = TempDir::new().unwrap();
    let out = on_postgres(team.path(), &url)
        .args(["--output", "json", "sessions", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let listed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(listed.matches("\"pg_shell\"").count(), 2, "{listed}");
    let same = rvbbit(laptop.path())
        .args(["db", "copy", "--to", "sqlite://.rvbbit/rvbbit.db"])
        .output()
        .unwrap();
    assert_eq!(same.status.code(), Some(5), "{}", text(&same));
    assert!(String::from_utf8_lossy(&same.stderr).contains("cannot be copied into itself"));
}
