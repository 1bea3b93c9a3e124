//! The [`ThresholdPolicy`] conformance suite: what every policy, built in or
//! an embedder's, must do for the Monitor to rely on it.
//!
//! Each check takes a factory of fresh policy instances (all built from the
//! same parameters) and panics with a message on the first violation;
//! [`policy_all`] runs them all. The inputs are a deterministic sweep (no
//! randomness, so a failure always reproduces): ordinary traffic, bursts of
//! failures, the extremes of time, latency and counts, and snapshots that
//! are damaged, truncated or not snapshots at all.
//!
//! ```
//! use continuity_core::{
//!     policy::{FailureLimit, FailurePolicy, FailureThreshold, ThresholdPolicy},
//!     testing::policy_conformance,
//! };
//!
//! policy_conformance::policy_all(&|| {
//!     Box::new(FailurePolicy::new(FailureThreshold::new(FailureLimit::Count(3))))
//!         as Box<dyn ThresholdPolicy>
//! });
//! ```

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::{
    domain::{FailureKind, Outcome},
    machine::Health,
    policy::{ThresholdPolicy, Verdict},
    window::SlidingWindow,
};

/// Builds a fresh policy; every call must give an equivalent instance.
pub type Make<'a> = &'a dyn Fn() -> Box<dyn ThresholdPolicy>;

fn t0() -> DateTime<Utc> {
    "2030-01-01T00:00:00Z".parse().expect("valid time")
}

fn at(secs: i64) -> DateTime<Utc> {
    t0() + TimeDelta::seconds(secs)
}

fn window() -> SlidingWindow {
    SlidingWindow::new(Duration::from_secs(3600), SlidingWindow::DEFAULT_BUCKETS)
        .expect("valid window")
}

/// Feeds an observation to the window and, if it asks, the policy.
fn feed(p: &mut dyn ThresholdPolicy, w: &mut SlidingWindow, when: DateTime<Utc>, o: &Outcome) {
    w.record(when, o);
    if p.records() {
        p.record(when, o);
    }
}

/// The `i`-th outcome of the ordinary traffic: mostly fast deliveries, a
/// slow one now and then, and runs of failures.
fn traffic(i: i64) -> Outcome {
    match i % 17 {
        0..=2 if (i / 17) % 3 == 1 => Outcome::Failed {
            kind: FailureKind::Refused,
        },
        5 => Outcome::Delivered {
            latency: Duration::from_secs(40 * 60),
        },
        _ => Outcome::Delivered {
            latency: Duration::from_secs(u64::try_from(i % 30).unwrap_or(0) + 1),
        },
    }
}

/// Every method the Monitor calls, on the verdict just given.
fn ask_everything(p: &dyn ThresholdPolicy, w: &SlidingWindow, v: &Verdict, now: DateTime<Utc>) {
    let _ = p.condition();
    let _ = p.health(v, true);
    let _ = p.health(v, false);
    let _ = p.counts_ticks();
    let _ = p.valid_until(v, w, now);
    let _ = p.absorbs_below(v, w, now);
    let _ = p.peek(w, now);
    let _ = p.memory_bytes();
    let _ = v.reading.to_string();
}

/// Runs every check.
pub fn policy_all(make: Make<'_>) {
    deterministic(make);
    unknown_without_data(make);
    bounded_memory(make);
    never_panics(make);
    condition_is_stable(make);
    honest_validity(make);
    restore_never_panics(make);
    snapshot_round_trip(make);
}

/// The same observations and evaluations give the same verdicts, health,
/// validity and absorb threshold, on two fresh instances.
pub fn deterministic(make: Make<'_>) {
    let (mut a, mut b) = (make(), make());
    let (mut wa, mut wb) = (window(), window());
    for i in 0..2_000 {
        let when = at(i * 20);
        let o = traffic(i);
        feed(a.as_mut(), &mut wa, when, &o);
        feed(b.as_mut(), &mut wb, when, &o);
        if i % 3 == 0 {
            let now = when + TimeDelta::seconds(1);
            let va = a.evaluate(&wa, now);
            let vb = b.evaluate(&wb, now);
            assert_eq!(
                va,
                vb,
                "{}: two evaluations of the same input differ",
                a.condition()
            );
            assert_eq!(
                a.health(&va, true),
                b.health(&vb, true),
                "{}: health differs",
                a.condition()
            );
            assert_eq!(a.valid_until(&va, &wa, now), b.valid_until(&vb, &wb, now));
            assert_eq!(
                a.absorbs_below(&va, &wa, now),
                b.absorbs_below(&vb, &wb, now)
            );
            assert_eq!(a.peek(&wa, now), b.peek(&wb, now));
        }
    }
}

