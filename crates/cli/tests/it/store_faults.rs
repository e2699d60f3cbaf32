//! Nothing lost silently (issue 13): real `rvbbit run` processes against a full disk (a 2 MiB tmpfs),
//! an unwritable working directory and `.rvbbit/` (an unprivileged uid, since the tests run as root and
//! root ignores file modes), a read-only store file and a locked store. Each run either records
//! everything (in the store, or spilled and then replayed exactly once by `rvbbit db replay`, counting
//! events) or exits 5 naming what was lost. Also: `rvbbit doctor` on a read-only `-shm`, stdout on
//! `/dev/full`.

use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use tempfile::TempDir;

use crate::run_command::write;
use crate::rvbbit;

/// Three shell cells: a handful of events, no provider.
const CASCADE: &str = r#"
cascade_id: faults
cells:
  - name: one
    tool: linux_shell
    inputs: {command: "echo one"}
  - name: two
    tool: linux_shell
    inputs: {command: "echo two"}
  - name: three
    tool: linux_shell
    inputs: {command: "echo three"}
"#;

const NOBODY: u32 = 65534;

/// The binary run as uid/gid 65534 (`nobody`), so file modes apply.
fn as_nobody(dir: &Path) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        env!("CARGO_BIN_EXE_rvbbit"),
    ]);
    cmd.env_clear().env("NO_COLOR", "1").current_dir(dir);
    cmd
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(out)))
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A directory `nobody` may read; owned by it (writable) when `writable`.
fn nobody_dir(writable: bool) -> TempDir {
    let dir = TempDir::new().unwrap();
    chmod(dir.path(), 0o755);
    if writable {
        chown(dir.path(), Some(NOBODY), Some(NOBODY)).unwrap();
    }
    let file = write(dir.path(), "faults.yaml", CASCADE);
    chmod(Path::new(&file), 0o644);
    dir
}

fn db(path: &Path) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(path).unwrap();
    c.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
    c
}

fn events_of(store: &Path, session: &str) -> i64 {
    db(store)
        .query_row(
            "SELECT count(*) FROM events WHERE session_id = ?1",
            [session],
            |r| r.get(0),
        )
        .unwrap()
}

/// Event lines in the spill files of `dir/.rvbbit/spill` (not yet replayed).
fn spilled_events(dir: &Path) -> i64 {
    let Ok(entries) = std::fs::read_dir(dir.join(".rvbbit/spill")) else {
        return 0;
    };
    entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .map(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .filter(|l| l.contains("\"type\":\"event\""))
                .count() as i64
        })
        .sum()
}

/// A 2 MiB tmpfs mounted at a fresh directory, unmounted on drop.
struct Tmpfs {
    path: PathBuf,
    _dir: TempDir,
}

impl Tmpfs {
    fn mount() -> Option<Tmpfs> {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("disk");
        std::fs::create_dir(&path).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
            .arg(&path)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            assert!(
                std::env::var_os("CI").is_none(),
                "cannot mount a tmpfs (needs root); under CI=true this must work"
            );
            eprintln!("skipping: cannot mount a tmpfs (needs root)");
            return None;
        }
        Some(Tmpfs { path, _dir: dir })
    }

    /// Fill the disk to the last byte; returns the filler file.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let filler = self.path.join("filler");
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 4096];
        while f.write_all(&chunk).is_ok() {}
        while f.write_all(&[0]).is_ok() {}
        let _ = f.sync_all(); // ENOSPC is the point.
        filler
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status(); // Best effort in a test.
    }
}

