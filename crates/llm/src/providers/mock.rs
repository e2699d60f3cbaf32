//! A provider that answers without a model: [`MockProvider`], for first steps and tests with no key and
//! no network (`rvbbit run --provider mock`).
//!
//! It answers from what the caller says it expects ([`crate::Expect`], never sent to real providers):
//! a cell's answer is JSON that follows the cell's `output_schema` (an example built from the schema)
//! or a short text; a cell that offers `route_to` first calls it with a target; a judge names an
//! attempt; a validator accepts. [`MockAnswers`] (a script, by cell name) overrides any of these, in
//! order, so routing, corrective re-asks of schemas, `loop_until` and evaluators can all be exercised.
//! Replies are free (cost zero, exact) and their token counts are estimates (`chars / 4`).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::cost::Cost;
use crate::error::{Error, Result};
use crate::provider::Provider;
use crate::request::{ChatRequest, Expected, Role, ToolCall};
use crate::response::{ChatResponse, Usage};

/// The length of the mock provider's vectors.
const MOCK_EMBED_DIMS: usize = 64;

/// How deep an `output_schema` is followed (nesting and `$ref`s) when building its example.
const MAX_SCHEMA_DEPTH: usize = 32;

/// Scripted answers by cell name. Every list is used in order, one entry per call; its last entry
/// repeats. A cell missing from the script gets the defaults.
///
/// ```yaml
/// classify:
///   routes: [refund]                     # the route_to targets, in order
///   answers:                             # the cell's answers, in order (text or JSON)
///     - {"category": "bogus"}            # fails the output_schema: the cell asks again
///     - {"category": "billing"}
/// draft:
///   verdicts: [false, true]              # validator verdicts (loop_until, wards), in order
///   winners: [2]                         # an evaluator's pick among candidates
/// ```
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(transparent)]
pub struct MockAnswers {
    cells: HashMap<String, CellScript>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CellScript {
    #[serde(default)]
    answers: Vec<Value>,
    #[serde(default)]
    routes: Vec<String>,
    #[serde(default)]
    verdicts: Vec<bool>,
    #[serde(default)]
    winners: Vec<u32>,
}

impl MockAnswers {
    /// The cells the script names, sorted.
    pub fn cells(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.cells.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }
}

/// Which scripted list a call consumes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Kind {
    Answer,
    Route,
    Verdict,
    Winner,
}

/// The provider. Cheap to build; keeps, per cell, how far into each scripted list it is.
#[derive(Debug, Default)]
pub struct MockProvider {
    script: MockAnswers,
    used: Mutex<HashMap<(String, Kind), usize>>,
}

impl MockProvider {
    /// A mock with the default answers only.
    pub fn new() -> Self {
        MockProvider::default()
    }

    /// A mock that answers from `script` first.
    pub fn with_answers(script: MockAnswers) -> Self {
        MockProvider {
            script,
            used: Mutex::new(HashMap::new()),
        }
    }

    /// The next scripted entry of `kind` for `cell` (the last one repeats), counting the use.
    fn next<T: Clone>(&self, cell: &str, kind: Kind, list: impl Fn(&CellScript) -> &Vec<T>) -> Option<T> {
        let entries = list(self.script.cells.get(cell)?);
        let last = entries.len().checked_sub(1)?;
        let mut used = self.used.lock().unwrap_or_else(PoisonError::into_inner);
        let n = used.entry((cell.to_owned(), kind)).or_insert(0);
        let entry = entries.get((*n).min(last)).cloned();
        *n += 1;
        entry
    }

    fn answer(&self, cell: &str, schema: Option<&Value>) -> String {
        match self.next(cell, Kind::Answer, |c| &c.answers) {
            Some(Value::String(text)) => text,
            Some(value) => value.to_string(),
            None => match schema {
                Some(schema) => example(schema, schema, 0).to_string(),
                None => format!("(mock) the answer of `{cell}`"),
            },
        }
    }
}

#[async_trait]
impl Provider for MockProvider {
    fn name(&self) -> &str {
        "mock"
    }

