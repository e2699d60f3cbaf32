//! `rvbbit batch` as a real process (issue 18, local mode): inputs from JSONL, CSV and globs, per-input
//! outputs, the result cache (a rerun executes nothing), bad inputs that fail alone, the exit codes, a
//! budget that stops the batch before overspending (testkit LLM server), and the progress display
//! captured from a real terminal (tmux).

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use rvbbit_testkit::{Reply, Script, TestServer};
use serde_json::Value;
use tempfile::TempDir;

use crate::run_command::write;
use crate::rvbbit;

/// Two deterministic cells: upper-case the text, then count its bytes.
const TWO_CELLS: &str = r#"cascade_id: two_cells
cells:
  - name: upper
    tool: linux_shell
    inputs:
      command: 'printf %s {{ input.text | q }} | tr a-z A-Z'
  - name: count
    tool: linux_shell
    inputs:
      command: 'printf %s {{ outputs.upper.stdout | q }} | wc -c'
"#;

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn batch(dir: &Path, args: &[&str]) -> (Output, Value) {
    let out = rvbbit(dir)
        .args(["--output", "json", "batch"])
        .args(args)
        .output()
        .unwrap();
    let doc = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out, doc)
}

fn sessions_in_store(dir: &Path) -> i64 {
    let db = rusqlite::Connection::open(dir.join(".rvbbit/rvbbit.db")).unwrap();
    db.query_row("SELECT count(*) FROM sessions", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn a_jsonl_batch_writes_each_output_a_bad_line_fails_alone_and_a_rerun_runs_nothing() {
    let dir = TempDir::new().unwrap();
    let cascade = write(dir.path(), "two.yaml", TWO_CELLS);
    let mut lines: Vec<String> = (0..40).map(|i| format!("{{\"text\": \"item {i}\"}}")).collect();
    lines.insert(10, "{not json".into());
    lines.insert(20, String::new()); // blank lines are skipped
    write(dir.path(), "items.jsonl", &(lines.join("\n") + "\n"));

    let (out, doc) = batch(
        dir.path(),
        &[&cascade, "--inputs", "items.jsonl", "--parallel", "4"],
    );
    assert_eq!(out.status.code(), Some(11), "{}", text(&out));
    assert_eq!(doc["total"], 41);
    assert_eq!(doc["completed"], 40);
    assert_eq!(doc["failed"], 1);
    let bad = doc["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["status"] == "failed")
        .unwrap();
    assert_eq!(bad["name"], "items-11");
    assert_eq!(bad["code"], "RVB-B004");
    assert!(
        bad["message"].as_str().unwrap().contains("items.jsonl:11"),
        "{bad}"
    );
    // One caller for the whole batch, on every session.
    let caller = doc["caller_id"].as_str().unwrap();
    let db = rusqlite::Connection::open(dir.path().join(".rvbbit/rvbbit.db")).unwrap();
    let callers: i64 = db
        .query_row(
            "SELECT count(*) FROM sessions WHERE caller_id = ?1 AND status = 'completed'",
            [caller],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(callers, 40);
    // Outputs: one folder per input, the failed one with error.json.
    let first: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("outputs/items-1/output.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        first["stdout"].as_str().unwrap().trim(),
        "6",
        "`ITEM 0` is 6 bytes"
    );
    let err: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("outputs/items-11/error.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(err["code"], "RVB-B004");

    // The same batch again: every completed input from the cache, no run at all.
    let before = sessions_in_store(dir.path());
    let (out, doc) = batch(dir.path(), &[&cascade, "--inputs", "items.jsonl"]);
    assert_eq!(out.status.code(), Some(11), "{}", text(&out));
    assert_eq!(
        (doc["cached"].clone(), doc["completed"].clone()),
        (40.into(), 0.into())
    );
    assert_eq!(
        sessions_in_store(dir.path()),
        before,
        "a rerun started no session"
    );
    // --no-cache runs everything again; a changed cascade misses the cache.
    let (_, doc) = batch(dir.path(), &[&cascade, "--inputs", "items.jsonl", "--no-cache"]);
    assert_eq!(doc["completed"], 40);
    let changed = write(dir.path(), "two.yaml", &TWO_CELLS.replace("wc -c", "wc -c; true"));
    let (_, doc) = batch(dir.path(), &[&changed, "--inputs", "items.jsonl"]);
    assert_eq!(
        (doc["completed"].clone(), doc["cached"].clone()),
        (40.into(), 0.into())
    );
}

#[test]
fn a_glob_batch_refuses_links_out_and_oversize_files_and_flat_outputs_use_safe_names() {
    let dir = TempDir::new().unwrap();
    let cascade = write(
        dir.path(),
        "echo.yaml",
        "cascade_id: echo\ncells:\n  - name: echo\n    tool: linux_shell\n    inputs:\n      command: 'printf %s {{ input.content | q }} | wc -c'\n",
    );
    std::fs::create_dir_all(dir.path().join("in/sub")).unwrap();
    std::fs::write(dir.path().join("in/a.txt"), "alpha").unwrap();
    std::fs::write(dir.path().join("in/sub/b c.txt"), "beta").unwrap();
    std::fs::write(dir.path().join("in/big.txt"), "x".repeat(200)).unwrap();
    std::fs::write(dir.path().join("secret.txt"), "outside").unwrap();
    std::os::unix::fs::symlink(dir.path().join("secret.txt"), dir.path().join("in/link.txt")).unwrap();
    std::fs::write(dir.path().join("in/latin1.txt"), [0xff, 0xfe, 0x41]).unwrap();
    let (out, doc) = batch(
        dir.path(),
        &[
            &cascade,
            "--inputs",
            "in/**/*.txt",
            "--flat",
            "--output-dir",
            "flat",
        ],
    );
    let out_text = text(&out);
    assert_eq!(out.status.code(), Some(11), "{out_text}");
    let by_name = |n: &str| {
        doc["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["name"] == n)
            .unwrap_or_else(|| panic!("no input {n}: {doc}"))
            .clone()
    };
    assert_eq!(by_name("a")["status"], "completed");
    assert_eq!(
        by_name("sub_b_c")["status"],
        "completed",
        "a space and a folder make a safe name"
    );
    let link = by_name("link");
    assert_eq!(link["code"], "RVB-B004");
    assert!(link["message"].as_str().unwrap().contains("outside"), "{link}");
    assert!(
        by_name("latin1")["message"]
            .as_str()
            .unwrap()
            .contains("not UTF-8")
    );
    // The oversize file fails only under a smaller limit.
    assert_eq!(by_name("big")["status"], "completed");
    let out = rvbbit(dir.path())
        .args([
            "--output",
            "json",
            "--set",
            "batch.max_input_bytes=100",
            "batch",
            &cascade,
        ])
        .args(["--inputs", "in/*.txt", "--no-cache"])
        .output()
        .unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let big = doc["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "big")
        .unwrap()
        .clone();
    assert!(
        big["message"].as_str().unwrap().contains("batch.max_input_bytes"),
        "{big}"
    );
    let flat: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("flat/a.json")).unwrap()).unwrap();
    assert_eq!(flat["stdout"].as_str().unwrap().trim(), "5");
    // The refused link's error is written in its own file; the file it pointed at is untouched.
    let refused: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("flat/link.json")).unwrap()).unwrap();
    assert_eq!(refused["code"], "RVB-B004");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("secret.txt")).unwrap(),
        "outside"
    );
}

#[test]
fn no_inputs_too_many_inputs_and_every_input_failing_have_their_own_exit_codes() {
    let dir = TempDir::new().unwrap();
    let cascade = write(dir.path(), "two.yaml", TWO_CELLS);
    let out = rvbbit(dir.path())
        .args(["batch", &cascade, "--inputs", "nothing/*.txt"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("RVB-B003"),
        "{}",
        text(&out)
    );

    write(dir.path(), "rows.csv", "text,extra\na,1\nb,2\nc,3\nd\n");
    let out = rvbbit(dir.path())
        .args([
            "--set",
            "batch.max_inputs=2",
            "batch",
            &cascade,
            "--inputs",
            "rows.csv",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("batch.max_inputs"),
        "{}",
        text(&out)
    );

    let (out, doc) = batch(dir.path(), &[&cascade, "--inputs", "rows.csv"]);
    assert_eq!(out.status.code(), Some(11), "{}", text(&out));
    let short = doc["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "rows-5")
        .unwrap()
        .clone();
    assert!(
        short["message"]
            .as_str()
            .unwrap()
            .contains("row 5 has 1 field(s), the header has 2"),
        "{short}"
    );
    let c: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("outputs/rows-4/output.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(c["stdout"].as_str().unwrap().trim(), "1");

    let failing = write(
        dir.path(),
        "fail.yaml",
        "cascade_id: fail\ncells:\n  - name: boom\n    tool: python_data\n    inputs:\n      code: \"raise ValueError('no')\"\n",
    );
    let (out, doc) = batch(dir.path(), &[&failing, "--inputs", "rows.csv"]);
    assert_eq!(out.status.code(), Some(12), "{}", text(&out));
    assert_eq!(doc["failed"], 4);
}

#[test]
fn a_budget_stops_the_batch_before_it_overspends() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = rt.block_on(TestServer::start(Script::rule(|_| {
        Reply::text("fine").cost(0.01)
    })));
    let dir = TempDir::new().unwrap();
    let cascade = write(
        dir.path(),
        "ask.yaml",
        "cascade_id: ask\ncells:\n  - name: ask\n    instructions: 'Say one word about {{ input.text }}.'\n",
    );
    let rows: Vec<String> = (0..20).map(|i| format!("{{\"text\": \"t{i}\"}}")).collect();
    write(dir.path(), "rows.jsonl", &rows.join("\n"));
    let out = rvbbit(dir.path())
        .env("RVBBIT_PROVIDER_BASE_URL", server.base_url())
        .env("OPENROUTER_API_KEY", "test-key")
        .env("RVBBIT_DEFAULT_MODEL", "test/model")
        .args([
            "--output",
            "json",
            "--set",
            "provider.max_retries=0",
            "batch",
            &cascade,
        ])
        .args([
            "--inputs",
            "rows.jsonl",
            "--parallel",
            "4",
            "--budget-dollars",
            "0.055",
        ])
        .output()
        .unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(11), "{}", text(&out));
    let completed = doc["completed"].as_u64().unwrap();
    let skipped = doc["skipped"].as_u64().unwrap();
    assert!((1..=5).contains(&completed), "{doc}");
    assert_eq!(completed + skipped, 20, "{doc}");
    assert_eq!(server.requests(), completed, "a skipped input made no call");
    let spent: rvbbit_core::MicroUsd = doc["cost_usd"]
        .as_str()
        .unwrap()
        .trim_start_matches('$')
        .parse()
        .unwrap();
    assert!(spent.micros() <= 55_000, "spent {spent} past the $0.055 budget");
    let skip = doc["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["status"] == "skipped")
        .unwrap()
        .clone();
    assert_eq!(skip["code"], "RVB-B005");
    drop(rt);
}

#[test]
fn the_progress_bar_shows_in_a_real_terminal() {
    if std::process::Command::new("tmux").arg("-V").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "tmux is missing (scripts/test-deps.sh installs it)"
        );
        return;
    }
    let dir = TempDir::new().unwrap();
    write(
        dir.path(),
        "slow.yaml",
        "cascade_id: slow\ncells:\n  - name: nap\n    tool: linux_shell\n    inputs:\n      command: 'sleep 0.5; echo {{ input.text | q }}'\n",
    );
    let rows: Vec<String> = (0..12).map(|i| format!("{{\"text\": \"t{i}\"}}")).collect();
    write(dir.path(), "rows.jsonl", &rows.join("\n"));
    let session = format!("rvbbit-batch-{}", std::process::id());
    let bin = env!("CARGO_BIN_EXE_rvbbit");
    let command = format!(
        "cd {} && {bin} batch slow.yaml --inputs rows.jsonl --parallel 2; echo EXIT=$?; sleep 30",
        dir.path().display()
    );
    let started = std::process::Command::new("tmux")
        .args([
            "-L",
            &session,
            "new-session",
            "-d",
            "-x",
            "160",
            "-y",
            "20",
            "-s",
            &session,
            &command,
        ])
        .env("RVBBIT_STORE_URL", "sqlite://rvbbit.db")
        .status()
        .unwrap();
    assert!(started.success());
    let capture = || {
        let out = std::process::Command::new("tmux")
            .args(["-L", &session, "capture-pane", "-p", "-t", &session])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let mut seen_bar = None;
    let mut screen = String::new();
    for _ in 0..200 {
        screen = capture();
        // A frame after the first input finished: the counts and the running cost are shown.
        if seen_bar.is_none() && screen.contains("/12") && screen.contains("ETA") && screen.contains("cached")
        {
            seen_bar = Some(screen.clone());
        }
        if screen.contains("EXIT=") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _kill = std::process::Command::new("tmux")
        .args(["-L", &session, "kill-server"])
        .status();
    let bar = seen_bar.unwrap_or_else(|| panic!("no progress bar seen; last screen:\n{screen}"));
    eprintln!("progress bar as captured:\n{bar}");
    assert!(
        bar.contains("failed") && bar.contains("cached") && bar.contains('$'),
        "{bar}"
    );
    assert!(screen.contains("EXIT=0"), "{screen}");
    assert!(screen.contains("12 inputs, 12 completed"), "{screen}");
}

/// Fails on inputs whose content says "bad".
const PICKY: &str = r#"cascade_id: picky
cells:
  - name: check
    tool: python_data
    inputs:
      code: |
        if "bad" in input["content"]:
            raise ValueError("refused")
        result = "ok"
"#;

#[test]
fn batches_are_listed_and_retry_failed_only_reruns_exactly_the_failed_inputs() {
    let dir = TempDir::new().unwrap();
    let cascade = write(dir.path(), "picky.yaml", PICKY);
    std::fs::create_dir(dir.path().join("in")).unwrap();
    for (name, body) in [
        ("a", "fine"),
        ("b", "fine"),
        ("c", "bad"),
        ("d", "bad"),
        ("e", "fine"),
    ] {
        write(&dir.path().join("in"), &format!("{name}.txt"), body);
    }
    let (out, first) = batch(dir.path(), &[&cascade, "--inputs", "in/*.txt"]);
    assert_eq!(out.status.code(), Some(11), "{}", text(&out));
    let id = first["batch_id"].as_str().unwrap().to_owned();
    assert_eq!(
        (first["completed"].clone(), first["failed"].clone()),
        (3.into(), 2.into())
    );
    let before = sessions_in_store(dir.path());

    let listed = rvbbit(dir.path())
        .args(["--output", "json", "batch", "list"])
        .output()
        .unwrap();
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed["batches"][0]["batch_id"], id.as_str(), "{listed}");
    assert_eq!(listed["batches"][0]["status"], "partial", "{listed}");
    let shown = rvbbit(dir.path())
        .args(["batch", "status", &id])
        .output()
        .unwrap();
    let t = text(&shown);
    assert_eq!(shown.status.code(), Some(0), "{t}");
    assert!(
        t.contains("5 inputs: 3 completed, 0 cached, 2 failed, 0 skipped"),
        "{t}"
    );
    assert!(
        t.contains("c ") && t.contains("d ") && t.contains("failed"),
        "{t}"
    );

    // Fix one of the two; the retry runs exactly the two failed inputs, as a new batch.
    write(&dir.path().join("in"), "c.txt", "fine now");
    let (out, retry) = batch(dir.path(), &["retry", &id, "--failed-only"]);
    assert_eq!(out.status.code(), Some(11), "{}", text(&out));
    let names: Vec<&str> = retry["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["c", "d"], "{retry}");
    assert_eq!(
        (retry["completed"].clone(), retry["failed"].clone()),
        (1.into(), 1.into())
    );
    assert_eq!(sessions_in_store(dir.path()), before + 2, "two runs, no more");
    assert!(dir.path().join("outputs/c/output.json").is_file());
    assert!(
        !dir.path().join("outputs/c/error.json").exists(),
        "the stale error is gone"
    );
    let retry_id = retry["batch_id"].as_str().unwrap();
    let status = rvbbit(dir.path())
        .args(["--output", "json", "batch", "status", retry_id])
        .output()
        .unwrap();
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["batch"]["retry_of"], id.as_str(), "{status}");

    // A whole retry runs every input again: the four completed ones (c by the
    // first retry) come from the cache.
    let (out, all) = batch(dir.path(), &["retry", &id]);
    assert_eq!(out.status.code(), Some(11), "{}", text(&out));
    assert_eq!(
        (
            all["cached"].clone(),
            all["completed"].clone(),
            all["failed"].clone()
        ),
        (4.into(), 0.into(), 1.into()),
        "{all}"
    );

    // An unknown batch, and nothing to retry, are coded errors.
    let unknown = rvbbit(dir.path())
        .args(["batch", "status", "no-such-batch"])
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(6), "{}", text(&unknown));
    assert!(text(&unknown).contains("RVB-B006"), "{}", text(&unknown));
    write(&dir.path().join("in"), "d.txt", "fine too");
    let (out, _) = batch(dir.path(), &["retry", retry_id, "--failed-only"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let last = rvbbit(dir.path())
        .args(["--output", "json", "batch", "list", "--limit", "1"])
        .output()
        .unwrap();
    let last: Value = serde_json::from_slice(&last.stdout).unwrap();
    let newest = last["batches"][0]["batch_id"].as_str().unwrap().to_owned();
    let (out, _) = batch(dir.path(), &["retry", &newest, "--failed-only"]);
    assert_eq!(out.status.code(), Some(6), "{}", text(&out));
    assert!(
        text(&out).contains("no failed or skipped input"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_running_batch_is_cancelled_from_another_process_and_its_logs_follow_it_to_the_end() {
    let dir = TempDir::new().unwrap();
    let slow = write(
        dir.path(),
        "slow.yaml",
        "cascade_id: slow\ncells:\n  - name: nap\n    tool: linux_shell\n    inputs:\n      command: 'sleep 0.5; echo {{ input.n }}'\n",
    );
    let rows: Vec<String> = (0..40).map(|n| format!("{{\"n\": {n}}}")).collect();
    write(dir.path(), "rows.jsonl", &(rows.join("\n") + "\n"));
    let running = rvbbit(dir.path())
        .args([
            "--output",
            "json",
            "batch",
            &slow,
            "--inputs",
            "rows.jsonl",
            "--parallel",
            "1",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let id = loop {
        let out = rvbbit(dir.path())
            .args(["--output", "json", "batch", "list"])
            .output()
            .unwrap();
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        if doc["batches"][0]["status"] == "running" && sessions_in_store(dir.path()) >= 2 {
            break doc["batches"][0]["batch_id"].as_str().unwrap().to_owned();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the batch did not start: {doc}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    // While it runs, its record shows its progress (written every 2 s), to any process.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let out = rvbbit(dir.path())
            .args(["--output", "json", "batch", "status", &id])
            .output()
            .unwrap();
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        let progress = &doc["batch"]["progress"];
        if progress["done"].as_u64().is_some_and(|d| d >= 1) {
            assert_eq!(progress["total"], 40, "{doc}");
            assert_eq!(doc["status"], "running");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no progress recorded: {doc}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let shown = rvbbit(dir.path())
        .args(["batch", "status", &id])
        .output()
        .unwrap();
    assert!(text(&shown).contains("/40 done"), "{}", text(&shown));
    let follower = rvbbit(dir.path())
        .args(["batch", "logs", &id, "-f"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = rvbbit(dir.path())
        .args(["batch", "cancel", &id])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let ended = running.wait_with_output().unwrap();
    let doc: Value = serde_json::from_slice(&ended.stdout).unwrap();
    let skipped = doc["skipped"].as_u64().unwrap();
    assert!(skipped >= 30, "inputs not started were skipped: {doc}");
    let status = rvbbit(dir.path())
        .args(["--output", "json", "batch", "status", &id])
        .output()
        .unwrap();
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["status"], "cancelled", "{status}");
    // The follower ends with the batch; it printed each run's events, named by input.
    let logs = follower.wait_with_output().unwrap();
    assert_eq!(logs.status.code(), Some(0));
    let logs = String::from_utf8_lossy(&logs.stdout);
    assert!(
        logs.contains("rows-1") && logs.contains("cascade_start") && logs.contains("cell_complete"),
        "{logs}"
    );
    let started = logs.lines().filter(|l| l.contains("cascade_start")).count() as u64;
    let ran = doc["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| !i["session_id"].is_null())
        .count() as u64;
    assert_eq!(started, ran, "one run per input that started: {logs}");
    assert!(ran < 40 - 29, "{doc}");
    assert!(
        logs.lines()
            .filter(|l| l.contains("cell_complete"))
            .all(|l| l.contains(" rows-")),
        "every line names its input: {logs}"
    );
    // A batch that ended cannot be cancelled.
    let again = rvbbit(dir.path())
        .args(["batch", "cancel", &id])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(6), "{}", text(&again));
    assert!(
        text(&again).contains("is cancelled, not running"),
        "{}",
        text(&again)
    );
}

#[test]
fn estimate_counts_cache_hits_and_scales_the_history_without_running_anything() {
    let dir = TempDir::new().unwrap();
    let cascade = write(dir.path(), "two.yaml", TWO_CELLS);
    let estimate = |inputs: &str| -> Value {
        let out = rvbbit(dir.path())
            .args(["--output", "json", "estimate", &cascade, "--inputs", inputs])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let rows: Vec<String> = (0..5).map(|i| format!("{{\"text\": \"item {i}\"}}")).collect();
    write(dir.path(), "five.jsonl", &(rows.join("\n") + "\n"));
    // No history yet: counts only, the rest unknown, and nothing ran.
    let first = estimate("five.jsonl");
    assert_eq!(
        (
            first["inputs"].clone(),
            first["cached"].clone(),
            first["to_run"].clone()
        ),
        (5.into(), 0.into(), 5.into())
    );
    assert_eq!(first["history_runs"], 0);
    assert!(first["expected_cost_usd"].is_null(), "{first}");
    assert_eq!(sessions_in_store(dir.path()), 0, "an estimate runs nothing");

    let (out, _) = batch(dir.path(), &[&cascade, "--inputs", "five.jsonl"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let mut more = rows;
    more.extend((5..8).map(|i| format!("{{\"text\": \"item {i}\"}}")));
    more.push("{not json".into());
    write(dir.path(), "nine.jsonl", &(more.join("\n") + "\n"));
    let second = estimate("nine.jsonl");
    assert_eq!(
        (
            second["inputs"].clone(),
            second["bad_inputs"].clone(),
            second["cached"].clone(),
            second["to_run"].clone()
        ),
        (9.into(), 1.into(), 5.into(), 3.into()),
        "{second}"
    );
    assert_eq!(second["history_runs"], 5, "{second}");
    assert_eq!(
        second["expected_cost_usd"], "$0.000000",
        "deterministic cells cost nothing: {second}"
    );
    assert_eq!(second["expected_llm_calls"], 0, "{second}");
    let per_run = second["duration_ms_per_run"].as_f64().unwrap();
    assert!(per_run > 0.0, "{second}");
    let expected = second["expected_seconds"].as_f64().unwrap();
    assert!(
        (expected - per_run * 3.0 / 2.0 / 1000.0).abs() < 0.002,
        "3 runs over 2 slots: {second}"
    );
    assert_eq!(sessions_in_store(dir.path()), 5, "the estimate ran nothing");
    let shown = rvbbit(dir.path())
        .args(["estimate", &cascade, "--inputs", "nine.jsonl"])
        .output()
        .unwrap();
    let t = text(&shown);
    assert!(
        t.contains("from the cache ($0)") && t.contains("5 completed run(s) of `two_cells`"),
        "{t}"
    );
}

#[test]
fn transient_failures_run_again_at_most_twice_and_a_cells_own_error_never() {
    let dir = TempDir::new().unwrap();
    // `slow` times out (RVB-T002, transient) on its first run and completes on its second; `stuck`
    // times out every time: 1 run + 2 retries; `broken` fails with its own error (RVB-T001): run once.
    let cascade = write(
        dir.path(),
        "flaky.yaml",
        "cascade_id: flaky\ncells:\n  - name: step\n    tool: bash_data\n    timeout: 1s\n    inputs:\n      script: '{{ input.cmd }}'\n      persist_session: false\n",
    );
    let marker = dir.path().join("seen");
    let lines = [
        serde_json::json!({"name": "slow", "cmd": format!("if [ -e {m} ]; then echo '[{{\"ok\": 1}}]'; else touch {m}; sleep 5; fi", m = marker.display())}),
        serde_json::json!({"name": "stuck", "cmd": "sleep 5"}),
        serde_json::json!({"name": "broken", "cmd": "exit 7"}),
    ];
    let lines: Vec<String> = lines.iter().map(Value::to_string).collect();
    write(dir.path(), "in.jsonl", &(lines.join("\n") + "\n"));
    let (out, doc) = batch(
        dir.path(),
        &[
            &cascade,
            "--inputs",
            "in.jsonl",
            "--no-sandbox",
            "--parallel",
            "3",
        ],
    );
    assert_eq!(out.status.code(), Some(11), "{}", text(&out));
    // JSONL inputs are named after the file and line.
    let input = |name: &str| -> Value {
        let line = ["slow", "stuck", "broken"]
            .iter()
            .position(|n| *n == name)
            .unwrap()
            + 1;
        doc["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["name"] == format!("in-{line}"))
            .cloned()
            .unwrap()
    };
    let slow = input("slow");
    assert_eq!(slow["status"], "completed", "{doc}");
    assert_eq!(slow["retried"].as_array().map(Vec::len), Some(1), "{slow}");
    let stuck = input("stuck");
    assert_eq!(stuck["status"], "failed");
    assert_eq!(stuck["code"], "RVB-T002", "{stuck}");
    assert_eq!(stuck["retried"].as_array().map(Vec::len), Some(2), "{stuck}");
    let broken = input("broken");
    assert_eq!(broken["status"], "failed");
    assert_eq!(broken["code"], "RVB-T001", "{broken}");
    assert!(broken.get("retried").is_none(), "{broken}");
    // Every run is a session: slow 2, stuck 3, broken 1.
    assert_eq!(sessions_in_store(dir.path()), 6);
}

#[test]
fn the_cache_key_covers_the_cascades_tools_so_changing_one_runs_the_inputs_again() {
    let tmp = TempDir::new().unwrap();
    // Three directories deep, so the search for tool directories stays inside the temporary directory.
    let dir = tmp.path().join("a/b/project");
    std::fs::create_dir_all(dir.join("traits")).unwrap();
    let tool = |version: &str| {
        format!(
            "cascade_id: shout\ninputs_schema:\n  text: the text\ncells:\n  - name: up\n    tool: linux_shell\n    inputs:\n      command: 'echo {{{{ input.text | upper | q }}}} {version}'\n"
        )
    };
    write(&dir, "traits/shout.yaml", &tool("v1"));
    let cascade = write(
        &dir,
        "main.yaml",
        "cascade_id: uses_tool\ncells:\n  - name: s\n    tool: shout\n    inputs:\n      text: '{{ input.word }}'\n",
    );
    write(&dir, "in.jsonl", "{\"word\": \"a\"}\n{\"word\": \"b\"}\n");
    let run = || batch(&dir, &[&cascade, "--inputs", "in.jsonl", "--no-sandbox"]);
    let (out, doc) = run();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(doc["completed"], 2, "{doc}");
    let (_, doc) = run();
    assert_eq!(doc["cached"], 2, "{doc}");
    // The cascade file is unchanged; only its tool is: every input runs again, with the new tool.
    write(&dir, "traits/shout.yaml", &tool("v2"));
    let (out, doc) = run();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        (doc["completed"].as_u64(), doc["cached"].as_u64()),
        (Some(2), Some(0)),
        "{doc}"
    );
    let output = std::fs::read_to_string(dir.join("outputs/in-1/output.json")).unwrap();
    assert!(output.contains("A v2"), "{output}");
}
