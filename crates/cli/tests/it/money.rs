//! Money (issue 18): compute cost beside LLM cost in `rvbbit costs`, spending limits that warn at 80 %
//! and refuse new runs at 100 % (`rvbbit run`, `rvbbit batch`), and limit strings that are coded errors.
//! LLM cost comes from the testkit's scripted server; every store is a real SQLite file.

use std::path::Path;
use std::process::{Command, Output};

use rvbbit_testkit::{Reply, Script, TestServer};
use serde_json::Value;
use tempfile::TempDir;

use crate::run_command::write;
use crate::rvbbit;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `rvbbit` in `dir` with the testkit server as provider (every call priced at $0.01).
fn priced(dir: &Path, base_url: &str) -> Command {
    let mut cmd = rvbbit(dir);
    cmd.env("RVBBIT_PROVIDER_BASE_URL", base_url)
        .env("OPENROUTER_API_KEY", "test-key")
        .env("RVBBIT_DEFAULT_MODEL", "test/model")
        .args(["--set", "provider.max_retries=0"]);
    cmd
}

fn cents_server(rt: &tokio::runtime::Runtime) -> TestServer {
    rt.block_on(TestServer::start(Script::rule(|_| {
        Reply::text("fine").cost(0.01)
    })))
}

fn json(dir: &Path, args: &[&str]) -> Value {
    let out = rvbbit(dir)
        .args(["--output", "json"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

const ASK: &str =
    "cascade_id: ask\ncells:\n  - name: ask\n    instructions: 'Say one word about {{ input.text }}.'\n";

#[test]
fn compute_cost_of_a_shell_cell_shows_beside_llm_cost() {
    let rt = runtime();
    let server = cents_server(&rt);
    let dir = TempDir::new().unwrap();
    let file = write(
        dir.path(),
        "both.yaml",
        "cascade_id: both\ncells:\n  - name: nap\n    tool: linux_shell\n    inputs:\n      command: 'sleep 0.3; echo done'\n  - name: ask\n    instructions: 'Say one word.'\n",
    );
    // $1 a second of compute.
    let out = priced(dir.path(), &server.base_url())
        .args(["--set", "costs.compute_micro_dollars_per_second=1000000"])
        .args(["--output", "json", "run", &file])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let run: Value = serde_json::from_slice(&out.stdout).unwrap();
    let run_cost: rvbbit_core::MicroUsd = run["cost_usd"]
        .as_str()
        .unwrap()
        .trim_start_matches('$')
        .parse()
        .unwrap();

    let summary = json(dir.path(), &["costs", "summary"]);
    let total = &summary["total"];
    let cost = total["cost"].as_i64().unwrap();
    let compute = total["compute_cost"].as_i64().unwrap();
    assert_eq!(
        cost - compute,
        10_000,
        "the LLM part is the provider's $0.01: {summary}"
    );
    // 0.3 s of `sleep` at $1/s, plus the shell's start-up (well under a second).
    assert!((300_000..1_300_000).contains(&compute), "{summary}");
    assert_eq!(run_cost.micros(), cost, "the session's total holds both: {run}");
    // The event that carries it.
    let db = rusqlite::Connection::open(dir.path().join(".rvbbit/rvbbit.db")).unwrap();
    let (n, micros, tool): (i64, i64, String) = db
        .query_row(
            "SELECT count(*), sum(cost_micro_usd), json_extract(min(metadata), '$.tool') FROM events
             WHERE kind = 'compute_cost'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((n, micros, tool.as_str()), (1, compute, "linux_shell"));
    // The table shows the two columns.
    let out = rvbbit(dir.path()).args(["costs", "summary"]).output().unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("LLM") && table.contains("COMPUTE"), "{table}");
    assert!(table.contains("$0.010000"), "{table}");
    rt.block_on(server.shutdown());
}

#[test]
fn a_limit_warns_at_80_percent_and_refuses_run_at_100() {
    let rt = runtime();
    let server = cents_server(&rt);
    let dir = TempDir::new().unwrap();
    let file = write(dir.path(), "ask.yaml", ASK);
    let out = rvbbit(dir.path())
        .args(["costs", "limit", "set", "0.0125/day", "--tenant", "acme"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let run = |tenant: &str| {
        priced(dir.path(), &server.base_url())
            .args(["--set", &format!("costs.tenant={tenant}")])
            .args(["run", &file, "--input", r#"{"text": "sea"}"#])
            .output()
            .unwrap()
    };
    // 0 % spent: runs quietly.
    let first = run("acme");
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    assert!(
        !String::from_utf8_lossy(&first.stderr).contains("warning"),
        "{}",
        text(&first)
    );
    // $0.01 of $0.0125 (80 %): runs, with one warning naming the limit.
    let second = run("acme");
    assert_eq!(second.status.code(), Some(0), "{}", text(&second));
    let err = String::from_utf8_lossy(&second.stderr);
    assert_eq!(err.matches("is 80% used").count(), 1, "{err}");
    assert!(err.contains("tenant `acme`"), "{err}");
    // $0.02 (160 %): refused before anything runs, with the code, its exit code and how to raise it.
    let calls = server.requests();
    let third = priced(dir.path(), &server.base_url())
        .args(["--set", "costs.tenant=acme", "--output", "json", "run", &file])
        .output()
        .unwrap();
    assert_eq!(third.status.code(), Some(11), "{}", text(&third));
    let doc: Value = serde_json::from_slice(&third.stdout).unwrap();
    assert_eq!(doc["code"], "RVB-B030", "{doc}");
    let message = doc["message"].as_str().unwrap();
    assert!(
        message.contains("$0.020000") && message.contains("day"),
        "{message}"
    );
    assert!(
        doc["hint"]
            .as_str()
            .unwrap()
            .contains("rvbbit costs limit set AMOUNT/day --tenant acme"),
        "{doc}"
    );
    assert_eq!(server.requests(), calls, "a refused run makes no call");
    // Another tenant's runs are not counted against `acme`'s limit.
    let other = run("globex");
    assert_eq!(other.status.code(), Some(0), "{}", text(&other));

    // `limit list` shows the spend; removing the limit lets `acme` run again.
    let list = json(dir.path(), &["costs", "limit", "list"]);
    let limit = &list["limits"][0];
    assert_eq!(
        (limit["scope"].as_str(), limit["name"].as_str()),
        (Some("tenant"), Some("acme"))
    );
    assert_eq!(limit["spent_micro_usd"], 20_000);
    assert_eq!(limit["percent"], 160);
    json(
        dir.path(),
        &["costs", "limit", "remove", "day", "--tenant", "acme"],
    );
    let again = run("acme");
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    rt.block_on(server.shutdown());
}

#[test]
fn a_batch_stops_before_it_passes_a_spending_limit() {
    let rt = runtime();
    let server = cents_server(&rt);
    let dir = TempDir::new().unwrap();
    let cascade = write(dir.path(), "ask.yaml", ASK);
    let rows: Vec<String> = (0..20).map(|i| format!("{{\"text\": \"t{i}\"}}")).collect();
    write(dir.path(), "rows.jsonl", &rows.join("\n"));
    json(
        dir.path(),
        &["costs", "limit", "set", "0.055/month", "--caller", "batch"],
    );
    let out = priced(dir.path(), &server.base_url())
        .args([
            "--output",
            "json",
            "batch",
            &cascade,
            "--inputs",
            "rows.jsonl",
            "--parallel",
            "4",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(11), "{}", text(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let completed = doc["completed"].as_u64().unwrap();
    let skipped = doc["skipped"].as_u64().unwrap();
    assert!((1..=5).contains(&completed), "{doc}");
    assert_eq!(completed + skipped, 20, "{doc}");
    assert_eq!(server.requests(), completed, "a skipped input made no call");
    let skip = doc["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["status"] == "skipped")
        .unwrap()
        .clone();
    assert_eq!(skip["code"], "RVB-B030", "{skip}");
    assert!(
        skip["message"].as_str().unwrap().contains("caller `batch`"),
        "{skip}"
    );
    let spent = json(dir.path(), &["costs", "limit", "list"])["limits"][0]["spent_micro_usd"]
        .as_i64()
        .unwrap();
    assert!(spent <= 55_000, "spent {spent} past the $0.055 limit");
    // The limit counts batches only: a CLI run still runs.
    let out = priced(dir.path(), &server.base_url())
        .args(["run", &cascade, "--input", r#"{"text": "sky"}"#])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // Once used up, the next batch is refused whole, before any input starts.
    json(
        dir.path(),
        &["costs", "limit", "set", "0.01/month", "--caller", "batch"],
    );
    let calls = server.requests();
    let out = priced(dir.path(), &server.base_url())
        .args(["batch", &cascade, "--inputs", "rows.jsonl", "--no-cache"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(11), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("RVB-B030"),
        "{}",
        text(&out)
    );
    assert_eq!(server.requests(), calls);
    rt.block_on(server.shutdown());
}

#[test]
fn bad_limits_are_coded_errors() {
    let dir = TempDir::new().unwrap();
    let long = "t".repeat(129);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["set", "-5/day"], "negative"),
        (vec!["set", "abc"], "AMOUNT/PERIOD"),
        (vec!["set", "1e99/month"], "not a dollar amount"),
        (vec!["set", "NaN/day"], "not a dollar amount"),
        (vec!["set", "5/week"], "day or month"),
        (vec!["set", "1000000001/day"], "largest limit"),
        (vec!["set", "5/day", "--tenant", "a b"], "not a tenant name"),
        (vec!["set", "5/day", "--caller", long.as_str()], "more than 128"),
        (vec!["remove", "fortnight"], "day or month"),
        (vec!["remove", "day", "--tenant", "nobody"], "no limit"),
    ];
    for (args, says) in cases {
        let out = rvbbit(dir.path())
            .args(["costs", "limit"])
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(6), "{args:?}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("RVB-B031") && err.contains(says), "{args:?}: {err}");
    }
    // The settings are bounded too: a rate past $1,000 a second, a tenant that is not a name.
    for (set, says) in [
        (
            "costs.compute_micro_dollars_per_second=1000000001",
            "ceiling of 1000000000",
        ),
        ("costs.tenant=acme corp", "not a tenant name"),
    ] {
        let out = rvbbit(dir.path())
            .args(["--set", set, "costs", "limit", "list"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(6), "{set}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("RVB-C003") && err.contains(says), "{set}: {err}");
    }
    // Nothing was stored by the refused commands.
    let list = json(dir.path(), &["costs", "limit", "list"]);
    assert_eq!(list["limits"], Value::Array(Vec::new()));
}

#[test]
fn a_worker_does_not_start_a_job_under_a_used_up_limit() {
    use std::process::Stdio;
    use std::time::Duration;

    use crate::workers::{cmd, exit_within, signal};

    let nats = rvbbit_testkit::nats::TestNats::start();
    let pg = rvbbit_testkit::postgres::fresh_database();
    let dir = TempDir::new().unwrap();
    let cascade = write(
        dir.path(),
        "echo.yaml",
        "cascade_id: echo\ncells:\n  - name: say\n    tool: linux_shell\n    inputs:\n      command: 'echo hi'\n",
    );
    let out = cmd(dir.path(), &nats.url(), &pg)
        .args(["costs", "limit", "set", "0/day"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let mut w = cmd(dir.path(), &nats.url(), &pg)
        .env("RVBBIT_QUEUE__MAX_DELIVERIES", "2")
        .arg("worker")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = cmd(dir.path(), &nats.url(), &pg)
        .args(["submit", &cascade, "--id", "over-limit", "--wait"])
        .output()
        .unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(5), "{t}");
    assert!(
        t.contains("given up after 2 deliveries") && t.contains("RVB-B030"),
        "{t}"
    );
    assert!(t.contains("is used up"), "{t}");
    // Nothing ran: no session was recorded.
    let out = cmd(dir.path(), &nats.url(), &pg)
        .args(["--output", "json", "sessions", "list"])
        .output()
        .unwrap();
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list["sessions"], Value::Array(Vec::new()), "{list}");
    signal(&w, rustix::process::Signal::TERM);
    assert_eq!(exit_within(&mut w, Duration::from_secs(30)), Some(0));
}

/// The SQL door counts toward the limits too: a statement that would start runs is refused with
/// RVB-B030 once a limit is used up (nothing called), warns at 80 %, and a statement the result cache
/// answers whole is not new work and still runs.
#[test]
fn a_used_up_limit_refuses_sql_statements_that_would_call_a_model_but_not_cached_ones() {
    let rt = runtime();
    let server = cents_server(&rt);
    let dir = TempDir::new().unwrap();
    json(dir.path(), &["costs", "limit", "set", "0.0125/day"]);
    let sql = |value: &str| {
        priced(dir.path(), &server.base_url())
            .args([
                "sql",
                &format!("SELECT rvbbit_udf('Say one word about', '{value}') AS r"),
            ])
            .output()
            .unwrap()
    };
    let first = sql("sea");
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    assert!(
        String::from_utf8_lossy(&first.stdout).contains("fine"),
        "{}",
        text(&first)
    );
    // $0.01 of $0.0125 (80 %): the statement runs, with a warning naming the limit.
    let second = sql("sky");
    assert_eq!(second.status.code(), Some(0), "{}", text(&second));
    assert!(text(&second).contains("is 80% used"), "{}", text(&second));
    // $0.02 (160 %): refused before any call, coded, with its exit code and how to raise the limit.
    let calls = server.requests();
    let third = sql("sun");
    assert_eq!(third.status.code(), Some(11), "{}", text(&third));
    let err = String::from_utf8_lossy(&third.stderr);
    assert!(err.contains("RVB-B030"), "{err}");
    assert!(err.contains("rvbbit costs limit set AMOUNT/day"), "{err}");
    assert_eq!(server.requests(), calls, "a refused statement makes no call");
    // Answered whole from the result cache: no new work, so it runs under the used-up limit.
    let cached = sql("sea");
    assert_eq!(cached.status.code(), Some(0), "{}", text(&cached));
    assert!(
        String::from_utf8_lossy(&cached.stdout).contains("fine"),
        "{}",
        text(&cached)
    );
    assert_eq!(server.requests(), calls);
    rt.block_on(server.shutdown());
}
