//! The sandbox of code and shell cells, with real bubblewrap: what a sandboxed process sees and cannot
//! do, and the escape suite (network, writes outside the work directory, reading `/root`, a fork bomb,
//! a 2 GiB allocation, an infinite loop, 10 MB of output, signalling the parent), each contained with
//! its code. bubblewrap missing fails these tests (`scripts/test-deps.sh` installs it).

use std::sync::Arc;
use std::time::{Duration, Instant};

use rvbbit_core::SessionStatus;
use rvbbit_core::config::SandboxConfig;
use rvbbit_engine::tools::sandbox::Sandbox;
use rvbbit_engine::{Engine, Outcome};
use serde_json::{Value, json};

use crate::support::{Harness, corpus, yaml};

fn sandbox() -> Arc<Sandbox> {
    let s = Sandbox::new(&SandboxConfig::default(), &Default::default()).unwrap_or_else(|e| {
        panic!("bubblewrap is needed for the sandbox tests (run scripts/test-deps.sh): {e}")
    });
    Arc::new(s)
}

fn engine(h: &Harness) -> Engine {
    h.engine().with_sandbox(sandbox())
}

/// A one-cell cascade running `command` with `linux_shell`, with an optional `sandbox:` block.
fn shell(command: &str, block: &str) -> rvbbit_cascade::model::Cascade {
    let command = serde_json::to_string(command).unwrap();
    yaml(&format!(
        "cascade_id: sandboxed\ncells:\n  - name: escape\n    tool: linux_shell\n    inputs:\n      command: {command}\n{block}"
    ))
}

/// A one-cell cascade running Python `code` with `python_data`.
fn python(code: &str, block: &str) -> rvbbit_cascade::model::Cascade {
    let code = serde_json::to_string(code).unwrap();
    yaml(&format!(
        "cascade_id: sandboxed_py\ncells:\n  - name: escape\n    tool: python_data\n    inputs:\n      code: {code}\n{block}"
    ))
}

fn code_of(out: &Outcome) -> &'static str {
    out.error.as_ref().map_or("none", |e| e.code().code)
}

fn stdout(out: &Outcome) -> String {
    out.output["stdout"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn bubblewrap_starts_here() {
    sandbox().check().await.expect("the sandbox starts");
}

#[tokio::test]
async fn a_sandboxed_process_is_unprivileged_alone_and_sees_only_its_work_dir() {
    let h = Harness::new().await;
    let out = h
        .run(
            &engine(&h),
            shell(
                "id -u; echo pid=$$; echo home=$HOME; echo env=$(env | cut -d= -f1 | sort | tr '\\n' ' '); ls /proc | grep -c '^[0-9]' ; echo hi > note.txt && echo wrote; pwd; grep Cpus_allowed_list /proc/self/status",
                "",
            ),
            json!({}),
        )
        .await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    let uid: u32 = lines[0].parse().unwrap();
    assert_ne!(uid, 0, "the sandbox runs as root: {text}");
    // Its own PID namespace: bubblewrap's init is 1, the shell a low number, and few processes exist.
    let pid: u32 = lines[1].trim_start_matches("pid=").parse().unwrap();
    assert!(pid < 10, "{text}");
    let procs: u32 = lines[4].parse().unwrap();
    assert!(procs < 10, "the sandbox sees the host's processes: {text}");
    // Only the variables the sandbox and the tool set (and bash's own): none of rvbbit's environment.
    let allowed = [
        "PATH",
        "HOME",
        "TMPDIR",
        "LANG",
        "SESSION_ID",
        "CELL_NAME",
        "RVBBIT_IDEMPOTENCY_KEY",
        "PWD",
        "SHLVL",
        "_",
        "OLDPWD",
    ];
    for name in lines[3].trim_start_matches("env=").split_whitespace() {
        assert!(allowed.contains(&name), "`{name}` reached the sandbox: {text}");
    }
    assert_eq!(lines[5], "wrote");
    // Pinned to one CPU (of the two or more this machine has).
    let cpus = lines[7].rsplit('\t').next().unwrap_or_default();
    if std::thread::available_parallelism().unwrap().get() > 1 {
        assert!(cpus.parse::<usize>().is_ok(), "not pinned to one CPU: {text}");
    }
    // The work directory (and HOME) is the session directory.
    let dir = std::env::temp_dir().join(format!("rvbbit-{}", out.session_id.as_str()));
    assert_eq!(lines[6], dir.display().to_string());
    assert_eq!(lines[2], format!("home={}", dir.display()));
}

#[tokio::test]
async fn no_network_neither_loopback_nor_dns() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let h = Harness::new().await;
    let code = format!(
        "import socket\nr = {{}}\ntry:\n    socket.create_connection(('127.0.0.1', {port}), timeout=3); r['loopback'] = 'connected'\nexcept OSError as e:\n    r['loopback'] = repr(e)\ntry:\n    socket.getaddrinfo('example.com', 80); r['dns'] = 'resolved'\nexcept OSError as e:\n    r['dns'] = repr(e)\ntry:\n    socket.create_connection(('1.1.1.1', 53), timeout=3); r['internet'] = 'connected'\nexcept OSError as e:\n    r['internet'] = repr(e)\nresult = r"
    );
    let out = h.run(&engine(&h), python(&code, ""), json!({})).await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    let r = &out.output["result"];
    for key in ["loopback", "dns", "internet"] {
        let v = r[key].as_str().unwrap();
        assert!(v.contains("rror"), "{key}: {v}");
    }
    // The listener on the host's loopback got no connection.
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the host listener saw a connection: {other:?}"),
    }
}

