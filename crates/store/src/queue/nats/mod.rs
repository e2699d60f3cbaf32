//! The job queue on NATS JetStream (2.9 or newer).
//!
//! One work-queue stream (`<stream>`, subject `<stream>.jobs`, retention `WorkQueue`: a job leaves the
//! stream when it is acked) and one shared durable pull consumer (`<stream>_WORKERS`, explicit ack, ack
//! wait and max deliveries from [`QueueOptions`]) that every worker pulls from; the server hands each
//! job to one of them. A submission id travels as `Nats-Msg-Id`, so the stream's duplicate window drops
//! a second submission of the same id. Dead letters go to the stream `<stream>_DEAD` (`dead.rs`).
//!
//! NATS 2.9 silently drops configuration fields it does not know, so after creating (or updating) the
//! stream and the consumer this module reads back what the server holds and refuses to go on
//! ([`Error::QueueConfig`]) when a setting differs from what was asked.

mod dead;
mod delivery;

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::context::CreateStreamErrorKind;
use async_nats::jetstream::stream::{self, ConsumerErrorKind, RetentionPolicy, StorageType};
use async_nats::jetstream::{self, Context};
use async_nats::{Client, HeaderMap};
use async_trait::async_trait;
use futures::StreamExt;
use rvbbit_core::config::mask_url;

use super::{DeadLetter, Delivery, Job, Queue, QueueOptions, QueueStatus, Submitted};
use crate::error::{Error, Result};
pub use delivery::NatsDelivery;

/// The header carrying the submission id (besides `Nats-Msg-Id`, which the duplicate window reads).
pub(crate) const ID_HEADER: &str = "Rvbbit-Submission";

/// A connected job queue.
#[derive(Debug, Clone)]
pub struct NatsQueue {
    url: String,
    options: QueueOptions,
    /// The consumer's max deliveries as the server holds it.
    max_deliver: u64,
    client: Client,
    js: Context,
    consumer: PullConsumer,
}

/// Wrap a client error as [`Error::QueueUnavailable`].
pub(crate) fn unavailable(
    url: &str,
    action: impl Into<String>,
) -> impl FnOnce(Box<dyn std::error::Error + Send + Sync>) -> Error {
    let url = url.to_owned();
    let action = action.into();
    move |source| Error::QueueUnavailable { url, action, source }
}

fn refused(url: &str, action: &str, source: Box<dyn std::error::Error + Send + Sync>) -> Error {
    Error::QueueRefused {
        url: url.to_owned(),
        action: action.to_owned(),
        source,
    }
}

fn boxed<E: std::error::Error + Send + Sync + 'static>(e: E) -> Box<dyn std::error::Error + Send + Sync> {
    Box::new(e)
}

/// The user and password of `nats://USER:PASSWORD@HOST[:PORT]`, percent-decoded; `None` without a user.
fn credentials(url: &str) -> Option<(String, String)> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let (userinfo, _host) = authority.rsplit_once('@')?;
    let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    if user.is_empty() {
        return None;
    }
    Some((percent_decode(user), percent_decode(password)))
}

/// `%XX` escapes decoded; anything that is not a valid escape is kept as it is.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl NatsQueue {
    /// Connect to `url`, then create or update the streams and the consumer and check them.
    ///
    /// Errors: [`Error::QueueUnavailable`] when the server cannot be reached or has no JetStream;
    /// [`Error::QueueConfig`] when it holds other settings than `options`.
    pub async fn open(url: &str, options: &QueueOptions) -> Result<Self> {
        let masked = mask_url(url);
        let mut connect_options = async_nats::ConnectOptions::new()
            .name("rvbbit")
            .connection_timeout(Duration::from_secs(5))
            .request_timeout(Some(Duration::from_secs(10)));
        // async-nats parses `nats://USER:PASSWORD@HOST` but does not send the credentials it holds:
        // hand them over explicitly (percent-decoded, as a URL carries them).
        if let Some((user, password)) = credentials(url) {
            connect_options = connect_options.user_and_password(user, password);
        }
        let connect = connect_options.connect(url);
        let client = match tokio::time::timeout(Duration::from_secs(10), connect).await {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => return Err(unavailable(&masked, "connect")(boxed(e))),
            Err(e) => return Err(unavailable(&masked, "connect (no answer in 10 s)")(boxed(e))),
        };
        let js = jetstream::new(client.clone());
        let jobs = ensure_stream(&js, &masked, jobs_stream_config(options)).await?;
        ensure_stream(&js, &masked, dead::stream_config(options)).await?;
        let consumer = ensure_consumer(&jobs, &masked, options).await?;
        let max_deliver = u64::try_from(consumer.cached_info().config.max_deliver).unwrap_or(1);
        Ok(NatsQueue {
            url: masked,
            options: options.clone(),
            max_deliver,
            client,
            js,
            consumer,
        })
    }

    /// The jobs' subject.
    pub(crate) fn subject(&self) -> String {
        jobs_subject(&self.options)
    }

    /// The consumer's name.
    pub fn consumer_name(&self) -> String {
        consumer_name(&self.options)
    }

    /// Publish raw bytes to the jobs' subject with these headers (tests use it to enqueue what
    /// `rvbbit submit` never would, such as a message that is not a job).
    pub async fn publish_raw(&self, msg_id: &str, headers: HeaderMap, payload: Vec<u8>) -> Result<Submitted> {
        let mut headers = headers;
        headers.insert("Nats-Msg-Id", msg_id);
        let ack = self
            .js
            .publish_with_headers(self.subject(), headers, payload.into())
            .await
            .map_err(|e| unavailable(&self.url, "publish a job")(boxed(e)))?
            .await
            .map_err(|e| unavailable(&self.url, "publish a job")(boxed(e)))?;
        Ok(Submitted {
            id: msg_id.to_owned(),
            sequence: ack.sequence,
            duplicate: ack.duplicate,
        })
    }
}

