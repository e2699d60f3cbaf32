//! `[channels.NAME]`: chat integrations (Slack, Mattermost, signed webhooks, the web chat page) and
//! chat control (docs/channels.md). Since v0.7.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Problem;
use super::costs::limit_name_problem;
use crate::codes;

/// The platform an integration speaks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ChannelKind {
    /// Slack: Events API and slash commands in (signing secret), `chat.postMessage` out (bot token).
    Slack,
    /// Mattermost: outgoing webhook or slash command in (token), incoming webhook or REST API out.
    Mattermost,
    /// Any system: JSON in and out, HMAC-SHA256 signed both ways with `secret`.
    Webhook,
    /// The web chat page served by `rvbbit serve` at `/chat/{NAME}`: JSON in, Server-Sent Events out.
    /// Needs no secret. Since v0.7.
    Web,
}

impl ChannelKind {
    /// The name used in `kind = "…"` and in `/hooks/{kind}/…`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Slack => "slack",
            ChannelKind::Mattermost => "mattermost",
            ChannelKind::Webhook => "webhook",
            ChannelKind::Web => "web",
        }
    }

    /// The secret keys this kind needs, besides `outbound_url`.
    pub const fn secret_keys(self) -> &'static [&'static str] {
        match self {
            ChannelKind::Slack => &["signing_secret", "token"],
            ChannelKind::Mattermost => &["token"],
            ChannelKind::Webhook => &["secret"],
            ChannelKind::Web => &[],
        }
    }
}

impl fmt::Display for ChannelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Default [`ChannelConfig::max_message_bytes`] (8 KiB).
pub const WEB_MESSAGE_BYTES: u32 = 8 * 1024;
/// The ceiling of [`ChannelConfig::max_message_bytes`] (64 KiB).
pub const WEB_MESSAGE_BYTES_CEILING: u32 = 64 * 1024;
/// Default [`ChannelConfig::max_streams`].
pub const WEB_STREAMS: u32 = 256;
/// The ceiling of [`ChannelConfig::max_streams`].
pub const WEB_STREAMS_CEILING: u32 = 65_536;
/// The longest [`ChannelConfig::title`], in characters.
pub const WEB_TITLE_CHARS: usize = 120;

/// Most groups of [`ChannelConfig::groups`].
pub const MAX_GROUPS: usize = 100;
/// Most members of one group of [`ChannelConfig::groups`].
pub const MAX_GROUP_MEMBERS: usize = 1000;
/// Default [`ChannelConfig::status_interval_seconds`].
pub const STATUS_INTERVAL_SECONDS: u32 = 30;
/// The smallest [`ChannelConfig::status_interval_seconds`] other than 0.
pub const STATUS_INTERVAL_MIN_SECONDS: u32 = 1;
/// The largest [`ChannelConfig::status_interval_seconds`] (one hour).
pub const STATUS_INTERVAL_MAX_SECONDS: u32 = 3600;

