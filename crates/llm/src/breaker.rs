//! A circuit breaker (one per model, and one per endpoint for connection failures): opens after N
//! consecutive failures, lets one probe through after a cool-down (half-open), and closes again when the
//! probe succeeds.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::settings::BreakerSettings;

/// The state of an endpoint's circuit breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BreakerState {
    /// Calls flow normally.
    Closed,
    /// Calls fail fast until the cool-down ends.
    Open,
    /// The cool-down ended: the next call is a probe that closes or re-opens the circuit.
    HalfOpen,
}

#[derive(Debug)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probe_since: Option<Instant> },
}

#[derive(Debug)]
pub(crate) struct Breaker {
    settings: BreakerSettings,
    state: Mutex<State>,
}

impl Breaker {
    pub(crate) fn new(settings: BreakerSettings) -> Breaker {
        Breaker {
            settings,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    /// Whether a call may go out now; `Err` carries the time until the next probe.
    pub(crate) fn check(&self) -> Result<(), Duration> {
        if self.settings.failure_threshold == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match *state {
            State::Closed { .. } => Ok(()),
            State::Open { until } if now < until => Err(until - now),
            State::Open { .. } => {
                *state = State::HalfOpen {
                    probe_since: Some(now),
                };
                Ok(())
            }
            // A probe whose caller vanished (its future dropped) must not wedge the breaker: after a
            // cool-down without an answer, let another probe through.
            State::HalfOpen {
                probe_since: Some(since),
            } if now < since + self.settings.cooldown => Err(since + self.settings.cooldown - now),
            State::HalfOpen { .. } => {
                *state = State::HalfOpen {
                    probe_since: Some(now),
                };
                Ok(())
            }
        }
    }

    /// The endpoint answered sensibly (a success, or a client error that says nothing about its health).
    pub(crate) fn record_success(&self) {
        *self.state.lock().unwrap_or_else(PoisonError::into_inner) = State::Closed { failures: 0 };
    }

    /// The endpoint failed (connection, timeout, 5xx, malformed reply).
    pub(crate) fn record_failure(&self) {
        if self.settings.failure_threshold == 0 {
            return;
        }
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        *state = match *state {
            State::Closed { failures } if failures + 1 < self.settings.failure_threshold => State::Closed {
                failures: failures + 1,
            },
            State::Open { until } => State::Open { until },
            _ => {
                tracing::warn!(cooldown = ?self.settings.cooldown, "Circuit opened after repeated failures.");
                State::Open {
                    until: now + self.settings.cooldown,
                }
            }
        };
    }

    /// Closed with no failures counted: forgetting this breaker loses nothing.
    pub(crate) fn is_idle(&self) -> bool {
        matches!(
            *self.state.lock().unwrap_or_else(PoisonError::into_inner),
            State::Closed { failures: 0 }
        )
    }

    pub(crate) fn state(&self) -> BreakerState {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match *state {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { until } if Instant::now() < until => BreakerState::Open,
            State::Open { .. } | State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn opens_half_opens_and_closes() {
        let b = Breaker::new(BreakerSettings {
            failure_threshold: 2,
            cooldown: Duration::from_secs(10),
        });
        b.record_failure();
        assert_eq!(b.state(), BreakerState::Closed);
        b.record_failure();
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.check(), Err(Duration::from_secs(10)));
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert_eq!(b.check(), Ok(()));
        // Only one probe at a time.
        assert!(b.check().is_err());
        b.record_failure();
        assert_eq!(b.state(), BreakerState::Open);
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(b.check(), Ok(()));
        b.record_success();
        assert_eq!(b.state(), BreakerState::Closed);
    }
}
