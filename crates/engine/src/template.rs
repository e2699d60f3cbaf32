//! Rendering templates (instructions, inputs, prompts) with minijinja: lenient undefined values, no
//! autoescape, the `tojson`/`to_json`/`from_json` filters with plain JSON semantics (§9.2 Proposed), and
//! `shell_quote` (alias `q`) for shell commands.
//!
//! Every rendering runs within two budgets from `[limits]`: `template_fuel` (minijinja's fuel: roughly
//! one unit per instruction and per 64 bytes of data created) and `template_output_bytes`. Running out of
//! either is [`RenderError::Limit`], which the engine reports as `RVB-E012`. Rendering happens on a
//! thread of its own raced against the run's cancellation token, so SIGINT/SIGTERM end a run stuck in a
//! heavy template at once; the abandoned thread stops when its fuel runs out (or with the process).

use std::fmt;
use std::io;
use std::sync::Arc;

use minijinja::value::ValueKind;
use minijinja::{Environment, ErrorKind, UndefinedBehavior};
use rvbbit_core::config::LimitsConfig;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::error::Error;

const FUEL: &str = "limits.template_fuel";
const OUTPUT_BYTES: &str = "limits.template_output_bytes";

/// The template environment of a run: the environment, its limits and the run's cancellation token.
/// Cloning is cheap (the environment is shared).
#[derive(Clone, Debug)]
pub(crate) struct Templates {
    env: Arc<Environment<'static>>,
    output_bytes: u64,
    cancel: CancellationToken,
}

/// Why a template did not render.
#[derive(Debug)]
pub(crate) enum RenderError {
    /// The template is broken or failed at run time (minijinja's message).
    Template(String),
    /// A `[limits]` budget ran out.
    Limit {
        /// The setting (`limits.template_fuel` or `limits.template_output_bytes`).
        setting: &'static str,
        /// Its value.
        max: u64,
    },
    /// The run was cancelled while the template rendered.
    Cancelled,
}

impl fmt::Display for RenderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RenderError::Template(message) => f.write_str(message),
            RenderError::Limit { setting, max } => {
                write!(f, "{}, over {setting} = {max}", limit_what(setting))
            }
            RenderError::Cancelled => f.write_str("the run was cancelled while a template rendered"),
        }
    }
}

fn limit_what(setting: &str) -> &'static str {
    if setting == FUEL {
        "the template did too much work"
    } else {
        "the template produced too much output"
    }
}

impl RenderError {
    /// The engine error of a cell whose template in `place` (`inputs`, `instructions`, ...) failed:
    /// `Template` errors become [`Error::CellFailed`], limits [`Error::TemplateLimit`] (`RVB-E012`) and
    /// cancellation [`Error::Cancelled`].
    pub(crate) fn into_cell_error(self, cell: &str, place: &str) -> Error {
        match self {
            RenderError::Template(message) => Error::CellFailed {
                cell: cell.to_owned(),
                message: format!("template error in `{place}`: {message}"),
            },
            RenderError::Limit { setting, max } => Error::TemplateLimit {
                cell: cell.to_owned(),
                place: place.to_owned(),
                what: limit_what(setting),
                setting,
                max,
            },
            RenderError::Cancelled => Error::Cancelled,
        }
    }
}

