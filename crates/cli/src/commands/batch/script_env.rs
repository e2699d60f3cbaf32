//! What `rvbbit exec` prepares before a script runs: its interpreter, a content-addressed copy of the
//! script, the virtual environment of a Python script's `requirements.txt` (cached by the normalised
//! requirements' hash), and the files and folders its arguments name (mounted read-only, rewritten to
//! absolute paths, their contents hashed into the result cache's key). See docs/exec.md.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use rvbbit_core::codes;
use rvbbit_core::config::ExecConfig;
use sha2::{Digest, Sha256};

use super::usage;
use crate::commands::Failure;

/// Largest script, and largest `requirements.txt`, in bytes.
const MAX_SCRIPT_BYTES: u64 = 10 * 1024 * 1024;
const MAX_REQUIREMENTS_BYTES: u64 = 1024 * 1024;
/// Most entries hashed in the folders arguments name.
const MAX_ENTRIES: usize = 100_000;
/// Where a sandboxed script finds programs.
const SANDBOX_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// How much of pip's output a failure quotes.
const LOG_TAIL: usize = 1_500;

/// The interpreters `rvbbit exec` knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Runtime {
    /// `python3` (a venv's python when a `requirements.txt` is beside the script).
    Python,
    /// `bash`.
    Bash,
    /// `sh`.
    Sh,
    /// `node`.
    Node,
}

impl Runtime {
    /// The runtime of a script file from its extension.
    pub(super) fn of(script: &Path) -> Option<Runtime> {
        let ext = script.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "py" => Some(Runtime::Python),
            "sh" | "bash" => Some(Runtime::Bash),
            "js" | "mjs" | "cjs" => Some(Runtime::Node),
            _ => None,
        }
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            Runtime::Python => "python",
            Runtime::Bash => "bash",
            Runtime::Sh => "sh",
            Runtime::Node => "node",
        }
    }

    fn program(self) -> &'static str {
        match self {
            Runtime::Python => "python3",
            Runtime::Bash => "bash",
            Runtime::Sh => "sh",
            Runtime::Node => "node",
        }
    }

    /// The interpreter's absolute path: looked up in the sandbox's `PATH` (`/usr/local/bin`,
    /// `/usr/bin`, `/bin`: the system's, which the sandbox mounts) when `sandboxed`, else in `PATH`.
    pub(super) fn interpreter(self, sandboxed: bool) -> Result<PathBuf, Failure> {
        let program = self.program();
        let path = match std::env::var_os("PATH") {
            Some(p) if !sandboxed => p,
            _ => SANDBOX_PATH.into(),
        };
        std::env::split_paths(&path)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                let place = if sandboxed {
                    " in /usr/local/bin, /usr/bin or /bin (the sandbox sees only the system's programs)"
                } else {
                    ""
                };
                setup(
                    format!(
                        "the {} runtime needs `{program}`, and it is not installed{place}",
                        self.name()
                    ),
                    &format!(
                        "install it (for example `apt-get install {}`)",
                        match self {
                            Runtime::Node => "nodejs",
                            Runtime::Python => "python3",
                            _ => program,
                        }
                    ),
                )
            })
    }
}

fn setup(message: String, hint: &str) -> Failure {
    usage(codes::B_EXEC_SETUP, message, hint)
}

/// `dir` made absolute against the working directory, and created.
pub(super) fn exec_dir(config: &ExecConfig) -> Result<PathBuf, Failure> {
    let dir = std::path::absolute(&config.dir).unwrap_or_else(|_| config.dir.clone());
    std::fs::create_dir_all(&dir).map_err(|e| {
        usage(
            codes::S_FILE,
            format!("the exec folder {} cannot be created: {e}", dir.display()),
            "set `exec.dir` in rvbbit.toml to a folder you can write to",
        )
    })?;
    Ok(std::fs::canonicalize(&dir).unwrap_or(dir))
}

