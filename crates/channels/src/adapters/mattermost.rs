//! Mattermost: an outgoing webhook or a slash command in (form-encoded or JSON, with the integration's
//! `token` field checked), an incoming webhook out.

use rvbbit_core::config::ChannelKind;
use serde_json::json;

use super::{fields, json_body, text_field};
use crate::adapter::{Adapter, Inbound, Outbound, Post, Request, Verified};
use crate::contacts::Contacts;
use crate::error::{Error, Result};
use crate::sign::constant_time_eq;

/// Mattermost's longest post, in characters.
pub const MATTERMOST_MAX_LEN: usize = 16_383;

/// A Mattermost outgoing webhook (or slash command) and incoming webhook pair, or the REST API for
/// replies.
pub struct Mattermost {
    name: String,
    token: String,
    incoming_url: String,
    /// `(api_url, bot_token)`: replies are `POST {api_url}/api/v4/posts` in the inbound's channel.
    rest: Option<(String, String)>,
}

impl std::fmt::Debug for Mattermost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mattermost")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Mattermost {
    /// The pair of integration `name`: the outgoing webhook's token and the incoming webhook's URL.
    pub fn new(name: &str, token: String, incoming_url: String) -> Self {
        Mattermost {
            name: name.to_owned(),
            token,
            incoming_url,
            rest: None,
        }
    }

    /// Replying through the REST API of the server at `api_url` with `bot_token`, in place of the
    /// incoming webhook.
    #[must_use]
    pub fn with_rest(mut self, api_url: &str, bot_token: String) -> Self {
        self.rest = Some((api_url.trim_end_matches('/').to_owned(), bot_token));
        self
    }
}

impl Adapter for Mattermost {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Mattermost
    }

    fn max_len(&self) -> usize {
        MATTERMOST_MAX_LEN
    }

    fn verify(&self, request: &Request, _now: i64) -> Result<Verified> {
        let unverified = |reason: &str| Error::Unverified {
            integration: self.name.clone(),
            reason: reason.to_owned(),
        };
        // Without a readable body there is no token, so nothing is verified.
        let map = fields(&request.body).ok_or_else(|| unverified("the body is neither JSON nor a form"))?;
        let token = text_field(&map, "token").ok_or_else(|| unverified("no `token` field"))?;
        if !constant_time_eq(token.as_bytes(), self.token.as_bytes()) {
            return Err(unverified("the token does not match"));
        }
        let user = text_field(&map, "user_id").ok_or_else(|| Error::BadRequest {
            integration: self.name.clone(),
            kind: "mattermost".into(),
            reason: "no `user_id`".into(),
        })?;
        let mut text = text_field(&map, "text").unwrap_or_default();
        if text_field(&map, "command").is_some() {
            text = format!("/rvbbit {text}");
        } else if let Some(trigger) = text_field(&map, "trigger_word")
            && let Some(rest) = text.strip_prefix(&trigger)
        {
            text = rest.trim_start().to_owned();
        }
        Ok(Verified::Message(Inbound {
            user,
            user_name: text_field(&map, "user_name"),
            text,
            channel_id: text_field(&map, "channel_id"),
            // A reply to a threaded post stays in its thread; a top-level post starts one.
            thread: text_field(&map, "root_id").or_else(|| text_field(&map, "post_id")),
            contacts: Contacts::default(),
        }))
    }

    fn render(&self, out: &Outbound, _now: i64) -> Result<Post> {
        if let Some((api_url, bot_token)) = &self.rest {
            let channel_id = out.channel_id.as_deref().ok_or_else(|| Error::Config {
                integration: self.name.clone(),
                reason: "the message named no `channel_id` to answer in".into(),
            })?;
            let mut body = json!({"channel_id": channel_id, "message": out.text});
            if let Some(root) = &out.thread {
                body["root_id"] = json!(root);
            }
            return Ok(Post {
                url: format!("{api_url}/api/v4/posts"),
                headers: vec![("Authorization".into(), format!("Bearer {bot_token}"))],
                body: json_body(&body),
            });
        }
        Ok(Post {
            url: self.incoming_url.clone(),
            headers: Vec::new(),
            body: json_body(&json!({"text": out.text})),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rest_replies_post_to_the_inbound_channel_and_thread_with_the_bot_token() {
        let m = Mattermost::new("ops", "tok".into(), String::new())
            .with_rest("https://mm.example.com/", "bot-tok".into());
        let mut out = Outbound {
            integration: "ops".into(),
            channel_id: Some("c1".into()),
            thread: Some("p9".into()),
            user: "u1".into(),
            text: "hi".into(),
        };
        let post = m.render(&out, 0).unwrap();
        assert_eq!(post.url, "https://mm.example.com/api/v4/posts");
        assert_eq!(
            post.headers,
            [("Authorization".to_owned(), "Bearer bot-tok".to_owned())]
        );
        let body: serde_json::Value = serde_json::from_slice(&post.body).unwrap();
        assert_eq!(
            body,
            json!({"channel_id": "c1", "message": "hi", "root_id": "p9"})
        );
        assert!(!format!("{m:?}").contains("bot-tok"));
        out.channel_id = None;
        assert!(m.render(&out, 0).is_err());
    }

    fn request(body: &str) -> Request {
        Request {
            body: body.as_bytes().to_vec(),
            ..Request::default()
        }
    }

    #[test]
    fn the_token_field_must_match_in_forms_and_json() {
        let m = Mattermost::new("ops", "tok123".into(), "http://mm/hooks/x".into());
        let form = "token=tok123&user_id=u1&user_name=alice&channel_id=c1&text=%21agents";
        let Verified::Message(msg) = m.verify(&request(form), 0).unwrap() else {
            panic!()
        };
        assert_eq!(
            (msg.user_name.as_deref(), msg.text.as_str()),
            (Some("alice"), "!agents")
        );
        let json = r#"{"token":"tok123","user_id":"u1","text":"bot hello","trigger_word":"bot"}"#;
        let Verified::Message(msg) = m.verify(&request(json), 0).unwrap() else {
            panic!()
        };
        assert_eq!(msg.text, "hello");
        let slash = "token=tok123&user_id=u1&command=%2Frvbbit&text=status+x";
        let Verified::Message(msg) = m.verify(&request(slash), 0).unwrap() else {
            panic!()
        };
        assert_eq!(msg.text, "/rvbbit status x");
        assert_eq!(msg.thread, None);
        let threaded = "token=tok123&user_id=u1&channel_id=c1&post_id=p2&root_id=r1&text=hi";
        let Verified::Message(msg) = m.verify(&request(threaded), 0).unwrap() else {
            panic!()
        };
        assert_eq!(msg.thread.as_deref(), Some("r1"));
        for bad in ["token=nope&user_id=u1&text=hi", "user_id=u1&text=hi", "garbage"] {
            assert_eq!(m.verify(&request(bad), 0).unwrap_err().status(), 401, "{bad}");
        }
    }
}
