//! What the commands that run cascades share (`rvbbit run`, `rvbbit resume`, `rvbbit sql`): the store
//! with its buffered event writer (the provider is `run::provider`).

use std::sync::Arc;

use rvbbit_core::{Config, codes};
use rvbbit_store::{Store, Writer, WriterOptions, WriterStats};
use serde::Serialize;

use super::Coded;
use crate::output;

/// Open the configured store and spawn its writer. A store that cannot be opened does not stop the
/// command: a warning is printed and every event spills to `.rvbbit/spill/` (RVB-S003 at the end).
/// With `[store.events] url`, the writer also sends every batch of events to that sink
/// ([`super::sink::writer_sink`]); a sink that fails never fails the command.
pub(crate) async fn store_writer(config: &Config) -> (Writer, Option<Arc<dyn Store>>) {
    let base = std::env::current_dir().unwrap_or_default();
    let mut spill = WriterOptions::new(base.join(".rvbbit").join("spill"));
    if let Some(url) = &config.store.events.url {
        spill.sink = super::sink::writer_sink(url, &base).await;
    }
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

/// What became of a command's records: the `recording` object of the JSON outcome, and the failure
/// that decides the exit code when the store does not hold everything (docs/store.md, "Nothing lost
/// silently").
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct Recording {
    /// Records (events and session updates) the writer accepted.
    pub(crate) accepted: u64,
    /// Events newly stored.
    pub(crate) events_stored: u64,
    /// Records written to spill files instead (they wait for `rvbbit db replay`).
    pub(crate) spilled: u64,
    /// Records neither stored nor spilled.
    pub(crate) lost: u64,
    /// The spill files written.
    pub(crate) spill_files: Vec<String>,
    /// Why records were lost or spilled.
    pub(crate) error: Option<String>,
}

impl Recording {
    /// The recording of a writer that shut down with `stats`.
    pub(crate) fn of(stats: &WriterStats) -> Self {
        Recording {
            accepted: stats.accepted,
            events_stored: stats.events_written,
            spilled: stats.spilled,
            lost: stats.lost,
            spill_files: stats
                .spill_files
                .iter()
                .map(|p| p.display().to_string())
                .collect(),
            error: stats.lost_reason.clone().or_else(|| stats.last_error.clone()),
        }
    }

    /// `lost` or `spilled` when the store does not hold everything, else `None`.
    pub(crate) fn status(&self) -> Option<&'static str> {
        if self.lost > 0 {
            Some("lost")
        } else if self.spilled > 0 {
            Some("spilled")
        } else {
            None
        }
    }

    /// The failure to report when the store does not hold everything `what` recorded (such as
    /// "session quiet-heron-…"): RVB-S008 when records were lost, RVB-S003 when they were spilled. Both
    /// exit 5: a script must not mistake a run the store does not fully hold for a finished one.
    pub(crate) fn failure(&self, what: &str) -> Option<Coded> {
        let reason = self.error.clone().unwrap_or_else(|| "unknown".into());
        if self.lost > 0 {
            let also = if self.spilled > 0 {
                format!("; {} more were spilled to {}", self.spilled, self.files())
            } else {
                String::new()
            };
            return Some(Coded {
                code: codes::S_LOST,
                message: format!(
                    "{} of {} record(s) of {what} were lost: neither the store nor a spill file could take them{also}",
                    self.lost, self.accepted
                ),
                hint: "free disk space or make the store's directory and `.rvbbit/` writable (`rvbbit doctor` names the file), then run again; the store does not hold this run completely"
                    .into(),
                causes: vec![reason],
            });
        }
        if self.spilled > 0 {
            return Some(Coded {
                code: codes::S_SPILLED,
                message: format!(
                    "{} of {} record(s) of {what} were spilled to {} because the store failed",
                    self.spilled,
                    self.accepted,
                    self.files()
                ),
                hint: "fix the store (`rvbbit doctor`), then run `rvbbit db replay`: it loads every spill file exactly once"
                    .into(),
                causes: vec![reason],
            });
        }
        None
    }

    fn files(&self) -> String {
        match self.spill_files.as_slice() {
            [] => ".rvbbit/spill/".into(),
            files => files.join(", "),
        }
    }
}

/// Settings of the SQL door from configuration: concurrency from `provider.max_concurrency`, the default
/// model, the working directory as base for relative cascade paths, the configured roots, the
/// `[sql.tables]` registrations and the `limits.sql_*` / `limits.pgwire_connections` limits.
pub(crate) fn sql_settings(config: &Config) -> rvbbit_sql::Settings {
    let mut settings = rvbbit_sql::Settings::new(std::env::current_dir().unwrap_or_default());
    settings.concurrency = config.provider.max_concurrency.max(1) as usize;
    settings.default_model = config.default_model.clone();
    settings.embed_model.clone_from(&config.default_embed_model);
    settings.roots = config.roots.clone();
    settings.tables = config.sql.tables.clone();
    let limits = &config.limits;
    settings.limits.expression_depth = limits.sql_expression_depth;
    settings.limits.statements = limits.sql_statements;
    settings.limits.query_bytes = limits.sql_query_bytes;
    settings.limits.operator_files = limits.sql_operator_files;
    settings.limits.operator_bytes = limits.sql_operator_bytes;
    settings.limits.connections = limits.pgwire_connections;
    settings.limits.copy_bytes = limits.pgwire_copy_bytes;
    settings.limits.cursors = limits.pgwire_cursors;
    // Distributed SQL (`RVBBIT MAP … WITH (distributed = true)`) enqueues on `[queue]`.
    settings.queue = config.queue.url.clone().map(|url| rvbbit_sql::QueueSettings {
        url,
        options: super::queue::options(config, false),
    });
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

/// An engine over `registry` set up as the configuration says for a command that runs cascades: the
/// provider, the writer, the default model, the cascade roots, the limits and the costs. Callers add
/// what is theirs (store, sandbox, human answers, heartbeat).
pub(crate) fn configured_engine(
    registry: rvbbit_engine::tools::Registry,
    config: &Config,
    provider: Arc<dyn rvbbit_llm::Provider>,
    writer: rvbbit_store::WriterHandle,
) -> rvbbit_engine::Engine {
    rvbbit_engine::Engine::new(registry)
        .with_provider(provider)
        .with_writer(writer)
        .with_default_model(config.default_model.clone())
        .with_roots(config.roots.clone())
        .with_limits(config.limits.clone())
        .with_costs(config.costs.clone())
}

/// Build the SQL runtime of `rvbbit serve sql`: the configured provider, the store and its writer, the
/// `sql_data` tool and [`served_sql_settings`].
pub(crate) async fn sql_runtime(config: &Config) -> Result<SqlParts, super::Failure> {
    use rvbbit_engine::Engine;
    use rvbbit_engine::tools::Registry;

    let provider = super::run::provider(config, None, None).await?;
    let (writer, store) = store_writer(config).await;
    let mut registry = Registry::builtin();
    let batch_tables = rvbbit_sql::register_tools(&mut registry);
    let engine = Engine::new(registry)
        .with_provider(provider)
        .with_writer(writer.handle())
        .with_default_model(config.default_model.clone())
        .with_limits(config.limits.clone())
        .with_costs(config.costs.clone());
    let runtime = rvbbit_sql::SqlRuntime::new(
        engine,
        store.clone(),
        Some(writer.handle()),
        served_sql_settings(config),
        batch_tables,
    );
    let runtime = match runtime {
        Ok(r) => super::sink::sql_reading_sink(r, config.store.events.url.as_deref()).await,
        Err(e) => Err(e),
    }
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
