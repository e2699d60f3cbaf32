//! The sandbox of code and shell cells: every process a tool starts (`linux_shell`, `bash_data`,
//! `python_data`, `run_code`, `js_data`, `clojure_data`, declarative shell and Python tools, inline validators) runs under
//! bubblewrap with no network, read-only system directories, a private writable work directory, its
//! own PID namespace, an unprivileged uid and limits of memory, processes, CPUs, wall-clock time and
//! captured output (docs/sandbox.md).
//!
//! [`Sandbox`] holds the configured defaults and ceilings (`[sandbox]`, with a batch's `--sandbox-*`
//! flags applied); a cell's `sandbox:` block changes them for that cell, up to the ceilings.
//! `command.rs` turns a prepared command into the sandboxed one; `run.rs` runs it and names the limit
//! a failure reached.

mod command;
mod run;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use rvbbit_cascade::model::CellSandbox;
use rvbbit_core::ErrorCode;
use rvbbit_core::codes;
use rvbbit_core::config::SandboxConfig;

pub(crate) use run::run;

/// The limits of one sandbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Address-space limit of each process (RLIMIT_AS), MiB.
    pub memory_mib: u64,
    /// Most processes and threads of the sandbox's uid (RLIMIT_NPROC).
    pub processes: u64,
    /// CPUs the sandbox is pinned to.
    pub cpus: u32,
    /// Wall-clock seconds before the whole sandbox is killed.
    pub wall_seconds: u64,
    /// KB kept of stdout and of stderr.
    pub output_kb: u64,
}

/// Why a sandbox cannot be set up or a limit cannot be granted: a code (RVB-B010 or RVB-B011), what
/// happened and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxError {
    /// RVB-B010 (unavailable) or RVB-B011 (a limit above its ceiling).
    pub code: &'static ErrorCode,
    /// What happened, naming the limit, the value and the setting.
    pub message: String,
    /// How to fix it.
    pub hint: String,
}

impl std::fmt::Display for SandboxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.code, self.message)
    }
}

impl std::error::Error for SandboxError {}

/// The sandbox every process tool of an engine runs its processes in. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Sandbox {
    bwrap: PathBuf,
    defaults: Limits,
    ceilings: Limits,
    /// The CPUs this process may run on (the sandboxes are pinned to some of them, in turn).
    cpus: Vec<usize>,
    /// Counts sandboxes started: picks each one's CPUs.
    started: AtomicU32,
    /// rvbbit runs as root: drop to an unprivileged uid of its own inside each sandbox.
    root: bool,
}

/// The first uid given to sandboxes when rvbbit runs as root; each session's sandboxes get their own
/// (`UID_BASE` + a hash of the session's work directory, one of `UID_SPAN`), so the process cap counts
/// that session's processes only and sessions cannot touch each other's files.
pub(crate) const UID_BASE: u32 = 200_000;
/// How many uids sandboxes take turns with.
pub(crate) const UID_SPAN: u32 = 50_000;

