//! The cascade registry on object storage: `rvbbit cascade push`, and the `registry:NAME[:VERSION]` /
//! `registry:sha256:HEX` references that `rvbbit run` and `rvbbit submit` accept (docs/registry.md).
//! The store's side (bundles, names, checks) is `rvbbit_store::artifacts`; this module collects a
//! cascade's files and renders.

mod collect;
pub(crate) mod push;

use std::path::{Path, PathBuf};

use rvbbit_core::codes;
use rvbbit_store::artifacts::{ArtifactOptions, Artifacts, BundleRef, Unpacked};

use super::storage::fail;
use super::{Coded, Failure};

/// `rvbbit cascade` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Store CASCADE with everything it references (tools, sub-cascades, includes) as a
    /// content-addressed bundle in the artifact store (`artifacts.url`), and name it.
    ///
    /// Prints the bundle's hash (`sha256:…`). Identical content gives the same hash and uploads
    /// nothing; a changed byte gives a new hash. `--name NAME:VERSION` names it (VERSION defaults to
    /// `latest`; every push with a name also moves NAME:latest); a version other than `latest` already
    /// naming other content exits 5 (RVB-S024) unless --force. Run it anywhere with `rvbbit run
    /// registry:NAME:VERSION`. See docs/registry.md.
    Push(push::Args),
}

/// Run an `rvbbit cascade` subcommand.
pub(crate) fn run(cli: &crate::cli::Cli, cmd: &Command, out: crate::output::Out) -> super::Outcome {
    match cmd {
        Command::Push(args) => push::run(cli, args, out),
    }
}

/// The reference in a cascade argument written `registry:…`, if it is one.
///
/// Errors: a malformed reference (exit 6).
pub(crate) fn reference(arg: &Path) -> Result<Option<BundleRef>, Failure> {
    let Some(rest) = arg.to_str().and_then(|s| s.strip_prefix("registry:")) else {
        return Ok(None);
    };
    BundleRef::parse(rest).map(Some).map_err(|why| {
        Failure::Coded(Coded {
            code: codes::C_USAGE,
            message: format!("`registry:{rest}`: {why}"),
            hint: "write `registry:NAME`, `registry:NAME:VERSION` or `registry:sha256:HEX`".into(),
            causes: Vec::new(),
        })
    })
}

/// Open the artifact store of `config` (credentials from `[artifacts]` or the AWS variables).
///
/// Errors: `artifacts.url` not set (exit 6), a store that cannot work as configured (exit 6).
pub(crate) fn open(config: &rvbbit_core::Config) -> Result<Artifacts, Failure> {
    let Some(options) = ArtifactOptions::from_config(&config.artifacts, |k| std::env::var(k).ok()) else {
        return Err(Failure::Coded(Coded {
            code: codes::C_INVALID,
            message: "no artifact store is configured (`artifacts.url` is not set)".into(),
            hint: "set `[artifacts] url = \"s3://BUCKET/PREFIX\"` (or `file:///ABSOLUTE/PATH`) in rvbbit.toml, or \
                   RVBBIT_ARTIFACTS_URL; see docs/registry.md"
                .into(),
            causes: Vec::new(),
        }));
    };
    Artifacts::open(&options).map_err(fail)
}

/// Fetch the bundle `reference` names into the bundle cache (`artifacts.cache_dir`), checked.
pub(crate) async fn fetch(config: &rvbbit_core::Config, reference: &BundleRef) -> Result<Unpacked, Failure> {
    let artifacts = open(config)?;
    let hex = artifacts.resolve(reference).await.map_err(fail)?;
    artifacts
        .fetch(&hex, &config.artifacts.cache_dir)
        .await
        .map_err(fail)
}

/// For `rvbbit run registry:…`: fetch the bundle, point `config.roots` at the bundle's roots (and no
/// other), and return the cascade file to run. `None` for a plain file argument.
pub(crate) fn prepare_run(arg: &Path, config: &mut rvbbit_core::Config) -> Result<Option<PathBuf>, Failure> {
    let Some(reference) = reference(arg)? else {
        return Ok(None);
    };
    let unpacked = super::storage::block_on(fetch(config, &reference))?;
    tracing::info!(bundle = %unpacked.hash, fetched = unpacked.fetched, dir = %unpacked.root.display(), "Bundle ready.");
    config.roots = unpacked.roots.clone();
    Ok(Some(unpacked.entry))
}

