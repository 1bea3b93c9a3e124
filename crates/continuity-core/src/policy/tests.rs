//! Unit tests of the thresholds (serde, validation), the three policies and
//! the readings' wording.

use std::time::Duration;

use super::verdict::Percent;
use super::*;
use crate::{
    domain::FailureKind,
    error::{Error, Result},
};

/// A multiple of one hour (and of every period used below).
const T0: i64 = 1_760_000_400;

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(T0 + secs, 0).expect("test timestamp in range")
}

fn ok(secs: u64) -> Outcome {
    Outcome::Delivered {
        latency: Duration::from_secs(secs),
    }
}

fn fail() -> Outcome {
    Outcome::Failed {
        kind: FailureKind::Refused,
    }
}

fn window_with(records: &[(i64, Outcome)]) -> SlidingWindow {
    let mut w = SlidingWindow::new(Duration::from_secs(3600), 12).expect("valid window");
    for (secs, outcome) in records {
        w.record(at(*secs), outcome);
    }
    w
}

fn config_error(result: Result<()>) -> String {
    match result {
        Err(Error::InvalidConfig { field, reason }) => format!("{field}: {reason}"),
        other => panic!("expected InvalidConfig, got {other:?}"),
    }
}

const MIN: Duration = Duration::from_secs(60);

#[test]
fn latency_statistic_parses_and_prints_round_trip() {
    use LatencyStatistic::{Max, Quantile};
    for (text, stat) in [
        ("max", Max),
        ("p50", Quantile(0.5)),
        ("p90", Quantile(0.9)),
        ("p95", Quantile(0.95)),
        ("p99", Quantile(0.99)),
        ("p99.9", Quantile(0.999)),
        ("p99.99", Quantile(0.9999)),
        ("p100", Quantile(1.0)),
        ("p0.01", Quantile(0.0001)),
        ("p12.5", Quantile(0.125)),
    ] {
        assert_eq!(LatencyStatistic::parse(text), Ok(stat), "{text}");
        assert_eq!(stat.to_string(), text);
        let json = serde_json::to_string(&stat).expect("serialisable");
        assert_eq!(json, format!("\"{text}\""));
        assert_eq!(
            serde_json::from_str::<LatencyStatistic>(&json).expect("round trip"),
            stat
        );
    }
    assert_eq!(LatencyStatistic::parse(" MAX "), Ok(Max));
    assert_eq!("p75".parse::<LatencyStatistic>(), Ok(Quantile(0.75)));
    assert_eq!(LatencyStatistic::parse("P95"), Ok(Quantile(0.95)));
    assert_eq!(LatencyStatistic::parse("p095"), Ok(Quantile(0.95)));
    for bad in [
        "", "p", "95", "p-5", "p0", "p0.0", "p101", "p1e2", "pinf", "pnan", "p9.5.1", "median",
        "p 95", "p.",
    ] {
        assert!(LatencyStatistic::parse(bad).is_err(), "{bad:?} accepted");
    }
    assert!(serde_json::from_str::<LatencyStatistic>("0.95").is_err());
    let err = serde_json::from_str::<LatencyStatistic>("\"p150\"")
        .expect_err("out of range")
        .to_string();
    assert!(err.contains("at most 100"), "{err}");
    // Values that do not validate still print without panicking.
    assert_eq!(Quantile(f64::NAN).to_string(), "pNaN");
    assert_eq!(Quantile(-0.5).to_string(), "p-50");
    assert_eq!(
        Quantile(1e-30).to_string(),
        "p0.0000000000000000000000000001"
    );
    assert_eq!(Quantile(1e-300).to_string(), format!("p{}", 1e-300 * 100.0));
    assert_eq!(Quantile(2.5).to_string(), "p250");
}