/// One integration: `[channels.NAME]`, reached at `POST /hooks/{kind}/{NAME}` (the web chat: at
/// `/chat/{NAME}`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelConfig {
    /// `slack`, `mattermost`, `webhook` or `web`.
    pub kind: ChannelKind,
    /// Slack: the bot token sent as `Authorization: Bearer` to `chat.postMessage`. Mattermost: the
    /// outgoing webhook's (or slash command's) token that every inbound request must carry. Masked in
    /// every output.
    #[serde(default)]
    pub token: Option<String>,
    /// Slack: the app's signing secret; inbound requests are verified with it. Masked in every output.
    #[serde(default)]
    pub signing_secret: Option<String>,
    /// Webhook: the HMAC-SHA256 key of both directions. Masked in every output.
    #[serde(default)]
    pub secret: Option<String>,
    /// Where replies go: Slack's API base (`https://slack.com/api`, `chat.postMessage` is appended),
    /// Mattermost's incoming webhook URL (or `api_url` with `bot_token`), or the webhook receiver's URL.
    #[serde(default)]
    pub outbound_url: Option<String>,
    /// Mattermost: the server's base URL (`https://mm.example.com`) for replies through the REST API
    /// (`POST {api_url}/api/v4/posts` with `bot_token`), in place of `outbound_url`. Since v0.7.
    #[serde(default)]
    pub api_url: Option<String>,
    /// Mattermost: the bot's (or personal) access token sent as `Authorization: Bearer` with
    /// `api_url`. Masked in every output. Since v0.7.
    #[serde(default)]
    pub bot_token: Option<String>,
    /// Plain (non-command) messages go to this agent (`agents/NAME.yaml`); absent: they are ignored.
    /// Required for `web`.
    #[serde(default)]
    pub agent: Option<String>,
    /// Accept chat commands (`!run`, `!status`, `!cancel`, `!list`, `!agents`, `!help`, `/rvbbit …`).
    #[serde(default)]
    pub control: bool,
    /// Users (ids or names) who may use every command; empty: nobody (but `!help`). An entry `@NAME`
    /// stands for the members of group `NAME` of `groups`.
    #[serde(default)]
    pub allow_users: Vec<String>,
    /// Per command (`run`, `status`, `cancel`, `list`, `agents`), the users who may use it, in place
    /// of `allow_users` (`@NAME` entries name groups here too).
    #[serde(default)]
    pub command_users: BTreeMap<String, Vec<String>>,
    /// Named groups of users (ids or names), for `@NAME` entries of `allow_users` and
    /// `command_users`: `groups = { ops = ["alice", "bob"] }`. At most 100 groups of at most 1000
    /// members. Since v0.7.
    #[serde(default)]
    pub groups: BTreeMap<String, Vec<String>>,
    /// Seconds between the progress replies of a `!run` from chat (naming the running cell), after
    /// the "started" reply; 0: none. 1 to 3600 when set (the default is 30); at most 20 progress
    /// replies per run. Since v0.7.
    #[serde(default = "default_status_interval")]
    pub status_interval_seconds: u32,
    /// The tenant of the integration's conversations and runs (default `default`).
    #[serde(default)]
    pub tenant: Option<String>,
    /// Commands a user may send per minute on this integration (default 30).
    #[serde(default = "default_rate")]
    pub rate_per_minute: u32,
    /// Commands a user may send at once before the rate applies (default 5).
    #[serde(default = "default_burst")]
    pub burst: u32,
    /// Web: the heading of the chat page (default: the agent's name). At most 120 characters. Since
    /// v0.7.
    #[serde(default)]
    pub title: Option<String>,
    /// Web: origins (`https://site.example`) whose pages may show the chat page in an iframe, besides
    /// the server's own; empty: only the server's own pages. Since v0.7.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Web: the largest message body a visitor may send, in bytes (default 8192, at most 65536); a
    /// larger one is refused with 413 before it is read. Since v0.7.
    #[serde(default = "default_message_bytes")]
    pub max_message_bytes: u32,
    /// Web: live reply streams (`GET /chat/{NAME}/events`) open at once on this integration (default
    /// 256); one more is refused with 503. Since v0.7.
    #[serde(default = "default_streams")]
    pub max_streams: u32,
}

const fn default_message_bytes() -> u32 {
    WEB_MESSAGE_BYTES
}

const fn default_streams() -> u32 {
    WEB_STREAMS
}

const fn default_status_interval() -> u32 {
    STATUS_INTERVAL_SECONDS
}

const fn default_rate() -> u32 {
    30
}

const fn default_burst() -> u32 {
    5
}

impl ChannelConfig {
    /// A configuration of `kind` with nothing set but the defaults.
    pub fn new(kind: ChannelKind) -> Self {
        ChannelConfig {
            kind,
            token: None,
            signing_secret: None,
            secret: None,
            outbound_url: None,
            api_url: None,
            bot_token: None,
            agent: None,
            control: false,
            allow_users: Vec::new(),
            command_users: BTreeMap::new(),
            groups: BTreeMap::new(),
            status_interval_seconds: default_status_interval(),
            tenant: None,
            rate_per_minute: default_rate(),
            burst: default_burst(),
            title: None,
            allowed_origins: Vec::new(),
            max_message_bytes: default_message_bytes(),
            max_streams: default_streams(),
        }
    }

    /// The value of secret key `key` (`token`, `signing_secret`, `secret` or `bot_token`).
    pub fn secret_value(&self, key: &str) -> Option<&str> {
        match key {
            "token" => self.token.as_deref(),
            "signing_secret" => self.signing_secret.as_deref(),
            "secret" => self.secret.as_deref(),
            "bot_token" => self.bot_token.as_deref(),
            _ => None,
        }
    }
}

