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
//! (`u32`, saturating at about 4.29 billion per bucket) and the exact
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
//! The vector holds at most [`SlidingWindow::MAX_SKETCH_ENTRIES`] (160) entries.
//! The struct itself is a little over 300 bytes, so a window never uses more
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

use std::{f64::consts::LN_2, mem::size_of, time::Duration};

use chrono::{DateTime, Utc};

use crate::{
    domain::Outcome,
    error::{Error, Result},
};

/// Whether [`SlidingWindow::record`] took an observation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recorded {
    /// The observation counts.
    Counted,
    /// The observation is older than the window and was dropped (and counted in
    /// [`SlidingWindow::dropped`]).
    TooOld,
}

const SLOTS: usize = SlidingWindow::MAX_BUCKETS as usize;
const COUNT_BITS: u32 = 16;
const COUNT_MASK: u32 = (1 << COUNT_BITS) - 1;
const SLOT_BITS: u32 = 4;
const SLOT_MASK: u32 = (1 << SLOT_BITS) - 1;
const MAX_BIN: u32 = (1 << 12) - 1;
const NS_PER_MS: u64 = 1_000_000;
const NS_PER_SEC: u64 = 1_000_000_000;
/// Latencies are clamped here so that the millisecond maximum fits a `u32`.
const MAX_LATENCY_NS: u64 = u32::MAX as u64 * NS_PER_MS;
/// Sentinel for "no candidate" in the collapse scan; entry indices stay below it.
const NO_INDEX: u8 = u8::MAX;

const ALPHA: f64 = 0.019;
const GAMMA: f64 = (1.0 + ALPHA) / (1.0 - ALPHA);
const LN_GAMMA: f64 = const_ln(GAMMA);
const INV_LOG2_GAMMA: f64 = LN_2 / LN_GAMMA;
const LOG2_NS_PER_MS: f64 = const_ln(NS_PER_MS as f64) / LN_2;
const TABLE_BITS: u32 = 5;
/// `LOG2_TABLE[i] = log2(1 + i / 32)`: the fast logarithm interpolates in it.
const LOG2_TABLE: [f64; (1 << TABLE_BITS) + 1] = log2_table();

// The bound the module promises, for every window whatever it was fed.
const _: () = assert!(
    size_of::<SlidingWindow>() + SlidingWindow::MAX_SKETCH_ENTRIES * size_of::<u32>()
        <= SlidingWindow::MAX_MEMORY_BYTES
);
// Entry indices are kept in `u8`s during a collapse.
const _: () = assert!(SlidingWindow::MAX_SKETCH_ENTRIES < NO_INDEX as usize);

/// Natural logarithm usable in constants: `std`'s `ln` is not `const`.
const fn const_ln(x: f64) -> f64 {
    // Range reduction to [1, 2) keeps the atanh series below converging fast
    // (|z| <= 1/3, so 40 terms are far past f64 precision).
    let mut m = x;
    let mut k = 0i32;
    while m >= 2.0 {
        m /= 2.0;
        k += 1;
    }
    while m < 1.0 {
        m *= 2.0;
        k -= 1;
    }
    let z = (m - 1.0) / (m + 1.0);
    let z2 = z * z;
    let mut term = z;
    let mut sum = 0.0;
    let mut n = 1.0;
    let mut i = 0;
    while i < 40 {
        sum += term / n;
        term *= z2;
        n += 2.0;
        i += 1;
    }
    2.0 * sum + k as f64 * LN_2
}

const fn log2_table() -> [f64; (1 << TABLE_BITS) + 1] {
    let mut table = [0.0; (1 << TABLE_BITS) + 1];
    let mut i = 0;
    while i < table.len() {
        table[i] = const_ln(1.0 + i as f64 / (1 << TABLE_BITS) as f64) / LN_2;
        i += 1;
    }
    table
}

/// `log2(x)` for `x >= 1`, from the position of the leading bit and a table of
/// the next five bits, linearly interpolated with the following 32 bits.
///
/// The interpolation error of `log2(1 + t)` on a 1/32 grid is below 1.8e-4,
/// about 0.0032 of a latency bin, while libm's `ln` would cost about as much
/// as the whole rest of `record`.
#[inline]
fn fast_log2(x: u64) -> f64 {
    // The mask only matters for 0, which callers never pass: it keeps the
    // shift below from overflowing instead of panicking.
    let lz = x.leading_zeros() & 63;
    let exponent = 63 - lz;
    let normalised = x << lz;
    let index = ((normalised >> (63 - TABLE_BITS)) & ((1 << TABLE_BITS) - 1)) as usize;
    let fraction = ((normalised << (TABLE_BITS + 1)) >> 32) as f64 * (1.0 / 4_294_967_296.0);
    let low = LOG2_TABLE[index];
    let high = LOG2_TABLE[index + 1];
    f64::from(exponent) + low + (high - low) * fraction
}

/// A latency in nanoseconds, clamped to [`MAX_LATENCY_NS`].
#[inline]
fn clamped_nanos(latency: Duration) -> u64 {
    latency
        .as_secs()
        .checked_mul(NS_PER_SEC)
        .and_then(|ns| ns.checked_add(u64::from(latency.subsec_nanos())))
        .map_or(MAX_LATENCY_NS, |ns| ns.min(MAX_LATENCY_NS))
}

/// The sketch bin of a latency in nanoseconds (0: below 1 ms).
#[inline]
fn bin_of(nanos: u64) -> u16 {
    if nanos < NS_PER_MS {
        return 0;
    }
    let bins_above_1ms = (fast_log2(nanos) - LOG2_NS_PER_MS) * INV_LOG2_GAMMA;
    // `as` saturates, so the tiny negative values the approximation can give
    // right at 1 ms land in bin 1 with everything else just above 1 ms.
    let bin = (bins_above_1ms as u32).saturating_add(1).min(MAX_BIN);
    bin as u16
}

