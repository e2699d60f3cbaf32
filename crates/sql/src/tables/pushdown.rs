//! Filter pushdown of the magic tables: equality filters on declared columns (`column = 'literal'`)
//! and time ranges on a table's time column, always inexact (DataFusion applies every filter again).

use datafusion::error::DataFusionError;
use datafusion::logical_expr::Expr;
use serde_json::Value;

/// A time range of events, pushed to the store: at or after `since`, before `until` (microseconds).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct TimeRange {
    since: Option<i64>,
    until: Option<i64>,
}

impl TimeRange {
    /// The intersection of the time bounds among `filters` on the text column `text` (and the
    /// microseconds column `micros`).
    pub(super) fn of(filters: &[Expr], text: &str, micros: Option<&str>) -> TimeRange {
        filters
            .iter()
            .filter_map(|f| time_bound_on(f, text, micros))
            .fold(TimeRange::default(), TimeRange::and)
    }

    /// No time can be in the range.
    pub(super) fn is_empty(self) -> bool {
        matches!((self.since, self.until), (Some(s), Some(u)) if s >= u)
    }

    /// The range as the store's `(since, until)`.
    pub(super) fn bounds(self) -> (Option<rvbbit_core::Timestamp>, Option<rvbbit_core::Timestamp>) {
        (
            self.since.map(rvbbit_core::Timestamp::from_micros),
            self.until.map(rvbbit_core::Timestamp::from_micros),
        )
    }

    /// Both ranges at once.
    pub(super) fn and(self, other: TimeRange) -> TimeRange {
        let pick = |a: Option<i64>, b: Option<i64>, f: fn(i64, i64) -> i64| match (a, b) {
            (Some(x), Some(y)) => Some(f(x, y)),
            (x, y) => x.or(y),
        };
        TimeRange {
            since: pick(self.since, other.since, i64::max),
            until: pick(self.until, other.until, i64::min),
        }
    }
}

