//! The sandbox escape suite through `rvbbit batch` (a real process, real bubblewrap): one batch whose
//! inputs each try one escape (connect to the host's loopback and to a DNS name, write outside the work
//! directory, read `/root`, a fork bomb, a 2 GiB allocation, an infinite loop, 10 MB of output, signal
//! the parent) beside a well-behaved input. The good one completes, each bad one fails alone with its
//! code (or is contained: output truncated, signals reaching nothing), and rvbbit runs the batch to its
//! end. Also: the sandbox is required and bubblewrap missing is RVB-B010, a flag above its ceiling is
//! RVB-B011, both before anything runs.

use std::path::Path;

use serde_json::{Value, json};
use tempfile::TempDir;

use crate::run_command::write;
use crate::rvbbit;

const ESCAPES: &str = "cascade_id: escapes\ncells:\n  - name: try\n    tool: bash_data\n    inputs:\n      script: '{{ input.cmd }}'\n      persist_session: false\n";

fn batch(dir: &Path, args: &[&str]) -> (std::process::Output, Value) {
    let out = rvbbit(dir)
        .args(["--output", "json", "batch"])
        .args(args)
        .output()
        .unwrap();
    let doc = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out, doc)
}

#[test]
fn a_batch_of_escapes_fails_each_alone_with_its_code_and_the_good_input_completes() {
    let dir = TempDir::new().unwrap();
    let outside = TempDir::new().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let marker = format!("rvbbit-batch-escape-{}", std::process::id());
    let o = outside.path().display();
    let inputs: Vec<(&str, String)> = vec![
        ("good", "echo '[{\"ok\": 1}]'".into()),
        (
            "loopback",
            format!(
                "python3 -c \"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=3)\""
            ),
        ),
        (
            "dns",
            "python3 -c \"import socket; socket.getaddrinfo('example.com', 443)\"".into(),
        ),
        (
            "write",
            format!("echo x > {o}/{marker} && echo x > /tmp/../usr/{marker}"),
        ),
        (
            "read",
            "cat /root/.ssh/id_rsa /root/.ssh/id_ed25519 || ls -A /root".into(),
        ),
        ("bomb", "bomb() { bomb | bomb & }; bomb; sleep 2; wait".into()),
        ("alloc", "python3 -c \"b = bytearray(2 * 1024 ** 3)\"".into()),
        ("loop", "while true; do :; done".into()),
        ("output", "head -c 10000000 /dev/zero | tr '\\\\0' a".into()),
        (
            "signal",
            "kill -9 $PPID; kill -9 -1; echo '[{\"survived\": true}]'".into(),
        ),
    ];
    let lines: Vec<String> = inputs
        .iter()
        .map(|(name, cmd)| json!({"name": name, "cmd": cmd}).to_string())
        .collect();
    write(dir.path(), "escapes.jsonl", &(lines.join("\n") + "\n"));
    let cascade = write(dir.path(), "escapes.yaml", ESCAPES);
    let started = std::time::Instant::now();
    let (out, doc) = batch(
        dir.path(),
        &[
            &cascade,
            "--inputs",
            "escapes.jsonl",
            "--parallel",
            "2",
            "--sandbox-wall-seconds",
            "4",
            "--sandbox-processes",
            "32",
        ],
    );
    let report = format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // rvbbit ran the batch to its end and exited on its own (not killed by a signal): some failed.
    assert_eq!(out.status.code(), Some(11), "{report}");
    assert_eq!(doc["total"], 10, "{report}");
    assert!(started.elapsed() < std::time::Duration::from_secs(120));
    let by_name = |i: usize| -> &Value {
        doc["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["name"] == format!("escapes-{}", i + 1))
            .unwrap_or_else(|| panic!("input {i} missing: {report}"))
    };
    let expect = [
        ("good", "completed", None),
        ("loopback", "failed", Some("RVB-T001")),
        ("dns", "failed", Some("RVB-T001")),
        ("write", "failed", Some("RVB-T001")),
        ("read", "failed", Some("RVB-T001")),
        ("bomb", "failed", Some("RVB-B014")),
        ("alloc", "failed", Some("RVB-B012")),
        ("loop", "failed", Some("RVB-B013")),
        ("output", "completed", None),
        ("signal", "completed", None),
    ];
    for (i, (name, status, code)) in expect.iter().enumerate() {
        let d = by_name(i);
        assert_eq!(d["status"], *status, "{name}: {d}");
        assert_eq!(d["code"].as_str(), *code, "{name}: {d}");
    }
    let message = |i: usize| by_name(i)["message"].as_str().unwrap_or_default().to_owned();
    assert!(
        message(1).contains("ConnectionRefused") || message(1).contains("unreachable"),
        "{}",
        message(1)
    );
    assert!(message(2).contains("gaierror"), "{}", message(2));
    assert!(message(5).contains("more than 32 processes"), "{}", message(5));
    assert!(message(6).contains("512 MiB"), "{}", message(6));
    assert!(message(7).contains("longer than 4 s"), "{}", message(7));
    // Nothing reached the host: no connection on its loopback, no file written outside.
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the host listener saw a connection: {other:?}"),
    }
    assert!(!outside.path().join(&marker).exists());
    assert!(!Path::new("/usr").join(&marker).exists());
    // The good input's table, and the output flagged truncated rather than failed.
    let good: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("outputs/escapes-1/output.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(good["rows"], json!([{"ok": 1}]));
    let output: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("outputs/escapes-9/output.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(output["truncated"], json!(true), "{output}");
    // The same batch with a larger output limit is not answered from results cut by the smaller one.
    // The completed inputs again: from the cache with the same limits, run again with another one.
    write(
        dir.path(),
        "again.jsonl",
        &format!("{}\n{}\n", lines[0], lines[8]),
    );
    let same = ["--sandbox-wall-seconds", "4", "--sandbox-processes", "32"];
    let (_, again) = batch(
        dir.path(),
        &[&[cascade.as_str(), "--inputs", "again.jsonl"][..], &same[..]].concat(),
    );
    assert_eq!(
        (again["cached"].clone(), again["completed"].clone()),
        (2.into(), 0.into()),
        "{again}"
    );
    let (_, larger) = batch(
        dir.path(),
        &[
            &[
                cascade.as_str(),
                "--inputs",
                "again.jsonl",
                "--sandbox-output-kb",
                "200",
            ][..],
            &same[..],
        ]
        .concat(),
    );
    assert_eq!(
        (larger["cached"].clone(), larger["completed"].clone()),
        (0.into(), 2.into()),
        "{larger}"
    );
    let signal: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("outputs/escapes-10/output.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(signal["rows"], json!([{"survived": true}]));
}

#[test]
fn a_required_sandbox_without_bubblewrap_or_above_a_ceiling_stops_before_anything_runs() {
    let dir = TempDir::new().unwrap();
    let cascade = write(dir.path(), "escapes.yaml", ESCAPES);
    write(dir.path(), "one.jsonl", "{\"cmd\": \"echo '[{}]' > ran\"}\n");
    let (out, _) = batch(
        dir.path(),
        &[
            "--set",
            "sandbox.bwrap=/nonexistent/bwrap",
            &cascade,
            "--inputs",
            "one.jsonl",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(6), "{stderr}");
    assert!(stderr.contains("RVB-B010"), "{stderr}");
    assert!(stderr.contains("apt-get install bubblewrap"), "{stderr}");
    assert!(!dir.path().join("outputs").exists(), "an input ran unsandboxed");

    let (out, _) = batch(
        dir.path(),
        &[
            &cascade,
            "--inputs",
            "one.jsonl",
            "--sandbox-memory-mib",
            "1000000",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(6), "{stderr}");
    assert!(stderr.contains("RVB-B011"), "{stderr}");
    assert!(stderr.contains("sandbox.max_memory_mib"), "{stderr}");

    // Turned off on purpose, the same input runs (unsandboxed).
    let (out, doc) = batch(
        dir.path(),
        &[
            "--set",
            "sandbox.bwrap=/nonexistent/bwrap",
            &cascade,
            "--inputs",
            "one.jsonl",
            "--no-sandbox",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{doc}");
}

#[test]
fn a_worker_without_bubblewrap_stops_before_taking_a_job() {
    let dir = TempDir::new().unwrap();
    // No queue is needed to see it: the sandbox is checked before the queue is opened.
    let out = rvbbit(dir.path())
        .args(["--set", "sandbox.bwrap=/nonexistent/bwrap", "worker"])
        .env("RVBBIT_QUEUE_URL", "nats://127.0.0.1:9")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{stderr}");
    assert!(stderr.contains("RVB-B010"), "{stderr}");
    assert!(stderr.contains("sandbox.worker = false"), "{stderr}");
}
