//! Plans of candidate branches (§8.1, §8.2): how many branches a `candidates` block runs, with which
//! model and sampling settings, and which of its options this build refuses. Shared by cell-level
//! (`takes.rs`) and cascade-level (`cascade_takes.rs`) candidates; it needs only the templates.

use std::time::{SystemTime, UNIX_EPOCH};

use rvbbit_cascade::model::{CandidateModels, Candidates, IntOrTemplate};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::template::Templates;

/// Most branches one cell may run (a factor template gone wrong must not start thousands of calls).
pub(crate) const MAX_FACTOR: u32 = 100;
/// Default `max_parallel`.
pub(crate) const DEFAULT_MAX_PARALLEL: u32 = 3;
/// Mutation hints cycled over branches 2..N when the cell has no `mutations`.
pub(crate) const BUILTIN_MUTATIONS: [&str; 8] = [
    "Be more concise and direct.",
    "Think step by step and show your reasoning.",
    "Approach the problem from an unconventional angle.",
    "Ground the answer in concrete examples and specifics.",
    "Prioritise accuracy: double-check every claim before giving it.",
    "Consider edge cases and failure modes first.",
    "Structure the answer with clear headings or lists.",
    "Write for a non-expert audience.",
];

/// The branch a forked run belongs to (its template variables and sampling settings).
#[derive(Clone, Debug)]
pub(crate) struct Branch {
    /// 0-based index.
    pub(crate) index: u32,
    /// Number of branches.
    pub(crate) factor: u32,
    /// Sampling temperature from a `models` map entry.
    pub(crate) temperature: Option<f64>,
    /// Output cap from a `models` map entry.
    pub(crate) max_tokens: Option<u32>,
}

/// What one branch runs with.
#[derive(Clone, Debug, Default)]
pub(crate) struct Plan {
    /// The branch's model (`None`: the cell's).
    pub(crate) model: Option<String>,
    /// Sampling temperature.
    pub(crate) temperature: Option<f64>,
    /// Output cap.
    pub(crate) max_tokens: Option<u32>,
}

/// Options of §8.1 this build refuses (RVB-E003) rather than silently ignoring (the list the
/// validator reports too: [`rvbbit_cascade::support`]).
pub(crate) fn unsupported(c: &Candidates) -> Option<&'static str> {
    rvbbit_cascade::support::candidates_refusal(c).map(|(_, feature)| feature)
}

/// One plan per branch: the factor (rendered when a template; unreadable → 1), or the per-model
/// factors of a `models` map, with the models assigned in turn (or at random).
pub(crate) fn plans(templates: &Templates, vars: &Value, name: &str, c: &Candidates) -> Result<Vec<Plan>> {
    let factor: i64 = match &c.factor {
        None => 1,
        Some(IntOrTemplate::Int(n)) => *n,
        Some(IntOrTemplate::Template(t)) => templates
            // A factor is a tiny template rendered while planning; the fuel bounds it.
            .render_now(t, vars)
            .ok()
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|f| f.is_finite())
            .map(|f| f as i64)
            .unwrap_or(1),
    };
    let plans: Vec<Plan> = match &c.models {
        Some(CandidateModels::Map(map)) => map
            .iter()
            .flat_map(|(model, s)| {
                (0..s.factor.unwrap_or(1)).map(move |_| Plan {
                    model: Some(model.clone()),
                    temperature: s.temperature,
                    max_tokens: s.max_tokens,
                })
            })
            .take(MAX_FACTOR as usize + 1)
            .collect(),
        Some(CandidateModels::List(list)) if !list.is_empty() => {
            let n = usize::try_from(factor.clamp(0, i64::from(MAX_FACTOR) + 1)).unwrap_or(0);
            let random = c.model_strategy.as_deref() == Some("random");
            let mut seed = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.subsec_nanos() as u64)
                .unwrap_or(0x9E37_79B9)
                | 1;
            (0..n)
                .map(|i| {
                    let pick = if random {
                        // xorshift: a cheap pick; `random` promises no particular distribution.
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        (seed % list.len() as u64) as usize
                    } else {
                        i % list.len()
                    };
                    Plan {
                        model: Some(list[pick].clone()),
                        ..Plan::default()
                    }
                })
                .collect()
        }
        _ => {
            let n = usize::try_from(factor.clamp(0, i64::from(MAX_FACTOR) + 1)).unwrap_or(0);
            vec![Plan::default(); n]
        }
    };
    if plans.len() > MAX_FACTOR as usize {
        return Err(Error::CellFailed {
            cell: name.to_owned(),
            message: format!(
                "candidates would run more than {MAX_FACTOR} branches; lower `factor` (or the models' factors)"
            ),
        });
    }
    Ok(plans)
}

/// The text of an output: a string as is, anything else as JSON.
pub(crate) fn text_of(output: &Value) -> String {
    match output {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
