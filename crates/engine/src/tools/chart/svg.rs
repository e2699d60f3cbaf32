//! Drawing a [`Chart`] as one SVG document of 640 × 400: axes with round ticks, the marks of each
//! series, a legend when there are several. Text is escaped; nothing is scripted or fetched.

use serde_json::Value;

use super::{Chart, Mark, Series, number};

/// Append formatted text to a `String`.
macro_rules! put {
    ($s:expr, $($t:tt)*) => {
        $s.push_str(&format!($($t)*))
    };
}

const W: f64 = 640.0;
const H: f64 = 400.0;

/// Series colours (a colour-blind-safe palette).
const COLOURS: &[&str] = &[
    "#4269d0", "#efb118", "#ff725c", "#6cc5b0", "#3ca951", "#ff8ab7", "#a463f2", "#97bbf5",
];

/// Escape text for SVG.
fn xml(text: &str) -> String {
    rvbbit_core::markup::escape_markup(text)
}

/// A label's text (a string as is, cut to 40 characters; anything else as JSON).
fn label(v: &Value) -> String {
    match v {
        Value::String(s) => s.chars().take(40).collect(),
        other => other.to_string(),
    }
}

/// Up to about 6 round tick values covering `[lo, hi]`.
pub(crate) fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = (hi - lo).max(f64::EPSILON);
    let raw = span / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| span / s <= 6.0)
        .unwrap_or(raw);
    let mut out = Vec::new();
    let mut t = (lo / step).floor() * step;
    while t <= hi + step * 1e-9 && out.len() < 12 {
        out.push(t);
        t += step;
    }
    out
}

/// A tick's text: no trailing zeros, ten thousand and more as `k`.
pub(crate) fn tick_text(v: f64) -> String {
    if v.abs() >= 10_000.0 {
        format!("{}k", (v / 1000.0).round())
    } else if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round())
    } else {
        format!("{v:.2}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_owned()
    }
}

/// The plot area and the scales from data to pixels.
struct Frame {
    left: f64,
    top: f64,
    width: f64,
    height: f64,
    /// The y range (widened to the outer ticks) and its ticks.
    y_lo: f64,
    y_hi: f64,
    y_ticks: Vec<f64>,
    /// A numeric x axis (every x a number, not a bar chart) and its range; else the categories.
    numeric_x: bool,
    x_lo: f64,
    x_hi: f64,
    categories: Vec<String>,
}

impl Frame {
    fn of(chart: &Chart) -> Frame {
        let top = if chart.title.is_empty() { 24.0 } else { 48.0 };
        let (left, right, bottom) = (64.0, 24.0, 64.0);
        let all: Vec<&(Value, f64)> = chart.series.iter().flat_map(|s| &s.points).collect();
        let numeric_x =
            chart.mark != Mark::Bar && !all.is_empty() && all.iter().all(|(x, _)| number(x).is_some());
        let mut categories: Vec<String> = Vec::new();
        for (x, _) in &all {
            let l = label(x);
            if !categories.contains(&l) {
                categories.push(l);
            }
        }
        let (mut lo, mut hi) = all
            .iter()
            .fold((0.0f64, 0.0f64), |(lo, hi), (_, y)| (lo.min(*y), hi.max(*y)));
        if (hi - lo).abs() < f64::EPSILON {
            hi = lo + 1.0;
        }
        let y_ticks = ticks(lo, hi);
        lo = lo.min(y_ticks.first().copied().unwrap_or(lo));
        hi = hi.max(y_ticks.last().copied().unwrap_or(hi));
        let (x_lo, x_hi) = all
            .iter()
            .filter_map(|(x, _)| number(x))
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
                (a.min(x), b.max(x))
            });
        Frame {
            left,
            top,
            width: W - left - right,
            height: H - top - bottom,
            y_lo: lo,
            y_hi: hi,
            y_ticks,
            numeric_x,
            x_lo,
            x_hi,
            categories,
        }
    }

    fn y(&self, y: f64) -> f64 {
        self.top + self.height - (y - self.y_lo) / (self.y_hi - self.y_lo) * self.height
    }

    /// The width of one category's band.
    fn band(&self) -> f64 {
        self.width / self.categories.len().max(1) as f64
    }

    fn x(&self, x: &Value) -> f64 {
        if self.numeric_x {
            let v = number(x).unwrap_or(self.x_lo);
            if (self.x_hi - self.x_lo).abs() < f64::EPSILON {
                self.left + self.width / 2.0
            } else {
                self.left + (v - self.x_lo) / (self.x_hi - self.x_lo) * self.width
            }
        } else {
            let l = label(x);
            let i = self.categories.iter().position(|c| *c == l).unwrap_or(0);
            self.left + self.band() * (i as f64 + 0.5)
        }
    }

    /// The y of the baseline bars and areas grow from (0, or the bottom when all values are above 0).
    fn base(&self) -> f64 {
        self.y(0f64.max(self.y_lo))
    }
}

