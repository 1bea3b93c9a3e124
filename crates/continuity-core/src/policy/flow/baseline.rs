//! The learned baseline of one direction: what share of its samples
//! normally fail, and how its delivery latencies are normally spread,
//! remembered with an exponential decay (a half-life) so that old traffic
//! fades and a lasting change becomes the new normal.
//!
//! # Forward decay
//!
//! Decaying every figure every minute would cost a pass over the histogram
//! per direction per minute. Instead each observation is added with the
//! weight `2^((minute - origin) / half_life)`, which grows with time
//! (Cormode et al., "Forward Decay", ICDE 2009): every ratio of two sums is
//! then exactly the ratio of the decayed figures, and an effective count is
//! a sum divided by the weight of the present minute. When the weights pass
//! 2⁶⁰ everything is rescaled once and the origin moves.
//!
//! # Latency classes
//!
//! Latencies are kept in 44 half-octave classes: class 0 is below 1 ms,
//! class `2k + 1` is `[2^k, 1.5 · 2^k)` ms and class `2k + 2` is
//! `[1.5 · 2^k, 2^(k+1))` ms, and the top class everything from 2²¹ ms
//! (about 35 minutes) up. A class is found from the bits of the millisecond
//! count, without a logarithm.

use std::time::Duration;

/// Number of latency classes: the top one holds everything from 2²¹ ms
/// (about 35 minutes) up, slower than any normal a baseline can learn to
/// tell apart.
pub(super) const CLASSES: usize = 44;

/// Past this exponent of the forward-decay weight, sums are rescaled.
const RESCALE_EXPONENT: f64 = 60.0;

/// The latency class of `latency` (see the module docs).
pub(super) fn class_of(latency: Duration) -> u8 {
    let ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
    if ms == 0 {
        return 0;
    }
    let k = 63 - ms.leading_zeros();
    let half = if k == 0 { 0 } else { (ms >> (k - 1)) & 1 };
    let class = 2 * u64::from(k) + half + 1;
    u8::try_from(class.min(CLASSES as u64 - 1)).unwrap_or(CLASSES as u8 - 1)
}

/// The smallest latency in `class`.
pub(super) fn class_floor(class: u8) -> Duration {
    if class == 0 {
        return Duration::ZERO;
    }
    let k = u32::from(class - 1) / 2;
    let half = u64::from(class - 1) % 2;
    // In microseconds: class 2 starts at 1.5 ms.
    let us = (1000u64 << k) + half * (500u64 << k);
    Duration::from_micros(us)
}

/// Weighted figures to leave out of the baseline: those of the recent
/// minutes under test, so that the data judged is not part of the normal
/// it is judged against (which would make a new tenant's first outage
/// its own normal).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(super) struct Excluded {
    pub(super) samples: f64,
    pub(super) failures: f64,
    pub(super) deliveries: f64,
    pub(super) slow: f64,
}

/// The decayed figures of one direction (see the module docs).
// `repr(C)`: the figures every observation updates come first, next to
// each other (with 100,000 tenants each cache line touched is a memory trip).
#[derive(Clone, Debug, PartialEq)]
#[repr(C)]
pub(super) struct Baseline {
    /// The minute (since the Unix epoch) whose weight is 1.
    origin: i64,
    /// Half-life in minutes (at least 1).
    half_life: f64,
    /// Weighted samples (deliveries plus failures), failures and deliveries.
    samples: f64,
    failures: f64,
    deliveries: f64,
    /// Weighted deliveries per latency class.
    classes: [f32; CLASSES],
}

impl Baseline {
    pub(super) fn new(half_life: Duration) -> Self {
        Baseline {
            origin: i64::MIN,
            half_life: (half_life.as_secs_f64() / 60.0).max(1.0),
            samples: 0.0,
            failures: 0.0,
            deliveries: 0.0,
            classes: [0.0; CLASSES],
        }
    }

    /// The forward-decay weight of `minute`, rescaling first if it would
    /// grow past 2⁶⁰ (or the origin is not set yet).
    pub(super) fn weight_of(&mut self, minute: i64) -> f64 {
        if self.origin == i64::MIN {
            self.origin = minute;
        }
        let mut exponent = minute.saturating_sub(self.origin) as f64 / self.half_life;
        if exponent > RESCALE_EXPONENT {
            self.rescale(exponent);
            self.origin = minute;
            exponent = 0.0;
        }
        // An observation from before the origin weighs less than 1; one
        // absurdly far back weighs nothing.
        exponent.max(-RESCALE_EXPONENT).exp2()
    }

