//! The error-code pages and the exit-code table in `docs/` are generated from `codes.rs`.
//! `RVBBIT_BLESS=1 cargo test -p rvbbit-core` rewrites them; otherwise a stale page fails the test.

use std::path::{Path, PathBuf};

use rvbbit_core::codes;

fn docs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs")
}

fn check(path: &Path, expected: &str, stale: &mut Vec<String>) {
    if std::env::var_os("RVBBIT_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, expected).unwrap();
    }
    if std::fs::read_to_string(path).unwrap_or_default() != expected {
        stale.push(path.display().to_string());
    }
}

#[test]
fn error_pages_and_exit_code_table_are_current() {
    let mut stale = Vec::new();
    for code in codes::ALL {
        check(
            &docs_dir().join("errors").join(format!("{}.md", code.code)),
            &code.render_markdown(),
            &mut stale,
        );
    }
    check(
        &docs_dir().join("exit-codes.md"),
        &codes::render_exit_code_doc(),
        &mut stale,
    );
    assert!(
        stale.is_empty(),
        "stale docs (run `RVBBIT_BLESS=1 cargo test -p rvbbit-core`): {stale:?}"
    );
    // No page for a code that no longer exists.
    for entry in std::fs::read_dir(docs_dir().join("errors")).unwrap() {
        let name = entry
            .unwrap()
            .file_name()
            .to_string_lossy()
            .trim_end_matches(".md")
            .to_owned();
        assert!(
            codes::lookup(&name).is_some(),
            "docs/errors/{name}.md has no code in the table"
        );
    }
}
