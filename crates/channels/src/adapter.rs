//! The [`Adapter`] trait: what differs between Slack, Mattermost and a signed webhook.
//!
//! An adapter is pure: it verifies and reads an inbound request, and renders an outbound part as an
//! HTTP POST ([`Post`]). Sending (order, retries, `Retry-After`) is the same for every kind and lives in
//! [`crate::outbox`].

use std::collections::BTreeMap;

use rvbbit_core::config::ChannelKind;
use serde_json::Value;

use crate::contacts::Contacts;
use crate::error::Result;

/// An inbound HTTP request as the server received it.
#[derive(Clone, Debug, Default)]
pub struct Request {
    /// Header names in lowercase, values as text (a header that is not text is left out).
    pub headers: BTreeMap<String, String>,
    /// The exact body bytes (signatures cover them).
    pub body: Vec<u8>,
}

impl Request {
    /// A header's value by its lowercase name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// A message from a person, normalised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inbound {
    /// The platform's user id (Slack `U…`, Mattermost `user_id`, the webhook's `user`).
    pub user: String,
    /// The user's name when the platform sends one (Mattermost `user_name`).
    pub user_name: Option<String>,
    /// The text, a slash command already turned into `/rvbbit WORDS`.
    pub text: String,
    /// Where to reply (Slack channel id, Mattermost channel id, the webhook's `channel_id`).
    pub channel_id: Option<String>,
    /// The thread to reply in (Slack `thread_ts`), if any.
    pub thread: Option<String>,
    /// The sender's verified email and phone, only from what the adapter authenticated (the signed
    /// webhook's `email_verified`/`phone_verified` facts); Slack's and Mattermost's are read later from
    /// their directories ([`crate::contacts`]).
    pub contacts: Contacts,
}

/// What an inbound request turned out to be.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Verified {
    /// A message to handle.
    Message(Inbound),
    /// A handshake answered at once with this JSON (Slack's `url_verification` challenge).
    Answer(Value),
    /// A verified request with nothing to do (a bot's own message, a platform retry).
    Ignore,
}

/// One outbound part, ready to render.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outbound {
    /// The integration's name.
    pub integration: String,
    /// Where to reply, from [`Inbound::channel_id`].
    pub channel_id: Option<String>,
    /// The thread, from [`Inbound::thread`].
    pub thread: Option<String>,
    /// The user replied to.
    pub user: String,
    /// The text of this part (at most the adapter's [`Adapter::max_len`] characters).
    pub text: String,
}

/// An HTTP POST to make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Post {
    /// The URL.
    pub url: String,
    /// Headers besides `Content-Type: application/json`.
    pub headers: Vec<(String, String)>,
    /// The JSON body.
    pub body: Vec<u8>,
}

/// One platform's way of receiving and sending messages.
///
/// ```
/// use rvbbit_channels::{Adapter, Inbound, Outbound, Post, Request, Verified};
/// use rvbbit_core::config::ChannelKind;
///
/// /// Trusts everyone (a test double: real adapters verify a signature or token).
/// #[derive(Debug)]
/// struct Open;
///
/// impl Adapter for Open {
///     fn kind(&self) -> ChannelKind { ChannelKind::Webhook }
///     fn max_len(&self) -> usize { 100 }
///     fn verify(&self, request: &Request, _now: i64) -> rvbbit_channels::Result<Verified> {
///         let text = String::from_utf8_lossy(&request.body).into_owned();
///         Ok(Verified::Message(Inbound { user: "u".into(), user_name: None, text,
///             channel_id: None, thread: None, contacts: Default::default() }))
///     }
///     fn render(&self, out: &Outbound, _now: i64) -> rvbbit_channels::Result<Post> {
///         Ok(Post { url: "http://127.0.0.1:9/".into(), headers: vec![],
///             body: serde_json::json!({"text": out.text}).to_string().into_bytes() })
///     }
/// }
/// let v = Open.verify(&Request { body: b"hi".to_vec(), ..Request::default() }, 0).unwrap();
/// assert!(matches!(v, Verified::Message(m) if m.text == "hi"));
/// ```
pub trait Adapter: Send + Sync + std::fmt::Debug {
    /// The platform.
    fn kind(&self) -> ChannelKind;

    /// The longest message the platform takes, in characters; longer replies are split.
    fn max_len(&self) -> usize;

    /// Check that `request` comes from the platform (at unix time `now`, seconds) and read it.
    ///
    /// # Errors
    /// [`crate::Error::Unverified`] when the signature, token or timestamp fails (nothing may run);
    /// [`crate::Error::BadRequest`] when a verified body is not the platform's payload.
    fn verify(&self, request: &Request, now: i64) -> Result<Verified>;

    /// The POST that delivers `out` (signed at unix time `now` where the kind signs).
    ///
    /// # Errors
    /// [`crate::Error::Config`] when the integration has no usable `outbound_url`.
    fn render(&self, out: &Outbound, now: i64) -> Result<Post>;
}