    fn rescale(&mut self, exponent: f64) {
        let factor = (-exponent).exp2();
        self.samples *= factor;
        self.failures *= factor;
        self.deliveries *= factor;
        for c in &mut self.classes {
            // Classes too small for an f32 after the rescale vanish: they
            // weighed less than 2⁻¹⁰⁰ of the present.
            *c = (f64::from(*c) * factor) as f32;
        }
    }

    /// The weight of a minute relative to the next: `2^(−1/half-life)`.
    pub(super) fn minute_step(&self) -> f64 {
        (-1.0 / self.half_life).exp2()
    }

    /// Learns one failure (`latency` `None`) or delivery at `minute`,
    /// counted `share` times (1 normally; less while the flow is unusual).
    pub(super) fn learn(&mut self, minute: i64, latency: Option<Duration>, share: f64) {
        let w = self.weight_of(minute) * share;
        self.samples += w;
        match latency {
            None => self.failures += w,
            Some(latency) => {
                self.deliveries += w;
                let class = usize::from(class_of(latency));
                self.classes[class] = (f64::from(self.classes[class]) + w) as f32;
            }
        }
    }

    /// The effective number of deliveries at `minute`, `ex` left out.
    pub(super) fn effective_deliveries(&mut self, minute: i64, ex: &Excluded) -> f64 {
        let deliveries = (self.deliveries - ex.deliveries).max(0.0);
        if deliveries == 0.0 {
            return 0.0;
        }
        deliveries / self.weight_of(minute)
    }

    /// The share of samples that failed, as learned: `(failures + prior ·
    /// weight) / (samples + weight)`, where the prior (a rate and its weight
    /// in samples) stands in for a new tenant's missing history.
    pub(super) fn failure_rate(
        &mut self,
        minute: i64,
        prior_rate: f64,
        prior_samples: f64,
        ex: &Excluded,
    ) -> f64 {
        let w = if self.samples == 0.0 {
            1.0
        } else {
            self.weight_of(minute)
        };
        let prior = prior_samples * w;
        let samples = (self.samples - ex.samples).max(0.0);
        let failures = (self.failures - ex.failures).clamp(0.0, samples);
        (failures + prior_rate * prior) / (samples + prior)
    }

    /// The class above which at most `share` of the deliveries lie, at
    /// least `floor`, and the share that lies above it, `ex` left out (its
    /// slow deliveries from the classes above, the rest from all). `None`
    /// without deliveries.
    pub(super) fn slow_class(&self, share: f64, floor: u8, ex: &Excluded) -> Option<(u8, f64)> {
        let deliveries = self.deliveries - ex.deliveries;
        if deliveries <= 0.0 {
            return None;
        }
        let limit = share * deliveries;
        let mut above = 0.0;
        let mut class = 0u8;
        for c in (0..CLASSES).rev() {
            let here = f64::from(self.classes[c]);
            if above + here > limit {
                class = c as u8;
                break;
            }
            above += here;
        }
        if class < floor {
            above = self.classes[usize::from(floor) + 1..]
                .iter()
                .map(|&c| f64::from(c))
                .sum();
            class = floor;
        }
        let above = (above - ex.slow).clamp(0.0, deliveries);
        Some((class, above / deliveries))
    }

    /// The share of the deliveries in `class` or above (so at least the
    /// share slower than the class's floor), with `pseudo` deliveries added
    /// there: a history that never saw a latency this long makes it rare,
    /// not impossible. `None` without deliveries.
    pub(super) fn share_from(&self, class: u8, pseudo: f64, minute: i64) -> Option<f64> {
        if self.deliveries <= 0.0 {
            return None;
        }
        // Forward-decayed sums share one weight: scale the pseudo-count to it.
        let w = if self.origin == i64::MIN {
            1.0
        } else {
            (minute.saturating_sub(self.origin) as f64 / self.half_life)
                .clamp(-RESCALE_EXPONENT, RESCALE_EXPONENT)
                .exp2()
        };
        let above: f64 = self.classes[usize::from(class).min(CLASSES - 1)..]
            .iter()
            .map(|&c| f64::from(c))
            .sum();
        let pseudo = pseudo * w;
        Some(((above + pseudo) / (self.deliveries + pseudo)).min(1.0))
    }