/// POSIX single-quote quoting: `it's` → `'it'\''s'`. The result is one shell word whatever the text.
fn quote_word(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// `shell_quote` / `q`: a value as shell words. Lists quote each item and join them with spaces; `None`
/// and undefined values become `''`; other values are quoted as they print.
fn shell_quote(value: minijinja::Value) -> Result<String, minijinja::Error> {
    let word = |item: &minijinja::Value| match item.as_str() {
        Some(s) => quote_word(s),
        None if item.is_undefined() || item.is_none() => "''".to_owned(),
        None => quote_word(&item.to_string()),
    };
    match value.kind() {
        ValueKind::Seq | ValueKind::Iterable => {
            let words: Vec<String> = value.try_iter()?.map(|item| word(&item)).collect();
            Ok(words.join(" "))
        }
        _ => Ok(word(&value)),
    }
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
    /// The environment with rvbbit's filters, within `limits`, stopped by `cancel`.
    pub(crate) fn new(limits: &LimitsConfig, cancel: CancellationToken) -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Lenient);
        env.set_fuel(Some(limits.template_fuel));
        env.add_filter("tojson", to_json);
        env.add_filter("to_json", to_json);
        env.add_filter("from_json", from_json);
        env.add_filter("shell_quote", shell_quote);
        env.add_filter("q", shell_quote);
        // Screen helpers (§8.4): buttons that submit the form with a `_route` or an `action`.
        env.add_function("route_button", route_button);
        env.add_function("submit_button", submit_button);
        Templates {
            env: Arc::new(env),
            output_bytes: limits.template_output_bytes,
            cancel,
        }
    }

    /// Render `source` with the variables of `ctx` (a JSON object) on a thread of its own, racing the
    /// run's cancellation token. Cancel-safe: dropping the future abandons a thread that its fuel bounds.
    pub(crate) async fn render(&self, source: &str, ctx: &Value) -> Result<String, RenderError> {
        if !is_template(source) {
            return Ok(source.to_owned());
        }
        let source = source.to_owned();
        self.off_thread(ctx, move |t, ctx| t.render_now(&source, ctx))
            .await
    }

    /// Render every string inside `value` (objects and lists too), like [`Templates::render`], in one
    /// trip to a blocking thread.
    pub(crate) async fn render_value(&self, value: &Value, ctx: &Value) -> Result<Value, RenderError> {
        if !value_has_template(value) {
            return Ok(value.clone());
        }
        let value = value.clone();
        self.off_thread(ctx, move |t, ctx| t.render_value_now(&value, ctx))
            .await
    }

    async fn off_thread<T: Send + 'static>(
        &self,
        ctx: &Value,
        work: impl FnOnce(&Templates, &Value) -> Result<T, RenderError> + Send + 'static,
    ) -> Result<T, RenderError> {
        if self.cancel.is_cancelled() {
            return Err(RenderError::Cancelled);
        }
        let this = self.clone();
        let ctx = ctx.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        // A detached thread rather than `spawn_blocking`: the runtime waits for its blocking tasks when it
        // shuts down, so an abandoned heavy render would hold a cancelled process until its fuel ran out.
        std::thread::Builder::new()
            .name("rvbbit-template".into())
            .spawn(move || {
                // The receiver is gone only when the run was cancelled: nobody wants the result then.
                let _ = tx.send(work(&this, &ctx));
            })
            .map_err(|e| {
                RenderError::Template(format!("cannot start a thread to render the template: {e}"))
            })?;
        tokio::select! {
            biased;
            () = self.cancel.cancelled() => Err(RenderError::Cancelled),
            done = rx => done.unwrap_or_else(|_| {
                Err(RenderError::Template("the template renderer stopped without a result".into()))
            }),
        }
    }

    /// Render on the calling thread: no cancellation, the budgets still apply. For blocking threads and
    /// the fuzz target.
    pub(crate) fn render_now(&self, source: &str, ctx: &Value) -> Result<String, RenderError> {
        if !is_template(source) {
            return Ok(source.to_owned());
        }
        let template = self
            .env
            .template_from_str(source)
            .map_err(|e| RenderError::Template(chain(&e)))?;
        let mut out = Capped {
            buf: Vec::new(),
            max: self.output_bytes,
            over: false,
        };
        let rendered =
            template.render_captured_to(minijinja::Value::from(minijinja::value::Serde(ctx)), &mut out);
        match rendered {
            Ok(_) => String::from_utf8(out.buf)
                .map_err(|e| RenderError::Template(format!("the output is not UTF-8 text: {e}"))),
            Err(_) if out.over => Err(RenderError::Limit {
                setting: OUTPUT_BYTES,
                max: self.output_bytes,
            }),
            Err(e) if e.kind() == ErrorKind::OutOfFuel => Err(RenderError::Limit {
                setting: FUEL,
                max: self.env.fuel().unwrap_or_default(),
            }),
            Err(e) => Err(RenderError::Template(chain(&e))),
        }
    }

    fn render_value_now(&self, value: &Value, ctx: &Value) -> Result<Value, RenderError> {
        Ok(match value {
            Value::String(s) => Value::String(self.render_now(s, ctx)?),
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|v| self.render_value_now(v, ctx))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| Ok((k.clone(), self.render_value_now(v, ctx)?)))
                    .collect::<Result<_, RenderError>>()?,
            ),
            other => other.clone(),
        })
    }
}

/// Whether `source` has any template syntax (plain text renders as itself, without a thread).
fn is_template(source: &str) -> bool {
    source.contains("{{") || source.contains("{%") || source.contains("{#")
}

fn value_has_template(value: &Value) -> bool {
    match value {
        Value::String(s) => is_template(s),
        Value::Array(items) => items.iter().any(value_has_template),
        Value::Object(m) => m.values().any(value_has_template),
        _ => false,
    }
}

/// minijinja's message with its chain of causes.
fn chain(e: &minijinja::Error) -> String {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(&format!(": {s}"));
        src = s.source();
    }
    msg
}

