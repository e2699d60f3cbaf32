//! The bundle format: a manifest of relative paths and SHA-256 hashes, its canonical bytes and hash,
//! names (`NAME:VERSION`) and references (`registry:NAME[:VERSION]`, `registry:sha256:HEX`).
//!
//! The manifest is content-addressed: a bundle's hash is the SHA-256 of its manifest's canonical JSON
//! (files sorted by path, no whitespace), and every file is named by the SHA-256 of its content, so the
//! same files always give the same hash and a changed byte anywhere gives a new one.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The manifest format this build writes and reads.
pub const FORMAT: u32 = 1;

/// The version `registry:NAME` means, and the one every push moves.
pub const LATEST: &str = "latest";

/// The longest relative path a manifest may hold.
const MAX_PATH_LEN: usize = 1024;

/// One file of a bundle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleFile {
    /// The path relative to the bundle's root, `/`-separated.
    pub path: String,
    /// The SHA-256 of its content, lowercase hex.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
}

/// What a bundle holds: the cascade to run, the directories searched as configured roots, and every
/// file. Nothing else (no links, no modes): a file is bytes at a relative path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The manifest format ([`FORMAT`]).
    pub format: u32,
    /// The cascade to run, a path among `files`.
    pub entry: String,
    /// Directories (relative to the bundle's root, `.` for the root) that were configured roots where
    /// the bundle was pushed; a run of the bundle searches them, and no other root.
    pub roots: Vec<String>,
    /// Every file, sorted by path.
    pub files: Vec<BundleFile>,
}

impl Manifest {
    /// A manifest of `files` (sorted here), with `entry` and `roots` (sorted and deduplicated).
    pub fn new(entry: String, roots: Vec<String>, mut files: Vec<BundleFile>) -> Manifest {
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let roots: BTreeSet<String> = roots.into_iter().collect();
        Manifest {
            format: FORMAT,
            entry,
            roots: roots.into_iter().collect(),
            files,
        }
    }

    /// The canonical bytes (compact JSON, fields in declaration order, files sorted by path).
    pub fn canonical(&self) -> Vec<u8> {
        // Serialising plain strings and integers cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The bundle's hash: `sha256:` and the SHA-256 of [`Manifest::canonical`].
    pub fn hash(&self) -> String {
        format!("sha256:{}", sha256_hex(&self.canonical()))
    }

    /// The total size of the files.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    /// Check a manifest read from the store: its format, every path (relative, no `..`, no empty or
    /// `.` parts, no backslash or NUL), no path twice or both a file and a directory, the entry among
    /// the files, hashes that are hashes, and the limits.
    ///
    /// Errors: [`Error::BundleRefused`] naming the bad path, [`Error::BundleLimit`].
    pub fn check(&self, limits: &BundleLimits, what: &str) -> Result<()> {
        let refused = |detail: String| Error::BundleRefused {
            detail: format!("{what}: {detail}"),
        };
        if self.format != FORMAT {
            return Err(refused(format!(
                "manifest format {} is not {FORMAT}, the one this rvbbit reads",
                self.format
            )));
        }
        limits.check(self.files.len() as u64, self.bytes(), what)?;
        let mut seen = BTreeSet::new();
        for f in &self.files {
            check_path(&f.path).map_err(refused)?;
            if !is_hex_hash(&f.sha256) {
                return Err(refused(format!("`{}` has no SHA-256 hash", f.path)));
            }
            if !seen.insert(f.path.as_str()) {
                return Err(refused(format!("`{}` is listed twice", f.path)));
            }
        }
        for f in &self.files {
            let mut dir = f.path.as_str();
            while let Some((parent, _)) = dir.rsplit_once('/') {
                if seen.contains(parent) {
                    return Err(refused(format!("`{parent}` is both a file and a directory")));
                }
                dir = parent;
            }
        }
        if !seen.contains(self.entry.as_str()) {
            return Err(refused(format!(
                "the entry `{}` is not among its files",
                self.entry
            )));
        }
        for root in &self.roots {
            if root != "." {
                check_path(root).map_err(|e| refused(format!("root {e}")))?;
            }
        }
        Ok(())
    }
}

/// Why `path` cannot be a bundle path, if it cannot: it must be relative, `/`-separated, without empty,
/// `.` or `..` parts, backslashes, NUL or control characters, and at most 1024 bytes.
pub fn check_path(path: &str) -> std::result::Result<(), String> {
    if path.is_empty() || path.len() > MAX_PATH_LEN {
        return Err(format!(
            "a path has 1 to {MAX_PATH_LEN} bytes, found {}",
            path.len()
        ));
    }
    if path.starts_with('/') {
        return Err(format!("`{path}` is absolute"));
    }
    if path.contains('\\') || path.chars().any(char::is_control) {
        return Err(format!(
            "`{}` holds a backslash or a control character",
            path.escape_debug()
        ));
    }
    for part in path.split('/') {
        match part {
            "" => return Err(format!("`{path}` has an empty part")),
            "." | ".." => return Err(format!("`{path}` climbs with `{part}`")),
            _ => {}
        }
    }
    Ok(())
}

/// Limits on one bundle (`artifacts.max_bundle_files`, `artifacts.max_bundle_bytes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BundleLimits {
    /// The most files.
    pub max_files: u64,
    /// The most bytes, all files together.
    pub max_bytes: u64,
}

