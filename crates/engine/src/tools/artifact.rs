//! `create_artifact` and the chart tools (`create_chart`, `create_plotly`, `create_vega_lite`), as LARS
//! cascades call them: each publishes an *artifact* of the session, recorded as an `artifact` event
//! (`content`: `artifact_id`, `kind`, `title`, `description`, `tags`, `content_type`, `body` and, for a
//! chart, `svg`), listed by `GET /api/sessions/{id}/artifacts` and shown by the Studio.
//!
//! Charts are validated (a Plotly figure's traces, a Vega-Lite spec's mark and encoding) and drawn as SVG
//! when [`super::chart`] can; a valid spec it cannot draw is stored with `rendered: false` and the reason.
//! A body over `limits.artifact_bytes` is refused before anything is recorded. The artifact id is a hash
//! of the session, the cell and the content, so a retried call publishes the same artifact again, not a
//! second one.

use async_trait::async_trait;
use rvbbit_core::EventKind;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::chart::{self, Chart, Mark, NotDrawn};
use super::{SideEffect, Tool, ToolContext, ToolError};

/// The longest title and description taken.
const MAX_TITLE: usize = 200;
const MAX_DESCRIPTION: usize = 2000;
/// The most tags, and the longest tag.
const MAX_TAGS: usize = 20;
const MAX_TAG: usize = 50;

/// One artifact ready to record.
struct Artifact {
    kind: String,
    title: String,
    description: String,
    tags: Vec<String>,
    content_type: &'static str,
    body: String,
    /// A chart's drawing, or why there is none.
    drawing: Option<Result<String, NotDrawn>>,
}

/// A text argument (trimmed), or an error naming it when required.
fn text(args: &Value, names: &[&str], required: bool) -> Result<Option<String>, ToolError> {
    let found = names.iter().find_map(|n| args.get(*n).filter(|v| !v.is_null()));
    match found {
        None if required => Err(ToolError::InvalidArguments(format!("`{}` is required", names[0]))),
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_owned())),
        Some(_) => Err(ToolError::InvalidArguments(format!(
            "`{}` must be text",
            names[0]
        ))),
    }
}

/// The title (1–200 characters, no control characters).
fn title(args: &Value, fallback: &str) -> Result<String, ToolError> {
    let t = text(args, &["title", "name"], false)?.unwrap_or_else(|| fallback.to_owned());
    if t.is_empty() || t.chars().count() > MAX_TITLE || t.chars().any(char::is_control) {
        return Err(ToolError::InvalidArguments(format!(
            "`title` must be 1-{MAX_TITLE} characters without control characters"
        )));
    }
    Ok(t)
}

/// `description` (at most 2,000 characters) and `tags` (a list of at most 20 short texts).
fn description_and_tags(args: &Value) -> Result<(String, Vec<String>), ToolError> {
    let description = text(args, &["description"], false)?.unwrap_or_default();
    if description.chars().count() > MAX_DESCRIPTION {
        return Err(ToolError::InvalidArguments(format!(
            "`description` is longer than {MAX_DESCRIPTION} characters"
        )));
    }
    let tags = match args.get("tags") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) if items.len() <= MAX_TAGS => items
            .iter()
            .map(|t| match t.as_str().map(str::trim) {
                Some(t) if !t.is_empty() && t.chars().count() <= MAX_TAG => Ok(t.to_owned()),
                _ => Err(ToolError::InvalidArguments(format!(
                    "each of `tags` must be 1-{MAX_TAG} characters of text"
                ))),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(ToolError::InvalidArguments(format!(
                "`tags` must be a list of at most {MAX_TAGS} texts"
            )));
        }
    };
    Ok((description, tags))
}