    /// Bytes held (all inline).
    pub(super) fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
    }
}

// ---- Snapshots: the baseline kept in the store ----
//
// A fixed little-endian layout rather than a serializer crate: one record of
// about fifty numbers needs no dependency, and its size is known.

/// The snapshot format's version, its first byte.
const SNAPSHOT_VERSION: u8 = 1;

/// Bytes in a snapshot: the version, the origin (`i64`), the half-life in
/// minutes and the three sums (`f64`), then the classes (`f32`, as kept).
pub(super) const SNAPSHOT_LEN: usize = 1 + 8 + 4 * 8 + CLASSES * 4;

impl Baseline {
    /// The learned figures as a snapshot; `None` before anything was learned.
    pub(super) fn snapshot(&self) -> Option<Vec<u8>> {
        if self.origin == i64::MIN {
            return None;
        }
        // Filled at fixed offsets, then copied once: taken for every
        // direction of every tenant each hour.
        let mut out = [0u8; SNAPSHOT_LEN];
        out[0] = SNAPSHOT_VERSION;
        out[1..9].copy_from_slice(&self.origin.to_le_bytes());
        let figures = [self.half_life, self.samples, self.failures, self.deliveries];
        for (to, v) in out[9..41].chunks_exact_mut(8).zip(figures) {
            to.copy_from_slice(&v.to_le_bytes());
        }
        for (to, c) in out[41..].chunks_exact_mut(4).zip(&self.classes) {
            to.copy_from_slice(&c.to_le_bytes());
        }
        Some(out.to_vec())
    }

    /// Replaces the learned figures with those of `snapshot` if it decodes
    /// and passes the checks (see [`decode`](Self::decode)); returns whether
    /// it did. A refused snapshot leaves the baseline as it was.
    pub(super) fn restore(&mut self, snapshot: &[u8]) -> bool {
        match Self::decode(snapshot, self.half_life) {
            Some(restored) => {
                *self = restored;
                true
            }
            None => false,
        }
    }

    /// A baseline from `bytes`, or `None` when they are not a snapshot of
    /// this format, hold a figure that no learning can produce (not finite,
    /// negative, more failures or deliveries than samples, an origin outside
    /// the representable time range), or were learned with another
    /// half-life than `half_life`: their weights would decay at the wrong
    /// pace.
    fn decode(bytes: &[u8], half_life: f64) -> Option<Baseline> {
        if bytes.len() != SNAPSHOT_LEN || bytes.first() != Some(&SNAPSHOT_VERSION) {
            return None;
        }
        let word = |at: usize| -> Option<[u8; 8]> { bytes.get(at..at + 8)?.try_into().ok() };
        let origin = i64::from_le_bytes(word(1)?);
        let float = |i: usize| word(9 + 8 * i).map(f64::from_le_bytes);
        let (stored_half_life, samples, failures, deliveries) =
            (float(0)?, float(1)?, float(2)?, float(3)?);
        let minutes = |t: chrono::DateTime<chrono::Utc>| t.timestamp().div_euclid(60);
        let origin_known = (minutes(chrono::DateTime::<chrono::Utc>::MIN_UTC)
            ..=minutes(chrono::DateTime::<chrono::Utc>::MAX_UTC))
            .contains(&origin);
        // A sum past f32's range cannot be: each weight is at most 2⁶⁰,
        // and the classes hold the same weights in single precision.
        let weight = |v: f64| v.is_finite() && (0.0..=f64::from(f32::MAX)).contains(&v);
        if !origin_known
            || stored_half_life.to_bits() != half_life.to_bits()
            || ![samples, failures, deliveries].into_iter().all(weight)
            || failures > samples
            || deliveries > samples
        {
            return None;
        }
        let mut classes = [0.0f32; CLASSES];
        let start = 9 + 4 * 8;
        for (i, class) in classes.iter_mut().enumerate() {
            let at = start + 4 * i;
            let v = f32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?);
            if !(v.is_finite() && v >= 0.0) {
                return None;
            }
            *class = v;
        }
        Some(Baseline {
            origin,
            half_life,
            samples,
            failures,
            deliveries,
            classes,
        })
    }
}