fn jobs_subject(options: &QueueOptions) -> String {
    format!("{}.jobs", options.stream)
}

fn consumer_name(options: &QueueOptions) -> String {
    format!("{}_WORKERS", options.stream)
}

fn jobs_stream_config(options: &QueueOptions) -> stream::Config {
    stream::Config {
        name: options.stream.clone(),
        subjects: vec![jobs_subject(options)],
        retention: RetentionPolicy::WorkQueue,
        storage: StorageType::File,
        duplicate_window: options.duplicate_window,
        ..Default::default()
    }
}

/// Create the stream or update it to `want`, then check what the server holds.
async fn ensure_stream(js: &Context, url: &str, want: stream::Config) -> Result<stream::Stream> {
    let action = format!("create the stream {}", want.name);
    let info = js.create_or_update_stream(want.clone()).await.map_err(|e| {
        if matches!(e.kind(), CreateStreamErrorKind::JetStream(_)) {
            refused(url, &action, boxed(e))
        } else {
            unavailable(url, &action)(boxed(e))
        }
    })?;
    let what = format!("the stream {}", want.name);
    let got = &info.config;
    check(url, &what, "subjects", &want.subjects, &got.subjects)?;
    check(url, &what, "retention", &want.retention, &got.retention)?;
    check(url, &what, "storage", &want.storage, &got.storage)?;
    check(
        url,
        &what,
        "duplicate_window",
        &want.duplicate_window,
        &got.duplicate_window,
    )?;
    js.get_stream(&want.name)
        .await
        .map_err(|e| unavailable(url, &action)(boxed(e)))
}

/// Create the shared durable consumer (or update it to `options`), then check what the server holds.
async fn ensure_consumer(jobs: &stream::Stream, url: &str, options: &QueueOptions) -> Result<PullConsumer> {
    let name = consumer_name(options);
    let want = pull::Config {
        durable_name: Some(name.clone()),
        deliver_policy: DeliverPolicy::All,
        ack_policy: AckPolicy::Explicit,
        ack_wait: options.ack_wait,
        max_deliver: i64::from(options.max_deliveries),
        filter_subject: jobs_subject(options),
        ..Default::default()
    };
    let action = format!("create the consumer {name}");
    if !options.configure_consumer
        && let Ok(existing) = jobs.get_consumer::<pull::Config>(&name).await
    {
        // Not a worker: take the consumer as the workers configured it.
        return Ok(existing);
    }
    let consumer: PullConsumer = jobs.create_consumer(want.clone()).await.map_err(|e| {
        if matches!(e.kind(), ConsumerErrorKind::JetStream(_)) {
            refused(url, &action, boxed(e))
        } else {
            unavailable(url, &action)(boxed(e))
        }
    })?;
    let got = &consumer.cached_info().config;
    let what = format!("the consumer {name}");
    check(url, &what, "durable_name", &want.durable_name, &got.durable_name)?;
    check(url, &what, "ack_policy", &want.ack_policy, &got.ack_policy)?;
    check(url, &what, "ack_wait", &want.ack_wait, &got.ack_wait)?;
    check(url, &what, "max_deliver", &want.max_deliver, &got.max_deliver)?;
    check(
        url,
        &what,
        "filter_subject",
        &want.filter_subject,
        &got.filter_subject,
    )?;
    Ok(consumer)
}

