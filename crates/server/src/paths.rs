//! The one canonical containment check every file-serving path goes through.

use std::path::{Component, Path, PathBuf};

use axum::http::StatusCode;
use rvbbit_core::codes;

use crate::error::ApiError;

/// A file found under a root.
#[derive(Clone, Debug)]
pub struct Contained {
    /// The canonical path of the file.
    pub path: PathBuf,
    /// The path relative to its root, `/`-separated: what clients see.
    pub relative: String,
}

/// Longest path a client may name, in bytes.
const MAX_PATH_BYTES: usize = 1024;

fn refused(user_path: &str, why: &str) -> ApiError {
    // The path is echoed back, so make control characters visible and keep it short.
    let mut shown: String = user_path.chars().take(200).flat_map(char::escape_debug).collect();
    if user_path.chars().count() > 200 {
        shown.push('…');
    }
    ApiError::new(
        StatusCode::BAD_REQUEST,
        codes::A_PATH_REFUSED,
        format!("the path `{shown}` is refused: {why}"),
        "name the file by its path relative to a cascade root, as `GET /api/v1/cascades` lists it",
    )
}

/// Resolve `user_path` (relative, as a client sent it) under the first root that has it.
///
/// Lexical checks come first, without touching the file system: empty or over-long paths, NUL and
/// other control characters, backslashes, `%` (a path is percent-decoded once by the router, so a `%`
/// left over is double encoding), absolute paths and `..` components are refused. Then the candidate is
/// canonicalised and must still lie under the canonical root, so a symbolic link that leads out of the
/// root is refused too. Every refusal is 400 RVB-A004; a contained path that does not exist is 404.
pub fn resolve_under(roots: &[PathBuf], user_path: &str) -> Result<Contained, ApiError> {
    if user_path.is_empty() {
        return Err(refused(user_path, "it is empty"));
    }
    if user_path.len() > MAX_PATH_BYTES {
        return Err(refused(user_path, "it is longer than 1024 bytes"));
    }
    if user_path.chars().any(char::is_control) {
        return Err(refused(
            user_path,
            "it contains a NUL byte or another control character",
        ));
    }
    if user_path.contains('\\') {
        return Err(refused(
            user_path,
            "it contains a backslash; separate folders with `/`",
        ));
    }
    if user_path.contains('%') {
        return Err(refused(
            user_path,
            "it still contains `%` after URL decoding (double encoding is not accepted)",
        ));
    }
    let rel = Path::new(user_path);
    for component in rel.components() {
        match component {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => return Err(refused(user_path, "it contains `..`")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(refused(user_path, "it is absolute"));
            }
        }
    }
    for root in roots {
        let Ok(root) = root.canonicalize() else {
            continue;
        };
        let candidate = root.join(rel);
        let Ok(canonical) = candidate.canonicalize() else {
            continue;
        };
        if !canonical.starts_with(&root) {
            return Err(refused(user_path, "it leads outside the cascade roots"));
        }
        let relative = canonical
            .strip_prefix(&root)
            .map(|p| {
                p.components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/")
            })
            .unwrap_or_default();
        return Ok(Contained {
            path: canonical,
            relative,
        });
    }
    Err(ApiError::not_found(
        format!("no cascade root has `{user_path}`"),
        "list the cascades with `GET /api/v1/cascades`",
    ))
}

/// Replace every canonical root prefix in `text` so messages name files relative to their root.
pub fn scrub(text: &str, roots: &[PathBuf]) -> String {
    let mut out = text.to_owned();
    for root in roots {
        if let Ok(canonical) = root.canonicalize() {
            let prefix = format!("{}/", canonical.display());
            out = out.replace(&prefix, "");
        }
        let prefix = format!("{}/", root.display());
        out = out.replace(&prefix, "");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexical_escapes_are_refused_before_touching_the_disk() {
        let roots = vec![PathBuf::from("/nonexistent-root")];
        let long = "a/".repeat(600);
        for bad in [
            "../etc/passwd",
            "/etc/passwd",
            "a/../../b",
            "",
            "a\0b",
            "a\nb",
            "..\\secret.yaml",
            "%2e%2e/secret.yaml",
            long.as_str(),
        ] {
            let e = resolve_under(&roots, bad).unwrap_err();
            assert_eq!(e.status(), StatusCode::BAD_REQUEST, "{bad}");
        }
        let e = resolve_under(&roots, "fine.yaml").unwrap_err();
        assert_eq!(e.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn symlinks_out_of_the_root_are_refused_and_inside_ones_allowed() {
        let outside = tempfile::TempDir::new().unwrap();
        std::fs::write(outside.path().join("secret.yaml"), "x: 1").unwrap();
        let root = tempfile::TempDir::new().unwrap();
        std::fs::create_dir(root.path().join("sub")).unwrap();
        std::fs::write(root.path().join("sub/ok.yaml"), "x: 1").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret.yaml"), root.path().join("leak.yaml"))
            .unwrap();
        std::os::unix::fs::symlink(root.path().join("sub/ok.yaml"), root.path().join("alias.yaml")).unwrap();
        let roots = vec![root.path().to_path_buf()];
        let e = resolve_under(&roots, "leak.yaml").unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        let ok = resolve_under(&roots, "./sub/ok.yaml").unwrap();
        assert_eq!(ok.relative, "sub/ok.yaml");
        let alias = resolve_under(&roots, "alias.yaml").unwrap();
        assert_eq!(alias.relative, "sub/ok.yaml");
    }

    #[test]
    fn scrub_removes_root_prefixes() {
        let root = tempfile::TempDir::new().unwrap();
        let text = format!("`{}/a/b.yaml` is bad", root.path().display());
        assert_eq!(scrub(&text, &[root.path().to_path_buf()]), "`a/b.yaml` is bad");
    }
}