/// The value a bin reports, in milliseconds.
fn bin_value_ms(bin: u16) -> f64 {
    if bin == 0 {
        return 1.0;
    }
    (f64::from(bin - 1) * LN_GAMMA).exp() * (1.0 + ALPHA)
}

#[inline]
fn entry_key(bin: u16, slot: usize) -> u32 {
    ((u32::from(bin) << SLOT_BITS) | (slot as u32 & SLOT_MASK)) << COUNT_BITS
}

#[inline]
fn entry_slot(entry: u32) -> usize {
    ((entry >> COUNT_BITS) & SLOT_MASK) as usize
}

#[inline]
fn entry_bin(entry: u32) -> u16 {
    (entry >> (COUNT_BITS + SLOT_BITS)) as u16
}

#[inline]
fn entry_count(entry: u32) -> u32 {
    entry & COUNT_MASK
}

/// Iterates over the slot indices set in a mask.
fn slots_in(mask: u16) -> impl Iterator<Item = usize> {
    (0..SLOTS).filter(move |s| mask & (1 << s) != 0)
}

/// The figures of one time bucket.
#[derive(Clone, Copy, Debug, Default)]
struct SlotStats {
    deliveries: u32,
    failures: u32,
    /// Largest latency, in milliseconds rounded up.
    max_ms: u32,
    /// Latencies below this bin count in it (collapse rule).
    floor: u16,
}

/// A sliding window of observations.
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
    pub const MAX_SKETCH_ENTRIES: usize = 160;
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
            Outcome::Failed { .. } => {
                self.slots[slot].failures = self.slots[slot].failures.saturating_add(1);
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

    /// The slot of an observation outside the newest bucket, advancing the
    /// ring if it is newer; `None` if it is too old.
    #[cold]
    fn locate(&mut self, ms: i64) -> Option<usize> {
        let epoch = ms.div_euclid(self.width_ms);
        if !self.started {
            self.started = true;
            self.set_newest(epoch);
            return Some(usize::from(self.newest_slot));
        }
        if epoch > self.newest_epoch {
            self.advance(epoch);
            return Some(usize::from(self.newest_slot));
        }
        if epoch <= self.newest_epoch.saturating_sub(i64::from(self.buckets)) {
            return None;
        }
        Some(self.slot_of(epoch))
    }

    fn slot_of(&self, epoch: i64) -> usize {
        epoch.rem_euclid(i64::from(self.buckets)) as usize
    }

    fn set_newest(&mut self, epoch: i64) {
        self.newest_epoch = epoch;
        self.newest_slot = self.slot_of(epoch) as u8;
        self.newest_start = epoch.saturating_mul(self.width_ms);
        self.newest_end = self.newest_start.saturating_add(self.width_ms);
    }

    /// Moves the ring forward to `epoch`, emptying the slots it reuses.
    fn advance(&mut self, epoch: i64) {
        let buckets = usize::from(self.buckets);
        let gap = epoch.saturating_sub(self.newest_epoch);
        let mut reused: u16 = 0;
        if gap >= i64::from(self.buckets) {
            reused = u16::MAX;
        } else {
            let mut slot = usize::from(self.newest_slot);
            for _ in 0..gap {
                slot = (slot + 1) % buckets;
                reused |= 1 << slot;
            }
        }
        for slot in slots_in(reused) {
            self.slots[slot] = SlotStats::default();
        }
        self.entries
            .retain(|&entry| reused & (1 << entry_slot(entry)) == 0);
        self.set_newest(epoch);
    }

    #[inline]
    fn add_delivery(&mut self, slot: usize, latency: Duration) {
        self.slots[slot].deliveries = self.slots[slot].deliveries.saturating_add(1);
        let nanos = clamped_nanos(latency);
        // At most u32::MAX after the clamp, so the conversion cannot fail.
        let ms = u32::try_from(nanos.div_ceil(NS_PER_MS)).unwrap_or(u32::MAX);
        if ms > self.slots[slot].max_ms {
            self.slots[slot].max_ms = ms;
        }
        let bin = bin_of(nanos).max(self.slots[slot].floor);
        let key = entry_key(bin, slot);
        let index = self.entries.partition_point(|&entry| entry < key);
        if let Some(entry) = self.entries.get_mut(index)
            && *entry & !COUNT_MASK == key
            && *entry & COUNT_MASK != COUNT_MASK
        {
            *entry += 1;
            return;
        }
        self.insert_entry(slot, bin);
    }

    /// Adds a latency whose (bin, slot) has no entry with room yet.
    #[cold]
    fn insert_entry(&mut self, slot: usize, bin: u16) {
        let mut bin = bin;
        if self.entries.len() >= Self::MAX_SKETCH_ENTRIES {
            if !self.collapse() {
                // Saturated: see "Memory bound and collapse rule".
                return;
            }
            bin = bin.max(self.slots[slot].floor);
        }
        let key = entry_key(bin, slot);
        let index = self.entries.partition_point(|&entry| entry < key);
        if let Some(entry) = self.entries.get_mut(index)
            && *entry & !COUNT_MASK == key
            && *entry & COUNT_MASK != COUNT_MASK
        {
            *entry += 1;
            return;
        }
        let len = self.entries.len();
        if len == self.entries.capacity() {
            // Exact, capped growth: `push`'s doubling could pass the memory bound.
            let target = (len * 2).clamp(8, Self::MAX_SKETCH_ENTRIES);
            self.entries.reserve_exact(target.saturating_sub(len));
        }
        // A new entry sorts before any full entries of the same key.
        self.entries.insert(index, key | 1);
    }

    /// Frees one entry by merging the lowest mergeable entry into a higher
    /// entry of the same slot (see the module docs). `false` if none can merge.
    fn collapse(&mut self) -> bool {
        // Per slot, the lower entry with the smallest count seen so far: the
        // one most likely to fit into a later entry of the same slot.
        let mut candidate = [NO_INDEX; SLOTS];
        for upper in 0..self.entries.len() {
            let entry = self.entries[upper];
            let slot = entry_slot(entry);
            let count = entry_count(entry);
            let lower = candidate[slot];
            if lower == NO_INDEX {
                candidate[slot] = upper as u8;
                continue;
            }
            let lower_count = entry_count(self.entries[usize::from(lower)]);
            if lower_count + count <= COUNT_MASK {
                self.entries[upper] += lower_count;
                self.slots[slot].floor = self.slots[slot].floor.max(entry_bin(entry));
                self.entries.remove(usize::from(lower));
                return true;
            }
            if count < lower_count {
                candidate[slot] = upper as u8;
            }
        }
        false
    }

    /// The slots whose bucket lies in `(now_epoch - buckets, now_epoch]`.
    fn view_mask(&self, now_epoch: i64) -> u16 {
        if !self.started {
            return 0;
        }
        let buckets = i64::from(self.buckets);
        let newest = self.newest_epoch;
        let high = now_epoch.min(newest);
        let low = now_epoch
            .saturating_sub(buckets - 1)
            .max(newest.saturating_sub(buckets - 1));
        if high < low {
            return 0;
        }
        // Both differences are below `buckets` here.
        let count = (high - low + 1) as usize;
        let back = (newest - high) as usize;
        let b = usize::from(self.buckets);
        let newest_in_view = (usize::from(self.newest_slot) + b - back) % b;
        // The view is `count` consecutive slots (cyclically) ending at
        // `newest_in_view`; build the mask with shifts rather than a loop of
        // divisions (this runs for every evaluation of every tenant).
        let start = (newest_in_view + b + 1 - count) % b;
        let ones = (1u32 << count) - 1;
        let full = (1u32 << b) - 1;
        let mask = if start + count <= b {
            ones << start
        } else {
            ((ones << start) & full) | (ones >> (b - start))
        };
        mask as u16
    }
}