impl fmt::Debug for ChannelConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mask = |v: &Option<String>| v.as_ref().map(|_| "****");
        f.debug_struct("ChannelConfig")
            .field("kind", &self.kind)
            .field("token", &mask(&self.token))
            .field("signing_secret", &mask(&self.signing_secret))
            .field("secret", &mask(&self.secret))
            .field("outbound_url", &self.outbound_url)
            .field("api_url", &self.api_url)
            .field("bot_token", &mask(&self.bot_token))
            .field("agent", &self.agent)
            .field("control", &self.control)
            .field("allow_users", &self.allow_users)
            .field("command_users", &self.command_users)
            .field("groups", &self.groups)
            .field("status_interval_seconds", &self.status_interval_seconds)
            .field("tenant", &self.tenant)
            .field("rate_per_minute", &self.rate_per_minute)
            .field("burst", &self.burst)
            .field("title", &self.title)
            .field("allowed_origins", &self.allowed_origins)
            .field("max_message_bytes", &self.max_message_bytes)
            .field("max_streams", &self.max_streams)
            .finish()
    }
}

/// Whether `name` may name an integration: 1 to 64 ASCII letters, digits, `_` or `-`.
fn name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() || name.len() > 64 {
        return Some("it must be 1 to 64 characters long");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
    {
        return Some("use only letters, digits, `_` and `-` (it is part of the URL)");
    }
    None
}

/// The problems of one integration `name` configured as `config` (through the HTTP API), found by the
/// same checks as `[channels.NAME]` in rvbbit.toml; each names its key (`channels.NAME.KEY`).
pub fn channel_problems(name: &str, config: &ChannelConfig) -> Vec<Problem> {
    let mut problems = Vec::new();
    let one = BTreeMap::from([(name.to_owned(), config.clone())]);
    validate(&one, &|_| Some("the HTTP API".to_owned()), &mut problems);
    problems
}

/// The `[channels.*]` tables' problems: every missing secret named by its key.
pub(super) fn validate(
    channels: &BTreeMap<String, ChannelConfig>,
    src: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<Problem>,
) {
    for (name, c) in channels {
        let mut push = |key: String, message: String, hint: String| {
            problems.push(Problem {
                code: codes::K_CONFIG,
                source: src(&key),
                key: Some(key),
                message,
                hint,
            });
        };
        let prefix = format!("channels.{name}");
        if let Some(why) = name_problem(name) {
            push(
                prefix.clone(),
                format!("`{name}` cannot name an integration: {why}"),
                "for example `[channels.ops]`".into(),
            );
        }
        for key in c.kind.secret_keys() {
            match c.secret_value(key) {
                None => push(
                    format!("{prefix}.{key}"),
                    format!("`{prefix}.{key}` is missing: a {} integration needs it", c.kind),
                    format!("copy it from the platform's settings into `[{prefix}]` (docs/channels.md)"),
                ),
                Some(v) if v.trim().is_empty() => push(
                    format!("{prefix}.{key}"),
                    format!("`{prefix}.{key}` is empty"),
                    "there are no default secrets; set the platform's value".into(),
                ),
                Some(_) => {}
            }
        }
        if c.kind == ChannelKind::Web {
            web_problems(&prefix, c, &mut push);
        } else if c.kind == ChannelKind::Mattermost && (c.api_url.is_some() || c.bot_token.is_some()) {
            rest_problems(&prefix, c, &mut push);
        } else {
            outbound_problems(&prefix, c, &mut push);
        }
        if c.agent.is_none() && !c.control && c.kind != ChannelKind::Web {
            push(
                prefix.clone(),
                format!("`[{prefix}]` has neither `agent` nor `control = true`: it would do nothing"),
                "name an agent for plain messages, or set `control = true` for chat commands".into(),
            );
        }
        group_problems(&prefix, c, &mut push);
        if c.status_interval_seconds > STATUS_INTERVAL_MAX_SECONDS {
            push(
                format!("{prefix}.status_interval_seconds"),
                format!(
                    "`{prefix}.status_interval_seconds` is {}; it must be 0 (off) or {STATUS_INTERVAL_MIN_SECONDS} to {STATUS_INTERVAL_MAX_SECONDS}",
                    c.status_interval_seconds
                ),
                format!("the default is {STATUS_INTERVAL_SECONDS}"),
            );
        }
        if c.rate_per_minute == 0 || c.burst == 0 {
            push(
                format!("{prefix}.rate_per_minute"),
                format!("`{prefix}.rate_per_minute` and `burst` must be at least 1"),
                "the defaults are 30 a minute with bursts of 5".into(),
            );
        }
        if let Some(tenant) = &c.tenant
            && let Some(why) = limit_name_problem(tenant)
        {
            push(
                format!("{prefix}.tenant"),
                format!("`{prefix}.tenant` is not a tenant name: {why}"),
                "use 1 to 128 letters, digits, `_`, `.` or `-`".into(),
            );
        }
    }
}

