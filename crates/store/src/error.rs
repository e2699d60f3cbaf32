//! The store's one error type, each variant mapped to an rvbbit-core code.

use std::path::PathBuf;

use rvbbit_core::{ErrorCode, codes};

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The store URL is not one this build understands.
    #[error("store URL `{url}` is not supported; expected one of: {}", .supported.join(", "))]
    UnsupportedUrl {
        /// The URL as given (secrets masked by the caller).
        url: String,
        /// The schemes this build supports.
        supported: Vec<&'static str>,
    },
    /// The store could not be opened or written: a missing, read-only or full disk, a server that is down.
    #[error("store `{url}` is unavailable while trying to {action}")]
    Unavailable {
        /// The store URL.
        url: String,
        /// What was being done.
        action: String,
        /// The backend's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The store is busy (locked by another writer) beyond its timeout; retrying later may work.
    #[error("store `{url}` is busy (locked by another writer) while trying to {action}")]
    Busy {
        /// The store URL.
        url: String,
        /// What was being done.
        action: String,
        /// The backend's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The schema could not be brought to the version this build needs.
    #[error("store `{url}` has schema version {found}, this rvbbit knows versions up to {known}")]
    SchemaTooNew {
        /// The store URL.
        url: String,
        /// The version found in the store.
        found: i64,
        /// The newest version this build knows.
        known: i64,
    },
    /// A migration step failed.
    #[error("migration {version} ({name}) of store `{url}` failed")]
    Migration {
        /// The store URL.
        url: String,
        /// The migration's version.
        version: i64,
        /// The migration's name.
        name: &'static str,
        /// The backend's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A row could not be decoded into its type.
    #[error("store `{url}` holds an unreadable {what}: {detail}")]
    Corrupt {
        /// The store URL.
        url: String,
        /// What was being read (`event`, `session`, ...).
        what: &'static str,
        /// What is wrong with it.
        detail: String,
    },
    /// A session (or other record) does not exist.
    #[error("no {what} `{id}` in the store")]
    NotFound {
        /// What was looked up.
        what: &'static str,
        /// The id asked for.
        id: String,
    },
    /// The request cannot be done in the record's current state.
    #[error("{what} `{id}` is {state}: {reason}")]
    Conflict {
        /// What was acted on.
        what: &'static str,
        /// Its id.
        id: String,
        /// Its current state.
        state: String,
        /// Why the request cannot be done.
        reason: String,
    },
    /// A spill, backup or export file could not be read or written.
    #[error("cannot {action} `{}`", .path.display())]
    File {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A line of a spill file is not a record.
    #[error("line {line} of spill file `{}` is not a record", .path.display())]
    SpillLine {
        /// The spill file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The decoding error.
        #[source]
        source: serde_json::Error,
    },
    /// The background writer is gone (its task ended), so nothing more can be written through it.
    #[error("the event writer has stopped; {0}")]
    WriterClosed(String),
    /// The job queue could not be reached or failed a request.
    #[error("queue `{url}` is unavailable while trying to {action}")]
    QueueUnavailable {
        /// The queue URL (secrets masked).
        url: String,
        /// What was being done.
        action: String,
        /// The client's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The queue server holds a stream or consumer configured otherwise than asked.
    #[error("queue `{url}`: the server holds {what} with {field} = {got}, but rvbbit asked for {asked}")]
    QueueConfig {
        /// The queue URL (secrets masked).
        url: String,
        /// Which stream or consumer.
        what: String,
        /// The setting that differs.
        field: &'static str,
        /// What rvbbit asked for.
        asked: String,
        /// What the server returned.
        got: String,
    },
    /// The queue server refused to create or update the stream or consumer as configured.
    #[error("queue `{url}` refused to {action}")]
    QueueRefused {
        /// The queue URL (secrets masked).
        url: String,
        /// What was asked.
        action: String,
        /// The server's answer.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A job on the queue cannot be used (not found, or not a job).
    #[error("queue `{url}`: {detail}")]
    QueueJob {
        /// The queue URL (secrets masked).
        url: String,
        /// What is wrong.
        detail: String,
    },
    /// The artifact store cannot work as configured (URL, endpoint, credentials).
    #[error("artifact store `{url}`: {detail}")]
    ArtifactsConfig {
        /// The artifacts URL.
        url: String,
        /// What is wrong.
        detail: String,
    },
    /// The artifact store could not be reached or failed a request.
    #[error("artifact store `{url}` is unavailable while trying to {action}")]
    ArtifactsUnavailable {
        /// The artifacts URL.
        url: String,
        /// What was being done.
        action: String,
        /// The client's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A bundle (or a file of one) is not in the artifact store.
    #[error("{what} is not in the artifact store `{url}`")]
    BundleNotFound {
        /// What was looked up (`NAME:VERSION`, `sha256:HEX`, a file).
        what: String,
        /// The artifacts URL.
        url: String,
    },
    /// A bundle is over a limit.
    #[error("{what} has {found}, more than the {max} allowed ({setting})")]
    BundleLimit {
        /// The bundle.
        what: String,
        /// What it has.
        found: String,
        /// The limit.
        max: String,
        /// The setting that holds the limit.
        setting: &'static str,
    },
    /// A bundle's file or manifest was refused.
    #[error("bundle refused: {detail}")]
    BundleRefused {
        /// What was refused and why.
        detail: String,
    },
    /// `NAME:VERSION` already names other content.
    #[error("{name}:{version} already names bundle {existing}, not {new}")]
    BundleNameTaken {
        /// The name.
        name: String,
        /// The version.
        version: String,
        /// The bundle it names.
        existing: String,
        /// The bundle pushed now.
        new: String,
    },
    /// A broken invariant.
    #[error("internal store error: {0} (this is a bug)")]
    Internal(String),
}

/// The store's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The rvbbit-core code of this error (which decides the exit code).
    pub fn code(&self) -> &'static ErrorCode {
        match self {
            Error::UnsupportedUrl { .. } => codes::C_INVALID,
            Error::Unavailable { .. } | Error::Busy { .. } | Error::WriterClosed(_) => codes::S_UNAVAILABLE,
            Error::SchemaTooNew { .. } | Error::Migration { .. } => codes::S_MIGRATION,
            Error::Corrupt { .. } => codes::S_CORRUPT,
            Error::NotFound { .. } => codes::S_NOT_FOUND,
            Error::Conflict { .. } => codes::S_CONFLICT,
            Error::File { .. } | Error::SpillLine { .. } => codes::S_FILE,
            Error::QueueUnavailable { .. } => codes::S_QUEUE_UNAVAILABLE,
            Error::QueueConfig { .. } | Error::QueueRefused { .. } => codes::S_QUEUE_CONFIG,
            Error::QueueJob { .. } => codes::S_QUEUE_JOB,
            Error::ArtifactsConfig { .. } => codes::C_INVALID,
            Error::ArtifactsUnavailable { .. } => codes::S_ARTIFACTS_UNAVAILABLE,
            Error::BundleNotFound { .. } => codes::S_BUNDLE_NOT_FOUND,
            Error::BundleLimit { .. } => codes::S_BUNDLE_LIMIT,
            Error::BundleRefused { .. } => codes::S_BUNDLE_REFUSED,
            Error::BundleNameTaken { .. } => codes::S_BUNDLE_NAME_TAKEN,
            Error::Internal(_) => codes::INTERNAL,
        }
    }

    /// Whether retrying the same operation later may succeed (the store was busy).
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Busy { .. })
    }

    /// How to fix it, for the CLI's hint line.
    pub fn hint(&self) -> String {
        match self {
            Error::UnsupportedUrl { .. } => "set `store.url` to `sqlite://PATH` (the default is `sqlite://.rvbbit/rvbbit.db`)".into(),
            Error::Unavailable { .. } | Error::Busy { .. } | Error::WriterClosed(_) => {
                "check `rvbbit health` and `rvbbit doctor`; that the directory exists, is writable and the disk is not full. Spilled events wait in `.rvbbit/spill/` for `rvbbit db replay`".into()
            }
            Error::SchemaTooNew { .. } => "upgrade rvbbit, or point `store.url` at another store".into(),
            Error::Migration { .. } => "run `rvbbit db status`; restore from `rvbbit db backup` if the store was changed by hand".into(),
            Error::Corrupt { .. } => "back the store up with `rvbbit db backup --to DIR`, then inspect the row".into(),
            Error::NotFound { what: "api key", .. } => "list keys with `rvbbit keys list`".into(),
            Error::NotFound { .. } => "list sessions with `rvbbit sessions list`".into(),
            Error::Conflict { what: "api key", .. } => "create a new key with `rvbbit keys create`".into(),
            Error::Conflict { .. } => "check the session with `rvbbit sessions show ID`".into(),
            Error::File { .. } | Error::SpillLine { .. } => "check the path exists and is writable; a damaged spill line can be removed by hand".into(),
            Error::QueueUnavailable { url, .. } => format!(
                "start `nats-server -js` at {url}, or point `queue.url` (`--queue`, `RVBBIT_QUEUE_URL`) at a running NATS server with JetStream"
            ),
            Error::QueueConfig { .. } | Error::QueueRefused { .. } => "use NATS server 2.9 or newer and the same `[queue]` settings for every worker and submitter, or remove the stream when no job in it is needed".into(),
            Error::QueueJob { .. } => "list dead letters with `rvbbit queue status --output json`; enqueue runs only with `rvbbit submit`".into(),
            Error::ArtifactsConfig { .. } => "set `[artifacts] url` to `s3://BUCKET[/PREFIX]` or `file:///ABSOLUTE/PATH`, with credentials in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY for S3 (docs/registry.md)".into(),
            Error::ArtifactsUnavailable { .. } => "check `artifacts.url`, `artifacts.endpoint` and the S3 credentials (`rvbbit config show` masks secrets), and that the bucket exists and this machine reaches it".into(),
            Error::BundleNotFound { .. } => "push it with `rvbbit cascade push FILE --name NAME:VERSION`, or point `artifacts.url` at the store it was pushed to".into(),
            Error::BundleLimit { setting, .. } => format!("move unrelated files out of the cascade's tool directories, or raise `{setting}` in rvbbit.toml"),
            Error::BundleRefused { .. } => "copy referenced files into the project instead of linking them; a fetched bundle that does not check must be pushed again from its source".into(),
            Error::BundleNameTaken { .. } => "push under a new version, or pass `--force` to move this version to the new content".into(),
            Error::Internal(_) => "report it with the command you ran and `rvbbit --version`".into(),
        }
    }
}
