//! Configuration: defaults, then `rvbbit.toml`, then `RVBBIT_*` environment variables, then flags.
//!
//! [`load`] merges the layers, remembers where every value came from, and validates the result once,
//! reporting every problem (not just the first). `rvbbit config show` prints the result with secrets masked.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::codes::{self, ErrorCode};

mod artifacts;
mod channels;
mod costs;
mod tenants;

pub use artifacts::{ArtifactsConfig, artifacts_url_problem};
pub use channels::{
    ChannelConfig, ChannelKind, MAX_GROUP_MEMBERS, MAX_GROUPS, STATUS_INTERVAL_MAX_SECONDS,
    STATUS_INTERVAL_MIN_SECONDS, STATUS_INTERVAL_SECONDS, WEB_MESSAGE_BYTES, WEB_MESSAGE_BYTES_CEILING,
    WEB_STREAMS, WEB_STREAMS_CEILING, WEB_TITLE_CHARS, channel_problems,
};
pub use costs::{CostsConfig, MAX_COMPUTE_RATE, MAX_LIMIT_NAME, limit_name_problem};
pub use tenants::TenantConfig;

/// The default model, as in RVBBIT.
pub const DEFAULT_MODEL: &str = "x-ai/grok-4.1-fast";
/// The default provider base URL (OpenRouter).
pub const DEFAULT_BASE_URL: &str = "https://openrouter.ai/api/v1";
/// Config file names looked for in the working directory, in order.
pub const CONFIG_FILE_NAMES: &[&str] = &["rvbbit.toml"];

/// The effective configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Model used when neither the cell, the cascade nor the command line names one.
    /// Env: `RVBBIT_DEFAULT_MODEL`.
    pub default_model: String,
    /// Directories searched for cascades, tools (`traits/`, `tackle/`, `skills/`) and templates.
    /// Env: `RVBBIT_ROOTS` (comma-separated) or `RVBBIT_ROOT` (one directory).
    pub roots: Vec<PathBuf>,
    /// The default LLM provider.
    pub provider: ProviderConfig,
    /// Further named providers (for example `ollama`), selected by model prefix.
    pub providers: BTreeMap<String, ProviderConfig>,
    /// Named fallback chains: a cell whose `model` is a chain's name tries its models in order, for
    /// example `cheap = ["openai/gpt-4o-mini", "anthropic/claude-3.5-haiku"]`. Since v0.2.
    pub chains: BTreeMap<String, Vec<String>>,
    /// Price overrides per model id, in dollars per million tokens, on top of the bundled table, for
    /// example `[prices."openai/gpt-4o"] input = "2.50"` and `output = "10.00"`. Since v0.2.
    pub prices: BTreeMap<String, PriceConfig>,
    /// Where events, sessions and caches are stored.
    pub store: StoreConfig,
    /// Model used to rewrite prompts for candidate mutations (RVBBIT's `RVBBIT_REWRITE_MODEL`).
    pub rewrite_model: Option<String>,
    /// Embedding model (RVBBIT's `RVBBIT_DEFAULT_EMBED_MODEL`).
    pub default_embed_model: Option<String>,
    /// Keep only this many recent turns in each model call; 0 keeps all.
    pub keep_recent_turns: u32,
    /// Keep only this many recent images in each model call; 0 keeps all.
    pub keep_recent_images: u32,
    /// Settings of `rvbbit validate`.
    pub validate: ValidateConfig,
    /// Settings of `rvbbit serve` (the HTTP API and the Studio).
    pub server: ServerConfig,
    /// Settings of the SQL door (`rvbbit sql`, `rvbbit serve sql`, `POST /api/v1/sql`).
    pub sql: SqlConfig,
    /// Limits on what a file, a request or a query may make rvbbit do. Each is checked before the work
    /// starts, and exceeding one is a coded error naming the setting (`limits.<name>`).
    pub limits: LimitsConfig,
    /// The job queue of `rvbbit submit` and `rvbbit worker` (NATS JetStream). Since v0.4.
    pub queue: QueueConfig,
    /// Limits and defaults of `rvbbit batch`. Since v0.5.
    pub batch: BatchConfig,
    /// The object store of cascade bundles and run outputs (`rvbbit cascade push`, `registry:`). Since v0.4.
    pub artifacts: ArtifactsConfig,
    /// The sandbox of code and shell cells (bubblewrap; docs/sandbox.md). Since v0.5.
    pub sandbox: SandboxConfig,
    /// Scripts run by `rvbbit exec` (docs/exec.md). Since v0.6.
    pub exec: ExecConfig,
    /// The price of compute and the tenant of spending limits (docs/costs.md). Since v0.6.
    pub costs: CostsConfig,
    /// Chat integrations by name (`[channels.NAME]`): Slack, Mattermost and signed webhooks reached at
    /// `POST /hooks/{kind}/{NAME}`, with chat control (docs/channels.md). Since v0.7.
    pub channels: BTreeMap<String, ChannelConfig>,
    /// Per-tenant settings by tenant name (`[tenants.NAME]`), such as `link_identities` for chat
    /// integrations (docs/channels.md). Since v0.7.
    pub tenants: BTreeMap<String, TenantConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            default_model: DEFAULT_MODEL.to_owned(),
            roots: vec![PathBuf::from(".")],
            provider: ProviderConfig::default(),
            providers: BTreeMap::new(),
            chains: BTreeMap::new(),
            prices: BTreeMap::new(),
            store: StoreConfig::default(),
            rewrite_model: None,
            default_embed_model: None,
            keep_recent_turns: 0,
            keep_recent_images: 0,
            validate: ValidateConfig::default(),
            server: ServerConfig::default(),
            sql: SqlConfig::default(),
            limits: LimitsConfig::default(),
            queue: QueueConfig::default(),
            batch: BatchConfig::default(),
            artifacts: ArtifactsConfig::default(),
            sandbox: SandboxConfig::default(),
            exec: ExecConfig::default(),
            costs: CostsConfig::default(),
            channels: BTreeMap::new(),
            tenants: BTreeMap::new(),
        }
    }
}

/// One LLM provider endpoint.
#[derive(Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ProviderConfig {
    /// Who answers LLM calls: `openai` (the OpenAI-compatible endpoint at `base_url`) or `mock` (answers
    /// built offline from what each cell expects: its `output_schema`, its routes, judges and
    /// validators; no network, no key, cost zero). Env: `RVBBIT_PROVIDER_KIND`. Since v0.3.
    pub kind: ProviderKind,
    /// With `kind = "mock"`: a YAML file of scripted answers by cell name (docs/llm.md). Since v0.3.
    pub mock_answers: Option<PathBuf>,
    /// OpenAI-compatible base URL. Env for the default provider: `RVBBIT_PROVIDER_BASE_URL`.
    pub base_url: String,
    /// Environment variable holding the API key.
    pub api_key_env: String,
    /// The API key itself. Prefer `api_key_env`; a key written here is masked in every output.
    pub api_key: Option<String>,
    /// Seconds allowed for a whole call, every retry and fallback model included.
    pub timeout_seconds: u64,
    /// Seconds one attempt may wait for the response to start (for a stream: its first event) before it
    /// counts as timed out and is retried or falls back. Since v0.2.
    pub first_byte_timeout_seconds: u64,
    /// Calls in flight at once.
    pub max_concurrency: u32,
    /// Requests per minute (0 = unlimited).
    pub requests_per_minute: u32,
    /// Tokens per minute (0 = unlimited).
    pub tokens_per_minute: u64,
    /// Retries of transient failures.
    pub max_retries: u32,
}

impl Default for ProviderConfig {
    fn default() -> Self {
        ProviderConfig {
            kind: ProviderKind::default(),
            mock_answers: None,
            base_url: DEFAULT_BASE_URL.to_owned(),
            api_key_env: "OPENROUTER_API_KEY".to_owned(),
            api_key: None,
            timeout_seconds: 300,
            first_byte_timeout_seconds: 60,
            max_concurrency: 32,
            requests_per_minute: 0,
            tokens_per_minute: 0,
            max_retries: 4,
        }
    }
}

