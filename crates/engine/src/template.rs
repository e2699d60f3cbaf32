//! Rendering templates (instructions, inputs, prompts) with minijinja: lenient undefined values, no
//! autoescape, and the `tojson`/`to_json`/`from_json` filters with plain JSON semantics (§9.2 Proposed).

use minijinja::{Environment, ErrorKind, UndefinedBehavior};
use serde_json::Value;

/// The template environment of a run.
#[derive(Debug)]
pub(crate) struct Templates {
    env: Environment<'static>,
}

fn to_json(value: minijinja::Value) -> Result<String, minijinja::Error> {
    serde_json::to_string(&value)
        .map_err(|e| minijinja::Error::new(ErrorKind::InvalidOperation, e.to_string()))
}

fn from_json(text: String) -> Result<minijinja::Value, minijinja::Error> {
    let parsed: Value = serde_json::from_str(&text)
        .map_err(|e| minijinja::Error::new(ErrorKind::InvalidOperation, format!("from_json: {e}")))?;
    Ok(minijinja::Value::from(minijinja::value::Serde(parsed)))
}

/// Escape text for an HTML attribute or element.
fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `route_button(label, target)`: a submit button whose form carries `_route = target`.
fn route_button(label: String, target: String) -> String {
    format!(
        "<button type=\"submit\" name=\"_route\" value=\"{}\">{}</button>",
        html_escape(&target),
        html_escape(&label)
    )
}

/// `submit_button(label, action?, route?)`: a submit button carrying an `action` (and maybe a `_route`).
fn submit_button(label: String, action: Option<String>, route: Option<String>) -> String {
    let route = route
        .map(|r| {
            format!(
                "<input type=\"hidden\" name=\"_route\" value=\"{}\">",
                html_escape(&r)
            )
        })
        .unwrap_or_default();
    format!(
        "{route}<button type=\"submit\" name=\"action\" value=\"{}\">{}</button>",
        html_escape(action.as_deref().unwrap_or("submit")),
        html_escape(&label)
    )
}

impl Templates {
    /// The environment with rvbbit's filters.
    pub(crate) fn new() -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Lenient);
        env.add_filter("tojson", to_json);
        env.add_filter("to_json", to_json);
        env.add_filter("from_json", from_json);
        // Screen helpers (§8.4): buttons that submit the form with a `_route` or an `action`.
        env.add_function("route_button", route_button);
        env.add_function("submit_button", submit_button);
        Templates { env }
    }

    /// Render `source` with the variables of `ctx` (a JSON object). Errors carry minijinja's message.
    pub(crate) fn render(&self, source: &str, ctx: &Value) -> Result<String, String> {
        if !source.contains("{{") && !source.contains("{%") && !source.contains("{#") {
            return Ok(source.to_owned());
        }
        self.env
            .render_str(source, minijinja::Value::from(minijinja::value::Serde(ctx)))
            .map_err(|e| {
                let mut msg = e.to_string();
                let mut src = std::error::Error::source(&e);
                while let Some(s) = src {
                    msg.push_str(&format!(": {s}"));
                    src = s.source();
                }
                msg
            })
    }
}

/// The §5.1 rule for rendered deterministic inputs: trimmed text starting with `{`, `[` or `"`, or equal
/// to `true`/`false`/`null`, is parsed as JSON (falling back to the text); numbers stay strings.
pub(crate) fn json_parse_rule(text: String) -> Value {
    let t = text.trim();
    if (t.starts_with(['{', '[', '"']) || matches!(t, "true" | "false" | "null"))
        && let Ok(v) = serde_json::from_str(t)
    {
        return v;
    }
    Value::String(text)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn lenient_undefined_and_json_filters() {
        let t = Templates::new();
        let ctx = json!({"input": {"name": "Ada"}, "state": {"x": [1, "<a>"]}});
        assert_eq!(
            t.render("Hi {{ input.name }}{{ input.missing }}!", &ctx).unwrap(),
            "Hi Ada!"
        );
        assert_eq!(t.render("{{ state.x | tojson }}", &ctx).unwrap(), "[1,\"<a>\"]");
        assert_eq!(t.render("{{ ('{\"a\": 2}' | from_json).a }}", &ctx).unwrap(), "2");
        assert!(t.render("{{ broken", &ctx).is_err());
    }

    #[test]
    fn json_rule() {
        assert_eq!(json_parse_rule(" [1,2] ".into()), json!([1, 2]));
        assert_eq!(json_parse_rule("42".into()), json!("42"));
        assert_eq!(json_parse_rule("true".into()), json!(true));
        assert_eq!(json_parse_rule("{oops".into()), json!("{oops"));
    }
}
