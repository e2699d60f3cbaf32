//! The job queue: run requests that any worker may take (`rvbbit submit`, `rvbbit worker`).
//!
//! [`Queue`] is the trait; [`nats`] (feature `queue`) is its one backend, a NATS JetStream work-queue
//! stream read through one shared durable pull consumer. There is no scheduler of our own: the server
//! delivers each job to one worker, redelivers it when the worker neither acks nor reports progress
//! within the ack wait, and stops after the maximum number of deliveries. Delivery is at-least-once: a
//! job whose worker dies is run again from the start.
//!
//! A [`Job`] carries everything a worker needs to run exactly what was submitted (the cascade's text,
//! its input and metadata), so workers need no shared file system. This crate does not interpret it.

#[cfg(feature = "queue")]
pub mod nats;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};

/// The largest submission id accepted (it names the job, its sessions and its dead letter).
pub const MAX_ID_LEN: usize = 100;

/// One run request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Job {
    /// The submission id: the same id submitted twice within the duplicate window is one job.
    pub id: String,
    /// The cascade file's name as submitted (for messages and relative paths).
    pub cascade_file: String,
    /// The cascade file's whole text, as read by `rvbbit submit`.
    pub cascade_text: String,
    /// The run's input.
    pub input: Value,
    /// Invocation metadata (`-m key=value`), recorded with the session's caller.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// When it was submitted (RFC 3339, UTC).
    pub submitted_at: String,
    /// The bundle to run (`sha256:HEX`) from the artifact store (`[artifacts] url`); the worker fetches
    /// it and runs its entry instead of `cascade_text`. Absent in jobs of older submitters. Since v0.4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle: Option<String>,
}

/// Whether `id` can name a submission: 1 to [`MAX_ID_LEN`] letters, digits, `_` and `-`.
///
/// Errors: the reason, for a usage message.
pub fn check_id(id: &str) -> std::result::Result<(), String> {
    if id.is_empty() || id.len() > MAX_ID_LEN {
        return Err(format!("a submission id has 1 to {MAX_ID_LEN} characters"));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        return Err(format!(
            "`{c}` is not allowed in a submission id (letters, digits, `_` and `-`)"
        ));
    }
    Ok(())
}

/// How the queue is set up; every worker and submitter of one queue must agree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueOptions {
    /// The work-queue stream's name; its subject is `<stream>.jobs`, its dead letters go to the stream
    /// `<stream>_DEAD` (subject `<stream>.dead`), and its consumer is `<stream>_WORKERS`.
    pub stream: String,
    /// How long a delivered job may go without an ack or a progress report before it is redelivered.
    pub ack_wait: Duration,
    /// Deliveries of one job before it is given up (and dead-lettered).
    pub max_deliveries: u32,
    /// How long a submission id is remembered for deduplication.
    pub duplicate_window: Duration,
    /// Whether this process sets the shared consumer's settings (`ack_wait`, `max_deliveries`): workers
    /// do. Others (`rvbbit submit`, `rvbbit queue`) create the consumer only when it is missing and
    /// otherwise use it as the server holds it, so an admin's defaults never override the workers'.
    pub configure_consumer: bool,
}

impl Default for QueueOptions {
    fn default() -> Self {
        QueueOptions {
            stream: "RVBBIT_JOBS".into(),
            ack_wait: Duration::from_secs(30),
            max_deliveries: 5,
            duplicate_window: Duration::from_secs(120),
            configure_consumer: true,
        }
    }
}

/// What [`Queue::submit`] did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Submitted {
    /// The submission id.
    pub id: String,
    /// The job's sequence number in the stream.
    pub sequence: u64,
    /// Whether a job with this id was already in the duplicate window (nothing new was enqueued).
    pub duplicate: bool,
}

/// A job given up after its last delivery, with why.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeadLetter {
    /// The submission id.
    pub id: String,
    /// Why it was given up.
    pub reason: String,
    /// How many times it was delivered.
    pub deliveries: u64,
    /// Its sequence in the dead-letter stream.
    pub sequence: u64,
    /// When it was dead-lettered (RFC 3339, UTC).
    pub at: String,
}

