//! `test_cases` of semantic functions (`rvbbit sql --test-functions`): each case's `sql` runs in a
//! session of the working directory and its first value is checked against `expect` ([`check`]).
//!
//! `expect` is a value (equal to the first value, ignoring case and surrounding white space; a number
//! or boolean compares as one), `{type: contains, value}` or `{type: range, min, max}`. A case with
//! `skip: true` is skipped.

use serde::Serialize;
use serde_json::Value;

use super::registry::Definition;

/// How a case ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseStatus {
    /// The first value met `expect`.
    Passed,
    /// It did not, or the statement failed, or the case is malformed.
    Failed,
    /// `skip: true`.
    Skipped,
}

/// One case of one function, and how it ended.
#[derive(Clone, Debug, Serialize)]
pub struct CaseResult {
    /// The function's SQL name.
    pub function: String,
    /// `builtin`, or the file it comes from.
    pub source: String,
    /// The case's position in `test_cases`, from 1.
    pub case: usize,
    /// The case's `description`.
    pub description: Option<String>,
    /// How it ended.
    pub status: CaseStatus,
    /// The first value the statement returned, as text (`None`: NULL, no row, or not run).
    pub actual: Option<String>,
    /// Why it failed, or was skipped.
    pub detail: String,
}

/// One case to run: its `sql` and `expect`, or why it cannot run.
#[derive(Debug)]
pub(crate) struct Case {
    pub(crate) result: CaseResult,
    pub(crate) sql: Option<String>,
    pub(crate) expect: Value,
}

/// The cases of `functions`, in function order.
pub(crate) fn cases(functions: &[std::sync::Arc<Definition>]) -> Vec<Case> {
    let mut out = Vec::new();
    for f in functions {
        for (i, case) in f.spec.test_cases.iter().flatten().enumerate() {
            let text = |k: &str| case.get(k).and_then(Value::as_str).map(str::to_owned);
            let skip = case.get("skip").and_then(Value::as_bool) == Some(true);
            let sql = text("sql");
            let (status, detail) = match (&sql, skip) {
                (_, true) => (CaseStatus::Skipped, "skip: true".to_owned()),
                (None, false) => (CaseStatus::Failed, "the case has no `sql`".to_owned()),
                (Some(_), false) => (CaseStatus::Passed, String::new()),
            };
            out.push(Case {
                result: CaseResult {
                    function: f.name.clone(),
                    source: f.source.clone(),
                    case: i + 1,
                    description: text("description"),
                    status,
                    actual: None,
                    detail,
                },
                sql: sql.filter(|_| status == CaseStatus::Passed),
                expect: case.get("expect").cloned().unwrap_or(Value::Null),
            });
        }
    }
    out
}

/// Whether `actual` (the first value as text, `None` for NULL or no row) meets `expect`; the error says
/// how it does not.
pub fn check(expect: &Value, actual: Option<&str>) -> Result<(), String> {
    let shown = actual.map_or_else(|| "NULL".to_owned(), |a| format!("`{a}`"));
    let number = |v: &Value| match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    let actual_number = actual.and_then(|a| a.trim().parse::<f64>().ok());
    match expect {
        Value::Object(spec) => {
            let kind = spec.get("type").and_then(Value::as_str).unwrap_or_default();
            match kind {
                "contains" => {
                    let Some(needle) = spec.get("value").map(text_of) else {
                        return Err("a `contains` expectation needs a `value`".into());
                    };
                    let found = actual.is_some_and(|a| a.to_lowercase().contains(&needle.to_lowercase()));
                    found
                        .then_some(())
                        .ok_or_else(|| format!("{shown} does not contain `{needle}`"))
                }
                "range" => {
                    let (min, max) = (spec.get("min").and_then(number), spec.get("max").and_then(number));
                    if min.is_none() && max.is_none() {
                        return Err("a `range` expectation needs `min` or `max`".into());
                    }
                    let Some(n) = actual_number else {
                        return Err(format!("{shown} is not a number"));
                    };
                    let inside = min.is_none_or(|m| n >= m) && max.is_none_or(|m| n <= m);
                    inside.then_some(()).ok_or_else(|| {
                        format!(
                            "{n} is outside [{}, {}]",
                            min.map_or("-inf".into(), |m| m.to_string()),
                            max.map_or("inf".into(), |m| m.to_string())
                        )
                    })
                }
                other => Err(format!(
                    "unknown expectation type `{other}`; use a value, {{type: contains, value}} or \
                     {{type: range, min, max}}"
                )),
            }
        }
        Value::Null => actual
            .is_none()
            .then_some(())
            .ok_or_else(|| format!("{shown} is not NULL")),
        Value::Number(_) => match (number(expect), actual_number) {
            (Some(e), Some(a)) if (e - a).abs() <= 1e-9 * e.abs().max(1.0) => Ok(()),
            _ => Err(format!("{shown} is not {expect}")),
        },
        other => {
            let want = text_of(other);
            let equal = actual.is_some_and(|a| a.trim().eq_ignore_ascii_case(want.trim()));
            equal
                .then_some(())
                .ok_or_else(|| format!("{shown} is not `{want}`"))
        }
    }
}

/// A JSON value as the text SQL shows for it.
fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn expectations_compare_as_documented() {
        assert!(check(&json!(true), Some("true")).is_ok());
        assert!(check(&json!("TRUE"), Some(" true ")).is_ok());
        assert!(check(&json!(true), Some("false")).is_err());
        assert!(check(&json!(0.5), Some("0.50")).is_ok());
        assert!(check(&json!(2), Some("x")).is_err());
        assert!(
            check(
                &json!({"type": "contains", "value": "Refund"}),
                Some("a refund request")
            )
            .is_ok()
        );
        assert!(check(&json!({"type": "contains", "value": "x"}), None).is_err());
        assert!(check(&json!({"type": "range", "min": 0, "max": 1}), Some("0.7")).is_ok());
        assert!(check(&json!({"type": "range", "min": 0.8}), Some("0.7")).is_err());
        assert!(check(&json!({"type": "range"}), Some("0.7")).is_err());
        assert!(check(&json!({"type": "near"}), Some("0.7")).is_err());
        assert!(check(&Value::Null, None).is_ok());
        assert!(check(&Value::Null, Some("a")).is_err());
    }
}
