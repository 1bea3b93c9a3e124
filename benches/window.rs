//! Sliding-window and threshold-policy throughput.
//!
//! `record` runs for every delivery the gateway reports and must sustain at
//! least 20 million records per second on one core; every direction of every
//! tenant (100,000 tenants) is evaluated each minute. The memory figures of a
//! window are printed before the benchmarks run.

use std::{hint::black_box, time::Duration};

use chrono::{DateTime, Utc};
use continuity_core::{
    FailureKind, Outcome,
    policy::{
        FailureLimit, FailurePolicy, FailureThreshold, LatencyPolicy, LatencyStatistic,
        LatencyThreshold, LeakyCounterPolicy, LeakyThreshold, ThresholdPolicy,
    },
    window::SlidingWindow,
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// A multiple of one hour, so that buckets start at round times.
const BASE_MS: i64 = 1_760_000_400_000;
const STREAM_LEN: usize = 1 << 16;
/// Mean time between two records of the stream.
const STEP_MS: i64 = 50;
const JITTER_MS: u64 = 2_000;

/// Deterministic, dependency-free pseudo-random numbers.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn at_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).expect("timestamp in range")
}

/// A busy direction: a record every 50 ms on average, timestamps increasing
/// with up to 2 s of jitter (so some arrive out of order), latencies of 1 to
/// 120 s (nine in ten below 20 s, millisecond precision plus noise), 2 %
/// failures. The same seed gives the same pattern from any `start_ms`.
fn stream(start_ms: i64) -> Vec<(DateTime<Utc>, Outcome)> {
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    (0..STREAM_LEN as i64)
        .map(|i| {
            let jitter = (rng.next() % JITTER_MS) as i64;
            let at = at_ms(start_ms + i * STEP_MS + jitter);
            let roll = rng.next();
            let outcome = if roll.is_multiple_of(50) {
                Outcome::Failed {
                    kind: FailureKind::TimedOut,
                }
            } else {
                let micros = if roll.is_multiple_of(10) {
                    20_000_000 + rng.next() % 100_000_000
                } else {
                    1_000_000 + rng.next() % 19_000_000
                };
                Outcome::Delivered {
                    latency: Duration::from_micros(micros),
                }
            };
            (at, outcome)
        })
        .collect()
}

fn hour_window() -> SlidingWindow {
    SlidingWindow::new(Duration::from_secs(3600), SlidingWindow::DEFAULT_BUCKETS)
        .expect("valid window")
}

fn print_memory_figures() {
    // The quiet case: one probe every 5 minutes for an hour.
    let mut probed = hour_window();
    for i in 0..12 {
        let latency = Duration::from_secs(20 + 7 * i);
        probed.record(
            at_ms(BASE_MS + i as i64 * 300_000),
            &Outcome::Delivered { latency },
        );
    }
    // The busy case: an hour of the benchmark stream.
    let mut busy = hour_window();
    for (at, outcome) in stream(BASE_MS) {
        busy.record(at, &outcome);
    }
    // The adversarial case: every record a new bin, spread over every bucket,
    // two million records, more than half a million of them for the same bucket.
    let mut adversarial =
        SlidingWindow::new(Duration::from_secs(16 * 60), 16).expect("valid window");
    let mut worst = 0;
    for i in 0..2_000_000u64 {
        let ms = 1.0387f64.powi(((i * 7919) % 600) as i32).min(4.0e9);
        let at = BASE_MS + (i % 16) as i64 * 60_000;
        let latency = Duration::from_secs_f64(ms / 1000.0);
        adversarial.record(at_ms(at), &Outcome::Delivered { latency });
        worst = worst.max(adversarial.memory_bytes());
    }
    println!(
        "window memory_bytes: empty {}, probe every 5 min for 1 h {}, busy hour ({} records) {}, \
         adversarial (2,000,000 records, worst seen) {}, bound {}",
        hour_window().memory_bytes(),
        probed.memory_bytes(),
        STREAM_LEN,
        busy.memory_bytes(),
        worst,
        SlidingWindow::MAX_MEMORY_BYTES
    );
}

fn window(c: &mut Criterion) {
    print_memory_figures();

    let stream = stream(BASE_MS);
    // A window that already saw the same traffic over the preceding span, so
    // the benchmark starts (and restarts, when the stream wraps) in the steady
    // state: full sketch, buckets rotating.
    let span_ms = STREAM_LEN as i64 * STEP_MS;
    let mut warm = hour_window();
    for (at, outcome) in crate::stream(BASE_MS - span_ms) {
        warm.record(at, &outcome);
    }

    let mut group = c.benchmark_group("window");
    group.throughput(Throughput::Elements(1));
    group.bench_function("record", |b| {
        let mut w = warm.clone();
        let mut next = 0;
        b.iter(|| {
            if next == stream.len() {
                next = 0;
                w.clone_from(&warm);
            }
            let (at, outcome) = &stream[next];
            next += 1;
            w.record(black_box(*at), black_box(outcome))
        })
    });

    let mut full = warm.clone();
    for (at, outcome) in &stream {
        full.record(*at, outcome);
    }
    let now = stream.last().map_or(at_ms(BASE_MS), |(at, _)| *at);
    let stats = full.stats(now);
    assert!(stats.deliveries() > 50_000);
    assert!(stats.latency_quantile(0.95).is_some());
    group.bench_function("stats_p95", |b| {
        b.iter(|| {
            black_box(&full)
                .stats(black_box(now))
                .latency_quantile(0.95)
        })
    });
    group.finish();

    let mut policies: Vec<Box<dyn ThresholdPolicy>> = vec![
        Box::new(LatencyPolicy::new(LatencyThreshold::new(
            LatencyStatistic::P95,
            Duration::from_secs(30 * 60),
        ))),
        Box::new(FailurePolicy::new(FailureThreshold {
            limit: FailureLimit::Rate(0.25),
            min_samples: 20,
        })),
        Box::new(LeakyCounterPolicy::new(LeakyThreshold::new(
            5,
            Duration::from_secs(10 * 60),
        ))),
    ];
    for (at, outcome) in &stream {
        for policy in &mut policies {
            policy.record(*at, outcome);
        }
    }
    let mut group = c.benchmark_group("policy");
    group.throughput(Throughput::Elements(policies.len() as u64));
    group.bench_function("evaluate_all", |b| {
        b.iter(|| {
            for policy in &mut policies {
                black_box(policy.evaluate(black_box(&full), black_box(now)));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, window);
criterion_main!(benches);
