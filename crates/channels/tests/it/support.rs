use std::collections::BTreeMap;
use std::sync::Arc;

use rvbbit_agents::{Agent, Agents, Gates};
use rvbbit_cascade::model::Cascade;
use rvbbit_cascade::{Catalog, Severity, validate};
use rvbbit_channels::{Channels, Request};
use rvbbit_core::EventKind;
use rvbbit_core::config::{ChannelConfig, ChannelKind};
use rvbbit_engine::Engine;
use rvbbit_engine::tools::Registry;
use rvbbit_llm::{Client, ProviderSettings};
use rvbbit_store::{EventFilter, Store, StoredEvent, Writer, WriterOptions};
use rvbbit_testkit::chat::{FakeChat, mattermost_form};
use tempfile::TempDir;

pub const TOKEN: &str = "mm-outgoing-token";

pub const HELLO: &str = "cascade_id: hello_chat\ncells:\n  - name: greet\n    tool: set_state\n    inputs: {key: greeting, value: \"hello {{ input.name }}\"}\n";
/// Fails every time without a shell: an HTTP request to a closed loopback port.
pub const BROKEN: &str = "cascade_id: always_fails\ncells:\n  - name: fetch\n    tool: http_request\n    inputs: {url: \"http://127.0.0.1:9/nothing\", method: GET}\n";

pub struct Harness {
    pub _dir: TempDir,
    pub store: Arc<dyn Store>,
    pub writer: Writer,
    pub channels: Channels,
    pub agents: Option<Agents>,
}

fn agent_cascade(dir: &std::path::Path) -> Cascade {
    let path = dir.join("helper.yaml");
    std::fs::write(&path, AGENT).unwrap();
    let report = validate::validate_file(&path, &mut Catalog::builtin(), &validate::Options::default());
    assert!(
        report.diagnostics().iter().all(|d| d.severity != Severity::Error),
        "{:?}",
        report.diagnostics()
    );
    report.loaded.document.and_then(|d| d.cascade().cloned()).unwrap()
}

/// A Mattermost integration `ops` replying to `fake`, with chat control for `alice`.
pub fn mattermost(fake: &FakeChat) -> ChannelConfig {
    let mut c = ChannelConfig::new(ChannelKind::Mattermost);
    c.token = Some(TOKEN.into());
    c.outbound_url = Some(fake.mattermost_hook());
    c.control = true;
    c.allow_users = vec!["alice".into()];
    // Room for the tests' bursts; the rate-limit test sets the documented 30 a minute itself.
    c.rate_per_minute = 600;
    c.burst = 100;
    c
}

/// An agent answering every turn with one model call (the reply is the model's text).
/// The earlier turns of its conversation are in the prompt too (`input.history`).
pub const AGENT: &str = "cascade_id: helper_agent\ncells:\n  - name: reply\n    instructions: \"Answer: {{ input.messages | join(' | ') }} Earlier: {{ input.history }}\"\n";

impl Harness {
    pub async fn new(configs: BTreeMap<String, ChannelConfig>) -> Harness {
        Harness::build(configs, None).await
    }

    /// With agent `helper` answering through the scripted model at `llm_base`.
    pub async fn with_agent(configs: BTreeMap<String, ChannelConfig>, llm_base: &str) -> Harness {
        Harness::build(configs, Some(llm_base)).await
    }

    async fn build(configs: BTreeMap<String, ChannelConfig>, llm_base: Option<&str>) -> Harness {
        let dir = TempDir::new().unwrap();
        let roots = dir.path().join("cascades");
        std::fs::create_dir_all(&roots).unwrap();
        std::fs::write(roots.join("hello.yaml"), HELLO).unwrap();
        std::fs::write(roots.join("broken.yaml"), BROKEN).unwrap();
        std::fs::write(dir.path().join("secret.yaml"), HELLO).unwrap();
        let store = rvbbit_store::open("sqlite://rvbbit.db", dir.path())
            .await
            .unwrap();
        let writer = Writer::spawn(store.clone(), WriterOptions::new(dir.path().join("spill")));
        let gates = Gates::default();
        let mut engine = Engine::new(gates.wrap(&Registry::builtin()))
            .with_writer(writer.handle())
            .with_store(store.clone());
        let mut agents = None;
        if let Some(base) = llm_base {
            let mut settings = ProviderSettings::new(base).with_api_key("test-key");
            settings.retry.max_retries = 0;
            settings.default_model = "test/model".into();
            engine = engine
                .with_provider(Arc::new(Client::new(settings).unwrap()))
                .with_default_model("test/model");
            let a = Agents::new(engine.clone(), gates);
            a.add(Agent::new("helper", agent_cascade(dir.path()))).unwrap();
            agents = Some(a);
        }
        let channels = Channels::new(&configs, engine, agents.clone(), vec![roots]).unwrap();
        Harness {
            _dir: dir,
            store,
            writer,
            channels,
            agents,
        }
    }

    /// `text` from `user` on `integration` (local path), the reply.
    pub async fn say(&self, integration: &str, user: &str, text: &str) -> String {
        self.channels
            .command(Some(integration), user, text)
            .await
            .unwrap()
    }

    /// Every audit event of `kind`.
    pub async fn audit(&self, kind: EventKind) -> Vec<StoredEvent> {
        self.writer.handle().flush().await.unwrap();
        self.store
            .events(&EventFilter {
                kind: Some(kind),
                ..EventFilter::default()
            })
            .await
            .unwrap()
    }
}

/// A Mattermost outgoing-webhook request with `token`.
pub fn mm_request(token: &str, user: &str, text: &str) -> Request {
    Request {
        headers: [(
            "content-type".to_owned(),
            "application/x-www-form-urlencoded".to_owned(),
        )]
        .into(),
        body: mattermost_form(token, &format!("id-{user}"), user, text).into_bytes(),
    }
}