impl fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("kind", &self.kind)
            .field("mock_answers", &self.mock_answers)
            .field("base_url", &self.base_url)
            .field("api_key_env", &self.api_key_env)
            .field("api_key", &self.api_key.as_ref().map(|_| "****"))
            .field("timeout_seconds", &self.timeout_seconds)
            .field("first_byte_timeout_seconds", &self.first_byte_timeout_seconds)
            .field("max_concurrency", &self.max_concurrency)
            .field("requests_per_minute", &self.requests_per_minute)
            .field("tokens_per_minute", &self.tokens_per_minute)
            .field("max_retries", &self.max_retries)
            .finish()
    }
}

/// Who answers LLM calls (`provider.kind`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ProviderKind {
    /// An OpenAI-compatible HTTP endpoint (OpenRouter, OpenAI, Ollama, vLLM, ...).
    #[default]
    Openai,
    /// Offline answers shaped by each call's expectations (`rvbbit run --provider mock`).
    Mock,
}

/// One model's prices, in dollars per million tokens (decimal text, read exactly: money is never a float).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PriceConfig {
    /// Uncached prompt tokens, such as `"2.50"`.
    pub input: String,
    /// Generated tokens, such as `"10.00"`.
    pub output: String,
    /// Prompt tokens read from the provider's cache (default: `input`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_input: Option<String>,
    /// Prompt tokens written to the provider's cache (default: `input`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write: Option<String>,
    /// Reasoning tokens (default: `output`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<String>,
}

impl PriceConfig {
    /// Each class's price in micro-dollars per million tokens: input, output, cached input, cache
    /// write, reasoning. `Err` names the first field that is not a dollar amount.
    pub fn micros(&self) -> Result<[Option<i64>; 5], String> {
        let parse = |name: &str, v: Option<&String>| -> Result<Option<i64>, String> {
            v.map(|t| {
                t.trim()
                    .parse::<crate::MicroUsd>()
                    .map(crate::MicroUsd::micros)
                    .map_err(|e| format!("`{name}` = {t:?} is not a dollar amount ({e})"))
            })
            .transpose()
        };
        Ok([
            parse("input", Some(&self.input))?,
            parse("output", Some(&self.output))?,
            parse("cached_input", self.cached_input.as_ref())?,
            parse("cache_write", self.cache_write.as_ref())?,
            parse("reasoning", self.reasoning.as_ref())?,
        ])
    }
}

/// Where rvbbit keeps its records.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `sqlite://PATH` (the embedded default) or `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE` (a
    /// shared server). Env: `RVBBIT_STORE__URL` or `RVBBIT_STORE_URL`.
    pub url: String,
    /// A second destination for events (`[store.events]`): the analytics warehouse. Since v0.2.
    pub events: EventsConfig,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: "sqlite://.rvbbit/rvbbit.db".to_owned(),
            events: EventsConfig::default(),
        }
    }
}

/// The event sink: every event the store gets is also sent here (ClickHouse), in the same batches.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    /// ClickHouse's HTTP interface and database, `http[s]://[USER[:PASSWORD]@]HOST[:PORT]/DATABASE`
    /// (such as `http://rvbbit:secret@ch.example:8123/rvbbit`). Absent: no sink. Env:
    /// `RVBBIT_STORE_EVENTS_URL` or `RVBBIT_STORE__EVENTS__URL`. Since v0.2.
    pub url: Option<String>,
}

impl fmt::Debug for EventsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventsConfig")
            .field("url", &self.url.as_deref().map(mask_url))
            .finish()
    }
}

/// Limits and defaults of `rvbbit batch` (docs/batch.md).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    /// Most inputs one batch may have (files matched, or JSONL/CSV rows); more is RVB-B003 before
    /// anything runs.
    pub max_inputs: u64,
    /// Largest input, in bytes: an input file, a JSONL line or a CSV row; larger fails that input
    /// (RVB-B004) and the others run.
    pub max_input_bytes: u64,
    /// Inputs run at once when `--parallel` is not given; 0: the number of CPUs.
    pub parallel: u32,
    /// Most inputs run at once, whatever `--parallel` asks.
    pub max_parallel: u32,
    /// How many times an input whose run failed for a transient reason (the sandbox's memory or time
    /// limit, a tool or provider timeout, a connection error) is run again; never for the script's or
    /// cascade's own errors. At most 5.
    pub transient_retries: u32,
    /// With a queue configured: the longest an input's job may take, from enqueued to ended, before it
    /// fails its input (RVB-B023).
    pub queue_timeout_seconds: u64,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_inputs: 100_000,
            max_input_bytes: 10 * 1024 * 1024,
            parallel: 0,
            max_parallel: 64,
            transient_retries: 2,
            queue_timeout_seconds: 3600,
        }
    }
}

/// Scripts run by `rvbbit exec` (docs/exec.md): where their environments are kept and how much of
/// what they write is collected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ExecConfig {
    /// Where `rvbbit exec` keeps content-addressed copies of scripts, the one-cell cascades made for
    /// them and the Python virtual environments of their requirements (relative to the working
    /// directory unless absolute).
    pub dir: PathBuf,
    /// Most files a script may leave in its work directory (each is an output); more fails that run
    /// (RVB-B021). At most 100,000.
    pub max_output_files: u64,
    /// Most bytes of files a script may leave in its work directory; more fails that run (RVB-B021).
    /// At most 1 GiB.
    pub max_output_bytes: u64,
    /// Most bytes of the files and folders named by a script's arguments (each is hashed into the
    /// result cache's key); more is refused before anything runs (RVB-B022).
    pub max_argument_bytes: u64,
    /// Longest `pip install -r requirements.txt` into a new environment, in seconds (RVB-B022).
    pub install_timeout_seconds: u64,
}

impl Default for ExecConfig {
    fn default() -> Self {
        ExecConfig {
            dir: PathBuf::from(".rvbbit/exec"),
            max_output_files: 1_000,
            max_output_bytes: 8 * 1024 * 1024,
            max_argument_bytes: 1024 * 1024 * 1024,
            install_timeout_seconds: 600,
        }
    }
}

/// The sandbox every process of a code or shell cell runs in (docs/sandbox.md): bubblewrap with no
/// network, read-only system directories, a private writable work directory, its own PID namespace, an
/// unprivileged uid, and the limits below. Each limit can be changed per cell (`sandbox:`) or per batch
/// (`--sandbox-*`), up to its `max_*` ceiling; asking for more is RVB-B011.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SandboxConfig {
    /// Sandbox the cells of `rvbbit run` (`--sandbox` turns it on for one run).
    pub run: bool,
    /// Sandbox the cells of `rvbbit batch` (`--no-sandbox` turns it off for one batch).
    pub batch: bool,
    /// Sandbox the cells of the jobs `rvbbit worker` runs.
    pub worker: bool,
    /// Sandbox the scripts `rvbbit exec` runs (`--no-sandbox` turns it off for one command).
    pub exec: bool,
    /// The bubblewrap program (a name looked up in `PATH`, or a path). Missing while the sandbox is
    /// required is RVB-B010, never an unsandboxed run.
    pub bwrap: String,
    /// Address-space limit of each process, in MiB (RLIMIT_AS); more is RVB-B012.
    pub memory_mib: u64,
    /// Ceiling of `memory_mib` for cells and batches.
    pub max_memory_mib: u64,
    /// Most processes and threads the sandbox's uid may have (RLIMIT_NPROC); more is RVB-B014.
    pub processes: u64,
    /// Ceiling of `processes`.
    pub max_processes: u64,
    /// CPUs the sandbox is pinned to (CPU affinity).
    pub cpus: u32,
    /// Ceiling of `cpus`.
    pub max_cpus: u32,
    /// Wall-clock seconds before the whole sandbox is killed; more is RVB-B013.
    pub wall_seconds: u64,
    /// Ceiling of `wall_seconds`.
    pub max_wall_seconds: u64,
    /// KB kept of a process's stdout and of its stderr; the rest is read and dropped, and the result
    /// flagged `truncated`.
    pub output_kb: u64,
    /// Ceiling of `output_kb`.
    pub max_output_kb: u64,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            run: false,
            batch: true,
            worker: true,
            exec: true,
            bwrap: "bwrap".to_owned(),
            memory_mib: 512,
            max_memory_mib: 8192,
            processes: 64,
            max_processes: 4096,
            cpus: 1,
            max_cpus: 64,
            wall_seconds: 300,
            max_wall_seconds: 86_400,
            output_kb: 100,
            max_output_kb: 65_536,
        }
    }
}

