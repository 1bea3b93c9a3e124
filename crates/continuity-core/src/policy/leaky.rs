//! The leaky-counter policy: its [`LeakyThreshold`] and the
//! [`LeakyCounterPolicy`], the one policy fed by every observation rather
//! than read from the window.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Reading, ThresholdPolicy, Verdict, field};
use crate::{
    domain::Outcome,
    duration::serde_duration,
    error::{Error, Result},
    window::SlidingWindow,
};
fn default_leaky_period() -> Duration {
    LeakyThreshold::DEFAULT_PERIOD
}
/// Configuration of a [`LeakyCounterPolicy`].
///
/// `{"period": "2m", "threshold": 5, "acceptable_latency": "10m"}`; `period`
/// defaults to 2 minutes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeakyThreshold {
    /// Length of one evaluation period (default 2 min, at least 1 s).
    #[serde(default = "default_leaky_period", with = "serde_duration")]
    pub period: Duration,
    /// The condition is breached when the counter reaches this.
    pub threshold: u32,
    /// A delivery slower than this makes its period a failed one.
    #[serde(with = "serde_duration")]
    pub acceptable_latency: Duration,
}

impl LeakyThreshold {
    /// Default of [`LeakyThreshold::period`].
    pub const DEFAULT_PERIOD: Duration = Duration::from_secs(120);

    /// A threshold with the default period.
    pub fn new(threshold: u32, acceptable_latency: Duration) -> Self {
        LeakyThreshold {
            period: Self::DEFAULT_PERIOD,
            threshold,
            acceptable_latency,
        }
    }

    /// Checks the values; errors name the field under `field_prefix`
    /// (e.g. `inbound.leaky.period`).
    pub fn validate(&self, field_prefix: &str) -> Result<()> {
        if self.period < Duration::from_secs(1) {
            return Err(Error::config(
                field(field_prefix, "period"),
                "must be at least 1 s",
            ));
        }
        if self.threshold == 0 {
            return Err(Error::config(
                field(field_prefix, "threshold"),
                "must be at least 1",
            ));
        }
        if self.acceptable_latency.is_zero() {
            return Err(Error::config(
                field(field_prefix, "acceptable_latency"),
                "must be greater than 0",
            ));
        }
        Ok(())
    }
}
/// Periods whose failures are tracked ahead of the oldest open period.
const TRACKED_PERIODS: i64 = u64::BITS as i64;

/// The leaky counter gateway products use.
///
/// Time is cut into periods of `period`, aligned to multiples of `period`
/// since the Unix epoch. A period *failed* when it saw a failure or a delivery
/// slower than `acceptable_latency`; a delivery that failed on one route but
/// succeeded over a fail-over route is reported as delivered (see
/// [`Outcome::from_route_attempts`]) and is not a failure. When a period
/// closes, the counter goes up by one if it failed and down by one (never
/// below 0) if it was healthy or had no traffic. The condition is breached
/// while the counter is at least `threshold` (a threshold of 0 behaves as 1).
///
/// - The counter is fed by [`ThresholdPolicy::record`], not by the window.
/// - [`ThresholdPolicy::evaluate`] at `now` closes every period that ended at
///   or before `now` and was not closed yet; a long gap between evaluations
///   costs no more than a short one (the quiet periods are subtracted at once).
/// - An observation for a period that is already closed counts in the oldest
///   period still open.
/// - Failures are tracked for the 64 periods from the oldest open one; an
///   observation further ahead first closes the oldest periods as an
///   evaluation would, so that it fits.
/// - The first call (`record` or `evaluate`) starts the counter at 0 in the
///   period of its timestamp; earlier periods are unknown, not healthy.
#[derive(Clone, Debug)]
pub struct LeakyCounterPolicy {
    threshold: LeakyThreshold,
    period_ms: i64,
    counter: u32,
    // The oldest period not closed yet; `None` before the first call.
    open: Option<i64>,
    // Bit i: period `open + i` failed.
    failed: u64,
}

impl LeakyCounterPolicy {
    /// A policy for `threshold`. A period below 1 ms is treated as 1 ms.
    pub fn new(threshold: LeakyThreshold) -> Self {
        let period_ms = i64::try_from(threshold.period.as_millis())
            .unwrap_or(i64::MAX)
            .max(1);
        LeakyCounterPolicy {
            threshold,
            period_ms,
            counter: 0,
            open: None,
            failed: 0,
        }
    }

    /// The threshold it applies.
    pub fn threshold(&self) -> &LeakyThreshold {
        &self.threshold
    }

    /// The counter's current value (as of the last evaluation).
    pub fn counter(&self) -> u32 {
        self.counter
    }

    fn period_of(&self, at: DateTime<Utc>) -> i64 {
        at.timestamp_millis().div_euclid(self.period_ms)
    }

    /// Closes the `count` oldest open periods, starting at `open`.
    fn close(&mut self, open: i64, count: i64) {
        let tracked = u32::try_from(count.clamp(0, TRACKED_PERIODS)).unwrap_or(u64::BITS);
        // Only the periods up to the last failed one need a look each; every
        // period after it was healthy or quiet, so a long gap costs nothing.
        let up_to_last_failure = (u64::BITS - self.failed.leading_zeros()).min(tracked);
        for i in 0..up_to_last_failure {
            self.counter = if self.failed & (1 << i) != 0 {
                self.counter.saturating_add(1)
            } else {
                self.counter.saturating_sub(1)
            };
        }
        let healthy = count.saturating_sub(i64::from(up_to_last_failure));
        self.counter = self
            .counter
            .saturating_sub(u32::try_from(healthy).unwrap_or(u32::MAX));
        self.failed = self.failed.checked_shr(tracked).unwrap_or(0);
        self.open = Some(open.saturating_add(count));
    }
}

impl ThresholdPolicy for LeakyCounterPolicy {
    fn condition(&self) -> &str {
        "leaky"
    }

    fn record(&mut self, at: DateTime<Utc>, outcome: &Outcome) {
        let period = self.period_of(at);
        let open = *self.open.get_or_insert(period);
        let failed = match outcome {
            Outcome::Failed { .. } => true,
            Outcome::Delivered { latency } => *latency > self.threshold.acceptable_latency,
        };
        if !failed {
            return;
        }
        let mut offset = period.saturating_sub(open);
        if offset >= TRACKED_PERIODS {
            self.close(open, offset - (TRACKED_PERIODS - 1));
            offset = TRACKED_PERIODS - 1;
        }
        // A late observation (offset < 0) counts in the oldest open period.
        let bit = offset.clamp(0, TRACKED_PERIODS - 1);
        self.failed |= 1 << bit;
    }

    fn evaluate(&mut self, window: &SlidingWindow, now: DateTime<Utc>) -> Verdict {
        let _ = window;
        let current = self.period_of(now);
        match self.open {
            None => self.open = Some(current),
            Some(open) if current > open => self.close(open, current.saturating_sub(open)),
            Some(_) => {}
        }
        let t = &self.threshold;
        Verdict {
            breached: self.counter >= t.threshold.max(1),
            reading: Reading::Leaky {
                counter: self.counter,
                threshold: t.threshold,
                period: t.period,
            },
        }
    }
}
