//! [`WindowStats`]: the figures of a window at one instant (counts, failure
//! rate, quantiles, maximum), read from the buckets in view without
//! allocating.
//!
//! Nothing here changes a window: this is the side the policies read.

use std::time::Duration;

use crate::domain::FailureKind;

use super::{
    SlidingWindow,
    overdue::CAPACITY as OVERDUE_CAPACITY,
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
    // The instant looked at: overdue probes age with it.
    pub(super) now_ms: i64,
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
        let total = self.sketch_total();
        if total == 0 {
            // Only when the distribution is saturated (module docs): the maximum
            // is an upper bound of every quantile.
            return Some(max);
        }
        let rank = nearest_rank(q, total);
        self.nth_largest(total - rank + 1, max)
    }

    /// Latencies in the distribution, in view.
    fn sketch_total(&self) -> u64 {
        self.window
            .entries
            .iter()
            .filter(|e| self.mask & (1 << entry_slot(**e)) != 0)
            .map(|&e| u64::from(entry_count(e)))
            .sum()
    }

    /// The `from_top`-th largest latency of the distribution (1 is the
    /// largest), capped at `max`; `max` past the bottom.
    fn nth_largest(&self, from_top: u64, max: Duration) -> Option<Duration> {
        if from_top == 1 && max >= EXACT_MAX_FROM {
            // The top rank is the maximum, known to the millisecond: from 64 ms
            // on, that is more precise than its bin.
            return Some(max);
        }
        let in_view = |entry: &&u32| self.mask & (1 << entry_slot(**entry)) != 0;
        let mut seen = 0u64;
        for &entry in self.window.entries.iter().rev().filter(in_view) {
            seen += u64::from(entry_count(entry));
            if seen >= from_top {
                let ms = bin_value_ms(entry_bin(entry));
                let value = Duration::try_from_secs_f64(ms / 1000.0).unwrap_or(max);
                return Some(value.min(max));
            }
        }
        Some(max)
    }

    /// The ages of the overdue probes (see [`SlidingWindow::mark_overdue`])
    /// older than `normal`, largest first, in a fixed array (unused places
    /// are `None`): each is a latency of at least that long.
    pub fn overdue_over(&self, normal: Duration) -> [Option<Duration>; OVERDUE_CAPACITY] {
        let mut ages = [None; OVERDUE_CAPACITY];
        for (place, age) in ages.iter_mut().zip(
            self.window
                .overdue
                .ages(self.now_ms)
                .filter(|&a| a > normal),
        ) {
            *place = Some(age);
        }
        // `None` sorts first: reversed, the ages come largest first.
        ages.sort_unstable_by(|a, b| b.cmp(a));
        ages
    }

    /// The overdue probes older than `normal` (see
    /// [`overdue_over`](Self::overdue_over)), largest age first (unused
    /// places `None`), each with the latency it is known to have reached:
    /// its age when last seen pending ([`SlidingWindow::mark_overdue`]).
    /// With probes checked at every tick the two are equal; with a longer
    /// check interval the second lags, and never overstates a latency.
    pub fn overdue_seen_over(
        &self,
        normal: Duration,
    ) -> [Option<(Duration, Duration)>; OVERDUE_CAPACITY] {
        let mut ages = [None; OVERDUE_CAPACITY];
        let counted = self
            .window
            .overdue
            .ages(self.now_ms)
            .zip(self.window.overdue.seen_ages(self.now_ms))
            .filter(|&(age, _)| age > normal);
        for (place, pair) in ages.iter_mut().zip(counted) {
            *place = Some(pair);
        }
        ages.sort_unstable_by(|a, b| b.cmp(a));
        ages
    }

    /// The `q`-quantile of the delivery latencies together with the overdue
    /// probes older than `normal`, each counted as a latency equal to its
    /// age: a lower bound of what the quantile will be when they arrive, so
    /// a value above a limit already breaches it. Same accuracy, clamping
    /// and `None` cases as [`latency_quantile`](Self::latency_quantile),
    /// except that overdue probes alone give a value.
    pub fn latency_quantile_overdue(&self, q: f64, normal: Duration) -> Option<Duration> {
        let overdue = self.overdue_over(normal);
        let k = overdue.iter().flatten().count() as u64;
        if k == 0 || q.is_nan() {
            return self.latency_quantile(q);
        }
        let q = q.clamp(0.0, 1.0);
        let max = self.max_latency();
        // A saturated distribution counts as its maximum alone (see above).
        let n = match (max, self.sketch_total()) {
            (None, _) => 0,
            (Some(_), 0) => 1,
            (Some(_), n) => n,
        };
        let total = n + k;
        let from_top = total - nearest_rank(q, total) + 1;
        // The p-th largest of two sorted lists: the best split of p between
        // them, j from the overdue ages and p - j from the deliveries.
        let delivered = |p: u64| -> Option<Duration> {
            match max {
                Some(m) if p <= n => self.nth_largest(p, m),
                _ => None,
            }
        };
        let mut best: Option<Duration> = None;
        for j in 0..=k.min(from_top) {
            let from_overdue = match j {
                0 => None,
                j => overdue[(j - 1) as usize],
            };
            let rest = from_top - j;
            let candidate = match (j, rest) {
                (0, rest) => delivered(rest),
                (_, 0) => from_overdue,
                (_, rest) => match (from_overdue, delivered(rest)) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    _ => None,
                },
            };
            best = best.max(candidate);
        }
        best
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