/// Without any observation a policy says [`Health::Unknown`], never healthy
/// nor breached, however long it has watched: silence is not evidence.
pub fn unknown_without_data(make: Make<'_>) {
    let mut p = make();
    let w = window();
    for secs in [0, 1, 59, 60, 121, 3_600, 86_400, 30 * 86_400] {
        let now = at(secs);
        let v = p.evaluate(&w, now);
        for full in [false, true] {
            assert_eq!(
                p.health(&v, full),
                Health::Unknown,
                "{}: without data at +{secs} s (watched in full: {full}) the verdict is {v:?}",
                p.condition()
            );
        }
    }
}

/// What the Monitor skips on the policy's word does not change its
/// verdict: evaluated again before [`valid_until`](ThresholdPolicy::valid_until)
/// without a new observation, or after recording a delivery faster than
/// [`absorbs_below`](ThresholdPolicy::absorbs_below), it is still as
/// breached as it said; a healthy verdict does not turn breached as time
/// passes (it may turn unknown as data expires), nor anything but healthy
/// by an absorbed delivery.
pub fn honest_validity(make: Make<'_>) {
    let (mut a, mut b) = (make(), make());
    let (mut wa, mut wb) = (window(), window());
    for i in 0..1_500 {
        let when = at(i * 25);
        let o = traffic(i);
        feed(a.as_mut(), &mut wa, when, &o);
        feed(b.as_mut(), &mut wb, when, &o);
        if i % 5 != 0 {
            continue;
        }
        let now = when + TimeDelta::seconds(1);
        let va = a.evaluate(&wa, now);
        let _ = b.evaluate(&wb, now);
        let ticks = a.counts_ticks();
        let until = a.valid_until(&va, &wa, now);
        // Some time before the verdict stops holding, at most a day on.
        let later = [now + TimeDelta::days(1), until - TimeDelta::milliseconds(1)]
            .into_iter()
            .filter(|t| *t > now)
            .min();
        if let Some(later) = later {
            let v = b.evaluate(&wb, later);
            assert_eq!(
                v.breached,
                va.breached,
                "{}: valid until {until}, but at {later} it says {v:?} after {va:?}",
                a.condition()
            );
            // Healthy may turn unknown as data expires: that is no evidence
            // either way, so the Monitor need not look.
            if ticks && a.health(&va, true) == Health::Healthy {
                assert_ne!(
                    b.health(&v, true),
                    Health::Breached,
                    "{}: health changed",
                    a.condition()
                );
            }
            // Back in step: b evaluated once more than a.
            let _ = a.evaluate(&wa, later);
        }
        if until == DateTime::<Utc>::MAX_UTC
            && let Some(below) = a.absorbs_below(&va, &wa, now)
        {
            let fast = Outcome::Delivered {
                latency: below.saturating_sub(Duration::from_millis(1)),
            };
            let t = wa.newest_bucket_start().map_or(now, |s| s.max(now));
            let before = a.evaluate(&wa, t);
            feed(a.as_mut(), &mut wa, t, &fast);
            feed(b.as_mut(), &mut wb, t, &fast);
            let after = a.evaluate(&wa, t);
            let _ = b.evaluate(&wb, t);
            assert_eq!(
                after.breached,
                before.breached,
                "{}: absorbs deliveries under {below:?}, but one changed {before:?} to {after:?}",
                a.condition()
            );
            // Healthy stays healthy; unknown may turn healthy (the Monitor
            // absorbs only while no condition of the direction is raised).
            if ticks && a.health(&before, true) == Health::Healthy {
                assert_eq!(
                    a.health(&after, true),
                    Health::Healthy,
                    "{}: an absorbed delivery changed a healthy verdict",
                    a.condition()
                );
            }
        }
    }
}