/// The job queue shared by `rvbbit submit` and `rvbbit worker`; every worker and submitter of one queue
/// must have the same settings.
#[derive(Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// The NATS server with JetStream, `nats://[USER:PASSWORD@]HOST[:PORT]`. Absent: no queue. Env:
    /// `RVBBIT_QUEUE_URL` or `RVBBIT_QUEUE__URL`; `--queue` beats it.
    pub url: Option<String>,
    /// The work-queue stream's name (letters, digits, `_`, `-`); dead letters go to `<stream>_DEAD`.
    pub stream: String,
    /// Seconds a delivered job may go without an ack or a progress report before the server delivers
    /// it again; a worker reports progress every third of it while the run lives.
    pub ack_wait_seconds: u64,
    /// Deliveries of one job before it is given up and moved to the dead-letter stream.
    pub max_deliveries: u32,
    /// Seconds a submission id is remembered: the same id submitted again within it is one job.
    pub duplicate_window_seconds: u64,
    /// Seconds a worker stopped with SIGTERM gives its in-flight runs to finish before it cancels them
    /// and hands their jobs back.
    pub drain_grace_seconds: u64,
    /// Seconds before a job handed back (a run that could not start, a drained worker) is delivered again.
    pub nak_delay_seconds: u64,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            url: None,
            stream: "RVBBIT_JOBS".into(),
            ack_wait_seconds: 30,
            max_deliveries: 5,
            duplicate_window_seconds: 120,
            drain_grace_seconds: 30,
            nak_delay_seconds: 5,
        }
    }
}

impl fmt::Debug for QueueConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueConfig")
            .field("url", &self.url.as_deref().map(mask_url))
            .field("stream", &self.stream)
            .field("ack_wait_seconds", &self.ack_wait_seconds)
            .field("max_deliveries", &self.max_deliveries)
            .field("duplicate_window_seconds", &self.duplicate_window_seconds)
            .field("drain_grace_seconds", &self.drain_grace_seconds)
            .field("nak_delay_seconds", &self.nak_delay_seconds)
            .finish()
    }
}

/// Why `url` is not a queue URL (`nats://[user[:password]@]host[:port]`), if it is not.
pub fn queue_url_problem(url: &str) -> Option<String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Some("it has no scheme (expected nats://)".into());
    };
    if scheme != "nats" {
        return Some(format!("its scheme is `{scheme}`, expected nats"));
    }
    let authority = rest.trim_end_matches('/');
    if authority.contains('/') {
        return Some("it has a path; a NATS URL names only a host and port".into());
    }
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host.is_empty() || host.starts_with(':') {
        return Some("it names no host".into());
    }
    if let Some((_, port)) = host.rsplit_once(':')
        && !host.ends_with(']')
        && port.parse::<u16>().is_err()
    {
        return Some(format!("its port `{port}` is not a number"));
    }
    None
}

/// Why `url` is not an events URL (`http[s]://[user[:password]@]host[:port]/database`), if it is not.
pub fn events_url_problem(url: &str) -> Option<String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Some("it has no scheme (expected http:// or https://)".into());
    };
    if scheme != "http" && scheme != "https" {
        return Some(format!("its scheme is `{scheme}`, expected http or https"));
    }
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host.is_empty() || host.starts_with(':') {
        return Some("it names no host".into());
    }
    if let Some((_, port)) = host.rsplit_once(':')
        && !host.ends_with(']')
        && port.parse::<u16>().is_err()
    {
        return Some(format!("its port `{port}` is not a number"));
    }
    let db = path
        .split(['?', '#'])
        .next()
        .unwrap_or_default()
        .trim_end_matches('/');
    if !db.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Some(format!(
            "its database `{db}` is not a plain name (letters, digits and `_`)"
        ));
    }
    None
}

/// Settings of `rvbbit validate`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ValidateConfig {
    /// Treat warnings as errors.
    pub strict: bool,
}

/// Settings of `rvbbit serve`; its flags override them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on (`--host`). Anything but loopback requires API keys.
    pub host: String,
    /// Port to listen on (`--port`); 0 picks a free one.
    pub port: u16,
    /// Seconds in-flight runs may take to finish on shutdown before they are cancelled
    /// (`--shutdown-grace`).
    pub shutdown_grace_seconds: u64,
    /// Origins allowed to call the API from a browser on another origin (CORS), such as
    /// `https://app.example.com`. Empty (the default): CORS stays off.
    pub cors_origins: Vec<String>,
    /// Host names (as in the `Host` header, without the port) a keyless server answers besides the
    /// loopback names `localhost`, `127.0.0.1` and `[::1]`; guards against DNS rebinding. Since v0.2.
    pub allowed_hosts: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            host: "127.0.0.1".to_owned(),
            port: 5050,
            shutdown_grace_seconds: 10,
            cors_origins: Vec::new(),
            allowed_hosts: Vec::new(),
        }
    }
}

/// Settings of the SQL door.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SqlConfig {
    /// Address `rvbbit serve sql` listens on. Anything but loopback requires API keys as passwords.
    pub host: String,
    /// Port `rvbbit serve sql` listens on.
    pub port: u16,
    /// Tables every SQL session sees: a name and a CSV, Parquet or JSON file or folder (a path, or an
    /// object-store URL such as `s3://bucket/prefix/`), for example `orders = "data/orders.csv"`.
    pub tables: BTreeMap<String, String>,
}

impl Default for SqlConfig {
    fn default() -> Self {
        SqlConfig {
            host: "127.0.0.1".to_owned(),
            port: 15432,
            tables: BTreeMap::new(),
        }
    }
}

/// Limits on every door. Env: `RVBBIT_LIMITS__<NAME>`, for example `RVBBIT_LIMITS__SQL_EXPRESSION_DEPTH=128`.
///
/// Since v0.2. Each limit is checked before the work it bounds; exceeding one is a coded error that names
/// the limit and this setting, and servers keep serving.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// YAML/JSON cascade files: alias references (`*name`) expanded in one document.
    pub yaml_aliases: u64,
    /// YAML/JSON cascade files: nodes (scalars, sequences, mappings) in one document after alias
    /// expansion; bounds "billion laughs" files.
    pub yaml_nodes: u64,
    /// YAML/JSON cascade files: nesting depth of sequences and mappings.
    pub yaml_depth: u32,
    /// Templates: minijinja instructions one rendering may execute (its fuel).
    pub template_fuel: u64,
    /// Templates: bytes one rendering may produce.
    pub template_output_bytes: u64,
    /// SQL: nesting depth of one expression (`1+1+…`, nested `CASE`, chains of `AND`), checked before
    /// planning.
    pub sql_expression_depth: u32,
    /// SQL: statements in one request, pgwire message, `rvbbit sql` argument or `sql_data` query.
    pub sql_statements: u32,
    /// SQL: bytes in one request, pgwire message or `rvbbit sql` argument.
    pub sql_query_bytes: u64,
    /// SQL: operator files (cascades with an `sql_function` block) read under `cascades/` per session.
    pub sql_operator_files: u32,
    /// SQL: bytes of operator files read under `cascades/` per session.
    pub sql_operator_bytes: u64,
    /// HTTP (`rvbbit serve`): connections open at once; more wait in the listen queue.
    pub http_connections: u32,
    /// HTTP (`rvbbit serve`): seconds a client may take to send a request's headers.
    pub http_header_timeout_seconds: u64,
    /// pgwire (`rvbbit serve sql`): connections open at once; more are refused with SQLSTATE 53300.
    pub pgwire_connections: u32,
    /// pgwire (`rvbbit serve sql`): bytes one `COPY … FROM STDIN` may send; more are refused with
    /// SQLSTATE 54000 and nothing is copied. Since v0.3.
    pub pgwire_copy_bytes: u64,
    /// pgwire (`rvbbit serve sql`): cursors (`DECLARE … CURSOR`) one connection holds open at once;
    /// another DECLARE is refused with SQLSTATE 54000 until one is closed. Since v0.3.
    pub pgwire_cursors: u32,
    /// Artifacts (`create_artifact`, the chart tools): bytes of one artifact's body (HTML, SVG or spec);
    /// a larger one is a tool error naming this setting. Since v0.3.
    pub artifact_bytes: u64,
    /// Images (`read_image`): bytes of one image file sent to a vision model; a larger file is a tool
    /// error naming this setting. Since v0.7.
    pub image_bytes: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            yaml_aliases: 10_000,
            yaml_nodes: 1_000_000,
            yaml_depth: 256,
            template_fuel: 10_000_000,
            template_output_bytes: 16 * 1024 * 1024,
            sql_expression_depth: 256,
            sql_statements: 64,
            sql_query_bytes: 1024 * 1024,
            sql_operator_files: 1000,
            sql_operator_bytes: 16 * 1024 * 1024,
            http_connections: 1024,
            http_header_timeout_seconds: 10,
            pgwire_connections: 256,
            pgwire_copy_bytes: 64 * 1024 * 1024,
            pgwire_cursors: 64,
            artifact_bytes: 1024 * 1024,
            image_bytes: 5 * 1024 * 1024,
        }
    }
}

