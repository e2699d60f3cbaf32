//! Charts for the chart tools: a [`Chart`] read from `create_chart`'s arguments, a Plotly figure or a
//! Vega-Lite spec, drawn as a self-contained SVG (no script, no outside asset), so a chart artifact shows
//! in any browser and in the Studio without a charting library.
//!
//! What is drawn: bar, line, area and scatter charts of one or more series over a categorical or numeric
//! x axis. A spec using anything else (facets, layers, transforms, 3-D traces, a data URL) is still
//! validated and stored, but not drawn: the reader says why in [`NotDrawn`].

use serde_json::{Map, Value};

mod svg;

pub(crate) use svg::svg;

/// The kinds of chart drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mark {
    Bar,
    Line,
    Area,
    Scatter,
}

impl Mark {
    /// `bar`, `line`, `area`, `scatter`/`point`/`circle`/`square`, or None.
    pub(crate) fn parse(name: &str) -> Option<Mark> {
        match name.trim().to_ascii_lowercase().as_str() {
            "bar" | "column" | "histogram" => Some(Mark::Bar),
            "line" | "lines" => Some(Mark::Line),
            "area" => Some(Mark::Area),
            "scatter" | "point" | "points" | "circle" | "square" | "markers" => Some(Mark::Scatter),
            _ => None,
        }
    }
}

/// One named series of (x, y) points; x is a category (its text) or a number.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Series {
    pub(crate) name: String,
    pub(crate) points: Vec<(Value, f64)>,
}

/// A chart ready to draw.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Chart {
    pub(crate) mark: Mark,
    pub(crate) title: String,
    pub(crate) x_label: String,
    pub(crate) y_label: String,
    pub(crate) series: Vec<Series>,
}

/// Why a valid spec is stored without a drawing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NotDrawn(pub(crate) String);

/// A number from a JSON number or numeric text.
pub(crate) fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        _ => None,
    }
    .filter(|f| f.is_finite())
}

/// Rows of objects as series: `x` and `y` name fields, `series` (optional) splits them.
pub(crate) fn from_rows(
    rows: &[Value],
    x: &str,
    y: &str,
    series: Option<&str>,
) -> Result<Vec<Series>, String> {
    let mut out: Vec<Series> = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let Some(obj) = row.as_object() else {
            return Err(format!("row {i} of `data` is not an object"));
        };
        let Some(xv) = obj.get(x) else {
            return Err(format!("row {i} of `data` has no field `{x}` (the x field)"));
        };
        let Some(yv) = obj.get(y).and_then(number) else {
            return Err(format!("row {i} of `data` has no number in `{y}` (the y field)"));
        };
        let name = match series.and_then(|s| obj.get(s)) {
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
            None => y.to_owned(),
        };
        match out.iter_mut().find(|s| s.name == name) {
            Some(s) => s.points.push((xv.clone(), yv)),
            None => out.push(Series {
                name,
                points: vec![(xv.clone(), yv)],
            }),
        }
    }
    Ok(out)
}

/// The field a Vega-Lite encoding channel names (`{"field": "..."}` or a plain string).
fn field<'a>(encoding: &'a Map<String, Value>, channel: &str) -> Option<&'a str> {
    match encoding.get(channel)? {
        Value::String(s) => Some(s),
        Value::Object(o) => o.get("field").and_then(Value::as_str),
        _ => None,
    }
}

/// The title of a Vega-Lite encoding channel (its `title`, else its field).
fn channel_title(encoding: &Map<String, Value>, channel: &str) -> String {
    encoding
        .get(channel)
        .and_then(|c| c.get("title"))
        .and_then(Value::as_str)
        .or_else(|| field(encoding, channel))
        .unwrap_or_default()
        .to_owned()
}

/// A chart title from a spec's `title` (text, or an object with `text`).
fn title_of(spec: &Map<String, Value>) -> Option<String> {
    match spec.get("title")? {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("text").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    }
}

/// The marks a Vega-Lite spec may use (a mark outside it is a spec error).
const VEGA_MARKS: &[&str] = &[
    "arc",
    "area",
    "bar",
    "boxplot",
    "circle",
    "errorband",
    "errorbar",
    "geoshape",
    "image",
    "line",
    "point",
    "rect",
    "rule",
    "square",
    "text",
    "tick",
    "trail",
];

/// The keys that make a Vega-Lite spec a composition instead of a single view.
const VEGA_COMPOSITIONS: &[&str] = &["layer", "hconcat", "vconcat", "concat", "facet", "repeat"];

