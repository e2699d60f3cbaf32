//! Turning a prepared command into the same command inside bubblewrap.
//!
//! The sandboxed command line is
//! `bwrap <namespaces> <mounts> -- prlimit <limits> -- [setpriv <uid>] -- [taskset -c <cpus>] PROGRAM ARGS`:
//! bubblewrap makes the namespaces (network, PID, IPC, UTS, cgroup; a user namespace when rvbbit is not
//! root) and the file system (system directories and the given paths read-only, the work directory the
//! only writable place besides a private `/tmp`); `prlimit` sets the limits inside, so the process cap
//! counts only this sandbox's processes; as root, `setpriv` drops to an unprivileged uid of the
//! session's own; `taskset` pins it to its CPUs.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use tokio::process::Command;

use super::{Limits, Sandbox, UID_BASE, UID_SPAN};

/// Most entries of a work directory handed to a sandbox's uid (as root) before giving up.
const CHOWN_MAX_ENTRIES: usize = 100_000;

/// A sandboxed command, ready to spawn.
pub(crate) struct Prepared {
    /// `bwrap …` with the original program inside.
    pub(crate) command: Command,
}

impl Sandbox {
    /// `inner` (its program, arguments, explicit environment and working directory) inside a sandbox
    /// with `limits`: `work_dir` is created and bound read-write, `read_only` paths that exist are bound
    /// read-only at the same place. The working directory is `inner`'s, else `work_dir`. The environment
    /// is only `inner`'s explicit variables plus `PATH`, `HOME` (the work directory), `TMPDIR` and
    /// `LANG`: nothing of rvbbit's own environment (API keys) reaches the sandbox.
    pub(crate) fn wrap(
        &self,
        inner: &Command,
        work_dir: &Path,
        read_only: &[PathBuf],
        limits: &Limits,
    ) -> Result<Prepared, String> {
        std::fs::create_dir_all(work_dir)
            .map_err(|e| format!("cannot create the work directory {}: {e}", work_dir.display()))?;
        let n = self.next();
        let std = inner.as_std();
        // bubblewrap mounts at absolute places: the work directory, the read-only paths and the
        // working directory are made absolute first.
        let work_dir = &absolute(work_dir);
        // One uid per work directory (per session): the sandboxes of one session (a bash_data session
        // over several cells, concurrent candidates) share its files; other sessions' uids differ.
        let uid = self.root.then(|| uid_of(work_dir));
        if let Some(uid) = uid {
            give_to(work_dir, uid)?;
        }
        let cwd = std.get_current_dir().map_or_else(|| work_dir.clone(), absolute);
        let read_only: Vec<PathBuf> = read_only
            .iter()
            .filter_map(|p| std::fs::canonicalize(p).ok())
            .collect();
        let mut args: Vec<OsString> = Vec::new();
        let mut push = |items: &[&str]| args.extend(items.iter().map(OsString::from));
        push(&[
            "--die-with-parent",
            "--new-session",
            "--unshare-ipc",
            "--unshare-pid",
            "--unshare-net",
            "--unshare-uts",
            "--unshare-cgroup-try",
            "--cap-drop",
            "ALL",
        ]);
        if self.root {
            // Only to let setpriv drop to the sandbox's uid; setuid to a non-root uid clears them.
            push(&[
                "--cap-add",
                "CAP_SETUID",
                "--cap-add",
                "CAP_SETGID",
                "--cap-add",
                "CAP_SETPCAP",
            ]);
        } else {
            push(&["--unshare-user"]);
        }
        system_mounts(&mut args);
        parent_dirs(&mut args, read_only.iter().chain([work_dir]));
        for path in &read_only {
            args.extend(["--ro-bind".into(), path.into(), path.into()]);
        }
        args.extend(["--bind".into(), work_dir.into(), work_dir.into()]);
        args.extend(["--chdir".into(), cwd.into()]);
        args.push("--".into());
        args.extend(self.limit_prefix(limits, uid, n));
        args.push(std.get_program().to_owned());
        args.extend(std.get_args().map(ToOwned::to_owned));
        let mut command = Command::new(&self.bwrap);
        command.args(args).env_clear();
        command
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", work_dir)
            .env("TMPDIR", "/tmp")
            .env("LANG", "C.UTF-8");
        for (key, value) in std.get_envs() {
            if let Some(v) = value {
                command.env(key, v);
            }
        }
        Ok(Prepared { command })
    }

