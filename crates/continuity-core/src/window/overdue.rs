//! Overdue probes: probes still pending past what a policy calls normal,
//! kept beside the buckets as censored latencies ("at least this long")
//! until they arrive or their deadline passes.
//!
//! They are not in the sketch: a censored value has no bin, and the probe's
//! real latency goes there when it arrives. Keeping them apart is what makes
//! a probe count once: censored while pending, then replaced by its real
//! latency ([`SlidingWindow::settle_overdue`]) or, at its deadline, by
//! nothing (the lost probe is recorded as a failure).

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::SlidingWindow;

/// Most overdue probes a window keeps. The oldest are kept: the longer a
/// probe has been pending, the more it tells (several probes pending far
/// longer than deliveries ever take are an outage, whatever the share of
/// merely slow deliveries says), and a place is freed when its probe
/// arrives, reaches its deadline, or has been overdue for longer than recent
/// minutes reach back. Four keep the struct within its memory
/// bound, and are as many as the flow detector needs to tell an outage
/// from a heavy-tailed normal.
pub(crate) const CAPACITY: usize = 4;

/// Overdue this long, a probe has said its part to a detector of recent
/// minutes (the flow policy's ring holds 32): when the places are full, a
/// newer probe may take its place.
const STALE_AFTER_MS: i64 = 32 * 60_000;

/// An empty place: no probe is sent at the start of time.
const EMPTY: i64 = i64::MIN;

/// Sent times (ms), deadlines and when each was last seen pending (whole
/// seconds after sending, rounded down and saturating at about 18 h, so a
/// probe stops counting no later than its deadline) of the overdue probes.
#[derive(Clone, Copy, Debug)]
pub(super) struct Overdue {
    sent_ms: [i64; CAPACITY],
    deadline_s: [u16; CAPACITY],
    seen_s: [u16; CAPACITY],
}

impl Default for Overdue {
    fn default() -> Self {
        Overdue {
            sent_ms: [EMPTY; CAPACITY],
            deadline_s: [0; CAPACITY],
            seen_s: [0; CAPACITY],
        }
    }
}

/// Whole seconds from `sent_at` to `to`, saturating at `u16::MAX`.
fn seconds_after(sent_at: DateTime<Utc>, to: DateTime<Utc>) -> u16 {
    let seconds = (to - sent_at).num_seconds().clamp(0, i64::from(u16::MAX));
    u16::try_from(seconds).unwrap_or(u16::MAX)
}

impl Overdue {
    /// Ages at `now_ms` of the probes still counting: sent, not yet at their
    /// deadline.
    pub(super) fn ages(&self, now_ms: i64) -> impl Iterator<Item = Duration> + '_ {
        self.sent_ms
            .iter()
            .zip(self.deadline_s)
            .filter(|&(&sent, _)| sent != EMPTY)
            .filter_map(move |(&sent, deadline_s)| {
                let age = now_ms.checked_sub(sent)?;
                let counts = age >= 0 && age < i64::from(deadline_s) * 1000;
                counts.then(|| Duration::from_millis(age.unsigned_abs()))
            })
    }

    /// Ages at `now_ms` of the probes still counting, as they were when last
    /// seen pending: latencies each probe is known to have reached, whatever
    /// the check interval (the age at `now_ms` may already be past the
    /// latency of a probe that arrived since its last check).
    pub(super) fn seen_ages(&self, now_ms: i64) -> impl Iterator<Item = Duration> + '_ {
        self.sent_ms
            .iter()
            .zip(self.deadline_s)
            .zip(self.seen_s)
            .filter(|&((&sent, _), _)| sent != EMPTY)
            .filter_map(move |((&sent, deadline_s), seen_s)| {
                let age = now_ms.checked_sub(sent)?;
                let counts = age >= 0 && age < i64::from(deadline_s) * 1000;
                counts.then(|| Duration::from_secs(u64::from(seen_s)))
            })
    }
}

impl SlidingWindow {
    /// Counts a probe sent at `sent_at`, still pending at `now` and older
    /// than normal, as a latency of at least its age (growing with the
    /// clock) until `deadline`, and notes that it was seen pending at `now`
    /// (see [`WindowStats::overdue_seen_over`](super::WindowStats::overdue_seen_over)).
    /// Returns whether it is newly counted (not when it already is, or when
    /// the window already holds as many older overdue probes as it keeps).
    /// Places of probes past their deadline are reused, then those of
    /// probes overdue for over 32 minutes, then that of the newest probe if
    /// this one is older.
    pub fn mark_overdue(
        &mut self,
        sent_at: DateTime<Utc>,
        deadline: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> bool {
        let sent = sent_at.timestamp_millis();
        let now_ms = now.timestamp_millis();
        let o = &mut self.overdue;
        if sent == EMPTY {
            return false;
        }
        let seen_s = seconds_after(sent_at, now);
        if let Some(i) = o.sent_ms.iter().position(|&s| s == sent) {
            o.seen_s[i] = o.seen_s[i].max(seen_s);
            return false;
        }
        let deadline_s = seconds_after(sent_at, deadline);
        // A free place, one whose probe is past its deadline, one overdue
        // for longer than recent minutes reach back, or the newest probe's
        // if it is newer than this one.
        let expired = |i: usize| {
            o.sent_ms[i] == EMPTY
                || now_ms.saturating_sub(o.sent_ms[i]) >= i64::from(o.deadline_s[i]) * 1000
        };
        let stale = |i: usize| now_ms.saturating_sub(o.sent_ms[i]) >= STALE_AFTER_MS;
        let place = (0..CAPACITY)
            .find(|&i| expired(i))
            .or_else(|| (0..CAPACITY).find(|&i| stale(i)))
            .or_else(|| {
                (0..CAPACITY)
                    .max_by_key(|&i| o.sent_ms[i])
                    .filter(|&i| o.sent_ms[i] > sent)
            });
        let Some(i) = place else {
            return false;
        };
        o.sent_ms[i] = sent;
        o.deadline_s[i] = deadline_s;
        o.seen_s[i] = seen_s;
        true
    }

    /// Forgets the overdue probe sent at `sent_at` (it arrived: its real
    /// latency is recorded instead). Returns whether it was counted.
    pub fn settle_overdue(&mut self, sent_at: DateTime<Utc>) -> bool {
        let sent = sent_at.timestamp_millis();
        match self.overdue.sent_ms.iter().position(|&s| s == sent) {
            Some(i) if sent != EMPTY => {
                self.overdue.sent_ms[i] = EMPTY;
                true
            }
            _ => false,
        }
    }
}
