use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rvbbit_agents::{Agent, Agents, ConversationKey, Gates, Message, ToolPolicy};
use rvbbit_cascade::model::Cascade;
use rvbbit_cascade::{Catalog, Severity, validate};
use rvbbit_core::{EventKind, SessionId};
use rvbbit_engine::Engine;
use rvbbit_engine::tools::{Registry, SideEffect, Tool, ToolContext, ToolError};
use rvbbit_llm::{Client, ProviderSettings};
use rvbbit_store::{EventFilter, Store, StoredEvent, Writer, WriterOptions};
use serde_json::{Value, json};
use tempfile::TempDir;

/// A real tool that "books a flight": it records each call, and takes `delay` (virtual time).
pub struct BookFlight {
    pub calls: Arc<Mutex<Vec<String>>>,
    pub delay: Duration,
}

#[async_trait]
impl Tool for BookFlight {
    fn name(&self) -> &str {
        "book_flight"
    }
    fn description(&self) -> &str {
        "Book a flight to a city."
    }
    fn parameters(&self) -> Value {
        json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
    }
    fn side_effect(&self) -> SideEffect {
        // The engine's own class says idempotent; the agent file makes it irreversible.
        SideEffect::Idempotent
    }
    async fn execute(&self, args: Value, _ctx: &ToolContext) -> Result<Value, ToolError> {
        let city = args["city"].as_str().unwrap_or("?").to_owned();
        tokio::time::sleep(self.delay).await;
        self.calls.lock().unwrap().push(city.clone());
        Ok(json!({"booked": city}))
    }
}

pub struct Harness {
    pub _dir: TempDir,
    pub store: Arc<dyn Store>,
    pub writer: Writer,
    pub agents: Agents,
    pub calls: Arc<Mutex<Vec<String>>>,
    engine: Engine,
    gates: Gates,
    agent: Agent,
}

pub const CASCADE: &str = r#"
cascade_id: travel_agent
cells:
  - name: reply
    instructions: "MSGS[{{ input.messages | join(' | ') }}]MSGS HISTORY[{{ input.history | length }}]"
    traits: [book_flight]
    use_native_tools: true
"#;

impl Harness {
    pub async fn new(
        base_url: &str,
        tool_delay: Duration,
        window: Option<rvbbit_agents::window::WindowSettings>,
    ) -> Harness {
        let dir = TempDir::new().unwrap();
        let store = rvbbit_store::open("sqlite://rvbbit.db", dir.path())
            .await
            .unwrap();
        let writer = Writer::spawn(store.clone(), WriterOptions::new(dir.path().join("spill")));
        let calls = Arc::new(Mutex::new(Vec::new()));
        let mut registry = Registry::builtin();
        registry.register(Arc::new(BookFlight {
            calls: calls.clone(),
            delay: tool_delay,
        }));
        let cascade = load(&dir, &registry, CASCADE);
        let gates = Gates::default();
        let mut settings = ProviderSettings::new(base_url).with_api_key("test-key");
        settings.retry.max_retries = 0;
        settings.default_model = "test/model".into();
        let engine = Engine::new(gates.wrap(&registry))
            .with_writer(writer.handle())
            .with_store(store.clone())
            .with_provider(Arc::new(Client::new(settings).unwrap()))
            .with_default_model("test/model");
        let agents = Agents::new(engine.clone(), gates.clone());
        let mut agent = Agent::new("travel", cascade).with_tool("book_flight", ToolPolicy::Irreversible);
        if let Some(w) = window {
            agent = agent.with_window(w);
        }
        agents.add(agent.clone()).unwrap();
        Harness {
            _dir: dir,
            store,
            writer,
            agents,
            calls,
            engine,
            gates,
            agent,
        }
    }

    /// Another process's agents over the same store (nothing shared in memory).
    pub fn restarted(&self) -> Agents {
        let agents = Agents::new(self.engine.clone(), self.gates.clone());
        agents.add(self.agent.clone()).unwrap();
        agents
    }

    pub async fn send(&self, who: &str, channel: &str, text: &str) -> rvbbit_agents::Accepted {
        let key = ConversationKey::new("acme", "travel", who, channel).unwrap();
        self.agents.send(Message::text(key, text)).await.unwrap()
    }

    pub async fn events(&self, session: &SessionId) -> Vec<StoredEvent> {
        self.writer.handle().flush().await.unwrap();
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
}

fn load(dir: &TempDir, registry: &Registry, text: &str) -> Cascade {
    let path = dir.path().join("agent.yaml");
    std::fs::write(&path, text).unwrap();
    let mut catalog = Catalog::builtin();
    registry.fill_catalog(&mut catalog);
    let report = validate::validate_file(&path, &mut catalog, &validate::Options::default());
    let errors: Vec<_> = report
        .diagnostics()
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| d.message.clone())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    report.loaded.document.and_then(|d| d.cascade().cloned()).unwrap()
}

/// The text between `MSGS[` and `]MSGS` in the request's user messages: the turn's messages.
pub fn turn_text(body: &Value) -> String {
    body["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["content"].as_str())
        .find_map(|c| {
            let start = c.find("MSGS[")? + 5;
            let end = c.find("]MSGS")?;
            Some(c[start..end].to_owned())
        })
        .unwrap_or_default()
}

/// Whether the request's last message is a tool result, and its content.
pub fn tool_result(body: &Value) -> Option<String> {
    let last = body["messages"].as_array()?.last()?;
    (last["role"] == "tool").then(|| last["content"].as_str().unwrap_or_default().to_owned())
}
