//! Cell executors, one file per kind.

mod budget;
pub(crate) mod cascade_takes;
pub(crate) mod deterministic;
mod evaluator;
pub(crate) mod hitl;
pub(crate) mod llm;
pub(crate) mod plans;
pub(crate) mod takes;
mod tool_calls;
mod validators;
pub(crate) mod wards;
