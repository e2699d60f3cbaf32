//! What a bundle holds: the cascade and everything a run of it reads through the cascade language.
//!
//! Starting from the cascade, for every cascade collected: the tool directories (`traits/`, `tackle/`,
//! `skills/`, `cascades/`) of its search bases (its directory and three parents, as
//! `rvbbit_cascade::search_bases`) and of the configured roots, its `@path` includes, and its
//! `sub_cascades`/`async_cascades`/`for_each_row` references, each resolved as the engine resolves it.
//! Every file is placed in the bundle where the run will look for it (its path as found, not where a
//! symlink points) and read from where it really is, which must lie inside the directory it was found
//! under (after symlinks): anything else is refused (RVB-S023). The limits are checked as files are
//! found, before any is read.
//!
//! Not followed: templated references (`{{ … }}`, resolved only at run time) and files named inside
//! shell commands or code; [`Collected::unfollowed`] lists the former.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use rvbbit_cascade::catalog::TOOL_DIRS;
use rvbbit_cascade::{load_file_with, search_bases};
use rvbbit_core::codes;
use rvbbit_store::artifacts::BundleLimits;

use crate::commands::{Coded, Failure};

/// The files of a bundle, before reading.
#[derive(Debug)]
pub(crate) struct Collected {
    /// The cascade to run, relative to `root` (`/`-separated).
    pub(crate) entry: String,
    /// Configured roots that gave files, relative to `root` (`.` for the root itself).
    pub(crate) roots: Vec<String>,
    /// Bundle path → the file to read.
    pub(crate) files: BTreeMap<String, PathBuf>,
    /// References that could not be followed (templated), as `FILE: REFERENCE`.
    pub(crate) unfollowed: Vec<String>,
}

struct Walk<'a> {
    limits: BundleLimits,
    config_roots: Vec<PathBuf>,
    limits_cfg: &'a rvbbit_core::config::LimitsConfig,
    /// Absolute position → the canonical file to read.
    files: BTreeMap<PathBuf, PathBuf>,
    bytes: u64,
    scanned: BTreeSet<PathBuf>,
    used_roots: BTreeSet<PathBuf>,
    queue: Vec<PathBuf>,
    unfollowed: Vec<String>,
}

/// Collect the bundle of `entry` under the configured roots and `limits`.
///
/// Errors: the entry unreadable (RVB-V002), a file outside its directory (RVB-S023), over a limit
/// (RVB-S022).
pub(crate) fn collect(
    entry: &Path,
    config: &rvbbit_core::Config,
    limits: BundleLimits,
) -> Result<Collected, Failure> {
    let position = absolute_position(entry)?;
    let config_roots = config
        .roots
        .iter()
        .filter_map(|r| std::fs::canonicalize(r).ok())
        .filter(|r| r.is_dir())
        .collect();
    let mut walk = Walk {
        limits,
        config_roots,
        limits_cfg: &config.limits,
        files: BTreeMap::new(),
        bytes: 0,
        scanned: BTreeSet::new(),
        used_roots: BTreeSet::new(),
        queue: Vec::new(),
        unfollowed: Vec::new(),
    };
    let real = std::fs::canonicalize(&position).map_err(|e| read_failure(entry, &e))?;
    if !real.is_file() {
        let e = std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file");
        return Err(read_failure(entry, &e));
    }
    walk.add(position.clone(), real)?;
    while let Some(file) = walk.queue.pop() {
        walk.visit(&file)?;
    }
    walk.finish(&position)
}

