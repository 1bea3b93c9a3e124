//! The ring of time buckets: which slot a timestamp lands in, moving the
//! ring forward (emptying the slots it reuses), and which slots a view at
//! `now` covers.
//!
//! The ring decides *where* an observation counts, the sketch *how* its
//! latency is kept; each reads without the other.

use chrono::{DateTime, Utc};

use super::{KINDS, SLOTS, SlidingWindow, WindowStats, sketch::entry_slot};
/// Iterates over the slot indices set in a mask.
fn slots_in(mask: u16) -> impl Iterator<Item = usize> {
    (0..SLOTS).filter(move |s| mask & (1 << s) != 0)
}

/// The figures of one time bucket.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct SlotStats {
    pub(super) deliveries: u32,
    pub(super) failures: u32,
    /// Largest latency, in milliseconds rounded up.
    pub(super) max_ms: u32,
    /// Latencies below this bin count in it (collapse rule).
    pub(super) floor: u16,
}
impl SlidingWindow {
    /// The slot of an observation outside the newest bucket, advancing the
    /// ring if it is newer; `None` if it is too old.
    #[cold]
    pub(super) fn locate(&mut self, ms: i64) -> Option<usize> {
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

    /// Each bucket of the view at `now` ([`stats`](Self::stats)'s buckets),
    /// oldest first, with its start time and its own figures: a bucket
    /// without observations (or outside the ring) has none. For a chart of
    /// the window; the statistics of one bucket have the same accuracy as
    /// the window's.
    pub fn bucket_stats(
        &self,
        now: DateTime<Utc>,
    ) -> impl Iterator<Item = (DateTime<Utc>, WindowStats<'_>)> + '_ {
        let now_ms = now.timestamp_millis();
        let now_epoch = now_ms.div_euclid(self.width_ms);
        let view = self.view_mask(now_epoch);
        let buckets = i64::from(self.buckets);
        let first = now_epoch.saturating_sub(buckets - 1);
        (first..=now_epoch).map(move |epoch| {
            // The view's slots hold exactly the buckets in it, so a slot of
            // the view holds this epoch's bucket if the ring has reached it.
            let held = self.started
                && epoch <= self.newest_epoch
                && epoch > self.newest_epoch.saturating_sub(buckets);
            let slot_bit = 1u16 << self.slot_of(epoch);
            let mask = if held { view & slot_bit } else { 0 };
            let start = DateTime::<Utc>::from_timestamp_millis(epoch.saturating_mul(self.width_ms))
                .unwrap_or(DateTime::<Utc>::MIN_UTC);
            (
                start,
                WindowStats {
                    window: self,
                    mask,
                    now_ms,
                },
            )
        })
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
            self.kinds[slot] = [0; KINDS];
        }
        self.entries
            .retain(|&entry| reused & (1 << entry_slot(entry)) == 0);
        self.set_newest(epoch);
    }

    /// The slots whose bucket lies in `(now_epoch - buckets, now_epoch]`.
    pub(super) fn view_mask(&self, now_epoch: i64) -> u16 {
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
