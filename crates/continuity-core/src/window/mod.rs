//! Sliding, time-bucketed windows of observations per (tenant, direction).
//!
//! A [`SlidingWindow`] splits its `length` into `buckets` time buckets (1 to
//! 16, default 12) of `length / buckets` each, rounded down to the
//! millisecond and at least one second. Bucket `e` holds the observations
//! whose timestamp `t` (milliseconds since the Unix epoch) satisfies
//! `floor(t / width) == e`. The window keeps the newest `buckets` buckets in a
//! ring; [`SlidingWindow::stats`] looks at the buckets in
//! `(now_bucket - buckets, now_bucket]`, so the window slides one bucket at a
//! time and covers `buckets × width` (which equals `length` when it divides
//! evenly).
//!
//! # Observations
//!
//! - [`SlidingWindow::record`] is O(1) amortised and does not allocate once the
//!   latency sketch has grown to its working size.
//! - A timestamp in a bucket newer than any seen advances the ring; the buckets
//!   it skips are emptied on the way. Far-future timestamps simply advance.
//! - An out-of-order timestamp still inside the ring (its bucket is one of the
//!   newest `buckets`) counts normally.
//! - An older timestamp is dropped: `record` returns [`Recorded::TooOld`] and
//!   [`SlidingWindow::dropped`] counts it.
//!
//! Per bucket the window keeps exact counts of deliveries and failures
//! (`u32`, saturating at about 4.29 billion per bucket), failures by
//! [`FailureKind`] (`u16`, saturating at 65,535 per bucket and kind; alerts
//! quote them), and the exact
//! maximum latency, rounded *up* to the millisecond so that
//! `max > limit` agrees with the unrounded latency for any limit in whole
//! milliseconds.
//!
//! # Latency distribution and accuracy
//!
//! Latencies go into logarithmic bins in the style of DDSketch with relative
//! accuracy `α = 0.019`: bin `k ≥ 1` holds latencies of roughly
//! `[γ^(k-1), γ^k)` milliseconds with `γ = (1 + α) / (1 - α)`, and is reported
//! as `γ^(k-1) · (1 + α)`, which is within `α` of every latency in the bin.
//! The bin index comes from a logarithm computed from the integer's bits with a
//! 33-entry table and linear interpolation; its error (below 0.004 of a bin)
//! widens a bin so little that the reported value stays within **1.92 %**
//! of every latency in it. A quantile is the nearest-rank sample
//! (`rank = ceil(q · n)` with `q` read as the decimal it was written as,
//! clamped to `1..=n`), reported as its bin's value capped at the maximum, so
//! it is within 2 % of the exact nearest-rank latency of the same samples. The
//! top rank reports the maximum itself once that is at least 64 ms (from
//! there, rounding up to the millisecond is finer than a bin).
//!
//! Limits of that guarantee:
//! - latencies below 1 ms share a zero bin, reported as 1 ms (or the maximum
//!   if that is smaller): "at most 1 ms";
//! - latencies of 2³² ms (about 49.7 days) or more are treated as 2³² − 1 ms;
//! - the collapse rule below, which only ever coarsens low quantiles.
//!
//! # Memory bound and collapse rule
//!
//! The distribution is one sorted vector shared by all buckets, of packed
//! `u32` entries: bin (12 bits) | bucket slot (4 bits) | count (16 bits).
//! Sorting by the packed value sorts by bin, then slot, so a quantile is a scan
//! from the top that skips slots outside the view, without allocation. A count
//! that would pass 65,535 starts another entry for the same bin and slot, so
//! nothing is lost to overflow.
//!
//! The vector holds at most [`SlidingWindow::MAX_SKETCH_ENTRIES`] (104) entries
//! (eight or nine distinct bins per bucket before the collapse rule starts;
//! sized so that a direction's window and learned baseline stay within 2 KiB).
//! The struct itself is a little over 500 bytes, so a window never uses more
//! than [`SlidingWindow::MAX_MEMORY_BYTES`] (1 KiB) inline and on the heap,
//! whatever it is fed (checked at compile time). Entries of a bucket that
//! leaves the ring are removed when the ring advances, so a full vector only
//! holds live buckets. When a new (bin, slot) pair arrives at a full vector,
//! the window scans from the lowest bins up for the first entry that can
//! absorb a **lower** entry of the same slot (whose count fits), merges the two
//! and raises that slot's floor to the absorbing entry's bin: later latencies
//! of that bucket below the floor count in the floor bin. Unless counts are
//! close to 65,535, this merges the lowest entry of some bucket into its next
//! entry. A sample therefore only ever moves up, and never above its bucket's
//! floor, so a quantile whose nearest-rank latency lies in a bin at or above
//! the floors of the viewed buckets keeps the 2 % bound: the counts above that
//! bin do not change. The floors climb from the bottom, so this holds for the
//! upper quantiles that thresholds use (p95, p99, the maximum) in any
//! realistic stream; lower quantiles can only be over-estimated. A vector full
//! of entries that cannot merge (more than about five million deliveries
//! inside the window) keeps counting deliveries, failures and the maximum
//! exactly, but leaves further latencies out of the
//! distribution; quantiles are then computed over the latencies it holds.
mod overdue;
mod ring;
mod sketch;
mod stats;
#[cfg(test)]
mod tests;
use std::{mem::size_of, time::Duration};