/// Grid lines, y ticks, both axes and the x labels (every category, thinned to about 12, or ticks).
fn axes(s: &mut String, f: &Frame) {
    let (right, bottom) = (f.left + f.width, f.top + f.height);
    for t in &f.y_ticks {
        let y = f.y(*t);
        put!(
            s,
            r##"<line x1="{}" x2="{right}" y1="{y:.1}" y2="{y:.1}" stroke="#e5e5e5"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            f.left,
            f.left - 6.0,
            y + 4.0,
            tick_text(*t)
        );
    }
    put!(
        s,
        r##"<line x1="{l}" x2="{l}" y1="{}" y2="{bottom}" stroke="#333"/><line x1="{l}" x2="{right}" y1="{bottom}" y2="{bottom}" stroke="#333"/>"##,
        f.top,
        l = f.left
    );
    let at = bottom + 16.0;
    if f.numeric_x {
        for t in ticks(f.x_lo, f.x_hi) {
            let x = f.x(&Value::from(t));
            if x >= f.left - 0.5 && x <= right + 0.5 {
                put!(
                    s,
                    r#"<text x="{x:.1}" y="{at}" text-anchor="middle">{}</text>"#,
                    tick_text(t)
                );
            }
        }
    } else {
        let every = f.categories.len().div_ceil(12).max(1);
        for (i, c) in f.categories.iter().enumerate().step_by(every) {
            let x = f.left + f.band() * (i as f64 + 0.5);
            put!(
                s,
                r#"<text x="{x:.1}" y="{at}" text-anchor="middle">{}</text>"#,
                xml(c)
            );
        }
    }
}

/// The bars of series `index` of `count`, side by side within each category's band.
fn bars(s: &mut String, f: &Frame, series: &Series, index: usize, count: usize) {
    let band = f.band();
    let width = band * 0.8 / count.max(1) as f64;
    for (x, y) in &series.points {
        let bx = f.x(x) - band * 0.4 + width * index as f64;
        let (y0, y1) = (f.base(), f.y(*y));
        put!(
            s,
            r#"<rect x="{bx:.1}" y="{:.1}" width="{width:.1}" height="{:.1}" stroke="none"><title>{}: {}</title></rect>"#,
            y0.min(y1),
            (y0 - y1).abs(),
            xml(&label(x)),
            tick_text(*y)
        );
    }
}

/// A line, an area or points of one series.
fn line(s: &mut String, f: &Frame, mark: Mark, series: &Series) {
    let mut pts: Vec<(f64, f64)> = series.points.iter().map(|(x, y)| (f.x(x), f.y(*y))).collect();
    if f.numeric_x {
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    let path: Vec<String> = pts.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
    if mark == Mark::Area
        && let (Some(first), Some(last)) = (pts.first(), pts.last())
    {
        let base = f.base();
        put!(
            s,
            r#"<polygon points="{:.1},{base:.1} {} {:.1},{base:.1}" fill-opacity="0.3" stroke="none"/>"#,
            first.0,
            path.join(" "),
            last.0
        );
    }
    if mark != Mark::Scatter {
        put!(
            s,
            r#"<polyline points="{}" fill="none" stroke-width="2"/>"#,
            path.join(" ")
        );
    }
    for (x, y) in &pts {
        put!(s, r#"<circle cx="{x:.1}" cy="{y:.1}" r="3"/>"#);
    }
}

/// Draw `chart` as an SVG document of 640 × 400.
pub(crate) fn svg(chart: &Chart) -> String {
    let f = Frame::of(chart);
    let mut s = String::new();
    put!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" font-family="sans-serif" font-size="11"><rect width="{W}" height="{H}" fill="white"/>"#
    );
    if !chart.title.is_empty() {
        put!(
            s,
            r#"<text x="{}" y="28" text-anchor="middle" font-size="16" font-weight="bold">{}</text>"#,
            W / 2.0,
            xml(&chart.title)
        );
    }
    axes(&mut s, &f);
    let count = chart.series.len();
    for (i, series) in chart.series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        put!(
            s,
            r#"<g data-series="{}" fill="{colour}" stroke="{colour}">"#,
            xml(&series.name)
        );
        match chart.mark {
            Mark::Bar => bars(&mut s, &f, series, i, count),
            mark => line(&mut s, &f, mark, series),
        }
        s.push_str("</g>");
    }
    if count > 1 {
        for (i, series) in chart.series.iter().enumerate() {
            let y = f.top + 12.0 * i as f64;
            let x = f.left + f.width - 120.0;
            put!(
                s,
                r#"<rect x="{x}" y="{y:.1}" width="10" height="10" fill="{}"/><text x="{}" y="{:.1}">{}</text>"#,
                COLOURS[i % COLOURS.len()],
                x + 14.0,
                y + 9.0,
                xml(&series.name)
            );
        }
    }
    put!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text><text transform="translate(16 {}) rotate(-90)" text-anchor="middle">{}</text></svg>"#,
        f.left + f.width / 2.0,
        H - 16.0,
        xml(&chart.x_label),
        f.top + f.height / 2.0,
        xml(&chart.y_label)
    );
    s
}