/// A JSON object argument given as an object or as JSON text (models often send text).
fn object(args: &Value, names: &[&str]) -> Result<Map<String, Value>, ToolError> {
    let name = names[0];
    let found = names.iter().find_map(|n| args.get(*n).filter(|v| !v.is_null()));
    let value = match found {
        None => return Err(ToolError::InvalidArguments(format!("`{name}` is required"))),
        Some(Value::String(s)) => serde_json::from_str(s)
            .map_err(|e| ToolError::InvalidArguments(format!("`{name}` is not valid JSON: {e}")))?,
        Some(v) => v.clone(),
    };
    match value {
        Value::Object(o) => Ok(o),
        _ => Err(ToolError::InvalidArguments(format!(
            "`{name}` must be a JSON object"
        ))),
    }
}

/// Record `artifact` as an event of the calling session and return what the model sees.
async fn publish(ctx: &ToolContext, a: Artifact) -> Result<Value, ToolError> {
    let Some(scope) = ctx.scope.as_ref() else {
        return Err(ToolError::Failed(
            "artifacts are recorded with a run: call this tool from a cascade".into(),
        ));
    };
    let svg = match &a.drawing {
        Some(Ok(svg)) => Some(svg.as_str()),
        _ => None,
    };
    let bytes = a.body.len() + svg.map_or(0, str::len);
    let limit = scope.limits().artifact_bytes;
    if u64::try_from(bytes).unwrap_or(u64::MAX) > limit {
        return Err(ToolError::Failed(format!(
            "the artifact is {bytes} bytes, more than limits.artifact_bytes = {limit}: make it smaller, or raise \
             limits.artifact_bytes in rvbbit.toml [limits]"
        )));
    }
    let mut hash = Sha256::new();
    for part in [
        ctx.session_id.as_str(),
        &ctx.cell_name,
        &a.kind,
        &a.title,
        &a.body,
    ] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    let artifact_id = format!("art_{}", &hex::encode(hash.finalize())[..16]);
    let mut content = json!({
        "artifact_id": artifact_id,
        "kind": a.kind,
        "title": a.title,
        "description": a.description,
        "tags": a.tags,
        "content_type": a.content_type,
        "bytes": bytes,
        "body": a.body,
    });
    let mut answer = json!({
        "artifact_id": artifact_id,
        "kind": a.kind,
        "title": a.title,
        "bytes": bytes,
        "session_id": ctx.session_id.as_str(),
        "status": "published",
    });
    if let Some(drawing) = &a.drawing {
        let (rendered, note) = match drawing {
            Ok(_) => (true, Value::Null),
            Err(NotDrawn(why)) => (false, json!(why)),
        };
        for doc in [&mut content, &mut answer] {
            doc["rendered"] = json!(rendered);
            if !note.is_null() {
                doc["not_rendered_because"] = note.clone();
            }
        }
        if let Some(svg) = svg {
            content["svg"] = json!(svg);
        }
    }
    scope.record(EventKind::Artifact, &ctx.cell_name, content).await;
    Ok(answer)
}

/// `create_artifact(html, title, artifact_type="dashboard", description="", tags=[])`: publish an HTML
/// (or Markdown, or plain text) document of the session.
#[derive(Debug)]
pub struct CreateArtifact;

#[async_trait]
impl Tool for CreateArtifact {
    fn name(&self) -> &str {
        "create_artifact"
    }