/// The time range a comparison of the microseconds column `micros` or the RFC 3339 text column `text`
/// (also cast to a timestamp, as in `timestamp > now() - INTERVAL '1 day'`) with a literal keeps,
/// widened where needed so it is always a superset of the rows the comparison keeps (DataFusion applies
/// the filter again). Text literals count only in UTC (`Z`, no zone, or a bare date): a string
/// comparison with another offset does not follow time order.
pub(super) fn time_bound_on(expr: &Expr, text: &str, micros: Option<&str>) -> Option<TimeRange> {
    use datafusion::logical_expr::{BinaryExpr, Cast, Operator, TryCast};
    use datafusion::scalar::ScalarValue;

    enum Bound {
        /// `ts_us` against whole microseconds.
        Micros(i64),
        /// `timestamp` text against a UTC text literal (microseconds of the literal).
        Text(i64),
        /// `timestamp` cast to a timestamp against an instant (nanoseconds).
        Instant(i128),
    }
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = expr else {
        return None;
    };
    let (column, literal, op) = match (left.as_ref(), right.as_ref()) {
        (c, Expr::Literal(v, _)) => (c, v, *op),
        (Expr::Literal(v, _), c) => (c, v, op.swap()?),
        _ => return None,
    };
    if !matches!(op, Operator::Gt | Operator::GtEq | Operator::Lt | Operator::LtEq) {
        return None;
    }
    let named = |e: &Expr, name: &str| matches!(e, Expr::Column(c) if c.name == name);
    let bound = match (column, literal) {
        (c, ScalarValue::Int64(Some(v))) if micros.is_some_and(|m| named(c, m)) => Bound::Micros(*v),
        (
            c,
            ScalarValue::Utf8(Some(t)) | ScalarValue::Utf8View(Some(t)) | ScalarValue::LargeUtf8(Some(t)),
        ) if named(c, text) => {
            let t = t.trim();
            let zone = t.get(10..).unwrap_or_default();
            if zone.contains('+') || zone.contains('-') {
                return None;
            }
            Bound::Text(t.parse::<rvbbit_core::Timestamp>().ok()?.micros())
        }
        (Expr::Cast(Cast { expr, .. }) | Expr::TryCast(TryCast { expr, .. }), v) if named(expr, text) => {
            let ns = match v {
                ScalarValue::TimestampNanosecond(Some(n), _) => i128::from(*n),
                ScalarValue::TimestampMicrosecond(Some(n), _) => i128::from(*n) * 1_000,
                ScalarValue::TimestampMillisecond(Some(n), _) => i128::from(*n) * 1_000_000,
                ScalarValue::TimestampSecond(Some(n), _) => i128::from(*n) * 1_000_000_000,
                _ => return None,
            };
            Bound::Instant(ns)
        }
        _ => return None,
    };
    let lower = matches!(op, Operator::Gt | Operator::GtEq);
    let to_micros = |ns: i128, up: bool| {
        let m = if up {
            (ns + 999).div_euclid(1_000)
        } else {
            ns.div_euclid(1_000)
        };
        i64::try_from(m).ok()
    };
    let (since, until) = match bound {
        Bound::Micros(v) => match op {
            Operator::Gt => (v.checked_add(1), None),
            Operator::GtEq => (Some(v), None),
            Operator::Lt => (None, Some(v)),
            _ => (None, v.checked_add(1)),
        },
        // The string order of RFC 3339 text puts `…:00.5Z` before `…:00Z`: a second of slack.
        Bound::Text(t) if lower => (Some(t), None),
        Bound::Text(t) => (None, t.checked_add(1_000_000)),
        Bound::Instant(ns) => match op {
            Operator::Gt | Operator::GtEq => (to_micros(ns, false), None),
            Operator::Lt => (None, to_micros(ns, true)),
            _ => (None, to_micros(ns, false).and_then(|m| m.checked_add(1))),
        },
    };
    if since.is_none() && until.is_none() {
        return None;
    }
    Some(TimeRange { since, until })
}

/// Inexact pushdown for the filters `pushed_on(_, columns)` understands and the time bounds on
/// `time = (text column, microseconds column)`, if the table has one (DataFusion still applies them all).
pub(super) fn pushdown(
    filters: &[&Expr],
    columns: &[&str],
    time: Option<(&str, Option<&str>)>,
) -> Vec<datafusion::logical_expr::TableProviderFilterPushDown> {
    use datafusion::logical_expr::TableProviderFilterPushDown as P;
    filters
        .iter()
        .map(|f| {
            let timed = time.is_some_and(|(text, micros)| time_bound_on(f, text, micros).is_some());
            if timed || pushed_on(f, columns).is_some() {
                P::Inexact
            } else {
                P::Unsupported
            }
        })
        .collect()
}

/// `column = 'literal'` (either side) on one of `columns`: (column, value).
pub(super) fn pushed_on(expr: &Expr, columns: &[&str]) -> Option<(String, String)> {
    use datafusion::logical_expr::{BinaryExpr, Operator};
    use datafusion::scalar::ScalarValue;
    let Expr::BinaryExpr(BinaryExpr {
        left,
        op: Operator::Eq,
        right,
    }) = expr
    else {
        return None;
    };
    let ((Expr::Column(col), Expr::Literal(lit, _)) | (Expr::Literal(lit, _), Expr::Column(col))) =
        (left.as_ref(), right.as_ref())
    else {
        return None;
    };
    if !columns.contains(&col.name.as_str()) {
        return None;
    }
    match lit {
        ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)) | ScalarValue::LargeUtf8(Some(s)) => {
            Some((col.name.clone(), s.clone()))
        }
        _ => None,
    }
}

/// A string field of an event's JSON (`content` or `metadata`).
pub(super) fn field(json: &Value, key: &str) -> Option<String> {
    json.get(key).and_then(Value::as_str).map(str::to_owned)
}

