//! The fields of a form question (`ask_human_custom`): what each answer field must be, and the check of
//! an answer against them ([`check`]).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::Choice;

/// The kinds of value a field takes.
pub const FIELD_TYPES: &[&str] = &[
    "text",
    "number",
    "integer",
    "boolean",
    "choice",
    "multi_choice",
    "json",
];

/// One field of a form question.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Field {
    /// The key of the answer object.
    pub name: String,
    /// One of [`FIELD_TYPES`].
    #[serde(rename = "type")]
    pub kind: String,
    /// What the human sees (the name when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Whether the answer must have it.
    #[serde(default)]
    pub required: bool,
    /// The allowed values of a `choice` or `multi_choice` field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<Choice>,
}

impl Field {
    /// A field from a tool argument: `"name"` (required text) or `{name, type?, label?, required?,
    /// options?}`; types also by their HTML names (`string`, `textarea`, `select`, `radio`, `checkbox`,
    /// `checkboxes`). `required` defaults to true.
    ///
    /// # Errors
    /// What is wrong with the declaration (no name, an unknown type, a choice without options).
    pub fn parse(spec: &Value, choice: impl Fn(&Value) -> Choice) -> Result<Field, String> {
        let (name, m) = match spec {
            Value::String(s) => (s.trim().to_owned(), Map::new()),
            Value::Object(m) => (
                m.get("name")
                    .or_else(|| m.get("id"))
                    .and_then(Value::as_str)
                    .map(str::trim)
                    .unwrap_or_default()
                    .to_owned(),
                m.clone(),
            ),
            other => return Err(format!("a field is a name or an object with `name`, not {other}")),
        };
        if name.is_empty() {
            return Err(format!("a field has no `name`: {spec}"));
        }
        let given = m.get("type").and_then(Value::as_str).unwrap_or("text");
        let kind = match given.to_ascii_lowercase().as_str() {
            "text" | "string" | "textarea" | "str" => "text",
            "number" | "float" => "number",
            "integer" | "int" => "integer",
            "boolean" | "bool" | "checkbox" | "confirmation" => "boolean",
            "choice" | "select" | "radio" => "choice",
            "multi_choice" | "multiselect" | "checkboxes" => "multi_choice",
            "json" | "any" | "object" => "json",
            other => {
                return Err(format!(
                    "field `{name}` has type `{other}`; the types are: {}",
                    FIELD_TYPES.join(", ")
                ));
            }
        };
        let options: Vec<Choice> = m
            .get("options")
            .and_then(Value::as_array)
            .map(|o| o.iter().map(&choice).collect())
            .unwrap_or_default();
        if matches!(kind, "choice" | "multi_choice") && options.is_empty() {
            return Err(format!("field `{name}` is a {kind} without `options`"));
        }
        Ok(Field {
            label: m.get("label").and_then(Value::as_str).map(str::to_owned),
            required: m.get("required").and_then(Value::as_bool).unwrap_or(true),
            name,
            kind: kind.to_owned(),
            options,
        })
    }