/// The script: read (at most [`MAX_SCRIPT_BYTES`]), hashed, and copied to `DIR/scripts/<sha256>/<name>`
/// unless that copy exists. Returns the copy's path and the hash.
pub(super) fn copy_script(script: &Path, dir: &Path) -> Result<(PathBuf, String), Failure> {
    let bad = |why: String| {
        usage(
            codes::C_USAGE,
            format!("the script {}: {why}", script.display()),
            "name a script file you can read, such as `rvbbit exec clean.py data.csv`",
        )
    };
    let meta = std::fs::metadata(script).map_err(|e| bad(format!("cannot be read: {e}")))?;
    if !meta.is_file() {
        return Err(bad("is not a file".into()));
    }
    if meta.len() > MAX_SCRIPT_BYTES {
        return Err(bad(format!("is larger than {MAX_SCRIPT_BYTES} bytes")));
    }
    let bytes = std::fs::read(script).map_err(|e| bad(format!("cannot be read: {e}")))?;
    let sha = hex::encode(Sha256::digest(&bytes));
    let name = script.file_name().map_or_else(
        || "script".into(),
        |n| super::inputs::safe_name(&n.to_string_lossy()),
    );
    let folder = dir.join("scripts").join(&sha);
    let copy = folder.join(name);
    if !copy.is_file() {
        let tmp = folder.join(format!(".tmp-{}", std::process::id()));
        std::fs::create_dir_all(&folder)
            .and_then(|()| std::fs::write(&tmp, &bytes))
            .and_then(|()| std::fs::rename(&tmp, &copy))
            .map_err(|e| {
                usage(
                    codes::S_FILE,
                    format!("the script cannot be copied to {}: {e}", copy.display()),
                    "set `exec.dir` in rvbbit.toml to a folder you can write to",
                )
            })?;
    }
    Ok((copy, sha))
}

/// A Python script's `requirements.txt` normalised: comments and blank lines dropped, each line
/// trimmed, sorted and deduplicated. `None` when there is none.
fn normalised_requirements(script_dir: &Path) -> Result<Option<(PathBuf, String)>, Failure> {
    let file = script_dir.join("requirements.txt");
    if !file.is_file() {
        return Ok(None);
    }
    let mut text = String::new();
    std::fs::File::open(&file)
        .and_then(|f| f.take(MAX_REQUIREMENTS_BYTES + 1).read_to_string(&mut text))
        .map_err(|e| {
            setup(
                format!("{} cannot be read: {e}", file.display()),
                "make it readable UTF-8 text",
            )
        })?;
    if text.len() as u64 > MAX_REQUIREMENTS_BYTES {
        return Err(setup(
            format!("{} is larger than {MAX_REQUIREMENTS_BYTES} bytes", file.display()),
            "list only the packages the script imports",
        ));
    }
    let mut lines: Vec<&str> = text
        .lines()
        .map(|l| l.split(" #").next().unwrap_or("").trim())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    lines.sort_unstable();
    lines.dedup();
    Ok(Some((file, lines.join("\n"))))
}

/// The environment of a Python script: `None` without a `requirements.txt`; else the venv made for
/// its normalised hash (`DIR/venvs/<hash>`), made now when it does not exist, and that hash.
pub(super) fn python_env(
    python: &Path,
    config: &ExecConfig,
    dir: &Path,
    script_dir: &Path,
) -> Result<Option<(PathBuf, String)>, Failure> {
    let Some((file, normalised)) = normalised_requirements(script_dir)? else {
        return Ok(None);
    };
    let hash = hex::encode(Sha256::digest(normalised.as_bytes()));
    let venv = dir.join("venvs").join(&hash[..24]);
    if venv.join(".rvbbit-ready").is_file() {
        return Ok(Some((venv, hash)));
    }
    let tmp = dir
        .join("venvs")
        .join(format!("{}.tmp-{}", &hash[..24], std::process::id()));
    // A leftover of an earlier attempt of this same process id: start clean.
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| {
        setup(
            format!("cannot create {}: {e}", tmp.display()),
            "check `exec.dir`",
        )
    })?;
    let deadline = Instant::now() + Duration::from_secs(config.install_timeout_seconds.max(1));
    let made = make_venv(python, &tmp, &file, script_dir, deadline);
    if let Err(e) = made {
        // Best effort: a half-made environment is never used (it has no ready mark).
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    std::fs::write(tmp.join(".rvbbit-ready"), normalised).map_err(|e| {
        setup(
            format!("cannot write in {}: {e}", tmp.display()),
            "check `exec.dir`",
        )
    })?;
    if std::fs::rename(&tmp, &venv).is_err() {
        // Another process made the same environment first: use it.
        let _ = std::fs::remove_dir_all(&tmp);
        if !venv.join(".rvbbit-ready").is_file() {
            return Err(setup(
                format!("the environment {} cannot be put in place", venv.display()),
                "remove it and run the command again",
            ));
        }
    }
    Ok(Some((venv, hash)))
}