    /// Offline vectors: [`crate::hashed_embedding`] of each input, 64 dimensions, free.
    async fn embed(&self, request: &crate::EmbedRequest) -> Result<crate::EmbedResponse> {
        let vectors = request
            .inputs
            .iter()
            .map(|t| crate::hashed_embedding(t, MOCK_EMBED_DIMS))
            .collect();
        let mut reply = crate::EmbedResponse::new(self.name(), &request.model, vectors);
        reply.usage = Usage::new(request.estimated_tokens(), 0, 0, 0, 0);
        reply.cost = Cost::free(None);
        Ok(reply)
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse> {
        let expect = request.expect.clone().unwrap_or_default();
        let cell = expect.cell.as_str();
        let mut reply = ChatResponse::new(self.name(), &request.model, String::new());
        match &expect.reply {
            Expected::Text => reply.text = format!("(mock) a reply for `{cell}`"),
            Expected::Verdict => {
                let valid = self.next(cell, Kind::Verdict, |c| &c.verdicts).unwrap_or(true);
                let reason = if valid {
                    "mock: accepted"
                } else {
                    "mock: rejected by the script"
                };
                reply.text = json!({"valid": valid, "reason": reason}).to_string();
            }
            Expected::Winner { choices } => {
                let Some(first) = choices.first() else {
                    return Err(Error::Internal(
                        "a judge was asked to choose among no attempts".into(),
                    ));
                };
                let winner = self.next(cell, Kind::Winner, |c| &c.winners).unwrap_or(*first);
                reply.text =
                    json!({"winner": winner, "reason": "mock: the scripted or first attempt"}).to_string();
            }
            Expected::Answer { schema, routes } => {
                // Route first (the model's call of `route_to`), then answer once the result is back.
                let routed = request.messages.last().is_some_and(|m| {
                    m.role == Role::Tool || (m.role == Role::User && m.text().starts_with("Tool Result ("))
                });
                if routes.is_empty() || routed {
                    reply.text = self.answer(cell, schema.as_ref());
                } else {
                    let target = self
                        .next(cell, Kind::Route, |c| &c.routes)
                        .unwrap_or_else(|| routes[0].clone());
                    let arguments = json!({"target": target});
                    if request.tools.iter().any(|t| t.name == "route_to") {
                        reply.tool_calls =
                            vec![ToolCall::new("mock_route", "route_to", arguments.to_string())];
                    } else {
                        reply.text = format!(
                            "```json\n{}\n```",
                            json!({"tool": "route_to", "arguments": arguments})
                        );
                    }
                }
            }
        }
        let prompt = request.estimated_prompt_tokens();
        let completion = (reply.text.len() as u64 / 4).max(1);
        reply.usage = Usage::new(prompt, 0, 0, completion, 0);
        reply.cost = Cost::free(None);
        Ok(reply)
    }
}

/// A value that follows `schema` (resolving local `$ref`s against `root`): `const`, the first `enum`
/// value or `examples` entry, `default`, else the smallest value of the type that meets the bounds.
/// Patterns are not honoured (the engine's schema check then asks again and names the failure).
pub(crate) fn example(schema: &Value, root: &Value, depth: usize) -> Value {
    if depth > MAX_SCHEMA_DEPTH {
        return Value::Null;
    }
    let Some(obj) = schema.as_object() else {
        return Value::Null; // `true` or an empty schema: anything goes.
    };
    if let Some(Value::String(r)) = obj.get("$ref")
        && let Some(target) = r.strip_prefix('#').and_then(|p| root.pointer(p))
    {
        return example(target, root, depth + 1);
    }
    if let Some(v) = obj.get("const") {
        return v.clone();
    }
    if let Some(Value::Array(values)) = obj.get("enum")
        && let Some(v) = values.first()
    {
        return v.clone();
    }
    if let Some(Value::Array(values)) = obj.get("examples")
        && let Some(v) = values.first()
    {
        return v.clone();
    }
    if let Some(v) = obj.get("default") {
        return v.clone();
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(Value::Array(options)) = obj.get(key)
            && let Some(first) = options.first()
        {
            return example(first, root, depth + 1);
        }
    }
    if let Some(Value::Array(parts)) = obj.get("allOf") {
        let mut merged = Map::new();
        for part in parts {
            match example(part, root, depth + 1) {
                Value::Object(m) => merged.extend(m),
                other if parts.len() == 1 => return other,
                _ => {}
            }
        }
        return Value::Object(merged);
    }
    let ty = match obj.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(Value::Array(types)) => types
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("null"),
        _ if obj.contains_key("properties") => "object",
        _ if obj.contains_key("items") => "array",
        _ => "string",
    };
    match ty {
        "object" => {
            let mut out = Map::new();
            if let Some(Value::Object(props)) = obj.get("properties") {
                for (name, prop) in props {
                    out.insert(name.clone(), example(prop, root, depth + 1));
                }
            }
            if let Some(Value::Array(required)) = obj.get("required") {
                for name in required.iter().filter_map(Value::as_str) {
                    out.entry(name.to_owned()).or_insert_with(|| json!("mock"));
                }
            }
            Value::Object(out)
        }
        "array" => {
            let n = obj
                .get("minItems")
                .and_then(Value::as_u64)
                .unwrap_or(1)
                .clamp(1, 16);
            let n = obj
                .get("maxItems")
                .and_then(Value::as_u64)
                .map_or(n, |max| n.min(max));
            let item = obj
                .get("items")
                .map_or(Value::Null, |i| example(i, root, depth + 1));
            Value::Array((0..n).map(|_| item.clone()).collect())
        }
        "integer" | "number" => {
            let min = obj.get("minimum").and_then(Value::as_f64).or_else(|| {
                obj.get("exclusiveMinimum")
                    .and_then(Value::as_f64)
                    .map(|m| m.floor() + 1.0)
            });
            let max = obj.get("maximum").and_then(Value::as_f64).or_else(|| {
                obj.get("exclusiveMaximum")
                    .and_then(Value::as_f64)
                    .map(|m| m.ceil() - 1.0)
            });
            let v = match (min, max) {
                (Some(min), _) => min.ceil(),
                (None, Some(max)) if max < 0.0 => max.floor(),
                _ => 0.0,
            };
            if ty == "integer" {
                // In range: the bounds above are whole numbers, and |v| is far below 2^53.
                #[allow(clippy::cast_possible_truncation)]
                let i = v.clamp(-9.0e15, 9.0e15) as i64;
                json!(i)
            } else {
                json!(v)
            }
        }
        "boolean" => json!(true),
        "null" => Value::Null,
        _ => Value::String(string_example(obj)),
    }
}