#[test]
fn a_full_disk_fails_the_run_with_s008_naming_the_loss_and_a_freed_disk_records_everything() {
    let Some(disk) = Tmpfs::mount() else { return };
    let dir = disk.path.clone();
    write(&dir, "faults.yaml", CASCADE);
    let init = rvbbit(&dir).args(["db", "init"]).output().unwrap();
    assert_eq!(init.status.code(), Some(0), "{}", text(&init));

    // Just below the limit: space left, everything stored, exit 0.
    let fine = rvbbit(&dir)
        .args(["run", "faults.yaml", "--session", "roomy", "--output", "json"])
        .output()
        .unwrap();
    assert_eq!(fine.status.code(), Some(0), "{}", text(&fine));
    let doc = json(&fine);
    assert_eq!(doc["status"], "completed");
    assert_eq!(doc["recording"]["lost"], 0);
    let store = dir.join(".rvbbit/rvbbit.db");
    assert_eq!(
        events_of(&store, "roomy"),
        doc["recording"]["events_stored"].as_i64().unwrap()
    );

    // Over it: the disk is full, neither the store nor the spill file can take a record.
    let filler = disk.fill();
    let full = rvbbit(&dir)
        .args(["run", "faults.yaml", "--session", "cramped", "--output", "json"])
        .output()
        .unwrap();
    assert_eq!(full.status.code(), Some(5), "{}", text(&full));
    let doc = json(&full);
    assert_eq!(doc["status"], "lost", "{doc}");
    assert_eq!(doc["session_status"], "completed", "the run itself finished");
    assert_eq!(doc["code"], "RVB-S008");
    assert_eq!(doc["exit_code"], 5);
    assert!(doc["recording"]["lost"].as_u64().unwrap() > 0, "{doc}");
    let message = doc["message"].as_str().unwrap();
    assert!(message.contains("No space left on device"), "{message}");
    assert!(message.contains(".rvbbit/spill"), "{message}");
    let text_run = rvbbit(&dir)
        .args(["run", "faults.yaml", "--session", "cramped-2"])
        .output()
        .unwrap();
    assert_eq!(text_run.status.code(), Some(5), "{}", text(&text_run));
    let err = String::from_utf8_lossy(&text_run.stderr);
    assert!(
        err.contains("error[RVB-S008]") && err.contains("were lost"),
        "{err}"
    );

    // Freed again: the next run records everything.
    std::fs::remove_file(filler).unwrap();
    let again = rvbbit(&dir)
        .args(["run", "faults.yaml", "--session", "freed", "--output", "json"])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert_eq!(
        events_of(&store, "freed"),
        json(&again)["recording"]["events_stored"].as_i64().unwrap()
    );
}

