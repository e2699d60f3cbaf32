//! What an LLM cell's reply becomes: `output_schema` ([`check_schema`]) and `output_extraction`
//! ([`extract`]).

use rvbbit_cascade::model::Cell;
use serde_json::Value;

use super::call::extract_json;
use crate::error::{Error, Result};
use crate::run::Run;

/// Validate the reply against `schema`; the parsed JSON, or why it does not fit.
pub(crate) fn check_schema(schema: &Value, text: &str) -> std::result::Result<Value, String> {
    let Some(value) = extract_json(text) else {
        return Err("the reply contains no JSON".into());
    };
    let validator =
        jsonschema::validator_for(schema).map_err(|e| format!("output_schema is invalid: {e}"))?;
    let errors: Vec<String> = validator
        .iter_errors(&value)
        .map(|e| {
            let path = e.instance_path().to_string();
            if path.is_empty() {
                e.to_string()
            } else {
                format!("{path}: {e}")
            }
        })
        .collect();
    if errors.is_empty() {
        Ok(value)
    } else {
        Err(errors.join("; "))
    }
}

/// `output_extraction`: a dot-all, case-insensitive regex over the output; group 1 (or the match) goes to
/// `state[store_as]`.
pub(crate) fn extract(
    run: &mut Run<'_>,
    cell: &Cell,
    ex: &rvbbit_cascade::model::OutputExtraction,
    output: &Value,
) -> Result<()> {
    let text = match output {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let re = regex::RegexBuilder::new(&ex.pattern)
        .dot_matches_new_line(true)
        .case_insensitive(true)
        .build()
        .map_err(|e| Error::CellFailed {
            cell: cell.name.clone(),
            message: format!("output_extraction.pattern is not a valid regex: {e}"),
        })?;
    let found = re
        .captures(&text)
        .and_then(|c| c.get(1).or_else(|| c.get(0)))
        .map(|m| m.as_str().to_owned());
    match found {
        Some(s) => {
            // `ExtractionFormat` is not re-exported by rvbbit-cascade; read its serialised name.
            let format = ex
                .format
                .and_then(|f| serde_json::to_value(f).ok())
                .and_then(|v| v.as_str().map(str::to_owned));
            let value = match format.as_deref() {
                Some("json") => serde_json::from_str(s.trim()).unwrap_or(Value::String(s)),
                Some("code") => {
                    let t = s.trim();
                    let t = t
                        .strip_prefix("```")
                        .map(|r| r.split_once('\n').map(|x| x.1).unwrap_or(r))
                        .unwrap_or(t);
                    Value::String(t.strip_suffix("```").unwrap_or(t).trim().to_owned())
                }
                _ => Value::String(s),
            };
            run.set_state(&ex.store_as, value);
            Ok(())
        }
        None if ex.required == Some(true) => Err(Error::CellFailed {
            cell: cell.name.clone(),
            message: format!("output_extraction found no match for `{}`", ex.pattern),
        }),
        None => Ok(()),
    }
}
