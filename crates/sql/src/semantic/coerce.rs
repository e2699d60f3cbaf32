//! A function's answer typed by its declared `returns` (SQL interface spec §12.3, "Proposed"): what does
//! not parse as the type is an error (the row gets NULL), never a guess.

use rvbbit_cascade::model::SqlType;
use serde_json::Value;

/// One typed result.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Typed {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

/// `answer` (a cascade's final output) as a value of `returns`. Errors say what the answer was and
/// what was expected.
pub(crate) fn coerce(returns: SqlType, answer: &Value) -> Result<Typed, String> {
    let text = match answer {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let shown = || {
        let short: String = text.chars().take(60).collect();
        if short.len() < text.len() {
            format!("`{short}…`")
        } else {
            format!("`{short}`")
        }
    };
    match returns {
        SqlType::Boolean => boolean(&text).map(Typed::Bool).ok_or_else(|| {
            format!(
                "the answer {} is not a boolean (true, false, yes, no, 1 or 0)",
                shown()
            )
        }),
        SqlType::Double => number(&text)
            .map(Typed::Float)
            .ok_or_else(|| format!("the answer {} is not a number", shown())),
        SqlType::Integer => number(&text)
            .filter(|n| n.fract() == 0.0 && n.abs() < 9.0e15)
            .map(|n| Typed::Int(n as i64))
            .ok_or_else(|| format!("the answer {} is not an integer", shown())),
        SqlType::Json => {
            let body = unfenced(&text);
            serde_json::from_str::<Value>(body)
                .map(|v| Typed::Text(v.to_string()))
                .map_err(|e| format!("the answer {} is not JSON ({e})", shown()))
        }
        SqlType::Varchar | SqlType::DoubleList | SqlType::Table => Ok(Typed::Text(text.trim().to_owned())),
    }
}

/// The answer without surrounding white space, one pair of surrounding quotes and a final period.
fn bare(text: &str) -> &str {
    let mut t = text.trim();
    for (open, close) in [('"', '"'), ('\'', '\''), ('`', '`')] {
        if t.len() >= 2 && t.starts_with(open) && t.ends_with(close) {
            t = t[1..t.len() - 1].trim();
            break;
        }
    }
    let t = t.strip_suffix('.').unwrap_or(t).trim();
    // A period after the closing quote (`'yes'.`).
    for q in ['"', '\'', '`'] {
        if t.len() >= 2 && t.starts_with(q) && t.ends_with(q) {
            return t[1..t.len() - 1].trim();
        }
    }
    t
}

/// `true|yes|1` or `false|no|0`, case-insensitive, after [`bare`].
pub(crate) fn boolean(text: &str) -> Option<bool> {
    match bare(text).to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" => Some(true),
        "false" | "no" | "0" => Some(false),
        _ => None,
    }
}

fn number(text: &str) -> Option<f64> {
    bare(text).parse::<f64>().ok().filter(|n| n.is_finite())
}

/// The body of a ```` ```json ```` fence, or the text.
fn unfenced(text: &str) -> &str {
    let t = text.trim();
    let Some(rest) = t.strip_prefix("```") else {
        return t;
    };
    let rest = rest.strip_prefix("json").unwrap_or(rest);
    rest.strip_suffix("```").unwrap_or(rest).trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_accept_only_the_six_words() {
        for (text, want) in [
            ("true", Some(true)),
            (" TRUE ", Some(true)),
            ("yes.", Some(true)),
            ("'yes'.", Some(true)),
            ("\"No\"", Some(false)),
            ("1", Some(true)),
            ("0\n", Some(false)),
            ("False.", Some(false)),
            ("truthy", None),
            ("", None),
            ("yes, it does", None),
            ("ERROR: boom", None),
            ("2", None),
            ("'", None),
        ] {
            assert_eq!(boolean(text), want, "{text:?}");
        }
    }

    #[test]
    fn answers_are_typed_or_refused() {
        let s = |t: &str| Value::String(t.into());
        assert_eq!(
            coerce(SqlType::Boolean, &Value::Bool(true)),
            Ok(Typed::Bool(true))
        );
        assert!(
            coerce(SqlType::Boolean, &s("maybe"))
                .unwrap_err()
                .contains("`maybe`")
        );
        assert_eq!(coerce(SqlType::Double, &s(" 0.75 ")), Ok(Typed::Float(0.75)));
        assert_eq!(coerce(SqlType::Double, &s("-1")), Ok(Typed::Float(-1.0)));
        assert!(coerce(SqlType::Double, &s("high")).is_err());
        assert!(coerce(SqlType::Double, &s("NaN")).is_err());
        assert_eq!(coerce(SqlType::Integer, &s("42")), Ok(Typed::Int(42)));
        assert_eq!(coerce(SqlType::Integer, &serde_json::json!(7)), Ok(Typed::Int(7)));
        assert!(coerce(SqlType::Integer, &s("4.5")).is_err());
        assert_eq!(
            coerce(SqlType::Json, &s("```json\n[\"a\", 1]\n```")),
            Ok(Typed::Text("[\"a\",1]".into()))
        );
        assert!(coerce(SqlType::Json, &s("a, b")).is_err());
        assert_eq!(coerce(SqlType::Varchar, &s(" hi ")), Ok(Typed::Text("hi".into())));
    }
}
