//! Server-side SVG charts: lines over time (cost, tokens, latency per cascade or model) and a session's
//! waterfall (cells and calls on one time axis).
//!
//! Why SVG written here rather than a JavaScript charting library: the Studio has no build step and one
//! small script; an SVG string is rendered with the page (no flash, works without scripts), prints,
//! scales with the window, is read by screen readers through its `<title>`/`<desc>` and per-point
//! `<title>`s, and is tested as text. The charts need only lines, dots, bars and a few labels.
//!
//! Every string that reaches the SVG is XML-escaped here; the templates insert the result unescaped.

use std::fmt::Write as _;

/// `write!` into a `String`.
macro_rules! w {
    ($($arg:tt)*) => {
        // Writing into a String cannot fail: its `fmt::Result` carries nothing to handle.
        let _ = write!($($arg)*);
    };
}

/// The colours of the series, as CSS classes `s0`..`s7` (the stylesheet picks light and dark tones).
pub(crate) const PALETTE: usize = 8;

/// What a chart's values measure, for its axis labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unit {
    /// Micro-dollars, labelled as dollars.
    Money,
    /// A plain count (tokens).
    Count,
    /// Milliseconds.
    Millis,
}

impl Unit {
    /// `value` as an axis or tooltip label.
    pub(crate) fn label(self, value: f64) -> String {
        match self {
            Unit::Money => {
                let dollars = value / 1_000_000.0;
                if dollars == 0.0 {
                    "$0".into()
                } else if dollars >= 1.0 {
                    format!("${dollars:.2}")
                } else {
                    // Enough digits to tell the gridlines apart.
                    let digits = (-dollars.log10()).ceil().clamp(2.0, 6.0) as usize + 1;
                    format!("${dollars:.digits$}")
                }
            }
            Unit::Count => {
                if value >= 1_000_000.0 {
                    format!("{:.1}M", value / 1_000_000.0)
                } else if value >= 10_000.0 {
                    format!("{:.0}k", value / 1000.0)
                } else if value >= 1000.0 {
                    format!("{:.1}k", value / 1000.0)
                } else {
                    format!("{value:.0}")
                }
            }
            Unit::Millis => {
                if value >= 1000.0 {
                    format!("{:.1} s", value / 1000.0)
                } else {
                    format!("{value:.0} ms")
                }
            }
        }
    }
}

/// One line: a value per bucket (`None` where it has no data, drawn as a gap).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Series {
    pub(crate) name: String,
    pub(crate) values: Vec<Option<f64>>,
}

/// Escape text for SVG (XML) content and attributes.
pub(crate) fn xml(text: &str) -> String {
    rvbbit_core::markup::escape_markup(text)
}

/// The smallest 1, 2 or 5 times a power of ten at or above `v` (the top of an axis).
pub(crate) fn nice_ceiling(v: f64) -> f64 {
    if !v.is_finite() || v <= 0.0 {
        return 1.0;
    }
    let power = 10f64.powf(v.log10().floor());
    for step in [1.0, 2.0, 5.0, 10.0] {
        if v <= step * power {
            return step * power;
        }
    }
    10.0 * power
}

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 72.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 28.0;
/// Most x-axis labels drawn (the rest are in the points' tooltips).
const X_LABELS: usize = 6;

