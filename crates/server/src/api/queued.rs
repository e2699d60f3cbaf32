//! `POST /api/v1/runs?queue=true`: enqueue the validated cascade as a job for `rvbbit worker`s (as
//! `rvbbit submit` does) instead of running it in this server. The job carries the cascade's text, so
//! every worker runs exactly what was validated here; a `submission_id` deduplicates retries within the
//! queue's duplicate window.

use std::sync::Arc;

use axum::Json;
use axum::http::StatusCode;
use rvbbit_core::{Timestamp, codes};
use rvbbit_store::{Job, Queue, QueueOptions};
use serde_json::{Value, json};
use tokio::sync::OnceCell;

use crate::error::{ApiError, ApiResult};

/// The queue this server enqueues to: opened at the first queued run, then shared.
#[derive(Debug, Default)]
pub(crate) struct QueueDoor {
    target: Option<(String, QueueOptions)>,
    open: OnceCell<Arc<dyn Queue>>,
}

impl QueueDoor {
    /// A door to the queue at `url` with `options`; `None` when no queue is configured.
    pub(crate) fn new(target: Option<(String, QueueOptions)>) -> Self {
        QueueDoor {
            target,
            open: OnceCell::new(),
        }
    }

    async fn queue(&self) -> ApiResult<&Arc<dyn Queue>> {
        let Some((url, options)) = &self.target else {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                codes::C_INVALID,
                "this server has no job queue: `queue=true` cannot be served",
                "the operator sets `[queue] url = \"nats://HOST:4222\"` for `rvbbit serve`; or drop \
                 `queue=true` to run the cascade in this server",
            ));
        };
        self.open
            .get_or_try_init(|| async { rvbbit_store::queue::open(url, options).await })
            .await
            .map_err(queue_error)
    }
}

/// A queue failure as an API error: 503 when it cannot be reached; the URL stays on the server.
fn queue_error(e: rvbbit_store::Error) -> ApiError {
    tracing::warn!(error = %e, "The job queue failed a queued run.");
    let unavailable = matches!(e, rvbbit_store::Error::QueueUnavailable { .. });
    ApiError::new(
        if unavailable {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        },
        e.code(),
        format!("the job queue failed ({})", e.code().title.to_lowercase()),
        if unavailable {
            "try again later; the server's operator checks that the NATS server of `queue.url` runs"
        } else {
            "the server's operator finds the cause in the server's log"
        },
    )
}

/// What a queued run needs besides the validated cascade.
pub(crate) struct Queued<'a> {
    /// The cascade's path under a root (shown, and the job's file name).
    pub(crate) cascade_file: &'a str,
    /// The validated text.
    pub(crate) cascade_text: String,
    pub(crate) input: Value,
    /// The client's submission id, if any.
    pub(crate) submission_id: Option<&'a str>,
}

/// Enqueue; 202 with the submission id, whether it was a duplicate, and where its sessions will show.
pub(crate) async fn enqueue(door: &QueueDoor, q: Queued<'_>) -> ApiResult<(StatusCode, Json<Value>)> {
    let id = match q.submission_id {
        Some(id) => {
            rvbbit_store::queue::check_id(id).map_err(|e| {
                ApiError::bad_request(
                    format!("`submission_id`: {e}"),
                    r#"for example `"submission_id": "order-1182"`"#,
                )
            })?;
            id.to_owned()
        }
        None => rvbbit_core::SessionId::new_woodland().to_string(),
    };
    let job = Job {
        id,
        cascade_file: q.cascade_file.to_owned(),
        cascade_text: q.cascade_text,
        input: q.input,
        metadata: [("origin".to_owned(), "http".to_owned())].into(),
        submitted_at: Timestamp::now().to_rfc3339(),
        bundle: None,
    };
    let submitted = door.queue().await?.submit(&job).await.map_err(queue_error)?;
    let caller = format!("queue-{}", submitted.id);
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "submission_id": submitted.id,
            "duplicate": submitted.duplicate,
            "sequence": submitted.sequence,
            "caller_id": caller,
            "status": "queued",
            "links": {"sessions": format!("/api/v1/sessions?caller_id={caller}")},
        })),
    ))
}