use chrono::{DateTime, Utc};

use crate::{
    domain::{FailureKind, Outcome},
    error::{Error, Result},
};

/// Most overdue probes a window keeps.
pub(crate) use overdue::CAPACITY as OVERDUE_CAPACITY;
use ring::SlotStats;
pub use stats::WindowStats;
/// Whether [`SlidingWindow::record`] took an observation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recorded {
    /// The observation counts.
    Counted,
    /// The observation is older than the window and was dropped (and counted in
    /// [`SlidingWindow::dropped`]).
    TooOld,
    /// Not recorded here: in a [cluster](crate::monitor::MonitorBuilder::cluster),
    /// another instance owns the tenant. The observation goes to that
    /// instance through the store at this instance's next tick and counts
    /// there (see [`Monitor::observe`](crate::Monitor::observe)).
    Forwarded,
}
const SLOTS: usize = SlidingWindow::MAX_BUCKETS as usize;
const KINDS: usize = FailureKind::ALL.len();
// The bound the module promises, for every window whatever it was fed.
const _: () = assert!(
    size_of::<SlidingWindow>() + SlidingWindow::MAX_SKETCH_ENTRIES * size_of::<u32>()
        <= SlidingWindow::MAX_MEMORY_BYTES
);
///
/// See the [module documentation](self) for the bucketing, accuracy and memory
/// bounds.
#[derive(Clone, Debug)]
pub struct SlidingWindow {
    length: Duration,
    width_ms: i64,
    newest_epoch: i64,
    // The newest bucket's [start, end) in milliseconds: in-order observations
    // land there and find their slot without a division.
    newest_start: i64,
    newest_end: i64,
    dropped: u64,
    // Packed `bin | slot | count` entries, sorted; see the module docs.
    entries: Vec<u32>,
    // One record per slot, not one array per figure: recording touches a
    // single cache line (with 100,000 tenants every line is a memory trip).
    slots: [SlotStats; SLOTS],
    overdue: overdue::Overdue,
    // Failures per kind per slot, apart from `slots`: only a failure or an
    // alert's breakdown reads them, so deliveries never touch their lines.
    kinds: [[u16; KINDS]; SLOTS],

    buckets: u8,
    newest_slot: u8,
    started: bool,
}

impl SlidingWindow {
    /// Default number of time buckets.
    pub const DEFAULT_BUCKETS: u8 = 12;
    /// Largest number of time buckets.
    pub const MAX_BUCKETS: u8 = 16;
    /// Longest window accepted.
    pub const MAX_LENGTH: Duration = Duration::from_secs(7 * 86_400);
    /// Shortest bucket accepted (`length / buckets`).
    pub const MIN_BUCKET_WIDTH: Duration = Duration::from_secs(1);
    /// Most entries the latency distribution holds (see the module docs).
    pub const MAX_SKETCH_ENTRIES: usize = 104;
    /// Upper bound of [`SlidingWindow::memory_bytes`], whatever the input.
    pub const MAX_MEMORY_BYTES: usize = 1024;

