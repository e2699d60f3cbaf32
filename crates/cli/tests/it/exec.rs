//! `rvbbit exec`: plain scripts in the sandbox (real bubblewrap, real python3), their file arguments
//! mounted read-only and rewritten, the files they write collected as outputs, results cached by content,
//! a `requirements.txt` installed into a venv cached by its hash (a local wheel: no network), `--batch`
//! over files with `batch retry --failed-only`, and the coded refusals.

use std::path::Path;

use serde_json::Value;
use tempfile::TempDir;

use crate::run_command::write;
use crate::rvbbit;

fn exec(dir: &Path, args: &[&str]) -> (std::process::Output, Value) {
    let out = rvbbit(dir)
        .args(["--output", "json", "exec"])
        .args(args)
        .output()
        .unwrap();
    let doc = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out, doc)
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const CLEAN: &str = r#"import os, sys
src = sys.argv[1]
rows = open(src).read().split()
os.makedirs("out", exist_ok=True)
open("out/upper.txt", "w").write(" ".join(r.upper() for r in rows))
# A file beside the argument was not named: it is not in the sandbox.
beside = os.path.join(os.path.dirname(src), "secret.txt")
print(src, len(rows), os.path.exists(beside))
if "fail" in rows:
    sys.exit("asked to fail")
"#;

