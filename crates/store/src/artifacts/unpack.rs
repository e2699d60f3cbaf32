//! Fetching a bundle into a private cache directory keyed by its hash, every file checked.
//!
//! A bundle `HEX` is unpacked under `CACHE/HEX/p/p/p/`: the three padding directories keep the search
//! for tool directories (a cascade's directory and three parents) inside `CACHE/HEX`, so nothing
//! outside the bundle joins a run of it. Files are written into a fresh temporary directory with
//! `create_new` (no existing file or link is followed), and the directory is renamed into place once
//! complete, so a half-unpacked bundle is never used. A cached bundle is checked again (every file's
//! hash) before each use and unpacked afresh when it differs.

use std::io::Write;
use std::path::{Path, PathBuf};

use futures::{StreamExt, TryStreamExt};

use super::{Artifacts, Manifest, blob_key, sha256_hex};
use crate::error::{Error, Result};

/// Directories between a bundle's cache directory and its root (see the module docs).
const PADDING: [&str; 3] = ["p", "p", "p"];

/// Blobs fetched at once.
const CONCURRENT_FETCHES: usize = 8;

/// A bundle ready to run.
#[derive(Clone, Debug)]
pub struct Unpacked {
    /// The bundle's hash, `sha256:HEX`.
    pub hash: String,
    /// Its manifest.
    pub manifest: Manifest,
    /// The directory its files are in (the bundle's root).
    pub root: PathBuf,
    /// The cascade to run, under `root`.
    pub entry: PathBuf,
    /// The roots to search, under `root`.
    pub roots: Vec<PathBuf>,
    /// Whether it was downloaded now (false: the cached copy was intact).
    pub fetched: bool,
}

impl Artifacts {
    /// Fetch bundle `hex` (64 hex digits) into `cache_dir/HEX`, unless an intact copy is there.
    ///
    /// Errors: [`Error::BundleNotFound`] (no such bundle, or a file of it missing),
    /// [`Error::BundleRefused`] (a path or hash that does not check), [`Error::BundleLimit`],
    /// [`Error::ArtifactsUnavailable`], [`Error::File`] for the cache directory.
    pub async fn fetch(&self, hex: &str, cache_dir: &Path) -> Result<Unpacked> {
        let dir = cache_dir.join(hex);
        if let Some(cached) = cached(hex, &dir).await {
            return Ok(cached);
        }
        let manifest = self.manifest(hex).await?;
        let files: Vec<(String, bytes::Bytes)> = futures::stream::iter(manifest.files.clone())
            .map(|f| async move {
                let what = format!("file `{}` of bundle sha256:{hex}", f.path);
                let Some(bytes) = self
                    .get_small(&blob_key(&f.sha256), f.size, &format!("fetch the {what}"))
                    .await?
                else {
                    return Err(Error::BundleNotFound {
                        what: format!("the {what} (blob sha256:{})", f.sha256),
                        url: self.url.clone(),
                    });
                };
                if bytes.len() as u64 != f.size || sha256_hex(&bytes) != f.sha256 {
                    return Err(Error::BundleRefused {
                        detail: format!("the {what} in {} does not match its SHA-256", self.url),
                    });
                }
                Ok((f.path, bytes))
            })
            .buffer_unordered(CONCURRENT_FETCHES)
            .try_collect()
            .await?;
        let cache = cache_dir.to_path_buf();
        let hex_owned = hex.to_owned();
        let written = manifest.clone();
        tokio::task::spawn_blocking(move || write_bundle(&cache, &hex_owned, &written, &files))
            .await
            .map_err(|e| Error::Internal(format!("unpacking a bundle panicked: {e}")))??;
        Ok(unpacked(hex, &dir, manifest, true))
    }
}

fn unpacked(hex: &str, dir: &Path, manifest: Manifest, fetched: bool) -> Unpacked {
    let root = PADDING.iter().fold(dir.to_path_buf(), |p, d| p.join(d));
    let entry = root.join(&manifest.entry);
    let roots = manifest
        .roots
        .iter()
        .map(|r| if r == "." { root.clone() } else { root.join(r) })
        .collect();
    Unpacked {
        hash: format!("sha256:{hex}"),
        manifest,
        root,
        entry,
        roots,
        fetched,
    }
}

/// The cached copy at `dir` when its manifest matches `hex` and every file its hash.
async fn cached(hex: &str, dir: &Path) -> Option<Unpacked> {
    let dir = dir.to_path_buf();
    let hex = hex.to_owned();
    tokio::task::spawn_blocking(move || verify(&hex, &dir))
        .await
        .ok()
        .flatten()
}

fn verify(hex: &str, dir: &Path) -> Option<Unpacked> {
    let bytes = std::fs::read(dir.join("manifest.json")).ok()?;
    if sha256_hex(&bytes) != hex {
        return None;
    }
    let manifest: Manifest = serde_json::from_slice(&bytes).ok()?;
    let found = unpacked(hex, dir, manifest, false);
    for f in &found.manifest.files {
        let path = found.root.join(&f.path);
        let meta = std::fs::symlink_metadata(&path).ok()?;
        if !meta.is_file() || sha256_hex(&std::fs::read(&path).ok()?) != f.sha256 {
            return None;
        }
    }
    Some(found)
}

/// Write the files into a fresh temporary directory under `cache`, then rename it to `cache/HEX`.
fn write_bundle(
    cache: &Path,
    hex: &str,
    manifest: &Manifest,
    files: &[(String, bytes::Bytes)],
) -> Result<()> {
    let file_err = |action: &'static str, path: &Path, e: std::io::Error| Error::File {
        action,
        path: path.to_path_buf(),
        source: e,
    };
    std::fs::create_dir_all(cache).map_err(|e| file_err("create the bundle cache", cache, e))?;
    private(cache).map_err(|e| file_err("make the bundle cache private", cache, e))?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let tmp = cache.join(format!(".tmp-{hex}-{}-{nanos}", std::process::id()));
    std::fs::create_dir(&tmp).map_err(|e| file_err("create", &tmp, e))?;
    let result = (|| {
        let root = PADDING.iter().fold(tmp.clone(), |p, d| p.join(d));
        for (rel, bytes) in files {
            // Paths were checked with the manifest: relative, no `..`, no empty parts.
            super::check_path(rel).map_err(|detail| Error::BundleRefused { detail })?;
            let path = root.join(rel);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| file_err("create", parent, e))?;
            }
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .map_err(|e| file_err("write", &path, e))?;
            file.write_all(bytes).map_err(|e| file_err("write", &path, e))?;
        }
        let manifest_path = tmp.join("manifest.json");
        std::fs::write(&manifest_path, manifest.canonical())
            .map_err(|e| file_err("write", &manifest_path, e))?;
        let dir = cache.join(hex);
        if dir.exists() {
            if verify(hex, &dir).is_some() {
                // Another process unpacked it meanwhile: use theirs (it may be running from it).
                return std::fs::remove_dir_all(&tmp).map_err(|e| file_err("remove", &tmp, e));
            }
            // A damaged copy: replace it.
            std::fs::remove_dir_all(&dir).map_err(|e| file_err("remove", &dir, e))?;
        }
        std::fs::rename(&tmp, &dir).map_err(|e| file_err("move into place", &dir, e))
    })();
    if result.is_err() {
        // Best effort: a leftover temporary directory is never used (its name starts with `.tmp-`).
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

#[cfg(unix)]
fn private(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

#[cfg(not(unix))]
fn private(_dir: &Path) -> std::io::Result<()> {
    Ok(())
}
