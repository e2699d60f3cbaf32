//! The client conformance suite (issue 15): real PostgreSQL clients run their check scripts
//! (`tests/clients/check_<client>.py`) against a throwaway `rvbbit serve sql` on a free loopback port.
//! Each script prints one line per check and the summary `client: N passed, M failed`; a test passes
//! when its script reports no failed check. Known gaps are marked in the scripts and counted apart.
//!
//! The clients live in a venv outside the repository (`RVBBIT_PYCLIENTS`, its python), installed by
//! `scripts/test-deps.sh` from `tests/clients/requirements.txt`. Without it the tests are skipped with a
//! reason, except under `CI=true`, where a missing client fails.

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use crate::pgwire::{Server, llm, runtime};

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

/// The clients' python, or None (skip) when it is missing outside CI.
fn clients_python(module: &str) -> Option<String> {
    let python = std::env::var("RVBBIT_PYCLIENTS").ok();
    let has = python.as_deref().is_some_and(|p| {
        Command::new(p)
            .args(["-c", &format!("import {module}")])
            .status()
            .is_ok_and(|s| s.success())
    });
    if has {
        return python;
    }
    let reason = format!(
        "RVBBIT_PYCLIENTS ({}) is not a python with {module}: run `. scripts/test-deps.sh`, which installs \
         tests/clients/requirements.txt into ~/.cache/rvbbit-pyclients and sets it",
        python.as_deref().unwrap_or("unset")
    );
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{reason}");
    eprintln!("skipped: {reason}");
    None
}

/// What a check script reported.
#[derive(Debug)]
struct Report {
    passed: usize,
    failed: usize,
    gaps: usize,
    output: String,
}

/// Start a fresh server (with the `animals` file of `[sql.tables]`), run the check program `command(port)`
/// makes and read its lines. A program still running after five minutes is killed (`timeout`).
fn run_checks(client: &str, command: impl FnOnce(u16) -> Command) -> Report {
    let rt = runtime();
    let llm = llm(&rt);
    let dir = TempDir::new().unwrap();
    std::fs::copy(clients_dir().join("animals.csv"), dir.path().join("animals.csv")).unwrap();
    std::fs::write(
        dir.path().join("rvbbit.toml"),
        "[sql.tables]\nanimals = \"animals.csv\"\n",
    )
    .unwrap();
    let server = Server::start(dir.path(), &llm.base_url(), "127.0.0.1");
    let out = command(server.port).output().unwrap();
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{output}");
    let count = |prefix: &str| output.lines().filter(|l| l.starts_with(prefix)).count();
    let report = Report {
        passed: count("ok   "),
        failed: count("FAIL "),
        gaps: count("gap  "),
        output: output.clone(),
    };
    let mut summary = format!("{client}: {} passed, {} failed", report.passed, report.failed);
    if report.gaps > 0 {
        summary.push_str(&format!(", {} known gaps", report.gaps));
    }
    assert!(
        output.lines().any(|l| l == summary),
        "no summary `{summary}` (the checks crashed?):\n{output}"
    );
    assert_eq!(out.status.success(), report.failed == 0, "{output}");
    assert_eq!(server.stop(), Some(0), "the server survived the checks");
    report
}

/// A python check script (`check_<client>.py`) run with the clients' python.
fn python_checks(client: &str, module: &str) -> Option<Report> {
    let python = clients_python(module)?;
    Some(run_checks(client, |port| {
        let mut command = Command::new("timeout");
        command
            .args(["300", &python])
            .arg(clients_dir().join(format!("check_{client}.py")))
            .env("PORT", port.to_string())
            .env("PYTHONDONTWRITEBYTECODE", "1");
        command
    }))
}

fn assert_passes(client: &str, report: Option<Report>, at_least: usize) {
    let Some(report) = report else {
        return;
    };
    assert_eq!(report.failed, 0, "{}", report.output);
    assert!(
        report.passed >= at_least,
        "{client}: {} checks passed, expected at least {at_least}:\n{}",
        report.passed,
        report.output
    );
}

#[test]
fn psycopg_passes_its_checks() {
    assert_passes("psycopg", python_checks("psycopg", "psycopg"), 25);
}

#[test]
fn asyncpg_passes_its_checks() {
    assert_passes("asyncpg", python_checks("asyncpg", "asyncpg"), 18);
}

#[test]
fn sqlalchemy_passes_its_checks() {
    assert_passes("sqlalchemy", python_checks("sqlalchemy", "sqlalchemy"), 9);
}

/// psql (`RVBBIT_PSQL`, Debian's postgresql-client) through `check_psql.sh`.
#[test]
fn psql_passes_its_checks() {
    let psql = std::env::var("RVBBIT_PSQL").unwrap_or_else(|_| "psql".into());
    let has = Command::new(&psql)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !has {
        let reason =
            format!("psql (`{psql}`) is missing: run `. scripts/test-deps.sh` (Debian's postgresql-client)");
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{reason}");
        eprintln!("skipped: {reason}");
        return;
    }
    let report = run_checks("psql", |port| {
        let mut command = Command::new("timeout");
        command
            .args(["300", "bash"])
            .arg(clients_dir().join("check_psql.sh"))
            .env("PORT", port.to_string())
            .env("RVBBIT_PSQL", &psql)
            .env_remove("PGPASSWORD");
        command
    });
    assert_passes("psql", Some(report), 6);
}

/// pgjdbc from Debian's libpostgresql-jdbc-java (`RVBBIT_PGJDBC_JAR`), compiled with javac; like the
/// other clients, missing only skips outside CI.
#[test]
fn pgjdbc_passes_its_checks() {
    let jar = PathBuf::from(
        std::env::var("RVBBIT_PGJDBC_JAR").unwrap_or_else(|_| "/usr/share/java/postgresql.jar".into()),
    );
    let javac_ok = Command::new("javac")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !jar.is_file() || !javac_ok {
        let reason = format!(
            "pgjdbc ({}) or javac is missing: run `. scripts/test-deps.sh` (Debian's libpostgresql-jdbc-java and \
             default-jdk-headless)",
            jar.display()
        );
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{reason}");
        eprintln!("skipped: {reason}");
        return;
    }
    let classes = TempDir::new().unwrap();
    let compiled = Command::new("javac")
        .args(["-d", &classes.path().to_string_lossy()])
        .arg(clients_dir().join("CheckPgjdbc.java"))
        .output()
        .unwrap();
    assert!(
        compiled.status.success(),
        "{}",
        String::from_utf8_lossy(&compiled.stderr)
    );
    let classpath = format!("{}:{}", classes.path().display(), jar.display());
    let report = run_checks("pgjdbc", |port| {
        let mut command = Command::new("timeout");
        command.args(["300", "java", "-cp", &classpath, "CheckPgjdbc", &port.to_string()]);
        command
    });
    assert_passes("pgjdbc", Some(report), 15);
}
