//! `RVBBIT MAP` and `RVBBIT RUN` statements (spec §4/§5): the grammar ([`parse`](mod@parse)) and the native
//! execution of MAP ([`exec`], with its [`columns`]). `RVBBIT RUN` executes in `run_batch.rs`.

mod columns;
pub(crate) mod distributed;
mod exec;
mod gathered;
mod parse;

pub use distributed::QueueSettings;
pub(crate) use exec::execute_map;
pub(crate) use parse::{MapStatement, Verb, parse};
