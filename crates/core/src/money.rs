//! Money as integer micro-dollars.
//!
//! Every cost in rvbbit is a [`MicroUsd`]: an `i64` count of millionths of a US dollar. Floats never carry
//! money. Parsing and printing are exact: `"0.000123"` is 123 micro-dollars and prints back as `$0.000123`.

use std::fmt;
use std::iter::Sum;
use std::ops::{Add, AddAssign, Neg, Sub, SubAssign};
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Micro-dollars per dollar.
const SCALE: i64 = 1_000_000;

/// An amount of money in integer micro-dollars (1 USD = 1,000,000).
///
/// Serialises as a bare integer (the micro-dollar count). Arithmetic with `+`/`-` saturates at the `i64`
/// bounds rather than wrapping or panicking; use [`MicroUsd::checked_add`] to detect overflow.
///
/// ```
/// use rvbbit_core::MicroUsd;
/// let a: MicroUsd = "0.25".parse().unwrap();
/// let b = MicroUsd::from_micros(1);
/// assert_eq!((a + b).to_string(), "$0.250001");
/// ```
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(transparent)]
pub struct MicroUsd(i64);

/// Why a money string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MoneyParseError {
    /// The text is not a decimal number such as `1.25`, `$0.000003` or `-4`.
    #[error("`{0}` is not a dollar amount; write a decimal such as `1.25` or `$0.000003`")]
    Invalid(String),
    /// More than six decimal places would lose precision.
    #[error("`{0}` has more than 6 decimal places; rvbbit counts money in whole micro-dollars")]
    TooPrecise(String),
    /// The amount does not fit in an `i64` count of micro-dollars.
    #[error("`{0}` is too large to represent in micro-dollars")]
    Overflow(String),
}

impl MicroUsd {
    /// Zero dollars.
    pub const ZERO: MicroUsd = MicroUsd(0);

    /// Wrap a raw count of micro-dollars.
    pub const fn from_micros(micros: i64) -> Self {
        MicroUsd(micros)
    }

    /// The raw count of micro-dollars.
    pub const fn micros(self) -> i64 {
        self.0
    }

    /// Whole dollars, exactly (no rounding): `MicroUsd::from_dollars(3)` is `$3.000000`.
    pub const fn from_dollars(dollars: i64) -> Self {
        MicroUsd(dollars.saturating_mul(SCALE))
    }

    /// Add, returning `None` on overflow.
    pub const fn checked_add(self, other: MicroUsd) -> Option<MicroUsd> {
        match self.0.checked_add(other.0) {
            Some(v) => Some(MicroUsd(v)),
            None => None,
        }
    }

    /// Multiply by a count (for example a price per token times tokens), returning `None` on overflow.
    pub const fn checked_mul(self, n: i64) -> Option<MicroUsd> {
        match self.0.checked_mul(n) {
            Some(v) => Some(MicroUsd(v)),
            None => None,
        }
    }

    /// Convert a float dollar amount reported by a provider (such as OpenRouter's `usage.cost`).
    ///
    /// The float is first printed in its shortest round-trip decimal form and that text is parsed exactly,
    /// so `0.000123` becomes 123 micro-dollars rather than 122 through binary rounding. Digits beyond the
    /// sixth decimal place are rounded half away from zero. Returns `None` for NaN, infinities and values
    /// that do not fit.
    pub fn from_usd_f64(usd: f64) -> Option<MicroUsd> {
        if !usd.is_finite() {
            return None;
        }
        // `{}` on f64 prints the shortest representation that round-trips, never exponent notation.
        let text = format!("{usd}");
        parse_decimal(&text, Rounding::HalfAwayFromZero).ok()
    }

    /// The amount in dollars as a float, for display or charts only: never use it for arithmetic.
    pub fn as_usd_f64(self) -> f64 {
        self.0 as f64 / SCALE as f64
    }

    /// Print without the `$` sign, always with six decimals: `0.000123`.
    pub fn to_decimal_string(self) -> String {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let scale = SCALE as u64;
        format!("{sign}{}.{:06}", abs / scale, abs % scale)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Rounding {
    Exact,
    HalfAwayFromZero,
}

fn parse_decimal(input: &str, rounding: Rounding) -> Result<MicroUsd, MoneyParseError> {
    let invalid = || MoneyParseError::Invalid(input.to_owned());
    let mut s = input.trim();
    let negative = if let Some(rest) = s.strip_prefix('-') {
        s = rest;
        true
    } else {
        false
    };
    let cleaned = s.strip_prefix('$').unwrap_or(s).replace('_', "");
    let s = cleaned.as_str();
    let (whole, frac) = match s.split_once('.') {
        Some((w, f)) => (w, f),
        None => (s, ""),
    };
    if whole.is_empty() && frac.is_empty() {
        return Err(invalid());
    }
    if !whole.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let overflow = || MoneyParseError::Overflow(input.to_owned());
    let whole_value: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| overflow())?
    };
    let (kept, dropped) = if frac.len() > 6 {
        frac.split_at(6)
    } else {
        (frac, "")
    };
    if !dropped.is_empty() && rounding == Rounding::Exact && dropped.bytes().any(|b| b != b'0') {
        return Err(MoneyParseError::TooPrecise(input.to_owned()));
    }
    let mut frac_value: i64 = 0;
    for (i, b) in kept.bytes().enumerate() {
        frac_value += i64::from(b - b'0') * 10_i64.pow(5 - i as u32);
    }
    if dropped.as_bytes().first().is_some_and(|&b| b >= b'5') && rounding == Rounding::HalfAwayFromZero {
        frac_value += 1;
    }
    let micros = whole_value
        .checked_mul(SCALE)
        .and_then(|w| w.checked_add(frac_value))
        .ok_or_else(overflow)?;
    Ok(MicroUsd(if negative { -micros } else { micros }))
}

