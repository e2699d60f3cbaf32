//! The per-user rate limit of chat commands: a token bucket per `integration:user` holding at most
//! `burst` commands and refilled at `rate_per_minute`. Time is tokio's, so tests pause it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Buckets kept before full ones are forgotten (a full bucket is the same as no bucket).
const MAX_BUCKETS: usize = 10_000;

/// Token buckets by key.
#[derive(Debug)]
pub struct RateLimiter {
    per_minute: u32,
    burst: u32,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    /// `per_minute` commands a minute, `burst` at once (each at least 1).
    pub fn new(per_minute: u32, burst: u32) -> Self {
        RateLimiter {
            per_minute: per_minute.max(1),
            burst: burst.max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Take one token for `key`, or say how long until one is there.
    ///
    /// # Errors
    /// The wait until the next token when the bucket is empty (nothing is taken).
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let per_second = f64::from(self.per_minute) / 60.0;
        let burst = f64::from(self.burst);
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() >= MAX_BUCKETS {
            buckets.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * per_second < burst
            });
        }
        let (tokens, at) = buckets.entry(key.to_owned()).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * per_second).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / per_second))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_burst_then_the_rate() {
        let limiter = RateLimiter::new(30, 5);
        for _ in 0..5 {
            limiter.check("ops:alice").unwrap();
        }
        let wait = limiter.check("ops:alice").unwrap_err();
        assert_eq!(wait, Duration::from_secs(2), "30 a minute is one every 2 s");
        limiter.check("ops:bob").unwrap();
        tokio::time::advance(Duration::from_secs(2)).await;
        limiter.check("ops:alice").unwrap();
        assert!(limiter.check("ops:alice").is_err());
        tokio::time::advance(Duration::from_secs(60)).await;
        for _ in 0..5 {
            limiter.check("ops:alice").unwrap();
        }
        assert!(limiter.check("ops:alice").is_err(), "refills stop at the burst");
    }

    #[tokio::test(start_paused = true)]
    async fn thirty_a_minute_with_a_burst_of_thirty_refuses_the_thirty_first() {
        let limiter = RateLimiter::new(30, 30);
        for _ in 0..30 {
            limiter.check("k").unwrap();
        }
        assert!(limiter.check("k").is_err());
    }
}
