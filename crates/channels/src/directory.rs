//! [`Directory`]: a platform's verified email of a user, read with the integration's bot token, for
//! linking identities (docs/channels.md, "Linking identities").
//!
//! Slack: `GET {outbound_url}/users.info?user=ID` with the bot token (`token`); the profile's email,
//! unless Slack says `is_email_confirmed: false`. Mattermost: `GET {api_url}/api/v4/users/{ID}` with
//! `bot_token`, only when both are set; the email when `email_verified` is `true`. Other kinds have no
//! directory. Answers (and failures, as "no email") are cached per integration and user for
//! [`CACHE_TTL`], at most [`CACHE_ENTRIES`] of them; a failure is logged once per integration.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rvbbit_core::config::{ChannelConfig, ChannelKind};
use serde_json::Value;
use tokio::time::Instant;

use crate::contacts::Contacts;

/// How long an answer is kept.
pub(crate) const CACHE_TTL: Duration = Duration::from_secs(600);
/// Most answers kept at once; past it, expired ones are dropped, then all.
pub(crate) const CACHE_ENTRIES: usize = 10_000;
/// How long a lookup may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest answer read, in bytes.
const MAX_ANSWER_BYTES: usize = 256 * 1024;

/// Verified emails of platform users, cached.
#[derive(Debug)]
pub(crate) struct Directory {
    http: reqwest::Client,
    cache: Mutex<HashMap<(String, String), (Instant, Contacts)>>,
    warned: Mutex<BTreeSet<String>>,
}

impl Directory {
    pub(crate) fn new(http: reqwest::Client) -> Self {
        Directory {
            http,
            cache: Mutex::new(HashMap::new()),
            warned: Mutex::new(BTreeSet::new()),
        }
    }

    /// The verified contacts of `user` on integration `name` (empty when the platform has no
    /// directory, the lookup fails, or the email is not verified).
    pub(crate) async fn contacts(&self, name: &str, config: &ChannelConfig, user: &str) -> Contacts {
        let Some(url) = lookup_url(config, user) else {
            return Contacts::default();
        };
        let key = (name.to_owned(), user.to_owned());
        if let Some(hit) = self.cached(&key) {
            return hit;
        }
        let token = match config.kind {
            ChannelKind::Slack => config.token.as_deref(),
            _ => config.bot_token.as_deref(),
        };
        let contacts = match self.fetch(&url, token.unwrap_or_default()).await {
            Ok(answer) => email_of(config.kind, &answer),
            Err(why) => {
                self.warn_once(name, &why);
                Contacts::default()
            }
        };
        self.remember(key, contacts.clone());
        contacts
    }

    fn cached(&self, key: &(String, String)) -> Option<Contacts> {
        let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        cache
            .get(key)
            .filter(|(at, _)| at.elapsed() < CACHE_TTL)
            .map(|(_, c)| c.clone())
    }

    fn remember(&self, key: (String, String), contacts: Contacts) {
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= CACHE_ENTRIES {
            cache.retain(|_, (at, _)| at.elapsed() < CACHE_TTL);
        }
        if cache.len() >= CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(key, (Instant::now(), contacts));
    }