impl FromStr for MicroUsd {
    type Err = MoneyParseError;

    /// Parse a dollar amount exactly: `1.25`, `$0.000003`, `-4`, `1_000.5`. More than six decimals of
    /// non-zero digits is an error rather than a silent rounding.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_decimal(s, Rounding::Exact)
    }
}

impl fmt::Display for MicroUsd {
    /// `$1.250000`; negative amounts print as `-$0.000001`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.to_decimal_string();
        match text.strip_prefix('-') {
            Some(rest) => write!(f, "-${rest}"),
            None => write!(f, "${text}"),
        }
    }
}

impl Add for MicroUsd {
    type Output = MicroUsd;
    fn add(self, rhs: MicroUsd) -> MicroUsd {
        MicroUsd(self.0.saturating_add(rhs.0))
    }
}

impl AddAssign for MicroUsd {
    fn add_assign(&mut self, rhs: MicroUsd) {
        *self = *self + rhs;
    }
}

impl Sub for MicroUsd {
    type Output = MicroUsd;
    fn sub(self, rhs: MicroUsd) -> MicroUsd {
        MicroUsd(self.0.saturating_sub(rhs.0))
    }
}

impl SubAssign for MicroUsd {
    fn sub_assign(&mut self, rhs: MicroUsd) {
        *self = *self - rhs;
    }
}

impl Neg for MicroUsd {
    type Output = MicroUsd;
    fn neg(self) -> MicroUsd {
        MicroUsd(self.0.saturating_neg())
    }
}

impl Sum for MicroUsd {
    fn sum<I: Iterator<Item = MicroUsd>>(iter: I) -> MicroUsd {
        iter.fold(MicroUsd::ZERO, |a, b| a + b)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn parses_and_prints_exactly() {
        let cases = [
            ("0", 0, "$0.000000"),
            ("1", 1_000_000, "$1.000000"),
            ("$1.25", 1_250_000, "$1.250000"),
            ("0.000123", 123, "$0.000123"),
            (".5", 500_000, "$0.500000"),
            ("-0.000001", -1, "-$0.000001"),
            ("1_000.5", 1_000_500_000, "$1000.500000"),
            ("0.1000000", 100_000, "$0.100000"),
        ];
        for (text, micros, printed) in cases {
            let m: MicroUsd = text.parse().unwrap();
            assert_eq!(m.micros(), micros, "{text}");
            assert_eq!(m.to_string(), printed, "{text}");
        }
    }

    #[test]
    fn rejects_bad_input() {
        assert!(matches!(
            "abc".parse::<MicroUsd>(),
            Err(MoneyParseError::Invalid(_))
        ));
        assert!(matches!("".parse::<MicroUsd>(), Err(MoneyParseError::Invalid(_))));
        assert!(matches!(
            "1.2.3".parse::<MicroUsd>(),
            Err(MoneyParseError::Invalid(_))
        ));
        assert!(matches!(
            "0.0000001".parse::<MicroUsd>(),
            Err(MoneyParseError::TooPrecise(_))
        ));
        assert!(matches!(
            "99999999999999999".parse::<MicroUsd>(),
            Err(MoneyParseError::Overflow(_))
        ));
    }

    #[test]
    fn converts_provider_floats_without_binary_error() {
        assert_eq!(MicroUsd::from_usd_f64(0.000123).unwrap().micros(), 123);
        assert_eq!(MicroUsd::from_usd_f64(0.1 + 0.2).unwrap().micros(), 300_000);
        assert_eq!(MicroUsd::from_usd_f64(0.0000005).unwrap().micros(), 1);
        assert_eq!(MicroUsd::from_usd_f64(1e-9).unwrap().micros(), 0);
        assert_eq!(MicroUsd::from_usd_f64(f64::NAN), None);
    }

    #[test]
    fn arithmetic_saturates() {
        let max = MicroUsd::from_micros(i64::MAX);
        assert_eq!(max + MicroUsd::from_micros(1), max);
        assert_eq!(max.checked_add(MicroUsd::from_micros(1)), None);
        let total: MicroUsd = [1, 2, 3].into_iter().map(MicroUsd::from_micros).sum();
        assert_eq!(total.micros(), 6);
    }

    #[test]
    fn serialises_as_integer() {
        assert_eq!(serde_json::to_string(&MicroUsd::from_micros(42)).unwrap(), "42");
        assert_eq!(serde_json::from_str::<MicroUsd>("42").unwrap().micros(), 42);
    }

    proptest! {
        #[test]
        fn display_round_trips(micros in any::<i64>().prop_filter("not min", |m| *m != i64::MIN)) {
            let m = MicroUsd::from_micros(micros);
            let back: MicroUsd = m.to_decimal_string().parse().unwrap();
            prop_assert_eq!(back, m);
        }
    }
}
