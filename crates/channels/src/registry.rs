//! Integrations configured through the HTTP API (`/api/v1/channels`), kept in the store
//! ([`rvbbit_store::ChannelStore`]) so every `serve` process sharing it answers their hooks.
//!
//! A write is validated by the same checks as `[channels.NAME]` in rvbbit.toml and takes effect in
//! this process at once; another process reads the store on a miss, and again once its copy is older
//! than [`API_TTL`], rebuilding the integration when the stored version changed. Integrations of
//! rvbbit.toml are listed (`"source": "config"`) but read-only. Secrets are accepted on write and
//! never answered: views show `"***"` and which secrets are set.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use rvbbit_core::config::{ChannelConfig, ChannelKind, channel_problems};
use rvbbit_store::{Store, StoredIntegration};
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::gateway::{Channels, DEFAULT_TENANT, Integration, build_integration};

/// Most integrations the API may configure (rvbbit.toml's are not counted).
pub const MAX_API_INTEGRATIONS: usize = 1000;
/// How long a process trusts its copy of an API integration before reading the store again.
pub const API_TTL: Duration = Duration::from_secs(3);
/// The keys whose values are never answered.
pub const SECRET_KEYS: &[&str] = &["token", "signing_secret", "secret", "bot_token"];

struct Cached {
    checked: Instant,
    version: i64,
    integration: Option<Arc<Integration>>,
}

/// The API integrations this process has read, by name.
pub(crate) struct Api {
    store: Option<Arc<dyn Store>>,
    cache: RwLock<HashMap<String, Cached>>,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("cached", &self.cached_names())
            .finish_non_exhaustive()
    }
}

impl Api {
    pub(crate) fn new(store: Option<Arc<dyn Store>>) -> Self {
        Api {
            store,
            cache: RwLock::new(HashMap::new()),
        }
    }

    pub(crate) fn cached(&self, name: &str) -> Option<Arc<Integration>> {
        let cache = self.cache.read().unwrap_or_else(PoisonError::into_inner);
        cache.get(name).and_then(|c| c.integration.clone())
    }

    pub(crate) fn cached_names(&self) -> Vec<String> {
        let cache = self.cache.read().unwrap_or_else(PoisonError::into_inner);
        let mut names: Vec<String> = cache
            .iter()
            .filter(|(_, c)| c.integration.is_some())
            .map(|(n, _)| n.clone())
            .collect();
        names.sort();
        names
    }

    fn fresh(&self, name: &str) -> bool {
        let cache = self.cache.read().unwrap_or_else(PoisonError::into_inner);
        cache.get(name).is_some_and(|c| c.checked.elapsed() < API_TTL)
    }

    fn version(&self, name: &str) -> Option<i64> {
        let cache = self.cache.read().unwrap_or_else(PoisonError::into_inner);
        cache
            .get(name)
            .filter(|c| c.integration.is_some())
            .map(|c| c.version)
    }

    fn set(&self, name: &str, version: i64, integration: Option<Arc<Integration>>) {
        let mut cache = self.cache.write().unwrap_or_else(PoisonError::into_inner);
        // Bounded: names that are not stored are remembered only until the cache would pass the limit.
        if cache.len() > 2 * MAX_API_INTEGRATIONS {
            cache.retain(|_, c| c.integration.is_some());
        }
        cache.insert(
            name.to_owned(),
            Cached {
                checked: Instant::now(),
                version,
                integration,
            },
        );
    }

    fn touch(&self, name: &str) {
        let mut cache = self.cache.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = cache.get_mut(name) {
            c.checked = Instant::now();
        }
    }

    fn store(&self) -> Result<&Arc<dyn Store>> {
        self.store.as_ref().ok_or_else(|| Error::Config {
            integration: "*".into(),
            reason: "integrations through the API need a store; this process has none".into(),
        })
    }
}

/// `config` as JSON with every secret shown as `"***"`, and which secrets are set.
fn masked(config: &ChannelConfig) -> (Value, Value) {
    let mut value = serde_json::to_value(config).unwrap_or(Value::Null);
    let mut set = Map::new();
    if let Value::Object(map) = &mut value {
        for key in SECRET_KEYS {
            let present = config.secret_value(key).is_some();
            if present {
                map.insert((*key).to_owned(), json!("***"));
            }
            set.insert((*key).to_owned(), json!(present));
        }
    }
    (value, Value::Object(set))
}

fn view(name: &str, source: &str, config: &ChannelConfig) -> Value {
    let (config_json, secrets) = masked(config);
    json!({
        "name": name,
        "source": source,
        "kind": config.kind.as_str(),
        "tenant": config.tenant.as_deref().unwrap_or(DEFAULT_TENANT),
        "config": config_json,
        "secrets_set": secrets,
    })
}

