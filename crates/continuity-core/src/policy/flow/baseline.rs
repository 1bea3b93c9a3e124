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

    /// Bytes held (all inline).
    pub(super) fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
    }
}
