//! Extractors whose rejections are API errors (`{error_id, code, message, hint}`), not plain text.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use rvbbit_core::codes;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body.
pub(crate) struct Body<T>(pub(crate) T);

impl<S, T> FromRequest<S> for Body<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Body(v)),
            Err(JsonRejection::BytesRejection(e)) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    codes::A_TOO_LARGE,
                    "the request body is too large",
                    "keep bodies under 8 MiB; put large data in files the cascade reads",
                ))
            }
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::bad_request(
                "the body must be JSON",
                "send `Content-Type: application/json`",
            )),
            Err(e) => Err(ApiError::bad_request(
                format!("the JSON body cannot be used: {}", e.body_text()),
                "the OpenAPI document at `/api/v1/openapi.json` gives the body's shape",
            )),
        }
    }
}

/// Query parameters.
pub(crate) struct Params<T>(pub(crate) T);

impl<S, T> FromRequestParts<S> for Params<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(Params(v)),
            Err(e @ QueryRejection::FailedToDeserializeQueryString(_)) => Err(ApiError::bad_request(
                format!("invalid query parameters: {}", e.body_text()),
                "the OpenAPI document at `/api/v1/openapi.json` lists each route's parameters",
            )),
            Err(e) => Err(ApiError::bad_request(e.body_text(), "check the query string")),
        }
    }
}
