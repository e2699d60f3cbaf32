//! Core types shared by every rvbbit crate.
//!
//! This crate owns the vocabulary the rest of rvbbit speaks and nothing that does I/O beyond reading
//! configuration:
//!
//! - [`MicroUsd`]: money as integer micro-dollars (never floats);
//! - [`SessionId`] and [`CallerId`]: woodland-style identifiers;
//! - [`codes`]: the error-code table, which fixes every error's exit code and documentation page;
//! - [`event`]: the [`Event`] record of everything that happens in a run, with [`Timestamp`] (UTC µs);
//! - [`config`]: configuration layers (defaults, `rvbbit.toml`, `RVBBIT_*`, flags), validated up front.
//!
//! It must not depend on tokio, a network or database client, or any other rvbbit crate.
//!
//! ```
//! use rvbbit_core::{MicroUsd, SessionId, codes};
//! let cost: MicroUsd = "0.0025".parse().unwrap();
//! assert_eq!(cost.micros(), 2_500);
//! assert!(SessionId::new_woodland().as_str().split('-').count() >= 3);
//! assert_eq!(codes::V_UNKNOWN_KEY.exit_code(), 1);
//! ```

mod chain;
pub mod codes;
pub mod config;
pub mod event;
mod id;
pub mod markup;
mod money;

pub use chain::error_chain;
pub use codes::{ErrorCode, ExitClass};
pub use config::Config;
pub use event::{CostStatus, Event, EventId, EventKind, SessionStatus, Timestamp, Tokens};
pub use id::{CallerId, IdError, Origin, SessionId, woodland_name, woodland_name_with};
pub use money::{MicroUsd, MoneyParseError};
