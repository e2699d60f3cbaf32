//! Finding the user's operator files: every `*.yaml`/`*.yml` under the working directory's
//! `cascades/` folder (recursively), bounded by [`Limits::operator_files`] and
//! [`Limits::operator_bytes`], and contained: every path is canonicalized and one that leads outside
//! the folder (a symbolic link) is refused.

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::limits::Limits;

/// Deepest folder nesting read under `cascades/`.
const MAX_DEPTH: usize = 8;

/// One file found: where it is shown (relative to the working directory, as walked) and its text.
#[derive(Debug)]
pub(crate) struct Found {
    /// The path relative to the working directory (`cascades/semantic_sql/x.yaml`).
    pub(crate) shown: String,
    /// The canonical path.
    pub(crate) path: PathBuf,
    /// The text.
    pub(crate) text: String,
}

/// What one walk found, and the warnings for what it refused or left out.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    pub(crate) files: Vec<Found>,
    pub(crate) warnings: Vec<String>,
}

/// Walk `base_dir/cascades` (nothing when it does not exist), in name order.
pub(crate) fn scan(base_dir: &Path, limits: &Limits) -> Scan {
    let mut scan = Scan::default();
    let dir = base_dir.join("cascades");
    let Ok(root) = dir.canonicalize() else {
        return scan;
    };
    if !root.is_dir() {
        return scan;
    }
    let mut walk = Walk {
        root,
        limits,
        files: 0,
        bytes: 0,
        visited: HashSet::new(),
        stopped: false,
    };
    walk.dir(&dir, "cascades", 0, &mut scan);
    scan
}

struct Walk<'a> {
    root: PathBuf,
    limits: &'a Limits,
    files: u32,
    bytes: u64,
    visited: HashSet<PathBuf>,
    stopped: bool,
}

impl Walk<'_> {
    fn dir(&mut self, dir: &Path, shown: &str, depth: usize, scan: &mut Scan) {
        let Ok(real) = dir.canonicalize() else { return };
        if !self.visited.insert(real) {
            return;
        }
        let Ok(entries) = std::fs::read_dir(dir) else {
            scan.warnings.push(format!(
                "semantic SQL: the folder {shown} cannot be read; its operator files are not loaded"
            ));
            return;
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        names.sort();
        for name in names {
            if self.stopped {
                return;
            }
            let path = dir.join(&name);
            let shown = format!("{shown}/{name}");
            let Ok(real) = path.canonicalize() else {
                continue;
            };
            if !real.starts_with(&self.root) {
                scan.warnings.push(format!(
                    "semantic SQL [RVB-Q005]: {shown} is refused: it leads outside the cascades/ folder (a \
                     symbolic link); copy the file into the folder instead"
                ));
                continue;
            }
            if real.is_dir() {
                if depth + 1 < MAX_DEPTH {
                    self.dir(&path, &shown, depth + 1, scan);
                }
                continue;
            }
            let is_yaml = Path::new(&name)
                .extension()
                .is_some_and(|e| e == "yaml" || e == "yml");
            if is_yaml && real.is_file() {
                self.file(real, shown, scan);
            }
        }
    }

    fn file(&mut self, real: PathBuf, shown: String, scan: &mut Scan) {
        let limits = self.limits;
        if self.files >= limits.operator_files {
            self.stop(
                scan,
                format!(
                    "more than {} files under cascades/ (limits.sql_operator_files); {shown} and the files \
                     after it are not loaded",
                    limits.operator_files
                ),
            );
            return;
        }
        // Read at most what the byte budget has left (plus one byte, to see that it is over).
        let remaining = limits.operator_bytes.saturating_sub(self.bytes);
        let mut text = String::new();
        let read = std::fs::File::open(&real)
            .and_then(|f| f.take(remaining.saturating_add(1)).read_to_string(&mut text));
        if let Err(e) = read {
            scan.warnings.push(format!(
                "semantic SQL: {shown} is skipped: it cannot be read as UTF-8 text ({})",
                e.kind()
            ));
            return;
        }
        if text.len() as u64 > remaining {
            self.stop(
                scan,
                format!(
                    "the files under cascades/ pass {} bytes (limits.sql_operator_bytes); {shown} and the \
                     files after it are not loaded",
                    limits.operator_bytes
                ),
            );
            return;
        }
        self.files += 1;
        self.bytes += text.len() as u64;
        scan.files.push(Found {
            shown,
            path: real,
            text,
        });
    }

    fn stop(&mut self, scan: &mut Scan, what: String) {
        self.stopped = true;
        scan.warnings.push(format!(
            "semantic SQL [RVB-Q006]: {what}; move other cascades out of cascades/ or raise the limit in rvbbit.toml [limits]"
        ));
    }
}