/// Where a configuration value came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "from", rename_all = "snake_case")]
pub enum Source {
    /// Built-in default.
    Default,
    /// A config file.
    File(PathBuf),
    /// An environment variable.
    Env(String),
    /// A command-line flag.
    Flag(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File(p) => write!(f, "file {}", p.display()),
            Source::Env(v) => write!(f, "env {v}"),
            Source::Flag(n) => write!(f, "flag {n}"),
        }
    }
}

/// One configuration problem.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The error code.
    pub code: &'static ErrorCode,
    /// The dotted key, when the problem is about one.
    pub key: Option<String>,
    /// Where the offending value came from.
    pub source: Option<String>,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}", self.code.code, self.message)?;
        if let Some(source) = &self.source {
            write!(f, " ({source})")?;
        }
        write!(f, "\n  hint: {}", self.hint)
    }
}

/// Configuration could not be loaded: every problem found.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("configuration is invalid ({} problem{})", .problems.len(), if .problems.len() == 1 { "" } else { "s" })]
pub struct ConfigError {
    /// The problems, in the order found.
    pub problems: Vec<Problem>,
}

/// What to load.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// `--config PATH`: a file that must exist. Without it, `rvbbit.toml` in `dir` is used if present.
    pub explicit_file: Option<PathBuf>,
    /// The directory searched for `rvbbit.toml` (the working directory).
    pub dir: PathBuf,
    /// Environment variables (normally `std::env::vars()`).
    pub env: Vec<(String, String)>,
    /// Flag overrides as (dotted key, raw value, flag as written); values are read like environment values
    /// (numbers, booleans, comma-separated lists by the setting's type).
    pub flags: Vec<(String, String, String)>,
}

/// The loaded configuration with the source of every value.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The typed configuration.
    pub config: Config,
    /// Dotted key → where its value came from.
    pub sources: BTreeMap<String, Source>,
    /// The config file read, if any.
    pub file: Option<PathBuf>,
    /// Non-fatal notes (such as unknown `RVBBIT_*` variables).
    pub warnings: Vec<Problem>,
}

/// Environment variables that start with `RVBBIT_` but are not settings.
const NON_CONFIG_ENV: &[&str] = &[
    "RVBBIT_CONFIG",
    "RVBBIT_LOG",
    "RVBBIT_SESSION_ID_STYLE",
    "RVBBIT_BLESS",
    // The test suite's tools (scripts/test-deps.sh): Chromium, Playwright's folder, the PostgreSQL clients.
    "RVBBIT_CHROMIUM",
    "RVBBIT_E2E_DIR",
    "RVBBIT_PSQL",
    "RVBBIT_PYTHON",
    "RVBBIT_VENV",
    "RVBBIT_PGJDBC_JAR",
    "RVBBIT_PYCLIENTS",
    // SeaweedFS's `weed`, the S3 server of the artifact-store tests (rvbbit_testkit::s3).
    "RVBBIT_WEED",
    // Benchmark scripts: which binary to measure.
    "RVBBIT_BIN",
];
const NON_CONFIG_ENV_PREFIXES: &[&str] = &[
    "RVBBIT_TEST_",
    "RVBBIT_CLICKHOUSE_",
    // The current-ClickHouse pass of the tests (scripts/clickhouse-current.sh): its Python and venv.
    "RVBBIT_CHDB_",
    "RVBBIT_UPDATE_",
    "RVBBIT_BENCH_",
];

/// Flat environment names mapped to nested keys.
const ENV_ALIASES: &[(&str, &str)] = &[
    ("provider_base_url", "provider.base_url"),
    ("provider_api_key", "provider.api_key"),
    ("provider_kind", "provider.kind"),
    ("store_url", "store.url"),
    ("store_events_url", "store.events.url"),
    ("queue_url", "queue.url"),
    ("artifacts_url", "artifacts.url"),
    ("root", "roots"),
];

/// Load configuration from every layer and validate it, reporting every problem.
///
/// # Errors
/// [`ConfigError`] with one [`Problem`] per unreadable file, syntax error, unknown key, wrong type or
/// invalid value.
pub fn load(options: &LoadOptions) -> Result<Loaded, ConfigError> {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let defaults = serde_json::to_value(Config::default()).unwrap_or(Value::Null);
    let mut merged = defaults.clone();
    let mut sources = BTreeMap::new();
    record_sources(&merged, "", &Source::Default, &mut sources);

    // File layer.
    let file = match &options.explicit_file {
        Some(path) => {
            if path.is_file() {
                Some(path.clone())
            } else {
                problems.push(Problem {
                    code: codes::C_NOT_FOUND,
                    key: None,
                    source: Some(format!("--config {}", path.display())),
                    message: format!("config file `{}` does not exist", path.display()),
                    hint:
                        "pass an existing file, or omit --config to use rvbbit.toml in the current directory"
                            .into(),
                });
                None
            }
        }
        None => CONFIG_FILE_NAMES
            .iter()
            .map(|n| options.dir.join(n))
            .find(|p| p.is_file()),
    };
    if let Some(path) = &file {
        match read_toml(path) {
            Ok(value) => {
                let source = Source::File(path.clone());
                check_shape(&value, &defaults, "", &source, &mut problems);
                merge(&mut merged, &value, "", &source, &mut sources);
            }
            Err(problem) => problems.push(problem),
        }
    }

    // Environment layer.
    let mut env: Vec<&(String, String)> = options
        .env
        .iter()
        .filter(|(k, _)| k.starts_with("RVBBIT_"))
        .collect();
    env.sort();
    for (name, raw) in env {
        if NON_CONFIG_ENV.contains(&name.as_str())
            || NON_CONFIG_ENV_PREFIXES.iter().any(|p| name.starts_with(p))
        {
            continue;
        }
        let rest = name["RVBBIT_".len()..].to_ascii_lowercase();
        let key = ENV_ALIASES
            .iter()
            .find(|(a, _)| *a == rest)
            .map_or_else(|| rest.replace("__", "."), |(_, k)| (*k).to_owned());
        let source = Source::Env(name.clone());
        let Some(template) = lookup(&defaults, &key)
            .cloned()
            .or_else(|| provider_template(&key))
        else {
            let known = leaf_keys(&defaults);
            let env_names: Vec<String> = known
                .iter()
                .map(|k| format!("RVBBIT_{}", k.replace('.', "__").to_ascii_uppercase()))
                .collect();
            let suggestion = crate::config::closest(name, env_names.iter().map(String::as_str));
            warnings.push(Problem {
                code: codes::C_UNKNOWN_KEY,
                key: None,
                source: Some(source.to_string()),
                message: format!("`{name}` is not an rvbbit setting and is ignored"),
                hint: match suggestion {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => "`rvbbit config show` lists every setting".into(),
                },
            });
            continue;
        };
        match env_value(raw, &template) {
            Some(value) => {
                set(&mut merged, &key, value);
                sources.insert(key, source);
            }
            None => problems.push(Problem {
                code: codes::C_INVALID,
                key: Some(key.clone()),
                source: Some(source.to_string()),
                message: format!("`{name}={raw}` is not {}", describe(&template)),
                hint: format!("set `{name}` to {}", describe(&template)),
            }),
        }
    }

    // Flag layer.
    for (key, raw, flag) in &options.flags {
        let source = Source::Flag(flag.clone());
        let template = lookup(&defaults, key).cloned().or_else(|| provider_template(key));
        let Some(template) = template else {
            let known = leaf_keys(&defaults);
            problems.push(Problem {
                code: codes::C_UNKNOWN_KEY,
                key: Some(key.clone()),
                source: Some(source.to_string()),
                message: format!("unknown setting `{key}`"),
                hint: match closest(key, known.iter().map(String::as_str)) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => "`rvbbit config show` lists every setting".into(),
                },
            });
            continue;
        };
        match env_value(raw, &template) {
            Some(value) => {
                set(&mut merged, key, value);
                sources.insert(key.clone(), source);
            }
            None => problems.push(Problem {
                code: codes::C_INVALID,
                key: Some(key.clone()),
                source: Some(source.to_string()),
                message: format!("`{key}={raw}` is not {}", describe(&template)),
                hint: format!("set `{key}` to {}", describe(&template)),
            }),
        }
    }

    let config = match serde_json::from_value::<Config>(merged) {
        Ok(c) => Some(c),
        Err(e) => {
            if problems.is_empty() {
                problems.push(Problem {
                    code: codes::C_INVALID,
                    key: None,
                    source: None,
                    message: format!("invalid configuration: {e}"),
                    hint: "`rvbbit config show` prints the effective configuration".into(),
                });
            }
            None
        }
    };
    if let Some(config) = &config {
        validate(config, &sources, &mut problems);
    }
    match config {
        Some(config) if problems.is_empty() => Ok(Loaded {
            config,
            sources,
            file,
            warnings,
        }),
        _ => Err(ConfigError { problems }),
    }
}