impl Walk<'_> {
    /// Add a file at `position` read from `real`; cascades are queued for their references.
    fn add(&mut self, position: PathBuf, real: PathBuf) -> Result<(), Failure> {
        if self.files.contains_key(&position) {
            return Ok(());
        }
        let size = std::fs::metadata(&real)
            .map_err(|e| read_failure(&real, &e))?
            .len();
        self.bytes += size;
        self.limits
            .check(self.files.len() as u64 + 1, self.bytes, "the bundle")
            .map_err(super::fail)?;
        let ext = position.extension().and_then(|e| e.to_str()).unwrap_or("");
        if matches!(ext, "yaml" | "yml" | "json") {
            self.queue.push(position.clone());
        }
        self.files.insert(position, real);
        Ok(())
    }

    /// The bases a run searches from `file`: its directory and three parents, then the roots.
    fn bases(&self, file: &Path) -> Vec<(PathBuf, bool)> {
        let mut bases: Vec<(PathBuf, bool)> = search_bases(file)
            .into_iter()
            .filter_map(|b| std::fs::canonicalize(b).ok())
            .map(|b| (b, false))
            .collect();
        bases.extend(self.config_roots.iter().map(|r| (r.clone(), true)));
        bases
    }

    fn visit(&mut self, file: &Path) -> Result<(), Failure> {
        for (base, is_root) in self.bases(file) {
            self.scan_tool_dirs(&base, is_root)?;
        }
        let Some(real) = self.files.get(file).cloned() else {
            return Ok(());
        };
        let loaded = load_file_with(&real, self.limits_cfg);
        let Some(document) = loaded.document else {
            return Ok(());
        };
        let Some(cascade) = document.cascade() else {
            return Ok(());
        };
        let mut refs: Vec<(String, bool)> = Vec::new();
        for include in &document.includes {
            if let Some(text) = document.node_at(&include.field).and_then(|n| n.as_str()) {
                refs.push((text.trim().trim_start_matches('@').to_owned(), false));
            }
        }
        for cell in &cascade.cells {
            for s in cell.sub_cascades.iter().flatten() {
                refs.push((s.reference.clone(), true));
            }
            for s in cell.async_cascades.iter().flatten() {
                refs.push((s.reference.clone(), true));
            }
            if let Some(c) = cell.for_each_row.as_ref().and_then(|f| f.cascade.clone()) {
                refs.push((c, true));
            }
        }
        for (reference, is_cascade) in refs {
            if reference.contains("{{") {
                self.unfollowed.push(format!("{}: `{reference}`", file.display()));
                continue;
            }
            self.follow(file, &reference, is_cascade)?;
        }
        Ok(())
    }

    /// Resolve `reference` from `file` as the engine does (`.json`/`.yaml`/`.yml` twins for cascades);
    /// a reference found nowhere is a cascade id, found in the tool directories already collected.
    fn follow(&mut self, file: &Path, reference: &str, is_cascade: bool) -> Result<(), Failure> {
        let rel = Path::new(reference);
        if rel.is_absolute() {
            return Err(refused(format!(
                "{} refers to `{reference}`, an absolute path; a bundle holds only files inside the project",
                file.display()
            )));
        }
        let mut candidates = vec![rel.to_path_buf()];
        let ext = rel.extension().and_then(|e| e.to_str()).unwrap_or("");
        if is_cascade && matches!(ext, "json" | "yaml" | "yml") {
            candidates.extend(
                ["yaml", "yml", "json"]
                    .iter()
                    .filter(|e| **e != ext)
                    .map(|e| rel.with_extension(e)),
            );
        }
        let bases = self.bases(file);
        for candidate in candidates {
            for (base, is_root) in &bases {
                let position = normalize(&base.join(&candidate));
                let Ok(real) = std::fs::canonicalize(&position) else {
                    continue;
                };
                if !real.starts_with(base) || !position.starts_with(base) {
                    return Err(refused(format!(
                        "{} refers to `{reference}`, which resolves to {} outside {}",
                        file.display(),
                        real.display(),
                        base.display()
                    )));
                }
                if real.is_file() {
                    if *is_root {
                        self.used_roots.insert(base.clone());
                    }
                    return self.add(position, real);
                }
            }
        }
        Ok(())
    }

    /// Add every `.yaml`/`.yml`/`.json` file of the tool directories under `base` (once per directory).
    fn scan_tool_dirs(&mut self, base: &Path, is_root: bool) -> Result<(), Failure> {
        for dir in TOOL_DIRS {
            let dir = base.join(dir);
            let Ok(real_dir) = std::fs::canonicalize(&dir) else {
                continue;
            };
            if !real_dir.is_dir() || !self.scanned.insert(dir.clone()) {
                continue;
            }
            if !real_dir.starts_with(base) {
                return Err(refused(format!(
                    "{} is a link to {}, outside {}",
                    dir.display(),
                    real_dir.display(),
                    base.display()
                )));
            }
            let entries = std::fs::read_dir(&real_dir).map_err(|e| read_failure(&real_dir, &e))?;
            let mut names = Vec::new();
            for entry in entries.flatten() {
                names.push(entry.file_name());
                if names.len() as u64 > self.limits.max_files {
                    break;
                }
            }
            names.sort();
            for name in names {
                let position = dir.join(&name);
                let ext = position.extension().and_then(|e| e.to_str()).unwrap_or("");
                if !matches!(ext, "yaml" | "yml" | "json") {
                    continue;
                }
                let Ok(real) = std::fs::canonicalize(&position) else {
                    continue;
                };
                if !real.starts_with(base) {
                    return Err(refused(format!(
                        "{} is a link to {}, outside {}",
                        position.display(),
                        real.display(),
                        base.display()
                    )));
                }
                if !real.is_file() {
                    continue;
                }
                if is_root {
                    self.used_roots.insert(base.to_path_buf());
                }
                self.add(position, real)?;
            }
        }
        Ok(())
    }

    fn finish(self, entry: &Path) -> Result<Collected, Failure> {
        let mut root: Option<PathBuf> = None;
        for position in self.files.keys().chain(self.used_roots.iter()) {
            let dir = if self.used_roots.contains(position) {
                position.clone()
            } else {
                position.parent().map(Path::to_path_buf).unwrap_or_default()
            };
            root = Some(match root {
                None => dir,
                Some(r) => common_ancestor(&r, &dir),
            });
        }
        let root = root.unwrap_or_default();
        let rel = |p: &Path| -> String {
            let r = p.strip_prefix(&root).unwrap_or(p);
            let parts: Vec<String> = r
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if parts.is_empty() {
                ".".to_owned()
            } else {
                parts.join("/")
            }
        };
        let files = self
            .files
            .iter()
            .map(|(p, real)| (rel(p), real.clone()))
            .collect();
        Ok(Collected {
            entry: rel(entry),
            roots: self.used_roots.iter().map(|r| rel(r)).collect(),
            files,
            unfollowed: self.unfollowed,
        })
    }
}

