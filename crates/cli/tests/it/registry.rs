//! The cascade registry (issue 22, item 5, and its must-show): `rvbbit cascade push` of a cascade with a
//! cascade tool, a sub-cascade and an include, then `rvbbit run registry:NAME:VERSION` on a "second host"
//! (an empty working directory) against a local directory and a real S3 server (SeaweedFS from testkit);
//! the same content is the same hash, a changed file a new one; escapes, limits, credentials and an
//! unreachable store are coded errors; `rvbbit submit registry:…` runs on a worker, and a job naming an
//! unknown bundle is dead-lettered at once with the hash and the store in its reason.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use rvbbit_testkit::nats::TestNats;
use rvbbit_testkit::s3::TestS3;
use serde_json::Value;
use tempfile::TempDir;

use crate::rvbbit;

const MAIN: &str = r#"
cascade_id: reg_main
cells:
  - name: ask
    instructions: "@prompts/ask.md"
  - name: shout
    tool: shout
    inputs:
      text: "{{ input.word }}"
    sub_cascades:
      - ref: children/prep.yaml
"#;

const PREP: &str =
    "cascade_id: prep\ncells:\n  - name: p\n    tool: set_state\n    inputs: {key: prepped, value: 'yes'}\n";

fn shout(version: &str) -> String {
    format!(
        "cascade_id: shout\ninputs_schema:\n  text: the text\ncells:\n  - name: up\n    tool: linux_shell\n    inputs:\n      command: 'echo {{{{ input.text | upper | q }}}} {version}'\n"
    )
}