fn string_example(obj: &Map<String, Value>) -> String {
    let by_format = match obj.get("format").and_then(Value::as_str) {
        Some("date-time") => Some("2026-01-01T00:00:00Z"),
        Some("date") => Some("2026-01-01"),
        Some("time") => Some("00:00:00Z"),
        Some("email") => Some("mock@example.com"),
        Some("uri" | "url") => Some("https://example.com/"),
        Some("uuid") => Some("00000000-0000-4000-8000-000000000000"),
        Some("ipv4") => Some("127.0.0.1"),
        _ => None,
    };
    if let Some(s) = by_format {
        return s.to_owned();
    }
    let min = obj
        .get("minLength")
        .and_then(Value::as_u64)
        .unwrap_or(0)
        .min(4096);
    let max = obj.get("maxLength").and_then(Value::as_u64).unwrap_or(u64::MAX);
    let mut s = String::from("mock");
    while (s.chars().count() as u64) < min {
        s.push('x');
    }
    s.chars()
        .take(usize::try_from(max).unwrap_or(usize::MAX))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{Expect, Message, ToolDefinition};

    fn ask(cell: &str, reply: Expected) -> ChatRequest {
        ChatRequest::new("mock/model", vec![Message::user("go")]).with_expect(Expect::new(cell, reply))
    }

    #[test]
    fn examples_follow_their_schemas() {
        let schema = json!({
            "type": "object",
            "required": ["category", "score", "tags", "id"],
            "properties": {
                "category": {"type": "string", "enum": ["billing", "shipping"]},
                "score": {"type": "integer", "minimum": 3, "maximum": 9},
                "ratio": {"type": "number", "exclusiveMaximum": -2},
                "tags": {"type": "array", "items": {"type": "string", "minLength": 6}, "minItems": 2},
                "ok": {"type": ["null", "boolean"]},
                "when": {"type": "string", "format": "date"},
                "short": {"type": "string", "maxLength": 2},
                "id": {"$ref": "#/$defs/id"},
                "either": {"anyOf": [{"type": "integer"}, {"type": "string"}]}
            },
            "$defs": {"id": {"type": "string", "const": "X-1"}}
        });
        let v = example(&schema, &schema, 0);
        assert_eq!(
            v,
            json!({"category": "billing", "score": 3, "ratio": -3.0, "tags": ["mockxx", "mockxx"],
                   "ok": true, "when": "2026-01-01", "short": "mo", "id": "X-1", "either": 0})
        );
    }

    #[test]
    fn a_self_referencing_schema_ends() {
        let schema = json!({"type": "object", "properties": {"next": {"$ref": "#"}}});
        let v = example(&schema, &schema, 0);
        let depth = serde_json::to_string(&v)
            .unwrap_or_default()
            .matches("next")
            .count();
        assert!(depth > 1 && depth <= MAX_SCHEMA_DEPTH + 1, "{v}");
    }

    #[tokio::test]
    async fn a_cell_with_routes_calls_route_to_then_answers() {
        let mock = MockProvider::new();
        let routes = vec!["refund".to_owned(), "other".to_owned()];
        let reply = mock
            .chat(&ask(
                "classify",
                Expected::Answer {
                    schema: None,
                    routes: routes.clone(),
                },
            ))
            .await
            .unwrap();
        assert_eq!(
            reply.text,
            "```json\n{\"tool\":\"route_to\",\"arguments\":{\"target\":\"refund\"}}\n```"
        );
        let native = ask(
            "classify",
            Expected::Answer {
                schema: None,
                routes: routes.clone(),
            },
        )
        .with_tools(vec![ToolDefinition::new(
            "route_to",
            "Choose",
            json!({"type": "object"}),
        )]);
        let reply = mock.chat(&native).await.unwrap();
        assert_eq!(reply.tool_calls[0].name, "route_to");
        assert_eq!(reply.tool_calls[0].arguments, r#"{"target":"refund"}"#);
        let mut after = ask("classify", Expected::Answer { schema: None, routes });
        after
            .messages
            .push(Message::tool_result("mock_route", "Routing to refund."));
        let reply = mock.chat(&after).await.unwrap();
        assert_eq!(reply.text, "(mock) the answer of `classify`");
        assert!(reply.tool_calls.is_empty());
        assert_eq!(reply.cost.amount, Some(rvbbit_core::MicroUsd::ZERO));
    }

    #[tokio::test]
    async fn scripted_answers_are_used_in_order_and_the_last_repeats() {
        let script: MockAnswers = serde_json::from_value(json!({
            "draft": {"answers": ["one", {"n": 2}], "verdicts": [false, true], "winners": [2], "routes": ["b"]}
        }))
        .unwrap();
        let mock = MockProvider::with_answers(script);
        let answer = || {
            ask(
                "draft",
                Expected::Answer {
                    schema: None,
                    routes: vec![],
                },
            )
        };
        assert_eq!(mock.chat(&answer()).await.unwrap().text, "one");
        assert_eq!(mock.chat(&answer()).await.unwrap().text, r#"{"n":2}"#);
        assert_eq!(mock.chat(&answer()).await.unwrap().text, r#"{"n":2}"#);
        let verdict = || ask("draft", Expected::Verdict);
        assert!(
            mock.chat(&verdict())
                .await
                .unwrap()
                .text
                .contains("\"valid\":false")
        );
        assert!(
            mock.chat(&verdict())
                .await
                .unwrap()
                .text
                .contains("\"valid\":true")
        );
        let judge = ask(
            "draft",
            Expected::Winner {
                choices: vec![1, 2, 3],
            },
        );
        assert!(mock.chat(&judge).await.unwrap().text.contains("\"winner\":2"));
        let other = ask("elsewhere", Expected::Winner { choices: vec![4, 5] });
        assert!(mock.chat(&other).await.unwrap().text.contains("\"winner\":4"));
        let routed = ask(
            "draft",
            Expected::Answer {
                schema: None,
                routes: vec!["a".into(), "b".into()],
            },
        );
        assert!(
            mock.chat(&routed)
                .await
                .unwrap()
                .text
                .contains("\"target\":\"b\"")
        );
    }

    #[test]
    fn an_unknown_field_in_a_script_is_refused() {
        let err = serde_json::from_value::<MockAnswers>(json!({"c": {"answer": "x"}})).unwrap_err();
        assert!(err.to_string().contains("unknown field `answer`"), "{err}");
    }

    #[test]
    fn expectations_are_not_part_of_the_recording_hash() {
        let plain = ChatRequest::new("m", vec![Message::user("hi")]);
        let hinted = plain.clone().with_expect(Expect::new("c", Expected::Verdict));
        assert_eq!(crate::request_hash(&plain), crate::request_hash(&hinted));
        assert!(!serde_json::to_string(&hinted).unwrap().contains("expect"));
    }
}