#[tokio::test]
async fn writes_outside_the_work_dir_fail_and_change_nothing_outside() {
    let outside = tempfile::TempDir::new().unwrap();
    let marker = format!("rvbbit-escape-{}", std::process::id());
    let h = Harness::new().await;
    let command = format!(
        "for p in /usr/{marker} /etc/{marker} {o}/{marker} /root/{marker}; do echo x > $p 2>/dev/null && echo \"wrote $p\" || echo \"refused $p\"; done; echo x > /tmp/{marker} && echo tmp-ok",
        o = outside.path().display()
    );
    let out = h.run(&engine(&h), shell(&command, ""), json!({})).await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    let text = stdout(&out);
    assert_eq!(text.matches("refused").count(), 4, "{text}");
    assert!(!text.contains("wrote"), "{text}");
    // /tmp inside is private: writable there, and nothing appears in the host's /tmp.
    assert!(text.contains("tmp-ok"), "{text}");
    for p in [
        format!("/usr/{marker}"),
        format!("/etc/{marker}"),
        format!("/root/{marker}"),
        format!("/tmp/{marker}"),
        outside.path().join(&marker).display().to_string(),
    ] {
        assert!(!std::path::Path::new(&p).exists(), "{p} was written");
    }
}

#[tokio::test]
async fn root_and_ssh_keys_cannot_be_read() {
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let h = Harness::new().await;
    let command = format!(
        "ls -A /root 2>&1 || echo no-root; cat {home}/.ssh/id_rsa {home}/.ssh/id_ed25519 2>&1 || echo no-keys; ls -A {home} 2>&1 || echo no-home"
    );
    let out = h.run(&engine(&h), shell(&command, ""), json!({})).await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    let text = stdout(&out);
    assert!(text.contains("no-root"), "{text}");
    assert!(text.contains("no-keys"), "{text}");
    assert!(text.contains("no-home"), "{text}");
    assert!(!text.contains("PRIVATE KEY"), "{text}");
}

#[tokio::test]
async fn a_fork_bomb_reaches_the_process_limit() {
    let h = Harness::new().await;
    let started = Instant::now();
    let out = h
        .run(
            &engine(&h),
            shell(
                "bomb() { bomb | bomb & }; bomb; sleep 3; wait # rvbbit-bomb-marker",
                "    sandbox: {processes: 32, wall_seconds: 30}\n",
            ),
            json!({}),
        )
        .await;
    assert_eq!(out.status, SessionStatus::Failed);
    assert_eq!(code_of(&out), "RVB-B014", "{:?}", out.error);
    let message = out.error.as_ref().unwrap().to_string();
    assert!(message.contains("32 processes"), "{message}");
    assert!(message.contains("sandbox: {processes: N}"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(60));
    // Nothing of the bomb is left: no process runs as a sandbox uid.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        processes_with("rvbbit-bomb-marker"),
        0,
        "processes of the bomb outlived the sandbox"
    );
}

/// Processes on this machine whose command line contains `marker` (this test's own excluded).
fn processes_with(marker: &str) -> usize {
    let me = std::process::id().to_string();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.filter_map(Result::ok)
        .filter(|e| e.file_name().to_str() != Some(me.as_str()))
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .filter(|cmdline| String::from_utf8_lossy(cmdline).contains(marker))
        .count()
}

