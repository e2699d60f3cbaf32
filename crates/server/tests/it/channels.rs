//! Integrations configured through the HTTP API (`/api/v1/channels`), end to end on loopback: a
//! PUT webhook integration answers its signed hook at once (a `!run` replies with the cascade's
//! output to the fake receiver), and so does a second server sharing the store; secrets never appear
//! in a response body or the server's log; bad keys, rvbbit.toml's integrations and DELETE.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rvbbit_channels::Channels;
use rvbbit_core::config::{ChannelConfig, ChannelKind};
use rvbbit_engine::Engine;
use rvbbit_engine::tools::Registry;
use rvbbit_server::{Server, ServerConfig};
use rvbbit_store::{Store, Writer, WriterOptions};
use rvbbit_testkit::chat::{FakeChat, unix_now, webhook_headers};
use serde_json::{Value, json};
use tempfile::TempDir;

const SECRET: &str = "whsec-7f3a9c1e-do-not-print";
const HELLO: &str = "cascade_id: hello_chat\ncells:\n  - name: greet\n    tool: set_state\n    inputs: {key: greeting, value: \"hello {{ input.name }}\"}\n";

/// Every log event's message and fields, as text (a minimal subscriber: the test's thread only).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<String>>);

struct Fields<'a>(&'a mut String);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={value:?}", field.name()); // Writing to a String cannot fail.
    }
}

impl tracing::Subscriber for Logs {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut text = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        span.record(&mut Fields(&mut text));
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        let mut text = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        values.record(&mut Fields(&mut text));
    }
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut text = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        event.record(&mut Fields(&mut text));
        text.push('\n');
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

struct Door {
    base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _writer: Writer,
}

