//! Docs as tests: every shell command in README.md, examples/README.md and docs/*.md runs, and does what
//! its comment says.
//!
//! The runner extracts the fenced ```sh, ```bash, ```shell and ```console blocks (in a console block only
//! the `$ ` lines), and runs each command with `bash -c` in a scratch copy of the project (`examples/`
//! copied), with the test's built `rvbbit` first on `PATH` and no host `RVBBIT_*` variables. LLM calls
//! go to a testkit server that echoes (`RVBBIT_PROVIDER_BASE_URL`), unless the command uses `--replay`.
//! The conventions (also in CONTRIBUTING.md):
//!
//! - a command must exit 0, unless its trailing comment says `exit N` (then it must exit N);
//! - `<!-- no-test: reason -->` on the line before a block skips the whole block;
//! - `cargo run -p rvbbit --` runs the built binary; `scripts/test.sh` (the test suite itself) is skipped;
//! - `<ID>` is the id of the newest session in the scratch store; `export` lines apply to the rest of
//!   the file;
//! - the commands of one file share one scratch project (and store), in order.
//!
//! A failing command is reported as `file:line`, with its exit code and the end of its output.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rvbbit_testkit::{Script, TestServer};
use tempfile::TempDir;

/// Seconds one documented command may take.
const TIMEOUT_SECS: u32 = 60;

/// One command found in a Markdown file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DocCommand {
    /// 1-based line of the command's first line.
    pub(crate) line: usize,
    /// The command as bash runs it (continuation lines joined).
    pub(crate) text: String,
    /// The exit code its comment announces (`exit N`), else 0.
    pub(crate) expect: i32,
}

/// What a Markdown file holds: commands to run and blocks skipped with their reasons.
#[derive(Debug, Default)]
pub(crate) struct Extracted {
    pub(crate) commands: Vec<DocCommand>,
    pub(crate) skipped: Vec<(usize, String)>,
}

const SHELLS: [&str; 4] = ["sh", "bash", "shell", "console"];

/// Find the shell blocks of `markdown` and their commands.
pub(crate) fn extract(markdown: &str) -> Extracted {
    let lines: Vec<&str> = markdown.lines().collect();
    let mut found = Extracted::default();
    let mut i = 0;
    while i < lines.len() {
        let fence = lines[i].trim_start();
        let Some(lang) = fence.strip_prefix("```") else {
            i += 1;
            continue;
        };
        let lang = lang.trim().to_owned();
        let end = (i + 1..lines.len())
            .find(|&j| lines[j].trim_start().starts_with("```"))
            .unwrap_or(lines.len());
        if SHELLS.contains(&lang.as_str()) {
            let marker = lines[..i]
                .iter()
                .rev()
                .find(|l| !l.trim().is_empty())
                .and_then(|l| l.trim().strip_prefix("<!-- no-test:"))
                .map(|r| r.trim_end_matches("-->").trim().to_owned());
            match marker {
                Some(reason) => found.skipped.push((i + 1, reason)),
                None => block_commands(&lines, i + 1, end, lang == "console", &mut found.commands),
            }
        }
        i = end + 1;
    }
    found
}

fn block_commands(lines: &[&str], start: usize, end: usize, console: bool, out: &mut Vec<DocCommand>) {
    let mut j = start;
    while j < end {
        let raw = lines[j];
        let first = j;
        j += 1;
        let mut text = if console {
            match raw.trim_start().strip_prefix("$ ") {
                Some(cmd) => cmd.to_owned(),
                None => continue,
            }
        } else {
            raw.to_owned()
        };
        if text.trim().is_empty() || text.trim_start().starts_with('#') {
            continue;
        }
        while text.trim_end().ends_with('\\') && j < end {
            let trimmed = text.trim_end();
            text = format!("{} {}", &trimmed[..trimmed.len() - 1], lines[j].trim());
            j += 1;
        }
        out.push(DocCommand {
            line: first + 1,
            expect: announced_exit(&text),
            text,
        });
    }
}

