//! Artifacts on object storage (feature `artifacts`): content-addressed cascade bundles, the names that
//! point at them, and run outputs, in an S3 bucket or a local directory through the `object_store` crate.
//!
//! Layout under `artifacts.url` (`s3://BUCKET/PREFIX` or `file:///PATH`):
//!
//! | key                          | holds                                                        |
//! |------------------------------|--------------------------------------------------------------|
//! | `blobs/sha256/HEX`           | one file's bytes, named by their SHA-256 (stored once)      |
//! | `bundles/sha256/HEX`         | a [`Manifest`], named by the SHA-256 of its canonical bytes |
//! | `names/NAME/VERSION`         | `{"bundle": "sha256:HEX", ...}`                              |
//! | `runs/SESSION_ID/output.json`| a completed run's final output                               |
//!
//! Everything read back is checked before use: a manifest against its hash, its paths and the
//! [`BundleLimits`]; a file against its size and hash. There is no server of our own: any S3-compatible
//! store (AWS, MinIO, SeaweedFS, R2) or a directory will do.

mod bundle;
mod unpack;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig};
use rvbbit_core::config::ArtifactsConfig;
use serde::{Deserialize, Serialize};

pub use bundle::{
    BundleFile, BundleLimits, BundleRef, FORMAT, LATEST, Manifest, check_path, is_hex_hash, parse_name,
    sha256_hex,
};
pub use unpack::Unpacked;

use crate::error::{Error, Result};

/// How to reach the artifact store. Build it with [`ArtifactOptions::from_config`].
#[derive(Clone)]
pub struct ArtifactOptions {
    /// `s3://BUCKET[/PREFIX]` or `file:///PATH`.
    pub url: String,
    /// The S3 endpoint (S3-compatible servers); `None` for AWS.
    pub endpoint: Option<String>,
    /// The S3 region.
    pub region: String,
    /// Whether a plain-HTTP endpoint is allowed.
    pub allow_http: bool,
    /// The S3 access key id.
    pub access_key_id: Option<String>,
    /// The S3 secret access key.
    pub secret_access_key: Option<String>,
    /// An S3 session token (temporary credentials).
    pub session_token: Option<String>,
    /// The longest one request may take.
    pub timeout: Duration,
    /// The limits on one bundle.
    pub limits: BundleLimits,
}

impl std::fmt::Debug for ArtifactOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArtifactOptions")
            .field("url", &self.url)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("allow_http", &self.allow_http)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "****"),
            )
            .field("session_token", &self.session_token.as_ref().map(|_| "****"))
            .field("timeout", &self.timeout)
            .field("limits", &self.limits)
            .finish()
    }
}

impl ArtifactOptions {
    /// The options of `[artifacts]`, completed from the standard AWS variables that `env` looks up
    /// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`,
    /// `AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL`, `AWS_ENDPOINT`, `AWS_ALLOW_HTTP`); the configuration
    /// wins. `None` when `artifacts.url` is not set.
    pub fn from_config(config: &ArtifactsConfig, env: impl Fn(&str) -> Option<String>) -> Option<Self> {
        let url = config.url.clone()?;
        let env = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        Some(ArtifactOptions {
            url,
            endpoint: config
                .endpoint
                .clone()
                .or_else(|| env("AWS_ENDPOINT_URL"))
                .or_else(|| env("AWS_ENDPOINT")),
            region: config
                .region
                .clone()
                .or_else(|| env("AWS_REGION"))
                .or_else(|| env("AWS_DEFAULT_REGION"))
                .unwrap_or_else(|| "us-east-1".into()),
            allow_http: config.allow_http
                || env("AWS_ALLOW_HTTP").is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1"),
            access_key_id: config.access_key_id.clone().or_else(|| env("AWS_ACCESS_KEY_ID")),
            secret_access_key: config
                .secret_access_key
                .clone()
                .or_else(|| env("AWS_SECRET_ACCESS_KEY")),
            session_token: env("AWS_SESSION_TOKEN"),
            timeout: Duration::from_secs(config.timeout_seconds.max(1)),
            limits: BundleLimits {
                max_files: config.max_bundle_files,
                max_bytes: config.max_bundle_bytes,
            },
        })
    }
}

