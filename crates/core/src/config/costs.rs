//! `[costs]`: the price of compute and whose spending limits apply (docs/costs.md). Since v0.6.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Problem;
use crate::codes;

/// The most a second of compute may be priced at: $1,000 (in micro-dollars).
pub const MAX_COMPUTE_RATE: u64 = 1_000_000_000;
/// The longest caller or tenant name of a spending limit (and of `costs.tenant`).
pub const MAX_LIMIT_NAME: usize = 128;

/// What compute costs and whose spending limits apply.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CostsConfig {
    /// The price of one second of a code, shell or script tool call (`run_code`, `python_data`,
    /// `linux_shell`, `bash_data`, `run_script`), in micro-dollars: each call's wall time times this
    /// is recorded as a `compute_cost` event beside the LLM cost. 0 (the default) records none. At most
    /// 1,000,000,000 ($1,000 a second). Env: `RVBBIT_COSTS__COMPUTE_MICRO_DOLLARS_PER_SECOND`. Since v0.6.
    pub compute_micro_dollars_per_second: u64,
    /// The tenant this process's runs are charged to: recorded on each root session
    /// (`invocation_metadata.tenant`), counted by `rvbbit costs limit set … --tenant NAME` limits. 1 to
    /// 128 letters, digits, `_`, `.` or `-`. Absent: no tenant. Env: `RVBBIT_COSTS__TENANT`. Since v0.6.
    pub tenant: Option<String>,
}

/// Whether `name` may name a caller or tenant of a spending limit: 1 to [`MAX_LIMIT_NAME`] ASCII
/// letters, digits, `_`, `.` or `-`. The error says what is wrong.
pub fn limit_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("it is empty".into());
    }
    if name.len() > MAX_LIMIT_NAME {
        return Some(format!(
            "it is {} characters long, more than {MAX_LIMIT_NAME}",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Some(format!("`{c}` is not a letter, digit, `_`, `.` or `-`"));
    }
    None
}

/// The `[costs]` settings' problems.
pub(super) fn validate(
    costs: &CostsConfig,
    src: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<Problem>,
) {
    let key = "costs.compute_micro_dollars_per_second";
    if costs.compute_micro_dollars_per_second > MAX_COMPUTE_RATE {
        problems.push(Problem {
            code: codes::C_INVALID,
            key: Some(key.into()),
            source: src(key),
            message: format!(
                "`{key}` is {}, more than its ceiling of {MAX_COMPUTE_RATE} ($1,000 a second)",
                costs.compute_micro_dollars_per_second
            ),
            hint: format!("set `{key}` to at most {MAX_COMPUTE_RATE}; 1000 is $0.001 a second"),
        });
    }
    if let Some(tenant) = &costs.tenant
        && let Some(why) = limit_name_problem(tenant)
    {
        problems.push(Problem {
            code: codes::C_INVALID,
            key: Some("costs.tenant".into()),
            source: src("costs.tenant"),
            message: format!("`costs.tenant` is not a tenant name: {why}"),
            hint: "use 1 to 128 letters, digits, `_`, `.` or `-`, such as `acme`".into(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_names_are_bounded_and_plain() {
        assert_eq!(limit_name_problem("acme-eu.1_x"), None);
        assert!(limit_name_problem("").is_some());
        assert!(limit_name_problem(&"a".repeat(129)).is_some());
        assert!(limit_name_problem("a b").unwrap().contains("` `"));
        assert!(limit_name_problem("ü").is_some());
    }
}
