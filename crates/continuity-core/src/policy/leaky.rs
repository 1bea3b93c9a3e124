//! The leaky-counter policy: its [`LeakyThreshold`] and the
//! [`LeakyCounterPolicy`], the one policy fed by every observation rather
//! than read from the window.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Reading, ThresholdPolicy, Verdict, field, next_multiple};
use crate::{
    domain::Outcome,
    duration::serde_duration,
    error::{Error, Result},
    machine::Health,
    window::SlidingWindow,
};
fn default_leaky_period() -> Duration {
    LeakyThreshold::DEFAULT_PERIOD
}
/// Configuration of a [`LeakyCounterPolicy`].
///
/// `{"period": "2m", "threshold": 5, "acceptable_latency": "10m"}`; `period`
/// defaults to 2 minutes, `cap` to twice the threshold.
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
    /// The counter never goes above this (default: twice `threshold`; at
    /// least `threshold`). After the flow recovers the condition clears
    /// within `cap + clear_after - 1` periods; a higher cap keeps a
    /// condition raised through longer runs of healthy periods while
    /// deliveries still fail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cap: Option<u32>,
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
            cap: None,
        }
    }

    /// The cap in force: [`cap`](Self::cap), or twice the threshold.
    pub fn effective_cap(&self) -> u32 {
        let threshold = self.threshold.max(1);
        self.cap
            .unwrap_or_else(|| threshold.saturating_mul(2))
            .max(threshold)
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
        if let Some(cap) = self.cap
            && cap < self.threshold
        {
            return Err(Error::config(
                field(field_prefix, "cap"),
                format!(
                    "must be at least the threshold ({}), or the counter never reaches it",
                    self.threshold
                ),
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

/// What the last period closed by an evaluation saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LastPeriod {
    /// No period closed since the evaluation before.
    NoneClosed,
    /// No traffic: not evidence of health.
    Quiet,
    /// Deliveries, none failed or slow.
    Healthy,
    /// A failure or a slow delivery.
    Failed,
}

/// The leaky counter gateway products use.
///
/// Time is cut into periods of `period`, aligned to multiples of `period`
/// since the Unix epoch. A period *failed* when it saw a failure or a delivery
/// slower than `acceptable_latency`; a delivery that failed on one route but
/// succeeded over a fail-over route is reported as delivered (see
/// [`Outcome::from_route_attempts`]) and is not a failure. When a period
/// closes, the counter goes up by one if it failed (never above the cap,
/// [`LeakyThreshold::effective_cap`]) and down by one (never below 0) if it
/// was healthy or had no traffic.
///
/// The condition is breached from the period the counter reaches
/// `threshold` (a threshold of 0 behaves as 1) until the period it is back
/// to 0: while deliveries keep failing the counter stays near its cap and
/// does not drain, and after the flow recovers it drains in at most `cap`
/// periods.
///
/// Hysteresis counts this policy's periods, not ticks
/// ([`ThresholdPolicy::counts_ticks`] is `false`): each closed period is one
/// evaluation for `raise_after` and `clear_after`. A closed period is
/// healthy evidence only if it saw deliveries and none failed; a quiet
/// period, or a failed one while the counter is below the threshold, is
/// [`Health::Unknown`], so the condition never clears while its periods
/// still fail. (Ticks further apart than a period close several periods at
/// once; those count as one evaluation, judged by the last of them.) With the defaults (threshold 5, cap 10, period 2 min,
/// `clear_after` 3) it resolves at most 12 periods, 24 minutes, after every
/// period is healthy again.
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
    cap: u32,
    counter: u32,
    // Breached: the counter reached the threshold and has not drained to 0.
    latched: bool,
    // The oldest period not closed yet; `None` before the first call.
    open: Option<i64>,
    // Bit i: period `open + i` failed.
    failed: u64,
    // Bit i: period `open + i` saw an observation.
    seen: u64,
    // The last period closed since the previous evaluation, if any.
    closed: LastPeriod,
    // What the latest evaluation closed, for `health`.
    evaluated: LastPeriod,
}

impl LeakyCounterPolicy {
    /// A policy for `threshold`. A period below 1 ms is treated as 1 ms.
    pub fn new(threshold: LeakyThreshold) -> Self {
        let period_ms = i64::try_from(threshold.period.as_millis())
            .unwrap_or(i64::MAX)
            .max(1);
        LeakyCounterPolicy {
            cap: threshold.effective_cap(),
            threshold,
            period_ms,
            counter: 0,
            latched: false,
            open: None,
            failed: 0,
            seen: 0,
            closed: LastPeriod::NoneClosed,
            evaluated: LastPeriod::NoneClosed,
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

    /// Moves the latch after a period closed with the counter at its new value.
    fn relatch(&mut self) {
        self.latched = if self.latched {
            self.counter > 0
        } else {
            self.counter >= self.threshold.threshold.max(1)
        };
    }

    /// Closes the `count` oldest open periods, starting at `open`.
    fn close(&mut self, open: i64, count: i64) {
        if count <= 0 {
            return;
        }
        let tracked = u32::try_from(count.clamp(0, TRACKED_PERIODS)).unwrap_or(u64::BITS);
        // Only the periods up to the last failed one need a look each; every
        // period after it was healthy or quiet, so a long gap costs nothing.
        let up_to_last_failure = (u64::BITS - self.failed.leading_zeros()).min(tracked);
        for i in 0..up_to_last_failure {
            self.counter = if self.failed & (1 << i) != 0 {
                self.counter.saturating_add(1).min(self.cap)
            } else {
                self.counter.saturating_sub(1)
            };
            self.relatch();
        }
        let healthy = count.saturating_sub(i64::from(up_to_last_failure));
        self.counter = self
            .counter
            .saturating_sub(u32::try_from(healthy).unwrap_or(u32::MAX));
        if healthy > 0 {
            self.relatch();
        }
        self.closed = match count.checked_sub(1).filter(|&last| last < TRACKED_PERIODS) {
            Some(last) if self.failed & (1 << last) != 0 => LastPeriod::Failed,
            Some(last) if self.seen & (1 << last) != 0 => LastPeriod::Healthy,
            _ => LastPeriod::Quiet,
        };
        self.failed = self.failed.checked_shr(tracked).unwrap_or(0);
        self.seen = self.seen.checked_shr(tracked).unwrap_or(0);
        self.open = Some(open.saturating_add(count));
    }
}

impl ThresholdPolicy for LeakyCounterPolicy {
    fn condition(&self) -> &str {
        "leaky"
    }

    fn records(&self) -> bool {
        true
    }

    fn record(&mut self, at: DateTime<Utc>, outcome: &Outcome) {
        let period = self.period_of(at);
        let open = *self.open.get_or_insert(period);
        let failed = match outcome {
            Outcome::Failed { .. } => true,
            Outcome::Delivered { latency } => *latency > self.threshold.acceptable_latency,
        };
        let mut offset = period.saturating_sub(open);
        if offset >= TRACKED_PERIODS {
            self.close(open, offset - (TRACKED_PERIODS - 1));
            offset = TRACKED_PERIODS - 1;
        }
        // A late observation (offset < 0) counts in the oldest open period.
        let bit = 1 << offset.clamp(0, TRACKED_PERIODS - 1);
        self.seen |= bit;
        if failed {
            self.failed |= bit;
        }
    }

    fn evaluate(&mut self, window: &SlidingWindow, now: DateTime<Utc>) -> Verdict {
        let _ = window;
        let current = self.period_of(now);
        match self.open {
            None => self.open = Some(current),
            Some(open) if current > open => self.close(open, current.saturating_sub(open)),
            Some(_) => {}
        }
        self.evaluated = std::mem::replace(&mut self.closed, LastPeriod::NoneClosed);
        let t = &self.threshold;
        Verdict {
            breached: self.latched,
            reading: Reading::Leaky {
                counter: self.counter,
                threshold: t.threshold,
                period: t.period,
            },
        }
    }

    fn health(&self, verdict: &Verdict, watched_in_full: bool) -> Health {
        let _ = watched_in_full;
        match self.evaluated {
            LastPeriod::NoneClosed => Health::Unknown,
            _ if verdict.breached => Health::Breached,
            LastPeriod::Healthy => Health::Healthy,
            LastPeriod::Quiet | LastPeriod::Failed => Health::Unknown,
        }
    }

    fn counts_ticks(&self) -> bool {
        false
    }

    /// The counter moves only when a period closes.
    fn valid_until(
        &self,
        verdict: &Verdict,
        window: &SlidingWindow,
        now: DateTime<Utc>,
    ) -> DateTime<Utc> {
        let _ = (verdict, window);
        next_multiple(now, self.threshold.period)
    }
}