#[cfg(test)]
mod snapshot_tests {
    use std::time::Duration;

    use chrono::{DateTime, TimeDelta, Utc};

    use super::{super::*, *};
    use crate::domain::FailureKind;

    fn t0() -> DateTime<Utc> {
        "2026-03-02T00:00:00Z".parse().expect("valid time")
    }

    fn window() -> SlidingWindow {
        SlidingWindow::new(Duration::from_secs(3600), 12).expect("valid window")
    }

    fn ok() -> Outcome {
        Outcome::Delivered {
            latency: Duration::from_secs(3),
        }
    }

    fn fail() -> Outcome {
        Outcome::Failed {
            kind: FailureKind::Refused,
        }
    }

    /// `minutes` of 4 deliveries a minute, one sample in 500 failing,
    /// evaluated every minute, from `from`; returns the time after.
    fn feed(
        p: &mut FlowPolicy,
        w: &mut SlidingWindow,
        from: DateTime<Utc>,
        minutes: i64,
    ) -> DateTime<Utc> {
        let mut t = from;
        let mut n = 0u64;
        for _ in 0..minutes {
            for s in [5, 20, 35, 50] {
                n += 1;
                let o = if n.is_multiple_of(500) { fail() } else { ok() };
                let at = t + TimeDelta::seconds(s);
                w.record(at, &o);
                p.record(at, &o);
            }
            t += TimeDelta::minutes(1);
            p.evaluate(w, t);
        }
        t
    }

    /// Two days of traffic learned.
    fn learned() -> (FlowPolicy, DateTime<Utc>) {
        let mut p = FlowPolicy::new(FlowThreshold::default());
        let t = feed(&mut p, &mut window(), t0(), 2 * 1440);
        (p, t)
    }

    /// Four failures among the ten samples of one minute, then an evaluation.
    fn burst(p: &mut FlowPolicy, w: &mut SlidingWindow, t: DateTime<Utc>) -> Verdict {
        for i in 0..10 {
            let o = if i % 3 == 0 { fail() } else { ok() };
            let at = t + TimeDelta::seconds(5 * i);
            w.record(at, &o);
            p.record(at, &o);
        }
        p.evaluate(w, t + TimeDelta::minutes(1))
    }

    #[test]
    fn a_snapshot_is_small_and_restores_the_same_baseline() {
        assert!(
            FlowPolicy::new(FlowThreshold::default())
                .snapshot()
                .is_none(),
            "nothing learned, nothing to keep"
        );
        let (p, _) = learned();
        let bytes = p.snapshot().expect("learned");
        assert_eq!(bytes.len(), SNAPSHOT_LEN);
        assert_eq!(SNAPSHOT_LEN, 217);
        let mut fresh = FlowPolicy::new(FlowThreshold::default());
        assert!(fresh.restore(&bytes));
        assert_eq!(fresh.baseline, p.baseline);
        assert_eq!(fresh.snapshot(), Some(bytes));
    }

    #[test]
    fn a_restored_baseline_judges_as_the_learned_one_and_a_cold_one_does_not() {
        let (p, t) = learned();
        let bytes = p.snapshot().expect("learned");
        let mut restored = FlowPolicy::new(FlowThreshold::default());
        assert!(restored.restore(&bytes));
        let v = burst(&mut restored, &mut window(), t);
        assert!(v.breached, "4 failures in 10 at a learned 0.2 %: {v:?}");
        let mut cold = FlowPolicy::new(FlowThreshold::default());
        let v = burst(&mut cold, &mut window(), t);
        assert!(!v.breached, "the cold prior of 2 % needs more: {v:?}");
    }

    #[test]
    fn restoring_keeps_the_verdict_in_progress() {
        let (teacher, _) = learned();
        let bytes = teacher.snapshot().expect("learned");
        // A policy in the middle of an outage: latched, trouble remembered.
        let (mut p, t) = learned();
        let mut w = window();
        let v = burst(&mut p, &mut w, t);
        assert!(v.breached);
        let (latched, episode, unusual) = (p.latched, p.episode.map(|e| e.until), p.unusual);
        assert!(latched.is_some() && episode.is_some());
        let before = p.baseline.clone();
        assert!(p.restore(&bytes));
        assert_ne!(p.baseline, before, "the baseline is replaced");
        assert_eq!(p.baseline, teacher.baseline);
        assert_eq!(
            (p.latched, p.episode.map(|e| e.until), p.unusual),
            (latched, episode, unusual),
            "the latch and the episode stay"
        );
    }