/// The default of a setting under `providers.<name>.` or `sql.tables.<name>` (maps of user-chosen
/// names).
fn provider_template(key: &str) -> Option<Value> {
    if let Some(name) = key.strip_prefix("sql.tables.") {
        // `sql.tables.<name>` is a path or URL.
        return (!name.is_empty() && !name.contains('.')).then(|| Value::String(String::new()));
    }
    let rest = key.strip_prefix("providers.")?;
    let (_, field) = rest.split_once('.')?;
    let provider = serde_json::to_value(ProviderConfig::default()).ok()?;
    provider.get(field).cloned()
}

fn read_toml(path: &Path) -> Result<Value, Problem> {
    let source = Some(format!("file {}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| Problem {
        code: codes::C_NOT_FOUND,
        key: None,
        source: source.clone(),
        message: format!("cannot read `{}`: {e}", path.display()),
        hint: "check the file's permissions".into(),
    })?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| {
        let at = e.span().map(|s| {
            let line = text[..s.start.min(text.len())].matches('\n').count() + 1;
            let col = s.start - text[..s.start.min(text.len())].rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("{}:{line}:{col}", path.display())
        });
        Problem {
            code: codes::C_SYNTAX,
            key: None,
            source: at.or(source.clone()),
            message: format!("`{}` is not valid TOML: {}", path.display(), e.message()),
            hint: "fix the syntax at the reported line and column".into(),
        }
    })?;
    serde_json::to_value(table).map_err(|e| Problem {
        code: codes::C_SYNTAX,
        key: None,
        source,
        message: format!("`{}` holds values rvbbit cannot read: {e}", path.display()),
        hint: "use strings, numbers, booleans, arrays and tables".into(),
    })
}

/// Report unknown keys and type mismatches of a layer against the defaults' shape.
fn check_shape(layer: &Value, template: &Value, prefix: &str, source: &Source, problems: &mut Vec<Problem>) {
    let Value::Object(map) = layer else { return };
    let Value::Object(known) = template else { return };
    for (key, value) in map {
        let path = join(prefix, key);
        // `providers` is a map of user-chosen names to provider settings.
        if path == "providers" {
            let provider_template = serde_json::to_value(ProviderConfig::default()).unwrap_or(Value::Null);
            match value {
                Value::Object(named) => {
                    for (name, settings) in named {
                        check_shape(
                            settings,
                            &provider_template,
                            &format!("providers.{name}"),
                            source,
                            problems,
                        );
                    }
                }
                _ => problems.push(type_problem(
                    &path,
                    value,
                    template.get("providers").unwrap_or(&Value::Null),
                    source,
                )),
            }
            continue;
        }
        // `channels` maps integration names to their settings; `command_users` inside maps command
        // names to lists of users.
        if path == "channels" {
            check_channels(value, source, problems);
            continue;
        }
        // Maps of user-chosen names: `chains` to lists of models, `prices` to prices, `sql.tables` to a
        // path or URL, `tenants` to tenant settings.
        if path == "chains" || path == "prices" || path == "sql.tables" || path == "tenants" {
            let entry_template = match path.as_str() {
                "chains" => Value::Array(vec![Value::String(String::new())]),
                "prices" => serde_json::to_value(PriceConfig::default()).unwrap_or(Value::Null),
                "tenants" => serde_json::to_value(TenantConfig::default()).unwrap_or(Value::Null),
                _ => Value::String(String::new()),
            };
            match value {
                Value::Object(named) => {
                    for (name, entry) in named {
                        let key = format!("{path}.{name}");
                        let ok = match (&entry_template, entry) {
                            (Value::Array(_), Value::Array(models)) => models.iter().all(Value::is_string),
                            (Value::String(_), entry) => entry.is_string(),
                            (Value::Object(_), Value::Object(_)) => {
                                check_shape(entry, &entry_template, &key, source, problems);
                                true
                            }
                            _ => false,
                        };
                        if !ok {
                            problems.push(type_problem(&key, entry, &entry_template, source));
                        }
                    }
                }
                _ => problems.push(type_problem(
                    &path,
                    value,
                    &Value::Object(Default::default()),
                    source,
                )),
            }
            continue;
        }
        match known.get(key) {
            None => problems.push(Problem {
                code: codes::C_UNKNOWN_KEY,
                key: Some(path.clone()),
                source: Some(source.to_string()),
                message: format!("unknown setting `{path}`"),
                hint: match closest(key, known.keys().map(String::as_str)) {
                    Some(s) => format!("did you mean `{}`?", join(prefix, s)),
                    None => format!(
                        "settings here: {}",
                        known
                            .keys()
                            .map(|k| format!("`{}`", join(prefix, k)))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                },
            }),
            Some(expected) => {
                if expected.is_object() && value.is_object() {
                    check_shape(value, expected, &path, source, problems);
                } else if !same_kind(value, expected) {
                    problems.push(type_problem(&path, value, expected, source));
                }
            }
        }
    }
}

fn type_problem(path: &str, value: &Value, expected: &Value, source: &Source) -> Problem {
    Problem {
        code: codes::C_INVALID,
        key: Some(path.to_owned()),
        source: Some(source.to_string()),
        message: format!(
            "`{path}` must be {}, found {}",
            describe(expected),
            describe(value)
        ),
        hint: format!("write `{path}` as {}", describe(expected)),
    }
}

/// The shape of `[channels.NAME]` tables (see [`check_shape`]).
fn check_channels(value: &Value, source: &Source, problems: &mut Vec<Problem>) {
    let template = serde_json::to_value(ChannelConfig::new(ChannelKind::Slack)).unwrap_or(Value::Null);
    let Value::Object(named) = value else {
        problems.push(type_problem(
            "channels",
            value,
            &Value::Object(Map::new()),
            source,
        ));
        return;
    };
    for (name, settings) in named {
        let key = format!("channels.{name}");
        let Value::Object(map) = settings else {
            problems.push(type_problem(&key, settings, &template, source));
            continue;
        };
        let mut rest = map.clone();
        if let Some(users) = rest.remove("command_users") {
            let lists = users.as_object().is_some_and(|m| {
                m.values()
                    .all(|v| v.as_array().is_some_and(|a| a.iter().all(Value::is_string)))
            });
            if !lists {
                let expected = serde_json::json!({"run": ["alice"]});
                problems.push(type_problem(
                    &format!("{key}.command_users"),
                    &users,
                    &expected,
                    source,
                ));
            }
        }
        check_shape(&Value::Object(rest), &template, &key, source, problems);
    }
}

fn same_kind(value: &Value, expected: &Value) -> bool {
    match expected {
        // Optional settings default to null: any scalar is accepted here, serde checks the rest.
        Value::Null => !value.is_object() && !value.is_array(),
        Value::Bool(_) => value.is_boolean(),
        Value::Number(n) if n.is_u64() => value.is_u64(),
        Value::Number(_) => value.is_number(),
        Value::String(_) => value.is_string(),
        Value::Array(_) => value.is_array(),
        Value::Object(_) => value.is_object(),
    }
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "a value",
        Value::Bool(_) => "true or false",
        Value::Number(n) if n.is_u64() => "a whole number ≥ 0",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "a table",
    }
}

