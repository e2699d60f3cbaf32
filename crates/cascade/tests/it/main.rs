//! Integration tests of the cascade language (one test binary, per the house style).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod corpus;
mod diagnostics;
mod fuzz;
mod limits;
mod schema_export;
mod shell;
mod sql_function;

use std::path::PathBuf;

/// The shared corpus of real cascade files (`../shared/corpus` beside the repository), or
/// `RVBBIT_CORPUS_DIR`. A missing corpus fails the test: a skipped corpus test proves nothing.
pub(crate) fn corpus_dir() -> PathBuf {
    let dir = std::env::var_os("RVBBIT_CORPUS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus"));
    assert!(
        dir.is_dir(),
        "the cascade corpus is missing at {}: clone the repository with shared/ beside it, or set RVBBIT_CORPUS_DIR",
        dir.display()
    );
    dir.canonicalize().unwrap()
}

/// Every .yaml/.yml/.json file under `dir`, sorted.
pub(crate) fn files_under(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml" | "json")
            ) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}