    #[test]
    fn minutes_counted_before_a_restore_are_not_taken_out_of_the_restored_baseline() {
        let (teacher, t) = learned();
        let bytes = teacher.snapshot().expect("learned");
        // Half an hour of a third of the mail failing, then the baseline
        // restored: those minutes are not in it.
        let mut p = FlowPolicy::new(FlowThreshold::default());
        let mut w = window();
        for minute in 0..30 {
            let at = t - TimeDelta::minutes(30 - minute);
            for i in 0..6 {
                let o = if i % 3 == 0 { fail() } else { ok() };
                w.record(at, &o);
                p.record(at, &o);
            }
        }
        assert!(p.restore(&bytes));
        let mut fresh = FlowPolicy::new(FlowThreshold::default());
        assert!(fresh.restore(&bytes));
        let (ours, theirs) = (p.normal_failure_rate(t), fresh.normal_failure_rate(t));
        assert!(
            (ours - theirs).abs() < 1e-12,
            "the restored rate {theirs}, with earlier minutes taken out {ours}"
        );
        // Learned after the restore, a minute is left out again.
        let at = t + TimeDelta::seconds(10);
        for _ in 0..20 {
            p.record(at, &fail());
            fresh.record(at, &fail());
        }
        let later = t + TimeDelta::minutes(1);
        let (ours, theirs) = (
            p.normal_failure_rate(later),
            fresh.normal_failure_rate(later),
        );
        assert!((ours - theirs).abs() < 1e-12, "{ours} vs {theirs}");
        assert!(
            ours < 0.01,
            "the 20 failures under test are not normal: {ours}"
        );
    }

    #[test]
    fn a_snapshot_that_does_not_fit_is_refused_and_changes_nothing() {
        let (p, t) = learned();
        let good = p.snapshot().expect("learned");
        let mut bad: Vec<Vec<u8>> = Vec::new();
        for len in 0..good.len() {
            bad.push(good[..len].to_vec());
        }
        bad.push([good.as_slice(), &[0]].concat());
        let mut version = good.clone();
        version[0] = 2;
        bad.push(version);
        let set = |at: usize, bytes: &[u8]| {
            let mut b = good.clone();
            b[at..at + bytes.len()].copy_from_slice(bytes);
            b
        };
        // The origin past the end of time; then each f64 and some classes
        // not finite or negative.
        bad.push(set(1, &i64::MAX.to_le_bytes()));
        bad.push(set(1, &i64::MIN.to_le_bytes()));
        for field in 0..4 {
            for v in [f64::NAN, f64::INFINITY, -1.0, 1e300] {
                bad.push(set(9 + 8 * field, &v.to_le_bytes()));
            }
        }
        for class in [0, 7, CLASSES - 1] {
            for v in [f32::NAN, f32::NEG_INFINITY, -0.5] {
                bad.push(set(41 + 4 * class, &v.to_le_bytes()));
            }
        }
        // More failures than samples.
        let samples = f64::from_le_bytes(good[17..25].try_into().unwrap());
        bad.push(set(25, &(samples * 2.0).to_le_bytes()));
        // Learned with a half-life of 2 days, configured 3.
        let mut other = FlowPolicy::new(FlowThreshold {
            half_life: Duration::from_secs(2 * 86_400),
            ..FlowThreshold::default()
        });
        feed(&mut other, &mut window(), t0(), 60);
        bad.push(other.snapshot().expect("learned"));

        let (mut target, _) = learned();
        let mut twin = target.clone();
        let (mut wa, mut wb) = (window(), window());
        for b in &bad {
            assert!(!target.restore(b), "accepted {} bytes: {b:?}", b.len());
        }
        assert_eq!(
            target.baseline, twin.baseline,
            "a refused snapshot changes nothing"
        );
        assert_eq!(burst(&mut target, &mut wa, t), burst(&mut twin, &mut wb, t));
        // The other policy's own snapshot fits it.
        let mine = other.snapshot().expect("learned");
        let mut two_days = FlowPolicy::new(FlowThreshold {
            half_life: Duration::from_secs(2 * 86_400),
            ..FlowThreshold::default()
        });
        assert!(two_days.restore(&mine));
    }
}
