//! Agents over HTTP: messages to `agents/NAME.yaml` agents, the tenant of the API key, idempotent
//! retries, bounds with coded errors, and conversations readable only by their tenant.

use std::sync::Arc;
use std::time::Duration;

use rvbbit_engine::Engine;
use rvbbit_engine::tools::Registry;
use rvbbit_server::{Server, ServerConfig};
use rvbbit_store::{Writer, WriterOptions};
use rvbbit_testkit::{Reply, Script, TestServer};
use serde_json::{Value, json};
use tempfile::TempDir;

const CASCADE: &str = r#"
cascade_id: helpdesk
cells:
  - name: reply
    instructions: "Answer: {{ input.messages | join(' / ') }}"
"#;

const AGENT: &str = "cascade: ../helpdesk.yaml\nlimits: {max_message_bytes: 64}\n";

struct Door {
    _dir: TempDir,
    base: String,
    http: reqwest::Client,
    acme: String,
    globex: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _writer: Writer,
}

impl Door {
    async fn start(llm: &str) -> Door {
        let dir = TempDir::new().unwrap();
        std::fs::write(dir.path().join("helpdesk.yaml"), CASCADE).unwrap();
        std::fs::create_dir(dir.path().join("agents")).unwrap();
        std::fs::write(dir.path().join("agents/helpdesk.yaml"), AGENT).unwrap();
        let store = rvbbit_store::open("sqlite://rvbbit.db", dir.path())
            .await
            .unwrap();
        let writer = Writer::spawn(store.clone(), WriterOptions::new(dir.path().join("spill")));
        let mut settings = rvbbit_llm::ProviderSettings::new(llm).with_api_key("test-key");
        settings.retry.max_retries = 0;
        let gates = rvbbit_agents::Gates::default();
        let registry = Registry::builtin();
        let engine = Engine::new(gates.wrap(&registry))
            .with_writer(writer.handle())
            .with_store(store.clone())
            .with_provider(Arc::new(rvbbit_llm::Client::new(settings).unwrap()))
            .with_default_model("test/model");
        let agents = rvbbit_agents::Agents::new(engine.clone(), gates);
        let (loaded, failed) =
            rvbbit_agents::file::load_dir(&dir.path().join("agents"), &rvbbit_cascade::Catalog::builtin());
        assert!(failed.is_empty(), "{failed:?}");
        for a in loaded {
            agents.add(a).unwrap();
        }
        let mut secrets = Vec::new();
        for tenant in ["acme", "globex"] {
            let mut new = rvbbit_server::auth::generate(tenant);
            new.key.tenant = Some(tenant.to_owned());
            store.key_insert(&new.key).await.unwrap();
            secrets.push(new.secret);
        }
        let config = ServerConfig::new(vec![dir.path().to_owned()]).with_required_key(true);
        let server = Server::new(store, engine, config)
            .with_agents(agents)
            .with_writer(writer.handle());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(listener, async move {
            // The test ends by sending or dropping the sender: either way the server stops.
            let _ = stopped.await;
        }));
        Door {
            _dir: dir,
            base,
            http: reqwest::Client::new(),
            globex: secrets.pop().unwrap(),
            acme: secrets.pop().unwrap(),
            stop: Some(stop),
            task,
            _writer: writer,
        }
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
        idem: Option<&str>,
    ) -> (u16, Value) {
        let mut r = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base));
        if let Some(k) = key {
            r = r.bearer_auth(k);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        if let Some(i) = idem {
            r = r.header("Idempotency-Key", i);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            // The server may already have stopped; nothing to tell it then.
            let _ = s.send(());
        }
        self.task.await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn messages_go_to_the_keys_tenant_and_other_tenants_see_nothing() {
    let llm = TestServer::start(Script::rule(|_| Reply::text("Happy to help."))).await;
    let door = Door::start(&llm.base_url()).await;
    let msg = json!({"interlocutor": "u-1", "channel": "email", "text": "My printer is on fire."});

    let (status, body) = door
        .call(
            "POST",
            "/api/v1/agents/helpdesk/messages",
            None,
            Some(msg.clone()),
            None,
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (401, Some("RVB-A002")), "{body}");

    let (status, first) = door
        .call(
            "POST",
            "/api/v1/agents/helpdesk/messages",
            Some(&door.acme),
            Some(msg.clone()),
            Some("m-1"),
        )
        .await;
    assert_eq!(status, 202, "{first}");
    assert_eq!(first["disposition"], "new_turn");
    let turn = first["turn_id"].as_str().unwrap().to_owned();
    let conversation = first["conversation_id"].as_str().unwrap().to_owned();
    // A retry with the same Idempotency-Key gets the first answer and adds nothing.
    let (status, again) = door
        .call(
            "POST",
            "/api/v1/agents/helpdesk/messages",
            Some(&door.acme),
            Some(msg.clone()),
            Some("m-1"),
        )
        .await;
    assert_eq!((status, &again), (202, &first));

    // Bounds, each a coded error.
    let (status, body) = door
        .call(
            "POST",
            "/api/v1/agents/nobody/messages",
            Some(&door.acme),
            Some(msg.clone()),
            None,
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (404, Some("RVB-G001")), "{body}");
    let big = json!({"interlocutor": "u-1", "channel": "email", "text": "x".repeat(65)});
    let (status, body) = door
        .call(
            "POST",
            "/api/v1/agents/helpdesk/messages",
            Some(&door.acme),
            Some(big),
            None,
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (413, Some("RVB-G002")), "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("limits.max_message_bytes"),
        "{body}"
    );
    let empty = json!({"interlocutor": "", "channel": "email", "text": "hi"});
    let (status, body) = door
        .call(
            "POST",
            "/api/v1/agents/helpdesk/messages",
            Some(&door.acme),
            Some(empty),
            None,
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("RVB-G003")), "{body}");

    // The turn completes; its messages and turn are the tenant's.
    let path = format!("/api/v1/agents/helpdesk/conversations/{conversation}");
    let mut read = Value::Null;
    for _ in 0..100 {
        let (status, body) = door.call("GET", &path, Some(&door.acme), None, None).await;
        assert_eq!(status, 200, "{body}");
        if body["turns"][0]["status"] == "completed" {
            read = body;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(read["turns"][0]["turn_id"], json!(turn), "{read}");
    let texts: Vec<&str> = read["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        texts,
        vec!["My printer is on fire.", "Happy to help."],
        "one message despite the retry"
    );
    assert_eq!(llm.requests(), 1);

    let (status, list) = door
        .call(
            "GET",
            "/api/v1/agents/helpdesk/conversations",
            Some(&door.acme),
            None,
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(list["conversations"].as_array().unwrap().len(), 1);
    // Another tenant: nothing listed, the id not found.
    let (status, list) = door
        .call(
            "GET",
            "/api/v1/agents/helpdesk/conversations",
            Some(&door.globex),
            None,
            None,
        )
        .await;
    assert_eq!(
        (status, list["conversations"].as_array().unwrap().len()),
        (200, 0)
    );
    let (status, body) = door.call("GET", &path, Some(&door.globex), None, None).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("RVB-A003")), "{body}");
    // The same interlocutor under globex is another conversation.
    let (status, other) = door
        .call(
            "POST",
            "/api/v1/agents/helpdesk/messages",
            Some(&door.globex),
            Some(msg),
            Some("m-1"),
        )
        .await;
    assert_eq!(status, 202);
    assert_ne!(other["conversation_id"], first["conversation_id"]);
    door.stop().await;
}