/// A line chart of `series` over the buckets named by `labels`, as an accessible SVG element.
pub(crate) fn line_chart(id: &str, title: &str, unit: Unit, labels: &[String], series: &[Series]) -> String {
    let n = labels.len().max(1);
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .fold(0.0f64, |m, v| m.max(*v));
    let top = nice_ceiling(max);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x = |i: usize| {
        if n == 1 {
            LEFT + plot_w / 2.0
        } else {
            LEFT + plot_w * i as f64 / (n - 1) as f64
        }
    };
    let y = |v: f64| TOP + plot_h - plot_h * (v / top).clamp(0.0, 1.0);
    let mut svg = String::new();
    let names: Vec<&str> = series.iter().map(|s| s.name.as_str()).collect();
    w!(
        svg,
        "<svg class=\"chart line\" id=\"{id}\" role=\"img\" aria-labelledby=\"{id}-title {id}-desc\" \
         viewBox=\"0 0 {WIDTH} {HEIGHT}\" width=\"100%\" preserveAspectRatio=\"xMidYMid meet\">\
         <title id=\"{id}-title\">{}</title><desc id=\"{id}-desc\">{}</desc>",
        xml(title),
        xml(&format!(
            "{} series ({}) over {} buckets from {} to {}; highest {}",
            series.len(),
            names.join(", "),
            labels.len(),
            labels.first().map_or("", String::as_str),
            labels.last().map_or("", String::as_str),
            unit.label(max)
        )),
    );
    // Gridlines and y labels: 0, ¼, ½, ¾ and the top; only 0 when every value is 0 (unpriced calls),
    // so the axis does not invent a scale.
    let steps = if max > 0.0 { 4 } else { 0 };
    for step in 0..=steps {
        let v = top * f64::from(step) / 4.0;
        let yy = y(v);
        w!(
            svg,
            "<line class=\"grid\" x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\"/>\
             <text class=\"axis\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            WIDTH - RIGHT,
            LEFT - 6.0,
            yy + 4.0,
            xml(&unit.label(v))
        );
    }
    let every = n.div_ceil(X_LABELS).max(1);
    for (i, label) in labels.iter().enumerate() {
        // Every `every`-th bucket, and the last one unless it would crowd the one before.
        let last_far_enough = i + 1 == n && i % every >= every.div_ceil(2);
        if i % every == 0 || last_far_enough {
            let anchor = if i == 0 && n > 1 {
                "start"
            } else if i + 1 == n && n > 1 {
                "end"
            } else {
                "middle"
            };
            w!(
                svg,
                "<text class=\"axis\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\">{}</text>",
                x(i),
                HEIGHT - 8.0,
                xml(label)
            );
        }
    }
    for (k, s) in series.iter().enumerate() {
        let class = format!("s{}", k % PALETTE);
        let mut d = String::new();
        let mut pen_down = false;
        for (i, v) in s.values.iter().enumerate().take(n) {
            match v {
                Some(v) => {
                    w!(d, "{}{:.1},{:.1} ", if pen_down { "L" } else { "M" }, x(i), y(*v));
                    pen_down = true;
                }
                None => pen_down = false,
            }
        }
        w!(
            svg,
            "<g class=\"series {class}\" data-series=\"{}\"><path d=\"{}\"/>",
            xml(&s.name),
            d.trim_end()
        );
        for (i, v) in s.values.iter().enumerate().take(n) {
            if let Some(v) = v {
                w!(
                    svg,
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\"><title>{}</title></circle>",
                    x(i),
                    y(*v),
                    xml(&format!(
                        "{} · {} · {}",
                        s.name,
                        labels.get(i).map_or("", String::as_str),
                        unit.label(*v)
                    ))
                );
            }
        }
        svg.push_str("</g>");
    }
    svg.push_str("</svg>");
    svg
}

/// One bar of a waterfall: a cell (depth 0) or a call inside it (depth 1).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Bar {
    pub(crate) label: String,
    /// `cell`, `llm`, `tool`, `wait` or `error`: the bar's CSS class.
    pub(crate) kind: &'static str,
    pub(crate) depth: u8,
    /// Microseconds after the session started.
    pub(crate) start_us: i64,
    pub(crate) duration_us: i64,
    /// Shown after the bar: duration, cost.
    pub(crate) note: String,
    /// The cell this one routed to, if a route was taken.
    pub(crate) route: Option<String>,
}

const ROW: f64 = 22.0;
const LABEL_W: f64 = 190.0;
const NOTE_W: f64 = 170.0;
/// Most bars drawn; the rest are counted in a last row.
pub(crate) const MAX_BARS: usize = 400;

