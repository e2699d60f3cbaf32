//! Cost, tokens and latency over time, per cascade or per model: the LLM calls of a time range put into
//! buckets (an hour for a day, six hours for a week, a day for a month, three days for a quarter) and
//! drawn as lines by [`super::charts::line_chart`].

use std::collections::BTreeMap;

use rvbbit_core::{EventKind, Timestamp};
use rvbbit_store::{EventFilter, Store, StoredEvent};
use serde_json::{Value, json};

use super::charts::{self, Series, Unit};

/// Most LLM calls read for one picture (the newest are kept when there are more).
pub(crate) const MAX_CALLS: u64 = 20_000;
/// Most lines per chart; the smaller ones are summed into `(other)`.
const MAX_SERIES: usize = 6;

const HOUR: i64 = 3_600_000_000;

/// A time range the picker offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Range {
    pub(crate) name: &'static str,
    pub(crate) span_us: i64,
    pub(crate) bucket_us: i64,
}

/// The ranges of the picker, shortest first.
pub(crate) const RANGES: [Range; 4] = [
    Range {
        name: "24h",
        span_us: 24 * HOUR,
        bucket_us: HOUR,
    },
    Range {
        name: "7d",
        span_us: 7 * 24 * HOUR,
        bucket_us: 6 * HOUR,
    },
    Range {
        name: "30d",
        span_us: 30 * 24 * HOUR,
        bucket_us: 24 * HOUR,
    },
    Range {
        name: "90d",
        span_us: 90 * 24 * HOUR,
        bucket_us: 3 * 24 * HOUR,
    },
];

/// The range named `name`.
pub(crate) fn range(name: &str) -> Option<Range> {
    RANGES.iter().copied().find(|r| r.name == name)
}

/// What the lines are per.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum By {
    Cascade,
    Model,
}

impl By {
    pub(crate) fn parse(s: &str) -> Option<By> {
        match s {
            "cascade" => Some(By::Cascade),
            "model" => Some(By::Model),
            _ => None,
        }
    }
}

#[derive(Default, Clone, Copy)]
struct Cell {
    cost: i64,
    tokens: i64,
    latency_us: i64,
    calls: i64,
}

impl std::ops::AddAssign for Cell {
    fn add_assign(&mut self, o: Cell) {
        self.cost += o.cost;
        self.tokens += o.tokens;
        self.latency_us += o.latency_us;
        self.calls += o.calls;
    }
}

/// Bucket start times (µs) of `range` ending at `now`, oldest first.
fn bucket_starts(range: Range, now: Timestamp) -> Vec<i64> {
    let end = now.micros().div_euclid(range.bucket_us) * range.bucket_us;
    let n = range.span_us / range.bucket_us;
    (0..=n).map(|i| end - (n - i) * range.bucket_us).collect()
}

fn bucket_label(start_us: i64, range: Range) -> String {
    let t = Timestamp::from_micros(start_us).to_rfc3339();
    // 2026-12-05T14:00:00Z → `12-05 14:00` for hours, `12-05` for days.
    let day = t.get(5..10).unwrap_or_default();
    if range.bucket_us < 24 * HOUR {
        format!("{day} {}", t.get(11..16).unwrap_or_default())
    } else {
        day.to_owned()
    }
}

/// The three charts (SVG) and their legend for `calls` (LLM responses) in `range` up to `now`.
pub(crate) fn build(calls: &[StoredEvent], by: By, range: Range, now: Timestamp) -> Value {
    let starts = bucket_starts(range, now);
    let first = starts.first().copied().unwrap_or(0);
    let mut table: BTreeMap<String, Vec<Cell>> = BTreeMap::new();
    for stored in calls {
        let e = &stored.event;
        let at = e.ts_us.micros();
        if at < first {
            continue;
        }
        let Ok(i) = usize::try_from((at - first) / range.bucket_us) else {
            continue;
        };
        if i >= starts.len() {
            continue;
        }
        let key = match by {
            By::Cascade => e.cascade_id.clone(),
            By::Model => e.model.clone().or_else(|| e.model_requested.clone()),
        }
        .unwrap_or_else(|| "(none)".into());
        let row = table
            .entry(key)
            .or_insert_with(|| vec![Cell::default(); starts.len()]);
        row[i] += Cell {
            cost: e.cost.map_or(0, |c| c.micros()),
            tokens: e.tokens.input.unwrap_or(0) + e.tokens.output.unwrap_or(0),
            latency_us: e.duration_us.unwrap_or(0),
            calls: 1,
        };
    }
    // The biggest spenders (then the busiest) get their own line; the rest are summed.
    let mut keys: Vec<(String, Vec<Cell>)> = table.into_iter().collect();
    keys.sort_by_key(|(k, row)| {
        let total = row.iter().fold(Cell::default(), |mut a, c| {
            a += *c;
            a
        });
        (
            std::cmp::Reverse((total.cost, total.tokens, total.calls)),
            k.clone(),
        )
    });
    if keys.len() > MAX_SERIES {
        let rest = keys.split_off(MAX_SERIES - 1);
        let mut other = vec![Cell::default(); starts.len()];
        for (_, row) in rest {
            for (o, c) in other.iter_mut().zip(row) {
                *o += c;
            }
        }
        keys.push(("(other)".into(), other));
    }
    let labels: Vec<String> = starts.iter().map(|s| bucket_label(*s, range)).collect();
    let series = |f: &dyn Fn(&Cell) -> Option<f64>| -> Vec<Series> {
        keys.iter()
            .map(|(k, row)| Series {
                name: k.clone(),
                values: row.iter().map(f).collect(),
            })
            .collect()
    };
    let cost = series(&|c| Some(c.cost as f64));
    let tokens = series(&|c| Some(c.tokens as f64));
    let latency = series(&|c| (c.calls > 0).then(|| c.latency_us as f64 / c.calls as f64 / 1000.0));
    let per = match by {
        By::Cascade => "cascade",
        By::Model => "model",
    };
    json!({
        "cost": charts::line_chart("chart-cost", &format!("Cost per {per}, last {}", range.name), Unit::Money, &labels, &cost),
        "tokens": charts::line_chart("chart-tokens", &format!("Tokens (in + out) per {per}, last {}", range.name), Unit::Count, &labels, &tokens),
        "latency": charts::line_chart("chart-latency", &format!("Mean latency of an LLM call per {per}, last {}", range.name), Unit::Millis, &labels, &latency),
        "legend": keys.iter().enumerate().map(|(i, (k, _))| json!({"name": k, "class": format!("s{}", i % charts::PALETTE)})).collect::<Vec<_>>(),
        "calls": calls.len(),
    })
}