/// What [`Artifacts::push`] did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Pushed {
    /// The bundle's hash, `sha256:HEX`.
    pub hash: String,
    /// Files in the bundle.
    pub files: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Files uploaded now (the others were already stored).
    pub uploaded_files: usize,
    /// Bytes uploaded now.
    pub uploaded_bytes: u64,
    /// Whether the manifest was uploaded now (false: this bundle was already stored).
    pub uploaded_manifest: bool,
}

/// What [`Artifacts::tag`] did to `NAME:VERSION`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Tagged {
    /// It did not exist and now names the bundle.
    Created,
    /// It already named this bundle: nothing was written.
    Unchanged,
    /// It named another bundle and now names this one (`latest`, or `--force`).
    Moved,
}

/// The record stored at `names/NAME/VERSION`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct NameRecord {
    bundle: String,
}

/// An open artifact store.
#[derive(Debug, Clone)]
pub struct Artifacts {
    store: Arc<dyn ObjectStore>,
    url: String,
    limits: BundleLimits,
}

impl Artifacts {
    /// Open the store `options` names. Nothing is contacted yet (the first request shows whether it
    /// is reachable); a `file://` directory is created.
    ///
    /// Errors: [`Error::ArtifactsConfig`] for a URL, endpoint or credentials that cannot work,
    /// [`Error::ArtifactsUnavailable`] when the directory cannot be created.
    pub fn open(options: &ArtifactOptions) -> Result<Artifacts> {
        let url = options.url.trim_end_matches('/').to_owned();
        let config_err = |detail: String| Error::ArtifactsConfig {
            url: url.clone(),
            detail,
        };
        if let Some(why) = rvbbit_core::config::artifacts_url_problem(&url) {
            return Err(config_err(why));
        }
        let store: Arc<dyn ObjectStore> = if let Some(path) = url.strip_prefix("file://") {
            std::fs::create_dir_all(path).map_err(|e| Error::ArtifactsUnavailable {
                url: url.clone(),
                action: "create the directory".into(),
                source: Box::new(e),
            })?;
            let local = LocalFileSystem::new_with_prefix(path).map_err(|e| Error::ArtifactsUnavailable {
                url: url.clone(),
                action: "open the directory".into(),
                source: Box::new(e),
            })?;
            Arc::new(local)
        } else {
            let rest = url.strip_prefix("s3://").unwrap_or(&url);
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let s3 = s3_store(options, bucket).map_err(config_err)?;
            let prefix = prefix.trim_matches('/');
            if prefix.is_empty() {
                Arc::new(s3)
            } else {
                Arc::new(PrefixStore::new(s3, prefix))
            }
        };
        Ok(Artifacts {
            store,
            url,
            limits: options.limits,
        })
    }

    /// The store's URL (it never holds a secret).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The limits on one bundle.
    pub fn limits(&self) -> BundleLimits {
        self.limits
    }

    /// The manifest `push` would store for these files (nothing is read from or written to the store).
    pub fn plan(entry: &str, roots: Vec<String>, files: &[(String, Vec<u8>)]) -> Manifest {
        Manifest::new(
            entry.to_owned(),
            roots,
            files
                .iter()
                .map(|(path, bytes)| BundleFile {
                    path: path.clone(),
                    sha256: sha256_hex(bytes),
                    size: bytes.len() as u64,
                })
                .collect(),
        )
    }