impl Sandbox {
    /// The sandbox of `config`, with a batch's `overrides` (its `--sandbox-*` flags) applied to the
    /// defaults.
    ///
    /// # Errors
    /// RVB-B010 when `bwrap` (or `prlimit`, `setpriv`, `taskset`) is missing; RVB-B011 when a default or
    /// an override is above its ceiling or zero.
    pub fn new(config: &SandboxConfig, overrides: &CellSandbox) -> Result<Sandbox, SandboxError> {
        let bwrap = find_program(&config.bwrap).ok_or_else(|| unavailable_missing(&config.bwrap))?;
        for helper in ["prlimit", "setpriv", "taskset"] {
            if !Path::new("/usr/bin").join(helper).exists() {
                return Err(SandboxError {
                    code: codes::B_SANDBOX_UNAVAILABLE,
                    message: format!(
                        "the sandbox needs /usr/bin/{helper} (util-linux), and it is not installed"
                    ),
                    hint: "install util-linux (`apt-get install util-linux`), or turn the sandbox off (`sandbox.batch = false`, `sandbox.worker = false`, `sandbox.run = false`)".into(),
                });
            }
        }
        let ceilings = Limits {
            memory_mib: config.max_memory_mib,
            processes: config.max_processes,
            cpus: config.max_cpus,
            wall_seconds: config.max_wall_seconds,
            output_kb: config.max_output_kb,
        };
        let configured = Limits {
            memory_mib: config.memory_mib,
            processes: config.processes,
            cpus: config.cpus,
            wall_seconds: config.wall_seconds,
            output_kb: config.output_kb,
        };
        let from_config = CellSandbox {
            memory_mib: Some(configured.memory_mib),
            processes: Some(configured.processes),
            cpus: Some(configured.cpus),
            wall_seconds: Some(configured.wall_seconds),
            output_kb: Some(configured.output_kb),
        };
        let mut defaults = apply(configured, &from_config, &ceilings, &|name, v| {
            format!("the setting `sandbox.{name} = {v}`")
        })?;
        defaults = apply(defaults, overrides, &ceilings, &|name, v| {
            format!("`--sandbox-{} {v}`", name.replace('_', "-"))
        })?;
        Ok(Sandbox {
            bwrap,
            defaults,
            ceilings,
            cpus: allowed_cpus(),
            started: AtomicU32::new(0),
            root: rustix::process::geteuid().is_root(),
        })
    }

    /// The limits every cell gets unless its `sandbox:` block says otherwise.
    pub fn defaults(&self) -> Limits {
        self.defaults
    }

    /// The limits of `cell` (named in errors) with its `sandbox:` block.
    ///
    /// # Errors
    /// RVB-B011 when the block asks for more than a ceiling, or for zero.
    pub fn limits_for(&self, cell: &str, block: Option<&CellSandbox>) -> Result<Limits, SandboxError> {
        match block {
            None => Ok(self.defaults),
            Some(b) => apply(self.defaults, b, &self.ceilings, &|name, v| {
                format!("cell `{cell}` asks for `sandbox: {{{name}: {v}}}`")
            }),
        }
    }

    /// Run `true` in a sandbox, to learn before any input runs whether the kernel lets bubblewrap
    /// create its namespaces here.
    ///
    /// # Errors
    /// RVB-B010 with bubblewrap's own message when it cannot start.
    pub async fn check(&self) -> Result<(), SandboxError> {
        let dir = std::env::temp_dir().join(format!("rvbbit-sandbox-check-{}", std::process::id()));
        let inner = tokio::process::Command::new("true");
        let result = self.probe(inner, &dir).await;
        // Best effort: a leftover empty directory in the temp dir is harmless.
        let _ = std::fs::remove_dir_all(&dir);
        result
    }

    async fn probe(&self, inner: tokio::process::Command, dir: &Path) -> Result<(), SandboxError> {
        let mut prepared = self
            .wrap(&inner, dir, &[], &self.defaults)
            .map_err(|e| start_failed(&e))?;
        let out = prepared
            .command
            .output()
            .await
            .map_err(|e| start_failed(&e.to_string()))?;
        if out.status.success() {
            Ok(())
        } else {
            let stderr = String::from_utf8_lossy(&out.stderr);
            Err(start_failed(stderr.trim()))
        }
    }

    /// The next sandbox's number (its CPUs come from it).
    fn next(&self) -> u32 {
        self.started.fetch_add(1, Ordering::Relaxed)
    }
}

/// What a tool call knows of the sandbox: the engine's [`Sandbox`] and the calling cell's block.
#[derive(Clone, Debug)]
pub struct Scope {
    /// The engine's sandbox.
    pub sandbox: Arc<Sandbox>,
    /// The calling cell's name.
    pub cell: String,
    /// The calling cell's `sandbox:` block.
    pub block: Option<CellSandbox>,
}

