//! Slack: the Events API and slash commands in, `chat.postMessage` out.
//!
//! Inbound requests are verified exactly as Slack documents: the signature is `v0=` and the hex
//! HMAC-SHA256, under the app's signing secret, of `v0:{X-Slack-Request-Timestamp}:{body}`, sent as
//! `X-Slack-Signature`, and the timestamp must be within 5 minutes. A retry (`X-Slack-Retry-Num`) is
//! acknowledged and ignored: the first delivery is already being handled.

use rvbbit_core::config::ChannelKind;
use serde_json::{Value, json};

use super::{check_timestamp, fields, json_body, text_field};
use crate::adapter::{Adapter, Inbound, Outbound, Post, Request, Verified};
use crate::contacts::Contacts;
use crate::error::{Error, Result};
use crate::sign::{constant_time_eq, hmac_hex};

/// Slack's longest message text we send, in characters.
pub const SLACK_MAX_LEN: usize = 4000;

/// A Slack app.
pub struct Slack {
    name: String,
    signing_secret: String,
    token: String,
    api_base: String,
}

impl std::fmt::Debug for Slack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slack")
            .field("name", &self.name)
            .field("api_base", &self.api_base)
            .finish_non_exhaustive()
    }
}

impl Slack {
    /// The app of integration `name`: its signing secret, bot token and API base URL.
    pub fn new(name: &str, signing_secret: String, token: String, api_base: String) -> Self {
        Slack {
            name: name.to_owned(),
            signing_secret,
            token,
            api_base,
        }
    }

    fn bad(&self, reason: &str) -> Error {
        Error::BadRequest {
            integration: self.name.clone(),
            kind: "slack".into(),
            reason: reason.into(),
        }
    }

    fn event(&self, body: &Value) -> Result<Verified> {
        match body["type"].as_str() {
            Some("url_verification") => {
                let challenge = body["challenge"]
                    .as_str()
                    .ok_or_else(|| self.bad("no `challenge`"))?;
                Ok(Verified::Answer(json!({"challenge": challenge})))
            }
            Some("event_callback") => {
                let e = &body["event"];
                let is_message = matches!(e["type"].as_str(), Some("message" | "app_mention"));
                // A bot's message (ours included) or an edit/join/etc. subtype is not a person talking.
                if !is_message || e.get("bot_id").is_some() || e.get("subtype").is_some() {
                    return Ok(Verified::Ignore);
                }
                let user = e["user"]
                    .as_str()
                    .ok_or_else(|| self.bad("the event has no `user`"))?;
                Ok(Verified::Message(Inbound {
                    user: user.to_owned(),
                    user_name: None,
                    text: e["text"].as_str().unwrap_or_default().to_owned(),
                    channel_id: e["channel"].as_str().map(str::to_owned),
                    thread: e["thread_ts"].as_str().map(str::to_owned),
                    contacts: Contacts::default(),
                }))
            }
            _ => Ok(Verified::Ignore),
        }
    }
}