    /// Store a bundle: each file under its hash unless already there, then the manifest under the
    /// bundle's hash unless already there. `files` pairs each manifest path with its bytes.
    ///
    /// Errors: [`Error::BundleLimit`] before anything is uploaded, [`Error::BundleRefused`] for a bad
    /// path, [`Error::ArtifactsUnavailable`].
    pub async fn push(
        &self,
        entry: &str,
        roots: Vec<String>,
        files: Vec<(String, Vec<u8>)>,
    ) -> Result<Pushed> {
        let manifest = Artifacts::plan(entry, roots, &files);
        manifest.check(&self.limits, "the bundle")?;
        let hash = manifest.hash();
        let mut pushed = Pushed {
            hash: hash.clone(),
            files: manifest.files.len(),
            bytes: manifest.bytes(),
            uploaded_files: 0,
            uploaded_bytes: 0,
            uploaded_manifest: false,
        };
        let mut stored = std::collections::BTreeSet::new();
        for (path, bytes) in files {
            let hex = sha256_hex(&bytes);
            if !stored.insert(hex.clone()) {
                continue;
            }
            let key = blob_key(&hex);
            if self.exists(&key, &format!("look up the file {path}")).await? {
                continue;
            }
            pushed.uploaded_files += 1;
            pushed.uploaded_bytes += bytes.len() as u64;
            self.put(&key, Bytes::from(bytes), &format!("upload the file {path}"))
                .await?;
        }
        let key = manifest_key(&hash[7..]);
        if !self.exists(&key, "look up the manifest").await? {
            self.put(&key, Bytes::from(manifest.canonical()), "upload the manifest")
                .await?;
            pushed.uploaded_manifest = true;
        }
        Ok(pushed)
    }

    /// What [`Artifacts::tag`] would do, without writing: lets a push be refused before it uploads.
    ///
    /// Errors: [`Error::BundleNameTaken`], [`Error::ArtifactsUnavailable`].
    pub async fn check_tag(&self, name: &str, version: &str, hash: &str, force: bool) -> Result<Tagged> {
        let key = name_key(name, version);
        let existing = match self.get_small(&key, 64 * 1024, "read the name").await? {
            Some(bytes) => Some(self.name_record(name, version, &bytes)?.bundle),
            None => None,
        };
        match existing {
            Some(old) if old == hash => Ok(Tagged::Unchanged),
            Some(old) if version != LATEST && !force => Err(Error::BundleNameTaken {
                name: name.into(),
                version: version.into(),
                existing: old,
                new: hash.into(),
            }),
            Some(_) => Ok(Tagged::Moved),
            None => Ok(Tagged::Created),
        }
    }

    /// Make `name:version` name the bundle `hash` (`sha256:HEX`). An existing version naming other
    /// content is moved only when it is [`LATEST`] or `force` is set.
    ///
    /// Errors: [`Error::BundleNameTaken`], [`Error::ArtifactsUnavailable`].
    pub async fn tag(&self, name: &str, version: &str, hash: &str, force: bool) -> Result<Tagged> {
        let tagged = self.check_tag(name, version, hash, force).await?;
        if tagged == Tagged::Unchanged {
            return Ok(tagged);
        }
        let record = NameRecord { bundle: hash.into() };
        let body = serde_json::to_vec(&record).unwrap_or_default();
        self.put(
            &name_key(name, version),
            Bytes::from(body),
            &format!("write the name {name}:{version}"),
        )
        .await?;
        Ok(tagged)
    }

    /// The 64 hex digits of the bundle `reference` names.
    ///
    /// Errors: [`Error::BundleNotFound`], [`Error::ArtifactsUnavailable`].
    pub async fn resolve(&self, reference: &BundleRef) -> Result<String> {
        match reference {
            BundleRef::Hash(hex) => Ok(hex.clone()),
            BundleRef::Name { name, version } => {
                let key = name_key(name, version);
                match self.get_small(&key, 64 * 1024, "read the name").await? {
                    Some(bytes) => {
                        let record = self.name_record(name, version, &bytes)?;
                        match record.bundle.strip_prefix("sha256:") {
                            Some(hex) if is_hex_hash(hex) => Ok(hex.to_owned()),
                            _ => Err(Error::BundleRefused {
                                detail: format!(
                                    "the name {name}:{version} in {} holds `{}`, not a bundle hash",
                                    self.url, record.bundle
                                ),
                            }),
                        }
                    }
                    None => Err(Error::BundleNotFound {
                        what: format!("{name}:{version}"),
                        url: self.url.clone(),
                    }),
                }
            }
        }
    }

