//! The generic webhook: JSON in and out, HMAC-SHA256 signed both ways.
//!
//! A request carries `X-Rvbbit-Timestamp: <unix seconds>` and `X-Rvbbit-Signature: sha256=<hex>`, the
//! HMAC-SHA256 under the integration's `secret` of `{timestamp}.{body}`; the timestamp must be within 5
//! minutes. Replies are signed the same way.

use rvbbit_core::config::ChannelKind;
use serde_json::json;

use super::{check_timestamp, json_body, text_field};
use crate::adapter::{Adapter, Inbound, Outbound, Post, Request, Verified};
use crate::contacts::Contacts;
use crate::error::{Error, Result};
use crate::sign::{constant_time_eq, hmac_hex};

/// The webhook's longest message, in characters.
pub const WEBHOOK_MAX_LEN: usize = 16_000;
/// The timestamp header of both directions.
pub const TIMESTAMP_HEADER: &str = "x-rvbbit-timestamp";
/// The signature header of both directions.
pub const SIGNATURE_HEADER: &str = "x-rvbbit-signature";

/// `sha256=<hex>` for `body` sent at `ts` under `secret`.
pub fn signature(secret: &str, ts: i64, body: &[u8]) -> String {
    let mut base = format!("{ts}.").into_bytes();
    base.extend_from_slice(body);
    format!("sha256={}", hmac_hex(secret.as_bytes(), &base))
}

/// A signed JSON webhook pair.
pub struct Webhook {
    name: String,
    secret: String,
    url: String,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("name", &self.name)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Webhook {
    /// The webhook of integration `name`: its secret and the URL replies are posted to.
    pub fn new(name: &str, secret: String, url: String) -> Self {
        Webhook {
            name: name.to_owned(),
            secret,
            url,
        }
    }
}

/// The facts the signed body vouches for: `email` with `"email_verified": true`, `phone` with
/// `"phone_verified": true` (anything else, such as `"true"` or a missing flag, vouches for nothing).
fn contacts(map: &serde_json::Map<String, serde_json::Value>) -> Contacts {
    let vouched = |fact: &str, flag: &str| {
        map.get(fact)
            .and_then(serde_json::Value::as_str)
            .filter(|_| map.get(flag) == Some(&serde_json::Value::Bool(true)))
    };
    Contacts::verified(
        vouched("email", "email_verified"),
        vouched("phone", "phone_verified"),
    )
}

impl Adapter for Webhook {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Webhook
    }

    fn max_len(&self) -> usize {
        WEBHOOK_MAX_LEN
    }

    fn verify(&self, request: &Request, now: i64) -> Result<Verified> {
        let ts = check_timestamp(&self.name, request.header(TIMESTAMP_HEADER), now)?;
        let given = request.header(SIGNATURE_HEADER).unwrap_or_default();
        let expected = signature(&self.secret, ts, &request.body);
        if !constant_time_eq(expected.as_bytes(), given.trim().as_bytes()) {
            return Err(Error::Unverified {
                integration: self.name.clone(),
                reason: "the signature does not match".into(),
            });
        }
        let bad = |reason: &str| Error::BadRequest {
            integration: self.name.clone(),
            kind: "webhook".into(),
            reason: reason.into(),
        };
        let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(&request.body) else {
            return Err(bad("the body is not a JSON object"));
        };
        let user = text_field(&map, "user").ok_or_else(|| bad("no `user`"))?;
        let text = text_field(&map, "text").ok_or_else(|| bad("no `text`"))?;
        Ok(Verified::Message(Inbound {
            user,
            user_name: None,
            text,
            channel_id: text_field(&map, "channel_id"),
            thread: text_field(&map, "thread"),
            contacts: contacts(&map),
        }))
    }

    fn render(&self, out: &Outbound, now: i64) -> Result<Post> {
        let body = json_body(&json!({
            "integration": out.integration, "channel_id": out.channel_id, "thread": out.thread,
            "user": out.user, "text": out.text,
        }));
        Ok(Post {
            url: self.url.clone(),
            headers: vec![
                (TIMESTAMP_HEADER.into(), now.to_string()),
                (SIGNATURE_HEADER.into(), signature(&self.secret, now, &body)),
            ],
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_both_ways_and_stale_requests_are_refused() {
        let w = Webhook::new("hook", "s3cret".into(), "http://x/in".into());
        let body = br#"{"user":"u1","text":"hi","channel_id":"c"}"#.to_vec();
        let req = |ts: i64, sig: String| Request {
            headers: [
                (TIMESTAMP_HEADER.to_owned(), ts.to_string()),
                (SIGNATURE_HEADER.to_owned(), sig),
            ]
            .into(),
            body: body.clone(),
        };
        let ok = w.verify(&req(100, signature("s3cret", 100, &body)), 150).unwrap();
        assert!(matches!(ok, Verified::Message(m) if m.user == "u1" && m.text == "hi"));
        assert!(w.verify(&req(100, signature("other", 100, &body)), 150).is_err());
        assert!(
            w.verify(&req(100, signature("s3cret", 100, &body)), 401).is_err(),
            "stale"
        );
        let out = Outbound {
            integration: "hook".into(),
            channel_id: Some("c".into()),
            thread: None,
            user: "u1".into(),
            text: "yo".into(),
        };
        let post = w.render(&out, 42).unwrap();
        let vouched = |body: &str| {
            let b = body.as_bytes().to_vec();
            let r = Request {
                headers: [
                    (TIMESTAMP_HEADER.to_owned(), "100".to_owned()),
                    (SIGNATURE_HEADER.to_owned(), signature("s3cret", 100, &b)),
                ]
                .into(),
                body: b,
            };
            match w.verify(&r, 100).unwrap() {
                Verified::Message(m) => m.contacts,
                other => panic!("{other:?}"),
            }
        };
        let c = vouched(
            r#"{"user":"u","text":"t","email":"A@B.io","email_verified":true,"phone":"+1 555 123 4567","phone_verified":true}"#,
        );
        assert_eq!(c.facts(), ["email:a@b.io", "phone:+15551234567"]);
        for unvouched in [
            r#"{"user":"u","text":"t","email":"a@b.io"}"#,
            r#"{"user":"u","text":"t","email":"a@b.io","email_verified":"true"}"#,
            r#"{"user":"u","text":"t","email":"not-an-email","email_verified":true}"#,
            r#"{"user":"u","text":"t","phone":"+15551234567","email_verified":true}"#,
        ] {
            assert!(vouched(unvouched).is_empty(), "{unvouched}");
        }
        let sig = &post.headers[1].1;
        assert_eq!(sig, &signature("s3cret", 42, &post.body));
    }
}
