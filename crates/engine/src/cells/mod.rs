//! Cell executors, one file per kind.

mod budget;
pub(crate) mod deterministic;
pub(crate) mod llm;
pub(crate) mod takes;
mod tool_calls;
mod validators;