type Push<'a> = dyn FnMut(String, String, String) + 'a;

/// The groups' bounds, and every `@NAME` of the allowlists naming a group of `groups`.
fn group_problems(prefix: &str, c: &ChannelConfig, push: &mut Push<'_>) {
    if c.groups.len() > MAX_GROUPS {
        push(
            format!("{prefix}.groups"),
            format!(
                "`{prefix}.groups` has {} groups; the limit is {MAX_GROUPS}",
                c.groups.len()
            ),
            "merge groups, or split the integration".into(),
        );
    }
    for (group, members) in &c.groups {
        if let Some(why) = name_problem(group) {
            push(
                format!("{prefix}.groups.{group}"),
                format!("`{group}` cannot name a group: {why}"),
                "for example `groups = { ops = [\"alice\"] }`".into(),
            );
        }
        if members.len() > MAX_GROUP_MEMBERS {
            push(
                format!("{prefix}.groups.{group}"),
                format!(
                    "`{prefix}.groups.{group}` has {} members; the limit is {MAX_GROUP_MEMBERS}",
                    members.len()
                ),
                "split it into several groups".into(),
            );
        }
    }
    let lists = std::iter::once(("allow_users".to_owned(), &c.allow_users)).chain(
        c.command_users
            .iter()
            .map(|(command, list)| (format!("command_users.{command}"), list)),
    );
    for (key, list) in lists {
        for entry in list {
            if let Some(group) = entry.strip_prefix('@')
                && !c.groups.contains_key(group)
            {
                push(
                    format!("{prefix}.{key}"),
                    format!("`{prefix}.{key}` names `@{group}`, which is not a group of `{prefix}.groups`"),
                    format!("define it: `groups = {{ {group} = [\"alice\"] }}`, or remove the entry"),
                );
            }
        }
    }
}

/// A Mattermost integration replying through the REST API: `api_url` and `bot_token` both set, a
/// usable URL, and no `outbound_url` besides.
fn rest_problems(prefix: &str, c: &ChannelConfig, push: &mut Push<'_>) {
    if c.outbound_url.is_some() {
        push(
            format!("{prefix}.outbound_url"),
            format!(
                "`[{prefix}]` sets both `outbound_url` and `api_url`/`bot_token`: replies need exactly one way out"
            ),
            "keep `outbound_url` (an incoming webhook) or `api_url` with `bot_token` (the REST API)".into(),
        );
    }
    match c.api_url.as_deref() {
        None => push(
            format!("{prefix}.api_url"),
            format!("`{prefix}.api_url` is missing: `bot_token` replies through the REST API at `api_url`"),
            "the server's base URL, for example `https://mm.example.com`".into(),
        ),
        Some(u) if !(u.starts_with("http://") || u.starts_with("https://")) || u.contains("/api/") => push(
            format!("{prefix}.api_url"),
            format!("`{prefix}.api_url` must be the server's http:// or https:// base URL, found `{u}`"),
            "for example `https://mm.example.com` (`/api/v4/posts` is appended)".into(),
        ),
        Some(_) => {}
    }
    if c.bot_token.as_deref().is_none_or(|t| t.trim().is_empty()) {
        push(
            format!("{prefix}.bot_token"),
            format!("`{prefix}.bot_token` is missing or empty: the REST API needs the bot's access token"),
            "create a bot account in Mattermost and copy its token (docs/channels.md)".into(),
        );
    }
}

