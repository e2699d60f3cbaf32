//! One file per platform, and what they share: the replay window and reading form or JSON bodies.

pub mod mattermost;
pub mod slack;
pub mod web;
pub mod webhook;

use rvbbit_core::config::{ChannelConfig, ChannelKind};
use serde_json::{Map, Value};

pub use mattermost::Mattermost;
pub use slack::Slack;
pub use web::Web;
pub use webhook::Webhook;

use crate::adapter::Adapter;
use crate::error::{Error, Result};

/// How far a signed request's timestamp may be from the server's clock, in seconds (5 minutes).
pub const REPLAY_WINDOW_SECONDS: i64 = 300;

/// The adapter for integration `name` configured as `config`.
pub fn build(name: &str, config: &ChannelConfig) -> Box<dyn Adapter> {
    let secret = |key: &str| config.secret_value(key).unwrap_or_default().to_owned();
    let outbound = config.outbound_url.clone().unwrap_or_default();
    match config.kind {
        ChannelKind::Slack => Box::new(Slack::new(
            name,
            secret("signing_secret"),
            secret("token"),
            outbound,
        )),
        ChannelKind::Mattermost => {
            let adapter = Mattermost::new(name, secret("token"), outbound);
            Box::new(match &config.api_url {
                Some(api_url) => adapter.with_rest(api_url, secret("bot_token")),
                None => adapter,
            })
        }
        ChannelKind::Web => Box::new(Web::new(name, config.allowed_origins.clone())),
        _ => Box::new(Webhook::new(name, secret("secret"), outbound)),
    }
}

/// Check a timestamp header against `now`: present, a number, within [`REPLAY_WINDOW_SECONDS`].
pub(crate) fn check_timestamp(integration: &str, header: Option<&str>, now: i64) -> Result<i64> {
    let unverified = |reason: &str| Error::Unverified {
        integration: integration.to_owned(),
        reason: reason.to_owned(),
    };
    let ts: i64 = header
        .ok_or_else(|| unverified("no timestamp header"))?
        .trim()
        .parse()
        .map_err(|_| unverified("the timestamp is not a number"))?;
    if (now - ts).abs() > REPLAY_WINDOW_SECONDS {
        return Err(unverified(
            "the timestamp is more than 5 minutes from the server's clock",
        ));
    }
    Ok(ts)
}

/// The fields of a JSON object or form-encoded body (form values become strings).
pub(crate) fn fields(body: &[u8]) -> Option<Map<String, Value>> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'{') {
        return match serde_json::from_slice(body) {
            Ok(Value::Object(map)) => Some(map),
            _ => None,
        };
    }
    let text = std::str::from_utf8(body).ok()?;
    if !text.contains('=') {
        return None;
    }
    Some(
        url::form_urlencoded::parse(text.as_bytes())
            .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
            .collect(),
    )
}

/// A string field, if present and not empty.
pub(crate) fn text_field(map: &Map<String, Value>, key: &str) -> Option<String> {
    map.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// The JSON body of a POST.
pub(crate) fn json_body(value: &Value) -> Vec<u8> {
    value.to_string().into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_must_be_fresh() {
        assert_eq!(check_timestamp("x", Some("1000"), 1000).unwrap(), 1000);
        assert!(check_timestamp("x", Some("700"), 1000).is_ok());
        let stale = check_timestamp("x", Some("699"), 1000).unwrap_err();
        assert!(stale.to_string().contains("5 minutes"), "{stale}");
        assert!(check_timestamp("x", Some("1301"), 1000).is_err());
        assert!(check_timestamp("x", None, 1000).is_err());
        assert!(check_timestamp("x", Some("soon"), 1000).is_err());
    }

    #[test]
    fn bodies_are_json_objects_or_forms() {
        let j = fields(br#"{"text":"hi"}"#).unwrap();
        assert_eq!(text_field(&j, "text").as_deref(), Some("hi"));
        let f = fields(b"text=%21run+hello&user_id=U1").unwrap();
        assert_eq!(text_field(&f, "text").as_deref(), Some("!run hello"));
        assert!(fields(b"[1]").is_none());
        assert!(fields(b"plain").is_none());
    }
}
