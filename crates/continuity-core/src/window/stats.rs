//! [`WindowStats`]: the figures of a window at one instant (counts, failure
//! rate, quantiles, maximum), read from the buckets in view without
//! allocating.
//!
//! Nothing here changes a window: this is the side the policies read.

use std::time::Duration;

use crate::domain::FailureKind;

use super::{
    SlidingWindow,
    ring::SlotStats,
    sketch::{bin_value_ms, entry_bin, entry_count, entry_slot},
};
/// Where rounding the maximum up to the millisecond (at most 1 ms over) stays
/// below the bins' relative error (1 ms / 63 ms < 1.6 %).
const EXACT_MAX_FROM: Duration = Duration::from_millis(64);

/// `ceil(q · n)` clamped to `1..=n`, for `q` in [0, 1].
///
/// The product is shrunk by one part in 10¹² first: `q` is usually a decimal
/// such as 0.07 whose `f64` is a hair off, and `0.07 * 100.0` is
/// `7.000000000000001`, whose ceiling would pick the 8th sample instead of the 7th.
pub(super) fn nearest_rank(q: f64, n: u64) -> u64 {
    let exact = q * n as f64;
    // `as` saturates; the clamp keeps the rank in 1..=n.
    ((exact - exact * 1e-12).ceil() as u64).clamp(1, n)
}

/// Statistics of a window at one instant (borrowed view, no allocation).
#[derive(Clone, Copy, Debug)]
pub struct WindowStats<'a> {
    pub(super) window: &'a SlidingWindow,
    // Slots in the view, one bit each.
    pub(super) mask: u16,
}

impl WindowStats<'_> {
    fn sum(&self, field: impl Fn(&SlotStats) -> u32) -> u64 {
        // Branch-free over all slots: this runs several times per evaluation
        // of every tenant.
        let mut total = 0u64;
        for (s, v) in self.window.slots.iter().enumerate() {
            total += u64::from(field(v)) * u64::from((self.mask >> s) & 1);
        }
        total
    }

    /// Deliveries plus failures.
    pub fn samples(&self) -> u64 {
        self.deliveries().saturating_add(self.failures())
    }
    /// Deliveries (outcomes with a latency).
    pub fn deliveries(&self) -> u64 {
        self.sum(|s| s.deliveries)
    }
    /// Failures.
    pub fn failures(&self) -> u64 {
        self.sum(|s| s.failures)
    }
    /// Failures by kind, indexed by [`FailureKind::index`]; each saturates
    /// at 65,535 per bucket (the module docs).
    pub fn failures_by_kind(&self) -> [u64; FailureKind::ALL.len()] {
        let mut total = [0u64; FailureKind::ALL.len()];
        for (s, kinds) in self.window.kinds.iter().enumerate() {
            if (self.mask >> s) & 1 == 1 {
                for (t, n) in total.iter_mut().zip(kinds) {
                    *t += u64::from(*n);
                }
            }
        }
        total
    }
    /// Failures / samples, `None` without samples.
    pub fn failure_rate(&self) -> Option<f64> {
        let samples = self.samples();
        (samples > 0).then(|| self.failures() as f64 / samples as f64)
    }
    /// The `q`-quantile (0.0..=1.0, nearest rank) of delivery latencies, within
    /// 2% relative error; `None` without deliveries.
    ///
    /// `q` below 0 counts as 0 (the minimum), above 1 as 1 (the maximum); a NaN
    /// `q` gives `None`. Latencies below 1 ms are reported as 1 ms (or the
    /// maximum, if smaller). See the module docs for the bounds.
    pub fn latency_quantile(&self, q: f64) -> Option<Duration> {
        if q.is_nan() {
            return None;
        }
        let q = q.clamp(0.0, 1.0);
        let max = self.max_latency()?;
        let in_view = |entry: &&u32| self.mask & (1 << entry_slot(**entry)) != 0;
        let entries = &self.window.entries;
        let total: u64 = entries
            .iter()
            .filter(in_view)
            .map(|&e| u64::from(entry_count(e)))
            .sum();
        if total == 0 {
            // Only when the distribution is saturated (module docs): the maximum
            // is an upper bound of every quantile.
            return Some(max);
        }
        let rank = nearest_rank(q, total);
        let from_top = total - rank + 1;
        if from_top == 1 && max >= EXACT_MAX_FROM {
            // The top rank is the maximum, known to the millisecond: from 64 ms
            // on, that is more precise than its bin.
            return Some(max);
        }
        let mut seen = 0u64;
        for &entry in entries.iter().rev().filter(in_view) {
            seen += u64::from(entry_count(entry));
            if seen >= from_top {
                let ms = bin_value_ms(entry_bin(entry));
                let value = Duration::try_from_secs_f64(ms / 1000.0).unwrap_or(max);
                return Some(value.min(max));
            }
        }
        Some(max)
    }
    /// The largest delivery latency (millisecond resolution, rounded up);
    /// `None` without deliveries.
    pub fn max_latency(&self) -> Option<Duration> {
        if self.deliveries() == 0 {
            return None;
        }
        let mut ms = 0u32;
        for (s, v) in self.window.slots.iter().enumerate() {
            ms = ms.max(v.max_ms * u32::from((self.mask >> s) & 1));
        }
        Some(Duration::from_millis(u64::from(ms)))
    }
}
