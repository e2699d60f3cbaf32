//! rvbbit-channels: agents and chat control where people already talk.
//!
//! An *integration* (`[channels.NAME]` in rvbbit.toml) ties a platform to rvbbit: Slack (Events API and
//! slash commands in, verified with the signing secret; `chat.postMessage` out), Mattermost (outgoing
//! webhook or slash command in, checked by token; incoming webhook out), a generic webhook (JSON both
//! ways, HMAC-SHA256 signed both ways) or the web chat page (JSON in, Server-Sent Events out; [`web`]).
//! Each platform is an [`Adapter`]: verify and read an inbound request, render an outbound part.
//! Replies are split at the channel's limit ([`split`]) and sent in order by one task per integration,
//! with retries and `Retry-After` ([`outbox`]); the web chat's replies go to the visitor's mailbox
//! instead ([`web::hub`]).
//!
//! A message is either a chat command (`!run`, `!status`, `!cancel`, `!list`, `!agents`, `!help`, or
//! `/rvbbit …`), handled by [`control`] behind its safeguards (rate limit, allowlist, argument
//! validation, circuit breaker, audit events), or a plain message for the integration's agent
//! ([`rvbbit_agents::Agents::send`]), whose reply goes back the same way.
//!
//! Boundary: above the engine and the agents, below the HTTP server. It never serves HTTP: the server's
//! `POST /hooks/{kind}/{integration}` handler calls [`Channels::receive`], its `/chat/{integration}`
//! routes call [`Channels::web_message`] and [`Channels::web_subscribe`], and `rvbbit chat-control`
//! calls [`Channels::command`]. It never starts a shell. Time is tokio's, so tests pause the clock.
//!
//! Main types: [`Channels`], [`Adapter`] ([`adapters::Slack`], [`adapters::Mattermost`],
//! [`adapters::Webhook`], [`adapters::Web`]), [`Request`], [`Inbound`], [`Outbound`],
//! [`control::Control`], [`web::Subscription`], [`Error`].
//!
//! ```
//! // Replies longer than the channel allows are split on line, sentence or word boundaries.
//! let parts = rvbbit_channels::split::split("One. Two. Three.", 10);
//! assert_eq!(parts, ["One. Two.", "Three."]);
//! ```
//!
//! See docs/channels.md for the guide, the setup of Slack and Mattermost, and what is not built yet.

mod adapter;
pub mod adapters;
pub mod contacts;
pub mod control;
mod directory;
mod error;
mod gateway;
mod identity;
pub mod outbox;
pub mod registry;
pub mod sign;
pub mod split;
pub mod web;

pub use adapter::{Adapter, Inbound, Outbound, Post, Request, Verified};
pub use contacts::Contacts;
pub use error::{Error, Result};
pub use gateway::{Ack, Channels, DEFAULT_TENANT, MAX_BODY};
pub use identity::LINKED_CHANNEL;
pub use registry::{API_TTL, MAX_API_INTEGRATIONS};
