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
/// model, the working directory as base for relative cascade paths, the configured roots and the
/// `[sql.tables]` registrations.
pub(crate) fn sql_settings(config: &Config) -> rvbbit_sql::Settings {
    let mut settings = rvbbit_sql::Settings::new(std::env::current_dir().unwrap_or_default());
    settings.concurrency = config.provider.max_concurrency.max(1) as usize;
    settings.default_model = config.default_model.clone();
    settings.roots = config.roots.clone();
    settings.tables = config.sql.tables.clone();
    settings
}

/// [`sql_settings`] for the network doors (`rvbbit serve`, `rvbbit serve sql`): statements may read only
/// files under the working directory and the roots, name no URLs and write no files (RVB-Q005).
pub(crate) fn served_sql_settings(config: &Config) -> rvbbit_sql::Settings {
    let mut settings = sql_settings(config);
    settings.confine_files = true;
    settings
}

/// What a SQL door needs: the writer (shut it down at the end), the store (None when it cannot be
/// opened) and the SQL runtime over an engine with the configured provider.
pub(crate) struct SqlParts {
    pub(crate) writer: Writer,
    pub(crate) store: Option<Arc<dyn Store>>,
    pub(crate) runtime: rvbbit_sql::SqlRuntime,
}

/// Build the SQL runtime of `rvbbit serve sql`: the configured provider, the store and its writer, the
/// `sql_data` tool and [`served_sql_settings`].
pub(crate) async fn sql_runtime(config: &Config) -> Result<SqlParts, super::Failure> {
    use rvbbit_engine::Engine;
    use rvbbit_engine::tools::Registry;

    let provider = super::run::provider(config, None, None).await?;
    let (writer, store) = store_writer(config).await;
    let mut registry = Registry::builtin();
    rvbbit_sql::register_tools(&mut registry);
    let engine = Engine::new(registry)
        .with_provider(provider)
        .with_writer(writer.handle())
        .with_default_model(config.default_model.clone())
        .with_limits(config.limits.clone());
    let runtime = rvbbit_sql::SqlRuntime::new(
        engine,
        store.clone(),
        Some(writer.handle()),
        served_sql_settings(config),
    )
    .map_err(|e| {
        super::Failure::Coded(super::Coded {
            code: e.code(),
            message: e.to_string(),
            hint: e.hint(),
            causes: Vec::new(),
        })
    })?;
    Ok(SqlParts {
        writer,
        store,
        runtime,
    })
}
