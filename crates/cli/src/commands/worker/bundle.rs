//! A job that names a bundle (`Job::bundle`, from `rvbbit submit registry:…` or `submit FILE` with
//! `[artifacts]` configured): fetch it from the artifact store, checked, into the bundle cache, and
//! prepare its entry as `rvbbit run registry:sha256:HEX` would (the bundle's roots, no other).
//!
//! | what happened                                   | the job is                                   |
//! |-------------------------------------------------|----------------------------------------------|
//! | no such bundle in the store, or one that fails its checks (paths, hashes, limits) | dead-lettered at once: no redelivery can fix it |
//! | the store unreachable, or this worker has no `[artifacts] url` | handed back (nak with delay) |
//! | the bundle's cascade is invalid                 | as any job that cannot start                 |

use std::path::PathBuf;

use rvbbit_cascade::Severity;
use rvbbit_engine::RunRequest;
use rvbbit_engine::tools::Registry;
use rvbbit_store::Job;
use rvbbit_store::artifacts::{BundleRef, is_hex_hash};

use super::Context;
use super::job::Verdict;

/// Fetch and prepare the bundle `hash` (`sha256:HEX`) of `job`: the registry, the request and the
/// roots to run with, or how the delivery must end.
pub(super) async fn prepare(
    ctx: &Context,
    job: &Job,
    hash: &str,
) -> Result<(Registry, RunRequest, Vec<PathBuf>), Verdict> {
    let hex = match hash.strip_prefix("sha256:") {
        Some(hex) if is_hex_hash(hex) => hex.to_owned(),
        _ => {
            return Err(Verdict::GiveUp(format!(
                "the job names the bundle `{hash}`, which is not a bundle hash (sha256:HEX)"
            )));
        }
    };
    let artifacts = crate::commands::registry::open(&ctx.config).map_err(|_| {
        Verdict::NotStarted(format!(
            "the job needs bundle {hash}, but this worker has no usable artifact store (`[artifacts] url`)"
        ))
    })?;
    let unpacked = artifacts
        .fetch(&hex, &ctx.config.artifacts.cache_dir)
        .await
        .map_err(|e| {
            let why = format!("bundle {hash} from the artifact store {}: {e}", artifacts.url());
            match e {
                rvbbit_store::Error::BundleNotFound { .. }
                | rvbbit_store::Error::BundleRefused { .. }
                | rvbbit_store::Error::BundleLimit { .. } => Verdict::GiveUp(why),
                _ => Verdict::HandBack(why),
            }
        })?;
    tracing::info!(bundle = %unpacked.hash, fetched = unpacked.fetched, "Bundle ready.");
    let mut config = ctx.config.clone();
    config.roots = unpacked.roots.clone();
    let entry = unpacked.entry.clone();
    let registry = crate::commands::run::run_registry(&entry, &config);
    let loaded = rvbbit_cascade::load_file_with(&entry, &config.limits);
    let report = crate::commands::run::validate_for_run(loaded, &registry, &config);
    let shown = BundleRef::Hash(hex).to_string();
    if let Some(d) = report
        .diagnostics()
        .iter()
        .find(|d| d.severity == Severity::Error)
    {
        return Err(Verdict::NotStarted(format!(
            "the cascade {} of {shown} is invalid: {} [{}]",
            unpacked.manifest.entry, d.message, d.code.code
        )));
    }
    let Some(cascade) = report.loaded.document.as_ref().and_then(|d| d.cascade().cloned()) else {
        return Err(Verdict::GiveUp(format!(
            "{} of {shown} is a tool definition, not a cascade",
            unpacked.manifest.entry
        )));
    };
    let mut request = RunRequest::new(cascade);
    request.input = job.input.clone();
    request.cascade_file = Some(entry);
    request.cascade_text = report.loaded.source.as_ref().map(|s| s.text().to_owned());
    Ok((registry, request, config.roots))
}
