//! Argument validation of `!run`: the cascade name and its JSON input. Nothing here touches a shell;
//! a name is only ever a path looked up under the cascade roots.

use std::path::{Component, Path, PathBuf};

use serde_json::Value;

/// Largest JSON input of `!run`, in bytes.
pub const MAX_INPUT_BYTES: usize = 64 * 1024;
/// Longest cascade name, in bytes.
const MAX_NAME_BYTES: usize = 256;

/// Why `name` is not an acceptable cascade name: `[A-Za-z0-9_./-]+`, no `..` component, no leading
/// `/`, at most 256 bytes.
pub fn name_problem(name: &str) -> Option<String> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return Some(format!("a cascade name is 1 to {MAX_NAME_BYTES} characters"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-')))
    {
        let shown: String = c.escape_debug().collect();
        return Some(format!(
            "`{shown}` is not allowed in a cascade name (letters, digits, `_`, `.`, `/` and `-` only)"
        ));
    }
    if name.starts_with('/') {
        return Some("a cascade name is relative to the cascade roots; it cannot start with `/`".into());
    }
    if name.split('/').any(|part| part == "..") {
        return Some("a cascade name cannot contain `..`".into());
    }
    None
}

/// The cascade file `name` names under one of `roots`, and its name as shown to users (relative to
/// its root). `name` may leave out `.yaml`, `.yml` or `.json`.
///
/// # Errors
/// Why it is refused: a bad name, a file that resolves (through a link) outside every root, or no
/// such file.
pub fn resolve(roots: &[PathBuf], name: &str) -> Result<(PathBuf, String), String> {
    if let Some(why) = name_problem(name) {
        return Err(why);
    }
    let mut outside = false;
    for root in roots {
        let Ok(root) = root.canonicalize() else {
            continue;
        };
        for candidate in candidates(name) {
            let Ok(path) = root.join(&candidate).canonicalize() else {
                continue;
            };
            if !path.starts_with(&root) {
                outside = true;
                continue;
            }
            if path.is_file() {
                return Ok((path, candidate));
            }
        }
    }
    if outside {
        return Err(format!("`{name}` resolves outside the cascade roots"));
    }
    Err(format!(
        "no cascade `{name}` under the cascade roots; `!list` shows those `!run` accepts"
    ))
}

fn candidates(name: &str) -> Vec<String> {
    let has_ext = Path::new(name)
        .extension()
        .is_some_and(|e| matches!(e.to_str(), Some("yaml" | "yml" | "json")));
    if has_ext {
        return vec![name.to_owned()];
    }
    vec![
        name.to_owned(),
        format!("{name}.yaml"),
        format!("{name}.yml"),
        format!("{name}.json"),
    ]
    .into_iter()
    .filter(|c| {
        Path::new(c)
            .components()
            .all(|p| matches!(p, Component::Normal(_) | Component::CurDir))
    })
    .collect()
}

/// The input object of `!run` (an empty object without one).
///
/// # Errors
/// Over [`MAX_INPUT_BYTES`], not JSON, or not an object.
pub fn input(text: Option<&str>) -> Result<Value, String> {
    let Some(text) = text else {
        return Ok(Value::Object(serde_json::Map::new()));
    };
    if text.len() > MAX_INPUT_BYTES {
        return Err(format!(
            "the JSON input is {} bytes; at most {MAX_INPUT_BYTES} (64 KiB) are accepted",
            text.len()
        ));
    }
    match serde_json::from_str::<Value>(text) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err("the input must be a JSON object, such as {\"name\": \"Ada\"}".into()),
        Err(e) => Err(format!("the input is not valid JSON: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_plain_relative_paths() {
        assert_eq!(name_problem("etl/daily-report_v2.yaml"), None);
        assert!(name_problem("../../etc/passwd").unwrap().contains(".."));
        assert!(name_problem("a/../b").unwrap().contains(".."));
        assert!(name_problem("/etc/passwd").unwrap().contains("start with `/`"));
        assert!(name_problem("hello;rm").unwrap().contains("`;`"));
        assert!(name_problem("a b").is_some());
        assert!(name_problem("$(x)").is_some());
        assert!(name_problem("").is_some());
        assert!(
            name_problem("..foo").is_none(),
            "only a whole `..` component is traversal"
        );
    }

    #[test]
    fn resolution_stays_inside_the_roots() {
        let dir = tempfile::TempDir::new().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("etl")).unwrap();
        std::fs::write(root.join("etl/daily.yaml"), "x").unwrap();
        std::fs::write(dir.path().join("secret.yaml"), "x").unwrap();
        let roots = vec![root.clone()];
        let (path, shown) = resolve(&roots, "etl/daily").unwrap();
        assert!(path.ends_with("etl/daily.yaml"));
        assert_eq!(shown, "etl/daily.yaml");
        assert!(resolve(&roots, "nope").unwrap_err().contains("no cascade `nope`"));
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(dir.path().join("secret.yaml"), root.join("link.yaml")).unwrap();
            assert!(
                resolve(&roots, "link")
                    .unwrap_err()
                    .contains("outside the cascade roots")
            );
        }
    }

    #[test]
    fn inputs_are_small_json_objects() {
        assert_eq!(input(None).unwrap(), serde_json::json!({}));
        assert_eq!(input(Some(r#"{"a":1}"#)).unwrap()["a"], 1);
        assert!(input(Some("[1]")).unwrap_err().contains("JSON object"));
        assert!(input(Some("{")).unwrap_err().contains("not valid JSON"));
        let big = format!(r#"{{"a":"{}"}}"#, "x".repeat(MAX_INPUT_BYTES));
        assert!(input(Some(&big)).unwrap_err().contains("at most 65536"));
    }
}