/// [`Error::QueueConfig`] when the server's value differs from the one asked for.
fn check<T: PartialEq + std::fmt::Debug>(
    url: &str,
    what: &str,
    field: &'static str,
    asked: &T,
    got: &T,
) -> Result<()> {
    if asked == got {
        return Ok(());
    }
    Err(Error::QueueConfig {
        url: url.to_owned(),
        what: what.to_owned(),
        field,
        asked: format!("{asked:?}"),
        got: format!("{got:?}"),
    })
}

#[async_trait]
impl Queue for NatsQueue {
    fn url(&self) -> &str {
        &self.url
    }

    async fn submit(&self, job: &Job) -> Result<Submitted> {
        super::check_id(&job.id).map_err(|e| Error::QueueJob {
            url: self.url.clone(),
            detail: e,
        })?;
        let payload =
            serde_json::to_vec(job).map_err(|e| Error::Internal(format!("a job does not encode: {e}")))?;
        let mut headers = HeaderMap::new();
        headers.insert(ID_HEADER, job.id.as_str());
        self.publish_raw(&job.id, headers, payload).await
    }

    async fn pull(&self, wait: Duration) -> Result<Option<Arc<dyn Delivery>>> {
        let mut batch = self
            .consumer
            .batch()
            .max_messages(1)
            .expires(wait)
            .messages()
            .await
            .map_err(|e| unavailable(&self.url, "pull a job")(boxed(e)))?;
        match batch.next().await {
            None => Ok(None),
            Some(Ok(message)) => Ok(Some(Arc::new(NatsDelivery::new(message, self.clone())))),
            Some(Err(e)) => Err(unavailable(&self.url, "pull a job")(e)),
        }
    }

    async fn status(&self) -> Result<QueueStatus> {
        let mut jobs = self
            .js
            .get_stream(&self.options.stream)
            .await
            .map_err(|e| unavailable(&self.url, "read the stream's state")(boxed(e)))?;
        let jobs_info = jobs
            .info()
            .await
            .map_err(|e| unavailable(&self.url, "read the stream's state")(boxed(e)))?
            .clone();
        let consumer = self
            .consumer
            .get_info()
            .await
            .map_err(|e| unavailable(&self.url, "read the consumer's state")(boxed(e)))?;
        let dead = self
            .dead_stream()
            .await?
            .get_info()
            .await
            .map_err(|e| unavailable(&self.url, "read the dead-letter stream's state")(boxed(e)))?;
        Ok(QueueStatus {
            url: self.url.clone(),
            stream: self.options.stream.clone(),
            depth: consumer.num_pending,
            in_flight: consumer.num_ack_pending as u64,
            redelivered: consumer.num_redelivered as u64,
            dead_letters: dead.state.messages,
            consumers: jobs_info.state.consumer_count as u64,
            waiting_pulls: consumer.num_waiting as u64,
            messages: jobs_info.state.messages,
            ack_wait_seconds: consumer.config.ack_wait.as_secs(),
            max_deliveries: u32::try_from(consumer.config.max_deliver).unwrap_or(0),
        })
    }

    async fn dead_letters(&self) -> Result<Vec<DeadLetter>> {
        Ok(self
            .dead_messages()
            .await?
            .into_iter()
            .map(|(letter, ..)| letter)
            .collect())
    }

    async fn retry_dead(&self, ids: &[String]) -> Result<Vec<String>> {
        self.retry(ids).await
    }

    async fn watch_given_up(&self) -> Result<()> {
        self.watch().await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{check, credentials};

    #[test]
    fn the_urls_user_and_password_are_read_percent_decoded() {
        assert_eq!(credentials("nats://127.0.0.1:4222"), None);
        assert_eq!(credentials("nats://:pw@h:4222"), None);
        assert_eq!(
            credentials("nats://rvbbit:s3cret@nats:4222"),
            Some(("rvbbit".into(), "s3cret".into()))
        );
        assert_eq!(
            credentials("nats://a%40b:p%3Aw%2F%zz@h"),
            Some(("a@b".into(), "p:w/%zz".into()))
        );
        assert_eq!(
            credentials("nats://only-user@h/x?y=a@b"),
            Some(("only-user".into(), String::new()))
        );
    }

    #[test]
    fn a_setting_the_server_dropped_is_an_error_naming_it() {
        assert!(check("nats://h:4222", "the consumer C", "max_deliver", &5i64, &5i64).is_ok());
        let err = check(
            "nats://h:4222",
            "the consumer C",
            "ack_wait",
            &Duration::from_secs(30),
            &Duration::ZERO,
        )
        .unwrap_err();
        assert_eq!(err.code().code, "RVB-S012");
        let text = err.to_string();
        assert!(text.contains("the consumer C with ack_wait = 0ns"), "{text}");
        assert!(text.contains("asked for 30s"), "{text}");
    }
}