fn env_value(raw: &str, template: &Value) -> Option<Value> {
    match template {
        Value::Bool(_) => match raw.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Some(Value::Bool(true)),
            "0" | "false" | "no" | "off" => Some(Value::Bool(false)),
            _ => None,
        },
        Value::Number(n) if n.is_u64() => raw.trim().parse::<u64>().ok().map(Value::from),
        Value::Number(_) => raw
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number),
        Value::Array(_) => Some(Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.into()))
                .collect(),
        )),
        _ => Some(Value::String(raw.to_owned())),
    }
}

fn validate(config: &Config, sources: &BTreeMap<String, Source>, problems: &mut Vec<Problem>) {
    let src = |key: &str| sources.get(key).map(ToString::to_string);
    for (model, price) in &config.prices {
        if let Err(message) = price.micros() {
            problems.push(Problem {
                code: codes::C_INVALID,
                key: Some(format!("prices.{model}")),
                source: src(&format!("prices.{model}")),
                message: format!("price of `{model}`: {message}"),
                hint: "write dollars per million tokens as text, such as input = \"2.50\"".into(),
            });
        }
    }
    for (name, models) in &config.chains {
        if models.is_empty() || models.iter().any(|m| m.trim().is_empty()) {
            problems.push(Problem {
                code: codes::C_INVALID,
                key: Some(format!("chains.{name}")),
                source: src(&format!("chains.{name}")),
                message: format!("chain `{name}` must list at least one model, and no empty names"),
                hint: format!(
                    "for example {name} = [\"openai/gpt-4o-mini\", \"anthropic/claude-3.5-haiku\"]"
                ),
            });
        }
    }
    let mut check_provider = |prefix: &str, p: &ProviderConfig| {
        if !(p.base_url.starts_with("http://") || p.base_url.starts_with("https://")) {
            problems.push(Problem {
                code: codes::C_INVALID,
                key: Some(format!("{prefix}.base_url")),
                source: src(&format!("{prefix}.base_url")),
                message: format!(
                    "`{prefix}.base_url` must be an http:// or https:// URL, found `{}`",
                    p.base_url
                ),
                hint: format!("for example `{DEFAULT_BASE_URL}` or `http://localhost:11434/v1`"),
            });
        }
        if p.max_concurrency == 0 {
            problems.push(Problem {
                code: codes::C_INVALID,
                key: Some(format!("{prefix}.max_concurrency")),
                source: src(&format!("{prefix}.max_concurrency")),
                message: format!("`{prefix}.max_concurrency` must be at least 1"),
                hint: "use 1 for strictly sequential calls".into(),
            });
        }
        if p.timeout_seconds == 0 {
            problems.push(Problem {
                code: codes::C_INVALID,
                key: Some(format!("{prefix}.timeout_seconds")),
                source: src(&format!("{prefix}.timeout_seconds")),
                message: format!("`{prefix}.timeout_seconds` must be at least 1"),
                hint: "calls need time to finish; the default is 300".into(),
            });
        }
    };
    check_provider("provider", &config.provider);
    for (name, p) in &config.providers {
        check_provider(&format!("providers.{name}"), p);
    }
    let store_schemes = ["sqlite://", "postgres://", "postgresql://"];
    if !store_schemes.iter().any(|s| config.store.url.starts_with(s)) {
        problems.push(Problem {
            code: codes::C_INVALID,
            key: Some("store.url".into()),
            source: src("store.url"),
            message: format!(
                "`store.url` must be a `sqlite://PATH` or `postgres://USER@HOST:PORT/DATABASE` URL, found `{}`",
                mask_url(&config.store.url)
            ),
            hint: "the embedded store is `sqlite://.rvbbit/rvbbit.db`; a shared one is `postgres://user:password@host:5432/rvbbit`"
                .into(),
        });
    }
    if let Some(url) = &config.store.events.url
        && let Some(why) = events_url_problem(url)
    {
        problems.push(Problem {
            code: codes::C_INVALID,
            key: Some("store.events.url".into()),
            source: src("store.events.url"),
            message: format!(
                "`store.events.url` must be a ClickHouse HTTP URL `http[s]://[USER[:PASSWORD]@]HOST[:PORT]/DATABASE`, found `{}`: {why}",
                mask_url(url)
            ),
            hint: "for example `http://rvbbit:secret@localhost:8123/rvbbit`; remove `[store.events]` to keep events in the store only".into(),
        });
    }
    validate_queue(&config.queue, &src, problems);
    validate_exec(config, &src, problems);
    artifacts::validate(&config.artifacts, &src, problems);
    costs::validate(&config.costs, &src, problems);
    channels::validate(&config.channels, &src, problems);
    tenants::validate(&config.tenants, &src, problems);
    if config.default_model.trim().is_empty() {
        problems.push(Problem {
            code: codes::C_INVALID,
            key: Some("default_model".into()),
            source: src("default_model"),
            message: "`default_model` is empty".into(),
            hint: format!("name a model, for example `{DEFAULT_MODEL}`"),
        });
    }
}

/// The `[exec]` ceilings and `batch.transient_retries`.
fn validate_exec(config: &Config, src: &dyn Fn(&str) -> Option<String>, problems: &mut Vec<Problem>) {
    let checks = [
        ("exec.max_output_files", config.exec.max_output_files, 100_000),
        (
            "exec.max_output_bytes",
            config.exec.max_output_bytes,
            1024 * 1024 * 1024,
        ),
        (
            "batch.transient_retries",
            u64::from(config.batch.transient_retries),
            5,
        ),
    ];
    for (key, value, most) in checks {
        if value > most {
            problems.push(Problem {
                code: codes::C_INVALID,
                key: Some(key.into()),
                source: src(key),
                message: format!("`{key}` is {value}, more than its ceiling of {most}"),
                hint: format!("set `{key}` to at most {most}"),
            });
        }
    }
}