#[test]
fn a_store_on_a_full_disk_spills_exits_5_with_s003_and_replay_loads_it_exactly_once() {
    let Some(disk) = Tmpfs::mount() else { return };
    let work = TempDir::new().unwrap();
    write(work.path(), "faults.yaml", CASCADE);
    let url = format!("sqlite://{}", disk.path.join("rvbbit.db").display());
    let init = rvbbit(work.path())
        .args(["db", "init"])
        .env("RVBBIT_STORE__URL", &url)
        .output()
        .unwrap();
    assert_eq!(init.status.code(), Some(0), "{}", text(&init));
    let filler = disk.fill();
    let out = rvbbit(work.path())
        .args(["run", "faults.yaml", "--output", "json"])
        .env("RVBBIT_STORE__URL", &url)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    let doc = json(&out);
    assert_eq!(
        (doc["status"].as_str(), doc["code"].as_str()),
        (Some("spilled"), Some("RVB-S003"))
    );
    assert_eq!(doc["recording"]["lost"], 0);
    let file = doc["recording"]["spill_files"][0].as_str().unwrap().to_owned();
    assert!(doc["message"].as_str().unwrap().contains(&file), "{doc}");
    assert!(doc["hint"].as_str().unwrap().contains("rvbbit db replay"));
    let session = doc["session_id"].as_str().unwrap().to_owned();
    let spilled = spilled_events(work.path());
    assert!(spilled > 0);

    std::fs::remove_file(filler).unwrap();
    let replay = |n: i64| {
        let r = rvbbit(work.path())
            .args(["db", "replay", "--output", "json"])
            .env("RVBBIT_STORE__URL", &url)
            .output()
            .unwrap();
        assert_eq!(r.status.code(), Some(0), "{}", text(&r));
        assert_eq!(json(&r)["replay"]["events_inserted"], n, "{}", text(&r));
    };
    replay(spilled);
    replay(0);
    let store = disk.path.join("rvbbit.db");
    assert_eq!(events_of(&store, &session), spilled);
    let kinds: i64 = db(&store)
        .query_row(
            "SELECT count(*) FROM events WHERE session_id = ?1 AND kind = 'cascade_complete'",
            [&session],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(kinds, 1);
}

#[test]
fn an_unwritable_working_directory_or_rvbbit_folder_fails_with_s008_and_the_os_error() {
    // Just below: a writable directory records everything.
    let ok = nobody_dir(true);
    let out = as_nobody(ok.path())
        .args(["run", "faults.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // The working directory itself is not writable: no store, no spill.
    let ro = nobody_dir(false);
    let out = as_nobody(ro.path())
        .args(["run", "faults.yaml", "--output", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    let doc = json(&out);
    assert_eq!(
        (doc["status"].as_str(), doc["code"].as_str()),
        (Some("lost"), Some("RVB-S008"))
    );
    let message = doc["message"].as_str().unwrap();
    assert!(message.contains("Permission denied"), "{message}");
    assert!(message.contains(".rvbbit/spill"), "{message}");

    // The working directory is, `.rvbbit/` is not.
    let dotted = nobody_dir(true);
    std::fs::create_dir(dotted.path().join(".rvbbit")).unwrap();
    chmod(&dotted.path().join(".rvbbit"), 0o555);
    let out = as_nobody(dotted.path())
        .args(["run", "faults.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("error[RVB-S008]"), "{err}");
    assert!(err.contains("Permission denied"), "{err}");
}

#[test]
fn a_read_only_store_file_spills_and_replay_loads_it_once_the_file_is_fixed() {
    let dir = nobody_dir(true);
    let init = as_nobody(dir.path()).args(["db", "init"]).output().unwrap();
    assert_eq!(init.status.code(), Some(0), "{}", text(&init));
    let store = dir.path().join(".rvbbit/rvbbit.db");
    chmod(&store, 0o444);
    let out = as_nobody(dir.path())
        .args(["run", "faults.yaml", "--output", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    let doc = json(&out);
    assert_eq!(
        (doc["status"].as_str(), doc["code"].as_str()),
        (Some("spilled"), Some("RVB-S003"))
    );
    let session = doc["session_id"].as_str().unwrap().to_owned();
    let spilled = spilled_events(dir.path());
    assert!(spilled > 0);

    // SQLite gave the -wal and -shm it created the database's 0444: fixing the database file alone is
    // not enough, and doctor names every file that is still read-only.
    chmod(&store, 0o644);
    let doctor = as_nobody(dir.path()).args(["doctor"]).output().unwrap();
    assert_eq!(doctor.status.code(), Some(5), "{}", text(&doctor));
    let report = String::from_utf8_lossy(&doctor.stdout);
    assert!(
        !report.contains("store's database file"),
        "the database file is fixed: {report}"
    );
    assert!(
        report.contains("rvbbit.db-shm is not writable: Permission denied"),
        "{report}"
    );
    for companion in ["-wal", "-shm"] {
        let path = dir.path().join(format!(".rvbbit/rvbbit.db{companion}"));
        if path.exists() {
            chmod(&path, 0o644);
        }
    }
    let doctor = as_nobody(dir.path()).args(["doctor"]).output().unwrap();
    assert!(
        !String::from_utf8_lossy(&doctor.stdout).contains("not writable"),
        "{}",
        text(&doctor)
    );
    for n in [spilled, 0] {
        let r = as_nobody(dir.path())
            .args(["db", "replay", "--output", "json"])
            .output()
            .unwrap();
        assert_eq!(r.status.code(), Some(0), "{}", text(&r));
        assert_eq!(json(&r)["replay"]["events_inserted"], n);
    }
    assert_eq!(events_of(&store, &session), spilled);
}

#[test]
fn doctor_names_a_read_only_shm_file_and_how_to_fix_it() {
    let dir = nobody_dir(true);
    let init = as_nobody(dir.path()).args(["db", "init"]).output().unwrap();
    assert_eq!(init.status.code(), Some(0), "{}", text(&init));
    // Just below: every file writable.
    let fine = as_nobody(dir.path())
        .args(["doctor", "--output", "json"])
        .output()
        .unwrap();
    let doc = json(&fine);
    let files: Vec<&Value> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == "files")
        .collect();
    assert_eq!(files.len(), 1, "{doc}");
    assert_eq!(files[0]["level"], "ok", "{doc}");

    // A 0444 `-shm` left behind (as after a read-only episode) keeps the store broken.
    let shm = dir.path().join(".rvbbit/rvbbit.db-shm");
    std::fs::write(&shm, vec![0u8; 32768]).unwrap();
    chown(&shm, Some(NOBODY), Some(NOBODY)).unwrap();
    chmod(&shm, 0o444);
    let out = as_nobody(dir.path())
        .args(["doctor", "--output", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    let doc = json(&out);
    let bad: Vec<&Value> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == "files" && f["level"] == "error")
        .collect();
    assert_eq!(bad.len(), 1, "{doc}");
    let message = bad[0]["message"].as_str().unwrap();
    assert!(message.contains("RVB-S007"), "{message}");
    assert!(message.contains("rvbbit.db-shm"), "{message}");
    assert!(message.contains("Permission denied"), "{message}");
    assert!(bad[0]["fix"].as_str().unwrap().contains("chmod u+w"), "{doc}");
}

#[test]
fn a_locked_store_makes_run_spill_exit_5_and_replay_loads_it_exactly_once() {
    let dir = TempDir::new().unwrap();
    write(dir.path(), "faults.yaml", CASCADE);
    let init = rvbbit(dir.path()).args(["db", "init"]).output().unwrap();
    assert_eq!(init.status.code(), Some(0));
    let store = dir.path().join(".rvbbit/rvbbit.db");
    let locker = db(&store);
    locker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let out = rvbbit(dir.path())
        .args(["run", "faults.yaml", "--session", "locked-out"])
        .env(
            "RVBBIT_STORE__URL",
            "sqlite://.rvbbit/rvbbit.db?busy_timeout_ms=20",
        )
        .output()
        .unwrap();
    locker.execute_batch("ROLLBACK").unwrap();
    drop(locker);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("error[RVB-S003]") && err.contains("rvbbit db replay"),
        "{err}"
    );
    let spilled = spilled_events(dir.path());
    assert!(spilled > 0);
    let before = events_of(&store, "locked-out");
    for n in [spilled, 0] {
        let r = rvbbit(dir.path())
            .args(["db", "replay", "--output", "json"])
            .output()
            .unwrap();
        assert_eq!(r.status.code(), Some(0), "{}", text(&r));
        let inserted = json(&r)["replay"]["events_inserted"].as_i64().unwrap();
        assert!(inserted <= n, "never more than was spilled");
        if n == 0 {
            assert_eq!(inserted, 0, "a second replay stores nothing twice");
        }
    }
    let after = events_of(&store, "locked-out");
    assert!(after >= spilled && after >= before);
    let distinct: i64 = db(&store)
        .query_row(
            "SELECT count(DISTINCT seq) FROM events WHERE session_id = 'locked-out'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(distinct, after, "no event stored twice");
}

#[test]
fn a_torn_spill_line_is_reported_and_the_rest_replays() {
    let dir = TempDir::new().unwrap();
    write(dir.path(), "faults.yaml", CASCADE);
    std::fs::write(dir.path().join("blocker"), "").unwrap();
    // The store cannot be created (a file sits where its directory should be): everything spills.
    let out = rvbbit(dir.path())
        .args(["run", "faults.yaml", "--session", "torn", "--output", "json"])
        .env("RVBBIT_STORE__URL", "sqlite://blocker/rvbbit.db")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    let file = PathBuf::from(json(&out)["recording"]["spill_files"][0].as_str().unwrap());
    let body = std::fs::read_to_string(&file).unwrap();
    let lines = body.lines().count();
    let events = spilled_events(dir.path());
    // Tear the last line (an event: cascade_complete or the final session record).
    let torn = &body[..body.len() - 20];
    std::fs::write(&file, torn).unwrap();
    let last_is_event = body.lines().last().unwrap().contains("\"type\":\"event\"");

    let r = rvbbit(dir.path()).args(["db", "replay"]).output().unwrap();
    assert_eq!(r.status.code(), Some(0), "{}", text(&r));
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        err.contains(&format!("line {lines} of")) && err.contains("damaged"),
        "{err}"
    );
    assert!(err.contains("rejected"), "{err}");
    let store = dir.path().join(".rvbbit/rvbbit.db");
    let expected = events - i64::from(last_is_event);
    assert_eq!(events_of(&store, "torn"), expected);
    let kept = std::fs::read_dir(dir.path().join(".rvbbit/spill/rejected"))
        .unwrap()
        .count();
    assert_eq!(kept, 1);
    let again = rvbbit(dir.path())
        .args(["db", "replay", "--output", "json"])
        .output()
        .unwrap();
    assert_eq!(json(&again)["replay"]["events_inserted"], 0);
    assert_eq!(events_of(&store, "torn"), expected);
}

#[test]
fn output_that_cannot_be_written_fails_with_s009_and_a_closed_pipe_stays_quiet() {
    let dir = TempDir::new().unwrap();
    write(dir.path(), "faults.yaml", CASCADE);
    for format in ["text", "json"] {
        let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
        let out = rvbbit(dir.path())
            .args(["run", "faults.yaml", "--output", format])
            .stdout(full)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(5), "{format}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("RVB-S009"), "{format}: {err}");
        assert!(err.contains("No space left on device"), "{format}: {err}");
    }
    // Just below: a working stdout exits 0.
    let ok = rvbbit(dir.path()).args(["run", "faults.yaml"]).output().unwrap();
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("three"));
}
