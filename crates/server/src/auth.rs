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

/// The cookie the Studio's sign-in page sets (HttpOnly, SameSite=Strict).
pub const COOKIE: &str = "rvbbit_key";

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
    if let Some(v) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(v.trim());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == COOKIE).then_some(value.trim())
        })
}

/// Paths open without a key: the probes, the sign-in page, the Studio's static files, the chat hooks
/// (each verified by its platform's signature or token instead) and the web chat (anonymous visitors,
/// guarded by its limits).
fn is_open(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/login")
        || path.starts_with("/static/")
        || path.starts_with("/hooks/")
        || crate::api::chat::is_chat(path)
}

/// Whether a path is a Studio page (answered with a redirect to sign in, not a JSON 401).
fn is_page(path: &str) -> bool {
    !(path.starts_with("/api/") || path == "/metrics")
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
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    if !state.config.require_key || is_open(&path) {
        return next.run(request).await;
    }
    let page = is_page(&path);
    let next_path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let sign_in =
        move || axum::response::Redirect::to(&format!("/login?next={}", percent(&next_path))).into_response();
    let Some(secret) = presented(request.headers()) else {
        if page {
            return sign_in();
        }
        return unauthorized("this server requires an API key and the request had none");
    };
    match state
        .store
        .key_authenticate(&hash_secret(secret), Timestamp::now())
        .await
    {
        Ok(Some(key)) => {
            tracing::debug!(key_id = %key.key_id, "authenticated");
            let tenant = key
                .tenant
                .unwrap_or_else(|| crate::api::agents::DEFAULT_TENANT.to_owned());
            request
                .extensions_mut()
                .insert(crate::api::agents::Tenant(tenant));
            next.run(request).await
        }
        Ok(None) if page => sign_in(),
        Ok(None) => unauthorized("the API key is unknown or revoked"),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// Percent-encode `s` for a query value (unreserved characters and `/` stay as they are).
pub(crate) fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
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
