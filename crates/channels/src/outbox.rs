//! Sending replies: one task per integration takes whole replies (already split) in order and posts
//! their parts one by one.
//!
//! A part that meets a connection error or a 5xx is retried after 1 s, 5 s and 15 s
//! ([`RETRY_SCHEDULE`]), then dropped with a warning. A 429 is not a failure: the task waits as long as
//! `Retry-After` says (1 s without one, at most 15 minutes) and posts the same part again, so the reply
//! and everything queued behind it stay in order until the platform takes them. Waits use tokio's
//! clock, so tests run them on a paused clock.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::adapter::{Adapter, Outbound, Post};
use crate::split::split;

/// The waits before the retries of a part that failed with a connection error or a 5xx.
pub const RETRY_SCHEDULE: [Duration; 3] = [
    Duration::from_secs(1),
    Duration::from_secs(5),
    Duration::from_secs(15),
];
/// Replies waiting per integration before senders wait.
const QUEUE: usize = 256;
/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(900);
/// Time limit of one POST.
const POST_TIMEOUT: Duration = Duration::from_secs(20);

/// The unix time in seconds (signatures and replay windows are in wall-clock time).
pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The sending side of one integration's queue. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Outbox {
    tx: mpsc::Sender<Vec<Outbound>>,
    max_len: usize,
}

impl Outbox {
    /// Start the integration's sending task on `tasks`; it ends when `shutdown` is cancelled or every
    /// sender is dropped.
    pub(crate) fn spawn(
        adapter: Arc<dyn Adapter>,
        http: reqwest::Client,
        tasks: &TaskTracker,
        shutdown: CancellationToken,
    ) -> Outbox {
        let (tx, rx) = mpsc::channel(QUEUE);
        let max_len = adapter.max_len();
        tasks.spawn(run(adapter, http, rx, shutdown));
        Outbox { tx, max_len }
    }

    /// Queue `text` as a reply shaped like `template`, split at the channel's limit. Waits while the
    /// queue is full.
    pub(crate) async fn reply(&self, template: &Outbound, text: &str) {
        let parts: Vec<Outbound> = split(text, self.max_len)
            .into_iter()
            .map(|part| Outbound {
                text: part,
                ..template.clone()
            })
            .collect();
        if parts.is_empty() {
            return;
        }
        if self.tx.send(parts).await.is_err() {
            tracing::warn!(integration = %template.integration, "A reply was dropped: the integration is shutting down.");
        }
    }
}

async fn run(
    adapter: Arc<dyn Adapter>,
    http: reqwest::Client,
    mut rx: mpsc::Receiver<Vec<Outbound>>,
    shutdown: CancellationToken,
) {
    loop {
        let parts = tokio::select! {
            () = shutdown.cancelled() => return,
            next = rx.recv() => match next {
                Some(parts) => parts,
                None => return,
            },
        };
        for part in parts {
            if !deliver(adapter.as_ref(), &http, &part, &shutdown).await {
                return;
            }
        }
    }
}

/// What one POST came to.
enum Attempt {
    Sent,
    /// 429: wait this long and post again.
    Later(Duration),
    /// A connection error or 5xx.
    Transient(String),
    /// Anything else (4xx, a bad URL): retrying would not help.
    Permanent(String),
}

/// Post one part until it is sent, dropped, or shutdown comes (then false).
async fn deliver(
    adapter: &dyn Adapter,
    http: &reqwest::Client,
    part: &Outbound,
    shutdown: &CancellationToken,
) -> bool {
    let mut retries = RETRY_SCHEDULE.iter();
    loop {
        let wait = match attempt(adapter, http, part).await {
            Attempt::Sent => return true,
            Attempt::Later(wait) => wait,
            Attempt::Transient(why) => match retries.next() {
                Some(wait) => {
                    tracing::info!(integration = %part.integration, error = %why, "A reply part will be retried.");
                    *wait
                }
                None => {
                    tracing::warn!(integration = %part.integration, error = %why, "A reply part was dropped after its retries.");
                    return true;
                }
            },
            Attempt::Permanent(why) => {
                tracing::warn!(integration = %part.integration, error = %why, "A reply part was refused by the platform.");
                return true;
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => return false,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

async fn attempt(adapter: &dyn Adapter, http: &reqwest::Client, part: &Outbound) -> Attempt {
    let post: Post = match adapter.render(part, unix_now()) {
        Ok(p) => p,
        Err(e) => return Attempt::Permanent(e.to_string()),
    };
    let mut request = http
        .post(&post.url)
        .timeout(POST_TIMEOUT)
        .header("content-type", "application/json")
        .body(post.body);
    for (name, value) in &post.headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) => return Attempt::Transient(e.to_string()),
    };
    let status = response.status().as_u16();
    match status {
        200..=299 => Attempt::Sent,
        429 => {
            let after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map_or(Duration::from_secs(1), Duration::from_secs);
            Attempt::Later(after.min(MAX_RETRY_AFTER))
        }
        500..=599 => Attempt::Transient(format!("HTTP {status}")),
        _ => Attempt::Permanent(format!("HTTP {status}")),
    }
}