/// Check a Vega-Lite spec; `Ok(Ok(chart))` when it is drawn, `Ok(Err(why))` when valid but not drawn.
pub(crate) fn vega_lite(spec: &Map<String, Value>) -> Result<Result<Chart, NotDrawn>, String> {
    if let Some(schema) = spec.get("$schema") {
        let ok = schema.as_str().is_some_and(|s| s.contains("vega-lite"));
        if !ok {
            return Err(format!("`$schema` is {schema}, not a Vega-Lite schema"));
        }
    }
    if let Some(key) = VEGA_COMPOSITIONS.iter().find(|k| spec.contains_key(**k)) {
        return Ok(Err(NotDrawn(format!(
            "a `{key}` composition is stored, not drawn"
        ))));
    }
    let mark = match spec.get("mark") {
        Some(Value::String(m)) => m.clone(),
        Some(Value::Object(o)) => match o.get("type").and_then(Value::as_str) {
            Some(t) => t.to_owned(),
            None => return Err("`mark` is an object without `type`".into()),
        },
        Some(_) => return Err("`mark` must be a mark name or an object with `type`".into()),
        None => {
            return Err(format!(
                "a Vega-Lite spec needs `mark` (or a composition: {})",
                VEGA_COMPOSITIONS.join(", ")
            ));
        }
    };
    if !VEGA_MARKS.contains(&mark.as_str()) {
        return Err(format!(
            "`mark` `{mark}` is not a Vega-Lite mark ({})",
            VEGA_MARKS.join(", ")
        ));
    }
    let encoding = match spec.get("encoding") {
        Some(Value::Object(e)) => e,
        Some(_) => return Err("`encoding` must be an object".into()),
        None => return Ok(Err(NotDrawn("no `encoding`: nothing to draw".into()))),
    };
    let values = match spec.get("data") {
        Some(Value::Object(d)) if d.get("values").is_some_and(Value::is_array) => {
            d.get("values").and_then(Value::as_array)
        }
        Some(Value::Object(d)) if d.contains_key("url") || d.contains_key("name") => {
            return Ok(Err(NotDrawn(
                "data named by `url` or `name` is not fetched".into(),
            )));
        }
        Some(_) => return Err("`data` must be an object with `values` (an array), `url` or `name`".into()),
        None => return Ok(Err(NotDrawn("no `data`".into()))),
    };
    let (Some(kind), Some(x), Some(y)) = (Mark::parse(&mark), field(encoding, "x"), field(encoding, "y"))
    else {
        return Ok(Err(NotDrawn(format!(
            "only bar, line, area and point marks with x and y fields are drawn (this is `{mark}`)"
        ))));
    };
    let rows = values.map(Vec::as_slice).unwrap_or_default();
    let series = from_rows(rows, x, y, field(encoding, "color"))?;
    Ok(Ok(Chart {
        mark: kind,
        title: title_of(spec).unwrap_or_default(),
        x_label: channel_title(encoding, "x"),
        y_label: channel_title(encoding, "y"),
        series,
    }))
}

/// The Plotly trace types a figure may use (one outside it is a figure error).
const PLOTLY_TRACES: &[&str] = &[
    "bar",
    "barpolar",
    "box",
    "candlestick",
    "choropleth",
    "contour",
    "funnel",
    "heatmap",
    "histogram",
    "histogram2d",
    "indicator",
    "mesh3d",
    "ohlc",
    "parcoords",
    "pie",
    "sankey",
    "scatter",
    "scatter3d",
    "scattergeo",
    "scattergl",
    "scatterpolar",
    "sunburst",
    "surface",
    "table",
    "treemap",
    "violin",
    "waterfall",
];