/// `entry` as an absolute path whose directory is canonical (the file itself may be a link).
fn absolute_position(entry: &Path) -> Result<PathBuf, Failure> {
    let dir = match entry.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let dir = std::fs::canonicalize(&dir).map_err(|e| read_failure(entry, &e))?;
    let name = entry.file_name().ok_or_else(|| {
        read_failure(
            entry,
            &std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file"),
        )
    })?;
    Ok(dir.join(name))
}

/// `path` with `.` and `..` removed lexically.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

fn common_ancestor(a: &Path, b: &Path) -> PathBuf {
    a.components()
        .zip(b.components())
        .take_while(|(x, y)| x == y)
        .map(|(x, _)| x.as_os_str())
        .collect()
}

fn read_failure(path: &Path, e: &std::io::Error) -> Failure {
    Failure::Coded(Coded {
        code: codes::V_READ,
        message: format!("`{}` cannot be read: {e}", path.display()),
        hint: "check the path; relative paths are resolved against the current directory".into(),
        causes: Vec::new(),
    })
}

fn refused(message: String) -> Failure {
    Failure::Coded(Coded {
        code: codes::S_BUNDLE_REFUSED,
        message,
        hint: "copy the file into the project instead of linking it, or use a path that stays inside the cascade's directory"
            .into(),
        causes: Vec::new(),
    })
}