/// What `rvbbit submit CASCADE` enqueues when a bundle is involved: for `registry:…`, the fetched
/// bundle's cascade (validated here, with the bundle's roots); for a file with `artifacts.url` set, the
/// file pushed as a bundle first (so workers run it with its tools, sub-cascades and includes). The
/// cascade's name, its text and the bundle's hash; `None` for a file without an artifact store (the job
/// then carries the text alone).
pub(crate) fn submission(
    arg: &Path,
    config: &rvbbit_core::Config,
) -> Result<Option<(String, String, String)>, Failure> {
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|e| {
            Failure::Coded(Coded {
                code: codes::V_READ,
                message: format!("`{}` cannot be read: {e}", path.display()),
                hint: "check the path".into(),
                causes: Vec::new(),
            })
        })
    };
    if let Some(reference) = reference(arg)? {
        let unpacked = super::storage::block_on(fetch(config, &reference))?;
        let mut bundle_config = config.clone();
        bundle_config.roots = unpacked.roots.clone();
        let registry = super::run::run_registry(&unpacked.entry, &bundle_config);
        let loaded = rvbbit_cascade::load_file_with(&unpacked.entry, &bundle_config.limits);
        let report = super::run::validate_for_run(loaded, &registry, &bundle_config);
        if let Some(d) = report
            .diagnostics()
            .iter()
            .find(|d| d.severity == rvbbit_cascade::Severity::Error)
        {
            return Err(Failure::Coded(Coded {
                code: d.code,
                message: format!(
                    "the cascade {} of {reference} is invalid: {}; nothing was submitted",
                    unpacked.manifest.entry, d.message
                ),
                hint: "push a fixed version with `rvbbit cascade push`".into(),
                causes: Vec::new(),
            }));
        }
        let text = read(&unpacked.entry)?;
        return Ok(Some((unpacked.manifest.entry, text, unpacked.hash)));
    }
    if config.artifacts.url.is_none() {
        return Ok(None);
    }
    let report = push::push_file(arg, config, None, false)?;
    let name = arg
        .file_name()
        .map_or_else(|| "cascade.yaml".to_owned(), |n| n.to_string_lossy().into_owned());
    Ok(Some((name, read(arg)?, report.pushed.hash)))
}

/// With `artifacts.url` set, store a completed run's final output at `runs/<session id>/output.json`;
/// where it went. A store that fails adds a warning to the outcome (the run itself completed and is in
/// the event store) instead of failing the command.
pub(crate) async fn store_output(
    config: &rvbbit_core::Config,
    outcome: &mut rvbbit_engine::Outcome,
) -> Option<String> {
    config.artifacts.url.as_ref()?;
    if outcome.status != rvbbit_core::SessionStatus::Completed {
        return None;
    }
    let stored = match open(config) {
        Ok(artifacts) => artifacts
            .put_output(&outcome.session_id.to_string(), &outcome.output)
            .await
            .map_err(|e| format!("[{}] {e}", e.code().code)),
        Err(Failure::Coded(c)) => Err(format!("[{}] {}", c.code.code, c.message)),
        Err(_) => Err("the artifact store cannot be opened".into()),
    };
    match stored {
        Ok(at) => Some(at),
        Err(why) => {
            outcome
                .warnings
                .push(format!("the run's output was not stored as an artifact: {why}"));
            None
        }
    }
}

/// A digest of everything a run of `cascade` reads through the cascade language (its bundle, as
/// `rvbbit cascade push` collects it: the cascade, its tools, includes and sub-cascades), for result
/// cache keys that change when any of them changes.
///
/// Errors: as collecting a bundle (a file outside its directory, past `artifacts.max_bundle_*`, unreadable).
pub(crate) fn bundle_digest(cascade: &Path, config: &rvbbit_core::Config) -> Result<String, Failure> {
    use sha2::{Digest, Sha256};
    let limits = rvbbit_store::artifacts::BundleLimits {
        max_files: config.artifacts.max_bundle_files,
        max_bytes: config.artifacts.max_bundle_bytes,
    };
    let collected = collect::collect(cascade, config, limits)?;
    let mut h = Sha256::new();
    for (path, real) in &collected.files {
        let bytes = std::fs::read(real).map_err(|e| {
            Failure::Coded(Coded {
                code: codes::V_READ,
                message: format!("`{}` cannot be read: {e}", real.display()),
                hint: "check the file's permissions".into(),
                causes: Vec::new(),
            })
        })?;
        h.update(path.as_bytes());
        h.update(b"\0");
        h.update(Sha256::digest(&bytes));
    }
    Ok(hex::encode(h.finalize()))
}
