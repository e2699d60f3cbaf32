//! [`Channels`]: the configured integrations, what an inbound request becomes, and where replies go.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rvbbit_agents::{Agents, ConversationKey, Disposition, Message};
use rvbbit_core::config::{ChannelConfig, ChannelKind, TenantConfig};
use rvbbit_engine::Engine;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::adapter::{Adapter, Inbound, Outbound, Request, Verified};
use crate::adapters;
use crate::contacts::Contacts;
use crate::control::audit::Who;
use crate::control::limit::RateLimiter;
use crate::control::{Control, Guard, parse};
use crate::directory::Directory;
use crate::error::{Error, Result};
use crate::identity::Identities;
use crate::outbox::{Outbox, unix_now};
use crate::registry::Api;
use crate::split::split;
use crate::web::hub::{Hub, Role};

/// Largest inbound body, in bytes (256 KiB); the server answers 413 past it before reading.
pub const MAX_BODY: usize = 256 * 1024;
/// The tenant of an integration without `tenant`.
pub const DEFAULT_TENANT: &str = "default";
/// How long a message waits for its agent's reply.
const AGENT_REPLY_WAIT: Duration = Duration::from_secs(600);

/// What to answer the platform at once (the work goes on in a task).
#[derive(Clone, Debug, PartialEq)]
pub struct Ack {
    /// A JSON body (Slack's challenge answer, the webhook's `{"accepted": true}`), or none (an empty
    /// 200, which Slack and Mattermost take as "nothing to post").
    pub body: Option<Value>,
}

/// Where an integration's replies go.
#[derive(Debug)]
pub(crate) enum Sink {
    /// POSTed to the platform by the integration's sending task.
    Post(Outbox),
    /// Kept in the visitor's mailbox of the web chat, read by their streams.
    Web(Arc<Hub>),
}

impl Sink {
    async fn reply(&self, adapter: &dyn Adapter, template: &Outbound, text: &str) {
        match self {
            Sink::Post(outbox) => outbox.reply(template, text).await,
            Sink::Web(hub) => {
                for part in split(text, adapter.max_len()) {
                    hub.record(&template.user, Role::Agent, &part);
                }
            }
        }
    }

    /// One more (`true`) or one fewer answer being prepared for `user` (the web chat shows "typing").
    fn working(&self, user: &str, more: bool) {
        if let Sink::Web(hub) = self {
            hub.working(user, more);
        }
    }
}

#[derive(Debug)]
pub(crate) struct Integration {
    pub(crate) name: String,
    pub(crate) config: ChannelConfig,
    pub(crate) adapter: Arc<dyn Adapter>,
    pub(crate) sink: Sink,
    guard: Guard,
}

impl Integration {
    fn who(&self, m: &Inbound) -> Who {
        Who {
            integration: self.name.clone(),
            kind: self.config.kind.as_str().to_owned(),
            tenant: self
                .config
                .tenant
                .clone()
                .unwrap_or_else(|| DEFAULT_TENANT.into()),
            user: m.user.clone(),
            user_name: m.user_name.clone(),
        }
    }
}

#[derive(Debug)]
pub(crate) struct Inner {
    /// The integrations of rvbbit.toml.
    pub(crate) integrations: BTreeMap<String, Arc<Integration>>,
    /// The integrations configured through the HTTP API, cached from the store.
    pub(crate) api: Api,
    pub(crate) http: reqwest::Client,
    control: Control,
    local: Guard,
    agents: Option<Agents>,
    identities: Identities,
    pub(crate) tasks: TaskTracker,
    pub(crate) shutdown: CancellationToken,
}

/// The integration `name` configured as `config`, its sending task started on `tasks`.
pub(crate) fn build_integration(
    name: &str,
    config: &ChannelConfig,
    http: &reqwest::Client,
    tasks: &TaskTracker,
    shutdown: &CancellationToken,
) -> Integration {
    let adapter: Arc<dyn Adapter> = Arc::from(adapters::build(name, config));
    let sink = match config.kind {
        ChannelKind::Web => Sink::Web(Arc::new(Hub::new(
            name,
            usize::try_from(config.max_streams).unwrap_or(usize::MAX),
            RateLimiter::new(config.rate_per_minute, config.burst),
            shutdown.clone(),
        ))),
        // The sending task ends when this integration (its only sender) is dropped, or at shutdown.
        _ => Sink::Post(Outbox::spawn(
            adapter.clone(),
            http.clone(),
            tasks,
            shutdown.clone(),
        )),
    };
    let guard = Guard::new(
        Some(config.allow_users.clone()),
        config.command_users.clone(),
        config.rate_per_minute,
        config.burst,
    )
    .with_groups(config.groups.clone())
    .with_status_interval(config.status_interval_seconds);
    Integration {
        name: name.to_owned(),
        config: config.clone(),
        adapter,
        sink,
        guard,
    }
}

