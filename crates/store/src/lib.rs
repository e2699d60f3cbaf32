//! Storage for rvbbit: events, sessions, the result cache, signals and checkpoints.
//!
//! The [`traits`] ([`EventSink`], [`SessionStore`], [`ResultCache`], [`SignalStore`], [`CheckpointStore`]
//! and [`Store`]) are
//! async, batch-oriented and backend-agnostic; each backend lives in its own folder behind a cargo
//! feature (`sqlite/` and `postgres/`, both in the default build; `nats/` later) and must pass the
//! conformance suite in `tests/it/conformance.rs`. [`queue`] (feature `queue`, default) is the job queue
//! that `rvbbit submit` and `rvbbit worker` share, on NATS JetStream. [`artifacts`] (feature `artifacts`,
//! default) holds content-addressed cascade bundles and run outputs on object storage. `clickhouse/` (also default) is not a store but a second
//! destination for events, the [`Writer`]'s optional event sink (`[store.events] url`). The [`Writer`] batches records from a bounded
//! channel, retries a busy store and spills to `.rvbbit/spill/*.jsonl` when the store fails; [`spill`]
//! replays those files exactly once; [`Heartbeat`] keeps a running session's heartbeat fresh so zombies can
//! be told apart; [`trace`] builds a session's tree of cells and calls.
//!
//! This crate must not depend on `rvbbit-cascade`, `rvbbit-llm` or `rvbbit-engine`.
//!
//! ```no_run
//! # async fn demo() -> rvbbit_store::Result<()> {
//! use std::path::Path;
//! use rvbbit_core::{Event, EventKind, SessionId};
//! use rvbbit_store::{Writer, WriterOptions};
//!
//! let store = rvbbit_store::open("sqlite://.rvbbit/rvbbit.db", Path::new(".")).await?;
//! let writer = Writer::spawn(store, WriterOptions::new(".rvbbit/spill".into()));
//! let session: SessionId = "quiet-heron-0c1d2e3f4a5b6c7d".parse().unwrap();
//! writer.handle().event(Event::new(EventKind::CascadeStart, session, 0)).await?;
//! let stats = writer.shutdown().await?;
//! assert_eq!(stats.lost, 0);
//! # Ok(()) }
//! ```

#[cfg(feature = "artifacts")]
pub mod artifacts;
pub mod batches;
pub mod channels;
#[cfg(feature = "clickhouse")]
pub mod clickhouse;
pub mod conversations;
pub mod copy;
mod error;
pub mod heartbeat;
pub mod journal;
pub mod limits;
mod model;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod published;
pub mod queue;
pub mod spill;
#[cfg(feature = "sqlite")]
pub mod sqlite;
pub mod trace;
pub mod traits;
pub mod workers;
mod writer;

use std::path::Path;
use std::sync::Arc;

pub use batches::{BatchRecord, BatchStore};
pub use channels::{ChannelStore, IdentityKey, StoredIntegration};
pub use conversations::{Conversation, ConversationMessage, ConversationStore, TurnRecord};
pub use copy::{CopyReport, copy_all};
pub use error::{Error, Result};
pub use heartbeat::Heartbeat;
pub use journal::{Effect, EffectBegin, EffectStatus, JournalEntry, JournalStore};
pub use limits::{LimitPeriod, LimitScope, LimitStore, LimitUse, SpendLimit};
pub use model::{
    ApiKey, CacheEntry, Checkpoint, CheckpointStatus, Cleanup, CostGroup, CostRow, EventFilter, Prune,
    Record, Session, SessionFilter, SessionSummary, Signal, SignalStatus, StoreStatus, StoredEvent,
};
pub use queue::{Delivery, Job, Queue, QueueOptions, QueueStatus};
use rvbbit_core::config::mask_url;
pub use traits::{ApiKeyStore, CheckpointStore, EventSink, ResultCache, SessionStore, SignalStore, Store};
pub use workers::{WorkerRecord, WorkerState, WorkerStore};
pub use writer::{SinkOptions, SinkState, Writer, WriterHandle, WriterOptions, WriterStats};

/// Open the store named by `url` (relative paths are taken from `base`), creating and migrating it.
///
/// Errors: [`Error::UnsupportedUrl`] for a scheme this build lacks, and the backend's open errors.
pub async fn open(url: &str, base: &Path) -> Result<Arc<dyn Store>> {
    #[cfg(feature = "sqlite")]
    if url.starts_with("sqlite://") {
        let options = sqlite::SqliteOptions::from_url(url, base)?;
        return Ok(Arc::new(sqlite::SqliteStore::open(url, options).await?));
    }
    #[cfg(feature = "postgres")]
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Arc::new(postgres::PostgresStore::open(url).await?));
    }
    let _ = base; // Only used by backends compiled in.
    Err(Error::UnsupportedUrl {
        url: mask_url(url),
        supported: vec![
            #[cfg(feature = "sqlite")]
            "sqlite://PATH",
            #[cfg(feature = "postgres")]
            "postgres://USER@HOST:PORT/DATABASE",
        ],
    })
}

/// Open the event sink named by `url` (today only ClickHouse: `http[s]://…/database`), creating its
/// database and migrating its schema.
///
/// Errors: [`Error::UnsupportedUrl`] when this build lacks the sink, and the sink's open errors.
pub async fn open_sink(url: &str) -> Result<Arc<dyn EventSink>> {
    #[cfg(feature = "clickhouse")]
    if url.starts_with("http://") || url.starts_with("https://") {
        return Ok(Arc::new(clickhouse::ClickHouseSink::open(url).await?));
    }
    Err(Error::UnsupportedUrl {
        url: mask_url(url),
        supported: vec![
            #[cfg(feature = "clickhouse")]
            "http://USER:PASSWORD@HOST:8123/DATABASE",
        ],
    })
}