/// Where rounding the maximum up to the millisecond (at most 1 ms over) stays
/// below the bins' relative error (1 ms / 63 ms < 1.6 %).
const EXACT_MAX_FROM: Duration = Duration::from_millis(64);

/// `ceil(q · n)` clamped to `1..=n`, for `q` in [0, 1].
///
/// The product is shrunk by one part in 10¹² first: `q` is usually a decimal
/// such as 0.07 whose `f64` is a hair off, and `0.07 * 100.0` is
/// `7.000000000000001`, whose ceiling would pick the 8th sample instead of the 7th.
fn nearest_rank(q: f64, n: u64) -> u64 {
    let exact = q * n as f64;
    // `as` saturates; the clamp keeps the rank in 1..=n.
    ((exact - exact * 1e-12).ceil() as u64).clamp(1, n)
}

/// Statistics of a window at one instant (borrowed view, no allocation).
#[derive(Clone, Copy, Debug)]
pub struct WindowStats<'a> {
    window: &'a SlidingWindow,
    // Slots in the view, one bit each.
    mask: u16,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::FailureKind;
    use proptest::prelude::*;

    /// A multiple of one hour, so that `at_s(0)` starts a bucket in slot 0.
    const T0: i64 = 1_760_000_400_000;

    fn at_ms(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(ms).expect("test timestamp in range")
    }

    fn at_s(secs: i64) -> DateTime<Utc> {
        at_ms(T0 + secs * 1000)
    }

    fn delivered_ms(ms: u64) -> Outcome {
        Outcome::Delivered {
            latency: Duration::from_millis(ms),
        }
    }

    fn failed() -> Outcome {
        Outcome::Failed {
            kind: FailureKind::TimedOut,
        }
    }

    /// One hour, 12 buckets of 5 minutes, aligned so that `at_s(0)` starts a bucket.
    fn hour() -> SlidingWindow {
        SlidingWindow::new(Duration::from_secs(3600), 12).expect("valid window")
    }

    /// The nearest-rank quantile of sorted samples, the way a person computes
    /// it: the smallest rank `r` with `r / n >= q`, `q` read as the decimal it
    /// was written as (see `nearest_rank`).
    fn exact_nearest_rank(sorted: &[Duration], q: f64) -> Duration {
        let n = sorted.len();
        let rank = (1..=n)
            .find(|&r| r as f64 >= q * n as f64 * (1.0 - 1e-12))
            .unwrap_or(n);
        sorted[rank - 1]
    }

    #[test]
    fn nearest_rank_reads_q_as_a_decimal() {
        assert_eq!(nearest_rank(0.07, 100), 7);
        assert_eq!(nearest_rank(0.95, 20), 19);
        assert_eq!(nearest_rank(0.9, 10), 9);
        assert_eq!(nearest_rank(0.91, 10), 10);
        assert_eq!(nearest_rank(0.5, 3), 2);
        assert_eq!(nearest_rank(0.0, 3), 1);
        assert_eq!(nearest_rank(1.0, 3), 3);
        assert_eq!(nearest_rank(1.0, 1), 1);
        assert_eq!(nearest_rank(0.999, 10_000_000), 9_990_000);
        assert_eq!(nearest_rank(0.999_000_1, 10_000_000), 9_990_001);
    }

    #[test]
    fn small_latencies_keep_the_bound_at_the_top_rank() {
        // The maximum is rounded up to the millisecond, too coarse near 1 ms.
        let mut w = hour();
        let latency = Duration::from_micros(1_200);
        w.record(at_s(0), &Outcome::Delivered { latency });
        let s = w.stats(at_s(0));
        assert_eq!(s.max_latency(), Some(Duration::from_millis(2)));
        let top = s.latency_quantile(1.0).expect("a delivery");
        assert!(relative_error(top, latency) <= 0.02, "{top:?}");
        let mut w = hour();
        let latency = Duration::from_nanos(64_000_001);
        w.record(at_s(0), &Outcome::Delivered { latency });
        let s = w.stats(at_s(0));
        assert_eq!(s.latency_quantile(1.0), Some(Duration::from_millis(65)));
    }

    fn relative_error(got: Duration, want: Duration) -> f64 {
        (got.as_secs_f64() - want.as_secs_f64()).abs() / want.as_secs_f64()
    }

    #[test]
    fn constants_are_what_the_docs_say() {
        assert!((const_ln(10.0) - 10f64.ln()).abs() < 1e-14);
        assert!((const_ln(0.3) - 0.3f64.ln()).abs() < 1e-14);
        assert!((LN_GAMMA - GAMMA.ln()).abs() < 1e-15);
        assert!((LOG2_NS_PER_MS - 1e6f64.log2()).abs() < 1e-12);
        for (i, v) in LOG2_TABLE.iter().enumerate() {
            assert!((v - (1.0 + i as f64 / 32.0).log2()).abs() < 1e-14);
        }
        assert_eq!(T0.rem_euclid(3_600_000), 0);
    }

    #[test]
    fn fast_log2_error_is_bounded() {
        // Bound used in the module docs: 0.0032 of a bin is 1.75e-4 in log2 units.
        let bound = 1.8e-4;
        let mut x: u64 = 1;
        let mut worst: f64 = 0.0;
        while x < u64::MAX / 3 {
            for y in [x, x + 1, x + x / 3, x + x / 2, x + x / 7 * 5, x * 2 - 1] {
                let err = (fast_log2(y) - (y as f64).log2()).abs();
                worst = worst.max(err);
            }
            x = x * 2 + 1;
        }
        for i in 0..200_000u64 {
            let y = 1_000_000 + i * 7919;
            worst = worst.max((fast_log2(y) - (y as f64).log2()).abs());
        }
        assert!(worst < bound, "worst {worst}");
        assert_eq!(fast_log2(1), 0.0);
        assert!((fast_log2(u64::MAX) - 64.0).abs() < 1e-9);
    }

    #[test]
    fn every_latency_is_within_the_bound_of_its_bin_value() {
        let mut ms: f64 = 1.0;
        while ms < 4.0e9 {
            for factor in [1.0, 1.0001, 1.01, 1.02, 1.03, 1.0387] {
                let nanos = (ms * factor * 1e6) as u64;
                let value = bin_value_ms(bin_of(nanos)) * 1e6;
                let err = (value - nanos as f64).abs() / nanos as f64;
                assert!(err <= 0.0192, "{nanos} ns: bin value {value}, error {err}");
            }
            ms *= 1.0173;
        }
        assert_eq!(bin_of(0), 0);
        assert_eq!(bin_of(999_999), 0);
        assert_eq!(bin_of(1_000_000), 1);
        assert!(u32::from(bin_of(MAX_LATENCY_NS)) < MAX_BIN);
        // Monotone, so the sorted entries are sorted by latency.
        let mut last = 0;
        let mut nanos = 1u64;
        while nanos < MAX_LATENCY_NS {
            let bin = bin_of(nanos);
            assert!(bin >= last);
            last = bin;
            nanos += nanos / 97 + 1;
        }
    }

    #[test]
    fn rejects_bad_configuration() {
        let err = |length: Duration, buckets: u8| match SlidingWindow::new(length, buckets) {
            Err(Error::InvalidConfig { field, reason }) => format!("{field}: {reason}"),
            other => panic!("expected InvalidConfig, got {other:?}"),
        };
        assert_eq!(
            err(Duration::ZERO, 12),
            "window.length: must be greater than 0"
        );
        assert!(err(Duration::from_secs(7 * 86_400 + 1), 12).starts_with("window.length"));
        assert!(err(Duration::MAX, 12).starts_with("window.length"));
        assert!(err(Duration::from_secs(3600), 0).starts_with("window.buckets"));
        assert!(err(Duration::from_secs(3600), 17).starts_with("window.buckets"));
        assert!(err(Duration::from_secs(11), 12).contains("shorter than 1 s"));
        assert!(err(Duration::from_millis(999), 1).contains("shorter than 1 s"));

        assert!(SlidingWindow::new(Duration::from_secs(12), 12).is_ok());
        assert!(SlidingWindow::new(Duration::from_secs(1), 1).is_ok());
        assert!(SlidingWindow::new(SlidingWindow::MAX_LENGTH, 16).is_ok());
        let w = SlidingWindow::new(Duration::from_secs(3600), 7).expect("valid");
        assert_eq!(w.bucket_width(), Duration::from_millis(3_600_000 / 7));
        assert_eq!(w.length(), Duration::from_secs(3600));
        assert_eq!(w.buckets(), 7);
    }

    #[test]
    fn empty_window_has_no_figures() {
        let w = hour();
        let s = w.stats(at_s(0));
        assert_eq!((s.samples(), s.deliveries(), s.failures()), (0, 0, 0));
        assert_eq!(s.failure_rate(), None);
        assert_eq!(s.max_latency(), None);
        assert_eq!(s.latency_quantile(0.5), None);
        assert_eq!(w.dropped(), 0);
        assert_eq!(w.memory_bytes(), size_of::<SlidingWindow>());
    }

    #[test]
    fn counts_deliveries_failures_and_exact_max() {
        let mut w = hour();
        assert_eq!(w.record(at_s(1), &delivered_ms(1500)), Recorded::Counted);
        assert_eq!(w.record(at_s(2), &failed()), Recorded::Counted);
        assert_eq!(
            w.record(at_s(400), &delivered_ms(90_000)),
            Recorded::Counted
        );
        assert_eq!(w.record(at_s(401), &delivered_ms(3)), Recorded::Counted);
        let s = w.stats(at_s(500));
        assert_eq!(s.samples(), 4);
        assert_eq!(s.deliveries(), 3);
        assert_eq!(s.failures(), 1);
        assert_eq!(s.failure_rate(), Some(0.25));
        assert_eq!(s.max_latency(), Some(Duration::from_millis(90_000)));
        assert_eq!(s.latency_quantile(1.0), Some(Duration::from_millis(90_000)));
    }

    #[test]
    fn max_rounds_up_to_the_millisecond() {
        let mut w = hour();
        let latency = Duration::from_micros(1_800_000_500);
        w.record(at_s(0), &Outcome::Delivered { latency });
        let max = w.stats(at_s(0)).max_latency().expect("a delivery");
        assert_eq!(max, Duration::from_millis(1_800_001));
        assert!(max > Duration::from_secs(1800));
    }

    #[test]
    fn buckets_rotate_and_expire() {
        let mut w = hour();
        // One delivery per 5-minute bucket for 12 buckets.
        for i in 0..12 {
            w.record(at_s(i * 300 + 10), &delivered_ms(1000 * (i as u64 + 1)));
        }
        assert_eq!(w.stats(at_s(11 * 300 + 10)).deliveries(), 12);
        // Sliding one bucket forward drops the oldest one, even without a record.
        let s = w.stats(at_s(12 * 300));
        assert_eq!(s.deliveries(), 11);
        assert_eq!(s.latency_quantile(0.0), quantile_of(&w, 12 * 300, 0.0));
        assert!(s.latency_quantile(0.0) > Some(Duration::from_millis(1500)));
        // A record in bucket 12 reuses slot 0 and clears its old contents.
        w.record(at_s(12 * 300 + 1), &delivered_ms(50));
        let s = w.stats(at_s(12 * 300 + 1));
        assert_eq!(s.deliveries(), 12);
        assert_eq!(s.max_latency(), Some(Duration::from_millis(12_000)));
        let min = s.latency_quantile(0.0).expect("deliveries");
        assert!(relative_error(min, Duration::from_millis(50)) <= 0.02);
        // Everything expires an hour after the last record.
        assert_eq!(w.stats(at_s(24 * 300 + 1)).samples(), 0);
        assert_eq!(w.stats(at_s(24 * 300 + 1)).latency_quantile(0.5), None);
        // The stale entries are gone once the ring moves over them.
        w.record(at_s(100 * 300), &delivered_ms(7));
        assert_eq!(w.entries.len(), 1);
        assert_eq!(w.stats(at_s(100 * 300)).samples(), 1);
    }

    fn quantile_of(w: &SlidingWindow, secs: i64, q: f64) -> Option<Duration> {
        w.stats(at_s(secs)).latency_quantile(q)
    }

    #[test]
    fn out_of_order_inside_the_window_counts() {
        let mut w = hour();
        w.record(at_s(11 * 300 + 5), &delivered_ms(1000));
        // Eleven buckets back: the oldest bucket still in the ring.
        assert_eq!(w.record(at_s(10), &delivered_ms(2000)), Recorded::Counted);
        assert_eq!(w.record(at_s(11 * 300 - 1), &failed()), Recorded::Counted);
        // Same bucket as the newest, but earlier.
        assert_eq!(
            w.record(at_s(11 * 300), &delivered_ms(3000)),
            Recorded::Counted
        );
        let s = w.stats(at_s(11 * 300 + 5));
        assert_eq!((s.deliveries(), s.failures()), (3, 1));
        assert_eq!(w.dropped(), 0);
        // The oldest bucket leaves the view first.
        let s = w.stats(at_s(12 * 300));
        assert_eq!((s.deliveries(), s.failures()), (2, 1));
        assert_eq!(s.max_latency(), Some(Duration::from_millis(3000)));
    }

    #[test]
    fn too_old_observations_are_dropped_and_counted() {
        let mut w = hour();
        w.record(at_s(12 * 300), &delivered_ms(1000));
        // Bucket 0 is twelve buckets behind bucket 12: outside the ring.
        assert_eq!(w.record(at_s(299), &delivered_ms(1)), Recorded::TooOld);
        assert_eq!(w.record(at_s(-86_400), &failed()), Recorded::TooOld);
        assert_eq!(w.record(at_s(300), &failed()), Recorded::Counted);
        assert_eq!(w.dropped(), 2);
        let s = w.stats(at_s(12 * 300));
        assert_eq!((s.deliveries(), s.failures()), (1, 1));
    }

    #[test]
    fn single_bucket_window() {
        let mut w = SlidingWindow::new(Duration::from_secs(60), 1).expect("valid");
        assert_eq!(w.record(at_s(61), &delivered_ms(5)), Recorded::Counted);
        assert_eq!(w.record(at_s(119), &delivered_ms(6)), Recorded::Counted);
        assert_eq!(w.record(at_s(59), &delivered_ms(7)), Recorded::TooOld);
        assert_eq!(w.stats(at_s(100)).deliveries(), 2);
        assert_eq!(w.stats(at_s(120)).deliveries(), 0);
        assert_eq!(w.stats(at_s(59)).deliveries(), 0);
        w.record(at_s(120), &delivered_ms(8));
        assert_eq!(w.stats(at_s(120)).deliveries(), 1);
    }

    #[test]
    fn stats_leave_out_buckets_newer_than_now() {
        let mut w = hour();
        w.record(at_s(0), &delivered_ms(1000));
        w.record(at_s(300), &delivered_ms(2000));
        w.record(at_s(600), &failed());
        let s = w.stats(at_s(299));
        assert_eq!((s.deliveries(), s.failures()), (1, 0));
        assert_eq!(s.max_latency(), Some(Duration::from_millis(1000)));
        let s = w.stats(at_s(599));
        assert_eq!((s.deliveries(), s.failures()), (2, 0));
        assert_eq!(w.stats(at_s(-1)).samples(), 0);
        assert_eq!(w.stats(at_s(-100_000)).samples(), 0);
        assert_eq!(w.stats(at_s(600)).samples(), 3);
    }

    #[test]
    fn far_future_and_far_past_timestamps_do_not_panic() {
        let mut w = hour();
        let extremes = [
            DateTime::<Utc>::MIN_UTC,
            DateTime::<Utc>::MAX_UTC,
            DateTime::<Utc>::UNIX_EPOCH,
            at_ms(-1),
        ];
        assert_eq!(w.record(extremes[0], &delivered_ms(1)), Recorded::Counted);
        assert_eq!(w.record(extremes[2], &failed()), Recorded::Counted);
        assert_eq!(w.record(extremes[1], &delivered_ms(2)), Recorded::Counted);
        assert_eq!(w.record(extremes[2], &delivered_ms(3)), Recorded::TooOld);
        assert_eq!(w.record(extremes[0], &delivered_ms(3)), Recorded::TooOld);
        assert_eq!(w.record(extremes[3], &delivered_ms(3)), Recorded::TooOld);
        assert_eq!(w.dropped(), 3);
        for now in extremes {
            let s = w.stats(now);
            let _ = (s.samples(), s.latency_quantile(0.5), s.max_latency());
        }
        assert_eq!(w.stats(extremes[1]).deliveries(), 1);

        let mut w = hour();
        assert_eq!(w.record(at_ms(-1), &delivered_ms(3)), Recorded::Counted);
        assert_eq!(
            w.record(at_ms(-300_001), &delivered_ms(4)),
            Recorded::Counted
        );
        assert_eq!(w.stats(at_ms(0)).deliveries(), 2);
    }

    #[test]
    fn extreme_latencies_do_not_panic() {
        let mut w = hour();
        let latencies = [
            Duration::ZERO,
            Duration::from_nanos(1),
            Duration::from_nanos(999_999),
            Duration::from_millis(1),
            Duration::from_secs(86_400 * 60),
            Duration::MAX,
        ];
        for latency in latencies {
            w.record(at_s(0), &Outcome::Delivered { latency });
        }
        let s = w.stats(at_s(0));
        assert_eq!(
            s.max_latency(),
            Some(Duration::from_millis(u64::from(u32::MAX)))
        );
        assert_eq!(s.latency_quantile(0.0), Some(Duration::from_millis(1)));
        assert_eq!(s.latency_quantile(1.0), s.max_latency());

        let mut w = hour();
        w.record(
            at_s(0),
            &Outcome::Delivered {
                latency: Duration::from_micros(300),
            },
        );
        let s = w.stats(at_s(0));
        assert_eq!(s.max_latency(), Some(Duration::from_millis(1)));
        assert_eq!(s.latency_quantile(0.5), Some(Duration::from_millis(1)));
        let mut only_zero = hour();
        only_zero.record(
            at_s(0),
            &Outcome::Delivered {
                latency: Duration::ZERO,
            },
        );
        let s = only_zero.stats(at_s(0));
        assert_eq!(s.max_latency(), Some(Duration::ZERO));
        assert_eq!(s.latency_quantile(0.99), Some(Duration::ZERO));
    }

    #[test]
    fn quantile_argument_edge_cases() {
        let mut w = hour();
        for ms in [1000, 2000, 3000, 4000] {
            w.record(at_s(0), &delivered_ms(ms));
        }
        let s = w.stats(at_s(0));
        let close = |q: f64, want_ms: u64| {
            let got = s.latency_quantile(q).expect("deliveries");
            relative_error(got, Duration::from_millis(want_ms)) <= 0.02
        };
        assert!(close(0.0, 1000));
        assert!(close(-3.0, 1000));
        assert!(close(f64::NEG_INFINITY, 1000));
        assert!(close(0.25, 1000));
        assert!(close(0.2500001, 2000));
        assert!(close(0.5, 2000));
        assert!(close(0.75, 3000));
        assert!(close(0.99, 4000));
        assert_eq!(s.latency_quantile(1.0), Some(Duration::from_millis(4000)));
        assert_eq!(s.latency_quantile(7.0), Some(Duration::from_millis(4000)));
        assert_eq!(
            s.latency_quantile(f64::INFINITY),
            Some(Duration::from_millis(4000))
        );
        assert_eq!(s.latency_quantile(f64::NAN), None);
        assert!(close(f64::MIN_POSITIVE, 1000));
    }

    #[test]
    fn quantiles_of_a_realistic_full_window_stay_accurate() {
        // More distinct (bin, bucket) pairs than the sketch holds, so the collapse
        // rule runs: p95 and p99 must keep the bound.
        let mut w = hour();
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let mut latencies = Vec::new();
        for i in 0..20_000i64 {
            let ms = 1000 + rng.next() % 119_000;
            let at = T0 + i * 180 + (rng.next() % 5000) as i64;
            w.record(at_ms(at), &delivered_ms(ms));
            latencies.push((at, ms));
        }
        let now = T0 + 20_000 * 180;
        let now_epoch = now.div_euclid(300_000);
        let mut in_view: Vec<Duration> = latencies
            .iter()
            .filter(|(at, _)| {
                let e = at.div_euclid(300_000);
                e > now_epoch - 12 && e <= now_epoch
            })
            .map(|&(_, ms)| Duration::from_millis(ms))
            .collect();
        in_view.sort();
        let s = w.stats(at_ms(now));
        assert_eq!(s.deliveries(), in_view.len() as u64);
        assert!(w.entries.len() <= SlidingWindow::MAX_SKETCH_ENTRIES);
        assert!(w.slots.iter().any(|s| s.floor > 0), "the collapse rule ran");
        for q in [0.9, 0.95, 0.99, 0.999, 1.0] {
            let got = s.latency_quantile(q).expect("deliveries");
            let want = exact_nearest_rank(&in_view, q);
            assert!(
                relative_error(got, want) <= 0.02,
                "q {q}: {got:?} vs {want:?}"
            );
        }
        // Lower quantiles can only be over-estimated.
        for q in [0.0, 0.1, 0.5] {
            let got = s.latency_quantile(q).expect("deliveries");
            let want = exact_nearest_rank(&in_view, q);
            assert!(got.as_secs_f64() >= want.as_secs_f64() * 0.98, "q {q}");
        }
    }

    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn memory_stays_bounded_under_adversarial_input() {
        let mut w = SlidingWindow::new(Duration::from_secs(16 * 60), 16).expect("valid");
        let mut worst = w.memory_bytes();
        // Every record a different bin, spread over every bucket of the window.
        for i in 0..2_000_000u64 {
            let bin_step = (i * 7919) % 600;
            let ms = (1.0387f64.powi(bin_step as i32)).min(4.0e9) as u64;
            let at = T0 + (i as i64 % 16) * 60_000 + (i as i64 / 1_000_000) * 3_600_000;
            let outcome = if i % 11 == 0 {
                failed()
            } else {
                delivered_ms(ms)
            };
            w.record(at_ms(at), &outcome);
            if i % 997 == 0 {
                worst = worst.max(w.memory_bytes());
            }
        }
        worst = worst.max(w.memory_bytes());
        assert!(worst <= SlidingWindow::MAX_MEMORY_BYTES, "{worst} bytes");
        assert!(w.entries.len() <= SlidingWindow::MAX_SKETCH_ENTRIES);
        assert!(w.entries.is_sorted());
        // Counts stay exact whatever the sketch had to merge.
        let s = w.stats(at_ms(T0 + 3_600_000 + 15 * 60_000));
        assert_eq!(s.samples(), 1_000_000);
        let held: u64 = w.entries.iter().map(|&e| u64::from(entry_count(e))).sum();
        assert_eq!(held, s.deliveries());
    }

    #[test]
    fn entry_overflow_starts_another_entry() {
        let mut w = hour();
        for _ in 0..70_000 {
            w.record(at_s(0), &delivered_ms(1234));
        }
        w.record(at_s(0), &delivered_ms(99_999));
        assert_eq!(w.entries.len(), 3);
        assert!(w.entries.is_sorted());
        let s = w.stats(at_s(0));
        assert_eq!(s.deliveries(), 70_001);
        let held: u64 = w.entries.iter().map(|&e| u64::from(entry_count(e))).sum();
        assert_eq!(held, 70_001);
        let p = s.latency_quantile(0.9999).expect("deliveries");
        assert!(relative_error(p, Duration::from_millis(1234)) <= 0.02);
        assert_eq!(s.latency_quantile(1.0), Some(Duration::from_millis(99_999)));
    }

    #[test]
    fn saturated_sketch_keeps_exact_counts_and_bounded_memory() {
        let mut w = hour();
        w.record(at_s(0), &delivered_ms(5000));
        // Fill the sketch with full entries that cannot merge: the state after
        // some ten million deliveries, built directly to keep the test fast.
        let key = entry_key(bin_of(5000 * NS_PER_MS), 0);
        w.entries.clear();
        w.entries
            .resize(SlidingWindow::MAX_SKETCH_ENTRIES, key | COUNT_MASK);
        w.slots[0].deliveries = (SlidingWindow::MAX_SKETCH_ENTRIES as u32) * COUNT_MASK;
        for i in 0..1000u64 {
            assert_eq!(w.record(at_s(1), &delivered_ms(10 + i)), Recorded::Counted);
        }
        assert_eq!(w.entries.len(), SlidingWindow::MAX_SKETCH_ENTRIES);
        assert!(w.memory_bytes() <= SlidingWindow::MAX_MEMORY_BYTES);
        let s = w.stats(at_s(1));
        assert_eq!(
            s.deliveries(),
            SlidingWindow::MAX_SKETCH_ENTRIES as u64 * u64::from(COUNT_MASK) + 1000
        );
        let p = s.latency_quantile(0.5).expect("deliveries");
        assert!(relative_error(p, Duration::from_millis(5000)) <= 0.02);
        // A bucket that only ever saw saturation reports its maximum.
        w.record(at_s(300), &delivered_ms(42));
        let s = w.stats(at_s(300));
        assert_eq!(s.latency_quantile(0.5), Some(Duration::from_secs(5)));
        // Expiry frees the sketch again.
        w.record(at_s(12 * 300), &delivered_ms(42));
        let s = w.stats(at_s(12 * 300));
        let p = s.latency_quantile(0.5).expect("deliveries");
        assert!(relative_error(p, Duration::from_millis(42)) <= 0.02);
    }

    #[test]
    fn counters_saturate_instead_of_overflowing() {
        let mut w = hour();
        w.record(at_s(0), &failed());
        w.slots[usize::from(w.newest_slot)].failures = u32::MAX;
        w.record(at_s(0), &failed());
        assert_eq!(w.stats(at_s(0)).failures(), u64::from(u32::MAX));
        w.dropped = u64::MAX;
        w.record(at_s(-86_400), &failed());
        assert_eq!(w.dropped(), u64::MAX);
    }

    fn check_against_exact(samples: &[(i64, u64, bool)], now_offset: i64, qs: &[f64]) {
        let mut w = hour();
        for &(offset_ms, latency_us, fail) in samples {
            let outcome = if fail {
                failed()
            } else {
                Outcome::Delivered {
                    latency: Duration::from_micros(latency_us),
                }
            };
            w.record(at_ms(T0 + offset_ms), &outcome);
        }
        let newest = samples
            .iter()
            .map(|s| (T0 + s.0).div_euclid(300_000))
            .max()
            .unwrap_or(0);
        let now = T0 + now_offset;
        let now_epoch = now.div_euclid(300_000);
        let view = |at: i64| {
            let e = at.div_euclid(300_000);
            e > now_epoch - 12 && e <= now_epoch && e > newest - 12
        };
        let counted: Vec<_> = samples.iter().filter(|s| view(T0 + s.0)).collect();
        let mut latencies: Vec<Duration> = counted
            .iter()
            .filter(|s| !s.2)
            .map(|s| Duration::from_micros(s.1))
            .collect();
        latencies.sort();
        let stats = w.stats(at_ms(now));
        let failures = counted.iter().filter(|s| s.2).count() as u64;
        assert_eq!(stats.failures(), failures);
        assert_eq!(stats.deliveries(), latencies.len() as u64);
        assert_eq!(stats.samples(), counted.len() as u64);
        assert_eq!(
            stats.max_latency(),
            latencies
                .last()
                .map(|d| Duration::from_millis(d.as_micros().div_ceil(1000) as u64))
        );
        for &q in qs {
            match stats.latency_quantile(q) {
                None => assert!(latencies.is_empty()),
                Some(got) => {
                    let want = exact_nearest_rank(&latencies, q);
                    assert!(
                        relative_error(got, want) <= 0.02,
                        "q {q}: got {got:?}, exact {want:?}"
                    );
                }
            }
        }
    }

    proptest! {
        #[test]
        fn quantiles_counts_and_max_match_exact_values(
            samples in proptest::collection::vec(
                (0i64..5_400_000, 1_000u64..2_000_000_000_000, proptest::bool::weighted(0.1)),
                0..150,
            ),
            now_offset in 0i64..5_400_000,
            qs in proptest::collection::vec(0.0f64..=1.0, 1..8),
        ) {
            // At most 150 samples: below the sketch's 160 entries, so no collapse.
            let mut qs = qs;
            qs.extend([0.0, 0.5, 0.9, 0.95, 0.99, 1.0]);
            check_against_exact(&samples, now_offset, &qs);
        }

        #[test]
        fn small_latencies_match_exact_values(
            samples in proptest::collection::vec(
                (0i64..3_600_000, 1_000u64..200_000, proptest::bool::weighted(0.05)),
                1..150,
            ),
            q in 0.0f64..=1.0,
        ) {
            check_against_exact(&samples, 3_600_000, &[q, 0.0, 0.5, 0.95, 1.0]);
        }

        #[test]
        fn clustered_latencies_match_exact_values(
            samples in proptest::collection::vec(
                (0i64..900_000, 1_000u64..5_000_000, proptest::bool::weighted(0.05)),
                1..150,
            ),
            q in 0.0f64..=1.0,
        ) {
            check_against_exact(&samples, 900_000, &[q, 0.95]);
        }

        #[test]
        fn arbitrary_input_never_panics_or_exceeds_memory(
            records in proptest::collection::vec(
                (any::<i64>(), any::<u64>(), 0u32..1_000_000_000, any::<bool>()),
                0..400,
            ),
            now in any::<i64>(),
            q in any::<f64>(),
        ) {
            let mut w = hour();
            let clamp = |ms: i64| {
                ms.clamp(
                    DateTime::<Utc>::MIN_UTC.timestamp_millis(),
                    DateTime::<Utc>::MAX_UTC.timestamp_millis(),
                )
            };
            for (at, secs, nanos, fail) in records {
                // Keep most timestamps near each other so that buckets fill up.
                let at = if at % 4 == 0 { clamp(at) } else { T0 + at % 7_200_000 };
                let outcome = if fail {
                    failed()
                } else {
                    Outcome::Delivered { latency: Duration::new(secs, nanos) }
                };
                w.record(at_ms(at), &outcome);
                prop_assert!(w.memory_bytes() <= SlidingWindow::MAX_MEMORY_BYTES);
            }
            let s = w.stats(at_ms(clamp(now)));
            let _ = (s.samples(), s.failure_rate(), s.latency_quantile(q), s.max_latency());
            let s = w.stats(at_ms(T0));
            let _ = (s.samples(), s.failure_rate(), s.latency_quantile(q), s.max_latency());
            prop_assert!(w.entries.is_sorted());
        }
    }
}
