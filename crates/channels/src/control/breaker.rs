//! The circuit breaker around chat executions: after `threshold` consecutive failures it opens for
//! `open_for` (commands that execute are answered "paused"); then one trial is let through (half
//! open), whose success closes it and whose failure opens it again. Time is tokio's.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Consecutive failures that open the breaker.
pub const FAILURES_TO_OPEN: u32 = 5;
/// How long it stays open.
pub const OPEN_FOR: Duration = Duration::from_secs(60);

/// Where the breaker is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum State {
    /// Executions run; this many failed in a row.
    Closed(u32),
    /// Executions are refused until then.
    Open(Instant),
    /// One trial execution is running.
    HalfOpen,
}

/// One integration's breaker.
#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    open_for: Duration,
    state: Mutex<State>,
}

impl Default for Breaker {
    fn default() -> Self {
        Breaker::new(FAILURES_TO_OPEN, OPEN_FOR)
    }
}

impl Breaker {
    /// A closed breaker opening after `threshold` failures in a row for `open_for`.
    pub fn new(threshold: u32, open_for: Duration) -> Self {
        Breaker {
            threshold: threshold.max(1),
            open_for,
            state: Mutex::new(State::Closed(0)),
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        *self.lock()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// May an execution start? Past the open period, the first caller gets the half-open trial.
    ///
    /// # Errors
    /// How long the breaker stays paused (a trial already running counts as the full period).
    pub fn admit(&self) -> Result<(), Duration> {
        let mut state = self.lock();
        match *state {
            State::Closed(_) => Ok(()),
            State::Open(until) => {
                let now = Instant::now();
                if now >= until {
                    *state = State::HalfOpen;
                    Ok(())
                } else {
                    Err(until - now)
                }
            }
            State::HalfOpen => Err(self.open_for),
        }
    }

    /// Record how an admitted execution ended.
    pub fn record(&self, success: bool) {
        let mut state = self.lock();
        *state = match (*state, success) {
            (_, true) => State::Closed(0),
            (State::Closed(n), false) if n + 1 < self.threshold => State::Closed(n + 1),
            (_, false) => State::Open(Instant::now() + self.open_for),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn five_failures_open_it_for_a_minute_then_one_trial_decides() {
        let b = Breaker::default();
        for _ in 0..4 {
            b.admit().unwrap();
            b.record(false);
        }
        assert_eq!(b.state(), State::Closed(4));
        b.admit().unwrap();
        b.record(false);
        assert!(matches!(b.state(), State::Open(_)));
        assert_eq!(b.admit().unwrap_err(), Duration::from_secs(60));
        tokio::time::advance(Duration::from_secs(59)).await;
        assert_eq!(b.admit().unwrap_err(), Duration::from_secs(1));
        tokio::time::advance(Duration::from_secs(1)).await;
        b.admit().unwrap();
        assert_eq!(b.state(), State::HalfOpen);
        assert!(b.admit().is_err(), "one trial at a time");
        b.record(false);
        assert!(
            matches!(b.state(), State::Open(_)),
            "a failed trial opens it again"
        );
        tokio::time::advance(Duration::from_secs(60)).await;
        b.admit().unwrap();
        b.record(true);
        assert_eq!(b.state(), State::Closed(0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_resets_the_count() {
        let b = Breaker::default();
        for _ in 0..4 {
            b.record(false);
        }
        b.record(true);
        for _ in 0..4 {
            b.record(false);
        }
        assert_eq!(b.state(), State::Closed(4));
    }
}
