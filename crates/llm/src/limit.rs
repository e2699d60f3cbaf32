//! Concurrency and rate limits: a semaphore for calls in flight, and a one-minute sliding window that
//! counts both requests and tokens.
//!
//! Tokens are charged up front from an estimate and corrected when the real usage is known, so a burst
//! of large prompts waits *before* it reaches the provider instead of earning 429s.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::settings::Limits;

const WINDOW: Duration = Duration::from_secs(60);

/// The limits of one endpoint or one model.
#[derive(Debug)]
pub(crate) struct Limiter {
    concurrency: Option<Arc<Semaphore>>,
    requests_per_minute: Option<u32>,
    tokens_per_minute: Option<u64>,
    window: Mutex<Window>,
}

#[derive(Debug, Default)]
struct Window {
    next_id: u64,
    /// Admitted calls of the last minute, oldest first (so ids ascend): (id, admitted at, tokens charged).
    entries: VecDeque<(u64, Instant, u64)>,
    /// The sum of the charged tokens of `entries`, kept so an admission check is O(1).
    used: u64,
}

impl Window {
    fn expire(&mut self, now: Instant) {
        while let Some((_, at, tokens)) = self.entries.front().copied() {
            if now.duration_since(at) < WINDOW {
                break;
            }
            self.entries.pop_front();
            self.used = self.used.saturating_sub(tokens);
        }
    }
}

/// Held for the duration of a call: releases the concurrency slot on drop. Call
/// [`Permit::settle`] with the real token count once it is known.
#[derive(Debug)]
pub(crate) struct Permit {
    limiter: Arc<Limiter>,
    id: Option<u64>,
    _slot: Option<OwnedSemaphorePermit>,
}

impl Limiter {
    pub(crate) fn new(limits: &Limits) -> Arc<Limiter> {
        Arc::new(Limiter {
            concurrency: limits.max_concurrency.map(|n| Arc::new(Semaphore::new(n.max(1)))),
            requests_per_minute: limits.requests_per_minute,
            tokens_per_minute: limits.tokens_per_minute,
            window: Mutex::new(Window::default()),
        })
    }

    /// Wait for a concurrency slot, then for room in the per-minute window for one request of
    /// `estimated_tokens`.
    ///
    /// Cancel safety: dropping the future before it resolves charges nothing and holds no slot.
    pub(crate) async fn acquire(self: &Arc<Self>, estimated_tokens: u64) -> Permit {
        let slot = match &self.concurrency {
            // The semaphore is never closed, so acquiring only fails if it were; run unlimited then.
            Some(sem) => Arc::clone(sem).acquire_owned().await.ok(),
            None => None,
        };
        let id = if self.requests_per_minute.is_none() && self.tokens_per_minute.is_none() {
            None
        } else {
            Some(self.admit(estimated_tokens).await)
        };
        Permit {
            limiter: Arc::clone(self),
            id,
            _slot: slot,
        }
    }

    async fn admit(&self, tokens: u64) -> u64 {
        loop {
            let wait = {
                let mut w = self.window.lock().unwrap_or_else(PoisonError::into_inner);
                let now = Instant::now();
                w.expire(now);
                match self.wait_needed(&w, tokens, now) {
                    None => {
                        let id = w.next_id;
                        w.next_id += 1;
                        w.entries.push_back((id, now, tokens));
                        w.used = w.used.saturating_add(tokens);
                        return id;
                    }
                    Some(wait) => wait,
                }
            };
            // The lock is released here: other callers may settle or expire entries while we sleep.
            tokio::time::sleep(wait).await;
        }
    }

    /// `None` when a call of `tokens` fits now; otherwise how long until the oldest entries that block it
    /// have left the window.
    fn wait_needed(&self, w: &Window, tokens: u64, now: Instant) -> Option<Duration> {
        if w.entries.is_empty() {
            // A single call larger than the whole budget still runs, alone, rather than never.
            return None;
        }
        let mut count = w.entries.len() as u64;
        let mut used = w.used;
        let fits = |count: u64, used: u64| {
            self.requests_per_minute.is_none_or(|rpm| count < u64::from(rpm))
                && self
                    .tokens_per_minute
                    .is_none_or(|tpm| used.saturating_add(tokens) <= tpm)
        };
        if fits(count, used) {
            return None;
        }
        for (_, at, charged) in &w.entries {
            count -= 1;
            used = used.saturating_sub(*charged);
            if fits(count, used) || count == 0 {
                return Some(
                    (*at + WINDOW)
                        .saturating_duration_since(now)
                        .max(Duration::from_millis(1)),
                );
            }
        }
        Some(WINDOW)
    }
}

impl Permit {
    /// Replace the estimate charged for this call by the real token count.
    pub(crate) fn settle(&self, actual_tokens: u64) {
        let Some(id) = self.id else { return };
        let mut w = self.limiter.window.lock().unwrap_or_else(PoisonError::into_inner);
        if let Ok(index) = w.entries.binary_search_by_key(&id, |e| e.0)
            && let Some(entry) = w.entries.get_mut(index)
        {
            let charged = std::mem::replace(&mut entry.2, actual_tokens);
            w.used = w.used.saturating_sub(charged).saturating_add(actual_tokens);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn token_window_delays_until_room_and_settles() {
        let limiter = Limiter::new(&Limits::default().with_tokens_per_minute(1_000));
        let start = Instant::now();
        let a = limiter.acquire(600).await;
        // The estimate was high: the call really used 100 tokens, so 600 more fit at once.
        a.settle(100);
        let _b = limiter.acquire(600).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
        // 700 used; another 600 must wait for the first entry to leave the window.
        let _c = limiter.acquire(600).await;
        assert_eq!(start.elapsed(), WINDOW);
    }

    #[tokio::test(start_paused = true)]
    async fn request_window_counts_calls() {
        let limiter = Limiter::new(&Limits::default().with_requests_per_minute(2));
        let start = Instant::now();
        for _ in 0..4 {
            drop(limiter.acquire(1).await);
        }
        assert_eq!(start.elapsed(), WINDOW);
    }
}