impl Adapter for Slack {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Slack
    }

    fn max_len(&self) -> usize {
        SLACK_MAX_LEN
    }

    fn verify(&self, request: &Request, now: i64) -> Result<Verified> {
        let unverified = |reason: &str| Error::Unverified {
            integration: self.name.clone(),
            reason: reason.to_owned(),
        };
        let ts = check_timestamp(&self.name, request.header("x-slack-request-timestamp"), now)?;
        let given = request
            .header("x-slack-signature")
            .ok_or_else(|| unverified("no X-Slack-Signature header"))?;
        let mut base = format!("v0:{ts}:").into_bytes();
        base.extend_from_slice(&request.body);
        let expected = format!("v0={}", hmac_hex(self.signing_secret.as_bytes(), &base));
        if !constant_time_eq(expected.as_bytes(), given.trim().as_bytes()) {
            return Err(unverified("the signature does not match"));
        }
        if request.header("x-slack-retry-num").is_some() {
            return Ok(Verified::Ignore);
        }
        let map = fields(&request.body).ok_or_else(|| self.bad("the body is neither JSON nor a form"))?;
        if map.contains_key("type") && map.get("command").is_none() {
            return self.event(&Value::Object(map));
        }
        if map.contains_key("payload") {
            return Ok(Verified::Ignore);
        }
        // A slash command: `/rvbbit run hello {}` arrives as command=/rvbbit, text=run hello {}.
        let user = text_field(&map, "user_id").ok_or_else(|| self.bad("no `user_id`"))?;
        let text = text_field(&map, "text").unwrap_or_default();
        Ok(Verified::Message(Inbound {
            user,
            user_name: text_field(&map, "user_name"),
            text: format!("/rvbbit {text}"),
            channel_id: text_field(&map, "channel_id"),
            thread: None,
            contacts: Contacts::default(),
        }))
    }

    fn render(&self, out: &Outbound, _now: i64) -> Result<Post> {
        let mut body = json!({
            "channel": out.channel_id.clone().unwrap_or_else(|| out.user.clone()),
            "text": out.text,
        });
        if let Some(thread) = &out.thread {
            body["thread_ts"] = Value::String(thread.clone());
        }
        Ok(Post {
            url: format!("{}/chat.postMessage", self.api_base.trim_end_matches('/')),
            headers: vec![("authorization".into(), format!("Bearer {}", self.token))],
            body: json_body(&body),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(secret: &str, ts: i64, body: &str) -> Request {
        let sig = format!(
            "v0={}",
            hmac_hex(secret.as_bytes(), format!("v0:{ts}:{body}").as_bytes())
        );
        Request {
            headers: [
                ("x-slack-request-timestamp".to_owned(), ts.to_string()),
                ("x-slack-signature".to_owned(), sig),
            ]
            .into(),
            body: body.as_bytes().to_vec(),
        }
    }

    fn slack() -> Slack {
        Slack::new(
            "ops",
            "8f742231b10e8888abcd99yyyzzz85a5".into(),
            "xoxb-1".into(),
            "http://x/api/".into(),
        )
    }

    #[test]
    fn slacks_documented_example_signature_verifies() {
        // The example of Slack's "Verifying requests from Slack" page.
        let body = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let mut req = signed("8f742231b10e8888abcd99yyyzzz85a5", 1_531_420_618, body);
        assert_eq!(
            req.headers["x-slack-signature"],
            "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
        );
        let v = slack().verify(&req, 1_531_420_618).unwrap();
        let Verified::Message(m) = v else { panic!("{v:?}") };
        assert_eq!((m.user.as_str(), m.text.as_str()), ("U2CERLKJA", "/rvbbit "));
        req.body.push(b'x');
        assert_eq!(
            slack().verify(&req, 1_531_420_618).unwrap_err().code().code,
            "RVB-K002"
        );
    }

    #[test]
    fn a_stale_or_wrongly_signed_request_is_refused() {
        let body =
            r#"{"type":"event_callback","event":{"type":"message","user":"U1","text":"hi","channel":"C1"}}"#;
        let s = slack();
        let good = signed("8f742231b10e8888abcd99yyyzzz85a5", 1000, body);
        assert!(matches!(s.verify(&good, 1000).unwrap(), Verified::Message(m) if m.text == "hi"));
        let e = s.verify(&good, 1000 + 301).unwrap_err();
        assert_eq!(e.status(), 401);
        let wrong = signed("another-secret", 1000, body);
        assert!(s.verify(&wrong, 1000).is_err());
    }

    #[test]
    fn challenges_are_answered_and_bot_messages_ignored() {
        let s = slack();
        let c = signed(
            "8f742231b10e8888abcd99yyyzzz85a5",
            5,
            r#"{"type":"url_verification","challenge":"abc"}"#,
        );
        assert_eq!(
            s.verify(&c, 5).unwrap(),
            Verified::Answer(json!({"challenge": "abc"}))
        );
        let bot = r#"{"type":"event_callback","event":{"type":"message","bot_id":"B1","text":"hi"}}"#;
        assert_eq!(
            s.verify(&signed("8f742231b10e8888abcd99yyyzzz85a5", 5, bot), 5)
                .unwrap(),
            Verified::Ignore
        );
    }

    #[test]
    fn replies_are_chat_post_message_calls_with_the_bot_token() {
        let out = Outbound {
            integration: "ops".into(),
            channel_id: Some("C1".into()),
            thread: Some("1.2".into()),
            user: "U1".into(),
            text: "hello".into(),
        };
        let post = slack().render(&out, 0).unwrap();
        assert_eq!(post.url, "http://x/api/chat.postMessage");
        assert_eq!(
            post.headers,
            [("authorization".to_owned(), "Bearer xoxb-1".to_owned())]
        );
        let body: Value = serde_json::from_slice(&post.body).unwrap();
        assert_eq!(
            body,
            json!({"channel": "C1", "text": "hello", "thread_ts": "1.2"})
        );
    }
}
