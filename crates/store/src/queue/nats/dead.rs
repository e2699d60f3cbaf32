//! Dead letters: jobs given up after their last delivery, kept with the reason in the stream
//! `<stream>_DEAD` (subject `<stream>.dead`) until `rvbbit queue retry-dead` puts them back.
//!
//! A job ends here two ways. A worker whose run of the job's last delivery fails to start copies it
//! here itself ([`NatsDelivery::dead_letter`](super::NatsDelivery)). A job whose workers die or hang on
//! every delivery is never failed by anyone: the server only publishes an advisory
//! (`$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.<stream>.<consumer>`) and leaves the message in the
//! work-queue stream, undelivered; every worker listens for that advisory ([`NatsQueue::watch`]) and
//! moves the job here. Both paths publish with `Nats-Msg-Id: dead-<job sequence>`, so the dead-letter
//! stream's duplicate window keeps one copy when several workers see the same advisory.

use async_nats::HeaderMap;
use async_nats::jetstream::stream::{self, RetentionPolicy, StorageType};
use bytes::Bytes;
use futures::StreamExt;
use rvbbit_core::Timestamp;
use serde::Deserialize;

use super::{ID_HEADER, NatsQueue, boxed, unavailable};
use crate::error::{Error, Result};
use crate::queue::{DeadLetter, QueueOptions};

const REASON: &str = "Rvbbit-Dead-Reason";
const DELIVERIES: &str = "Rvbbit-Deliveries";
const AT: &str = "Rvbbit-Dead-At";

/// The dead-letter stream's configuration.
pub(super) fn stream_config(options: &QueueOptions) -> stream::Config {
    stream::Config {
        name: format!("{}_DEAD", options.stream),
        subjects: vec![format!("{}.dead", options.stream)],
        retention: RetentionPolicy::Limits,
        storage: StorageType::File,
        duplicate_window: options.duplicate_window,
        ..Default::default()
    }
}

/// The part of the server's max-deliveries advisory used here.
#[derive(Debug, Deserialize)]
struct MaxDeliveries {
    stream_seq: u64,
    deliveries: u64,
}

impl NatsQueue {
    pub(super) async fn dead_stream(&self) -> Result<stream::Stream> {
        let name = format!("{}_DEAD", self.options.stream);
        self.js
            .get_stream(&name)
            .await
            .map_err(|e| unavailable(&self.url, format!("open the stream {name}"))(boxed(e)))
    }

    /// Copy a job (its headers and payload) to the dead-letter stream with `reason`.
    pub(super) async fn bury(
        &self,
        job_sequence: u64,
        original: HeaderMap,
        payload: Bytes,
        reason: &str,
        deliveries: u64,
    ) -> Result<()> {
        let mut headers = HeaderMap::new();
        if let Some(id) = original.get(ID_HEADER) {
            headers.insert(ID_HEADER, id.as_str());
        }
        headers.insert(REASON, reason.replace(['\r', '\n'], " ").as_str());
        headers.insert(DELIVERIES, deliveries.to_string().as_str());
        headers.insert(AT, Timestamp::now().to_rfc3339().as_str());
        headers.insert("Nats-Msg-Id", format!("dead-{job_sequence}").as_str());
        let action = "copy a job to the dead-letter stream";
        self.js
            .publish_with_headers(format!("{}.dead", self.options.stream), headers, payload)
            .await
            .map_err(|e| unavailable(&self.url, action)(boxed(e)))?
            .await
            .map_err(|e| unavailable(&self.url, action)(boxed(e)))?;
        tracing::warn!(job_sequence, deliveries, reason, "Job dead-lettered.");
        Ok(())
    }

    /// Remove a job from the work-queue stream.
    pub(super) async fn forget(&self, job_sequence: u64) -> Result<()> {
        let jobs = self
            .js
            .get_stream(&self.options.stream)
            .await
            .map_err(|e| unavailable(&self.url, "open the jobs stream")(boxed(e)))?;
        jobs.delete_message(job_sequence)
            .await
            .map(|_| ())
            .map_err(|e| unavailable(&self.url, "remove a given-up job")(boxed(e)))
    }

