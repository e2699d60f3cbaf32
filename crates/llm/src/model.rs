//! Model strings (CASCADE_DSL.md §4.6): `provider/model[:variant][::<reasoning>[::exclude]]`, with
//! `ollama/<model>` routed to the local Ollama endpoint.

use crate::error::{Error, Result};
use crate::request::Reasoning;

/// Which endpoint a model string goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Route {
    /// The configured provider (OpenRouter by default).
    Default,
    /// The local Ollama endpoint (`ollama/<model>`).
    Ollama,
}

/// A parsed model string.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ModelRef {
    /// The string as written, suffix included.
    pub raw: String,
    /// Where it goes.
    pub route: Route,
    /// The model id sent to the endpoint (no `ollama/` prefix, no `::` suffix).
    pub id: String,
    /// Reasoning settings from the `::` suffix.
    pub reasoning: Option<Reasoning>,
}

const EFFORTS: &[&str] = &["xhigh", "high", "medium", "low", "minimal", "none"];

impl ModelRef {
    /// Parse a model string.
    ///
    /// # Errors
    /// [`Error::Settings`] for an empty id or a `::` suffix that is not an effort (`xhigh`, `high`,
    /// `medium`, `low`, `minimal`, `none`), a token budget (`16000`), `effort(budget)`,
    /// `on|true|auto|enabled`, or a trailing `::exclude`.
    pub fn parse(raw: &str) -> Result<ModelRef> {
        let mut pieces = raw.split("::");
        let base = pieces.next().unwrap_or_default().trim();
        let specs: Vec<&str> = pieces.map(str::trim).collect();
        let bad = |why: String| Error::Settings {
            message: format!("model string `{raw}`: {why}"),
        };
        if base.is_empty() {
            return Err(bad("the model id is empty".to_owned()));
        }
        let mut reasoning: Option<Reasoning> = None;
        for (i, spec) in specs.iter().enumerate() {
            let r = reasoning.get_or_insert_with(Reasoning::default);
            let lower = spec.to_ascii_lowercase();
            if lower == "exclude" && i > 0 {
                r.exclude = true;
            } else if ["on", "true", "auto", "enabled"].contains(&lower.as_str()) {
                r.enabled = true;
            } else if EFFORTS.contains(&lower.as_str()) {
                r.effort = Some(lower);
            } else if let Ok(budget) = lower.parse::<u32>() {
                r.max_tokens = Some(budget);
            } else if let Some((effort, rest)) = lower.split_once('(')
                && let Some(budget) = rest.strip_suffix(')')
                && EFFORTS.contains(&effort)
                && let Ok(budget) = budget.parse::<u32>()
            {
                r.effort = Some(effort.to_owned());
                r.max_tokens = Some(budget);
            } else {
                return Err(bad(format!(
                    "`::{spec}` is not a reasoning setting; use an effort ({}), a token budget such as \
                     `::16000`, `::high(8000)` or `::on`",
                    EFFORTS.join(", ")
                )));
            }
        }
        let (route, id) = match base.strip_prefix("ollama/") {
            Some(local) if !local.is_empty() => (Route::Ollama, local.to_owned()),
            _ => (Route::Default, base.to_owned()),
        };
        Ok(ModelRef {
            raw: raw.to_owned(),
            route,
            id,
            reasoning,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_local_models() {
        let m = ModelRef::parse("openai/gpt-4o-mini").unwrap();
        assert_eq!(
            (m.route, m.id.as_str(), m.reasoning),
            (Route::Default, "openai/gpt-4o-mini", None)
        );
        let m = ModelRef::parse("ollama/llama3.2:3b").unwrap();
        assert_eq!((m.route, m.id.as_str()), (Route::Ollama, "llama3.2:3b"));
    }

    #[test]
    fn reasoning_suffixes() {
        let m = ModelRef::parse("anthropic/claude-sonnet-4::high(8000)").unwrap();
        assert_eq!(m.id, "anthropic/claude-sonnet-4");
        let r = m.reasoning.unwrap();
        assert_eq!(
            (r.effort.as_deref(), r.max_tokens, r.exclude),
            (Some("high"), Some(8000), false)
        );
        let r = ModelRef::parse("x/y::16000::exclude").unwrap().reasoning.unwrap();
        assert_eq!((r.max_tokens, r.exclude), (Some(16000), true));
        assert!(ModelRef::parse("x/y::on").unwrap().reasoning.unwrap().enabled);
        assert!(ModelRef::parse("x/y::bogus").is_err());
        assert!(ModelRef::parse("::high").is_err());
    }
}