pub(super) fn external(e: rvbbit_store::Error) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::datatypes::DataType;

    use crate::tables::all_data::ALL_DATA_TIME;
    use datafusion::prelude::{cast, col, lit};
    use datafusion::scalar::ScalarValue;

    use super::*;

    fn time_bound(expr: &Expr) -> Option<TimeRange> {
        time_bound_on(expr, ALL_DATA_TIME.0, ALL_DATA_TIME.1)
    }

    fn range(since: Option<i64>, until: Option<i64>) -> Option<TimeRange> {
        Some(TimeRange { since, until })
    }

    const DAY: i64 = 1_764_547_200_000_000; // 2025-12-01T00:00:00Z in microseconds

    #[test]
    fn time_bounds_are_supersets_of_their_filters() {
        // ts_us against microseconds: exact.
        assert_eq!(time_bound(&col("ts_us").gt(lit(10_i64))), range(Some(11), None));
        assert_eq!(
            time_bound(&col("ts_us").gt_eq(lit(10_i64))),
            range(Some(10), None)
        );
        assert_eq!(time_bound(&col("ts_us").lt(lit(10_i64))), range(None, Some(10)));
        assert_eq!(
            time_bound(&col("ts_us").lt_eq(lit(10_i64))),
            range(None, Some(11))
        );
        // The literal on the left flips the comparison.
        assert_eq!(time_bound(&lit(10_i64).lt(col("ts_us"))), range(Some(11), None));
        // timestamp text against UTC text: since the instant, until a second after it.
        assert_eq!(
            time_bound(&col("timestamp").gt_eq(lit("2025-12-01"))),
            range(Some(DAY), None)
        );
        assert_eq!(
            time_bound(&col("timestamp").lt(lit("2025-12-01T00:00:00Z"))),
            range(None, Some(DAY + 1_000_000))
        );
        // Another zone does not follow string order: not pushed.
        assert_eq!(
            time_bound(&col("timestamp").gt(lit("2025-12-01T10:00:00-05:00"))),
            None
        );
        assert_eq!(time_bound(&col("timestamp").gt(lit("yesterday"))), None);
        // timestamp cast to an instant (`timestamp > now() - INTERVAL …` after constant folding).
        let instant = |ns: i64| {
            Expr::Literal(
                ScalarValue::TimestampNanosecond(Some(ns), Some("+00:00".into())),
                None,
            )
        };
        let ts = || {
            cast(
                col("timestamp"),
                DataType::Timestamp(
                    datafusion::arrow::datatypes::TimeUnit::Nanosecond,
                    Some("+00:00".into()),
                ),
            )
        };
        assert_eq!(time_bound(&ts().gt(instant(1_500))), range(Some(1), None));
        assert_eq!(time_bound(&ts().lt(instant(1_500))), range(None, Some(2)));
        assert_eq!(time_bound(&ts().lt_eq(instant(1_000))), range(None, Some(2)));
        // Not a time column, not a comparison, not a literal.
        assert_eq!(time_bound(&col("tokens_in").gt(lit(10_i64))), None);
        assert_eq!(time_bound(&col("ts_us").eq(lit(10_i64))), None);
        assert_eq!(time_bound(&col("ts_us").gt(col("duration_us"))), None);
        // A range with nothing in it reads nothing.
        assert!(
            TimeRange {
                since: Some(9),
                until: Some(9)
            }
            .is_empty()
        );
        assert!(
            !TimeRange {
                since: Some(8),
                until: Some(9)
            }
            .is_empty()
        );
        assert!(!TimeRange::default().is_empty());
        // Ranges combine to their intersection.
        let both = TimeRange {
            since: Some(5),
            until: None,
        }
        .and(TimeRange {
            since: Some(7),
            until: Some(9),
        });
        assert_eq!(
            both,
            TimeRange {
                since: Some(7),
                until: Some(9)
            }
        );
    }
}