/// The output of one rendering, refusing to grow past `max` bytes.
struct Capped {
    buf: Vec<u8>,
    max: u64,
    over: bool,
}

impl io::Write for Capped {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if (self.buf.len() + data.len()) as u64 > self.max {
            self.over = true;
            return Err(io::Error::other("template output limit reached"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Render `source` with the variables of `ctx` (a JSON object) in the engine's template environment (its
/// filters, lenient undefined values) within `limits`, on the calling thread: the text a cell would
/// render from the same context. The SQL door renders an operator's instructions with it to ask many
/// rows in one prompt.
///
/// # Errors
///
/// The template's error, or the `[limits]` budget it ran out of, as text.
pub fn render_template(source: &str, ctx: &Value, limits: &LimitsConfig) -> Result<String, String> {
    Templates::new(limits, CancellationToken::new())
        .render_now(source, ctx)
        .map_err(|e| e.to_string())
}

/// [`render_template`], under the name the fuzz targets in `fuzz/` use; not part of the stable API.
///
/// # Errors
///
/// As [`render_template`].
#[doc(hidden)]
pub fn render_for_fuzzing(source: &str, ctx: &Value, limits: &LimitsConfig) -> Result<String, String> {
    render_template(source, ctx, limits)
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

    fn templates() -> Templates {
        Templates::new(&LimitsConfig::default(), CancellationToken::new())
    }

    #[test]
    fn lenient_undefined_and_json_filters() {
        let t = templates();
        let ctx = json!({"input": {"name": "Ada"}, "state": {"x": [1, "<a>"]}});
        assert_eq!(
            t.render_now("Hi {{ input.name }}{{ input.missing }}!", &ctx)
                .unwrap(),
            "Hi Ada!"
        );
        assert_eq!(
            t.render_now("{{ state.x | tojson }}", &ctx).unwrap(),
            "[1,\"<a>\"]"
        );
        assert_eq!(
            t.render_now("{{ ('{\"a\": 2}' | from_json).a }}", &ctx).unwrap(),
            "2"
        );
        assert!(t.render_now("{{ broken", &ctx).is_err());
    }

    #[test]
    fn shell_quote_makes_one_word_of_anything() {
        let t = templates();
        let ctx =
            json!({"input": {"x": "x'; id; echo '", "n": 3, "list": ["a b", "it's", null], "none": null}});
        assert_eq!(
            t.render_now("{{ input.x | q }}", &ctx).unwrap(),
            r#"'x'\''; id; echo '\'''"#
        );
        assert_eq!(t.render_now("{{ input.n | shell_quote }}", &ctx).unwrap(), "'3'");
        assert_eq!(
            t.render_now("{{ input.list | q }}", &ctx).unwrap(),
            r#"'a b' 'it'\''s' ''"#
        );
        assert_eq!(t.render_now("{{ input.none | q }}", &ctx).unwrap(), "''");
        assert_eq!(t.render_now("{{ input.missing | q }}", &ctx).unwrap(), "''");
        assert_eq!(t.render_now("{{ [] | q }}", &ctx).unwrap(), "");
    }

    #[test]
    fn fuel_and_output_limits_are_probed_below_and_above() {
        let limits = |fuel, bytes| LimitsConfig {
            template_fuel: fuel,
            template_output_bytes: bytes,
            ..LimitsConfig::default()
        };
        let ctx = json!({});
        let t = Templates::new(&limits(1_000_000, 1 << 20), CancellationToken::new());
        let small = "{% for i in range(100) %}{% endfor %}ok";
        assert_eq!(t.render_now(small, &ctx).unwrap(), "ok");
        let heavy = "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}";
        let err = t.render_now(heavy, &ctx).unwrap_err();
        assert!(
            matches!(
                err,
                RenderError::Limit {
                    setting: FUEL,
                    max: 1_000_000
                }
            ),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("limits.template_fuel = 1000000"),
            "{err}"
        );

        let t = Templates::new(&limits(50_000_000, 1000), CancellationToken::new());
        assert_eq!(t.render_now("{{ 'x' * 1000 }}", &ctx).unwrap().len(), 1000);
        let err = t.render_now("{{ 'x' * 1001 }}", &ctx).unwrap_err();
        assert!(
            matches!(
                err,
                RenderError::Limit {
                    setting: OUTPUT_BYTES,
                    max: 1000
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn json_rule() {
        assert_eq!(json_parse_rule(" [1,2] ".into()), json!([1, 2]));
        assert_eq!(json_parse_rule("42".into()), json!("42"));
        assert_eq!(json_parse_rule("true".into()), json!(true));
        assert_eq!(json_parse_rule("{oops".into()), json!("{oops"));
    }
}
