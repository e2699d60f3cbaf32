//! Integration tests of rvbbit-server: the real server on a loopback port, a real SQLite store, real
//! runs through the engine (shell tools), and reqwest as the client.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    unreachable_pub
)]

mod agents;
mod api;
mod artifacts;
mod batches;
mod browser;
mod channels;
mod hostile;
mod pictures;
mod security;
mod sql;
mod stream;
mod studio;
mod traversal;
mod waits;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rvbbit_engine::Engine;
use rvbbit_engine::tools::Registry;
use rvbbit_server::{Server, ServerConfig};
use rvbbit_store::{Store, Writer, WriterOptions};
use serde_json::Value;
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Three deterministic cells.
pub const THREE: &str = r#"
cascade_id: three
inputs_schema:
  name: who
cells:
  - name: scores
    tool: bash_data
    inputs:
      script: |
        echo "player,score"
        echo "ada,95"
        echo "linus,92"
      output_format: csv
  - name: remember
    tool: set_state
    inputs: {key: best, value: "{{ outputs.scores.rows | map(attribute='score') | max }}"}
  - name: greet
    tool: linux_shell
    inputs:
      command: "echo 'Hello {{ input.name }}, best {{ state.best }}'"
"#;

/// Two cells that take a while, so a stream can watch them live.
pub const SLOW: &str = r#"
cascade_id: slow
cells:
  - name: first
    tool: linux_shell
    inputs: {command: "sleep 0.4; echo one"}
  - name: second
    tool: linux_shell
    inputs: {command: "sleep 0.4; echo two"}
"#;

/// One LLM cell.
pub const HELLO_LLM: &str = r#"
cascade_id: hello_llm
inputs_schema:
  name: who to greet
cells:
  - name: greet
    instructions: "Write a one-line greeting for {{ input.name }}."
"#;

/// A cascade that hands off to a cell that does not exist.
pub const BAD: &str = "cascade_id: bad\ncells:\n  - name: a\n    tool: linux_shell\n    inputs: {command: echo}\n    handoffs: [nowhere]\n";

thread_local! {
    /// How long a run of the next started server waits in process for a human answer.
    pub static ANSWER_WAIT: std::cell::Cell<Duration> = const { std::cell::Cell::new(Duration::from_secs(30)) };
    /// How often a run of the next started server polls the store for that answer.
    pub static ANSWER_EVERY: std::cell::Cell<Duration> = const { std::cell::Cell::new(Duration::from_millis(50)) };
}

/// A deterministic cell whose output a human must confirm, then one more cell.
pub const CONFIRM: &str = r#"
cascade_id: confirm
cells:
  - name: draft
    tool: linux_shell
    inputs: {command: "echo draft-1"}
    human_input: {type: confirmation, prompt: "Ship {{ output.stdout | trim }}?"}
  - name: publish
    tool: set_state
    inputs: {key: published, value: "yes"}
"#;

pub struct Running {
    pub dir: TempDir,
    pub base: String,
    pub store: Arc<dyn Store>,
    pub http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
    writer: Option<Writer>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl Running {
    /// A server over a temp root holding `three.yaml`, `slow.yaml`, `bad.yaml` and `nested/three.yaml`.
    pub async fn start(configure: impl FnOnce(ServerConfig) -> ServerConfig) -> Running {
        Running::start_on("sqlite://rvbbit.db", configure).await
    }

    /// Like [`Running::start`], with the store at `store_url` (such as a PostgreSQL database).
    pub async fn start_on(store_url: &str, configure: impl FnOnce(ServerConfig) -> ServerConfig) -> Running {
        let dir = TempDir::new().unwrap();
        let root = dir.path().join("cascades");
        std::fs::create_dir_all(root.join("nested")).unwrap();
        for (name, text) in [
            ("three.yaml", THREE),
            ("slow.yaml", SLOW),
            ("bad.yaml", BAD),
            ("nested/three.yaml", THREE),
            ("confirm.yaml", CONFIRM),
        ] {
            std::fs::write(root.join(name), text).unwrap();
        }
        Running::start_with(dir, root.as_path().to_owned(), configure, None, store_url).await
    }

    /// Like [`Running::start`], with LLM cells answered by the OpenAI-compatible server at `llm`.
    pub async fn start_llm(llm: &str, configure: impl FnOnce(ServerConfig) -> ServerConfig) -> Running {
        let dir = TempDir::new().unwrap();
        let root = dir.path().join("cascades");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("hello.yaml"), HELLO_LLM).unwrap();
        Running::start_with(dir, root, configure, Some(llm.to_owned()), "sqlite://rvbbit.db").await
    }

