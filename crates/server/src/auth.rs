//! API keys: creation (the secret is shown once, only its SHA-256 is stored) and the request check.
//!
//! Keys are 256-bit random secrets, so a plain SHA-256 is the right hash: there is nothing to brute-force
//! that a slow password hash would protect (unlike human passwords).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rvbbit_core::{Timestamp, codes};
use rvbbit_store::ApiKey;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::state::AppState;

/// Prefix of every secret, so leaked keys are recognisable by secret scanners.
pub const SECRET_PREFIX: &str = "rvb_";

/// A freshly created key: the record to store and the secret to show once.
#[derive(Debug)]
pub struct NewKey {
    /// The record (hash only).
    pub key: ApiKey,
    /// The secret; never stored.
    pub secret: String,
}

/// Create a key named `name` (not yet stored).
pub fn generate(name: &str) -> NewKey {
    let secret = format!("{SECRET_PREFIX}{}", hex::encode(rand::random::<[u8; 32]>()));
    let key_id = format!("key_{}", hex::encode(rand::random::<[u8; 6]>()));
    NewKey {
        key: ApiKey::new(key_id, name, hash_secret(&secret)),
        secret,
    }
}

/// SHA-256 hex of a secret.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.trim().as_bytes()))
}

/// The secret a request presents: `Authorization: Bearer KEY` or `X-API-Key: KEY`.
fn presented(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let v = v.trim();
        if let Some(token) = v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")) {
            return Some(token.trim());
        }
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

fn unauthorized(message: &str) -> Response {
    let mut response = ApiError::new(
        StatusCode::UNAUTHORIZED,
        codes::A_UNAUTHORIZED,
        message,
        "send `Authorization: Bearer KEY` with a key created by `rvbbit keys create`",
    )
    .into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    response
}

/// Middleware: when the server requires keys, every route but the probes needs a valid, unrevoked one.
pub(crate) async fn require_key(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    if !state.config.require_key || matches!(request.uri().path(), "/healthz" | "/readyz") {
        return next.run(request).await;
    }
    let Some(secret) = presented(request.headers()) else {
        return unauthorized("this server requires an API key and the request had none");
    };
    match state
        .store
        .key_authenticate(&hash_secret(secret), Timestamp::now())
        .await
    {
        Ok(Some(key)) => {
            tracing::debug!(key_id = %key.key_id, "authenticated");
            next.run(request).await
        }
        Ok(None) => unauthorized("the API key is unknown or revoked"),
        Err(e) => ApiError::from(e).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_prefixed_and_only_their_hash_is_kept() {
        let a = generate("ci");
        let b = generate("ci");
        assert!(a.secret.starts_with(SECRET_PREFIX) && a.secret.len() == 4 + 64);
        assert_ne!(a.secret, b.secret);
        assert_ne!(a.key.key_id, b.key.key_id);
        assert_eq!(a.key.secret_hash, hash_secret(&a.secret));
        assert!(!a.key.secret_hash.contains(&a.secret[4..]));
    }

    #[test]
    fn bearer_and_x_api_key_headers_are_read() {
        let mut h = HeaderMap::new();
        assert_eq!(presented(&h), None);
        h.insert("x-api-key", "rvb_1".parse().unwrap());
        assert_eq!(presented(&h), Some("rvb_1"));
        h.insert(header::AUTHORIZATION, "Bearer rvb_2".parse().unwrap());
        assert_eq!(presented(&h), Some("rvb_2"));
    }
}