    /// Every message of the dead-letter stream with what it says, oldest first.
    pub(super) async fn dead_messages(&self) -> Result<Vec<(DeadLetter, stream::Stream, Bytes)>> {
        let dead = self.dead_stream().await?;
        let info = dead
            .get_info()
            .await
            .map_err(|e| unavailable(&self.url, "read the dead-letter stream")(boxed(e)))?;
        let mut out = Vec::new();
        if info.state.messages == 0 {
            return Ok(out);
        }
        for sequence in info.state.first_sequence..=info.state.last_sequence {
            // A deleted sequence (a retried letter) is a gap: skip it.
            let Ok(message) = dead.get_raw_message(sequence).await else {
                continue;
            };
            let header = |name: &str| {
                message
                    .headers
                    .get(name)
                    .map(|v| v.as_str().to_owned())
                    .unwrap_or_default()
            };
            let letter = DeadLetter {
                id: header(ID_HEADER),
                reason: header(REASON),
                deliveries: header(DELIVERIES).parse().unwrap_or(0),
                sequence,
                at: header(AT),
            };
            out.push((letter, dead.clone(), message.payload));
        }
        Ok(out)
    }

    /// Requeue the dead letters of `ids` (all when empty).
    pub(super) async fn retry(&self, ids: &[String]) -> Result<Vec<String>> {
        let letters = self.dead_messages().await?;
        if let Some(missing) = ids.iter().find(|id| !letters.iter().any(|(l, ..)| &l.id == *id)) {
            return Err(Error::QueueJob {
                url: self.url.clone(),
                detail: format!("no dead letter for submission `{missing}`"),
            });
        }
        let mut done = Vec::new();
        for (letter, dead, payload) in letters {
            if !ids.is_empty() && !ids.contains(&letter.id) {
                continue;
            }
            let mut headers = HeaderMap::new();
            headers.insert(ID_HEADER, letter.id.as_str());
            let msg_id = format!("{}-retry-{}", letter.id, letter.sequence);
            self.publish_raw(&msg_id, headers, payload.to_vec()).await?;
            dead.delete_message(letter.sequence)
                .await
                .map_err(|e| unavailable(&self.url, "remove a retried dead letter")(boxed(e)))?;
            done.push(letter.id);
        }
        Ok(done)
    }

    /// Listen for the server's max-deliveries advisories and move each given-up job to the dead-letter
    /// stream. A failure with one advisory is logged and the next one handled.
    pub(super) async fn watch(&self) -> Result<()> {
        let subject = format!(
            "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{}.{}",
            self.options.stream,
            self.consumer_name()
        );
        let mut advisories = self
            .client
            .subscribe(subject)
            .await
            .map_err(|e| unavailable(&self.url, "listen for given-up jobs")(boxed(e)))?;
        while let Some(advisory) = advisories.next().await {
            if let Err(e) = self.given_up(&advisory.payload).await {
                tracing::warn!(error = %e, "A given-up job could not be dead-lettered.");
            }
        }
        Ok(())
    }

    async fn given_up(&self, advisory: &[u8]) -> Result<()> {
        let advisory: MaxDeliveries = serde_json::from_slice(advisory).map_err(|e| Error::QueueJob {
            url: self.url.clone(),
            detail: format!("a max-deliveries advisory is unreadable: {e}"),
        })?;
        let jobs = self
            .js
            .get_stream(&self.options.stream)
            .await
            .map_err(|e| unavailable(&self.url, "open the jobs stream")(boxed(e)))?;
        // Another worker may have moved it already: then there is nothing left to do.
        let Ok(message) = jobs.get_raw_message(advisory.stream_seq).await else {
            return Ok(());
        };
        let reason = format!(
            "delivered {} times and never acked: each worker running it died, hung or was stopped \
             before it finished (max_deliveries)",
            advisory.deliveries
        );
        self.bury(
            advisory.stream_seq,
            message.headers,
            message.payload,
            &reason,
            advisory.deliveries,
        )
        .await?;
        self.forget(advisory.stream_seq).await
    }
}