/// The chat integrations of one process. Cheap to clone.
///
/// ```no_run
/// # async fn demo(engine: rvbbit_engine::Engine, config: rvbbit_core::config::Config) {
/// use rvbbit_channels::{Channels, Request};
///
/// let channels = Channels::new(&config.channels, engine, None, vec!["cascades".into()]).unwrap();
/// // In an HTTP handler for POST /hooks/{kind}/{name}:
/// let ack = channels.receive("slack", "ops", Request::default());
/// # let _ = ack;
/// channels.shutdown().await;
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Channels {
    pub(crate) inner: Arc<Inner>,
}

impl Channels {
    /// The integrations of `configs` (validated by the config loader), running commands with `engine`
    /// under `roots` and handing plain messages to `agents`. Starts one sending task per integration,
    /// so it must be called inside a tokio runtime.
    ///
    /// # Errors
    /// [`Error::Config`] when the HTTP client cannot be built.
    pub fn new(
        configs: &BTreeMap<String, ChannelConfig>,
        engine: Engine,
        agents: Option<Agents>,
        roots: Vec<PathBuf>,
    ) -> Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| Error::Config {
                integration: "*".into(),
                reason: format!("the HTTP client could not be built: {e}"),
            })?;
        let tasks = TaskTracker::new();
        let shutdown = CancellationToken::new();
        let identities = Identities::new(engine.store().cloned(), Directory::new(http.clone()));
        let integrations = configs
            .iter()
            .map(|(name, config)| {
                let integration = build_integration(name, config, &http, &tasks, &shutdown);
                (name.clone(), Arc::new(integration))
            })
            .collect();
        let api = Api::new(engine.store().cloned());
        Ok(Channels {
            inner: Arc::new(Inner {
                integrations,
                api,
                http,
                control: Control::new(engine, roots, agents.clone()),
                local: Guard::new(None, BTreeMap::new(), 30, 5),
                agents,
                identities,
                tasks,
                shutdown,
            }),
        })
    }

    /// Take the tenants' settings (`[tenants.NAME]`): those with `link_identities = true` link a
    /// person's identities across channels by a verified email or phone (docs/channels.md).
    #[must_use]
    pub fn with_tenants(self, tenants: &BTreeMap<String, TenantConfig>) -> Self {
        self.inner.identities.set_tenants(tenants);
        self
    }

    /// The integrations' names.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.inner.integrations.keys().cloned().collect();
        names.extend(self.inner.api.cached_names());
        names
    }

    /// Handle `POST /hooks/{kind}/{name}`: verify the request, answer what the platform needs at once,
    /// and handle the message in a task (a command runs, or the agent answers, and the reply goes out
    /// through the adapter).
    ///
    /// # Errors
    /// [`Error::UnknownIntegration`] (also for a kind that does not match), [`Error::TooLarge`],
    /// [`Error::Unverified`] (nothing runs), [`Error::BadRequest`].
    pub fn receive(&self, kind: &str, name: &str, request: Request) -> Result<Ack> {
        let integration = self
            .integration(name)
            .filter(|i| i.config.kind.as_str() == kind && i.config.kind != ChannelKind::Web)
            .ok_or_else(|| Error::UnknownIntegration {
                kind: kind.to_owned(),
                name: name.to_owned(),
            })?;
        if request.body.len() > MAX_BODY {
            return Err(Error::TooLarge {
                bytes: request.body.len(),
                limit: MAX_BODY,
            });
        }
        let message = match integration.adapter.verify(&request, unix_now())? {
            Verified::Answer(body) => return Ok(Ack { body: Some(body) }),
            Verified::Ignore => return Ok(Ack { body: None }),
            Verified::Message(m) => m,
        };
        self.spawn_handle(integration, message);
        let body = (kind == "webhook").then(|| json!({"accepted": true}));
        Ok(Ack { body })
    }

    /// The integration `name`: of rvbbit.toml, else configured through the API (as last read from
    /// the store; [`Channels::refresh`] reads it again).
    pub(crate) fn integration(&self, name: &str) -> Option<Arc<Integration>> {
        self.inner
            .integrations
            .get(name)
            .cloned()
            .or_else(|| self.inner.api.cached(name))
    }

    /// Handle `message` of `integration` in a task that ends at shutdown.
    pub(crate) fn spawn_handle(&self, integration: Arc<Integration>, message: Inbound) {
        let this = self.clone();
        self.inner.tasks.spawn(async move {
            let shutdown = this.inner.shutdown.clone();
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = this.handle(&integration, message) => {}
            }
        });
    }

    async fn handle(&self, integration: &Integration, message: Inbound) {
        let name = integration.name.as_str();
        let template = Outbound {
            integration: name.to_owned(),
            channel_id: message.channel_id.clone(),
            thread: message.thread.clone(),
            user: message.user.clone(),
            text: String::new(),
        };
        let who = integration.who(&message);
        let adapter = integration.adapter.as_ref();
        let sink = &integration.sink;
        if integration.config.control
            && let Some(parsed) = parse::parse(&message.text)
        {
            sink.working(&message.user, true);
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let execute = self.inner.control.execute_with_updates(
                &integration.guard,
                &who,
                &message.text,
                parsed,
                Some(tx),
            );
            // Updates go out as they come; the sender is dropped when the command ends, so every
            // update is sent before the final reply.
            let forward = async {
                while let Some(update) = rx.recv().await {
                    sink.reply(adapter, &template, &update).await;
                }
            };
            let (reply, ()) = tokio::join!(execute, forward);
            sink.reply(adapter, &template, &reply.text).await;
            sink.working(&message.user, false);
            return;
        }
        let Some(agent) = &integration.config.agent else {
            return;
        };
        sink.working(&message.user, true);
        let (interlocutor, channel) = self
            .inner
            .identities
            .conversation_of(&integration.name, &integration.config, &who, &message)
            .await;
        match self
            .ask_agent(&who, agent, &interlocutor, &channel, &message.text)
            .await
        {
            Ok(Some(reply)) => sink.reply(adapter, &template, &reply).await,
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(integration = %name, error = %e, "A message did not reach its agent.");
                sink.reply(adapter, &template, &e.to_string()).await;
            }
        }
        sink.working(&message.user, false);
    }

    /// Hand `text` to `agent` in the conversation of `interlocutor` on `channel` and wait for the
    /// reply of the turn it opened; `None` when it joined a turn another message opened (that
    /// message's waiter sends the reply).
    async fn ask_agent(
        &self,
        who: &Who,
        agent: &str,
        interlocutor: &str,
        channel: &str,
        text: &str,
    ) -> rvbbit_agents::Result<Option<String>> {
        let Some(agents) = &self.inner.agents else {
            return Err(rvbbit_agents::Error::UnknownAgent {
                agent: agent.to_owned(),
                known: "none".into(),
            });
        };
        let key = ConversationKey::new(&who.tenant, agent, interlocutor, channel)?;
        let mut reports = agents.subscribe();
        let accepted = agents.send(Message::text(key, text)).await?;
        if !matches!(accepted.disposition, Disposition::NewTurn | Disposition::Queued) {
            return Ok(None);
        }
        let wait = async {
            loop {
                match reports.recv().await {
                    Ok(report) if report.turn_id == accepted.turn_id => return report.reply,
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                }
            }
        };
        Ok(tokio::time::timeout(AGENT_REPLY_WAIT, wait).await.ok().flatten())
    }

    /// Run one chat command here, without HTTP (`rvbbit chat-control`): as `user` of integration
    /// `integration` (its allowlist, rate limit and breaker), or as the local operator (every command
    /// allowed, audit integration `cli`). The reply text.
    ///
    /// # Errors
    /// [`Error::UnknownIntegration`] for an integration that is not configured.
    pub async fn command(&self, integration: Option<&str>, user: &str, text: &str) -> Result<String> {
        let found = match integration {
            Some(name) => Some(self.integration(name).ok_or_else(|| Error::UnknownIntegration {
                kind: "any".into(),
                name: name.to_owned(),
            })?),
            None => None,
        };
        let (guard, who) = match &found {
            Some(i) => {
                let inbound = Inbound {
                    user: user.to_owned(),
                    user_name: Some(user.to_owned()),
                    text: text.to_owned(),
                    channel_id: None,
                    thread: None,
                    contacts: Contacts::default(),
                };
                (&i.guard, i.who(&inbound))
            }
            None => (
                &self.inner.local,
                Who {
                    integration: "cli".into(),
                    kind: "cli".into(),
                    tenant: DEFAULT_TENANT.into(),
                    user: user.to_owned(),
                    user_name: None,
                },
            ),
        };
        let parsed = parse::parse(text).unwrap_or_else(|| {
            Err(format!(
                "`{}` is not a command; commands start with `!` or `/rvbbit` (try `!help`)",
                text.chars().take(40).collect::<String>()
            ))
        });
        Ok(self.inner.control.execute(guard, &who, text, parsed).await.text)
    }

    /// Stop: messages being handled are dropped, queued replies are not sent, and this returns once
    /// every task has ended.
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
    }
}
