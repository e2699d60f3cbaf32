//! Tool calls described in the prompt (§4.3 Proposed): the canonical fence
//! ```` ```json {"tool": "...", "arguments": {...}} ``` ````, fenced or bare objects with `tool|name` and
//! `arguments|parameters|args`, arrays of them, and `<tool_call>` tags.

use serde_json::Value;

/// One call found in a reply.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Parsed {
    pub(crate) name: String,
    pub(crate) arguments: Value,
    /// Whether the object named the tool with `tool` (a `name` key alone is also common in ordinary JSON
    /// answers, so such objects only count as calls of offered tools).
    pub(crate) explicit: bool,
}

/// The prompt block describing the tools and the call format.
pub(crate) fn describe(tools: &[(String, String, Value)]) -> String {
    let mut s = String::from("## Available Tools\n\nYou can call these tools:\n\n");
    for (name, description, params) in tools {
        s.push_str(&format!(
            "### {name}\n{description}\nParameters (JSON Schema): {params}\n\n"
        ));
    }
    s.push_str(
        "To call a tool, reply with exactly one fenced JSON block:\n```json\n{\"tool\": \"<name>\", \"arguments\": {...}}\n```\nThe result comes back in the next message. When you need no tool, answer normally.",
    );
    s
}

/// Calls in `text`, or the parse error of a block that looks like a call but is not valid JSON.
pub(crate) fn parse(text: &str) -> Result<Vec<Parsed>, String> {
    let mut calls = Vec::new();
    let mut suspicious = None;
    let mut blocks: Vec<&str> = fences(text);
    blocks.extend(tags(text));
    if blocks.is_empty() {
        let t = text.trim();
        if t.starts_with('{') || t.starts_with('[') {
            blocks.push(t);
        }
    }
    for block in blocks {
        match serde_json::from_str::<Value>(block.trim()) {
            Ok(v) => collect(&v, &mut calls),
            Err(e) if block.contains("\"tool\"") || block.contains("\"name\"") => {
                suspicious = Some(format!("the tool call is not valid JSON: {e}"));
            }
            Err(_) => {}
        }
    }
    match (calls.is_empty(), suspicious) {
        (true, Some(err)) => Err(err),
        _ => Ok(calls),
    }
}

fn collect(v: &Value, calls: &mut Vec<Parsed>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| collect(i, calls)),
        Value::Object(m) => {
            let explicit = m.get("tool").is_some_and(Value::is_string);
            let name = m.get("tool").or_else(|| m.get("name")).and_then(Value::as_str);
            let args = m
                .get("arguments")
                .or_else(|| m.get("parameters"))
                .or_else(|| m.get("args"));
            if let Some(name) = name {
                let arguments = match args {
                    Some(Value::String(s)) => serde_json::from_str(s).unwrap_or(Value::String(s.clone())),
                    Some(a) => a.clone(),
                    None => Value::Object(serde_json::Map::new()),
                };
                calls.push(Parsed {
                    name: name.to_owned(),
                    arguments,
                    explicit,
                });
            }
        }
        _ => {}
    }
}

/// Bodies of ``` fences whose language is empty or `json`.
fn fences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("```") {
        let after = &rest[start + 3..];
        let line_end = after.find('\n').unwrap_or(after.len());
        let lang = after[..line_end].trim();
        let body_start = (line_end + 1).min(after.len());
        let Some(end) = after[body_start..].find("```") else {
            break;
        };
        if lang.is_empty() || lang.eq_ignore_ascii_case("json") {
            out.push(&after[body_start..body_start + end]);
        }
        rest = &after[body_start + end + 3..];
    }
    out
}

fn tags(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("<tool_call>") {
        let after = &rest[start + "<tool_call>".len()..];
        let Some(end) = after.find("</tool_call>") else {
            break;
        };
        out.push(&after[..end]);
        rest = &after[end..];
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn canonical_fence_tags_arrays_and_bare_objects() {
        let t = "Let me check.\n```json\n{\"tool\": \"set_state\", \"arguments\": {\"key\": \"a\", \"value\": 1}}\n```";
        assert_eq!(
            parse(t).unwrap(),
            vec![Parsed {
                name: "set_state".into(),
                arguments: json!({"key": "a", "value": 1}),
                explicit: true
            }]
        );
        let t = "<tool_call>{\"name\": \"x\", \"parameters\": {}}</tool_call>";
        assert_eq!(parse(t).unwrap()[0].name, "x");
        assert_eq!(
            parse("[{\"tool\":\"a\"},{\"tool\":\"b\",\"args\":\"{\\\"k\\\":1}\"}]").unwrap()[1].arguments,
            json!({"k": 1})
        );
        assert!(parse("just text { not a call").unwrap().is_empty());
        assert!(parse("```json\n{\"tool\": \"a\", \"arguments\": {\n```").is_err());
        assert!(parse("```python\nprint(1)\n```").unwrap().is_empty());
    }
}
