//! Cache keys of SQL function calls: SHA-256 over the canonical JSON of what decides the answer
//! ([`cache_key`]), and the same key for `rvbbit_udf` built without an intermediate JSON value
//! ([`udf_key`]).

use serde_json::Value;
use sha2::{Digest, Sha256};

/// The fields of an `rvbbit_udf` cache key, in sorted order: serialised as they stand they give the same
/// text as the same object with its keys sorted, without building it (one per distinct row).
#[derive(serde::Serialize)]
pub(crate) struct UdfKey<'a> {
    pub(crate) cascade: &'a str,
    #[serde(rename = "fn")]
    pub(crate) function: &'static str,
    pub(crate) instructions: &'a str,
    pub(crate) layout: u32,
    pub(crate) max_tokens: Option<u32>,
    pub(crate) model: &'a str,
    pub(crate) temperature: Option<f64>,
    pub(crate) value: &'a str,
}

/// The fields of an `rvbbit_run` (and semantic function) cache key, in sorted order: the same text as
/// the same object with its keys sorted, without building it (one per distinct row).
#[derive(serde::Serialize)]
pub(crate) struct RunKey<'a> {
    pub(crate) cascade: &'a str,
    #[serde(rename = "fn")]
    pub(crate) function: &'static str,
    pub(crate) inputs: Canonical<'a>,
    pub(crate) layout: u32,
    pub(crate) model: &'a str,
}

/// SHA-256 hex of an `rvbbit_run` key: equal to `cache_key` of the same fields as a JSON object.
pub(crate) fn run_key(fields: &RunKey<'_>) -> String {
    digest(fields)
}

/// SHA-256 hex of an `rvbbit_udf` key: equal to `cache_key` of the same fields as a JSON object.
pub(crate) fn udf_key(fields: &UdfKey<'_>) -> String {
    digest(fields)
}

/// Feeds what is written into a SHA-256.
struct HashWriter(Sha256);

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// SHA-256 hex of the canonical JSON (object keys sorted at every level) of `value`, streamed into the
/// hash (no sorted copy of the value is built).
pub(crate) fn cache_key(value: &Value) -> String {
    digest(&Canonical(value))
}

/// SHA-256 hex of the compact JSON of `fields` (which must serialise canonically: object keys sorted,
/// as [`Canonical`] and structs with fields in sorted order do).
pub(crate) fn digest(fields: &impl serde::Serialize) -> String {
    let mut hasher = HashWriter(Sha256::new());
    match serde_json::to_writer(&mut hasher, fields) {
        Ok(()) => hex::encode(hasher.0.finalize()),
        // Only a map with non-string keys fails, which a `Value` and our key structs never hold; such a
        // value gets a key of its own: a miss, never another's answer.
        Err(_) => format!("unkeyable-{}", rvbbit_core::woodland_name()),
    }
}

/// A JSON value serialised with every object's keys sorted, at every level.
pub(crate) struct Canonical<'a>(pub(crate) &'a Value);

impl serde::Serialize for Canonical<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self.0 {
            Value::Object(map) => {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
                let mut out = serializer.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    out.serialize_entry(k, &Canonical(v))?;
                }
                out.end()
            }
            Value::Array(items) => {
                let mut out = serializer.serialize_seq(Some(items.len()))?;
                for v in items {
                    out.serialize_element(&Canonical(v))?;
                }
                out.end()
            }
            other => other.serialize(serializer),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, json};

    use super::*;

    const CACHE_LAYOUT: u32 = 1;

    #[test]
    fn canonical_keys_ignore_order() {
        let a = json!({"b": 1, "a": {"y": [1, {"d": 2, "c": 3}], "x": null}});
        let b = json!({"a": {"x": null, "y": [1, {"c": 3, "d": 2}]}, "b": 1});
        assert_eq!(cache_key(&a), cache_key(&b));
        assert_ne!(cache_key(&a), cache_key(&json!({"b": 2})));
    }

    /// The streamed key is the SHA-256 of the sorted value's text, as earlier versions computed it, so
    /// existing caches still hit.
    #[test]
    fn streamed_key_equals_the_sorted_text_key() {
        let cases = [
            json!({"fn": "rvbbit_run", "layout": 1, "cascade": "h", "inputs": {"text": "naïve \u{1f600} \"q\"", "a": ""}, "model": "m"}),
            json!([{"z": 1.5, "a": [null, true, {"y": -3, "b": "x"}]}, "s", 7]),
            json!({}),
            json!("plain"),
        ];
        for value in cases {
            let text = canonical(&value).to_string();
            assert_eq!(
                cache_key(&value),
                hex::encode(Sha256::digest(text.as_bytes())),
                "{value}"
            );
        }
        let inputs = json!({"text": "a fruit", "criterion": "x", "b": [1, {"d": 0, "c": null}]});
        let slow = cache_key(&json!({
            "fn": "rvbbit_run",
            "layout": 1,
            "cascade": "abc",
            "inputs": inputs,
            "model": "m/x",
        }));
        let fast = run_key(&RunKey {
            cascade: "abc",
            function: "rvbbit_run",
            inputs: Canonical(&inputs),
            layout: 1,
            model: "m/x",
        });
        assert_eq!(fast, slow);
    }

    /// The direct `rvbbit_udf` key is the key earlier versions computed, so existing caches still hit.
    #[test]
    fn udf_key_equals_the_canonical_key() {
        let cases = [
            ("Tag", "v1", "m/x", Some(0.0), None),
            (
                "Say \"hi\"\n\ttwice",
                "naïve — ünïcode \u{1f600} \\ \u{7}",
                "",
                Some(1.25),
                Some(7),
            ),
            ("", "", "model", None, Some(u32::MAX)),
            ("x", "y", "z", Some(2.0), Some(1)),
        ];
        for (instructions, value, model, temperature, max_tokens) in cases {
            let slow = cache_key(&json!({
                "fn": "rvbbit_udf",
                "layout": CACHE_LAYOUT,
                "cascade": "abc123",
                "instructions": instructions,
                "value": value,
                "model": model,
                "temperature": temperature,
                "max_tokens": max_tokens,
            }));
            let fast = udf_key(&UdfKey {
                cascade: "abc123",
                function: "rvbbit_udf",
                instructions,
                layout: CACHE_LAYOUT,
                max_tokens,
                model,
                temperature,
                value,
            });
            assert_eq!(fast, slow, "{instructions:?} {value:?}");
        }
    }

    /// `value` with every object's keys sorted, so equal inputs give equal keys whatever their order.
    fn canonical(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                let mut out = Map::new();
                for k in keys {
                    out.insert(k.clone(), canonical(&map[k]));
                }
                Value::Object(out)
            }
            Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
            other => other.clone(),
        }
    }
}