/// A Slack, Mattermost or webhook integration's `outbound_url` problems.
fn outbound_problems(prefix: &str, c: &ChannelConfig, push: &mut Push<'_>) {
    match c.outbound_url.as_deref() {
        None => push(
            format!("{prefix}.outbound_url"),
            format!("`{prefix}.outbound_url` is missing: replies need somewhere to go"),
            "Slack: `https://slack.com/api`; Mattermost: the incoming webhook URL".into(),
        ),
        Some(u) if !(u.starts_with("http://") || u.starts_with("https://")) => push(
            format!("{prefix}.outbound_url"),
            format!("`{prefix}.outbound_url` must be an http:// or https:// URL, found `{u}`"),
            "for example `https://slack.com/api`".into(),
        ),
        Some(_) => {}
    }
}

/// A web integration's problems: its agent, title, origins and limits.
fn web_problems(prefix: &str, c: &ChannelConfig, push: &mut Push<'_>) {
    if c.agent.as_deref().is_none_or(|a| a.trim().is_empty()) {
        push(
            format!("{prefix}.agent"),
            format!("`{prefix}.agent` is missing: a web chat needs the agent that answers its visitors"),
            "name an agent of the served directory, for example `agent = \"helper\"` for agents/helper.yaml"
                .into(),
        );
    }
    if c.title
        .as_ref()
        .is_some_and(|t| t.chars().count() > WEB_TITLE_CHARS || t.chars().any(char::is_control))
    {
        push(
            format!("{prefix}.title"),
            format!(
                "`{prefix}.title` must be at most {WEB_TITLE_CHARS} characters, without control characters"
            ),
            "a short heading such as `title = \"Ask the helper\"`".into(),
        );
    }
    for origin in &c.allowed_origins {
        if let Some(why) = origin_problem(origin) {
            push(
                format!("{prefix}.allowed_origins"),
                format!("`{prefix}.allowed_origins` has `{origin}`, which is not an origin: {why}"),
                "write origins as scheme, host and optional port: `https://www.example.com`".into(),
            );
        }
    }
    if c.max_message_bytes == 0 || c.max_message_bytes > WEB_MESSAGE_BYTES_CEILING {
        push(
            format!("{prefix}.max_message_bytes"),
            format!(
                "`{prefix}.max_message_bytes` is {}; it must be 1 to {WEB_MESSAGE_BYTES_CEILING}",
                c.max_message_bytes
            ),
            format!("the default is {WEB_MESSAGE_BYTES} (8 KiB)"),
        );
    }
    if c.max_streams == 0 || c.max_streams > WEB_STREAMS_CEILING {
        push(
            format!("{prefix}.max_streams"),
            format!(
                "`{prefix}.max_streams` is {}; it must be 1 to {WEB_STREAMS_CEILING}",
                c.max_streams
            ),
            format!("the default is {WEB_STREAMS}"),
        );
    }
}