/// What the policy holds does not grow with the number of observations.
pub fn bounded_memory(make: Make<'_>) {
    let mut p = make();
    let mut w = window();
    let mut after_warm_up = 0;
    for i in 0..20_000 {
        let when = at(i * 5);
        feed(p.as_mut(), &mut w, when, &traffic(i));
        if i % 7 == 0 {
            let v = p.evaluate(&w, when);
            ask_everything(p.as_ref(), &w, &v, when);
        }
        if i == 1_000 {
            after_warm_up = p.memory_bytes();
        }
    }
    let end = p.memory_bytes();
    assert!(
        end <= after_warm_up,
        "{}: memory grew from {after_warm_up} to {end} bytes with observations",
        p.condition()
    );
}

/// No input makes the policy panic: the extremes of time (in any order),
/// latency and counts, long gaps and observations far ahead or behind.
pub fn never_panics(make: Make<'_>) {
    let times = [
        DateTime::<Utc>::MIN_UTC,
        DateTime::<Utc>::from_timestamp_millis(-1).expect("valid"),
        DateTime::<Utc>::UNIX_EPOCH,
        t0(),
        at(1),
        at(86_400 * 365 * 100),
        DateTime::<Utc>::MAX_UTC,
    ];
    let outcomes = [
        Outcome::Delivered {
            latency: Duration::ZERO,
        },
        Outcome::Delivered {
            latency: Duration::from_millis(1),
        },
        Outcome::Delivered {
            latency: Duration::from_secs(u64::MAX / 2),
        },
        Outcome::Delivered {
            latency: Duration::MAX,
        },
        Outcome::Failed {
            kind: FailureKind::Refused,
        },
        Outcome::Failed {
            kind: FailureKind::TimedOut,
        },
    ];
    for &first in &times {
        let mut p = make();
        let mut w = window();
        let v = p.evaluate(&w, first);
        ask_everything(p.as_ref(), &w, &v, first);
        for &when in &times {
            for o in &outcomes {
                feed(p.as_mut(), &mut w, when, o);
            }
            for &now in &times {
                let v = p.evaluate(&w, now);
                ask_everything(p.as_ref(), &w, &v, now);
            }
        }
        // Many observations at one instant: counts far beyond any real window.
        for _ in 0..5_000 {
            feed(p.as_mut(), &mut w, at(5), &outcomes[4]);
        }
        let v = p.evaluate(&w, at(6));
        ask_everything(p.as_ref(), &w, &v, at(6));
    }
}

/// The condition's name is not empty and does not change with use.
pub fn condition_is_stable(make: Make<'_>) {
    let mut p = make();
    let name = p.condition().to_owned();
    assert!(!name.trim().is_empty(), "a policy's condition needs a name");
    let mut w = window();
    for i in 0..100 {
        feed(p.as_mut(), &mut w, at(i * 30), &traffic(i));
        let _ = p.evaluate(&w, at(i * 30));
    }
    assert_eq!(p.condition(), name, "the condition's name changed");
}

/// Both policies see the same observation, and are evaluated alike every
/// few; their verdicts must agree.
fn step_both(
    pair: (&mut dyn ThresholdPolicy, &mut dyn ThresholdPolicy),
    windows: (&mut SlidingWindow, &mut SlidingWindow),
    i: i64,
    what: &str,
) {
    let (a, b) = pair;
    let (wa, wb) = windows;
    let when = at(i * 20);
    let o = traffic(i);
    feed(a, wa, when, &o);
    feed(b, wb, when, &o);
    if i % 3 == 0 {
        let now = when + TimeDelta::seconds(1);
        let (va, vb) = (a.evaluate(wa, now), b.evaluate(wb, now));
        assert_eq!(va, vb, "{}: {what}: the verdicts differ", a.condition());
        assert_eq!(a.health(&va, true), b.health(&vb, true));
        assert_eq!(a.valid_until(&va, wa, now), b.valid_until(&vb, wb, now));
        assert_eq!(a.absorbs_below(&va, wa, now), b.absorbs_below(&vb, wb, now));
        assert_eq!(a.peek(wa, now), b.peek(wb, now));
    }
}