/// Check a Plotly figure (`{"data": [traces], "layout": {...}}`); like [`vega_lite`].
pub(crate) fn plotly(figure: &Map<String, Value>) -> Result<Result<Chart, NotDrawn>, String> {
    let Some(traces) = figure.get("data").and_then(Value::as_array) else {
        return Err("a Plotly figure needs `data`: an array of traces".into());
    };
    let layout = match figure.get("layout") {
        None => Map::new(),
        Some(Value::Object(l)) => l.clone(),
        Some(_) => return Err("`layout` must be an object".into()),
    };
    let mut series = Vec::new();
    let mut mark = None;
    let mut not_drawn = None;
    for (i, trace) in traces.iter().enumerate() {
        let Some(t) = trace.as_object() else {
            return Err(format!("trace {i} of `data` is not an object"));
        };
        let kind = t.get("type").and_then(Value::as_str).unwrap_or("scatter");
        if !PLOTLY_TRACES.contains(&kind) {
            return Err(format!("trace {i} has the unknown type `{kind}`"));
        }
        let this = match kind {
            "bar" => Some(Mark::Bar),
            "scatter" | "scattergl" => {
                let mode = t.get("mode").and_then(Value::as_str).unwrap_or("lines+markers");
                let filled = t.get("fill").and_then(Value::as_str).is_some_and(|f| f != "none");
                Some(if filled {
                    Mark::Area
                } else if mode.contains("lines") {
                    Mark::Line
                } else {
                    Mark::Scatter
                })
            }
            _ => None,
        };
        let xs = t.get("x").and_then(Value::as_array);
        let ys = t.get("y").and_then(Value::as_array);
        let (Some(this), Some(xs), Some(ys)) = (this, xs, ys) else {
            not_drawn.get_or_insert_with(|| {
                format!(
                    "only bar and scatter traces with `x` and `y` arrays are drawn (trace {i} is `{kind}`)"
                )
            });
            continue;
        };
        mark.get_or_insert(this);
        let points = xs
            .iter()
            .zip(ys)
            .filter_map(|(x, y)| number(y).map(|y| (x.clone(), y)))
            .collect();
        let name = t
            .get("name")
            .and_then(Value::as_str)
            .map_or_else(|| format!("trace {i}"), str::to_owned);
        series.push(Series { name, points });
    }
    if let Some(why) = not_drawn {
        return Ok(Err(NotDrawn(why)));
    }
    let Some(mark) = mark else {
        return Ok(Err(NotDrawn("no traces".into())));
    };
    let axis = |name: &str| {
        layout
            .get(name)
            .and_then(|a| a.get("title"))
            .and_then(|t| t.as_str().or_else(|| t.get("text").and_then(Value::as_str)))
            .unwrap_or_default()
            .to_owned()
    };
    Ok(Ok(Chart {
        mark,
        title: title_of(&layout).unwrap_or_default(),
        x_label: axis("xaxis"),
        y_label: axis("yaxis"),
        series,
    }))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::svg::{tick_text, ticks};
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn a_vega_lite_bar_chart_is_drawn_with_one_bar_per_row_and_escaped_labels() {
        let spec = obj(json!({
            "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
            "title": "Sales <by> region",
            "data": {"values": [{"r": "north", "n": 3}, {"r": "south & co", "n": 5}]},
            "mark": "bar",
            "encoding": {"x": {"field": "r", "type": "nominal"}, "y": {"field": "n", "type": "quantitative"}}
        }));
        let chart = vega_lite(&spec).unwrap().unwrap();
        assert_eq!(chart.mark, Mark::Bar);
        let drawn = svg(&chart);
        assert_eq!(drawn.matches("<rect x=").count(), 2, "{drawn}");
        assert!(drawn.contains("Sales &lt;by&gt; region"));
        assert!(drawn.contains("south &amp; co"));
        assert!(!drawn.contains("<script"));
    }

    #[test]
    fn vega_lite_errors_and_specs_stored_without_a_drawing() {
        assert!(
            vega_lite(&obj(json!({"mark": "pie"})))
                .unwrap_err()
                .contains("not a Vega-Lite mark")
        );
        assert!(
            vega_lite(&obj(json!({"data": {"values": []}})))
                .unwrap_err()
                .contains("needs `mark`")
        );
        assert!(vega_lite(&obj(json!({"$schema": "https://x/plotly.json", "mark": "bar"}))).is_err());
        let layered = vega_lite(&obj(json!({"layer": []}))).unwrap();
        assert!(layered.unwrap_err().0.contains("layer"));
        let remote = vega_lite(&obj(
            json!({"mark": "bar", "encoding": {}, "data": {"url": "http://x"}}),
        ))
        .unwrap();
        assert!(remote.unwrap_err().0.contains("url"));
        let bad_row = json!({"mark": "line", "encoding": {"x": {"field": "a"}, "y": {"field": "b"}},
                             "data": {"values": [{"a": 1, "b": "many"}]}});
        assert!(vega_lite(&obj(bad_row)).unwrap_err().contains("no number in `b`"));
    }

    #[test]
    fn a_plotly_figure_draws_lines_and_bars_and_refuses_unknown_traces() {
        let fig = obj(json!({
            "data": [{"type": "scatter", "mode": "lines", "x": [1, 2, 3], "y": [2, 4, 3], "name": "a"},
                     {"type": "scatter", "mode": "lines", "x": [1, 2, 3], "y": [1, 1, 2], "name": "b"}],
            "layout": {"title": {"text": "Trend"}, "xaxis": {"title": "day"}}
        }));
        let chart = plotly(&fig).unwrap().unwrap();
        assert_eq!((chart.mark, chart.series.len()), (Mark::Line, 2));
        assert_eq!(chart.x_label, "day");
        let drawn = svg(&chart);
        assert_eq!(drawn.matches("<polyline").count(), 2);
        assert!(drawn.contains(">Trend</text>"));
        let unknown = plotly(&obj(json!({"data": [{"type": "teapot"}]}))).unwrap_err();
        assert!(unknown.contains("teapot"));
        assert!(
            plotly(&obj(json!({"layout": {}})))
                .unwrap_err()
                .contains("needs `data`")
        );
        let pie = plotly(&obj(json!({"data": [{"type": "pie", "values": [1, 2]}]}))).unwrap();
        assert!(pie.unwrap_err().0.contains("pie"));
    }

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(ticks(0.0, 5.0), vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        let t = ticks(-3.0, 47.0);
        assert!(t[0] <= -3.0 && *t.last().unwrap() >= 40.0, "{t:?}");
        assert_eq!(tick_text(2.50), "2.5");
        assert_eq!(tick_text(25000.0), "25k");
    }
}
