//! The web chat (`kind = "web"`): a page `rvbbit serve` shows at `/chat/{NAME}`, messages in as JSON,
//! replies out as Server-Sent Events. The server owns HTTP; this module owns what the routes do.
//!
//! A message ([`Channels::web_message`]) is checked (size against `max_message_bytes`, the browser's
//! origin, the visitor id, the text), counted against the visitor's rate (`rate_per_minute`, `burst`),
//! kept in the visitor's mailbox ([`hub`]) and handed to the integration's agent exactly as the other
//! adapters do: one conversation per visitor (`tenant:agent:VISITOR:web`). `!commands` work only with
//! `control = true` and a visitor in `allow_users`. The reply lands in the same mailbox, which the
//! visitor's streams ([`Channels::web_subscribe`]) read.

pub mod hub;

pub use hub::{Entry, KEEP_BYTES, KEEP_ENTRIES, KEEP_VISITORS, Role, Subscription, WebEvent};

use std::sync::Arc;

use rvbbit_core::config::ChannelKind;

use crate::adapter::{Request, Verified};
use crate::adapters::web::visitor_problem;
use crate::error::{Error, Result};
use crate::gateway::{Channels, Integration, Sink};
use crate::outbox::unix_now;
use hub::Hub;

/// What the server needs to show a web chat's page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebPage {
    /// The page's heading (`title`, else the agent's name).
    pub title: String,
    /// Origins whose pages may frame the chat (`allowed_origins`).
    pub allowed_origins: Vec<String>,
    /// The largest message body, in bytes (`max_message_bytes`).
    pub max_message_bytes: usize,
}

impl Channels {
    fn web(&self, name: &str) -> Result<(Arc<Integration>, Arc<Hub>)> {
        let unknown = || Error::UnknownIntegration {
            kind: ChannelKind::Web.as_str().into(),
            name: name.to_owned(),
        };
        let integration = self.integration(name).ok_or_else(unknown)?;
        let Sink::Web(hub) = &integration.sink else {
            return Err(unknown());
        };
        let hub = hub.clone();
        Ok((integration, hub))
    }

    /// The page settings of web chat `name`.
    ///
    /// # Errors
    /// [`Error::UnknownIntegration`] when `name` is not a web integration.
    pub fn web_page(&self, name: &str) -> Result<WebPage> {
        let (i, _) = self.web(name)?;
        Ok(WebPage {
            title: i
                .config
                .title
                .clone()
                .or_else(|| i.config.agent.clone())
                .unwrap_or_else(|| name.to_owned()),
            allowed_origins: i.config.allowed_origins.clone(),
            max_message_bytes: self.web_max_bytes(name)?,
        })
    }

    /// `max_message_bytes` of web chat `name` (the server refuses a larger body before reading it).
    ///
    /// # Errors
    /// [`Error::UnknownIntegration`] when `name` is not a web integration.
    pub fn web_max_bytes(&self, name: &str) -> Result<usize> {
        let (i, _) = self.web(name)?;
        Ok(usize::try_from(i.config.max_message_bytes).unwrap_or(usize::MAX))
    }

    /// Handle `POST /chat/{name}/messages`: check the request, keep the message, and answer it in a
    /// task (the agent's reply, or a command's, goes to the visitor's mailbox). The message's entry id.
    ///
    /// # Errors
    /// [`Error::UnknownIntegration`], [`Error::MessageTooLarge`] (checked before parsing),
    /// [`Error::Unverified`] (a browser origin not allowed), [`Error::BadRequest`] (no JSON object, a
    /// bad visitor id, an empty text, a control character), [`Error::RateLimited`]. Nothing runs on
    /// any of them.
    pub fn web_message(&self, name: &str, request: Request) -> Result<u64> {
        let (integration, hub) = self.web(name)?;
        let limit = self.web_max_bytes(name)?;
        if request.body.len() > limit {
            return Err(Error::MessageTooLarge {
                integration: name.to_owned(),
                bytes: request.body.len(),
                limit,
            });
        }
        let Verified::Message(message) = integration.adapter.verify(&request, unix_now())? else {
            return Err(Error::BadRequest {
                integration: name.to_owned(),
                kind: "web".into(),
                reason: "nothing to handle".into(),
            });
        };
        hub.limiter
            .check(&message.user)
            .map_err(|wait| Error::RateLimited {
                integration: name.to_owned(),
                wait_seconds: (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1),
            })?;
        let id = hub.record(&message.user, Role::Visitor, &message.text);
        self.spawn_handle(integration, message);
        Ok(id)
    }

    /// Open `GET /chat/{name}/events` for `visitor`: the kept entries after id `after`, then new ones
    /// and typing changes as they come, until the channels shut down.
    ///
    /// # Errors
    /// [`Error::UnknownIntegration`], [`Error::BadRequest`] (a bad visitor id),
    /// [`Error::StreamsFull`] (`max_streams` open).
    pub fn web_subscribe(&self, name: &str, visitor: &str, after: u64) -> Result<Subscription> {
        let (_, hub) = self.web(name)?;
        if let Some(reason) = visitor_problem(visitor) {
            return Err(Error::BadRequest {
                integration: name.to_owned(),
                kind: "web".into(),
                reason,
            });
        }
        hub.subscribe(visitor, after)
    }

    /// Reply streams open now on web chat `name` (0 for any other name).
    pub fn web_streams(&self, name: &str) -> usize {
        self.web(name).map_or(0, |(_, hub)| hub.open_streams())
    }
}