impl Door {
    /// A server on `store` with rvbbit.toml's integration `cfg` (a webhook with chat control).
    async fn start(dir: &TempDir, store: Arc<dyn Store>, fake: &FakeChat) -> Door {
        let writer = Writer::spawn(store.clone(), WriterOptions::new(dir.path().join("spill")));
        let engine = Engine::new(Registry::builtin())
            .with_writer(writer.handle())
            .with_store(store.clone());
        let mut cfg = ChannelConfig::new(ChannelKind::Webhook);
        cfg.secret = Some("config-secret".into());
        cfg.outbound_url = Some(fake.webhook_url());
        cfg.control = true;
        let configs = BTreeMap::from([("cfg".to_owned(), cfg)]);
        let channels = Channels::new(&configs, engine.clone(), None, vec![dir.path().to_owned()]).unwrap();
        let config = ServerConfig::new(vec![dir.path().to_owned()]);
        let server = Server::new(store, engine, config)
            .with_channels(channels)
            .with_writer(writer.handle());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(listener, async move {
            // Sent or dropped: either way the server stops.
            let _ = stopped.await;
        }));
        Door {
            base,
            stop: Some(stop),
            task,
            _writer: writer,
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, String) {
        let mut r = reqwest::Client::new().request(method.parse().unwrap(), format!("{}{path}", self.base));
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    /// A message signed with `secret` to `/hooks/webhook/{name}`.
    async fn hook(&self, name: &str, secret: &str, user: &str, text: &str) -> (u16, String) {
        let body = json!({"user": user, "text": text, "channel_id": "c1"}).to_string();
        let mut r = reqwest::Client::new()
            .post(format!("{}/hooks/webhook/{name}", self.base))
            .header("content-type", "application/json");
        for (k, v) in webhook_headers(secret, unix_now(), &body) {
            r = r.header(k, v);
        }
        let resp = r.body(body).send().await.unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            // The server may already have stopped; nothing to tell it then.
            let _ = s.send(());
        }
        self.task.await.unwrap().unwrap();
    }
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

#[tokio::test]
async fn an_integration_put_through_the_api_answers_its_hook_at_once_and_never_shows_its_secret() {
    let logs = Logs::default();
    let _guard = tracing::subscriber::set_default(logs.clone());
    let dir = TempDir::new().unwrap();
    std::fs::write(dir.path().join("hello.yaml"), HELLO).unwrap();
    let store = rvbbit_store::open("sqlite://rvbbit.db", dir.path())
        .await
        .unwrap();
    let fake = FakeChat::start().await;
    let door = Door::start(&dir, store, &fake).await;
    let mut bodies = Vec::new();

    let hook = json!({"kind": "webhook", "secret": SECRET, "outbound_url": fake.webhook_url(),
        "control": true, "allow_users": ["alice"]});
    let (status, body) = door
        .call("PUT", "/api/v1/channels/hook", Some(hook.clone()))
        .await;
    assert_eq!(status, 200, "{body}");
    let view = json_of(&body);
    assert_eq!(view["config"]["secret"], "***");
    assert_eq!(
        (view["source"].as_str(), view["secrets_set"]["secret"].as_bool()),
        (Some("api"), Some(true))
    );
    bodies.push(body);

    // A signed command runs at once, without a restart: the cascade's output comes back.
    let (status, body) = door
        .hook("hook", SECRET, "alice", r#"!run hello {"name": "Ada"}"#)
        .await;
    assert_eq!(status, 200, "{body}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !fake.posted().iter().any(|p| p.text().contains("hello Ada")) {
        assert!(tokio::time::Instant::now() < deadline, "{:?}", fake.posted());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(fake.posted().iter().all(|p| p.path == "/webhook"));
    // A wrong signature is still refused.
    assert_eq!(door.hook("hook", "guess", "alice", "!list").await.0, 401);

    let (status, body) = door.call("GET", "/api/v1/channels/hook", None).await;
    assert_eq!(
        (status, json_of(&body)["config"]["secret"].as_str()),
        (200, Some("***")),
        "{body}"
    );
    bodies.push(body);
    let (status, body) = door.call("GET", "/api/v1/channels", None).await;
    assert_eq!(status, 200, "{body}");
    let sources: Vec<(String, String)> = json_of(&body)["integrations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["name"].as_str().unwrap().to_owned(),
                i["source"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        sources,
        [("cfg".into(), "config".into()), ("hook".into(), "api".into())]
    );
    assert!(!body.contains("config-secret"), "{body}");
    bodies.push(body);

    // A second server sharing the store answers the same hook (it reads the store on a miss).
    let other = Door::start(
        &dir,
        rvbbit_store::open("sqlite://rvbbit.db", dir.path())
            .await
            .unwrap(),
        &fake,
    )
    .await;
    let before = fake.posted().len();
    assert_eq!(other.hook("hook", SECRET, "alice", "!help").await.0, 200);
    fake.wait_for(before + 1, Duration::from_secs(20)).await;

    // A bad key is a coded 400 naming it; rvbbit.toml's integration is read-only.
    let (status, body) = door
        .call(
            "PUT",
            "/api/v1/channels/hook2",
            Some(json!({"kind": "webhook", "secrte": SECRET})),
        )
        .await;
    let problem = json_of(&body);
    assert_eq!(
        (status, problem["code"].as_str()),
        (400, Some("RVB-K001")),
        "{body}"
    );
    assert!(
        problem["message"]
            .as_str()
            .unwrap()
            .contains("channels.hook2.secrte"),
        "{body}"
    );
    bodies.push(body);
    let (status, body) = door
        .call(
            "PUT",
            "/api/v1/channels/hook3",
            Some(json!({"kind": "webhook", "secret": 42})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        json_of(&body)["message"]
            .as_str()
            .unwrap()
            .contains("channels.hook3.secret"),
        "{body}"
    );
    let (status, body) = door.call("PUT", "/api/v1/channels/cfg", Some(hook.clone())).await;
    let problem = json_of(&body);
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("RVB-K001")),
        "{body}"
    );
    assert!(
        problem["message"].as_str().unwrap().contains("rvbbit.toml"),
        "{body}"
    );
    bodies.push(body);
    assert_eq!(door.call("DELETE", "/api/v1/channels/cfg", None).await.0, 409);

    // DELETE: the hook is gone.
    let (status, body) = door.call("DELETE", "/api/v1/channels/hook", None).await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = door.hook("hook", SECRET, "alice", "!list").await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(door.call("GET", "/api/v1/channels/hook", None).await.0, 404);
    assert_eq!(door.call("DELETE", "/api/v1/channels/hook", None).await.0, 404);
    bodies.push(body);

    for body in &bodies {
        assert!(!body.contains(SECRET), "a response shows the secret: {body}");
    }
    let log = logs.0.lock().unwrap_or_else(PoisonError::into_inner).clone();
    assert!(
        log.contains("configured through the API"),
        "the log is captured: {log}"
    );
    assert!(!log.contains(SECRET), "the log shows the secret: {log}");
    other.stop().await;
    door.stop().await;
}
