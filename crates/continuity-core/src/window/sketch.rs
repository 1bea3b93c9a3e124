//! The latency sketch: logarithmic bins, the packed `bin | slot | count`
//! entries, and how a latency is added or entries merge (the collapse rule).
//!
//! Apart from the ring because the accuracy and memory promises of the
//! [window docs](super) rest on this code alone: the bin arithmetic and how
//! entries merge.

use std::{f64::consts::LN_2, time::Duration};

use super::{SLOTS, SlidingWindow};
const COUNT_BITS: u32 = 16;
pub(super) const COUNT_MASK: u32 = (1 << COUNT_BITS) - 1;
const SLOT_BITS: u32 = 4;
const SLOT_MASK: u32 = (1 << SLOT_BITS) - 1;
pub(super) const MAX_BIN: u32 = (1 << 12) - 1;
pub(super) const NS_PER_MS: u64 = 1_000_000;
const NS_PER_SEC: u64 = 1_000_000_000;
/// Latencies are clamped here so that the millisecond maximum fits a `u32`.
pub(super) const MAX_LATENCY_NS: u64 = u32::MAX as u64 * NS_PER_MS;
/// Sentinel for "no candidate" in the collapse scan; entry indices stay below it.
const NO_INDEX: u8 = u8::MAX;

const ALPHA: f64 = 0.019;
pub(super) const GAMMA: f64 = (1.0 + ALPHA) / (1.0 - ALPHA);
pub(super) const LN_GAMMA: f64 = const_ln(GAMMA);
const INV_LOG2_GAMMA: f64 = LN_2 / LN_GAMMA;
pub(super) const LOG2_NS_PER_MS: f64 = const_ln(NS_PER_MS as f64) / LN_2;
const TABLE_BITS: u32 = 5;
/// `LOG2_TABLE[i] = log2(1 + i / 32)`: the fast logarithm interpolates in it.
pub(super) const LOG2_TABLE: [f64; (1 << TABLE_BITS) + 1] = log2_table();
// Entry indices are kept in `u8`s during a collapse.
const _: () = assert!(SlidingWindow::MAX_SKETCH_ENTRIES < NO_INDEX as usize);
/// Natural logarithm usable in constants: `std`'s `ln` is not `const`.
pub(super) const fn const_ln(x: f64) -> f64 {
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
pub(super) fn fast_log2(x: u64) -> f64 {
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
pub(super) fn bin_of(nanos: u64) -> u16 {
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
pub(super) fn bin_value_ms(bin: u16) -> f64 {
    if bin == 0 {
        return 1.0;
    }
    (f64::from(bin - 1) * LN_GAMMA).exp() * (1.0 + ALPHA)
}

#[inline]
pub(super) fn entry_key(bin: u16, slot: usize) -> u32 {
    ((u32::from(bin) << SLOT_BITS) | (slot as u32 & SLOT_MASK)) << COUNT_BITS
}

#[inline]
pub(super) fn entry_slot(entry: u32) -> usize {
    ((entry >> COUNT_BITS) & SLOT_MASK) as usize
}

#[inline]
pub(super) fn entry_bin(entry: u32) -> u16 {
    (entry >> (COUNT_BITS + SLOT_BITS)) as u16
}

#[inline]
pub(super) fn entry_count(entry: u32) -> u32 {
    entry & COUNT_MASK
}
impl SlidingWindow {
    #[inline]
    pub(super) fn add_delivery(&mut self, slot: usize, latency: Duration) {
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
}