/// `python3 -m venv TMP`, then `TMP/bin/python -m pip install -r FILE` from the script's folder (so
/// relative paths in it work), both before `deadline`; their output goes to `TMP/install.log`.
fn make_venv(
    python: &Path,
    tmp: &Path,
    file: &Path,
    script_dir: &Path,
    deadline: Instant,
) -> Result<(), Failure> {
    let python = python.to_path_buf();
    let log = tmp.join("install.log");
    let steps: [(PathBuf, Vec<String>); 2] = [
        (
            python,
            vec!["-m".into(), "venv".into(), tmp.display().to_string()],
        ),
        (
            tmp.join("bin/python"),
            vec![
                "-m".into(),
                "pip".into(),
                "install".into(),
                "--disable-pip-version-check".into(),
                "--no-input".into(),
                "-r".into(),
                file.display().to_string(),
            ],
        ),
    ];
    for (program, args) in steps {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| setup(format!("cannot write {}: {e}", log.display()), "check `exec.dir`"))?;
        let err = out
            .try_clone()
            .map_err(|e| setup(format!("cannot write {}: {e}", log.display()), "check `exec.dir`"))?;
        let what = format!("{} {}", program.display(), args.join(" "));
        let mut child = std::process::Command::new(&program)
            .args(&args)
            .current_dir(script_dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| setup(format!("cannot start `{what}`: {e}"), "install python3-venv"))?;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
                _ => {
                    // Already gone or past the deadline: stop it either way.
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(setup(
                        format!("`{what}` did not finish within exec.install_timeout_seconds"),
                        "raise `exec.install_timeout_seconds`, or check the network and the package index",
                    ));
                }
            }
        };
        if !status.success() {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(setup(
                format!(
                    "installing {} failed ({status}); the end of its output: {}",
                    file.display(),
                    tail(&text)
                ),
                "fix requirements.txt (or run the same pip command yourself to see the whole error)",
            ));
        }
    }
    Ok(())
}

fn tail(text: &str) -> String {
    let text = text.trim_end();
    let mut start = text.len().saturating_sub(LOG_TAIL);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].replace('\n', " | ")
}

/// The script's arguments with those naming an existing file or folder replaced by its absolute path
/// (after links), the paths to mount read-only, and a hash of their contents.
pub(super) struct Arguments {
    pub(super) argv: Vec<String>,
    pub(super) mounts: Vec<String>,
    pub(super) digest: String,
}

/// Rewrite `args` (`{}` is left as it is: the input file of `--batch`).
pub(super) fn arguments(args: &[String], config: &ExecConfig) -> Result<Arguments, Failure> {
    let mut hasher = Sha256::new();
    let mut budget = Budget {
        bytes: config.max_argument_bytes,
        entries: MAX_ENTRIES,
    };
    let mut out = Arguments {
        argv: Vec::with_capacity(args.len()),
        mounts: Vec::new(),
        digest: String::new(),
    };
    for arg in args {
        if arg != "{}" && !arg.is_empty() && std::fs::symlink_metadata(arg).is_ok() {
            let real = std::fs::canonicalize(arg).map_err(|e| {
                usage(
                    codes::C_USAGE,
                    format!("the argument `{arg}` names a file that cannot be resolved: {e}"),
                    "pass a file or folder that exists (a link must point to one)",
                )
            })?;
            hasher.update(real.as_os_str().as_encoded_bytes());
            hash_path(&real, &mut hasher, &mut budget)?;
            let shown = real.display().to_string();
            out.argv.push(shown.clone());
            if !out.mounts.contains(&shown) {
                out.mounts.push(shown);
            }
        } else {
            out.argv.push(arg.clone());
        }
    }
    out.digest = hex::encode(hasher.finalize());
    Ok(out)
}