#[tokio::test]
async fn a_2_gib_allocation_reaches_the_memory_limit() {
    let h = Harness::new().await;
    let out = h
        .run(
            &engine(&h),
            python("b = bytearray(2 * 1024 ** 3)\nresult = len(b)", ""),
            json!({}),
        )
        .await;
    assert_eq!(out.status, SessionStatus::Failed);
    assert_eq!(code_of(&out), "RVB-B012", "{:?}", out.error);
    let message = out.error.as_ref().unwrap().to_string();
    assert!(message.contains("512 MiB"), "{message}");
    assert!(message.contains("sandbox.max_memory_mib"), "{message}");
    // The same allocation with the limit raised for the cell succeeds.
    let out = h
        .run(
            &engine(&h),
            python(
                "b = bytearray(100 * 1024 ** 2)\nresult = len(b)",
                "    sandbox: {memory_mib: 1024}\n",
            ),
            json!({}),
        )
        .await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    assert_eq!(out.output["result"], json!(100 * 1024 * 1024));
}

#[tokio::test]
async fn an_infinite_loop_reaches_the_wall_clock_limit() {
    let h = Harness::new().await;
    let started = Instant::now();
    let out = h
        .run(
            &engine(&h),
            shell(
                "while true; do :; done # rvbbit-loop-marker",
                "    sandbox: {wall_seconds: 2}\n",
            ),
            json!({}),
        )
        .await;
    let took = started.elapsed();
    assert_eq!(out.status, SessionStatus::Failed);
    assert_eq!(code_of(&out), "RVB-B013", "{:?}", out.error);
    let message = out.error.as_ref().unwrap().to_string();
    assert!(message.contains("longer than 2 s"), "{message}");
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(10),
        "{took:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        processes_with("rvbbit-loop-marker"),
        0,
        "the loop outlived its sandbox"
    );
}

#[tokio::test]
async fn ten_megabytes_of_output_keep_the_first_100_kb_and_are_flagged() {
    let h = Harness::new().await;
    let out = h
        .run(
            &engine(&h),
            shell("head -c 10000000 /dev/zero | tr '\\0' a; echo done >&2", ""),
            json!({}),
        )
        .await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    assert_eq!(out.output["truncated"], json!(true));
    assert_eq!(stdout(&out).len(), 100 * 1024);
    assert_eq!(out.output["stderr"], json!("done\n"));
    assert_eq!(out.output["returncode"], json!(0));
    // Python whose printing pushes its result past the limit: RVB-B015, naming the limit.
    let out = h
        .run(
            &engine(&h),
            python("print('a' * 200000)\nresult = 1", ""),
            json!({}),
        )
        .await;
    assert_eq!(code_of(&out), "RVB-B015", "{:?}", out.error);
}

#[tokio::test]
async fn signalling_the_parent_or_everyone_reaches_only_the_sandbox() {
    let h = Harness::new().await;
    let out = h
        .run(
            &engine(&h),
            shell(
                "kill -9 $PPID 2>&1; echo ppid=$PPID; kill -9 -1 2>&1; kill -9 1 2>&1; echo survived",
                "",
            ),
            json!({}),
        )
        .await;
    // This test process (rvbbit's engine) is alive to read the outcome; the script carried on too.
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    let text = stdout(&out);
    assert!(text.contains("survived"), "{text}");
    assert!(text.contains("ppid=1\n") || text.contains("ppid=0\n"), "{text}");
}

