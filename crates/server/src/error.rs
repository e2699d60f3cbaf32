//! API errors: `{error_id, code, message, hint}` for the client, details only in the server log.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rvbbit_core::ErrorCode;
use rvbbit_core::codes;
use serde::Serialize;

/// An error answered to an HTTP client. Never carries a backtrace or an internal path: `detail` goes to
/// the server log only, under the same `error_id` the client sees.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static ErrorCode,
    message: String,
    hint: String,
    detail: Option<String>,
    diagnostics: Option<Vec<serde_json::Value>>,
}

/// The JSON body of every error response.
#[derive(Debug, Serialize)]
pub struct ErrorBody {
    /// A fresh id; the server log has the details under it.
    pub error_id: String,
    /// The error code (`RVB-A003`, `RVB-S001`, ...); `docs/errors/<code>.md` explains it.
    pub code: &'static str,
    /// What went wrong.
    pub message: String,
    /// How to fix it.
    pub hint: String,
    /// For invalid cascades: every diagnostic (the shape of `rvbbit validate --output json`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diagnostics: Option<Vec<serde_json::Value>>,
}

impl ApiError {
    /// An error with an explicit status and code.
    pub fn new(
        status: StatusCode,
        code: &'static ErrorCode,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            hint: hint.into(),
            detail: None,
            diagnostics: None,
        }
    }

    /// 400 with RVB-A001.
    pub fn bad_request(message: impl Into<String>, hint: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, codes::A_BAD_REQUEST, message, hint)
    }

    /// 404 with RVB-A003.
    pub fn not_found(message: impl Into<String>, hint: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, codes::A_NOT_FOUND, message, hint)
    }

    /// 500 with RVB-I001; `detail` is logged, never sent.
    pub fn internal(detail: impl Into<String>) -> Self {
        ApiError {
            detail: Some(detail.into()),
            ..ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                codes::INTERNAL,
                "the server failed to answer this request",
                "retry; if it persists, give the error_id to whoever runs the server (it is in their log)",
            )
        }
    }

    /// Attach a detail for the server log only.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Attach the diagnostics of an invalid cascade.
    pub fn with_diagnostics(mut self, diagnostics: Vec<serde_json::Value>) -> Self {
        self.diagnostics = Some(diagnostics);
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<rvbbit_store::Error> for ApiError {
    fn from(e: rvbbit_store::Error) -> Self {
        let code = e.code();
        let status = match e {
            rvbbit_store::Error::NotFound { .. } => StatusCode::NOT_FOUND,
            rvbbit_store::Error::Conflict { .. } => StatusCode::CONFLICT,
            rvbbit_store::Error::Busy { .. } | rvbbit_store::Error::Unavailable { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        // Store messages can name files on the server: clients get a generic text for anything but the
        // record-level errors, whose messages only carry ids.
        let message = match e {
            rvbbit_store::Error::NotFound { .. } | rvbbit_store::Error::Conflict { .. } => e.to_string(),
            _ => format!("the event store failed ({})", code.title.to_lowercase()),
        };
        let hint = match e {
            rvbbit_store::Error::NotFound { .. } => "list sessions with `GET /api/v1/sessions`".to_owned(),
            rvbbit_store::Error::Conflict { .. } => "check the session's status first".to_owned(),
            _ => "retry shortly; whoever runs the server finds the cause in its log under this error_id"
                .to_owned(),
        };
        ApiError {
            status,
            code,
            message,
            hint,
            detail: Some(e.to_string()),
            diagnostics: None,
        }
    }
}

impl ApiError {
    /// Log the error (details included) under a fresh error id; return the id and the client body.
    pub fn into_logged(self) -> (String, ErrorBody) {
        let error_id = new_error_id();
        if self.status.is_server_error() {
            tracing::error!(%error_id, code = self.code.code, message = %self.message,
                detail = self.detail.as_deref().unwrap_or(""), "request failed");
        } else {
            tracing::info!(%error_id, code = self.code.code, message = %self.message,
                detail = self.detail.as_deref().unwrap_or(""), "request refused");
        }
        let body = ErrorBody {
            error_id: error_id.clone(),
            code: self.code.code,
            message: self.message,
            hint: self.hint,
            diagnostics: self.diagnostics,
        };
        (error_id, body)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status;
        let (_, body) = self.into_logged();
        (status, Json(body)).into_response()
    }
}

/// A fresh error id (`err_<16 hex>`).
pub(crate) fn new_error_id() -> String {
    format!("err_{}", hex::encode(rand::random::<[u8; 8]>()))
}

/// Handler results.
pub type ApiResult<T> = Result<T, ApiError>;