    /// A window over `length`, split into `buckets` time buckets.
    ///
    /// `length` must be greater than zero and at most [`Self::MAX_LENGTH`];
    /// `buckets` must be between 1 and [`Self::MAX_BUCKETS`]; each bucket must
    /// be at least [`Self::MIN_BUCKET_WIDTH`] wide. Does not allocate.
    pub fn new(length: Duration, buckets: u8) -> Result<Self> {
        if length.is_zero() {
            return Err(Error::config("window.length", "must be greater than 0"));
        }
        if length > Self::MAX_LENGTH {
            return Err(Error::config(
                "window.length",
                format!(
                    "{} is longer than the maximum of 7 days",
                    crate::duration::human(length)
                ),
            ));
        }
        if buckets == 0 || buckets > Self::MAX_BUCKETS {
            return Err(Error::config(
                "window.buckets",
                format!("must be between 1 and {}, got {buckets}", Self::MAX_BUCKETS),
            ));
        }
        // At most 7 days in milliseconds: fits an i64 with room to spare.
        let length_ms = i64::try_from(length.as_millis()).unwrap_or(i64::MAX);
        let width_ms = length_ms / i64::from(buckets);
        if width_ms < 1000 {
            return Err(Error::config(
                "window.buckets",
                format!(
                    "{buckets} buckets over {} are shorter than 1 s each",
                    crate::duration::human(length)
                ),
            ));
        }
        Ok(SlidingWindow {
            length,
            width_ms,
            newest_epoch: 0,
            // An empty range: the first observation takes the slow path.
            newest_start: i64::MAX,
            newest_end: i64::MIN,
            dropped: 0,
            entries: Vec::new(),
            slots: [SlotStats::default(); SLOTS],
            overdue: overdue::Overdue::default(),
            kinds: [[0; KINDS]; SLOTS],
            buckets,
            newest_slot: 0,
            started: false,
        })
    }

    /// The window's length.
    pub fn length(&self) -> Duration {
        self.length
    }

    /// The number of time buckets.
    pub fn buckets(&self) -> u8 {
        self.buckets
    }

    /// The width of one bucket (`length / buckets`, rounded down to the millisecond).
    pub fn bucket_width(&self) -> Duration {
        Duration::from_millis(self.width_ms.unsigned_abs())
    }

    /// Records one outcome that happened at `at`.
    #[inline]
    pub fn record(&mut self, at: DateTime<Utc>, outcome: &Outcome) -> Recorded {
        let ms = at.timestamp_millis();
        let slot = if ms >= self.newest_start && ms < self.newest_end {
            usize::from(self.newest_slot)
        } else {
            match self.locate(ms) {
                Some(slot) => slot,
                None => {
                    self.dropped = self.dropped.saturating_add(1);
                    return Recorded::TooOld;
                }
            }
        };
        match outcome {
            Outcome::Delivered { latency } => self.add_delivery(slot, *latency),
            Outcome::Failed { kind } => {
                self.slots[slot].failures = self.slots[slot].failures.saturating_add(1);
                let by_kind = &mut self.kinds[slot][kind.index()];
                *by_kind = by_kind.saturating_add(1);
            }
        }
        Recorded::Counted
    }

    /// Statistics over `(now - length, now]`, to the bucket: the buckets in
    /// `(now_bucket - buckets, now_bucket]`. Buckets newer than `now` are left
    /// out.
    pub fn stats(&self, now: DateTime<Utc>) -> WindowStats<'_> {
        let now_epoch = now.timestamp_millis().div_euclid(self.width_ms);
        WindowStats {
            window: self,
            mask: self.view_mask(now_epoch),
            now_ms: now.timestamp_millis(),
        }
    }

    /// The start of the newest bucket that holds an observation, if any. After
    /// `now` when observations were stamped ahead of the clock: they come into
    /// view once their bucket does.
    pub fn newest_bucket_start(&self) -> Option<DateTime<Utc>> {
        if !self.started {
            return None;
        }
        DateTime::<Utc>::from_timestamp_millis(self.newest_start)
    }

    /// How many observations were dropped because they were older than the window.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Bytes used by this window, inline and on the heap; at most
    /// [`Self::MAX_MEMORY_BYTES`].
    pub fn memory_bytes(&self) -> usize {
        size_of::<Self>() + self.entries.capacity() * size_of::<u32>()
    }
}
