//! Where the time of a short command goes: each phase's duration, logged at debug level under the
//! target `rvbbit::timings` (`RVBBIT_LOG=rvbbit::timings=debug rvbbit run x.yaml`, or `-vv`).

use std::time::Instant;

/// A stopwatch over a command's phases.
#[derive(Debug)]
pub(crate) struct Phases {
    what: &'static str,
    started: Instant,
    last: Instant,
}

impl Phases {
    /// Start timing `what` (such as `run`).
    pub(crate) fn start(what: &'static str) -> Self {
        let now = Instant::now();
        Phases {
            what,
            started: now,
            last: now,
        }
    }

    /// Log that `phase` ended now: its own time and the time since the start.
    pub(crate) fn done(&mut self, phase: &'static str) {
        let now = Instant::now();
        tracing::debug!(
            target: "rvbbit::timings",
            command = self.what,
            phase,
            ms = format!("{:.2}", (now - self.last).as_secs_f64() * 1000.0),
            total_ms = format!("{:.2}", (now - self.started).as_secs_f64() * 1000.0),
            "Phase done"
        );
        self.last = now;
    }
}
