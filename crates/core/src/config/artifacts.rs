//! `[artifacts]`: the object store that holds cascade bundles (`rvbbit cascade push`, `registry:` runs)
//! and run outputs. Since v0.4.

use std::fmt;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Problem, mask_url};
use crate::codes;

/// Where cascade bundles and run outputs are stored: an S3 bucket or a local directory.
#[derive(Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ArtifactsConfig {
    /// `s3://BUCKET[/PREFIX]` or `file:///ABSOLUTE/PATH`. Absent: no registry, no output artifacts.
    /// Env: `RVBBIT_ARTIFACTS_URL` or `RVBBIT_ARTIFACTS__URL`. Since v0.4.
    pub url: Option<String>,
    /// The S3 endpoint for S3-compatible servers (MinIO, SeaweedFS, R2), such as
    /// `http://127.0.0.1:8333`. Absent: `AWS_ENDPOINT_URL` (or `AWS_ENDPOINT`), else AWS itself.
    pub endpoint: Option<String>,
    /// The S3 region. Absent: `AWS_REGION`, else `AWS_DEFAULT_REGION`, else `us-east-1`.
    pub region: Option<String>,
    /// Allow a plain-HTTP endpoint (never needed for AWS itself). Also on when `AWS_ALLOW_HTTP=true`.
    pub allow_http: bool,
    /// The S3 access key id. Absent: `AWS_ACCESS_KEY_ID`. Credentials come only from here or the
    /// environment, never from instance metadata or profile files.
    pub access_key_id: Option<String>,
    /// The S3 secret access key (masked in `rvbbit config show`). Absent: `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: Option<String>,
    /// The most files one bundle may hold (checked before anything is read or uploaded).
    pub max_bundle_files: u64,
    /// The most bytes the files of one bundle may hold together (checked before reading).
    pub max_bundle_bytes: u64,
    /// Where fetched bundles are unpacked, one directory per bundle hash (relative to the working
    /// directory).
    pub cache_dir: PathBuf,
    /// Seconds one request to the object store may take (connecting included) before it fails.
    pub timeout_seconds: u64,
}

impl Default for ArtifactsConfig {
    fn default() -> Self {
        ArtifactsConfig {
            url: None,
            endpoint: None,
            region: None,
            allow_http: false,
            access_key_id: None,
            secret_access_key: None,
            max_bundle_files: 1000,
            max_bundle_bytes: 64 * 1024 * 1024,
            cache_dir: PathBuf::from(".rvbbit/bundles"),
            timeout_seconds: 30,
        }
    }
}

impl fmt::Debug for ArtifactsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArtifactsConfig")
            .field("url", &self.url.as_deref().map(mask_url))
            .field("endpoint", &self.endpoint.as_deref().map(mask_url))
            .field("region", &self.region)
            .field("allow_http", &self.allow_http)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "****"),
            )
            .field("max_bundle_files", &self.max_bundle_files)
            .field("max_bundle_bytes", &self.max_bundle_bytes)
            .field("cache_dir", &self.cache_dir)
            .field("timeout_seconds", &self.timeout_seconds)
            .finish()
    }
}

/// Why `url` is not an artifacts URL (`s3://BUCKET[/PREFIX]` or `file:///ABSOLUTE/PATH`), if it is not.
pub fn artifacts_url_problem(url: &str) -> Option<String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Some("it has no scheme (expected s3:// or file://)".into());
    };
    match scheme {
        "s3" => {
            let bucket = rest.split('/').next().unwrap_or_default();
            if bucket.is_empty() {
                return Some("it names no bucket".into());
            }
            if bucket.contains('@') {
                return Some("credentials do not belong in the URL: use `artifacts.access_key_id` and `artifacts.secret_access_key` or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".into());
            }
            if !bucket
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
            {
                return Some(format!(
                    "the bucket `{bucket}` is not a bucket name (lowercase letters, digits, `-` and `.`)"
                ));
            }
            None
        }
        "file" => {
            if !rest.starts_with('/') {
                return Some("a file URL needs an absolute path: `file:///abs/path`".into());
            }
            if rest.split('/').any(|p| p == "..") {
                return Some("the path must not contain `..`".into());
            }
            None
        }
        other => Some(format!("its scheme is `{other}`, expected s3 or file")),
    }
}

/// The `[artifacts]` settings' problems.
pub(super) fn validate(
    artifacts: &ArtifactsConfig,
    src: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<Problem>,
) {
    let mut bad = |key: &str, message: String, hint: &str| {
        problems.push(Problem {
            code: codes::C_INVALID,
            key: Some(key.into()),
            source: src(key),
            message,
            hint: hint.into(),
        });
    };
    if let Some(url) = &artifacts.url
        && let Some(why) = artifacts_url_problem(url)
    {
        bad(
            "artifacts.url",
            format!(
                "`artifacts.url` must be `s3://BUCKET[/PREFIX]` or `file:///ABSOLUTE/PATH`, found `{}`: {why}",
                mask_url(url)
            ),
            "for example `s3://my-bucket/rvbbit` or `file:///var/lib/rvbbit/artifacts`; remove `[artifacts] url` when no registry is used",
        );
    }
    if let Some(endpoint) = &artifacts.endpoint
        && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
    {
        bad(
            "artifacts.endpoint",
            format!(
                "`artifacts.endpoint` must be an http:// or https:// URL, found `{}`",
                mask_url(endpoint)
            ),
            "for example `http://127.0.0.1:8333` (plain HTTP also needs `allow_http = true`)",
        );
    }
    for (key, value) in [
        ("artifacts.max_bundle_files", artifacts.max_bundle_files),
        ("artifacts.max_bundle_bytes", artifacts.max_bundle_bytes),
        ("artifacts.timeout_seconds", artifacts.timeout_seconds),
    ] {
        if value == 0 {
            bad(
                key,
                format!("`{key}` must be at least 1"),
                "see docs/registry.md for the defaults",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::artifacts_url_problem;

    #[test]
    fn artifacts_urls_are_s3_buckets_or_absolute_files() {
        assert_eq!(artifacts_url_problem("s3://bucket/prefix/x"), None);
        assert_eq!(artifacts_url_problem("file:///var/lib/rvbbit"), None);
        assert!(artifacts_url_problem("s3://").is_some());
        assert!(artifacts_url_problem("s3://Bucket_X").is_some());
        assert!(artifacts_url_problem("s3://key:secret@bucket").is_some());
        assert!(artifacts_url_problem("file://relative").is_some());
        assert!(artifacts_url_problem("file:///a/../b").is_some());
        assert!(artifacts_url_problem("gs://bucket").is_some());
        assert!(artifacts_url_problem("bucket").is_some());
    }
}