/// `limits` with `asked` applied, each value checked against its ceiling (`what` says where it was
/// asked for, for the error).
fn apply(
    mut limits: Limits,
    asked: &CellSandbox,
    ceilings: &Limits,
    what: &dyn Fn(&str, u64) -> String,
) -> Result<Limits, SandboxError> {
    let check = |name: &str, value: Option<u64>, ceiling: u64| -> Result<Option<u64>, SandboxError> {
        let Some(v) = value else { return Ok(None) };
        if v == 0 {
            return Err(SandboxError {
                code: codes::B_SANDBOX_CEILING,
                message: format!("{}: the sandbox limit `{name}` must be at least 1", what(name, v)),
                hint: format!("ask for a value from 1 to {ceiling} (`sandbox.max_{name}`)"),
            });
        }
        if v > ceiling {
            return Err(SandboxError {
                code: codes::B_SANDBOX_CEILING,
                message: format!(
                    "{}: more than the ceiling of {ceiling} set by `sandbox.max_{name}`",
                    what(name, v)
                ),
                hint: format!(
                    "ask for at most {ceiling}, or raise `sandbox.max_{name}` in rvbbit.toml ([sandbox] max_{name} = {v})"
                ),
            });
        }
        Ok(Some(v))
    };
    if let Some(v) = check("memory_mib", asked.memory_mib, ceilings.memory_mib)? {
        limits.memory_mib = v;
    }
    if let Some(v) = check("processes", asked.processes, ceilings.processes)? {
        limits.processes = v;
    }
    if let Some(v) = check("cpus", asked.cpus.map(u64::from), u64::from(ceilings.cpus))? {
        limits.cpus = u32::try_from(v).unwrap_or(u32::MAX);
    }
    if let Some(v) = check("wall_seconds", asked.wall_seconds, ceilings.wall_seconds)? {
        limits.wall_seconds = v;
    }
    if let Some(v) = check("output_kb", asked.output_kb, ceilings.output_kb)? {
        limits.output_kb = v;
    }
    Ok(limits)
}

/// `name` as a path when it has a `/`, else looked up in `PATH`; `None` when it is not a file.
fn find_program(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        let p = PathBuf::from(name);
        return p.is_file().then_some(p);
    }
    // Without PATH, the places `execvp` searches by default.
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

fn unavailable_missing(bwrap: &str) -> SandboxError {
    SandboxError {
        code: codes::B_SANDBOX_UNAVAILABLE,
        message: format!(
            "the sandbox is required, and bubblewrap (`{bwrap}`, setting `sandbox.bwrap`) is not installed"
        ),
        hint: "install it (`apt-get install bubblewrap`), or turn the sandbox off on purpose: `sandbox.batch = false`, `sandbox.worker = false`, `sandbox.run = false`, or `rvbbit batch --no-sandbox`".into(),
    }
}

fn start_failed(why: &str) -> SandboxError {
    SandboxError {
        code: codes::B_SANDBOX_UNAVAILABLE,
        message: format!("the sandbox (bubblewrap) cannot start here: {why}"),
        hint: "allow new namespaces for this container (unprivileged user namespaces, or run rvbbit as root), or turn the sandbox off on purpose: `sandbox.batch = false`, `sandbox.worker = false`, `sandbox.run = false`, or `rvbbit batch --no-sandbox`".into(),
    }
}

/// The CPUs this process may run on, in order (`Cpus_allowed_list` of `/proc/self/status`; CPUs
/// `0..available_parallelism` when it cannot be read).
fn allowed_cpus() -> Vec<usize> {
    let listed = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("Cpus_allowed_list:"))?;
            parse_cpu_list(line.trim_start_matches("Cpus_allowed_list:").trim())
        })
        .unwrap_or_default();
    if listed.is_empty() {
        let n = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        (0..n).collect()
    } else {
        listed
    }
}

/// `0-3,6,8-9` as CPU numbers; `None` when it is not such a list (or absurdly long).
fn parse_cpu_list(list: &str) -> Option<Vec<usize>> {
    let mut cpus = Vec::new();
    for part in list.split(',').filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b): (usize, usize) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
        if b < a || b >= 65_536 {
            return None;
        }
        cpus.extend(a..=b);
    }
    Some(cpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_parse() {
        assert_eq!(parse_cpu_list("0-3,6,8-9"), Some(vec![0, 1, 2, 3, 6, 8, 9]));
        assert_eq!(parse_cpu_list("1"), Some(vec![1]));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("x"), None);
    }
}