/// Deterministic bytes (xorshift), so a failure reproduces.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[0]
        })
        .collect()
}

/// [`restore`](ThresholdPolicy::restore) of any bytes (empty, random,
/// a snapshot truncated, lengthened or with a byte changed) never panics;
/// bytes it refuses leave the policy as it was (it judges as a twin never
/// offered them), and bytes it takes leave it working, deterministically.
pub fn restore_never_panics(make: Make<'_>) {
    let (mut a, mut b) = (make(), make());
    let (mut wa, mut wb) = (window(), window());
    let mut i = 0i64;
    while i < 900 {
        step_both(
            (a.as_mut(), b.as_mut()),
            (&mut wa, &mut wb),
            i,
            "warming up",
        );
        i += 1;
    }
    let own = a.snapshot();
    let mut offers: Vec<Vec<u8>> = vec![Vec::new(), vec![0], vec![0xff; 4096]];
    for (seed, len) in [(1, 1), (2, 7), (3, 64), (4, 217), (5, 500), (6, 4096)] {
        offers.push(noise(seed, len));
    }
    if let Some(own) = &own {
        for len in 0..own.len() {
            offers.push(own[..len].to_vec());
        }
        offers.push([own.as_slice(), &[0]].concat());
        offers.push(vec![0; own.len()]);
        offers.push(vec![0xff; own.len()]);
        for seed in 0..32u64 {
            // The same length and first byte (a format version, often):
            // random bytes that get past the first checks.
            let mut b = noise(100 + seed, own.len());
            if let (Some(first), Some(to)) = (own.first(), b.first_mut()) {
                *to = *first;
            }
            offers.push(b);
        }
        for at in 0..own.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut b = own.clone();
                b[at] ^= flip;
                offers.push(b);
            }
        }
    }
    let extremes = [
        DateTime::<Utc>::MIN_UTC,
        DateTime::<Utc>::UNIX_EPOCH,
        DateTime::<Utc>::MAX_UTC,
    ];
    for (n, offer) in offers.iter().enumerate() {
        if a.restore(offer) {
            assert!(
                b.restore(offer),
                "{}: took offer {n} once and refused it the second time",
                a.condition()
            );
            // Whatever was taken, the policy still answers at any time.
            for now in extremes {
                let (va, vb) = (a.evaluate(&wa, now), b.evaluate(&wb, now));
                ask_everything(a.as_ref(), &wa, &va, now);
                assert_eq!(
                    va,
                    vb,
                    "{}: offer {n} taken, verdicts differ",
                    a.condition()
                );
            }
        }
        for _ in 0..6 {
            step_both(
                (a.as_mut(), b.as_mut()),
                (&mut wa, &mut wb),
                i,
                &format!("after offer {n} of {} bytes", offer.len()),
            );
            i += 1;
        }
    }
}

/// A policy's [`snapshot`](ThresholdPolicy::snapshot), if it gives one, is
/// taken by fresh policies built alike, which then give the same snapshot
/// back and judge the same inputs alike.
pub fn snapshot_round_trip(make: Make<'_>) {
    let mut teacher = make();
    let mut w = window();
    for i in 0..3_000 {
        let when = at(i * 20);
        feed(teacher.as_mut(), &mut w, when, &traffic(i));
        if i % 5 == 0 {
            let _ = teacher.evaluate(&w, when + TimeDelta::seconds(1));
        }
    }
    let Some(snapshot) = teacher.snapshot() else {
        return;
    };
    let (mut a, mut b) = (make(), make());
    for p in [&mut a, &mut b] {
        assert!(
            p.restore(&snapshot),
            "{}: its own snapshot was refused",
            teacher.condition()
        );
    }
    assert_eq!(
        a.snapshot().as_deref(),
        Some(snapshot.as_slice()),
        "{}: restored, it gives another snapshot",
        a.condition()
    );
    let (mut wa, mut wb) = (window(), window());
    for i in 3_000..4_500 {
        step_both((a.as_mut(), b.as_mut()), (&mut wa, &mut wb), i, "restored");
    }
}
