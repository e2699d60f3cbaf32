//! Cell executors, one file per kind.

pub(crate) mod deterministic;
pub(crate) mod hitl;
pub(crate) mod llm;
mod tool_calls;
mod validators;