    /// The manifest of bundle `hex`, checked against its hash, its paths and the limits.
    ///
    /// Errors: [`Error::BundleNotFound`], [`Error::BundleRefused`], [`Error::BundleLimit`],
    /// [`Error::ArtifactsUnavailable`].
    pub async fn manifest(&self, hex: &str) -> Result<Manifest> {
        let what = format!("bundle sha256:{hex}");
        // A manifest line is about 150 bytes; allow generous paths.
        let cap = self
            .limits
            .max_files
            .saturating_mul(1200)
            .saturating_add(64 * 1024);
        let Some(bytes) = self
            .get_small(&manifest_key(hex), cap, "read the manifest")
            .await?
        else {
            return Err(Error::BundleNotFound {
                what: format!("sha256:{hex}"),
                url: self.url.clone(),
            });
        };
        if sha256_hex(&bytes) != hex {
            return Err(Error::BundleRefused {
                detail: format!("{what}: the manifest in {} does not match its hash", self.url),
            });
        }
        let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| Error::BundleRefused {
            detail: format!("{what}: the manifest is not one this rvbbit reads: {e}"),
        })?;
        manifest.check(&self.limits, &what)?;
        Ok(manifest)
    }

    /// Store a completed run's final output at `runs/SESSION_ID/output.json`; returns where it went.
    ///
    /// Errors: [`Error::ArtifactsUnavailable`].
    pub async fn put_output(&self, session_id: &str, output: &serde_json::Value) -> Result<String> {
        let key = format!("runs/{session_id}/output.json");
        let mut body = serde_json::to_vec_pretty(output).unwrap_or_default();
        body.push(b'\n');
        self.put(&key, Bytes::from(body), "write the run's output")
            .await?;
        Ok(format!("{}/{key}", self.url))
    }

    /// A stored object's bytes, `None` when it does not exist; more than `cap` bytes is refused
    /// before the body is read.
    pub(crate) async fn get_small(&self, key: &str, cap: u64, action: &str) -> Result<Option<Bytes>> {
        let result = match self.store.get(&ObjectPath::from(key)).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.unavailable(action, e)),
        };
        if result.meta.size > cap {
            return Err(Error::BundleRefused {
                detail: format!(
                    "`{key}` in {} is {} bytes, more than the {cap} expected",
                    self.url, result.meta.size
                ),
            });
        }
        result
            .bytes()
            .await
            .map(Some)
            .map_err(|e| self.unavailable(action, e))
    }

    async fn exists(&self, key: &str, action: &str) -> Result<bool> {
        match self.store.head(&ObjectPath::from(key)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.unavailable(action, e)),
        }
    }

    async fn put(&self, key: &str, bytes: Bytes, action: &str) -> Result<()> {
        self.store
            .put(&ObjectPath::from(key), PutPayload::from(bytes))
            .await
            .map(|_| ())
            .map_err(|e| self.unavailable(action, e))
    }

    fn name_record(&self, name: &str, version: &str, bytes: &[u8]) -> Result<NameRecord> {
        serde_json::from_slice(bytes).map_err(|e| Error::BundleRefused {
            detail: format!(
                "the name {name}:{version} in {} is not a name record: {e}",
                self.url
            ),
        })
    }

    fn unavailable(&self, action: &str, e: object_store::Error) -> Error {
        Error::ArtifactsUnavailable {
            url: self.url.clone(),
            action: action.to_owned(),
            source: Box::new(e),
        }
    }
}