fn write(dir: &Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A project three directories deep (so the search for tool directories stays inside the temporary
/// directory): `flows/main.yaml`, `flows/children/prep.yaml`, `traits/shout.yaml`, `prompts/ask.md`.
fn project(tmp: &Path) -> PathBuf {
    let p = tmp.join("a/b/project");
    write(&p, "flows/main.yaml", MAIN);
    write(&p, "flows/children/prep.yaml", PREP);
    write(&p, "traits/shout.yaml", &shout("v1"));
    write(&p, "prompts/ask.md", "Ask {{ input.word }} nicely.\n");
    p
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The queue at `nats` and the store at `pg`, with short queue timings.
fn queue_env(c: &mut Command, nats: &str, pg: &str) {
    c.env("RVBBIT_QUEUE_URL", nats)
        .env("RVBBIT_STORE_URL", pg)
        .env("RVBBIT_QUEUE__ACK_WAIT_SECONDS", "5")
        .env("RVBBIT_QUEUE__NAK_DELAY_SECONDS", "0");
}

/// Where the artifacts go: a `file://` directory or the S3 server (endpoint and credentials in the
/// standard AWS variables).
enum Store<'a> {
    File(PathBuf),
    S3(&'a TestS3),
}

fn cmd(dir: &Path, store: &Store<'_>) -> Command {
    let mut c = rvbbit(dir);
    c.env("RVBBIT_PROVIDER_KIND", "mock").stdin(Stdio::null());
    match store {
        Store::File(p) => {
            c.env("RVBBIT_ARTIFACTS_URL", format!("file://{}", p.display()));
        }
        Store::S3(server) => {
            c.env("RVBBIT_ARTIFACTS_URL", server.url("reg"));
            for (k, v) in server.env() {
                c.env(k, v);
            }
        }
    }
    c
}

fn push(dir: &Path, store: &Store<'_>, args: &[&str]) -> Value {
    let out = cmd(dir, store)
        .args(["--output", "json", "cascade", "push"])
        .args(args)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn run_json(dir: &Path, store: &Store<'_>, reference: &str) -> Value {
    let out = cmd(dir, store)
        .args([
            "--output",
            "json",
            "run",
            reference,
            "--input",
            "{\"word\": \"hello\"}",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Push, run on a second host, change a file, push again: the must-show of item 5.
fn push_then_run_elsewhere(store: &Store<'_>) {
    let tmp = TempDir::new().unwrap();
    let proj = project(tmp.path());
    let first = push(&proj, store, &["flows/main.yaml", "--name", "reg:1"]);
    let hash = first["hash"].as_str().unwrap().to_owned();
    assert!(hash.starts_with("sha256:") && hash.len() == 71, "{first}");
    assert_eq!(
        first["files"], 4,
        "the cascade, its tool, its sub-cascade and its include: {first}"
    );
    assert_eq!(first["entry"], "flows/main.yaml", "{first}");
    assert_eq!(first["uploaded_files"], 4, "{first}");

    // The second host: a working directory with no files at all.
    let host = TempDir::new().unwrap();
    let doc = run_json(host.path(), store, "registry:reg:1");
    assert_eq!(doc["status"], "completed", "{doc}");
    let outputs = doc["outputs"].to_string();
    assert!(outputs.contains("HELLO v1"), "the bundled tool ran: {outputs}");
    assert_eq!(doc["path"], serde_json::json!(["ask", "shout"]), "{doc}");
    // The final output is also an artifact, and the outcome says where.
    let sid = doc["session_id"].as_str().unwrap();
    let at = doc["output_artifact"].as_str().unwrap();
    assert!(at.ends_with(&format!("/runs/{sid}/output.json")), "{at}");
    if let Store::File(p) = store {
        let stored: Value =
            serde_json::from_slice(&std::fs::read(p.join("runs").join(sid).join("output.json")).unwrap())
                .unwrap();
        assert_eq!(stored, doc["output"]);
    }
    let cached: Vec<_> = std::fs::read_dir(host.path().join(".rvbbit/bundles"))
        .unwrap()
        .collect();
    assert_eq!(cached.len(), 1, "one bundle in the private cache");
    // By hash, too.
    let doc = run_json(host.path(), store, &format!("registry:{hash}"));
    assert_eq!(doc["status"], "completed", "{doc}");

    // The same content again: the same hash, nothing uploaded.
    let again = push(&proj, store, &["flows/main.yaml", "--name", "reg:1"]);
    assert_eq!(again["hash"], hash.as_str());
    assert_eq!(
        (
            again["uploaded_files"].clone(),
            again["uploaded_manifest"].clone()
        ),
        (0.into(), false.into()),
        "{again}"
    );
    assert_eq!(again["names"][0]["result"], "unchanged", "{again}");

    // A changed tool file: a new hash; version 1 is immutable, version 2 runs the change, 1 still the old.
    write(&proj, "traits/shout.yaml", &shout("v2"));
    let out = cmd(&proj, store)
        .args(["cascade", "push", "flows/main.yaml", "--name", "reg:1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    assert!(
        text(&out).contains("RVB-S024") && text(&out).contains("--force"),
        "{}",
        text(&out)
    );
    assert!(
        text(&out).contains(&hash),
        "it names what reg:1 holds: {}",
        text(&out)
    );
    let second = push(&proj, store, &["flows/main.yaml", "--name", "reg:2"]);
    assert_ne!(second["hash"], hash.as_str(), "{second}");
    assert_eq!(second["uploaded_files"], 1, "only the changed file: {second}");
    let doc = run_json(host.path(), store, "registry:reg:2");
    assert!(doc["outputs"].to_string().contains("HELLO v2"), "{doc}");
    let doc = run_json(host.path(), store, "registry:reg");
    assert!(
        doc["outputs"].to_string().contains("HELLO v2"),
        "`latest` follows the last push: {doc}"
    );
    let doc = run_json(host.path(), store, "registry:reg:1");
    assert!(doc["outputs"].to_string().contains("HELLO v1"), "{doc}");
}

#[test]
fn push_then_run_registry_name_on_an_empty_host_from_a_directory() {
    let store = TempDir::new().unwrap();
    push_then_run_elsewhere(&Store::File(store.path().join("artifacts")));
}

#[test]
fn push_then_run_registry_name_on_an_empty_host_from_s3() {
    let server = TestS3::start();
    push_then_run_elsewhere(&Store::S3(&server));
}

#[test]
fn files_outside_the_project_and_bundles_over_the_limits_are_refused() {
    let tmp = TempDir::new().unwrap();
    let proj = project(tmp.path());
    let store = Store::File(tmp.path().join("artifacts"));
    // A tool file that is a link to a file outside the project.
    write(
        tmp.path(),
        "outside/secret.yaml",
        "cascade_id: secret\ncells: []\n",
    );
    std::os::unix::fs::symlink(
        tmp.path().join("outside/secret.yaml"),
        proj.join("traits/secret.yaml"),
    )
    .unwrap();
    let out = cmd(&proj, &store)
        .args(["cascade", "push", "flows/main.yaml"])
        .output()
        .unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(5), "{t}");
    assert!(
        t.contains("RVB-S023") && t.contains("secret.yaml") && t.contains("outside"),
        "{t}"
    );
    std::fs::remove_file(proj.join("traits/secret.yaml")).unwrap();
    // An include that climbs out of the project.
    write(
        &proj,
        "flows/escape.yaml",
        "cascade_id: esc\ncells:\n  - name: a\n    instructions: \"@../../../../outside/secret.yaml\"\n",
    );
    let out = cmd(&proj, &store)
        .args(["cascade", "push", "flows/escape.yaml"])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        !tmp.path().join("artifacts/blobs").exists(),
        "nothing was uploaded: {}",
        text(&out)
    );
    std::fs::remove_file(proj.join("flows/escape.yaml")).unwrap();
    // Limits, checked before anything is read or uploaded.
    let out = cmd(&proj, &store)
        .env("RVBBIT_ARTIFACTS__MAX_BUNDLE_FILES", "3")
        .args(["cascade", "push", "flows/main.yaml"])
        .output()
        .unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(5), "{t}");
    assert!(
        t.contains("RVB-S022") && t.contains("artifacts.max_bundle_files"),
        "{t}"
    );
    let out = cmd(&proj, &store)
        .env("RVBBIT_ARTIFACTS__MAX_BUNDLE_BYTES", "100")
        .args(["cascade", "push", "flows/main.yaml"])
        .output()
        .unwrap();
    let t = text(&out);
    assert!(
        t.contains("RVB-S022") && t.contains("artifacts.max_bundle_bytes"),
        "{t}"
    );
    assert!(
        !tmp.path().join("artifacts/blobs").exists(),
        "nothing was uploaded"
    );
    // An unknown name; a malformed reference; no artifact store configured.
    let host = TempDir::new().unwrap();
    let out = cmd(host.path(), &store)
        .args(["run", "registry:nope:1"])
        .output()
        .unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(5), "{t}");
    assert!(
        t.contains("RVB-S021") && t.contains("nope:1") && t.contains("cascade push"),
        "{t}"
    );
    let out = cmd(host.path(), &store)
        .args(["run", "registry:Bad/Name"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6), "{}", text(&out));
    let out = rvbbit(host.path())
        .args(["run", "registry:reg:1"])
        .output()
        .unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(6), "{t}");
    assert!(t.contains("artifacts.url"), "{t}");
}

#[test]
fn bad_credentials_and_an_unreachable_store_exit_5_with_a_coded_error() {
    let server = TestS3::start();
    let tmp = TempDir::new().unwrap();
    let proj = project(tmp.path());
    let out = cmd(&proj, &Store::S3(&server))
        .env("AWS_SECRET_ACCESS_KEY", "wrong-secret-42")
        .args(["cascade", "push", "flows/main.yaml"])
        .output()
        .unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(5), "{t}");
    assert!(t.contains("RVB-S020") && t.contains(&server.url("reg")), "{t}");
    assert!(!t.contains("wrong-secret-42"), "the secret leaked: {t}");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let started = Instant::now();
    let out = cmd(&proj, &Store::S3(&server))
        .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))
        .args(["run", "registry:reg:1"])
        .output()
        .unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(5), "{t}");
    assert!(t.contains("RVB-S020"), "{t}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    // `config show` masks the secret.
    let out = cmd(&proj, &Store::S3(&server))
        .env("RVBBIT_ARTIFACTS__SECRET_ACCESS_KEY", "cfg-secret-43")
        .args(["config", "show"])
        .output()
        .unwrap();
    assert!(!text(&out).contains("cfg-secret-43"), "{}", text(&out));
}