/// The `[channels.NAME]` of a JSON body: unknown keys, wrong types and every problem the config
/// loader would report are [`Error::Invalid`] naming the key.
pub fn parse_config(name: &str, body: &Value) -> Result<ChannelConfig> {
    let prefix = format!("channels.{name}");
    let invalid = |key: String, reason: String, hint: String| Error::Invalid { key, reason, hint };
    let Value::Object(map) = body else {
        return Err(invalid(
            prefix,
            "the body must be a JSON object of `[channels.NAME]` keys".into(),
            r#"for example {"kind": "webhook", "secret": "…", "outbound_url": "…", "agent": "helper"}"#
                .into(),
        ));
    };
    let known = match serde_json::to_value(ChannelConfig::new(ChannelKind::Webhook)) {
        Ok(Value::Object(k)) => k,
        _ => Map::new(),
    };
    if let Some(unknown) = map.keys().find(|k| !known.contains_key(k.as_str())) {
        let keys: Vec<&str> = known.keys().map(String::as_str).collect();
        return Err(invalid(
            format!("{prefix}.{unknown}"),
            format!("`{unknown}` is not a key of `[channels.NAME]`"),
            format!("the keys are {}", keys.join(", ")),
        ));
    }
    let Some(kind) = map.get("kind") else {
        return Err(invalid(
            format!("{prefix}.kind"),
            "`kind` is missing".into(),
            "one of `slack`, `mattermost`, `webhook`, `web`".into(),
        ));
    };
    let config: ChannelConfig = match serde_json::from_value(body.clone()) {
        Ok(c) => c,
        Err(e) => {
            // Name the key: the first one that fails on its own beside `kind`.
            let bad = map
                .iter()
                .find(|(k, v)| {
                    let one = json!({"kind": kind, k.as_str(): v});
                    serde_json::from_value::<ChannelConfig>(one).is_err()
                })
                .map_or_else(|| "kind".to_owned(), |(k, _)| k.clone());
            // A secret's value never travels into a message, even a malformed one.
            let why = if SECRET_KEYS.contains(&bad.as_str()) {
                "it must be a string".to_owned()
            } else {
                e.to_string()
            };
            return Err(invalid(
                format!("{prefix}.{bad}"),
                format!("`{bad}` has the wrong type or value: {why}"),
                "write it as in rvbbit.toml (docs/channels.md, Reference)".into(),
            ));
        }
    };
    let problems = channel_problems(name, &config);
    if let Some(first) = problems.first() {
        let all: Vec<&str> = problems.iter().map(|p| p.message.as_str()).collect();
        return Err(invalid(
            first.key.clone().unwrap_or(prefix),
            all.join("; "),
            first.hint.clone(),
        ));
    }
    Ok(config)
}

impl Channels {
    /// Read integration `name` from the store again if this process has no fresh copy (rvbbit.toml's
    /// need none): call before [`Channels::receive`] and the web methods. A store failure keeps the
    /// copy (logged).
    pub async fn refresh(&self, name: &str) {
        let api = &self.inner.api;
        let plain = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
        if !plain || self.inner.integrations.contains_key(name) || api.fresh(name) {
            return;
        }
        let Ok(store) = api.store() else { return };
        match store.integration(name).await {
            Ok(Some(row)) if api.version(name) == Some(row.updated_at.micros()) => api.touch(name),
            Ok(Some(row)) => match serde_json::from_value::<ChannelConfig>(row.config) {
                Ok(config) => self.install(name, &config, row.updated_at.micros()),
                Err(e) => {
                    tracing::warn!(integration = %name, error = %e, "A stored integration does not load.");
                    api.set(name, 0, None);
                }
            },
            Ok(None) => api.set(name, 0, None),
            Err(e) => {
                tracing::warn!(integration = %name, error = %e, "Stored integrations could not be read.")
            }
        }
    }

    fn install(&self, name: &str, config: &ChannelConfig, version: i64) {
        let i = &self.inner;
        let integration = build_integration(name, config, &i.http, &i.tasks, &i.shutdown);
        i.api.set(name, version, Some(Arc::new(integration)));
    }

    /// Every integration, rvbbit.toml's (`"source": "config"`) then the API's (`"source": "api"`),
    /// secrets masked.
    ///
    /// # Errors
    /// [`Error::Config`] when the store cannot be read.
    pub async fn api_list(&self) -> Result<Vec<Value>> {
        let mut out: Vec<Value> = self
            .inner
            .integrations
            .iter()
            .map(|(name, i)| view(name, "config", &i.config))
            .collect();
        if let Ok(store) = self.inner.api.store() {
            let rows = store
                .integrations(MAX_API_INTEGRATIONS as u64)
                .await
                .map_err(store_error)?;
            for row in rows {
                if let Ok(config) = serde_json::from_value::<ChannelConfig>(row.config) {
                    out.push(view(&row.name, "api", &config));
                }
            }
        }
        Ok(out)
    }