/// The S3 client for `bucket`: explicit credentials only (never instance metadata or profile files),
/// a bounded timeout and at most two retries, so an unreachable endpoint fails within seconds.
fn s3_store(
    options: &ArtifactOptions,
    bucket: &str,
) -> std::result::Result<object_store::aws::AmazonS3, String> {
    let (Some(key), Some(secret)) = (&options.access_key_id, &options.secret_access_key) else {
        return Err("no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or `artifacts.access_key_id` and `artifacts.secret_access_key`)".into());
    };
    if let Some(endpoint) = &options.endpoint
        && endpoint.starts_with("http://")
        && !options.allow_http
    {
        return Err(format!(
            "the endpoint `{endpoint}` is plain HTTP; set `artifacts.allow_http = true` (or AWS_ALLOW_HTTP=true) to allow it"
        ));
    }
    let retry = RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            base: 2.0,
        },
        max_retries: 2,
        retry_timeout: options.timeout,
    };
    let client = ClientOptions::new()
        .with_timeout(options.timeout)
        .with_connect_timeout(options.timeout.min(Duration::from_secs(5)))
        .with_allow_http(options.allow_http);
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(bucket)
        .with_region(&options.region)
        .with_access_key_id(key)
        .with_secret_access_key(secret)
        .with_allow_http(options.allow_http)
        .with_retry(retry)
        .with_client_options(client);
    if let Some(token) = &options.session_token {
        builder = builder.with_token(token);
    }
    if let Some(endpoint) = &options.endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    builder.build().map_err(|e| e.to_string())
}

fn blob_key(hex: &str) -> String {
    format!("blobs/sha256/{hex}")
}

fn manifest_key(hex: &str) -> String {
    format!("bundles/sha256/{hex}")
}

fn name_key(name: &str, version: &str) -> String {
    format!("names/{name}/{version}")
}

#[cfg(test)]
mod tests {
    use rvbbit_core::config::ArtifactsConfig;

    use super::ArtifactOptions;

    #[test]
    fn configuration_beats_the_aws_variables_and_secrets_never_print() {
        let env = |k: &str| match k {
            "AWS_ACCESS_KEY_ID" => Some("env-key".to_owned()),
            "AWS_SECRET_ACCESS_KEY" => Some("env-secret".to_owned()),
            "AWS_ENDPOINT_URL" => Some("http://env:9000".to_owned()),
            "AWS_DEFAULT_REGION" => Some("eu-west-3".to_owned()),
            "AWS_ALLOW_HTTP" => Some("true".to_owned()),
            "AWS_SESSION_TOKEN" => Some(" ".to_owned()),
            _ => None,
        };
        assert!(ArtifactOptions::from_config(&ArtifactsConfig::default(), env).is_none());
        let mut config = ArtifactsConfig {
            url: Some("s3://bucket/prefix".into()),
            ..ArtifactsConfig::default()
        };
        let o = ArtifactOptions::from_config(&config, env).unwrap();
        assert_eq!(o.access_key_id.as_deref(), Some("env-key"));
        assert_eq!(o.endpoint.as_deref(), Some("http://env:9000"));
        assert_eq!(o.region, "eu-west-3");
        assert!(o.allow_http);
        assert_eq!(o.session_token, None, "a blank variable is no value");
        config.access_key_id = Some("cfg-key".into());
        config.secret_access_key = Some("cfg-secret".into());
        config.region = Some("us-west-2".into());
        let o = ArtifactOptions::from_config(&config, env).unwrap();
        assert_eq!(o.access_key_id.as_deref(), Some("cfg-key"));
        assert_eq!(o.secret_access_key.as_deref(), Some("cfg-secret"));
        assert_eq!(o.region, "us-west-2");
        let shown = format!("{o:?} {config:?}");
        assert!(
            !shown.contains("cfg-secret") && !shown.contains("env-secret"),
            "{shown}"
        );
        let o = ArtifactOptions::from_config(&config, |_| None).unwrap();
        assert!(!o.allow_http && o.endpoint.is_none());
    }
}
