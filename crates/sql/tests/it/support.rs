use std::sync::Arc;
use std::time::Duration;

use rvbbit_core::{EventKind, SessionStatus};
use rvbbit_engine::Engine;
use rvbbit_engine::tools::Registry;
use rvbbit_llm::{Client, Limits, ProviderSettings};
use rvbbit_sql::datafusion::arrow::array::{Array, StringArray};
use rvbbit_sql::datafusion::arrow::compute::cast;
use rvbbit_sql::datafusion::arrow::datatypes::DataType;
use rvbbit_sql::{QueryResult, Settings, SqlRuntime};
use rvbbit_store::{EventFilter, SessionFilter, Store, StoredEvent, Writer, WriterOptions};
use tempfile::TempDir;

/// A SQL runtime over a real SQLite store, a writer and a client pointed at the testkit server.
pub struct Harness {
    pub dir: TempDir,
    pub store: Arc<dyn Store>,
    pub writer: Writer,
    pub runtime: SqlRuntime,
}

impl Harness {
    pub async fn new(base_url: &str, concurrency: usize) -> Harness {
        Harness::with_tables(base_url, concurrency, &[]).await
    }

    /// With `[sql.tables]` (name, location) entries; relative locations start at the harness directory.
    pub async fn with_tables(base_url: &str, concurrency: usize, tables: &[(&str, &str)]) -> Harness {
        Harness::configured(base_url, concurrency, tables, |_| {}).await
    }

    /// Like [`Harness::with_tables`], then `configure` adjusts the SQL settings (e.g. `confine_files`).
    pub async fn configured(
        base_url: &str,
        concurrency: usize,
        tables: &[(&str, &str)],
        configure: impl FnOnce(&mut Settings),
    ) -> Harness {
        let dir = TempDir::new().unwrap();
        let store = rvbbit_store::open("sqlite://rvbbit.db", dir.path())
            .await
            .unwrap();
        let writer = Writer::spawn(store.clone(), WriterOptions::new(dir.path().join("spill")));
        let mut provider = ProviderSettings::new(base_url).with_api_key("test-key");
        provider.retry.max_retries = 0;
        provider.default_model = "test/model".into();
        provider.limits = Limits::unlimited().with_max_concurrency(concurrency);
        let client = Client::new(provider).unwrap();
        let mut registry = Registry::builtin();
        let batch_tables = rvbbit_sql::register_tools(&mut registry);
        let engine = Engine::new(registry)
            .with_provider(Arc::new(client))
            .with_writer(writer.handle())
            .with_default_model("test/model");
        let mut settings = Settings::new(dir.path().to_path_buf());
        settings.concurrency = concurrency;
        settings.default_model = "test/model".into();
        settings.tables = tables
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        configure(&mut settings);
        let runtime = SqlRuntime::new(
            engine,
            Some(store.clone()),
            Some(writer.handle()),
            settings,
            batch_tables,
        )
        .unwrap();
        Harness {
            dir,
            store,
            writer,
            runtime,
        }
    }

    pub fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    /// Write `text` to `name` under the harness folder, creating its parent folders.
    pub fn write(&self, name: &str, text: &str) {
        let path = self.path(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    pub async fn flush(&self) {
        self.writer.handle().flush().await.unwrap();
    }

    pub async fn events(&self, caller: &str, kind: EventKind) -> Vec<StoredEvent> {
        self.flush().await;
        self.store
            .events(&EventFilter {
                caller_id: Some(caller.to_owned()),
                kind: Some(kind),
                ..EventFilter::default()
            })
            .await
            .unwrap()
    }

    pub async fn sessions(&self, caller: &str, status: Option<SessionStatus>) -> usize {
        self.flush().await;
        self.store
            .sessions(&SessionFilter {
                caller_id: Some(caller.to_owned()),
                status,
                limit: Some(100_000),
                ..SessionFilter::default()
            })
            .await
            .unwrap()
            .len()
    }
}

/// Column `col` of every row as optional text.
pub fn column(result: &QueryResult, col: usize) -> Vec<Option<String>> {
    let mut out = Vec::new();
    for batch in &result.batches {
        let text = cast(batch.column(col), &DataType::Utf8).unwrap();
        let text = text.as_any().downcast_ref::<StringArray>().unwrap();
        for i in 0..text.len() {
            out.push((!text.is_null(i)).then(|| text.value(i).to_owned()));
        }
    }
    out
}

pub const LATENCY: Duration = Duration::from_millis(200);