/// Why `origin` is not `http(s)://host[:port]` (no path, no spaces), if it is not.
fn origin_problem(origin: &str) -> Option<&'static str> {
    let Some(rest) = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
    else {
        return Some("it must start with `https://` or `http://`");
    };
    if rest.is_empty() || rest.contains('/') {
        return Some("it is scheme and host only, without a path or a trailing `/`");
    }
    if !rest
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
    {
        return Some("the host may hold only letters, digits, `.`, `-`, `:` and brackets");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_missing_secret_is_named_and_debug_masks_secrets() {
        let mut c = ChannelConfig::new(ChannelKind::Slack);
        c.control = true;
        c.token = Some("xoxb-secret".into());
        let mut problems = Vec::new();
        validate(
            &BTreeMap::from([("ops".into(), c.clone())]),
            &|_| None,
            &mut problems,
        );
        let keys: Vec<_> = problems.iter().filter_map(|p| p.key.clone()).collect();
        assert_eq!(keys, ["channels.ops.signing_secret", "channels.ops.outbound_url"]);
        assert!(problems.iter().all(|p| p.code == codes::K_CONFIG));
        assert!(!format!("{c:?}").contains("xoxb-secret"));
    }

    #[test]
    fn unknown_groups_oversized_groups_and_short_status_intervals_are_named() {
        let mut c = ChannelConfig::new(ChannelKind::Mattermost);
        c.control = true;
        c.token = Some("t".into());
        c.outbound_url = Some("http://mm/hooks/x".into());
        c.groups.insert("ops".into(), vec!["alice".into()]);
        c.allow_users = vec!["@ops".into(), "@nobody".into()];
        c.command_users.insert("run".into(), vec!["@ghosts".into()]);
        c.groups
            .insert("big".into(), vec!["u".into(); MAX_GROUP_MEMBERS + 1]);
        c.status_interval_seconds = STATUS_INTERVAL_MAX_SECONDS + 1;
        let mut problems = Vec::new();
        validate(
            &BTreeMap::from([("ops".into(), c.clone())]),
            &|_| None,
            &mut problems,
        );
        let keys: Vec<_> = problems.iter().filter_map(|p| p.key.clone()).collect();
        assert_eq!(
            keys,
            [
                "channels.ops.groups.big",
                "channels.ops.allow_users",
                "channels.ops.command_users.run",
                "channels.ops.status_interval_seconds"
            ]
        );
        assert!(problems.iter().all(|p| p.code == codes::K_CONFIG));
        assert!(
            problems[0].message.contains("the limit is 1000"),
            "{}",
            problems[0].message
        );
        assert!(
            problems[1].message.contains("`@nobody`"),
            "{}",
            problems[1].message
        );
        c.groups = (0..=MAX_GROUPS).map(|i| (format!("g{i}"), vec![])).collect();
        c.allow_users.clear();
        c.command_users.clear();
        c.status_interval_seconds = 0;
        let mut problems = Vec::new();
        validate(&BTreeMap::from([("ops".into(), c)]), &|_| None, &mut problems);
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].message.contains("the limit is 100"),
            "{}",
            problems[0].message
        );
    }

    #[test]
    fn mattermost_replies_through_exactly_one_of_outbound_url_or_api_url_with_bot_token() {
        let mut c = ChannelConfig::new(ChannelKind::Mattermost);
        c.control = true;
        c.token = Some("t".into());
        c.api_url = Some("https://mm.example.com".into());
        c.bot_token = Some("bot-secret".into());
        let check = |c: &ChannelConfig| {
            let mut problems = Vec::new();
            validate(
                &BTreeMap::from([("mm".into(), c.clone())]),
                &|_| None,
                &mut problems,
            );
            problems.into_iter().filter_map(|p| p.key).collect::<Vec<_>>()
        };
        assert!(check(&c).is_empty());
        assert!(!format!("{c:?}").contains("bot-secret"));
        c.outbound_url = Some("https://mm.example.com/hooks/x".into());
        assert_eq!(check(&c), ["channels.mm.outbound_url"]);
        c.outbound_url = None;
        c.bot_token = None;
        assert_eq!(check(&c), ["channels.mm.bot_token"]);
        c.bot_token = Some("b".into());
        c.api_url = None;
        assert_eq!(check(&c), ["channels.mm.api_url"]);
        c.bot_token = None;
        assert_eq!(
            check(&c),
            ["channels.mm.outbound_url"],
            "neither: outbound_url is missing"
        );
    }

    #[test]
    fn a_web_chat_needs_its_agent_and_bounded_limits_but_no_secret() {
        let mut c = ChannelConfig::new(ChannelKind::Web);
        c.allowed_origins = vec!["https://site.example".into(), "site.example/".into()];
        c.max_message_bytes = 100_000;
        c.max_streams = 0;
        let mut problems = Vec::new();
        validate(
            &BTreeMap::from([("chat".into(), c.clone())]),
            &|_| None,
            &mut problems,
        );
        let keys: Vec<_> = problems.iter().filter_map(|p| p.key.clone()).collect();
        assert_eq!(
            keys,
            [
                "channels.chat.agent",
                "channels.chat.allowed_origins",
                "channels.chat.max_message_bytes",
                "channels.chat.max_streams"
            ]
        );
        assert!(
            problems[0].message.contains("needs the agent"),
            "{}",
            problems[0].message
        );
        c.agent = Some("helper".into());
        c.allowed_origins.pop();
        c.max_message_bytes = WEB_MESSAGE_BYTES_CEILING;
        c.max_streams = WEB_STREAMS;
        let mut problems = Vec::new();
        validate(&BTreeMap::from([("chat".into(), c)]), &|_| None, &mut problems);
        assert!(
            problems.is_empty(),
            "{:?}",
            problems.iter().map(|p| &p.message).collect::<Vec<_>>()
        );
    }
}
