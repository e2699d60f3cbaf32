//! The `Host` check of a keyless server: it answers only requests addressed to a loopback name or a
//! configured one, so a web page on another site cannot reach it through DNS rebinding (the page's own
//! host name resolving to 127.0.0.1 after it loaded).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rvbbit_core::codes;

use crate::error::ApiError;
use crate::state::AppState;

/// Middleware: with API keys off, refuse (403, RVB-A006) a request whose `Host` is neither `localhost`,
/// a loopback address nor one of `server.allowed_hosts`. A request without `Host` (HTTP/1.0 tools; never
/// a browser) passes. With keys on, every request is authenticated anyway and `Host` is not checked.
pub(crate) async fn check_host(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    if state.config.require_key {
        return next.run(request).await;
    }
    let host = request
        .headers()
        .get(header::HOST)
        .map(|v| v.to_str().map(str::to_owned));
    match host {
        None => next.run(request).await,
        Some(Ok(host)) if allowed(&host, &state.config.allowed_hosts) => next.run(request).await,
        Some(host) => {
            let shown: String = host
                .unwrap_or_default()
                .chars()
                .filter(|c| !c.is_control())
                .take(100)
                .collect();
            ApiError::new(
                StatusCode::FORBIDDEN,
                codes::A_HOST,
                format!("this server does not answer requests for host `{shown}`"),
                "open it as http://127.0.0.1:PORT or http://localhost:PORT, add the name to \
                 `server.allowed_hosts`, or require API keys",
            )
            .into_response()
        }
    }
}

/// Whether `host` (a `Host` header value, with or without a port) names loopback or an allowed name.
pub(crate) fn allowed(host: &str, extra: &[String]) -> bool {
    let name = strip_port(host.trim()).to_ascii_lowercase();
    let name = name.strip_suffix('.').unwrap_or(&name);
    if name == "localhost" || name.ends_with(".localhost") {
        return true;
    }
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    if bare.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback()) {
        return true;
    }
    extra.iter().any(|h| {
        let h = h.trim().to_ascii_lowercase();
        strip_port(&h) == name
    })
}

/// `name:port` → `name`; `[v6]:port` → `[v6]`; a bare IPv6 address stays as it is.
fn strip_port(host: &str) -> &str {
    if let Some(end) = host.strip_prefix('[').and_then(|rest| rest.find(']')) {
        return &host[..end + 2];
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names_and_configured_hosts_pass_and_others_do_not() {
        for ok in [
            "localhost",
            "localhost:5050",
            "LOCALHOST.:1",
            "app.localhost:80",
            "127.0.0.1:5050",
            "127.8.9.1",
            "[::1]:5050",
            "[::1]",
        ] {
            assert!(allowed(ok, &[]), "{ok}");
        }
        for bad in [
            "attacker.example:5050",
            "attacker.example",
            "localhost.attacker.example",
            "127.0.0.1.nip.io",
            "10.0.0.1:5050",
            "[::2]:80",
            "",
            "0.0.0.0:5050",
        ] {
            assert!(!allowed(bad, &[]), "{bad}");
        }
        let extra = vec!["Studio.Example.com".to_owned()];
        assert!(allowed("studio.example.com:5050", &extra));
        assert!(!allowed("other.example.com", &extra));
    }
}
