//! Retry schedules: exponential backoff with full jitter, and `Retry-After` parsing.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::Rng;

use crate::settings::RetryPolicy;

/// What to do after a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Wait this long, then try again.
    RetryAfter(Duration),
    /// Stop retrying.
    GiveUp,
}

/// Decide about retry number `retry` (1-based) of a transient failure, given the provider's
/// `Retry-After` if it sent one.
pub(crate) fn next_attempt(policy: &RetryPolicy, retry: u32, retry_after: Option<Duration>) -> Next {
    if retry > policy.max_retries {
        return Next::GiveUp;
    }
    if let Some(wait) = retry_after {
        // The provider said when: waiting less would only earn another 429, waiting much longer than
        // allowed is better spent on a fallback model.
        return if wait > policy.max_retry_after {
            Next::GiveUp
        } else {
            Next::RetryAfter(wait)
        };
    }
    let ceiling = backoff_ceiling(policy, retry);
    if !policy.jitter || ceiling.is_zero() {
        return Next::RetryAfter(ceiling);
    }
    let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
    Next::RetryAfter(Duration::from_millis(rand::rng().random_range(0..=millis)))
}

/// `min(max_backoff, initial_backoff × 2^(retry-1))`.
pub(crate) fn backoff_ceiling(policy: &RetryPolicy, retry: u32) -> Duration {
    let factor = 2u32.saturating_pow(retry.saturating_sub(1));
    policy
        .initial_backoff
        .saturating_mul(factor)
        .min(policy.max_backoff)
}

/// Parse a `Retry-After` value: delay seconds (`120`, also fractional `1.5`) or an HTTP date
/// (`Wed, 21 Oct 2015 07:28:00 GMT`), the latter relative to `now`. A date in the past means "now".
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0)));
    }
    let at = parse_http_date(value)?;
    let now = now.duration_since(UNIX_EPOCH).ok()?.as_secs();
    Some(Duration::from_secs(at.saturating_sub(now)))
}

/// Seconds since the epoch of an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the only form
/// RFC 9110 requires senders to produce.
fn parse_http_date(value: &str) -> Option<u64> {
    let mut it = value.split_whitespace();
    let _weekday = it.next()?;
    let day: u64 = it.next()?.parse().ok()?;
    let month = match it.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: i64 = it.next()?.parse().ok()?;
    let mut hms = it.next()?.split(':').map(|p| p.parse::<u64>().ok());
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
    if it.next()? != "GMT" || day == 0 || day > 31 || h > 23 || m > 59 || s > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days)
        .ok()
        .map(|d| d * 86_400 + h * 3_600 + m * 60 + s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_retries: 4,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(500),
            ..RetryPolicy::default()
        }
    }

    #[test]
    fn ceilings_double_then_cap() {
        let p = policy();
        let ceilings: Vec<u128> = (1..=5).map(|n| backoff_ceiling(&p, n).as_millis()).collect();
        assert_eq!(ceilings, [100, 200, 400, 500, 500]);
    }

    #[test]
    fn full_jitter_stays_under_the_ceiling() {
        let p = policy();
        for retry in 1..=4 {
            for _ in 0..200 {
                let Next::RetryAfter(wait) = next_attempt(&p, retry, None) else {
                    panic!("gave up")
                };
                assert!(wait <= backoff_ceiling(&p, retry));
            }
        }
        assert_eq!(next_attempt(&p, 5, None), Next::GiveUp);
    }

    #[test]
    fn retry_after_wins_until_it_is_too_long() {
        let p = policy();
        assert_eq!(
            next_attempt(&p, 1, Some(Duration::from_secs(7))),
            Next::RetryAfter(Duration::from_secs(7))
        );
        assert_eq!(next_attempt(&p, 1, Some(Duration::from_secs(3600))), Next::GiveUp);
    }

    #[test]
    fn parses_seconds_and_http_dates() {
        let now = UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(parse_retry_after("30", now), Some(Duration::from_secs(30)));
        assert_eq!(parse_retry_after("1.5", now), Some(Duration::from_millis(1500)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-3", now), None);
    }
}