/// The `[queue]` settings' problems.
fn validate_queue(queue: &QueueConfig, src: &dyn Fn(&str) -> Option<String>, problems: &mut Vec<Problem>) {
    let mut bad = |key: &str, message: String, hint: &str| {
        problems.push(Problem {
            code: codes::C_INVALID,
            key: Some(key.into()),
            source: src(key),
            message,
            hint: hint.into(),
        });
    };
    if let Some(url) = &queue.url
        && let Some(why) = queue_url_problem(url)
    {
        bad(
            "queue.url",
            format!(
                "`queue.url` must be a NATS URL `nats://[USER:PASSWORD@]HOST[:PORT]`, found `{}`: {why}",
                mask_url(url)
            ),
            "for example `nats://localhost:4222`; remove `[queue] url` when no queue is used",
        );
    }
    let name_ok = !queue.stream.is_empty()
        && queue.stream.len() <= 64
        && queue
            .stream
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !name_ok {
        bad(
            "queue.stream",
            format!(
                "`queue.stream` must be 1 to 64 letters, digits, `_` or `-`, found `{}`",
                queue.stream
            ),
            "the default is `RVBBIT_JOBS`",
        );
    }
    for (key, value) in [
        ("queue.ack_wait_seconds", queue.ack_wait_seconds),
        ("queue.max_deliveries", u64::from(queue.max_deliveries)),
        ("queue.duplicate_window_seconds", queue.duplicate_window_seconds),
    ] {
        if value == 0 {
            bad(
                key,
                format!("`{key}` must be at least 1"),
                "see docs/workers.md for the defaults",
            );
        }
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

fn lookup<'v>(value: &'v Value, key: &str) -> Option<&'v Value> {
    key.split('.').try_fold(value, |v, part| v.get(part))
}

fn set(value: &mut Value, key: &str, new: Value) {
    let mut current = value;
    let parts: Vec<&str> = key.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        if !current.is_object() {
            *current = Value::Object(Map::new());
        }
        let Value::Object(map) = current else { return };
        if i == parts.len() - 1 {
            map.insert((*part).to_owned(), new);
            return;
        }
        current = map
            .entry((*part).to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}

fn merge(
    base: &mut Value,
    layer: &Value,
    prefix: &str,
    source: &Source,
    sources: &mut BTreeMap<String, Source>,
) {
    match (base, layer) {
        (Value::Object(b), Value::Object(l)) => {
            for (k, v) in l {
                let path = join(prefix, k);
                match b.get_mut(k) {
                    Some(existing) if existing.is_object() && v.is_object() => {
                        merge(existing, v, &path, source, sources)
                    }
                    _ => {
                        b.insert(k.clone(), v.clone());
                        record_sources(v, &path, source, sources);
                    }
                }
            }
        }
        (b, l) => {
            *b = l.clone();
            record_sources(l, prefix, source, sources);
        }
    }
}

fn record_sources(value: &Value, prefix: &str, source: &Source, sources: &mut BTreeMap<String, Source>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                record_sources(v, &join(prefix, k), source, sources);
            }
        }
        _ if !prefix.is_empty() => {
            sources.insert(prefix.to_owned(), source.clone());
        }
        _ => {}
    }
}

fn leaf_keys(value: &Value) -> Vec<String> {
    let mut out = BTreeMap::new();
    record_sources(value, "", &Source::Default, &mut out);
    out.into_keys().collect()
}

/// The closest of `candidates` to `word`, if any is close.
pub(crate) fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lower = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(&lower, &c.to_ascii_lowercase()), c))
        .filter(|(score, _)| *score > 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// Whether a dotted key holds a secret.
pub fn is_secret_key(key: &str) -> bool {
    let last = key.rsplit('.').next().unwrap_or(key);
    matches!(
        last,
        "api_key" | "password" | "token" | "secret" | "secret_access_key" | "signing_secret" | "bot_token"
    )
}

/// Hide the password of a URL (`postgres://u:****@h/db`).
pub fn mask_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:****@{host}{tail}"),
        None => url.to_owned(),
    }
}

/// One row of `rvbbit config show`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ShownValue {
    /// Dotted key.
    pub key: String,
    /// The value as JSON text, secrets masked.
    pub value: String,
    /// Where it came from.
    pub source: String,
}

impl Loaded {
    /// Every leaf setting with its value (secrets masked) and source, sorted by key.
    pub fn show(&self) -> Vec<ShownValue> {
        let value = serde_json::to_value(&self.config).unwrap_or(Value::Null);
        let mut leaves = BTreeMap::new();
        record_sources(&value, "", &Source::Default, &mut leaves);
        leaves
            .into_keys()
            .map(|key| {
                let v = lookup(&value, &key).cloned().unwrap_or(Value::Null);
                let shown = if is_secret_key(&key) && !v.is_null() {
                    "\"****\"".to_owned()
                } else if let Value::String(s) = &v {
                    serde_json::to_string(&mask_url(s)).unwrap_or_default()
                } else {
                    v.to_string()
                };
                let source = self
                    .sources
                    .get(&key)
                    .map_or_else(|| "default".to_owned(), ToString::to_string);
                ShownValue {
                    key,
                    value: shown,
                    source,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(dir: &Path) -> LoadOptions {
        LoadOptions {
            dir: dir.to_path_buf(),
            ..LoadOptions::default()
        }
    }

    #[test]
    fn server_and_sql_sections_load_from_file_env_and_flags() {
        let dir = tempfile::TempDir::new().unwrap();
        std::fs::write(
            dir.path().join("rvbbit.toml"),
            "[server]\nport = 6060\ncors_origins = [\"https://app.example.com\"]\n[sql.tables]\norders = \"data/orders.csv\"\n",
        )
        .unwrap();
        let mut o = opts(dir.path());
        o.env = vec![("RVBBIT_SQL__PORT".into(), "25432".into())];
        o.flags = vec![(
            "sql.tables.events".into(),
            "s3://b/events/".into(),
            "--set".into(),
        )];
        let loaded = load(&o).unwrap();
        assert_eq!(loaded.config.server.port, 6060);
        assert_eq!(loaded.config.server.host, "127.0.0.1");
        assert_eq!(loaded.config.server.cors_origins, ["https://app.example.com"]);
        assert_eq!(loaded.config.sql.port, 25432);
        assert_eq!(loaded.config.sql.tables["orders"], "data/orders.csv");
        assert_eq!(loaded.config.sql.tables["events"], "s3://b/events/");

        std::fs::write(
            dir.path().join("rvbbit.toml"),
            "[sql.tables]\norders = 3\n[server]\nprot = 1\n",
        )
        .unwrap();
        let err = load(&opts(dir.path())).unwrap_err();
        let keys: Vec<_> = err.problems.iter().filter_map(|p| p.key.clone()).collect();
        assert!(keys.contains(&"sql.tables.orders".to_owned()), "{keys:?}");
        assert!(
            err.problems.iter().any(|p| p.hint.contains("server.port")),
            "{err:?}"
        );
    }

    #[test]
    fn defaults_load_without_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let loaded = load(&opts(dir.path())).unwrap();
        assert_eq!(loaded.config.default_model, DEFAULT_MODEL);
        assert_eq!(loaded.sources["default_model"], Source::Default);
        assert!(loaded.file.is_none());
    }

    #[test]
    fn layers_apply_in_order_with_sources() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("rvbbit.toml"),
            "default_model = \"file/model\"\n[provider]\nmax_concurrency = 8\n",
        )
        .unwrap();
        let mut o = opts(dir.path());
        o.env = vec![
            ("RVBBIT_DEFAULT_MODEL".into(), "env/model".into()),
            ("RVBBIT_PROVIDER_BASE_URL".into(), "http://localhost:9/v1".into()),
            ("RVBBIT_TEST_PG_URL".into(), "ignored".into()),
            ("PATH".into(), "/bin".into()),
        ];
        o.flags = vec![(
            "provider.max_retries".into(),
            "1".into(),
            "--set provider.max_retries=1".into(),
        )];
        let loaded = load(&o).unwrap();
        assert_eq!(loaded.config.default_model, "env/model");
        assert_eq!(loaded.config.provider.max_concurrency, 8);
        assert_eq!(loaded.config.provider.base_url, "http://localhost:9/v1");
        assert_eq!(loaded.config.provider.max_retries, 1);
        assert_eq!(
            loaded.sources["default_model"],
            Source::Env("RVBBIT_DEFAULT_MODEL".into())
        );
        assert!(matches!(
            loaded.sources["provider.max_concurrency"],
            Source::File(_)
        ));
        assert_eq!(
            loaded.sources["provider.max_retries"],
            Source::Flag("--set provider.max_retries=1".into())
        );
        assert!(loaded.warnings.is_empty());
    }

    #[test]
    fn flags_are_checked_like_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = opts(dir.path());
        o.flags = vec![
            (
                "providers.ollama.base_url".into(),
                "http://localhost:11434/v1".into(),
                "--set".into(),
            ),
            ("provider.max_concurency".into(), "4".into(), "--set".into()),
            ("provider.timeout_seconds".into(), "soon".into(), "--set".into()),
        ];
        let err = load(&o).unwrap_err();
        assert_eq!(err.problems.len(), 2, "{err:?}");
        assert_eq!(err.problems[0].hint, "did you mean `provider.max_concurrency`?");
        assert_eq!(err.problems[1].code, codes::C_INVALID);
        o.flags.truncate(1);
        let loaded = load(&o).unwrap();
        assert_eq!(
            loaded.config.providers["ollama"].base_url,
            "http://localhost:11434/v1"
        );
        assert_eq!(
            loaded.config.providers["ollama"].max_concurrency, 32,
            "other provider fields default"
        );
    }

