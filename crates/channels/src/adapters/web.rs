//! The web chat: the page `rvbbit serve` shows at `/chat/{NAME}` posts JSON
//! (`{"visitor": "…", "text": "…"}`) to `/chat/{NAME}/messages` and reads replies from a Server-Sent
//! Events stream ([`crate::web`]). There is no secret: anyone who can open the page may write, so the
//! limits (message size, rate per visitor, streams at once) do the guarding. A browser's `Origin`
//! must be the server's own or one of `allowed_origins`.
//!
//! Replies do not travel as HTTP POSTs: [`Adapter::render`] is never used for this kind and answers a
//! configuration error if it is called.

use rvbbit_core::config::ChannelKind;
use serde_json::Value;

use super::text_field;
use crate::adapter::{Adapter, Inbound, Outbound, Post, Request, Verified};
use crate::contacts::Contacts;
use crate::error::{Error, Result};

/// The longest reply shown as one message on the page, in characters. Splitting is not needed for the
/// web (a longer reply, which no model sends in practice, would show as several messages).
pub const WEB_MAX_LEN: usize = 65_536;
/// Shortest visitor id.
pub const VISITOR_MIN: usize = 8;
/// Longest visitor id.
pub const VISITOR_MAX: usize = 64;

/// Why `visitor` is not a visitor id (8 to 64 ASCII letters, digits, `_` or `-`), if it is not.
pub fn visitor_problem(visitor: &str) -> Option<String> {
    let ok_len = (VISITOR_MIN..=VISITOR_MAX).contains(&visitor.len());
    let ok_chars = visitor
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
    (!(ok_len && ok_chars)).then(|| {
        format!(
            "the visitor id must be {VISITOR_MIN} to {VISITOR_MAX} letters, digits, `_` or `-` (the page \
             makes a random one)"
        )
    })
}

/// Why `text` cannot be a message (empty, or a control character other than a line break or tab).
pub fn text_problem(text: &str) -> Option<String> {
    if text.trim().is_empty() {
        return Some("the message is empty".into());
    }
    text.chars()
        .find(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        .map(|c| {
            format!(
                "the message holds the control character U+{:04X}; only line breaks and tabs are allowed",
                u32::from(c)
            )
        })
}

/// One web chat integration.
#[derive(Debug)]
pub struct Web {
    name: String,
    allowed_origins: Vec<String>,
}

impl Web {
    /// The web chat `name`, accepting browser requests from the server's own origin and
    /// `allowed_origins`.
    pub fn new(name: &str, allowed_origins: Vec<String>) -> Self {
        Web {
            name: name.to_owned(),
            allowed_origins,
        }
    }

    /// Whether a browser request's `Origin` may post: none (not a browser), the server's own (its host
    /// is the request's `Host` or `X-Forwarded-Host`), or one of `allowed_origins`.
    fn origin_allowed(&self, request: &Request) -> bool {
        let Some(origin) = request.header("origin") else {
            return true;
        };
        let origin = origin.trim().trim_end_matches('/');
        if self.allowed_origins.iter().any(|a| a == origin) {
            return true;
        }
        let host = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .unwrap_or_default();
        !host.is_empty()
            && ["host", "x-forwarded-host"]
                .iter()
                .filter_map(|h| request.header(h))
                .any(|h| h.trim().eq_ignore_ascii_case(host))
    }
}

impl Adapter for Web {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Web
    }

    fn max_len(&self) -> usize {
        WEB_MAX_LEN
    }

    fn verify(&self, request: &Request, _now: i64) -> Result<Verified> {
        if !self.origin_allowed(request) {
            return Err(Error::Unverified {
                integration: self.name.clone(),
                reason: format!(
                    "the page's origin `{}` is neither this server's nor in `allowed_origins`",
                    request.header("origin").unwrap_or_default()
                ),
            });
        }
        let bad = |reason: String| Error::BadRequest {
            integration: self.name.clone(),
            kind: "web".into(),
            reason,
        };
        let Ok(Value::Object(map)) = serde_json::from_slice(&request.body) else {
            return Err(bad(
                "the body is not a JSON object like {\"visitor\": \"…\", \"text\": \"…\"}".into(),
            ));
        };
        let visitor = text_field(&map, "visitor").ok_or_else(|| bad("no `visitor`".into()))?;
        if let Some(why) = visitor_problem(&visitor) {
            return Err(bad(why));
        }
        let text = map
            .get("text")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("no `text`".into()))?;
        if let Some(why) = text_problem(text) {
            return Err(bad(why));
        }
        Ok(Verified::Message(Inbound {
            user: visitor,
            user_name: None,
            text: text.to_owned(),
            channel_id: None,
            thread: None,
            // Visitors are anonymous: no contact facts, ever.
            contacts: Contacts::default(),
        }))
    }

    fn render(&self, _out: &Outbound, _now: i64) -> Result<Post> {
        Err(Error::Config {
            integration: self.name.clone(),
            reason: "web chat replies go to the visitor's stream, not to a URL".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(origin: Option<&str>, body: &str) -> Request {
        let mut headers =
            std::collections::BTreeMap::from([("host".to_owned(), "127.0.0.1:5050".to_owned())]);
        if let Some(o) = origin {
            headers.insert("origin".into(), o.into());
        }
        Request {
            headers,
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn visitors_texts_and_origins_are_checked() {
        let web = Web::new("site", vec!["https://www.example.com".into()]);
        let ok = r#"{"visitor":"v_0123456789","text":"Hello\nthere"}"#;
        for origin in [
            None,
            Some("http://127.0.0.1:5050"),
            Some("https://www.example.com"),
        ] {
            let v = web.verify(&request(origin, ok), 0).unwrap();
            assert!(
                matches!(v, Verified::Message(m) if m.user == "v_0123456789" && m.text == "Hello\nthere")
            );
        }
        let e = web
            .verify(&request(Some("https://evil.example"), ok), 0)
            .unwrap_err();
        assert_eq!(e.code().code, "RVB-K002");
        for (body, why) in [
            (r#"{"visitor":"short","text":"hi"}"#, "visitor id"),
            (r#"{"visitor":"has space 123","text":"hi"}"#, "visitor id"),
            (r#"{"visitor":"v_0123456789","text":"  "}"#, "empty"),
            (r#"{"visitor":"v_0123456789","text":"bell\u0007"}"#, "U+0007"),
            (r#"{"visitor":"v_0123456789","text":"nul\u0000"}"#, "U+0000"),
            (r#"{"visitor":"v_0123456789"}"#, "no `text`"),
            ("[1]", "JSON object"),
        ] {
            let e = web.verify(&request(None, body), 0).unwrap_err();
            assert_eq!(e.status(), 400, "{body}");
            assert!(e.to_string().contains(why), "{body}: {e}");
        }
        assert!(
            web.render(
                &Outbound {
                    integration: "site".into(),
                    channel_id: None,
                    thread: None,
                    user: "v".into(),
                    text: "x".into(),
                },
                0
            )
            .is_err()
        );
    }
}
