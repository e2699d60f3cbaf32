//! JSON Schema of the cascade language, generated from the model.
//!
//! [`cascade_schema`] is the schema the validator checks against. [`export`] is the schema for editors
//! (the VS Code YAML extension): the same, plus the era aliases as extra properties so `phases:`,
//! `tackle:` and friends complete and validate too.

use std::sync::OnceLock;

use serde_json::{Map, Value, json};

use crate::aliases::ALIASES;
use crate::model::{Cascade, ToolDefinition};

/// The schema of a cascade file, as used by the validator.
pub fn cascade_schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| serde_json::to_value(schemars::schema_for!(Cascade)).unwrap_or(Value::Bool(true)))
}

/// The schema of a declarative tool file (`*.tool.json`), as used by the validator.
pub fn tool_definition_schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        serde_json::to_value(schemars::schema_for!(ToolDefinition)).unwrap_or(Value::Bool(true))
    })
}

/// Which document the exported schema describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportTarget {
    /// Cascade files.
    Cascade,
    /// Declarative tool files.
    ToolDefinition,
}

/// The schema for editors: aliases added, `default: null` noise removed, with an `$id` and a title.
pub fn export(target: ExportTarget) -> Value {
    let (mut schema, root_def, title) = match target {
        ExportTarget::Cascade => (cascade_schema().clone(), "Cascade", "rvbbit cascade"),
        ExportTarget::ToolDefinition => (
            tool_definition_schema().clone(),
            "ToolDefinition",
            "rvbbit tool definition",
        ),
    };
    strip_null_defaults(&mut schema);
    for alias in ALIASES {
        let holder = if alias.def == root_def {
            Some(&mut schema)
        } else {
            schema.pointer_mut(&format!("/$defs/{}", alias.def))
        };
        let Some(Value::Object(def)) = holder else {
            continue;
        };
        let Some(Value::Object(props)) = def.get_mut("properties") else {
            continue;
        };
        let Some(canonical) = props.get(alias.canonical).cloned() else {
            continue;
        };
        let mut aliased = match canonical {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        aliased.insert(
            "description".into(),
            json!(format!(
                "Alias of `{}` ({} spelling).",
                alias.canonical, alias.era
            )),
        );
        props.insert(alias.alias.to_owned(), Value::Object(aliased));
        // A required key may be given in any spelling: `required: [cells]` becomes
        // `anyOf: [{required: [cells]}, {required: [phases]}]`.
        let required_here = def
            .get("required")
            .and_then(Value::as_array)
            .is_some_and(|r| r.iter().any(|k| k == alias.canonical));
        let already = def.get("anyOf").and_then(Value::as_array).is_some_and(|a| {
            a.iter()
                .any(|b| b.pointer("/required/0").and_then(Value::as_str) == Some(alias.canonical))
        });
        if required_here || already {
            if let Some(Value::Array(required)) = def.get_mut("required") {
                required.retain(|k| k != alias.canonical);
            }
            let any_of = def
                .entry("anyOf")
                .or_insert_with(|| json!([{ "required": [alias.canonical] }]));
            if let Value::Array(branches) = any_of {
                branches.push(json!({ "required": [alias.alias] }));
            }
        }
    }
    if let Value::Object(root) = &mut schema {
        root.insert("title".into(), json!(title));
        root.insert(
            "$id".into(),
            json!(format!(
                "https://rvbbit.dev/schema/{}.json",
                root_def.to_ascii_lowercase()
            )),
        );
    }
    schema
}

fn strip_null_defaults(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if map.get("default") == Some(&Value::Null) {
                map.remove("default");
            }
            for v in map.values_mut() {
                strip_null_defaults(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(strip_null_defaults),
        _ => {}
    }
}