impl Default for BundleLimits {
    fn default() -> Self {
        BundleLimits {
            max_files: 1000,
            max_bytes: 64 * 1024 * 1024,
        }
    }
}

impl BundleLimits {
    /// Check `files` files of `bytes` bytes in all against the limits.
    ///
    /// Errors: [`Error::BundleLimit`] naming the setting.
    pub fn check(&self, files: u64, bytes: u64, what: &str) -> Result<()> {
        if files > self.max_files {
            return Err(Error::BundleLimit {
                what: what.to_owned(),
                found: format!("{files} files"),
                max: format!("{} files", self.max_files),
                setting: "artifacts.max_bundle_files",
            });
        }
        if bytes > self.max_bytes {
            return Err(Error::BundleLimit {
                what: what.to_owned(),
                found: format!("{bytes} bytes"),
                max: format!("{} bytes", self.max_bytes),
                setting: "artifacts.max_bundle_bytes",
            });
        }
        Ok(())
    }
}

/// The SHA-256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Whether `s` is 64 lowercase hex digits.
pub fn is_hex_hash(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// What `registry:…` names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BundleRef {
    /// `registry:NAME[:VERSION]` (`VERSION` defaults to [`LATEST`]).
    Name {
        /// The bundle's name.
        name: String,
        /// Its version.
        version: String,
    },
    /// `registry:sha256:HEX`: one bundle, by its hash (the 64 hex digits).
    Hash(String),
}

impl BundleRef {
    /// Parse the part after `registry:`: `NAME[:VERSION]` or `sha256:HEX`.
    ///
    /// Errors: why it is not a reference, for a usage message.
    pub fn parse(s: &str) -> std::result::Result<BundleRef, String> {
        if let Some(hex) = s.strip_prefix("sha256:") {
            return if is_hex_hash(hex) {
                Ok(BundleRef::Hash(hex.to_owned()))
            } else {
                Err(format!(
                    "`sha256:{hex}` is not a bundle hash (64 lowercase hex digits)"
                ))
            };
        }
        let (name, version) = parse_name(s)?;
        Ok(BundleRef::Name { name, version })
    }
}

impl std::fmt::Display for BundleRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BundleRef::Name { name, version } => write!(f, "registry:{name}:{version}"),
            BundleRef::Hash(hex) => write!(f, "registry:sha256:{hex}"),
        }
    }
}

