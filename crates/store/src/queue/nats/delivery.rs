//! One delivery of a job from the shared pull consumer: progress, ack, nak, dead letter.

use std::time::Duration;

use async_nats::jetstream::{self, AckKind};
use async_trait::async_trait;

use super::{ID_HEADER, NatsQueue, unavailable};
use crate::error::{Error, Result};
use crate::queue::{Delivery, Job};

/// A job delivered to this worker.
#[derive(Debug)]
pub struct NatsDelivery {
    message: jetstream::Message,
    queue: NatsQueue,
    id: Option<String>,
    attempt: u64,
    stream_sequence: u64,
}

impl NatsDelivery {
    pub(super) fn new(message: jetstream::Message, queue: NatsQueue) -> Self {
        let (attempt, stream_sequence) = message
            .info()
            .map(|i| (u64::try_from(i.delivered).unwrap_or(1), i.stream_sequence))
            .unwrap_or((1, 0));
        let id = message
            .headers
            .as_ref()
            .and_then(|h| h.get(ID_HEADER))
            .map(|v| v.as_str().to_owned());
        NatsDelivery {
            message,
            queue,
            id,
            attempt,
            stream_sequence,
        }
    }

    async fn send(&self, kind: AckKind, action: &str) -> Result<()> {
        self.message
            .ack_with(kind)
            .await
            .map_err(|e| unavailable(&self.queue.url, action)(e))
    }
}

#[async_trait]
impl Delivery for NatsDelivery {
    fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    fn job(&self) -> Result<Job> {
        let job: Job = serde_json::from_slice(&self.message.payload).map_err(|e| Error::QueueJob {
            url: self.queue.url.clone(),
            detail: format!(
                "message {} on `{}` is not a job: {e}",
                self.stream_sequence, self.message.subject
            ),
        })?;
        if self.id.as_deref() != Some(job.id.as_str()) {
            return Err(Error::QueueJob {
                url: self.queue.url.clone(),
                detail: format!(
                    "message {} names submission `{}` in its body but {:?} in its `{ID_HEADER}` header",
                    self.stream_sequence, job.id, self.id
                ),
            });
        }
        Ok(job)
    }

    fn attempt(&self) -> u64 {
        self.attempt
    }

    fn max_deliveries(&self) -> u64 {
        self.queue.max_deliver
    }

    async fn progress(&self) -> Result<()> {
        self.send(AckKind::Progress, "report progress on a job").await
    }

    async fn ack(&self) -> Result<()> {
        self.message
            .double_ack()
            .await
            .map_err(|e| unavailable(&self.queue.url, "ack a job")(e))
    }

    async fn nak(&self, delay: Duration) -> Result<()> {
        self.send(AckKind::Nak(Some(delay)), "nak a job").await
    }

    async fn dead_letter(&self, reason: &str) -> Result<()> {
        self.queue
            .bury(
                self.stream_sequence,
                self.message.headers.clone().unwrap_or_default(),
                self.message.payload.clone(),
                reason,
                self.attempt,
            )
            .await?;
        self.send(AckKind::Term, "stop a job's redelivery").await?;
        // A terminated message stays in a work-queue stream on some servers: remove it (it may be gone).
        if let Err(e) = self.queue.forget(self.stream_sequence).await {
            tracing::debug!(error = %e, "The given-up job was already removed.");
        }
        Ok(())
    }
}