    fn description(&self) -> &str {
        "Publish a document (HTML, Markdown or text) as an artifact of this session, shown in the Studio; returns its artifact_id."
    }

    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "html": {"type": "string", "description": "The document: a complete HTML page or fragment (or Markdown/text with `format`)."},
                "title": {"type": "string", "description": "The artifact's title."},
                "artifact_type": {"type": "string", "description": "What it is: dashboard, report, chart, table, analysis, ... (default dashboard)."},
                "format": {"type": "string", "enum": ["html", "markdown", "text"], "description": "The body's format (default html)."},
                "description": {"type": "string", "description": "One or two sentences on what it shows."},
                "tags": {"type": "array", "items": {"type": "string"}}
            },
            "required": ["html", "title"]
        })
    }

    fn side_effect(&self) -> SideEffect {
        SideEffect::Idempotent
    }

    async fn execute(&self, args: Value, ctx: &ToolContext) -> Result<Value, ToolError> {
        let title = title(&args, "")?;
        let body = text(&args, &["html", "content", "body", "markdown"], true)?.unwrap_or_default();
        if body.is_empty() {
            return Err(ToolError::InvalidArguments("`html` is empty".into()));
        }
        let content_type = match text(&args, &["format"], false)?.as_deref() {
            None | Some("html") => "text/html; charset=utf-8",
            Some("markdown" | "md") => "text/markdown; charset=utf-8",
            Some("text") => "text/plain; charset=utf-8",
            Some(other) => {
                return Err(ToolError::InvalidArguments(format!(
                    "`format` must be html, markdown or text (got `{other}`)"
                )));
            }
        };
        let kind = text(&args, &["artifact_type", "type"], false)?.unwrap_or_else(|| "dashboard".into());
        if kind.is_empty()
            || kind.len() > 40
            || !kind
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(ToolError::InvalidArguments(
                "`artifact_type` must be 1-40 letters, digits, `_` or `-`".into(),
            ));
        }
        let (description, tags) = description_and_tags(&args)?;
        publish(
            ctx,
            Artifact {
                kind,
                title,
                description,
                tags,
                content_type,
                body,
                drawing: None,
            },
        )
        .await
    }
}

/// `create_chart(chart_type, data, x, y, title, series?, x_label?, y_label?)`: a bar, line, area or
/// scatter chart of rows, drawn as SVG.
#[derive(Debug)]
pub struct CreateChart;

#[async_trait]
impl Tool for CreateChart {
    fn name(&self) -> &str {
        "create_chart"
    }

    fn description(&self) -> &str {
        "Draw a bar, line, area or scatter chart of rows (a list of objects) and publish it as an artifact of this session."
    }

    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "chart_type": {"type": "string", "enum": ["bar", "line", "area", "scatter"]},
                "data": {"type": "array", "items": {"type": "object"}, "description": "The rows (or JSON text of them)."},
                "x": {"type": "string", "description": "The field on the x axis."},
                "y": {"type": "string", "description": "The numeric field on the y axis."},
                "series": {"type": "string", "description": "A field that splits the rows into series (optional)."},
                "title": {"type": "string"},
                "x_label": {"type": "string"},
                "y_label": {"type": "string"},
                "description": {"type": "string"}
            },
            "required": ["chart_type", "data", "x", "y"]
        })
    }

    fn side_effect(&self) -> SideEffect {
        SideEffect::Idempotent
    }

    async fn execute(&self, args: Value, ctx: &ToolContext) -> Result<Value, ToolError> {
        let kind = text(&args, &["chart_type", "type"], true)?.unwrap_or_default();
        let mark = Mark::parse(&kind).ok_or_else(|| {
            ToolError::InvalidArguments(format!(
                "`chart_type` must be bar, line, area or scatter (got `{kind}`)"
            ))
        })?;
        let rows = match args.get("data") {
            Some(Value::Array(rows)) => rows.clone(),
            Some(Value::String(s)) => match serde_json::from_str(s) {
                Ok(Value::Array(rows)) => rows,
                _ => {
                    return Err(ToolError::InvalidArguments(
                        "`data` must be a list of objects".into(),
                    ));
                }
            },
            _ => {
                return Err(ToolError::InvalidArguments(
                    "`data` must be a list of objects".into(),
                ));
            }
        };
        let x = text(&args, &["x", "x_field"], true)?.unwrap_or_default();
        let y = text(&args, &["y", "y_field"], true)?.unwrap_or_default();
        let split = text(&args, &["series", "color"], false)?;
        let series =
            chart::from_rows(&rows, &x, &y, split.as_deref()).map_err(ToolError::InvalidArguments)?;
        let title = title(&args, &format!("{y} by {x}"))?;
        let chart = Chart {
            mark,
            title: title.clone(),
            x_label: text(&args, &["x_label"], false)?.unwrap_or_else(|| x.clone()),
            y_label: text(&args, &["y_label"], false)?.unwrap_or_else(|| y.clone()),
            series,
        };
        let spec = json!({"chart_type": kind, "x": x, "y": y, "series": split, "data": rows});
        let (description, tags) = description_and_tags(&args)?;
        publish(
            ctx,
            Artifact {
                kind: "chart".into(),
                title,
                description,
                tags,
                content_type: "application/json",
                body: spec.to_string(),
                drawing: Some(Ok(chart::svg(&chart))),
            },
        )
        .await
    }
}