    /// `prlimit …`, `setpriv …` (as root) and `taskset …` (when fewer CPUs than this process has).
    fn limit_prefix(&self, limits: &Limits, uid: Option<u32>, n: u32) -> Vec<OsString> {
        let mut out: Vec<String> = vec![
            "/usr/bin/prlimit".into(),
            format!("--as={}", limits.memory_mib.saturating_mul(1024 * 1024)),
            format!("--nproc={}", limits.processes),
            "--core=0".into(),
            "--".into(),
        ];
        if let Some(uid) = uid {
            out.extend([
                "/usr/bin/setpriv".into(),
                format!("--reuid={uid}"),
                format!("--regid={uid}"),
                "--clear-groups".into(),
                "--inh-caps=-all".into(),
                "--bounding-set=-all".into(),
                "--".into(),
            ]);
        }
        let want = usize::try_from(limits.cpus).unwrap_or(usize::MAX);
        if !self.cpus.is_empty() && want < self.cpus.len() {
            let start = usize::try_from(n).unwrap_or(0) % self.cpus.len();
            let list: Vec<String> = (0..want)
                .map(|i| self.cpus[(start + i) % self.cpus.len()].to_string())
                .collect();
            out.extend(["/usr/bin/taskset".into(), "-c".into(), list.join(",")]);
        }
        out.into_iter().map(OsString::from).collect()
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::fs::canonicalize(path)
        .unwrap_or_else(|_| std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()))
}

/// `/usr` and `/etc` read-only; `/bin`, `/sbin`, `/lib*` as the symbolic links or directories they are
/// here; a fresh `/proc`, a minimal `/dev` and a private `/tmp`.
fn system_mounts(args: &mut Vec<OsString>) {
    for dir in ["/usr", "/etc"] {
        args.extend(["--ro-bind".into(), dir.into(), dir.into()]);
    }
    for dir in ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"] {
        match std::fs::read_link(dir) {
            Ok(target) => args.extend(["--symlink".into(), target.into(), dir.into()]),
            Err(_) if Path::new(dir).is_dir() => {
                args.extend(["--ro-bind".into(), dir.into(), dir.into()]);
            }
            Err(_) => {}
        }
    }
    for item in [
        "--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", "/tmp",
    ] {
        args.push(item.into());
    }
}

/// The directories above the paths to be bound, created 0755 first: bubblewrap would create them
/// 0700 and root's, which the sandbox's uid could not pass through by absolute path. Those inside
/// the system mounts (and `/tmp` itself) exist already.
fn parent_dirs<'a>(args: &mut Vec<OsString>, paths: impl Iterator<Item = &'a PathBuf>) {
    let mounted = ["/usr", "/etc", "/proc", "/dev"];
    let mut made: Vec<PathBuf> = Vec::new();
    for path in paths {
        let mut above: Vec<&Path> = path.ancestors().skip(1).collect();
        above.reverse();
        for dir in above {
            let exists = dir.parent().is_none()
                || dir == Path::new("/tmp")
                || mounted.iter().any(|m| dir.starts_with(m));
            if exists || made.iter().any(|m| m == dir) {
                continue;
            }
            made.push(dir.to_path_buf());
            args.extend(["--perms".into(), "0755".into(), "--dir".into(), dir.into()]);
        }
    }
}

/// The sandbox uid of `work_dir`: `UID_BASE` plus a hash of its path, one of `UID_SPAN`.
fn uid_of(work_dir: &Path) -> u32 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    work_dir.hash(&mut h);
    UID_BASE + u32::try_from(h.finish() % u64::from(UID_SPAN)).unwrap_or(0)
}

/// Hand `dir` and what is in it (not following links) to `uid`, so the sandbox's unprivileged uid can
/// write there.
fn give_to(dir: &Path, uid: u32) -> Result<(), String> {
    let mut stack = vec![dir.to_path_buf()];
    let mut seen = 0usize;
    while let Some(path) = stack.pop() {
        seen += 1;
        if seen > CHOWN_MAX_ENTRIES {
            return Err(format!(
                "the work directory {} has more than {CHOWN_MAX_ENTRIES} entries",
                dir.display()
            ));
        }
        std::os::unix::fs::lchown(&path, Some(uid), Some(uid))
            .map_err(|e| format!("cannot hand {} to the sandbox's uid {uid}: {e}", path.display()))?;
        let is_dir = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir());
        if is_dir && let Ok(entries) = std::fs::read_dir(&path) {
            stack.extend(entries.filter_map(|e| e.ok().map(|e| e.path())));
        }
    }
    Ok(())
}