/// `# exit 10: …` or `# refused (exit 6, …)` in the trailing comment.
fn announced_exit(command: &str) -> i32 {
    let Some(pos) = command.rfind(" #") else {
        return 0;
    };
    let comment = &command[pos..];
    comment
        .match_indices("exit ")
        .filter_map(|(k, _)| {
            let digits: String = comment[k + 5..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse().ok()
        })
        .next()
        .unwrap_or(0)
}

/// The files whose commands are tested.
fn documented_files(root: &Path) -> Vec<PathBuf> {
    let mut files = vec![root.join("README.md"), root.join("examples/README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Runs the commands of one file in one scratch project.
struct Runner {
    scratch: TempDir,
    path: String,
    base_url: String,
    prelude: String,
}

impl Runner {
    fn new(root: &Path, base_url: &str) -> Self {
        let scratch = TempDir::new().unwrap();
        copy_dir(&root.join("examples"), &scratch.path().join("examples"));
        let bin = Path::new(env!("CARGO_BIN_EXE_rvbbit")).parent().unwrap();
        let system = std::env::var("PATH").unwrap_or_default();
        Runner {
            scratch,
            path: format!("{}:{system}", bin.display()),
            base_url: base_url.to_owned(),
            prelude: String::new(),
        }
    }

    fn bash(&self, script: &str) -> std::process::Output {
        Command::new("timeout")
            .args(["--kill-after=5", &TIMEOUT_SECS.to_string(), "bash", "-c", script])
            .env_clear()
            .env("PATH", &self.path)
            .env("HOME", self.scratch.path())
            .env("NO_COLOR", "1")
            .env("RVBBIT_PROVIDER_BASE_URL", &self.base_url)
            .current_dir(self.scratch.path())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// The newest session in the scratch store, for `<ID>`.
    fn newest_session(&self) -> String {
        let out = self.bash("rvbbit --output json sessions list --limit 1");
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        doc["sessions"][0]["session"]["session_id"]
            .as_str()
            .unwrap_or("no-session-yet")
            .to_owned()
    }

    /// Run one command; `Err` describes how it failed.
    fn run(&mut self, cmd: &DocCommand) -> Result<(), String> {
        let mut text = cmd.text.replace("cargo run -p rvbbit --", "rvbbit");
        if text.contains("<ID>") {
            text = text.replace("<ID>", &self.newest_session());
        }
        if text.trim_start().starts_with("export ") {
            self.prelude.push_str(&text);
            self.prelude.push('\n');
        }
        let out = self.bash(&format!("{}{text}", self.prelude));
        let code = out.status.code().unwrap_or(-1);
        if code == cmd.expect {
            return Ok(());
        }
        let tail = |bytes: &[u8]| {
            let s = String::from_utf8_lossy(bytes);
            let lines: Vec<&str> = s.lines().collect();
            lines[lines.len().saturating_sub(6)..].join("\n      ")
        };
        Err(format!(
            "`{text}` exited {code}, expected {}\n    stdout: {}\n    stderr: {}",
            cmd.expect,
            tail(&out.stdout),
            tail(&out.stderr)
        ))
    }
}

/// The commands that run the test suite itself are not run by it.
fn is_test_suite(cmd: &DocCommand) -> bool {
    cmd.text.trim_start().starts_with("scripts/test.sh")
}

/// Run every command of `files`; returns the number run and the failures as `file:line: …`.
fn run_files(root: &Path, files: &[PathBuf], base_url: &str) -> (usize, Vec<String>) {
    let mut ran = 0;
    let mut failures = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file).unwrap();
        let shown = file.strip_prefix(root).unwrap_or(file).display().to_string();
        let mut runner = Runner::new(root, base_url);
        for cmd in extract(&text).commands.iter().filter(|c| !is_test_suite(c)) {
            ran += 1;
            if let Err(why) = runner.run(cmd) {
                failures.push(format!("{shown}:{}: {why}", cmd.line));
            }
        }
    }
    (ran, failures)
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn echo_server(rt: &tokio::runtime::Runtime) -> TestServer {
    rt.block_on(TestServer::start(Script::echo()))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn every_documented_command_runs() {
    let root = root();
    let rt = runtime();
    let server = echo_server(&rt);
    let files = documented_files(&root);
    let (ran, failures) = run_files(&root, &files, &server.base_url());
    assert!(
        failures.is_empty(),
        "{} of {ran} documented commands failed (fix the docs or the code; mark a block that cannot run \
         here with <!-- no-test: reason -->, see CONTRIBUTING.md):\n{}",
        failures.len(),
        failures.join("\n")
    );
    // The runner found the commands: a broken extractor must not pass by running nothing.
    assert!(ran >= 30, "only {ran} documented commands were found");
    rt.block_on(server.shutdown());
}

#[test]
fn a_failing_command_is_reported_with_its_file_and_line() {
    let dir = TempDir::new().unwrap();
    std::fs::create_dir_all(dir.path().join("examples")).unwrap();
    let doc = dir.path().join("guide.md");
    std::fs::write(
        &doc,
        "# Guide\n\n```sh\nrvbbit --version\nrvbbit explain RVB-X999   # a code that does not exist\n\
         rvbbit run missing.yaml       # exit 1\n```\n\n<!-- no-test: needs a server -->\n```sh\nfalse\n```\n",
    )
    .unwrap();
    let rt = runtime();
    let server = echo_server(&rt);
    let (ran, failures) = run_files(dir.path(), &[doc], &server.base_url());
    assert_eq!(ran, 3);
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(
        failures[0].starts_with("guide.md:5: `rvbbit explain RVB-X999"),
        "{}",
        failures[0]
    );
    rt.block_on(server.shutdown());
}

#[test]
fn blocks_commands_and_announced_exit_codes_are_extracted() {
    let md = "intro\n\n```console\n$ rvbbit validate x.yaml   # exit 1\nerror[RVB-V001]: …\n```\n\n\
              <!-- no-test: keeps running -->\n\n```sh\nrvbbit serve\n```\n\n```text\nrvbbit not run\n```\n\n\
              ```bash\n# a comment line\nrvbbit run a.yaml \\\n  --input '{}'\nrvbbit serve --host 0.0.0.0  # refused (exit 6, RVB-C008)\n```\n";
    let found = extract(md);
    assert_eq!(
        found.commands,
        vec![
            DocCommand {
                line: 4,
                text: "rvbbit validate x.yaml   # exit 1".into(),
                expect: 1
            },
            DocCommand {
                line: 20,
                text: "rvbbit run a.yaml  --input '{}'".into(),
                expect: 0
            },
            DocCommand {
                line: 22,
                text: "rvbbit serve --host 0.0.0.0  # refused (exit 6, RVB-C008)".into(),
                expect: 6
            },
        ]
    );
    assert_eq!(found.skipped, vec![(10, "keeps running".to_owned())]);
}
