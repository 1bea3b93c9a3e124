//! Unit tests of the window: bucketing, the sketch's error bound, memory
//! bounds under adversarial input, and properties against an exact model.

use super::*;
use super::{
    sketch::{
        COUNT_MASK, GAMMA, LN_GAMMA, LOG2_NS_PER_MS, LOG2_TABLE, MAX_BIN, MAX_LATENCY_NS,
        NS_PER_MS, bin_of, bin_value_ms, const_ln, entry_count, entry_key, fast_log2,
    },
    stats::nearest_rank,
};
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
            0..100,
        ),
        now_offset in 0i64..5_400_000,
        qs in proptest::collection::vec(0.0f64..=1.0, 1..8),
    ) {
        // At most 100 samples: below the sketch's 104 entries, so no collapse.
        let mut qs = qs;
        qs.extend([0.0, 0.5, 0.9, 0.95, 0.99, 1.0]);
        check_against_exact(&samples, now_offset, &qs);
    }

    #[test]
    fn small_latencies_match_exact_values(
        samples in proptest::collection::vec(
            (0i64..3_600_000, 1_000u64..200_000, proptest::bool::weighted(0.05)),
            1..100,
        ),
        q in 0.0f64..=1.0,
    ) {
        check_against_exact(&samples, 3_600_000, &[q, 0.0, 0.5, 0.95, 1.0]);
    }

    #[test]
    fn clustered_latencies_match_exact_values(
        samples in proptest::collection::vec(
            (0i64..900_000, 1_000u64..5_000_000, proptest::bool::weighted(0.05)),
            1..100,
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

#[test]
fn overdue_probes_keep_the_oldest_and_what_each_was_seen_to_take() {
    let mut w = hour();
    let deadline = |sent: i64| at_s(sent + 1800);
    // Five probes sent a minute apart, each first seen pending a minute
    // after it was sent: the fifth finds the four places taken by older ones.
    for k in 0..5 {
        let sent = k * 60;
        assert_eq!(
            w.mark_overdue(at_s(sent), deadline(sent), at_s(sent + 60)),
            k < 4,
            "probe {k}"
        );
    }
    let now = at_s(600);
    let stats = w.stats(now);
    let ages: Vec<_> = stats
        .overdue_over(Duration::ZERO)
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(ages, [600, 540, 480, 420].map(Duration::from_secs));
    // Known to have taken only what they had when last seen pending.
    let seen: Vec<_> = stats
        .overdue_seen_over(Duration::ZERO)
        .into_iter()
        .flatten()
        .map(|(_, seen)| seen)
        .collect();
    assert_eq!(seen, [Duration::from_secs(60); 4]);
    // Seen pending again: that is what they took at least; marking again
    // counts nothing anew.
    assert!(!w.mark_overdue(at_s(0), deadline(0), at_s(590)));
    let stats = w.stats(now);
    let first = stats.overdue_seen_over(Duration::ZERO)[0];
    assert_eq!(
        first,
        Some((Duration::from_secs(600), Duration::from_secs(590)))
    );
    // An older probe than those kept takes the newest one's place.
    assert!(w.mark_overdue(at_s(-60), deadline(-60), at_s(600)));
    let ages: Vec<_> = w
        .stats(now)
        .overdue_over(Duration::ZERO)
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(ages, [660, 600, 540, 480].map(Duration::from_secs));
    // A place is freed when its probe arrives.
    assert!(w.settle_overdue(at_s(0)));
    assert!(w.mark_overdue(at_s(300), deadline(300), at_s(600)));
    // Or when its probe has been overdue for longer than recent minutes
    // reach back (32), even before its deadline (here a day).
    let mut w = hour();
    let day = |sent: i64| at_s(sent + 86_400);
    for k in 0..4 {
        assert!(w.mark_overdue(at_s(k * 60), day(k * 60), at_s(k * 60 + 60)));
    }
    assert!(
        !w.mark_overdue(at_s(1800), day(1800), at_s(1860)),
        "all fresh"
    );
    assert!(w.mark_overdue(at_s(1980), day(1980), at_s(1980 + 60)));
    let ages: Vec<_> = w
        .stats(at_s(2040))
        .overdue_over(Duration::ZERO)
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(ages, [1980, 1920, 1860, 60].map(Duration::from_secs));
}

#[test]
fn bucket_stats_split_the_view_into_its_buckets() {
    let mut w = hour();
    // Bucket 0: two deliveries; bucket 3: one failure and a slow delivery;
    // bucket 13 (past the first ring turn): one delivery.
    w.record(at_s(10), &delivered_ms(1_000));
    w.record(at_s(20), &delivered_ms(3_000));
    w.record(at_s(3 * 300 + 5), &failed());
    w.record(at_s(3 * 300 + 6), &delivered_ms(600_000));
    let now = at_s(3 * 300 + 60);
    let buckets: Vec<_> = w.bucket_stats(now).collect();
    assert_eq!(buckets.len(), 12);
    // Oldest first, the newest being now's bucket.
    assert_eq!(buckets[11].0, at_s(3 * 300));
    assert_eq!(buckets[0].0, at_s(3 * 300 - 11 * 300));
    let figures: Vec<(u64, u64)> = buckets
        .iter()
        .map(|(_, s)| (s.deliveries(), s.failures()))
        .collect();
    let mut want = vec![(0, 0); 12];
    want[8] = (2, 0);
    want[11] = (1, 1);
    assert_eq!(figures, want);
    let total = w.stats(now);
    assert_eq!(figures.iter().map(|f| f.0).sum::<u64>(), total.deliveries());
    assert_eq!(
        buckets[8].1.max_latency(),
        Some(Duration::from_millis(3_000))
    );
    let slow = buckets[11].1.latency_quantile(0.95).unwrap();
    assert!(
        relative_error(slow, Duration::from_secs(600)) < 0.02,
        "{slow:?}"
    );

    // Later, the first buckets leave the view and the ring reuses slot 0.
    w.record(at_s(13 * 300 + 1), &delivered_ms(2_000));
    let now = at_s(13 * 300 + 2);
    let buckets: Vec<_> = w.bucket_stats(now).collect();
    assert_eq!(buckets[0].0, at_s(2 * 300));
    let figures: Vec<(u64, u64)> = buckets
        .iter()
        .map(|(_, s)| (s.deliveries(), s.failures()))
        .collect();
    let mut want = vec![(0, 0); 12];
    want[1] = (1, 1);
    want[11] = (1, 0);
    assert_eq!(figures, want);
    // A view before anything was recorded, or of a time before the ring's
    // buckets, holds nothing.
    assert!(hour().bucket_stats(now).all(|(_, s)| s.samples() == 0));
    assert!(w.bucket_stats(at_s(-10_000)).all(|(_, s)| s.samples() == 0));
}