    pub async fn start_in(
        dir: TempDir,
        root: std::path::PathBuf,
        configure: impl FnOnce(ServerConfig) -> ServerConfig,
    ) -> Running {
        Running::start_with(dir, root, configure, None, "sqlite://rvbbit.db").await
    }

    async fn start_with(
        dir: TempDir,
        root: std::path::PathBuf,
        configure: impl FnOnce(ServerConfig) -> ServerConfig,
        llm: Option<String>,
        store_url: &str,
    ) -> Running {
        let store = rvbbit_store::open(store_url, dir.path()).await.unwrap();
        let writer = Writer::spawn(store.clone(), WriterOptions::new(dir.path().join("spill")));
        let wait = ANSWER_WAIT.with(|w| w.get());
        let every = ANSWER_EVERY.with(|w| w.get());
        let mut registry = Registry::builtin();
        let batch_tables = rvbbit_sql::register_tools(&mut registry);
        let suspend = rvbbit_engine::CancellationToken::new();
        let mut engine = Engine::new(registry)
            .with_writer(writer.handle())
            .with_heartbeat(store.clone(), Duration::from_millis(200))
            .with_store(store.clone())
            .with_human(Arc::new(
                rvbbit_engine::human::StoreAnswers::new(store.clone(), every, Some(wait))
                    .with_suspend(suspend.clone()),
            ));
        if let Some(url) = llm {
            let mut settings = rvbbit_llm::ProviderSettings::new(url).with_api_key("test-key");
            settings.retry.max_retries = 0;
            let client = rvbbit_llm::Client::new(settings).unwrap();
            engine = engine
                .with_provider(Arc::new(client))
                .with_default_model("openai/gpt-4o-mini");
        }
        let mut sql_settings = rvbbit_sql::Settings::new(root.clone());
        sql_settings.default_model = "openai/gpt-4o-mini".into();
        // As `rvbbit serve` sets it: the network door's file rule.
        sql_settings.confine_files = true;
        let sql = rvbbit_sql::SqlRuntime::new(
            engine.clone(),
            Some(store.clone()),
            Some(writer.handle()),
            sql_settings,
            batch_tables,
        )
        .unwrap();
        let config = configure(ServerConfig::new(vec![root]));
        let server = Server::new(store.clone(), engine, config)
            .with_writer(writer.handle())
            .with_sql(sql)
            .with_suspend_waiting(suspend);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(listener, async move {
            // Dropped sender or a stop signal: either way the server stops.
            let _ = rx.await;
        }));
        Running {
            dir,
            base,
            store,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            stop: Some(tx),
            task: Some(task),
            writer: Some(writer),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn root(&self) -> std::path::PathBuf {
        self.dir.path().join("cascades")
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self.http.get(self.url(path)).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self.http.post(self.url(path)).json(body).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Stop the server; returns once `serve` returned.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.stop.take() {
            // The server may already have stopped on its own.
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
        if let Some(w) = self.writer.take() {
            w.shutdown().await.unwrap();
        }
    }

    /// Wait until the stored session reaches a finished status.
    pub async fn wait_finished(&self, id: &str) -> Value {
        for _ in 0..200 {
            let (status, body) = self.get(&format!("/api/v1/sessions/{id}")).await;
            if status == 200
                && matches!(
                    body["status"].as_str(),
                    Some("completed" | "failed" | "cancelled")
                )
            {
                return body;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("session {id} did not finish");
    }
}

/// Every error body has exactly the documented keys, and never a server path.
pub fn assert_error_shape(body: &Value, code: &str, root: &Path) {
    let keys: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
    for k in ["error_id", "code", "message", "hint"] {
        assert!(keys.contains(&k), "{body}");
    }
    assert_eq!(body["code"], code, "{body}");
    assert!(body["error_id"].as_str().unwrap().starts_with("err_"));
    let text = body.to_string();
    assert!(
        !text.contains(&root.display().to_string()),
        "leaks the root: {text}"
    );
    assert!(!text.contains("/tmp/"), "leaks a path: {text}");
    assert!(
        !text.contains("panicked") && !text.contains("backtrace"),
        "{text}"
    );
}