#[test]
fn latency_threshold_deserialises_with_defaults() {
    let t: LatencyThreshold =
        serde_json::from_str(r#"{"statistic": "p99", "limit": "30m"}"#).expect("valid");
    assert_eq!(t.statistic, LatencyStatistic::Quantile(0.99));
    assert_eq!(t.limit, 30 * MIN);
    assert_eq!(t.min_samples, 3);
    let t: LatencyThreshold = serde_json::from_str(r#"{"limit": 600}"#).expect("valid");
    assert_eq!(t, LatencyThreshold::new(LatencyStatistic::P95, 10 * MIN));
    let t: LatencyThreshold =
        serde_json::from_str(r#"{"statistic": "max", "limit": "1h", "min_samples": 1}"#)
            .expect("valid");
    assert_eq!(t.statistic, LatencyStatistic::Max);
    assert_eq!(t.min_samples, 1);
    let back: LatencyThreshold =
        serde_json::from_value(serde_json::to_value(&t).expect("serialisable"))
            .expect("round trip");
    assert_eq!(back, t);
    assert_eq!(
        serde_json::to_string(&t).expect("serialisable"),
        r#"{"statistic":"max","limit":"1h","min_samples":1}"#
    );

    for bad in [
        r#"{"statistic": "p95"}"#,
        r#"{"limit": "30m", "window": "1h"}"#,
        r#"{"limit": "30x"}"#,
        r#"{"limit": -5}"#,
        r#"{"limit": "30m", "statistic": "average"}"#,
        r#"{"limit": "30m", "min_samples": -1}"#,
    ] {
        assert!(
            serde_json::from_str::<LatencyThreshold>(bad).is_err(),
            "{bad}"
        );
    }
    let err = serde_json::from_str::<LatencyThreshold>(r#"{"limit": "1m", "typo": 1}"#)
        .expect_err("unknown field")
        .to_string();
    assert!(err.contains("unknown field `typo`"), "{err}");
}

#[test]
fn latency_threshold_validation_names_the_field() {
    let good = LatencyThreshold::new(LatencyStatistic::P95, 30 * MIN);
    assert!(good.validate("outbound.latency").is_ok());
    let mut t = good.clone();
    t.limit = Duration::ZERO;
    assert_eq!(
        config_error(t.validate("outbound.latency")),
        "outbound.latency.limit: must be greater than 0"
    );
    let mut t = good.clone();
    t.min_samples = 0;
    assert_eq!(
        config_error(t.validate("inbound.latency")),
        "inbound.latency.min_samples: must be at least 1"
    );
    for q in [0.0, -0.1, 1.5, f64::NAN, f64::INFINITY] {
        let mut t = good.clone();
        t.statistic = LatencyStatistic::Quantile(q);
        let msg = config_error(t.validate("outbound.latency"));
        assert!(msg.starts_with("outbound.latency.statistic: "), "{msg}");
    }
    let mut t = good;
    t.limit = Duration::ZERO;
    assert_eq!(
        config_error(t.validate("")),
        "limit: must be greater than 0"
    );
}

#[test]
fn failure_threshold_deserialises_and_validates() {
    let t: FailureThreshold = serde_json::from_str(r#"{"limit": {"count": 3}}"#).expect("valid");
    assert_eq!(t, FailureThreshold::new(FailureLimit::Count(3)));
    let t: FailureThreshold =
        serde_json::from_str(r#"{"limit": {"rate": 0.25}, "min_samples": 20}"#).expect("valid");
    assert_eq!(t.limit, FailureLimit::Rate(0.25));
    assert_eq!(t.min_samples, 20);
    // The flat form the README documents; the nested one above still reads.
    let flat: FailureThreshold =
        serde_json::from_str(r#"{"rate": 0.25, "min_samples": 20}"#).expect("valid");
    assert_eq!(flat, t);
    let flat: FailureThreshold = serde_json::from_str(r#"{"count": 3}"#).expect("valid");
    assert_eq!(flat, FailureThreshold::new(FailureLimit::Count(3)));
    assert_eq!(
        serde_json::to_string(&t).expect("serialisable"),
        r#"{"rate":0.25,"min_samples":20}"#
    );
    for bad in [
        r#"{}"#,
        r#"{"min_samples": 3}"#,
        r#"{"count": 3, "rate": 0.5}"#,
        r#"{"count": 3, "limit": {"count": 3}}"#,
        r#"{"count": "3"}"#,
        r#"{"limit": 3}"#,
        r#"{"limit": {"percent": 3}}"#,
        r#"{"limit": {"count": -1}}"#,
        r#"{"limit": {"count": 3, "rate": 0.5}}"#,
        r#"{"limit": {"count": 3}, "extra": true}"#,
    ] {
        assert!(
            serde_json::from_str::<FailureThreshold>(bad).is_err(),
            "{bad}"
        );
    }

    assert!(t.validate("outbound.failures").is_ok());
    let err = |limit, min_samples| {
        config_error(FailureThreshold { limit, min_samples }.validate("outbound.failures"))
    };
    assert_eq!(
        err(FailureLimit::Count(0), 1),
        "outbound.failures.limit.count: must be at least 1"
    );
    for rate in [0.0, -0.5, 1.01, f64::NAN] {
        assert!(err(FailureLimit::Rate(rate), 1).starts_with("outbound.failures.limit.rate: "));
    }
    assert_eq!(
        err(FailureLimit::Rate(0.5), 0),
        "outbound.failures.min_samples: must be at least 1"
    );
    assert!(
        FailureThreshold::new(FailureLimit::Rate(1.0))
            .validate("x")
            .is_ok()
    );
}

#[test]
fn leaky_threshold_deserialises_and_validates() {
    let t: LeakyThreshold =
        serde_json::from_str(r#"{"threshold": 5, "acceptable_latency": "10m"}"#).expect("valid");
    assert_eq!(t, LeakyThreshold::new(5, 10 * MIN));
    assert_eq!(t.period, 2 * MIN);
    let t: LeakyThreshold =
        serde_json::from_str(r#"{"period": "5m", "threshold": 2, "acceptable_latency": 900}"#)
            .expect("valid");
    assert_eq!(
        (t.period, t.threshold, t.acceptable_latency),
        (5 * MIN, 2, 15 * MIN)
    );
    assert!(t.validate("inbound.leaky").is_ok());
    for bad in [
        r#"{"threshold": 5}"#,
        r#"{"acceptable_latency": "10m"}"#,
        r#"{"threshold": 5, "acceptable_latency": "10m", "periods": "2m"}"#,
        r#"{"threshold": "five", "acceptable_latency": "10m"}"#,
    ] {
        assert!(
            serde_json::from_str::<LeakyThreshold>(bad).is_err(),
            "{bad}"
        );
    }

    let base = LeakyThreshold::new(5, 10 * MIN);
    let mut t = base.clone();
    t.period = Duration::from_millis(999);
    assert_eq!(
        config_error(t.validate("inbound.leaky")),
        "inbound.leaky.period: must be at least 1 s"
    );
    let mut t = base.clone();
    t.threshold = 0;
    assert_eq!(
        config_error(t.validate("inbound.leaky")),
        "inbound.leaky.threshold: must be at least 1"
    );
    let mut t = base;
    t.acceptable_latency = Duration::ZERO;
    assert_eq!(
        config_error(t.validate("inbound.leaky")),
        "inbound.leaky.acceptable_latency: must be greater than 0"
    );
}

#[test]
fn latency_policy_needs_min_samples_and_a_value_above_the_limit() {
    let mut p = LatencyPolicy::new(LatencyThreshold {
        statistic: LatencyStatistic::P95,
        limit: 30 * MIN,
        min_samples: 3,
    });
    assert_eq!(p.condition(), "latency");

    let empty = window_with(&[]);
    let v = p.evaluate(&empty, at(0));
    assert!(!v.breached);
    assert_eq!(
        v.reading,
        Reading::Latency {
            statistic: LatencyStatistic::P95,
            value: None,
            limit: 30 * MIN,
            samples: 0,
            min_samples: 3,
            window: Duration::from_secs(3600),
        }
    );

    // Two slow deliveries and a failure: not enough deliveries.
    let w = window_with(&[(0, ok(3600)), (10, ok(3600)), (20, fail())]);
    let v = p.evaluate(&w, at(30));
    assert!(!v.breached);
    assert!(matches!(
        v.reading,
        Reading::Latency {
            value: None,
            samples: 2,
            ..
        }
    ));

    // Exactly at the limit is not above it.
    let w = window_with(&[(0, ok(1800)), (10, ok(1800)), (20, ok(1800))]);
    let v = p.evaluate(&w, at(30));
    assert!(!v.breached);
    assert!(matches!(v.reading, Reading::Latency { value: Some(v), .. } if v == 30 * MIN));

    let w = window_with(&[(0, ok(1801)), (10, ok(1801)), (20, ok(1801))]);
    assert!(p.evaluate(&w, at(30)).breached);

    // One slow delivery among many: p95 stays low, max does not.
    let mut records: Vec<(i64, Outcome)> = (0..40).map(|i| (i, ok(60))).collect();
    records.push((50, ok(7200)));
    let w = window_with(&records);
    assert!(!p.evaluate(&w, at(60)).breached);
    let mut max = LatencyPolicy::new(LatencyThreshold {
        statistic: LatencyStatistic::Max,
        limit: 30 * MIN,
        min_samples: 1,
    });
    let v = max.evaluate(&w, at(60));
    assert!(v.breached);
    assert!(matches!(v.reading, Reading::Latency { value: Some(v), .. } if v == 120 * MIN));
    // An hour later the slow delivery has left the window.
    assert!(!max.evaluate(&w, at(3600 + 300)).breached);
}

#[test]
fn latency_policy_survives_invalid_thresholds() {
    let w = window_with(&[(0, ok(10)), (1, ok(20))]);
    for q in [f64::NAN, -1.0, 2.0, 0.0] {
        let mut p = LatencyPolicy::new(LatencyThreshold {
            statistic: LatencyStatistic::Quantile(q),
            limit: Duration::ZERO,
            min_samples: 0,
        });
        let v = p.evaluate(&w, at(2));
        assert_eq!(v.breached, !q.is_nan(), "q {q}");
        let _ = v.reading.to_string();
    }
    let mut p = LatencyPolicy::new(LatencyThreshold {
        statistic: LatencyStatistic::P95,
        limit: Duration::ZERO,
        min_samples: 0,
    });
    assert!(!p.evaluate(&window_with(&[]), at(0)).breached);
}

#[test]
fn failure_policy_counts() {
    let mut p = FailurePolicy::new(FailureThreshold::new(FailureLimit::Count(3)));
    assert_eq!(p.condition(), "failures");
    assert!(!p.evaluate(&window_with(&[]), at(0)).breached);
    let two = window_with(&[(0, fail()), (1, fail()), (2, ok(1))]);
    assert!(!p.evaluate(&two, at(3)).breached);
    let three = window_with(&[(0, fail()), (1, fail()), (2, fail()), (3, ok(1))]);
    let v = p.evaluate(&three, at(4));
    assert!(v.breached);
    assert_eq!(
        v.reading,
        Reading::Failures {
            failures: 3,
            samples: 4,
            limit: FailureLimit::Count(3),
            min_samples: 1,
            window: Duration::from_secs(3600),
        }
    );
    // Failures expire with the window.
    assert!(!p.evaluate(&three, at(3600)).breached);
    // A count of 0 does not validate; it behaves as 1.
    let mut zero = FailurePolicy::new(FailureThreshold::new(FailureLimit::Count(0)));
    assert!(!zero.evaluate(&window_with(&[(0, ok(1))]), at(1)).breached);
    assert!(zero.evaluate(&window_with(&[(0, fail())]), at(1)).breached);
}

#[test]
fn below_min_samples_a_reading_is_unknown() {
    let rate = |min_samples| {
        FailurePolicy::new(FailureThreshold {
            limit: FailureLimit::Rate(0.25),
            min_samples,
        })
    };
    let count = |min_samples| {
        FailurePolicy::new(FailureThreshold {
            limit: FailureLimit::Count(2),
            min_samples,
        })
    };
    let three_ok = window_with(&[(0, ok(1)), (1, ok(1)), (2, ok(1))]);
    let two_failed = window_with(&[(0, fail()), (1, fail())]);
    let empty = window_with(&[]);
    let unknown = |p: &mut FailurePolicy, w: &SlidingWindow| {
        let v = p.evaluate(w, at(3));
        assert!(!(v.breached && v.reading.is_unknown()), "{v:?}");
        v.reading.is_unknown()
    };
    assert!(unknown(&mut rate(1), &empty));
    assert!(!unknown(&mut rate(3), &three_ok));
    assert!(unknown(&mut rate(4), &three_ok));
    assert!(unknown(&mut rate(4), &two_failed), "100% of 2 is noise");
    assert!(unknown(&mut count(1), &empty));
    assert!(!unknown(&mut count(3), &three_ok));
    assert!(unknown(&mut count(4), &three_ok));
    // A count reached is a breach whatever the samples.
    assert!(!unknown(&mut count(10), &two_failed));
    assert!(count(10).evaluate(&two_failed, at(3)).breached);

    let mut latency = LatencyPolicy::new(LatencyThreshold::new(
        LatencyStatistic::P95,
        Duration::from_secs(60),
    ));
    assert!(latency.evaluate(&two_failed, at(3)).reading.is_unknown());
    assert!(!latency.evaluate(&three_ok, at(3)).reading.is_unknown());
    let leaky = Reading::Leaky {
        counter: 0,
        threshold: 5,
        period: Duration::from_secs(120),
    };
    assert!(!leaky.is_unknown());
}

#[test]
fn failure_policy_rates() {
    let mut p = FailurePolicy::new(FailureThreshold {
        limit: FailureLimit::Rate(0.25),
        min_samples: 4,
    });
    // 1 of 3 is above 25% but below the minimum of samples.
    let w = window_with(&[(0, fail()), (1, ok(1)), (2, ok(1))]);
    assert!(!p.evaluate(&w, at(3)).breached);
    // Exactly 25%.
    let w = window_with(&[(0, fail()), (1, ok(1)), (2, ok(1)), (3, ok(1))]);
    assert!(p.evaluate(&w, at(4)).breached);
    // Just below.
    let w = window_with(&[(0, fail()), (1, ok(1)), (2, ok(1)), (3, ok(1)), (4, ok(1))]);
    assert!(!p.evaluate(&w, at(5)).breached);
    // 3 of 10 against 30%: the division must not round below the limit.
    let mut thirty = FailurePolicy::new(FailureThreshold {
        limit: FailureLimit::Rate(0.3),
        min_samples: 1,
    });
    let mut records: Vec<(i64, Outcome)> = (0..7).map(|i| (i, ok(1))).collect();
    records.extend((7..10).map(|i| (i, fail())));
    assert!(thirty.evaluate(&window_with(&records), at(10)).breached);
    // Invalid rates never breach without failures and never panic.
    for rate in [0.0, -1.0, f64::NAN] {
        let mut p = FailurePolicy::new(FailureThreshold {
            limit: FailureLimit::Rate(rate),
            min_samples: 0,
        });
        assert!(!p.evaluate(&window_with(&[(0, ok(1))]), at(1)).breached);
        assert!(!p.evaluate(&window_with(&[]), at(1)).breached);
    }
}

fn leaky(threshold: u32) -> LeakyCounterPolicy {
    LeakyCounterPolicy::new(LeakyThreshold {
        period: 2 * MIN,
        threshold,
        acceptable_latency: 10 * MIN,
        cap: None,
    })
}

fn counter_after(p: &mut LeakyCounterPolicy, now: i64) -> (u32, bool) {
    let v = p.evaluate(&window_with(&[]), at(now));
    match v.reading {
        Reading::Leaky { counter, .. } => (counter, v.breached),
        other => panic!("unexpected reading {other:?}"),
    }
}

#[test]
fn leaky_counter_goes_up_and_down() {
    let mut p = leaky(3);
    assert_eq!(p.condition(), "leaky");
    assert_eq!(counter_after(&mut p, 0), (0, false));
    // Periods 0, 1, 2 fail: a failure, a slow delivery, both.
    p.record(at(10), &fail());
    p.record(at(130), &ok(601));
    p.record(at(250), &fail());
    p.record(at(260), &ok(1));
    // Period 0 ended at 120 s: closed; period 1 still open at 239 s.
    assert_eq!(counter_after(&mut p, 120), (1, false));
    assert_eq!(counter_after(&mut p, 239), (1, false));
    assert_eq!(counter_after(&mut p, 240), (2, false));
    // Evaluating twice in the same period changes nothing.
    assert_eq!(counter_after(&mut p, 241), (2, false));
    assert_eq!(counter_after(&mut p, 360), (3, true));
    // Healthy traffic, then no traffic: down by one per period; breached
    // until the counter is back to 0.
    p.record(at(370), &ok(600));
    assert_eq!(counter_after(&mut p, 480), (2, true));
    assert_eq!(counter_after(&mut p, 600), (1, true));
    assert_eq!(counter_after(&mut p, 720), (0, false));
    // Never below 0.
    assert_eq!(counter_after(&mut p, 1200), (0, false));
    p.record(at(1210), &fail());
    assert_eq!(counter_after(&mut p, 1320), (1, false));
}

#[test]
fn leaky_counter_is_capped_and_drains_within_cap_periods() {
    // Default cap: twice the threshold.
    let mut p = leaky(3);
    assert_eq!(p.threshold().effective_cap(), 6);
    counter_after(&mut p, 0);
    for period in 0..60 {
        p.record(at(period * 120 + 5), &fail());
    }
    assert_eq!(counter_after(&mut p, 60 * 120), (6, true));
    // Six quiet or healthy periods drain it, however long the outage was.
    p.record(at(60 * 120 + 5), &ok(1));
    assert_eq!(counter_after(&mut p, 65 * 120), (1, true));
    assert_eq!(counter_after(&mut p, 66 * 120), (0, false));
    // A cap of its own; below the threshold it is refused.
    let mut t = LeakyThreshold::new(3, 10 * MIN);
    t.cap = Some(4);
    assert_eq!(t.effective_cap(), 4);
    t.validate("leaky").expect("cap 4");
    t.cap = Some(2);
    let err = t
        .validate("inbound.leaky")
        .expect_err("cap below threshold");
    assert!(err.to_string().contains("inbound.leaky.cap"), "{err}");
}

#[test]
fn leaky_counter_catches_up_several_periods_at_once() {
    let mut p = leaky(2);
    counter_after(&mut p, 0);
    // Failed, healthy, failed, failed, quiet: +1 -1 +1 +1 -1; it reached
    // the threshold on the way, so it stays breached until back to 0.
    p.record(at(1), &fail());
    p.record(at(121), &ok(1));
    p.record(at(241), &fail());
    p.record(at(361), &fail());
    assert_eq!(counter_after(&mut p, 600), (1, true));
    let mut q = leaky(2);
    counter_after(&mut q, 0);
    q.record(at(1), &fail());
    q.record(at(121), &fail());
    q.record(at(241), &fail());
    // Periods 0..=2 failed, 3 is still open.
    assert_eq!(counter_after(&mut q, 479), (3, true));
}

#[test]
fn leaky_counter_long_gap_is_arithmetic() {
    let mut p = leaky(5);
    counter_after(&mut p, 0);
    for period in 0..10 {
        p.record(at(period * 120 + 5), &fail());
    }
    assert_eq!(counter_after(&mut p, 1200), (10, true));
    // Ten years later: thousands of quiet periods, drained at once.
    let later = 10 * 365 * 86_400;
    assert_eq!(counter_after(&mut p, later), (0, false));
    p.record(at(later + 1), &fail());
    assert_eq!(counter_after(&mut p, later + 120), (1, false));
    // The far end of chrono's range does not overflow anything.
    let v = p.evaluate(&window_with(&[]), DateTime::<Utc>::MAX_UTC);
    assert!(!v.breached);
    p.record(DateTime::<Utc>::MIN_UTC, &fail());
    p.record(DateTime::<Utc>::MAX_UTC, &fail());
    let _ = p.evaluate(&window_with(&[]), DateTime::<Utc>::MIN_UTC);
}

#[test]
fn leaky_counter_late_observations_count_in_the_open_period() {
    let mut p = leaky(5);
    counter_after(&mut p, 0);
    assert_eq!(counter_after(&mut p, 240), (0, false));
    // Period 0 is closed (healthy); its failure lands in period 2, still open.
    p.record(at(30), &fail());
    assert_eq!(counter_after(&mut p, 300), (0, false));
    assert_eq!(counter_after(&mut p, 360), (1, false));
}

#[test]
fn leaky_counter_tracks_observations_far_ahead() {
    let mut p = leaky(5);
    counter_after(&mut p, 0);
    p.record(at(5), &fail());
    // 100 periods ahead of the open one, without evaluations in between.
    p.record(at(100 * 120 + 5), &fail());
    p.record(at(101 * 120 + 5), &fail());
    // Period 0 failed (+1), 1..=99 quiet (drain), 100 and 101 failed (+2).
    assert_eq!(counter_after(&mut p, 102 * 120), (2, false));
}

#[test]
fn leaky_counter_starts_at_the_first_observation() {
    let mut p = leaky(1);
    p.record(at(7200 + 5), &fail());
    assert_eq!(counter_after(&mut p, 7200 + 120), (1, true));
    // Fail-over deliveries are reported as delivered, so they are healthy.
    let mut q = leaky(1);
    let failover = Outcome::from_route_attempts(&[fail(), ok(30)]).expect("attempts");
    q.record(at(5), &failover);
    assert_eq!(counter_after(&mut q, 120), (0, false));
    // An invalid threshold of 0 behaves as 1.
    let mut zero = LeakyCounterPolicy::new(LeakyThreshold {
        period: Duration::from_secs(1),
        threshold: 0,
        acceptable_latency: Duration::ZERO,
        cap: None,
    });
    assert_eq!(counter_after(&mut zero, 0), (0, false));
    zero.record(at(0), &ok(0));
    assert_eq!(counter_after(&mut zero, 1), (0, false));
    zero.record(at(1), &ok(1));
    assert_eq!(counter_after(&mut zero, 2), (1, true));
    // A zero period does not divide by zero.
    let mut no_period = LeakyCounterPolicy::new(LeakyThreshold {
        period: Duration::ZERO,
        threshold: 1,
        acceptable_latency: Duration::ZERO,
        cap: None,
    });
    no_period.record(at(0), &fail());
    assert_eq!(counter_after(&mut no_period, 10), (0, false));
}

#[test]
fn readings_read_well() {
    let hour = Duration::from_secs(3600);
    let latency = |statistic, value, samples, min_samples| Reading::Latency {
        statistic,
        value,
        limit: 30 * MIN,
        samples,
        min_samples,
        window: hour,
    };
    assert_eq!(
        latency(LatencyStatistic::P95, Some(42 * MIN), 18, 3).to_string(),
        "p95 latency 42 min, threshold 30 min, 18 samples in the last 1 h"
    );
    assert_eq!(
        latency(LatencyStatistic::Max, Some(90 * MIN), 1, 1).to_string(),
        "max latency 1 h 30 min, threshold 30 min, 1 sample in the last 1 h"
    );
    assert_eq!(
        latency(
            LatencyStatistic::Quantile(0.999),
            Some(Duration::from_millis(850)),
            4,
            1
        )
        .to_string(),
        "p99.9 latency 850 ms, threshold 30 min, 4 samples in the last 1 h"
    );
    assert_eq!(
        latency(LatencyStatistic::P95, None, 2, 5).to_string(),
        "p95 latency: 2 samples in the last 1 h, at least 5 needed"
    );
    assert_eq!(
        latency(LatencyStatistic::P95, None, 0, 0).to_string(),
        "no deliveries seen in the last 1 h"
    );
    assert_eq!(
        latency(LatencyStatistic::P95, None, 7, 5).to_string(),
        "p95 latency unavailable, threshold 30 min, 7 samples in the last 1 h"
    );

    let failures = |failures, samples, limit, min_samples| Reading::Failures {
        failures,
        samples,
        limit,
        min_samples,
        window: hour,
    };
    assert_eq!(
        failures(3, 20, FailureLimit::Count(3), 1).to_string(),
        "3 failures of 20 deliveries in the last 1 h, threshold 3"
    );
    assert_eq!(
        failures(1, 1, FailureLimit::Count(3), 1).to_string(),
        "1 failure of 1 delivery in the last 1 h, threshold 3"
    );
    assert_eq!(
        failures(5, 20, FailureLimit::Rate(0.1), 10).to_string(),
        "failure rate 25% (5 of 20) in the last 1 h, threshold 10%"
    );
    assert_eq!(
        failures(1, 3, FailureLimit::Rate(0.125), 1).to_string(),
        "failure rate 33.3% (1 of 3) in the last 1 h, threshold 12.5%"
    );
    assert_eq!(
        failures(1, 2000, FailureLimit::Rate(0.001), 1).to_string(),
        "failure rate 0.05% (1 of 2000) in the last 1 h, threshold 0.1%"
    );
    assert_eq!(
        failures(0, 3, FailureLimit::Rate(0.5), 10).to_string(),
        "failure rate: 3 samples in the last 1 h, at least 10 needed"
    );
    assert_eq!(
        failures(0, 0, FailureLimit::Rate(0.5), 0).to_string(),
        "no deliveries seen in the last 1 h"
    );
    assert_eq!(
        failures(0, 0, FailureLimit::Count(3), 1).to_string(),
        "no deliveries seen in the last 1 h"
    );
    assert_eq!(
        failures(1, 4, FailureLimit::Count(3), 10).to_string(),
        "1 failure of 4 deliveries in the last 1 h, threshold 3, at least 10 needed"
    );
    assert_eq!(
        failures(3, 4, FailureLimit::Count(3), 10).to_string(),
        "3 failures of 4 deliveries in the last 1 h, threshold 3"
    );
    assert_eq!(
        failures(2, 2, FailureLimit::Rate(f64::NAN), 1).to_string(),
        "failure rate 100% (2 of 2) in the last 1 h, threshold NaN%"
    );

    assert_eq!(
        Reading::Leaky {
            counter: 4,
            threshold: 5,
            period: 2 * MIN
        }
        .to_string(),
        "leaky counter 4, threshold 5 (2 min periods)"
    );
    assert_eq!(
        Reading::Custom {
            summary: "queue 1200 messages".into()
        }
        .to_string(),
        "queue 1200 messages"
    );
}

#[test]
fn percentages_round_sensibly() {
    let p = |x: f64| Percent(x).to_string();
    assert_eq!(p(0.25), "25%");
    assert_eq!(p(1.0), "100%");
    assert_eq!(p(0.0), "0%");
    assert_eq!(p(2.0 / 3.0), "66.7%");
    assert_eq!(p(0.0996), "10%");
    assert_eq!(p(0.0005), "0.05%");
    assert_eq!(p(0.00001), "0%");
    assert_eq!(p(-0.5), "-50%");
    assert_eq!(p(f64::INFINITY), "inf%");
    assert!(p(1e300).ends_with('%'));
}

#[test]
fn verdicts_round_trip_through_serde() {
    let v = Verdict {
        breached: true,
        reading: Reading::Latency {
            statistic: LatencyStatistic::Quantile(0.99),
            value: Some(42 * MIN),
            limit: 30 * MIN,
            samples: 18,
            min_samples: 3,
            window: Duration::from_secs(3600),
        },
    };
    let json = serde_json::to_string(&v).expect("serialisable");
    assert!(json.contains("\"p99\""), "{json}");
    assert_eq!(
        serde_json::from_str::<Verdict>(&json).expect("round trip"),
        v
    );
}

#[test]
fn policies_are_object_safe_and_send() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<LatencyPolicy>();
    assert_send_sync::<FailurePolicy>();
    assert_send_sync::<LeakyCounterPolicy>();
    let mut policies: Vec<Box<dyn ThresholdPolicy>> = vec![
        Box::new(LatencyPolicy::new(LatencyThreshold::new(
            LatencyStatistic::P95,
            30 * MIN,
        ))),
        Box::new(FailurePolicy::new(FailureThreshold::new(
            FailureLimit::Count(3),
        ))),
        Box::new(leaky(5)),
    ];
    let w = window_with(&[(0, ok(1))]);
    for p in &mut policies {
        p.record(at(0), &ok(1));
        assert!(!p.evaluate(&w, at(1)).breached);
    }
    let names: Vec<&str> = policies.iter().map(|p| p.condition()).collect();
    assert_eq!(names, ["latency", "failures", "leaky"]);
}