struct Budget {
    bytes: u64,
    entries: usize,
}

/// Hash a file's content, or a folder's entries (names, link targets, file contents) in order.
fn hash_path(path: &Path, h: &mut Sha256, budget: &mut Budget) -> Result<(), Failure> {
    let too_big = || {
        setup(
            format!(
                "the files and folders the arguments name hold more than exec.max_argument_bytes or {MAX_ENTRIES} entries (at {})",
                path.display()
            ),
            "name smaller inputs, or raise `exec.max_argument_bytes` in rvbbit.toml ([exec])",
        )
    };
    let unreadable = |e: std::io::Error| {
        usage(
            codes::C_USAGE,
            format!("the argument {} cannot be read: {e}", path.display()),
            "make it readable, or pass another file",
        )
    };
    budget.entries = budget.entries.checked_sub(1).ok_or_else(too_big)?;
    let meta = std::fs::symlink_metadata(path).map_err(unreadable)?;
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(path).map_err(unreadable)?;
        h.update(b"link\0");
        h.update(target.as_os_str().as_encoded_bytes());
    } else if meta.is_dir() {
        let mut names: Vec<_> = std::fs::read_dir(path)
            .map_err(unreadable)?
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .collect();
        names.sort();
        for name in names {
            h.update(b"entry\0");
            h.update(name.as_encoded_bytes());
            hash_path(&path.join(name), h, budget)?;
        }
    } else if meta.is_file() {
        budget.bytes = budget.bytes.checked_sub(meta.len()).ok_or_else(too_big)?;
        let mut file = std::fs::File::open(path).map_err(unreadable)?;
        std::io::copy(&mut file, h).map_err(unreadable)?;
    }
    Ok(())
}

/// A file's SHA-256 and size, read in full (at most `limit` bytes).
pub(super) fn file_digest(path: &Path, limit: u64) -> Result<(String, u64), String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot be read: {e}"))?;
    if meta.len() > limit {
        return Err(format!(
            "is {} bytes, more than {limit} (exec.max_argument_bytes)",
            meta.len()
        ));
    }
    let mut h = Sha256::new();
    let mut file = std::fs::File::open(path).map_err(|e| format!("cannot be read: {e}"))?;
    let n = std::io::copy(&mut file, &mut h).map_err(|e| format!("cannot be read: {e}"))?;
    Ok((hex::encode(h.finalize()), n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requirements_are_normalised_before_hashing() {
        let dir = std::env::temp_dir().join(format!("rvbbit-req-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("requirements.txt"),
            "# deps\nrequests==2.0  # http\n\nnumpy\nrequests==2.0\n",
        )
        .unwrap();
        let (_, a) = normalised_requirements(&dir).unwrap().unwrap();
        assert_eq!(a, "numpy\nrequests==2.0");
        std::fs::write(dir.join("requirements.txt"), "numpy\n requests==2.0\n").unwrap();
        let (_, b) = normalised_requirements(&dir).unwrap().unwrap();
        assert_eq!(a, b);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn runtimes_come_from_extensions() {
        assert_eq!(Runtime::of(Path::new("a.py")), Some(Runtime::Python));
        assert_eq!(Runtime::of(Path::new("a.SH")), Some(Runtime::Bash));
        assert_eq!(Runtime::of(Path::new("a.mjs")), Some(Runtime::Node));
        assert_eq!(Runtime::of(Path::new("a.rb")), None);
    }
}
