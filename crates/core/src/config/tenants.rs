//! `[tenants.NAME]`: settings of one tenant (docs/channels.md). Since v0.7.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Problem;
use super::costs::limit_name_problem;
use crate::codes;

/// One tenant's settings: `[tenants.acme] link_identities = true`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TenantConfig {
    /// Link a person's chat identities across channels by a verified email or phone number: a message
    /// whose platform vouches for its sender's email (Slack's profile, Mattermost's `email_verified`,
    /// the signed webhook's `email_verified: true`) or phone joins the conversation that person has
    /// with the agent on any other channel of this tenant. Off by default: a tenant must choose to
    /// let one platform's account speak in a conversation begun on another. Since v0.7.
    pub link_identities: bool,
}

/// The `[tenants.*]` tables' problems: every name that cannot name a tenant.
pub(super) fn validate(
    tenants: &BTreeMap<String, TenantConfig>,
    src: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<Problem>,
) {
    for name in tenants.keys() {
        if let Some(why) = limit_name_problem(name) {
            let key = format!("tenants.{name}");
            problems.push(Problem {
                code: codes::K_CONFIG,
                source: src(&key),
                key: Some(key),
                message: format!("`tenants.{name}`: `{name}` cannot name a tenant: {why}"),
                hint: "use 1 to 128 letters, digits, `_`, `.` or `-`, as in `[channels.NAME] tenant`".into(),
            });
        }
    }
}