/// A waterfall of `bars` over `total_us` microseconds, as an accessible SVG element.
pub(crate) fn waterfall(id: &str, bars: &[Bar], total_us: i64) -> String {
    let total = total_us.max(1) as f64;
    let shown = bars.len().min(MAX_BARS);
    let hidden = bars.len() - shown;
    let rows = shown + usize::from(hidden > 0);
    let height = ROW * rows as f64 + 24.0;
    let plot_w = WIDTH + 180.0 - LABEL_W - NOTE_W;
    let width = WIDTH + 180.0;
    let cells = bars.iter().filter(|b| b.depth == 0).count();
    let routes: Vec<String> = bars
        .iter()
        .filter_map(|b| b.route.as_ref().map(|r| format!("{} → {r}", b.label)))
        .collect();
    let mut svg = String::new();
    w!(
        svg,
        "<svg class=\"chart waterfall\" id=\"{id}\" role=\"img\" aria-labelledby=\"{id}-title {id}-desc\" \
         viewBox=\"0 0 {width} {height:.0}\" width=\"100%\"><title id=\"{id}-title\">Waterfall of the session's cells and calls</title>\
         <desc id=\"{id}-desc\">{}</desc>",
        xml(&format!(
            "{cells} cell(s) and {} call(s) over {:.0} ms{}",
            bars.len() - cells,
            total / 1000.0,
            if routes.is_empty() {
                String::new()
            } else {
                format!("; routes taken: {}", routes.join(", "))
            }
        ))
    );
    // A time axis: 0, ½ and the end.
    for (frac, anchor) in [(0.0, "start"), (0.5, "middle"), (1.0, "end")] {
        let xx = LABEL_W + plot_w * frac;
        w!(
            svg,
            "<line class=\"grid\" x1=\"{xx:.1}\" x2=\"{xx:.1}\" y1=\"14\" y2=\"{height:.0}\"/>\
             <text class=\"axis\" x=\"{xx:.1}\" y=\"11\" text-anchor=\"{anchor}\">{}</text>",
            xml(&Unit::Millis.label(total * frac / 1000.0))
        );
    }
    for (row, b) in bars.iter().take(shown).enumerate() {
        let top = 18.0 + ROW * row as f64;
        let x = LABEL_W + plot_w * (b.start_us.max(0) as f64 / total).clamp(0.0, 1.0);
        let w = (plot_w * b.duration_us.max(0) as f64 / total).clamp(2.0, LABEL_W + plot_w - x + 2.0);
        let indent = 6.0 + 14.0 * f64::from(b.depth);
        let label = if b.label.chars().count() > 24 {
            format!("{}…", b.label.chars().take(23).collect::<String>())
        } else {
            b.label.clone()
        };
        let mut note = b.note.clone();
        if let Some(r) = &b.route {
            note.push_str(&format!(" → {r}"));
        }
        w!(
            svg,
            "<g class=\"bar {kind} d{depth}\"><title>{tip}</title>\
             <text class=\"label\" x=\"{indent:.1}\" y=\"{ty:.1}\">{label}</text>\
             <rect x=\"{x:.1}\" y=\"{ry:.1}\" width=\"{w:.1}\" height=\"{rh:.1}\" rx=\"2\"/>\
             <text class=\"note\" x=\"{nx:.1}\" y=\"{ty:.1}\">{note}</text>",
            kind = b.kind,
            depth = b.depth,
            tip = xml(&format!(
                "{} · starts at {} · {}{}",
                b.label,
                Unit::Millis.label(b.start_us as f64 / 1000.0),
                b.note,
                b.route
                    .as_ref()
                    .map(|r| format!(" · routed to {r}"))
                    .unwrap_or_default()
            )),
            label = xml(&label),
            ty = top + 14.0,
            ry = top + 3.0 + f64::from(b.depth) * 2.0,
            rh = 14.0 - f64::from(b.depth) * 4.0,
            nx = (x + w + 6.0).min(width - NOTE_W + 40.0),
            note = xml(&note),
        );
        if b.route.is_some() {
            w!(
                svg,
                "<path class=\"route\" d=\"M{:.1},{:.1} l6,4 l-6,4 z\"/>",
                x + w + 1.0,
                top + 6.0
            );
        }
        svg.push_str("</g>");
    }
    if hidden > 0 {
        w!(
            svg,
            "<text class=\"label\" x=\"6\" y=\"{:.1}\">… {hidden} more not drawn</text>",
            18.0 + ROW * shown as f64 + 14.0
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_tops_are_round_and_labels_read_well() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(270.0), 500.0);
        assert_eq!(nice_ceiling(1000.0), 1000.0);
        assert_eq!(nice_ceiling(1001.0), 2000.0);
        assert_eq!(Unit::Money.label(270.0), "$0.00027");
        assert_eq!(Unit::Money.label(2_500_000.0), "$2.50");
        assert_eq!(Unit::Count.label(1320.0), "1.3k");
        assert_eq!(Unit::Millis.label(350.0), "350 ms");
        assert_eq!(Unit::Millis.label(1500.0), "1.5 s");
    }

    #[test]
    fn a_line_chart_draws_each_series_with_gaps_and_titled_points() {
        let labels: Vec<String> = ["12-01", "12-02", "12-03"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let svg = line_chart(
            "c",
            "Cost <by> model",
            Unit::Money,
            &labels,
            &[
                Series {
                    name: "gpt & co".into(),
                    values: vec![Some(100.0), None, Some(400.0)],
                },
                Series {
                    name: "b".into(),
                    values: vec![Some(0.0), Some(50.0), Some(20.0)],
                },
            ],
        );
        assert!(
            svg.starts_with("<svg class=\"chart line\" id=\"c\" role=\"img\""),
            "{svg}"
        );
        assert!(
            svg.contains("<title id=\"c-title\">Cost &lt;by&gt; model</title>"),
            "{svg}"
        );
        assert!(svg.contains("data-series=\"gpt &amp; co\""), "{svg}");
        // The gap: a second `M` (pen up at the missing bucket), no line through it.
        let first = svg.split("<path d=\"").nth(1).unwrap().split('"').next().unwrap();
        assert_eq!(first.matches('M').count(), 2, "{first}");
        assert_eq!(first.matches('L').count(), 0, "{first}");
        // The top of the axis is 500 µ$; the highest point sits on it.
        assert!(svg.contains(">$0.00050</text>"), "{svg}");
        assert!(
            svg.contains("<title>gpt &amp; co · 12-03 · $0.00040</title>"),
            "{svg}"
        );
        assert_eq!(svg.matches("<circle").count(), 5);
        assert!(svg.contains("class=\"series s1\""));
    }

    #[test]
    fn an_all_zero_chart_labels_only_zero() {
        let labels = vec!["a".to_owned(), "b".to_owned()];
        let svg = line_chart(
            "z",
            "Cost",
            Unit::Money,
            &labels,
            &[Series {
                name: "m".into(),
                values: vec![Some(0.0), Some(0.0)],
            }],
        );
        assert_eq!(svg.matches("class=\"grid\"").count(), 1, "{svg}");
        assert!(svg.contains(">$0</text>"), "{svg}");
        assert!(!svg.contains("$0.0000"), "{svg}");
    }

    #[test]
    fn a_waterfall_places_bars_by_start_and_marks_the_route() {
        let bars = vec![
            Bar {
                label: "draft".into(),
                kind: "cell",
                depth: 0,
                start_us: 0,
                duration_us: 500_000,
                note: "500 ms".into(),
                route: Some("review".into()),
            },
            Bar {
                label: "LLM gpt".into(),
                kind: "llm",
                depth: 1,
                start_us: 250_000,
                duration_us: 250_000,
                note: "250 ms · $0.0001".into(),
                route: None,
            },
        ];
        let svg = waterfall("w", &bars, 1_000_000);
        assert!(svg.contains("routes taken: draft → review"), "{svg}");
        assert!(svg.contains("<text class=\"note\""), "{svg}");
        assert!(svg.contains("500 ms → review</text>"), "{svg}");
        assert_eq!(svg.matches("class=\"route\"").count(), 1);
        // The call starts a quarter along the plot (190 + 540 / 4) and is a quarter wide.
        assert!(svg.contains("<rect x=\"325.0\""), "{svg}");
        assert!(svg.contains("width=\"135.0\""), "{svg}");
        assert!(svg.contains("<g class=\"bar llm d1\">"));
    }
}
