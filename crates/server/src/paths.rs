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

fn refused(user_path: &str, why: &str) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        codes::A_PATH_REFUSED,
        format!("the path `{user_path}` is refused: {why}"),
        "name the file by its path relative to a cascade root, as `GET /api/v1/cascades` lists it",
    )
}

/// Resolve `user_path` (relative, as a client sent it) under the first root that has it.
///
/// Lexical checks come first (absolute paths, `..`, empty or NUL-containing paths are refused without
/// touching the file system), then the candidate is canonicalised and must still lie under the
/// canonical root, so a symbolic link that leads out of the root is refused too.
pub fn resolve_under(roots: &[PathBuf], user_path: &str) -> Result<Contained, ApiError> {
    if user_path.is_empty() || user_path.contains('\0') {
        return Err(refused(user_path, "it is empty or contains a NUL byte"));
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
        for bad in ["../etc/passwd", "/etc/passwd", "a/../../b", "", "a\0b"] {
            let e = resolve_under(&roots, bad).unwrap_err();
            assert_eq!(e.status(), StatusCode::FORBIDDEN, "{bad}");
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
        assert_eq!(e.status(), StatusCode::FORBIDDEN);
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