/// The state of the queue, for `rvbbit queue status`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct QueueStatus {
    /// The server URL (secrets masked).
    pub url: String,
    /// The work-queue stream.
    pub stream: String,
    /// Jobs not yet delivered to any worker.
    pub depth: u64,
    /// Jobs delivered and not yet acked (running, or waiting for redelivery).
    pub in_flight: u64,
    /// Jobs delivered more than once and not yet acked.
    pub redelivered: u64,
    /// Jobs in the dead-letter stream.
    pub dead_letters: u64,
    /// Consumers of the work-queue stream (one shared durable consumer for all workers).
    pub consumers: u64,
    /// Pull requests waiting for a job right now (idle worker slots).
    pub waiting_pulls: u64,
    /// Messages in the work-queue stream (undelivered, in flight, and given up but not yet moved).
    pub messages: u64,
    /// The settings the server holds for the consumer.
    pub ack_wait_seconds: u64,
    /// See [`QueueOptions::max_deliveries`].
    pub max_deliveries: u32,
}

/// A job queue.
#[async_trait]
pub trait Queue: Send + Sync + std::fmt::Debug {
    /// The server URL (secrets masked).
    fn url(&self) -> &str;

    /// Enqueue `job`, deduplicated by its id within the duplicate window.
    async fn submit(&self, job: &Job) -> Result<Submitted>;

    /// The next job, waiting at most `wait`; `None` when none came.
    async fn pull(&self, wait: Duration) -> Result<Option<Arc<dyn Delivery>>>;

    /// The queue's counts.
    async fn status(&self) -> Result<QueueStatus>;

    /// Every dead letter, oldest first.
    async fn dead_letters(&self) -> Result<Vec<DeadLetter>>;

    /// Put the dead letters of these submission ids (all, when empty) back on the queue, each under a
    /// new delivery count; returns the ids requeued. An id with no dead letter is [`Error::NotFound`].
    async fn retry_dead(&self, ids: &[String]) -> Result<Vec<String>>;

    /// Watch for jobs the server gave up after their last delivery (no worker acked them: each one died
    /// or hung) and move them to the dead-letter stream; runs until the connection closes.
    async fn watch_given_up(&self) -> Result<()>;
}

/// One delivery of a job to this worker.
#[async_trait]
pub trait Delivery: Send + Sync + std::fmt::Debug {
    /// The submission id (from the message header; `None` for a message not sent by `submit`).
    fn id(&self) -> Option<&str>;

    /// The job, or why the message is not one ([`Error::Corrupt`]).
    fn job(&self) -> Result<Job>;

    /// Which delivery this is (1 for the first).
    fn attempt(&self) -> u64;

    /// The deliveries allowed in all.
    fn max_deliveries(&self) -> u64;

    /// Tell the server the job is still being worked on (resets its ack wait).
    async fn progress(&self) -> Result<()>;

    /// The job is done: remove it from the queue (waits for the server's confirmation).
    async fn ack(&self) -> Result<()>;

    /// The job was not done: deliver it again after `delay`.
    async fn nak(&self, delay: Duration) -> Result<()>;

    /// Give the job up: copy it with `reason` to the dead-letter stream, then stop its redelivery.
    async fn dead_letter(&self, reason: &str) -> Result<()>;
}

/// Open the queue named by `url` (`nats://HOST:PORT`), creating its streams and consumer or checking
/// that the server holds them as configured.
///
/// Errors: [`Error::UnsupportedUrl`] for another scheme or a build without the `queue` feature,
/// [`Error::QueueUnavailable`] and [`Error::QueueConfig`].
pub async fn open(url: &str, options: &QueueOptions) -> Result<Arc<dyn Queue>> {
    #[cfg(feature = "queue")]
    if url.starts_with("nats://") {
        return Ok(Arc::new(nats::NatsQueue::open(url, options).await?));
    }
    let _ = options; // Only used by backends compiled in.
    Err(Error::UnsupportedUrl {
        url: rvbbit_core::config::mask_url(url),
        supported: vec![
            #[cfg(feature = "queue")]
            "nats://[USER:PASSWORD@]HOST:PORT",
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::check_id;

    #[test]
    fn submission_ids_are_plain_names() {
        assert!(check_id("order-1182_a").is_ok());
        assert!(check_id("").is_err());
        assert!(check_id("a.b").unwrap_err().contains("`.`"));
        assert!(check_id("a b").is_err());
        assert!(check_id(&"x".repeat(101)).is_err());
    }
}