/// Split and check `NAME[:VERSION]`: a name is 1 to 100 lowercase letters, digits, `.`, `_` and `-`,
/// starting with a letter or digit (`sha256` is reserved); a version 1 to 64 letters, digits, `.`, `_`,
/// `+` and `-`, starting with a letter or digit. The version defaults to [`LATEST`].
///
/// Errors: the reason, for a usage message.
pub fn parse_name(s: &str) -> std::result::Result<(String, String), String> {
    let (name, version) = s.split_once(':').unwrap_or((s, LATEST));
    let ok_start = |t: &str| t.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    if name.is_empty()
        || name.len() > 100
        || !ok_start(name)
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
    {
        return Err(format!(
            "`{name}` is not a bundle name (1 to 100 lowercase letters, digits, `.`, `_` and `-`)"
        ));
    }
    if name == "sha256" {
        return Err("`sha256` is reserved for references by hash (`registry:sha256:HEX`)".into());
    }
    if version.is_empty()
        || version.len() > 64
        || !ok_start(version)
        || !version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+'))
    {
        return Err(format!(
            "`{version}` is not a bundle version (1 to 64 letters, digits, `.`, `_`, `+` and `-`)"
        ));
    }
    Ok((name.to_owned(), version.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str) -> BundleFile {
        BundleFile {
            path: path.into(),
            sha256: sha256_hex(path.as_bytes()),
            size: 1,
        }
    }

    #[test]
    fn the_hash_does_not_depend_on_the_order_files_were_found_in() {
        let a = Manifest::new(
            "c.yaml".into(),
            vec![".".into()],
            vec![file("c.yaml"), file("traits/t.yaml")],
        );
        let b = Manifest::new(
            "c.yaml".into(),
            vec![".".into()],
            vec![file("traits/t.yaml"), file("c.yaml")],
        );
        assert_eq!(a.hash(), b.hash());
        assert!(a.hash().starts_with("sha256:") && is_hex_hash(&a.hash()[7..]));
        let mut c = b;
        c.files[0].sha256 = sha256_hex(b"changed");
        assert_ne!(a.hash(), c.hash());
    }

    #[test]
    fn manifests_with_climbing_absolute_or_clashing_paths_are_refused() {
        let limits = BundleLimits::default();
        for bad in ["../x", "/etc/passwd", "a/../../x", "a//b", "./a", "a\\b", "a\0b"] {
            let m = Manifest::new("c.yaml".into(), vec![], vec![file("c.yaml"), file(bad)]);
            assert!(m.check(&limits, "bundle").is_err(), "{bad:?} passed");
        }
        let m = Manifest::new("c.yaml".into(), vec![], vec![file("c.yaml"), file("c.yaml/x")]);
        assert!(m.check(&limits, "bundle").is_err());
        let m = Manifest::new("missing.yaml".into(), vec![], vec![file("c.yaml")]);
        assert!(m.check(&limits, "bundle").is_err());
        let m = Manifest::new("c.yaml".into(), vec!["..".into()], vec![file("c.yaml")]);
        assert!(m.check(&limits, "bundle").is_err());
        let m = Manifest::new(
            "c.yaml".into(),
            vec![".".into()],
            vec![file("c.yaml"), file("traits/t.yaml")],
        );
        assert!(m.check(&limits, "bundle").is_ok());
        let small = BundleLimits {
            max_files: 1,
            max_bytes: 10,
        };
        let e = m.check(&small, "bundle").unwrap_err().to_string();
        assert!(e.contains("artifacts.max_bundle_files"), "{e}");
    }

    #[test]
    fn references_are_names_with_versions_or_hashes() {
        assert_eq!(
            BundleRef::parse("hello").unwrap(),
            BundleRef::Name {
                name: "hello".into(),
                version: "latest".into()
            }
        );
        assert_eq!(
            BundleRef::parse("hello:1.2").unwrap(),
            BundleRef::Name {
                name: "hello".into(),
                version: "1.2".into()
            }
        );
        let hex = "a".repeat(64);
        assert_eq!(
            BundleRef::parse(&format!("sha256:{hex}")).unwrap(),
            BundleRef::Hash(hex)
        );
        for bad in [
            "",
            "Hello",
            "a/b",
            "../x",
            "sha256:12",
            "sha256",
            "a:",
            "a:-1",
            "a:b/c",
            ":1",
        ] {
            assert!(BundleRef::parse(bad).is_err(), "{bad:?} passed");
        }
    }
}