/// Poll `check` until it is true or `limit` passes.
fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    check()
}

#[test]
fn submitted_bundles_run_on_a_worker_and_unknown_ones_are_dead_lettered_at_once() {
    let server = TestS3::start();
    let nats = TestNats::start();
    let pg = rvbbit_testkit::postgres::fresh_database();
    let tmp = TempDir::new().unwrap();
    let proj = project(tmp.path());
    let store = Store::S3(&server);
    let queued = |c: &mut Command| queue_env(c, &nats.url(), &pg);
    push(&proj, &store, &["flows/main.yaml", "--name", "reg:1"]);
    // The worker's host has no files either.
    let worker_dir = TempDir::new().unwrap();
    let mut w = cmd(worker_dir.path(), &store);
    queued(&mut w);
    let mut w = w
        .arg("worker")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    let submit_dir = TempDir::new().unwrap();
    let mut s = cmd(submit_dir.path(), &store);
    queued(&mut s);
    let out = s
        .args([
            "--output",
            "json",
            "submit",
            "registry:reg:1",
            "--id",
            "reg-job",
            "--input",
            "{\"word\": \"queued\"}",
            "--wait",
        ])
        .output()
        .unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["status"], "completed", "{doc}");
    assert!(doc["output"].to_string().contains("QUEUED v1"), "{doc}");

    // `submit FILE` with an artifact store pushes the file as a bundle first: the worker, with no files
    // of its own, still finds the cascade tool of the submitter's `traits/`.
    let mut s = cmd(&proj, &store);
    queued(&mut s);
    let out = s
        .args([
            "--output",
            "json",
            "submit",
            "flows/main.yaml",
            "--id",
            "file-job",
            "--input",
            "{\"word\": \"pushed\"}",
            "--wait",
        ])
        .output()
        .unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(doc["output"].to_string().contains("PUSHED v1"), "{doc}");

    // A job naming a bundle the store does not hold: dead-lettered on its first delivery.
    let unknown = format!("sha256:{}", "0".repeat(64));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let queue = rt.block_on(async {
        let options = rvbbit_store::QueueOptions {
            ack_wait: Duration::from_secs(5),
            configure_consumer: false,
            ..Default::default()
        };
        let queue = rvbbit_store::queue::open(&nats.url(), &options).await.unwrap();
        let job = rvbbit_store::Job {
            id: "ghost".into(),
            cascade_file: "flows/main.yaml".into(),
            cascade_text: MAIN.into(),
            input: serde_json::json!({}),
            metadata: Default::default(),
            submitted_at: "2026-01-01T00:00:00Z".into(),
            bundle: Some(unknown.clone()),
        };
        queue.submit(&job).await.unwrap();
        queue
    });
    let dead = || rt.block_on(queue.dead_letters()).unwrap();
    assert!(
        eventually(Duration::from_secs(30), || !dead().is_empty()),
        "no dead letter"
    );
    let letter = dead().into_iter().find(|d| d.id == "ghost").unwrap();
    assert_eq!(letter.deliveries, 1, "given up at once: {letter:?}");
    assert!(
        letter.reason.contains(&unknown)
            && letter.reason.contains(&server.url("reg"))
            && letter.reason.contains("is not in the artifact store"),
        "{}",
        letter.reason
    );
    assert!(w.try_wait().unwrap().is_none(), "the worker stopped");
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&w),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while w.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the worker did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn an_artifact_store_outage_hands_jobs_back_until_it_returns() {
    let server = TestS3::start();
    let nats = TestNats::start();
    let pg = rvbbit_testkit::postgres::fresh_database();
    let tmp = TempDir::new().unwrap();
    let proj = project(tmp.path());
    let store = Store::S3(&server);
    let pushed = push(&proj, &store, &["flows/main.yaml", "--name", "reg:1"]);
    let hash = pushed["hash"].as_str().unwrap().to_owned();
    server.kill();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let queue = rt.block_on(async {
        let options = rvbbit_store::QueueOptions {
            ack_wait: Duration::from_secs(5),
            // Generous: a slow restart of the S3 server (it can take a minute on a loaded machine) must not
            // use up the deliveries, which would dead-letter the job (bounded retries are tested elsewhere).
            max_deliveries: 500,
            ..Default::default()
        };
        rvbbit_store::queue::open(&nats.url(), &options).await.unwrap()
    });
    let worker_dir = TempDir::new().unwrap();
    let mut w = cmd(worker_dir.path(), &store)
        .env("RVBBIT_QUEUE_URL", nats.url())
        .env("RVBBIT_STORE_URL", &pg)
        .env("RVBBIT_QUEUE__ACK_WAIT_SECONDS", "5")
        .env("RVBBIT_QUEUE__MAX_DELIVERIES", "500")
        .env("RVBBIT_QUEUE__NAK_DELAY_SECONDS", "1")
        .env("RVBBIT_ARTIFACTS__TIMEOUT_SECONDS", "2")
        .arg("worker")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let job = rvbbit_store::Job {
        id: "outage".into(),
        cascade_file: "flows/main.yaml".into(),
        cascade_text: MAIN.into(),
        input: serde_json::json!({"word": "later"}),
        metadata: Default::default(),
        submitted_at: "2026-01-01T00:00:00Z".into(),
        bundle: Some(hash),
    };
    rt.block_on(queue.submit(&job)).unwrap();
    // While the store is down the job goes back and forth, never to the dead letters.
    let status = || rt.block_on(queue.status()).unwrap();
    assert!(
        eventually(Duration::from_secs(30), || status().redelivered >= 1),
        "{:?}",
        status()
    );
    assert!(rt.block_on(queue.dead_letters()).unwrap().is_empty());
    server.restart();
    let sessions = || {
        let out = cmd(worker_dir.path(), &store)
            .env("RVBBIT_STORE_URL", &pg)
            .args(["--output", "json", "sessions", "list", "--caller", "queue-outage"])
            .output()
            .unwrap();
        serde_json::from_slice::<Value>(&out.stdout).unwrap_or_default()
    };
    // The job's outcome is its root session's (its children end first, so the newest session listed
    // may be a child while the root still runs).
    let root = || {
        sessions()["sessions"]
            .as_array()
            .and_then(|all| {
                all.iter()
                    .find(|s| s["session"]["parent_session_id"].is_null())
                    .cloned()
            })
            .unwrap_or_default()
    };
    assert!(
        eventually(Duration::from_secs(60), || {
            root()["session"]["status"] == "completed"
        }),
        "sessions: {}\nqueue: {:?}\ndead letters: {:?}",
        sessions(),
        status(),
        rt.block_on(queue.dead_letters())
    );
    assert_eq!(
        root()["session"]["output"]["stdout"],
        "LATER v1\n",
        "{}",
        sessions()
    );
    assert!(rt.block_on(queue.dead_letters()).unwrap().is_empty());
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&w),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while w.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the worker did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A worker with an artifact store stores each completed run's output at `runs/<session>/output.json`,
/// as `rvbbit run` does.
#[test]
fn a_worker_stores_completed_outputs_as_artifacts() {
    let nats = TestNats::start();
    let pg = rvbbit_testkit::postgres::fresh_database();
    let tmp = TempDir::new().unwrap();
    let proj = project(tmp.path());
    let artifacts = tmp.path().join("artifacts");
    let store = Store::File(artifacts.clone());
    let queued = |c: &mut Command| queue_env(c, &nats.url(), &pg);
    let worker_dir = TempDir::new().unwrap();
    let mut w = cmd(worker_dir.path(), &store);
    queued(&mut w);
    let mut w = w
        .arg("worker")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut s = cmd(&proj, &store);
    queued(&mut s);
    let out = s
        .args([
            "--output",
            "json",
            "submit",
            "flows/main.yaml",
            "--input",
            "{\"word\": \"kept\"}",
            "--wait",
        ])
        .output()
        .unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let sid = doc["session_id"].as_str().unwrap();
    let stored = artifacts.join("runs").join(sid).join("output.json");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !stored.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let listing = walk(&artifacts);
    let kept: Value = serde_json::from_slice(
        &std::fs::read(&stored)
            .unwrap_or_else(|e| panic!("{}: {e}; the artifact store holds {listing:?}", stored.display())),
    )
    .unwrap();
    assert_eq!(kept, doc["output"], "the artifact is the run's final output");
    assert!(kept.to_string().contains("KEPT v1"), "{kept}");
    w.kill().unwrap();
    w.wait().unwrap();
}

/// Every file under `dir`, relative to it.
fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap_or(&p).display().to_string());
            }
        }
    }
    out.sort();
    out
}
