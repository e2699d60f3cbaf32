//! What the commands that run cascades share (`rvbbit run`, `rvbbit resume`, `rvbbit sql`): the store
//! with its buffered event writer (the provider is `run::provider`).

use std::sync::Arc;

use rvbbit_core::Config;
use rvbbit_store::{Store, Writer, WriterOptions};

use crate::output;

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

/// Settings of the SQL door from configuration: concurrency from `provider.max_concurrency`, the default
/// model, the working directory as base for relative cascade paths, and the configured roots.
pub(crate) fn sql_settings(config: &Config) -> rvbbit_sql::Settings {
    let mut settings = rvbbit_sql::Settings::new(std::env::current_dir().unwrap_or_default());
    settings.concurrency = config.provider.max_concurrency.max(1) as usize;
    settings.default_model = config.default_model.clone();
    settings.roots = config.roots.clone();
    settings
}