#[tokio::test]
async fn limits_above_their_ceiling_or_zero_are_refused_with_the_setting() {
    let h = Harness::new().await;
    let out = h
        .run(
            &engine(&h),
            shell("echo hi", "    sandbox: {memory_mib: 100000}\n"),
            json!({}),
        )
        .await;
    assert_eq!(code_of(&out), "RVB-B011", "{:?}", out.error);
    let message = out.error.as_ref().unwrap().to_string();
    assert!(message.contains("sandbox.max_memory_mib"), "{message}");
    assert!(message.contains("100000"), "{message}");
    let zero = Sandbox::new(
        &SandboxConfig::default(),
        &rvbbit_cascade::model::CellSandbox {
            wall_seconds: Some(0),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert_eq!(zero.code.code, "RVB-B011");
    assert!(
        zero.message.contains("--sandbox-wall-seconds 0"),
        "{}",
        zero.message
    );
}

#[test]
fn a_missing_bubblewrap_is_a_coded_error_never_an_unsandboxed_run() {
    let config = SandboxConfig {
        bwrap: "/nonexistent/bwrap".into(),
        ..SandboxConfig::default()
    };
    let e = Sandbox::new(&config, &Default::default()).unwrap_err();
    assert_eq!(e.code.code, "RVB-B010");
    assert!(e.message.contains("sandbox.bwrap"), "{}", e.message);
    assert!(e.hint.contains("apt-get install bubblewrap"), "{}", e.hint);
    assert!(e.hint.contains("--no-sandbox"), "{}", e.hint);
}

#[tokio::test]
async fn bash_sessions_python_tools_and_validators_work_sandboxed() {
    let h = Harness::new().await;
    let engine = engine(&h);
    // bash_data keeps its exported variables between cells (its state file lives in the work dir).
    let out = h
        .run(
            &engine,
            corpus("bash_substrate/05_simple_persistence.yaml"),
            json!({}),
        )
        .await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    assert_eq!(
        out.output["rows"],
        json!([{"variable": "MY_VAR", "value": "hello_windlass"}])
    );
    let out = h
        .run(
            &engine,
            python(
                "import os\nresult = {'uid': os.getuid(), 'n': input['n'] * 2}",
                "",
            ),
            json!({"n": 21}),
        )
        .await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    assert_eq!(out.output["result"]["n"], json!(42));
    assert_ne!(out.output["result"]["uid"], json!(0));
    assert_ne!(out.output["result"]["uid"], Value::Null);
}

#[tokio::test]
async fn declarative_tools_see_their_own_files_read_only() {
    let dir = tempfile::TempDir::new().unwrap();
    let traits = dir.path().join("traits");
    std::fs::create_dir_all(&traits).unwrap();
    std::fs::write(dir.path().join("data.txt"), "from the project\n").unwrap();
    let shell_tool = json!({
        "tool_id": "peek",
        "type": "shell",
        // A tool file's own `sandbox: false` does not take it out of the operator's sandbox.
        "sandbox": false,
        "command": "cat data.txt; (echo x > written.txt) 2>/dev/null && echo wrote || echo read-only; id -u"
    });
    let py_tool = json!({"tool_id": "add", "type": "python", "function": "helpers.add"});
    std::fs::write(traits.join("peek.tool.json"), shell_tool.to_string()).unwrap();
    std::fs::write(traits.join("add.tool.json"), py_tool.to_string()).unwrap();
    std::fs::write(
        traits.join("helpers.py"),
        "import os\ndef add(a, b):\n    return {'sum': int(a) + int(b), 'uid': os.getuid()}\n",
    )
    .unwrap();
    let file = dir.path().join("cascade.yaml");
    std::fs::write(
        &file,
        "cascade_id: tools_in_sandbox\ncells:\n  - name: peek\n    tool: peek\n    inputs: {}\n  - name: sum\n    tool: add\n    inputs: {a: \"2\", b: \"40\"}\n",
    )
    .unwrap();
    let h = Harness::new().await;
    let engine = crate::compose::engine_with_cascade_tools(&h, &file, None).with_sandbox(sandbox());
    let out = crate::compose::run(&h, &engine, crate::compose::request_for(&file, json!({}))).await;
    assert_eq!(out.status, SessionStatus::Completed, "{:?}", out.error);
    let peek = out.outputs["peek"].as_str().unwrap().to_owned();
    let lines: Vec<&str> = peek.lines().collect();
    assert_eq!(lines[..2], ["from the project", "read-only"], "{peek}");
    assert_ne!(lines[2], "0", "{peek}");
    assert!(!dir.path().join("written.txt").exists());
    assert_eq!(out.outputs["sum"]["sum"], json!(42));
    assert_ne!(out.outputs["sum"]["uid"], json!(0));
}

#[tokio::test]
async fn the_cells_timeout_and_the_sandboxs_wall_clock_limit_each_name_themselves() {
    let h = Harness::new().await;
    // A batch's `--sandbox-wall-seconds 2`: the engine's sandbox with that default.
    let two = Sandbox::new(
        &SandboxConfig::default(),
        &rvbbit_cascade::model::CellSandbox {
            wall_seconds: Some(2),
            ..Default::default()
        },
    )
    .unwrap();
    let engine = h.engine().with_sandbox(Arc::new(two));
    // The same limit from both sides: the sandbox names it (the outer time limit waits a little longer).
    let out = h
        .run(&engine, shell("sleep 30", "    timeout: 2s\n"), json!({}))
        .await;
    assert_eq!(code_of(&out), "RVB-B013", "{:?}", out.error);
    // A shorter cell timeout is the cell's own: RVB-T002, as without a sandbox.
    let started = Instant::now();
    let out = h
        .run(&engine, shell("sleep 30", "    timeout: 1s\n"), json!({}))
        .await;
    assert_eq!(code_of(&out), "RVB-T002", "{:?}", out.error);
    assert!(started.elapsed() < Duration::from_secs(5));
}
