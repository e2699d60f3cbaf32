//! The typed model of the cascade language (`shared/spec/CASCADE_DSL.md`).
//!
//! Field names are the canonical (E2, rvbbit era) spellings; the loader renames era aliases
//! (`phases`, `tackle`, `soundings`, ...) before these types are filled. Doc comments on fields become
//! the descriptions of the exported JSON Schema, so they are written for users.

mod candidates;
mod cascade;
mod cell;
mod context;
mod extras;
mod rules;
mod sql_function;
mod tool_def;

pub use candidates::{CandidateModel, CandidateModels, Candidates, CandidatesMode, MutationMode, Reforge};
pub use cascade::{Cascade, InlineValidator};
pub use cell::{
    AsyncCascade, AsyncTrigger, AutoFix, Callouts, Cell, CellKind, CellSandbox, Handoff, HumanInput,
    HumanInputSpec, ModelSpec, OnError, OnErrorSpec, OutputExtraction, Retry, SubCascade, Traits,
};
pub use context::{
    Anchors, AutoContext, Context, ContextFrom, ContextSource, InterContext, IntraContext, Selection,
};
pub use extras::{
    Audibles, DecisionPoints, ForEachRow, ImageConfig, Narrator, Rag, TokenBudget, ToolCacheRule,
    ToolCaching, Trigger,
};
pub use rules::{InlineValidatorSpec, Rules, ValidatorSpec, Ward, WardMode, Wards};
pub use sql_function::{OutputMode, SqlArg, SqlFunction, SqlShape, SqlType};
pub use tool_def::{CompositeStep, ToolDefinition, ToolType};

/// A number given directly or as a template that renders to one (`factor: "{{ input.n }}"`).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum IntOrTemplate {
    /// A literal number.
    Int(i64),
    /// A template rendered at run time.
    Template(String),
}

/// A duration: seconds as a number, or text such as `"30s"`, `"5m"`, `"1.5h"`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum DurationSpec {
    /// Seconds.
    Seconds(f64),
    /// Text with a unit suffix: `ms`, `s`, `m`, `h`.
    Text(String),
}

impl DurationSpec {
    /// The duration in seconds, or `None` when the text cannot be read.
    pub fn as_seconds(&self) -> Option<f64> {
        match self {
            DurationSpec::Seconds(s) if s.is_finite() && *s >= 0.0 => Some(*s),
            DurationSpec::Seconds(_) => None,
            DurationSpec::Text(t) => parse_duration(t),
        }
    }
}

/// Parse `"30s"`, `"5m"`, `"1.5h"`, `"1d"`, `"250ms"` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Option<f64> {
    let t = text.trim();
    let (num, mult) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = t.strip_suffix('h') {
        (n, 3600.0)
    } else if let Some(n) = t.strip_suffix('d') {
        (n, 86_400.0)
    } else {
        (t, 1.0)
    };
    let value: f64 = num.trim().parse().ok()?;
    (value.is_finite() && value >= 0.0).then_some(value * mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("30s"), Some(30.0));
        assert_eq!(parse_duration("5m"), Some(300.0));
        assert_eq!(parse_duration("1.5h"), Some(5400.0));
        assert_eq!(parse_duration("1d"), Some(86_400.0));
        assert_eq!(parse_duration("250ms"), Some(0.25));
        assert_eq!(parse_duration("10"), Some(10.0));
        assert_eq!(parse_duration("soon"), None);
        assert_eq!(parse_duration("-1s"), None);
    }
}
