//! `rvbbit init` (a starter project that runs offline) and `rvbbit completions` (issue 14 item 9).

use std::path::Path;
use std::process::Command;

use crate::run_command::JsonOutcome;
use crate::rvbbit;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

#[test]
fn init_writes_a_project_whose_printed_next_steps_run_offline() {
    let dir = tempfile::tempdir().unwrap();
    let out = rvbbit(dir.path()).args(["init", "proj"]).output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    for file in [
        "hello.yaml",
        "recordings/hello.jsonl",
        "rvbbit.toml",
        ".gitignore",
    ] {
        assert!(dir.path().join("proj").join(file).is_file(), "{file} missing");
        assert!(stdout.contains(&format!("created proj/{file}")), "{stdout}");
    }
    // Every printed step runs, from the parent folder, with no key and no network.
    let steps: Vec<&str> = stdout
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("cd proj && rvbbit "))
        .collect();
    assert_eq!(steps.len(), 3, "{stdout}");
    let bin = Path::new(env!("CARGO_BIN_EXE_rvbbit")).parent().unwrap();
    for step in steps {
        let out = Command::new("bash")
            .args(["-c", step])
            .env_clear()
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .env("NO_COLOR", "1")
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "`{step}`: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The run was recorded in the project's own store.
    let out = rvbbit(&dir.path().join("proj"))
        .args([
            "--output",
            "json",
            "run",
            "hello.yaml",
            "--replay",
            "recordings/hello.jsonl",
        ])
        .args(["--input", r#"{"name": "Ada", "style": "pirate"}"#])
        .output()
        .unwrap();
    let outcome: JsonOutcome = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(outcome.status, "completed");
    assert_eq!(outcome.llm_calls, 1);
    assert!(dir.path().join("proj/.rvbbit/rvbbit.db").is_file());
}

#[test]
fn init_refuses_to_overwrite_without_force_and_force_touches_only_scaffold_files() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(rvbbit(dir.path()).arg("init").status().unwrap().code(), Some(0));
    std::fs::write(dir.path().join("rvbbit.toml"), "# mine\n").unwrap();
    std::fs::write(dir.path().join("notes.txt"), "keep me").unwrap();

    let out = rvbbit(dir.path()).arg("init").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{stderr}");
    assert!(stderr.contains("error[RVB-C010]"), "{stderr}");
    assert!(stderr.contains("rvbbit.toml"), "{stderr}");
    assert!(stderr.contains("--force"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("rvbbit.toml")).unwrap(),
        "# mine\n"
    );

    let out = rvbbit(dir.path())
        .args(["--output", "json", "init", "--force"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["status"], "ok");
    assert_eq!(doc["overwritten"].as_array().unwrap().len(), 4);
    assert_ne!(
        std::fs::read_to_string(dir.path().join("rvbbit.toml")).unwrap(),
        "# mine\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("notes.txt")).unwrap(),
        "keep me"
    );
}

#[test]
fn init_into_an_unwritable_place_is_rvb_c011() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("afile"), "").unwrap();
    let out = rvbbit(dir.path()).args(["init", "afile/sub"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{stderr}");
    assert!(stderr.contains("error[RVB-C011]"), "{stderr}");
}

/// The scaffold is the `hello` example and its shipped recording, so the replay test covers both.
#[test]
fn the_scaffold_is_the_hello_example_and_its_recording() {
    let scaffold = root().join("crates/cli/scaffold");
    for (ours, example) in [
        ("hello.yaml", "examples/hello.yaml"),
        ("recordings/hello.jsonl", "examples/recordings/hello.jsonl"),
    ] {
        assert_eq!(
            std::fs::read_to_string(scaffold.join(ours)).unwrap(),
            std::fs::read_to_string(root().join(example)).unwrap(),
            "crates/cli/scaffold/{ours} differs from {example}: copy the example over it"
        );
    }
}

#[test]
fn completions_are_printed_for_bash_zsh_and_fish() {
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let out = rvbbit(dir.path()).args(["completions", shell]).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{shell}");
        let script = String::from_utf8(out.stdout).unwrap();
        for word in [
            "rvbbit",
            "validate",
            "sessions",
            "completions",
            "init",
            "--replay",
        ] {
            assert!(script.contains(word), "{shell} completion lacks `{word}`");
        }
        if shell == "bash" {
            let path = dir.path().join("rvbbit.bash");
            std::fs::write(&path, &script).unwrap();
            let check = Command::new("bash").arg("-n").arg(&path).output().unwrap();
            assert!(
                check.status.success(),
                "bash -n: {}",
                String::from_utf8_lossy(&check.stderr)
            );
        }
    }
    let out = rvbbit(dir.path()).args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(out.status.code(), Some(6));
}