#[test]
fn a_script_runs_sandboxed_with_its_file_argument_mounted_and_its_files_collected_then_cached() {
    let dir = TempDir::new().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    write(dir.path(), "clean.py", CLEAN);
    write(dir.path(), "data/in.txt", "a b c");
    write(dir.path(), "data/secret.txt", "do not read");
    let (out, doc) = exec(dir.path(), &["clean.py", "data/in.txt"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(doc["status"], "completed", "{doc}");
    let real = std::fs::canonicalize(dir.path().join("data/in.txt")).unwrap();
    // The argument became its absolute path; the file beside it is not visible in the sandbox.
    assert_eq!(doc["stdout"], format!("{} 3 False\n", real.display()));
    assert_eq!(doc["returncode"], 0);
    let written = std::fs::read_to_string(dir.path().join("outputs/clean/out/upper.txt")).unwrap();
    assert_eq!(written, "A B C");
    let recorded: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("outputs/clean/output.json")).unwrap())
            .unwrap();
    assert_eq!(recorded["files"][0]["path"], "out/upper.txt");
    assert_eq!(recorded["files"][0]["size"], 5);
    assert!(recorded["files"][0].get("content_base64").is_none(), "{recorded}");
    let session = doc["session_id"].as_str().unwrap().to_owned();

    // The same script, argument and content: from the cache, the same session, nothing run.
    std::fs::remove_dir_all(dir.path().join("outputs")).unwrap();
    let (out, doc) = exec(dir.path(), &["clean.py", "data/in.txt"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(doc["status"], "cached", "{doc}");
    assert_eq!(doc["session_id"], session.as_str());
    // The files come back from the cached result.
    let written = std::fs::read_to_string(dir.path().join("outputs/clean/out/upper.txt")).unwrap();
    assert_eq!(written, "A B C");

    // The argument's content changed: the key changed, the script runs again.
    write(dir.path(), "data/in.txt", "a b c d");
    let (out, doc) = exec(dir.path(), &["clean.py", "data/in.txt"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(doc["status"], "completed");
    assert_ne!(doc["session_id"], session.as_str());
    assert_eq!(doc["stdout"], format!("{} 4 False\n", real.display()));

    // The script changed: it runs again too.
    write(dir.path(), "clean.py", &format!("{CLEAN}\nprint('v2')\n"));
    let (_, doc) = exec(dir.path(), &["clean.py", "data/in.txt"]);
    assert_eq!(doc["status"], "completed", "{doc}");
    assert!(doc["stdout"].as_str().unwrap().ends_with("v2\n"), "{doc}");
}

#[test]
fn a_failing_script_exits_3_with_rvb_b020_and_the_end_of_its_stderr() {
    let dir = TempDir::new().unwrap();
    write(dir.path(), "clean.py", CLEAN);
    write(dir.path(), "bad.txt", "x fail");
    let out = rvbbit(dir.path())
        .args(["exec", "clean.py", "bad.txt"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("RVB-B020") && err.contains("exited with code 1"),
        "{err}"
    );
    assert!(err.contains("asked to fail"), "{err}");
    // Not cached: the same command runs (and fails) again.
    let (out, doc) = exec(dir.path(), &["clean.py", "bad.txt"]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(doc["status"], "failed");
    assert_eq!(doc["code"], "RVB-B020");
}

#[test]
fn requirements_install_once_into_a_venv_cached_by_their_normalised_hash() {
    let dir = TempDir::new().unwrap();
    let project = dir.path().join("proj");
    std::fs::create_dir(&project).unwrap();
    wheel(&project.join("hello_rvbbit-0.1-py3-none-any.whl"));
    write(
        &project,
        "requirements.txt",
        "# a local wheel: no network\n./hello_rvbbit-0.1-py3-none-any.whl\n",
    );
    write(
        &project,
        "greet.py",
        "import hello_rvbbit, sys\nprint(hello_rvbbit.greet(sys.argv[1]))\n",
    );
    let (out, doc) = exec(dir.path(), &["proj/greet.py", "Ada"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(doc["stdout"], "hello Ada\n");
    let venvs: Vec<_> = std::fs::read_dir(dir.path().join(".rvbbit/exec/venvs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(venvs.len(), 1, "{venvs:?}");
    let ready = venvs[0].join(".rvbbit-ready");
    let made = std::fs::metadata(&ready).unwrap().modified().unwrap();
    // Comments, order and spacing do not change the hash: the same venv, not installed again.
    write(
        &project,
        "requirements.txt",
        "  ./hello_rvbbit-0.1-py3-none-any.whl  # the same\n\n",
    );
    let (out, doc) = exec(dir.path(), &["proj/greet.py", "Bob"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(doc["stdout"], "hello Bob\n");
    assert_eq!(
        std::fs::read_dir(dir.path().join(".rvbbit/exec/venvs"))
            .unwrap()
            .count(),
        1
    );
    assert_eq!(std::fs::metadata(&ready).unwrap().modified().unwrap(), made);
    // A requirement that cannot install: RVB-B022 (exit 6) before anything runs, no venv left behind.
    write(&project, "requirements.txt", "./missing-0.1-py3-none-any.whl\n");
    let out = rvbbit(dir.path())
        .args(["exec", "proj/greet.py", "Cy"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(stderr(&out).contains("RVB-B022"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_dir(dir.path().join(".rvbbit/exec/venvs"))
            .unwrap()
            .count(),
        1
    );
}

/// A minimal pure-Python wheel `hello_rvbbit` with `greet(name)`, written with python3's zipfile.
fn wheel(path: &Path) {
    let script = r#"import sys, zipfile
w = zipfile.ZipFile(sys.argv[1], "w")
w.writestr("hello_rvbbit/__init__.py", "def greet(n):\n    return 'hello ' + n\n")
w.writestr("hello_rvbbit-0.1.dist-info/METADATA", "Metadata-Version: 2.1\nName: hello-rvbbit\nVersion: 0.1\n")
w.writestr("hello_rvbbit-0.1.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
w.writestr("hello_rvbbit-0.1.dist-info/RECORD", "")
w.close()
"#;
    let status = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn a_batch_of_files_runs_the_script_once_each_and_retry_failed_only_reruns_the_failed_one() {
    let dir = TempDir::new().unwrap();
    std::fs::create_dir(dir.path().join("in")).unwrap();
    write(dir.path(), "clean.py", CLEAN);
    write(dir.path(), "in/a.txt", "one two");
    write(dir.path(), "in/b.txt", "fail");
    write(dir.path(), "in/c.txt", "three");
    let (out, doc) = exec(
        dir.path(),
        &["--batch", "in/*.txt", "--parallel", "2", "clean.py", "{}"],
    );
    assert_eq!(out.status.code(), Some(11), "{}", stderr(&out));
    let status = |doc: &Value, name: &str| -> String {
        doc["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["name"] == name)
            .map(|i| i["status"].as_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    assert_eq!(status(&doc, "a"), "completed", "{doc}");
    assert_eq!(status(&doc, "b"), "failed");
    assert_eq!(status(&doc, "c"), "completed");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("outputs/a/out/upper.txt")).unwrap(),
        "ONE TWO"
    );
    let error: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("outputs/b/error.json")).unwrap())
            .unwrap();
    assert_eq!(error["code"], "RVB-B020", "{error}");

    // Fixed, then retried: only b runs again (a and c are not even looked up in the cache).
    write(dir.path(), "in/b.txt", "fixed");
    let out = rvbbit(dir.path())
        .args(["--output", "json", "batch", "retry", "last", "--failed-only"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = doc["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["b"], "{doc}");
    assert_eq!(status(&doc, "b"), "completed");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("outputs/b/out/upper.txt")).unwrap(),
        "FIXED"
    );
    assert!(!dir.path().join("outputs/b/error.json").exists());

    // The outputs again from the store (as on another machine sharing it): b's retry is the newest
    // batch, with b's files; the first batch gives a and c, and b's error.
    let got = rvbbit(dir.path())
        .args(["batch", "download", "last", "--output-dir", "got"])
        .output()
        .unwrap();
    assert_eq!(got.status.code(), Some(0), "{}", stderr(&got));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("got/b/out/upper.txt")).unwrap(),
        "FIXED"
    );
    let list = rvbbit(dir.path())
        .args(["--output", "json", "batch", "list"])
        .output()
        .unwrap();
    let list: Value = serde_json::from_slice(&list.stdout).unwrap();
    let first = list["batches"][1]["batch_id"].as_str().unwrap().to_owned();
    let out = rvbbit(dir.path())
        .args([
            "--output",
            "json",
            "batch",
            "download",
            &first,
            "--output-dir",
            "first",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (doc["outputs"].as_u64(), doc["errors"].as_u64()),
        (Some(2), Some(1)),
        "{doc}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("first/a/out/upper.txt")).unwrap(),
        "ONE TWO"
    );
    assert!(dir.path().join("first/b/error.json").is_file());
    assert!(!dir.path().join("first/b/output.json").exists());

    // The whole batch again: every input from the cache.
    let (out, doc) = exec(dir.path(), &["--batch", "in/*.txt", "clean.py", "{}"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(doc["cached"], 3, "{doc}");
}

#[test]
fn bad_scripts_arguments_and_output_files_are_refused_with_codes() {
    let dir = TempDir::new().unwrap();
    write(dir.path(), "tool.rb", "puts 1");
    write(dir.path(), "clean.py", CLEAN);
    write(
        dir.path(),
        "many.py",
        "import os\nfor i in range(20):\n    open(f'f{i}.txt', 'w').write('x')\nos.symlink('/etc/passwd', 'link')\n",
    );
    write(dir.path(), "rvbbit.toml", "[exec]\nmax_output_files = 10\n");
    let cases: [(&[&str], i32, &str); 4] = [
        (&["tool.rb"], 6, "--runtime"),
        (&["missing.py"], 6, "cannot be read"),
        (&["clean.py", "{}"], 6, "--batch"),
        (&["--batch", "nothing/*.txt", "clean.py"], 6, "RVB-B003"),
    ];
    for (args, code, says) in cases {
        let out = rvbbit(dir.path()).arg("exec").args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    }
    // More files than `exec.max_output_files`: that run fails with RVB-B021 naming the setting.
    let out = rvbbit(dir.path()).args(["exec", "many.py"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("RVB-B021") && stderr(&out).contains("exec.max_output_files"));
    // Under the limit, the link the script made is not followed or collected.
    write(dir.path(), "rvbbit.toml", "[exec]\nmax_output_files = 100\n");
    let (out, doc) = exec(dir.path(), &["many.py"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(doc["files"].as_array().unwrap().len(), 20, "{doc}");
    assert!(!dir.path().join("outputs/many/link").exists());
}