    #[test]
    fn every_problem_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("rvbbit.toml"),
            "default_modle = \"x\"\n[provider]\nbase_url = \"ftp://x\"\nmax_concurrency = \"lots\"\n[store]\nurl = \"mysql://u:pw@h/db\"\n",
        )
        .unwrap();
        let mut o = opts(dir.path());
        o.env = vec![("RVBBIT_PROVIDER__TIMEOUT_SECONDS".into(), "soon".into())];
        let err = load(&o).unwrap_err();
        let keys: Vec<Option<&str>> = err.problems.iter().map(|p| p.key.as_deref()).collect();
        assert!(keys.contains(&Some("default_modle")), "{err:?}");
        assert!(keys.contains(&Some("provider.max_concurrency")), "{err:?}");
        assert!(keys.contains(&Some("provider.timeout_seconds")), "{err:?}");
        let unknown = err
            .problems
            .iter()
            .find(|p| p.key.as_deref() == Some("default_modle"))
            .unwrap();
        assert_eq!(unknown.hint, "did you mean `default_model`?");
        assert!(err.problems.iter().all(|p| p.code.exit_code() == 6));
    }

    #[test]
    fn semantic_checks_run_after_typing() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("rvbbit.toml"),
            "[provider]\nbase_url = \"ftp://x\"\n[store]\nurl = \"mysql://u:pw@h/db\"\n",
        )
        .unwrap();
        let err = load(&opts(dir.path())).unwrap_err();
        assert_eq!(err.problems.len(), 2, "{err:?}");
        assert!(
            err.problems[1].message.contains("u:****@h"),
            "secret leaked: {}",
            err.problems[1].message
        );
    }

    #[test]
    fn the_events_url_is_checked_and_its_password_masked() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("rvbbit.toml"),
            "[store.events]\nurl = \"ftp://ada:hunter2@ch:8123/db\"\n",
        )
        .unwrap();
        let err = load(&opts(dir.path())).unwrap_err();
        assert_eq!(err.problems.len(), 1, "{err:?}");
        let p = &err.problems[0];
        assert_eq!(
            (p.code, p.key.as_deref()),
            (codes::C_INVALID, Some("store.events.url"))
        );
        assert!(p.message.contains("ftp://ada:****@ch:8123/db"), "{}", p.message);
        assert!(!p.message.contains("hunter2"), "{}", p.message);

        let mut o = opts(dir.path());
        std::fs::remove_file(dir.path().join("rvbbit.toml")).unwrap();
        o.env = vec![(
            "RVBBIT_STORE_EVENTS_URL".into(),
            "http://ada:hunter2@ch:8123/analytics".into(),
        )];
        let loaded = load(&o).unwrap();
        assert_eq!(
            loaded.config.store.events.url.as_deref(),
            Some("http://ada:hunter2@ch:8123/analytics")
        );
        assert!(!format!("{:?}", loaded.config).contains("hunter2"));
        assert!(!format!("{:?}", loaded.show()).contains("hunter2"));
        assert_eq!(
            events_url_problem("http://h:port/db").unwrap(),
            "its port `port` is not a number"
        );
        assert!(
            events_url_problem("https://h/a-b")
                .unwrap()
                .contains("plain name")
        );
        assert_eq!(events_url_problem("http://localhost:8123/rvbbit"), None);
    }

    #[test]
    fn syntax_errors_have_positions_and_missing_explicit_file_fails() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("rvbbit.toml"), "[provider\n").unwrap();
        let err = load(&opts(dir.path())).unwrap_err();
        assert_eq!(err.problems[0].code, codes::C_SYNTAX);
        assert!(
            err.problems[0].source.as_deref().unwrap().ends_with(":1:10"),
            "{err:?}"
        );
        let mut o = opts(dir.path());
        o.explicit_file = Some(dir.path().join("nope.toml"));
        assert_eq!(load(&o).unwrap_err().problems[0].code, codes::C_NOT_FOUND);
    }

    #[test]
    fn unknown_env_vars_warn_and_secrets_are_masked() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = opts(dir.path());
        o.env = vec![
            ("RVBBIT_DEFAULT_MODLE".into(), "x".into()),
            ("RVBBIT_PROVIDER__API_KEY".into(), "sk-secret".into()),
        ];
        let loaded = load(&o).unwrap();
        assert_eq!(loaded.warnings.len(), 1);
        assert_eq!(loaded.warnings[0].hint, "did you mean `RVBBIT_DEFAULT_MODEL`?");
        let shown = loaded.show();
        let key = shown.iter().find(|s| s.key == "provider.api_key").unwrap();
        assert_eq!(key.value, "\"****\"");
        assert!(!format!("{:?}", loaded.config).contains("sk-secret"));
    }

    #[test]
    fn urls_lose_their_password_and_keep_the_rest() {
        assert_eq!(
            mask_url("postgres://ada:s3cret@db.example:5432/rvbbit?sslmode=disable"),
            "postgres://ada:****@db.example:5432/rvbbit?sslmode=disable"
        );
        assert_eq!(mask_url("postgres://ada@db/rvbbit"), "postgres://ada@db/rvbbit");
        assert_eq!(mask_url("postgres://a:p@ss@h/db"), "postgres://a:****@h/db");
        assert_eq!(mask_url("not a url"), "not a url");
    }

    #[test]
    fn queue_settings_are_checked_and_the_url_comes_from_rvbbit_queue_url() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("rvbbit.toml"),
            "[queue]\nurl = \"http://ada:hunter2@nats:4222\"\nstream = \"a.b\"\nmax_deliveries = 0\n",
        )
        .unwrap();
        let err = load(&opts(dir.path())).unwrap_err();
        let keys: Vec<_> = err.problems.iter().map(|p| (p.code, p.key.as_deref())).collect();
        assert_eq!(
            keys,
            vec![
                (codes::C_INVALID, Some("queue.url")),
                (codes::C_INVALID, Some("queue.stream")),
                (codes::C_INVALID, Some("queue.max_deliveries")),
            ],
            "{err:?}"
        );
        let url = &err.problems[0];
        assert!(
            url.message.contains("http://ada:****@nats:4222"),
            "{}",
            url.message
        );
        assert!(url.message.contains("scheme is `http`"), "{}", url.message);
        assert!(!format!("{err:?}").contains("hunter2"));
        assert!(url.hint.contains("nats://localhost:4222"), "{}", url.hint);

        std::fs::remove_file(dir.path().join("rvbbit.toml")).unwrap();
        let mut o = opts(dir.path());
        o.env = vec![("RVBBIT_QUEUE_URL".into(), "nats://ada:hunter2@nats:4222".into())];
        let loaded = load(&o).unwrap();
        assert_eq!(
            loaded.config.queue.url.as_deref(),
            Some("nats://ada:hunter2@nats:4222")
        );
        assert!(!format!("{:?}", loaded.config).contains("hunter2"));
        assert!(!format!("{:?}", loaded.show()).contains("hunter2"));
        assert_eq!(queue_url_problem("nats://h"), None);
        assert!(queue_url_problem("nats://h:x").unwrap().contains("port"));
        assert!(queue_url_problem("nats://h:4222/db").unwrap().contains("path"));
    }
}