/// Which chart grammar a spec tool takes.
#[derive(Clone, Copy, Debug)]
enum Grammar {
    Plotly,
    VegaLite,
}

/// `create_plotly(figure, title?)` and `create_vega_lite(spec, title?)`.
#[derive(Debug)]
pub struct CreateSpecChart(Grammar);

impl CreateSpecChart {
    /// `create_plotly`.
    pub fn plotly() -> Self {
        CreateSpecChart(Grammar::Plotly)
    }

    /// `create_vega_lite`.
    pub fn vega_lite() -> Self {
        CreateSpecChart(Grammar::VegaLite)
    }
}

#[async_trait]
impl Tool for CreateSpecChart {
    fn name(&self) -> &str {
        match self.0 {
            Grammar::Plotly => "create_plotly",
            Grammar::VegaLite => "create_vega_lite",
        }
    }

    fn description(&self) -> &str {
        match self.0 {
            Grammar::Plotly => {
                "Publish a Plotly figure ({data: [traces], layout}) as a chart artifact of this session (validated; simple bar and scatter figures are also drawn as SVG)."
            }
            Grammar::VegaLite => {
                "Publish a Vega-Lite spec (mark, encoding, data.values) as a chart artifact of this session (validated; simple bar, line, area and point charts are also drawn as SVG)."
            }
        }
    }

    fn parameters(&self) -> Value {
        let (key, what) = match self.0 {
            Grammar::Plotly => (
                "figure",
                "The Plotly figure: {\"data\": [traces], \"layout\": {...}} (or its JSON text).",
            ),
            Grammar::VegaLite => (
                "spec",
                "The Vega-Lite spec (or its JSON text), data inline in data.values.",
            ),
        };
        json!({
            "type": "object",
            "properties": {
                key: {"type": "object", "description": what},
                "title": {"type": "string"},
                "description": {"type": "string"}
            },
            "required": [key]
        })
    }

    fn side_effect(&self) -> SideEffect {
        SideEffect::Idempotent
    }

    async fn execute(&self, args: Value, ctx: &ToolContext) -> Result<Value, ToolError> {
        let (spec, checked, content_type, fallback) = match self.0 {
            Grammar::Plotly => {
                let spec = object(&args, &["figure", "spec", "fig", "chart"])?;
                let checked = chart::plotly(&spec);
                (spec, checked, "application/vnd.plotly.v1+json", "Plotly chart")
            }
            Grammar::VegaLite => {
                let spec = object(&args, &["spec", "vega_lite_spec", "chart"])?;
                let checked = chart::vega_lite(&spec);
                (
                    spec,
                    checked,
                    "application/vnd.vegalite.v5+json",
                    "Vega-Lite chart",
                )
            }
        };
        let drawn =
            checked.map_err(|e| ToolError::InvalidArguments(format!("the {fallback} is invalid: {e}")))?;
        let title = match text(&args, &["title"], false)? {
            Some(_) => title(&args, fallback)?,
            None => match &drawn {
                Ok(chart) if !chart.title.is_empty() => chart.title.chars().take(MAX_TITLE).collect(),
                _ => fallback.to_owned(),
            },
        };
        let (description, tags) = description_and_tags(&args)?;
        publish(
            ctx,
            Artifact {
                kind: "chart".into(),
                title,
                description,
                tags,
                content_type,
                body: Value::Object(spec).to_string(),
                drawing: Some(drawn.map(|c| chart::svg(&c))),
            },
        )
        .await
    }
}