    fn warn_once(&self, name: &str, why: &str) {
        let first = self
            .warned
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_owned());
        if first {
            tracing::warn!(integration = %name, reason = %why,
                "A user's verified email could not be read; messages are not linked across channels.");
        }
    }

    async fn fetch(&self, url: &str, token: &str) -> Result<Value, String> {
        let mut response = self
            .http
            .get(url)
            .bearer_auth(token)
            .timeout(LOOKUP_TIMEOUT)
            .send()
            .await
            .map_err(|e| format!("the request failed: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("the platform answered {}", response.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("the answer could not be read: {e}"))?
        {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(format!("the answer is larger than {MAX_ANSWER_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|e| format!("the answer is not JSON: {e}"))
    }
}

/// Where `user`'s profile is read, for kinds that have a directory configured.
fn lookup_url(config: &ChannelConfig, user: &str) -> Option<String> {
    let id_ok = !user.is_empty()
        && user.len() <= 64
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if !id_ok {
        return None;
    }
    match config.kind {
        ChannelKind::Slack => {
            config.token.as_ref()?;
            let base = config.outbound_url.as_deref()?.trim_end_matches('/');
            Some(format!("{base}/users.info?user={user}"))
        }
        ChannelKind::Mattermost => {
            config.bot_token.as_ref()?;
            let base = config.api_url.as_deref()?.trim_end_matches('/');
            Some(format!("{base}/api/v4/users/{user}"))
        }
        _ => None,
    }
}

/// The verified email of a Slack `users.info` or Mattermost user answer.
fn email_of(kind: ChannelKind, answer: &Value) -> Contacts {
    let email = match kind {
        ChannelKind::Slack => {
            let user = &answer["user"];
            let ok = answer["ok"] == Value::Bool(true) && user["is_email_confirmed"] != Value::Bool(false);
            user["profile"]["email"].as_str().filter(|_| ok)
        }
        _ => answer["email"]
            .as_str()
            .filter(|_| answer["email_verified"] == Value::Bool(true)),
    };
    Contacts::verified(email, None)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn only_verified_emails_count() {
        let slack = json!({"ok": true, "user": {"profile": {"email": "A@x.io"}}});
        assert_eq!(
            email_of(ChannelKind::Slack, &slack).email.as_deref(),
            Some("a@x.io")
        );
        let unconfirmed =
            json!({"ok": true, "user": {"is_email_confirmed": false, "profile": {"email": "a@x.io"}}});
        assert!(email_of(ChannelKind::Slack, &unconfirmed).is_empty());
        assert!(
            email_of(
                ChannelKind::Slack,
                &json!({"ok": false, "error": "missing_scope"})
            )
            .is_empty()
        );
        let mm = json!({"email": "b@x.io", "email_verified": true});
        assert_eq!(
            email_of(ChannelKind::Mattermost, &mm).email.as_deref(),
            Some("b@x.io")
        );
        assert!(email_of(ChannelKind::Mattermost, &json!({"email": "b@x.io"})).is_empty());
    }

    #[test]
    fn lookups_need_the_kinds_bot_token_and_a_plain_user_id() {
        let mut slack = ChannelConfig::new(ChannelKind::Slack);
        slack.outbound_url = Some("http://s/api/".into());
        assert_eq!(lookup_url(&slack, "U1"), None, "no token");
        slack.token = Some("xoxb".into());
        assert_eq!(
            lookup_url(&slack, "U1").as_deref(),
            Some("http://s/api/users.info?user=U1")
        );
        assert_eq!(lookup_url(&slack, "U1&user=U2"), None);
        let mut mm = ChannelConfig::new(ChannelKind::Mattermost);
        assert_eq!(lookup_url(&mm, "u1"), None, "no REST API configured");
        mm.api_url = Some("http://mm".into());
        mm.bot_token = Some("b".into());
        assert_eq!(
            lookup_url(&mm, "u1").as_deref(),
            Some("http://mm/api/v4/users/u1")
        );
        assert_eq!(
            lookup_url(&ChannelConfig::new(ChannelKind::Web), "v_123456789"),
            None
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_cache_is_bounded_and_expires() {
        let d = Directory::new(reqwest::Client::new());
        let c = Contacts::verified(Some("a@x.io"), None);
        d.remember(("i".into(), "u".into()), c.clone());
        assert_eq!(d.cached(&("i".into(), "u".into())), Some(c));
        tokio::time::advance(CACHE_TTL).await;
        assert_eq!(d.cached(&("i".into(), "u".into())), None);
        for n in 0..=CACHE_ENTRIES {
            d.remember(("i".into(), n.to_string()), Contacts::default());
        }
        let len = d.cache.lock().unwrap().len();
        assert!(len <= CACHE_ENTRIES, "{len}");
    }
}