    /// Integration `name`, secrets masked.
    ///
    /// # Errors
    /// [`Error::UnknownIntegration`]; [`Error::Config`] when the store cannot be read.
    pub async fn api_get(&self, name: &str) -> Result<Value> {
        if let Some(i) = self.inner.integrations.get(name) {
            return Ok(view(name, "config", &i.config));
        }
        let store = self.inner.api.store()?;
        let row = store.integration(name).await.map_err(store_error)?;
        let config = row
            .and_then(|r| serde_json::from_value::<ChannelConfig>(r.config).ok())
            .ok_or_else(|| unknown(name))?;
        Ok(view(name, "api", &config))
    }

    /// Create or replace integration `name` from `body` (the `[channels.NAME]` keys as JSON), in the
    /// store and in this process at once. Its view, secrets masked.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the key, [`Error::ReadOnly`] for an integration of rvbbit.toml,
    /// [`Error::TooMany`] past [`MAX_API_INTEGRATIONS`], [`Error::Config`] when the store fails.
    pub async fn api_put(&self, name: &str, body: &Value) -> Result<Value> {
        if self.inner.integrations.contains_key(name) {
            return Err(Error::ReadOnly {
                name: name.to_owned(),
            });
        }
        let config = parse_config(name, body)?;
        let store = self.inner.api.store()?;
        let stored = store
            .integrations(MAX_API_INTEGRATIONS as u64 + 1)
            .await
            .map_err(store_error)?;
        if stored.len() >= MAX_API_INTEGRATIONS && !stored.iter().any(|i| i.name == name) {
            return Err(Error::TooMany {
                limit: MAX_API_INTEGRATIONS,
            });
        }
        let tenant = config.tenant.clone().unwrap_or_else(|| DEFAULT_TENANT.into());
        let value = serde_json::to_value(&config).map_err(|e| Error::Config {
            integration: name.to_owned(),
            reason: format!("the integration could not be written: {e}"),
        })?;
        let row = StoredIntegration::new(name, tenant, config.kind.as_str(), value);
        store.integration_put(&row).await.map_err(store_error)?;
        self.install(name, &config, row.updated_at.micros());
        Ok(view(name, "api", &config))
    }

    /// Remove integration `name` from the store and this process.
    ///
    /// # Errors
    /// [`Error::ReadOnly`] for an integration of rvbbit.toml, [`Error::UnknownIntegration`],
    /// [`Error::Config`] when the store fails.
    pub async fn api_delete(&self, name: &str) -> Result<()> {
        if self.inner.integrations.contains_key(name) {
            return Err(Error::ReadOnly {
                name: name.to_owned(),
            });
        }
        let store = self.inner.api.store()?;
        let existed = store.integration_delete(name).await.map_err(store_error)?;
        self.inner.api.set(name, 0, None);
        if existed { Ok(()) } else { Err(unknown(name)) }
    }
}

fn unknown(name: &str) -> Error {
    Error::UnknownIntegration {
        kind: "any".into(),
        name: name.to_owned(),
    }
}

fn store_error(e: rvbbit_store::Error) -> Error {
    Error::Config {
        integration: "*".into(),
        reason: format!("the store failed: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_checked_like_rvbbit_toml_naming_the_key() {
        let ok = json!({"kind": "webhook", "secret": "s", "outbound_url": "http://x/in", "agent": "helper"});
        assert_eq!(parse_config("hook", &ok).unwrap().secret.as_deref(), Some("s"));
        for (body, key) in [
            (
                json!({"kind": "webhook", "secret": "s", "outbound_url": "http://x", "agent": "a", "tokn": "x"}),
                "channels.hook.tokn",
            ),
            (json!({"secret": "s"}), "channels.hook.kind"),
            (
                json!({"kind": "webhook", "outbound_url": "http://x", "agent": "a"}),
                "channels.hook.secret",
            ),
            (
                json!({"kind": "webhook", "secret": "s", "outbound_url": "http://x", "agent": "a", "burst": "many"}),
                "channels.hook.burst",
            ),
            (json!([1]), "channels.hook"),
        ] {
            match parse_config("hook", &body) {
                Err(Error::Invalid { key: k, .. }) => assert_eq!(k, key, "{body}"),
                other => panic!("{body}: {other:?}"),
            }
        }
    }

    #[test]
    fn views_never_hold_a_secret() {
        let mut c = ChannelConfig::new(ChannelKind::Slack);
        c.signing_secret = Some("very-secret-1".into());
        c.token = Some("very-secret-2".into());
        let v = view("team", "api", &c).to_string();
        assert!(!v.contains("very-secret"), "{v}");
        let v = view("team", "api", &c);
        assert_eq!(v["config"]["token"], "***");
        assert_eq!(v["secrets_set"]["token"], true);
        assert_eq!(v["secrets_set"]["secret"], false);
    }
}