    /// `value` as this field takes it (a choice by its value or label), or why not.
    fn check(&self, value: &Value) -> Result<Value, String> {
        let option = |v: &Value| {
            self.options
                .iter()
                .find(|c| &c.value == v)
                .or_else(|| self.options.iter().find(|c| v.as_str() == Some(c.label.as_str())))
                .map(|c| c.value.clone())
        };
        let values = || {
            self.options
                .iter()
                .map(|c| c.value.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let ok = match self.kind.as_str() {
            "text" => value.as_str().map(|_| value.clone()),
            "number" => value.is_number().then(|| value.clone()),
            "integer" => (value.is_i64() || value.is_u64()).then(|| value.clone()),
            "boolean" => value.is_boolean().then(|| value.clone()),
            "choice" => {
                return option(value).ok_or_else(|| {
                    format!(
                        "field `{}` takes one of: {}; {value} is not among them",
                        self.name,
                        values()
                    )
                });
            }
            "multi_choice" => {
                let Some(items) = value.as_array() else {
                    return Err(format!(
                        "field `{}` takes a list of: {}; not {value}",
                        self.name,
                        values()
                    ));
                };
                let mut picked = Vec::new();
                for item in items {
                    picked.push(option(item).ok_or_else(|| {
                        format!(
                            "field `{}` takes values among: {}; {item} is not among them",
                            self.name,
                            values()
                        )
                    })?);
                }
                return Ok(Value::Array(picked));
            }
            _ => Some(value.clone()),
        };
        ok.ok_or_else(|| format!("field `{}` takes a {} value, not {value}", self.name, self.kind))
    }
}

/// Check `answer` against `fields` (the answer of the form question of cell `cell`): an object whose
/// keys are declared fields (keys starting with `_` pass as they are), every required field present,
/// each value of its field's type. A bare value answers a form of one field. Without fields, any
/// object is taken, and a bare value becomes `{"response": value}`.
///
/// # Errors
/// What is wrong, naming the fields.
pub(crate) fn check(cell: &str, fields: &[Field], answer: &Value) -> Result<Value, String> {
    let object = match (answer, fields) {
        (Value::Object(m), _) => m.clone(),
        (other, []) => Map::from_iter([("response".to_owned(), other.clone())]),
        (other, [one]) => Map::from_iter([(one.name.clone(), other.clone())]),
        (other, _) => {
            return Err(format!(
                "cell `{cell}` asks for a form: answer a JSON object with the fields {}, not {other}",
                names(fields)
            ));
        }
    };
    if fields.is_empty() {
        return Ok(Value::Object(object));
    }
    let mut out = Map::new();
    for (key, value) in &object {
        if key.starts_with('_') {
            out.insert(key.clone(), value.clone());
            continue;
        }
        let Some(field) = fields.iter().find(|f| &f.name == key) else {
            return Err(format!(
                "cell `{cell}` asks for the fields {}; `{key}` is not one of them",
                names(fields)
            ));
        };
        let checked = field.check(value).map_err(|e| format!("cell `{cell}`: {e}"))?;
        out.insert(key.clone(), checked);
    }
    let missing: Vec<&str> = fields
        .iter()
        .filter(|f| f.required && !out.contains_key(&f.name))
        .map(|f| f.name.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "cell `{cell}` asks for the required field(s) `{}`, missing from {answer}",
            missing.join("`, `")
        ));
    }
    Ok(Value::Object(out))
}

fn names(fields: &[Field]) -> String {
    fields
        .iter()
        .map(|f| {
            format!(
                "`{}` ({}{})",
                f.name,
                f.kind,
                if f.required { "" } else { ", optional" }
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn choice(v: &Value) -> Choice {
        Choice {
            label: v.as_str().unwrap_or_default().to_uppercase(),
            value: v.clone(),
        }
    }

    fn fields() -> Vec<Field> {
        [
            json!({"name": "verdict", "type": "select", "options": ["ship", "redo"]}),
            json!({"name": "score", "type": "integer"}),
            json!({"name": "note", "type": "textarea", "required": false}),
        ]
        .iter()
        .map(|f| Field::parse(f, choice).unwrap())
        .collect()
    }

    #[test]
    fn answers_are_checked_against_the_declared_fields() {
        let f = fields();
        assert_eq!(
            check("c", &f, &json!({"verdict": "SHIP", "score": 3, "_route": "x"})).unwrap(),
            json!({"verdict": "ship", "score": 3, "_route": "x"})
        );
        let err = check("c", &f, &json!({"verdict": "maybe", "score": 3})).unwrap_err();
        assert!(err.contains("\"ship\", \"redo\"; \"maybe\""), "{err}");
        assert!(
            check("c", &f, &json!({"verdict": "ship"}))
                .unwrap_err()
                .contains("`score`")
        );
        assert!(check("c", &f, &json!({"verdict": "ship", "score": 1.5})).is_err());
        assert!(
            check("c", &f, &json!({"verdict": "ship", "score": 1, "x": 1}))
                .unwrap_err()
                .contains("`x` is not")
        );
        assert!(check("c", &f, &json!("ship")).is_err());
        assert_eq!(check("c", &[], &json!("ok")).unwrap(), json!({"response": "ok"}));
        assert_eq!(check("c", &f[1..2], &json!(4)).unwrap(), json!({"score": 4}));
        assert!(
            Field::parse(&json!({"name": "x", "type": "slider"}), choice)
                .unwrap_err()
                .contains("the types are")
        );
        assert!(Field::parse(&json!({"name": "x", "type": "choice"}), choice).is_err());
    }
}