/// The LLM responses of the last `range` (the newest [`MAX_CALLS`]) and whether more were left out.
///
/// # Errors
/// The store's error.
pub(crate) async fn calls(
    store: &dyn Store,
    range: Range,
    now: Timestamp,
) -> rvbbit_store::Result<(Vec<StoredEvent>, bool)> {
    let mut filter = EventFilter {
        kind: Some(EventKind::LlmResponse),
        since: Some(Timestamp::from_micros(
            now.micros() - range.span_us - range.bucket_us,
        )),
        ..EventFilter::default()
    };
    let total = store.count_events(&filter).await?;
    if total > MAX_CALLS {
        // Keep the newest: skip ahead to the MAX_CALLS-th newest call by moving `since` forward
        // a bucket at a time (cheap counts, at most one per bucket of the range).
        let mut since = filter.since.map_or(0, |s| s.micros());
        while since < now.micros() {
            since += range.bucket_us;
            filter.since = Some(Timestamp::from_micros(since));
            if store.count_events(&filter).await? <= MAX_CALLS {
                break;
            }
        }
    }
    filter.limit = Some(MAX_CALLS);
    let events = store.events(&filter).await?;
    Ok((events, total > MAX_CALLS))
}

#[cfg(test)]
mod tests {
    use rvbbit_core::{Event, MicroUsd, SessionId};

    use super::*;

    fn call(at: Timestamp, cascade: &str, model: &str, cost: i64, ms: i64) -> StoredEvent {
        let session: SessionId = "s-1".parse().unwrap();
        let mut e = Event::new(EventKind::LlmResponse, session, 1);
        e.ts_us = at;
        e.cascade_id = Some(cascade.into());
        e.model = Some(model.into());
        e.cost = Some(MicroUsd::from_micros(cost));
        e.tokens.input = Some(100);
        e.tokens.output = Some(20);
        e.duration_us = Some(ms * 1000);
        StoredEvent {
            store_seq: 1,
            event: e,
        }
    }

    #[test]
    fn calls_fall_into_buckets_per_cascade_and_model() {
        let now = Timestamp::from_micros(1_000 * 24 * HOUR + 12 * HOUR);
        let day = range("24h").unwrap();
        let an_hour_ago = Timestamp::from_micros(now.micros() - HOUR);
        let calls = [
            call(an_hour_ago, "a", "m1", 300, 200),
            call(an_hour_ago, "a", "m2", 100, 400),
            call(now, "b", "m1", 50, 1000),
            // Outside the range: left out.
            call(
                Timestamp::from_micros(now.micros() - 30 * HOUR),
                "a",
                "m1",
                9999,
                1,
            ),
        ];
        let out = build(&calls, By::Cascade, day, now);
        assert_eq!(out["legend"][0]["name"], "a", "the biggest spender first");
        assert_eq!(out["legend"][1]["name"], "b");
        let cost = out["cost"].as_str().unwrap();
        assert!(cost.contains("a · 09-27 11:00 · $0.00040"), "{cost}");
        assert!(!cost.contains("$0.0099"), "{cost}");
        let latency = out["latency"].as_str().unwrap();
        assert!(
            latency.contains("a · 09-27 11:00 · 300 ms"),
            "mean of 200 and 400: {latency}"
        );
        let tokens = out["tokens"].as_str().unwrap();
        assert!(tokens.contains("b · 09-27 12:00 · 120"), "{tokens}");
        let by_model = build(&calls, By::Model, day, now);
        assert_eq!(by_model["legend"][0]["name"], "m1");
        assert_eq!(bucket_starts(day, now).len(), 25);
        assert_eq!(bucket_starts(range("90d").unwrap(), now).len(), 31);
    }

    #[test]
    fn more_than_six_lines_are_summed_into_other() {
        let now = Timestamp::from_micros(1_000 * 24 * HOUR);
        let calls: Vec<StoredEvent> = (0..9)
            .map(|i| call(now, &format!("c{i}"), "m", 100 + i, 10))
            .collect();
        let out = build(&calls, By::Cascade, range("7d").unwrap(), now);
        let legend = out["legend"].as_array().unwrap();
        assert_eq!(legend.len(), 6);
        assert_eq!(legend[5]["name"], "(other)");
        assert_eq!(legend[0]["name"], "c8");
    }
}
