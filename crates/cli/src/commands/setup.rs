//! What the commands that run cascades share (`rvbbit run`, `rvbbit sql`): the provider built from
//! configuration and the store with its buffered event writer.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rvbbit_core::Config;
use rvbbit_llm::{Client, Limits, Provider, ProviderSettings, Recorder, ReplayProvider};
use rvbbit_store::{Store, Writer, WriterOptions};

use super::{Coded, Failure};
use crate::output;

/// Build the provider: the configured client, wrapped in a recorder when `record` is given, or a replay
/// of a recording when `replay` is given.
pub(crate) async fn provider(
    config: &Config,
    record: Option<&Path>,
    replay: Option<&Path>,
) -> Result<Arc<dyn Provider>, Failure> {
    if let Some(path) = replay {
        let replay = ReplayProvider::open(path).await.map_err(llm_failure)?;
        return Ok(Arc::new(replay));
    }
    let p = &config.provider;
    let mut settings = ProviderSettings::new(p.base_url.clone());
    settings.api_key_env = p.api_key_env.clone();
    let key = p
        .api_key
        .clone()
        .or_else(|| std::env::var(&p.api_key_env).ok())
        .filter(|k| !k.trim().is_empty());
    if let Some(key) = key {
        settings = settings.with_api_key(key);
    }
    settings.default_model = config.default_model.clone();
    settings.timeouts.total = Duration::from_secs(p.timeout_seconds.max(1));
    settings.retry.max_retries = p.max_retries;
    let mut limits = Limits::unlimited();
    if p.max_concurrency > 0 {
        limits = limits.with_max_concurrency(p.max_concurrency as usize);
    }
    if p.requests_per_minute > 0 {
        limits = limits.with_requests_per_minute(p.requests_per_minute);
    }
    if p.tokens_per_minute > 0 {
        limits = limits.with_tokens_per_minute(p.tokens_per_minute);
    }
    settings.limits = limits;
    let client = Client::new(settings).map_err(llm_failure)?;
    match record {
        Some(path) => Ok(Arc::new(
            Recorder::create(client, path).await.map_err(llm_failure)?,
        )),
        None => Ok(Arc::new(client)),
    }
}

/// An LLM error as a coded failure (exit 4).
pub(crate) fn llm_failure(e: rvbbit_llm::Error) -> Failure {
    let hint = e.hint();
    Failure::Coded(Coded::from_error(e.code(), &e, hint))
}

/// Open the configured store and spawn its writer. A store that cannot be opened does not stop the
/// command: a warning is printed and every event spills to `.rvbbit/spill/` (RVB-S003 at the end).
pub(crate) async fn store_writer(config: &Config) -> (Writer, Option<Arc<dyn Store>>) {
    let base = std::env::current_dir().unwrap_or_default();
    let spill = WriterOptions::new(base.join(".rvbbit").join("spill"));
    match rvbbit_store::open(&config.store.url, &base).await {
        Ok(store) => (Writer::spawn(store.clone(), spill), Some(store)),
        Err(e) => {
            output::stderr(&format!(
                "warning: the store cannot be opened ({e}); events go to .rvbbit/spill/\n"
            ));
            (Writer::spill_only(spill, e.to_string()), None)
        }
    }
}
