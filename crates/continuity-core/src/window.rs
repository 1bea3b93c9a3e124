//! Sliding, time-bucketed windows of observations per (tenant, direction).
//!
//! CONTRACT (implemented by the window helper; see the issue):
//! - time-bucketed ring of `buckets` slots over `length`, O(1) `record`;
//! - count, failures and a latency distribution whose quantiles have at most
//!   2% relative error; exact maximum;
//! - out-of-order observations inside the window count; older ones are
//!   dropped and counted in `dropped()`, never a panic;
//! - the whole window stays under 1 KiB (inline + heap), see `memory_bytes`.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::{domain::Outcome, error::Result};

/// Whether [`SlidingWindow::record`] took an observation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recorded {
    /// The observation counts.
    Counted,
    /// The observation is older than the window and was dropped (and counted in
    /// [`SlidingWindow::dropped`]).
    TooOld,
}

/// A sliding window of observations.
#[derive(Clone, Debug)]
pub struct SlidingWindow {
    length: Duration,
}

impl SlidingWindow {
    /// Default number of time buckets.
    pub const DEFAULT_BUCKETS: u8 = 12;

    /// A window over `length`, split into `buckets` time buckets.
    pub fn new(length: Duration, buckets: u8) -> Result<Self> {
        let _ = buckets;
        Ok(SlidingWindow { length })
    }

    /// The window's length.
    pub fn length(&self) -> Duration {
        self.length
    }

    /// Records one outcome that happened at `at`.
    pub fn record(&mut self, at: DateTime<Utc>, outcome: &Outcome) -> Recorded {
        let _ = (at, outcome);
        unimplemented!()
    }

    /// Statistics over `(now - length, now]`.
    pub fn stats(&self, now: DateTime<Utc>) -> WindowStats<'_> {
        let _ = now;
        unimplemented!()
    }

    /// How many observations were dropped because they were older than the window.
    pub fn dropped(&self) -> u64 {
        unimplemented!()
    }

    /// Bytes used by this window, inline and on the heap.
    pub fn memory_bytes(&self) -> usize {
        unimplemented!()
    }
}

/// Statistics of a window at one instant (borrowed view, no allocation).
#[derive(Clone, Copy, Debug)]
pub struct WindowStats<'a> {
    window: &'a SlidingWindow,
}

impl WindowStats<'_> {
    /// Deliveries plus failures.
    pub fn samples(&self) -> u64 {
        unimplemented!()
    }
    /// Deliveries (outcomes with a latency).
    pub fn deliveries(&self) -> u64 {
        unimplemented!()
    }
    /// Failures.
    pub fn failures(&self) -> u64 {
        unimplemented!()
    }
    /// Failures / samples, `None` without samples.
    pub fn failure_rate(&self) -> Option<f64> {
        unimplemented!()
    }
    /// The `q`-quantile (0.0..=1.0, nearest rank) of delivery latencies, within
    /// 2% relative error; `None` without deliveries.
    pub fn latency_quantile(&self, q: f64) -> Option<Duration> {
        let _ = (q, self.window);
        unimplemented!()
    }
    /// The largest delivery latency (millisecond resolution); `None` without deliveries.
    pub fn max_latency(&self) -> Option<Duration> {
        unimplemented!()
    }
}
