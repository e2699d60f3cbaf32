use std::path::{Path, PathBuf};
use std::sync::Arc;

use rvbbit_cascade::model::Cascade;
use rvbbit_cascade::{Catalog, Severity, validate};
use rvbbit_core::{EventKind, SessionId};
use rvbbit_engine::tools::Registry;
use rvbbit_engine::{Engine, Outcome, RunRequest};
use rvbbit_llm::{Client, ProviderSettings};
use rvbbit_store::{EventFilter, Store, StoredEvent, Writer, WriterOptions};
use serde_json::Value;
use tempfile::TempDir;

pub const CORPUS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/corpus/rvbbit-2025-12-25/examples"
);

/// Load and validate a cascade file; validation errors fail the test.
pub fn load(path: &Path) -> Cascade {
    load_allowing(path, &[])
}

/// [`load`], where errors of the `allowed` codes are expected (a feature the run refuses, RVB-E003, which
/// validation reports too) and asserted to be there.
pub fn load_allowing(path: &Path, allowed: &[&str]) -> Cascade {
    let mut catalog = Catalog::builtin();
    Registry::builtin().fill_catalog(&mut catalog);
    let report = validate::validate_file(path, &mut catalog, &validate::Options::default());
    let errors: Vec<_> = report
        .diagnostics()
        .iter()
        .filter(|d| d.severity == Severity::Error && !allowed.contains(&d.code.code))
        .map(|d| d.message.clone())
        .collect();
    for code in allowed {
        assert!(
            report.diagnostics().iter().any(|d| d.code.code == *code),
            "{} should be reported with {code} by validation",
            path.display()
        );
    }
    assert!(
        errors.is_empty(),
        "{} does not validate: {errors:?}",
        path.display()
    );
    report
        .loaded
        .document
        .and_then(|d| d.cascade().cloned())
        .expect("a cascade")
}

pub fn corpus(name: &str) -> Cascade {
    load(&PathBuf::from(CORPUS).join(name))
}

/// A cascade from YAML text (written to a temp file so validation sees a path).
pub fn yaml(text: &str) -> Cascade {
    yaml_allowing(text, &[])
}

/// [`yaml`] with the validation errors of the `allowed` codes expected (see [`load_allowing`]).
pub fn yaml_allowing(text: &str, allowed: &[&str]) -> Cascade {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("cascade.yaml");
    std::fs::write(&path, text).unwrap();
    load_allowing(&path, allowed)
}

/// A real SQLite store and writer in a temp dir.
pub struct Harness {
    pub _dir: TempDir,
    pub store: Arc<dyn Store>,
    pub writer: Option<Writer>,
}

impl Harness {
    pub async fn new() -> Harness {
        let dir = TempDir::new().unwrap();
        let store = rvbbit_store::open("sqlite://rvbbit.db", dir.path())
            .await
            .unwrap();
        let writer = Writer::spawn(store.clone(), WriterOptions::new(dir.path().join("spill")));
        Harness {
            _dir: dir,
            store,
            writer: Some(writer),
        }
    }

    pub fn engine(&self) -> Engine {
        Engine::new(Registry::builtin())
            .with_writer(self.writer.as_ref().unwrap().handle())
            .with_heartbeat(self.store.clone(), std::time::Duration::from_millis(50))
    }

    /// An engine whose provider is a real client pointed at `base_url` (the testkit server).
    pub fn llm_engine(&self, base_url: &str) -> Engine {
        let mut settings = ProviderSettings::new(base_url).with_api_key("test-key");
        settings.retry.max_retries = 0;
        settings.default_model = "test/model".into();
        let client = Client::new(settings).unwrap();
        self.engine()
            .with_provider(Arc::new(client))
            .with_default_model("test/model")
    }

    pub async fn run(&self, engine: &Engine, cascade: Cascade, input: Value) -> Outcome {
        let outcome = engine.run(RunRequest::new(cascade).with_input(input)).await;
        self.writer.as_ref().unwrap().handle().flush().await.unwrap();
        outcome
    }

    pub async fn events(&self, session: &SessionId) -> Vec<StoredEvent> {
        self.store
            .events(&EventFilter {
                session_id: Some(session.clone()),
                ..EventFilter::default()
            })
            .await
            .unwrap()
    }

    pub async fn kinds(&self, session: &SessionId) -> Vec<EventKind> {
        self.events(session)
            .await
            .into_iter()
            .map(|e| e.event.kind)
            .collect()
    }

    pub async fn count(&self, session: &SessionId, kind: EventKind) -> usize {
        self.kinds(session)
            .await
            .into_iter()
            .filter(|k| *k == kind)
            .count()
    }
}
