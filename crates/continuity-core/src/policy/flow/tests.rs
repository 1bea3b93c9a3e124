//! Unit tests of the flow policy: the latency classes, the binomial tail,
//! the baseline's decay and exclusions, and the verdicts on small traces.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::baseline::{Baseline, CLASSES, Excluded, class_floor, class_of};
use super::evidence::{binomial_tail_ln, kl, rate_lower_bound, trouble_rate};
use super::*;
use crate::{domain::FailureKind, machine::Health};

const MIN: Duration = Duration::from_secs(60);

fn t0() -> DateTime<Utc> {
    "2026-03-02T00:00:00Z".parse().expect("valid time")
}

fn window() -> SlidingWindow {
    SlidingWindow::new(Duration::from_secs(3600), 12).expect("valid window")
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

/// A policy and its window fed `days` of 2 deliveries a minute (one every
/// 30 s, 3 s each), one failure in every hundred samples, evaluated every
/// minute; returns them with the time after the last minute.
fn learned(days: i64) -> (FlowPolicy, SlidingWindow, DateTime<Utc>) {
    learned_from(days, |n| if n.is_multiple_of(100) { fail() } else { ok(3) })
}

/// A policy and its window fed `days` of 2 samples a minute (at 10 s and
/// 40 s), the `n`-th (from 1) being `sample(n)`, evaluated every minute;
/// returns them with the time after the last minute.
fn learned_from(
    days: i64,
    sample: impl Fn(u64) -> Outcome,
) -> (FlowPolicy, SlidingWindow, DateTime<Utc>) {
    let mut p = FlowPolicy::new(FlowThreshold::default());
    let mut w = window();
    let mut n = 0u64;
    let mut t = t0();
    for _ in 0..days * 1440 {
        for half in [10, 40] {
            let at = t + TimeDelta::seconds(half);
            n += 1;
            let o = sample(n);
            w.record(at, &o);
            p.record(at, &o);
        }
        t += TimeDelta::minutes(1);
        p.evaluate(&w, t);
    }
    (p, w, t)
}

fn finding(v: &Verdict) -> FlowFinding {
    match v.reading {
        Reading::Flow { finding, .. } => finding,
        _ => panic!("not a flow reading: {v:?}"),
    }
}

#[test]
fn latency_classes_are_half_octaves_that_hold_their_latencies() {
    assert_eq!(class_of(Duration::ZERO), 0);
    assert_eq!(class_of(Duration::from_micros(999)), 0);
    assert_eq!(class_of(Duration::from_millis(1)), 1);
    assert_eq!(class_floor(1), Duration::from_millis(1));
    for ms in [
        1u64, 2, 3, 5, 7, 12, 999, 1_000, 1_499, 1_500, 65_536, 3_600_000,
    ] {
        let l = Duration::from_millis(ms);
        let c = class_of(l);
        assert!(class_floor(c) <= l, "{ms} ms in class {c}");
        // The top class has no end.
        if usize::from(c) + 1 < CLASSES {
            assert!(l < class_floor(c + 1), "{ms} ms in class {c}");
        }
    }
    // Every class is at least as wide as the one below; the top takes the rest.
    for c in 1..CLASSES as u8 - 1 {
        assert!(class_floor(c) < class_floor(c + 1));
    }
    assert_eq!(class_of(Duration::MAX), CLASSES as u8 - 1);
    assert_eq!(class_of(Duration::from_secs(3600)), CLASSES as u8 - 1);
}

#[test]
fn the_binomial_tail_is_exact_and_under_its_chernoff_bound() {
    // Direct sums for small n.
    let choose =
        |n: u64, k: u64| -> f64 { (0..k).fold(1.0, |a, i| a * (n - i) as f64 / (i + 1) as f64) };
    let cases: [(u64, u64, f64); 5] = [
        (1, 1, 0.3),
        (3, 3, 0.01),
        (2, 10, 0.05),
        (6, 25, 0.01),
        (10, 12, 0.5),
    ];
    for (x, n, p) in cases {
        let exact: f64 = (x..=n)
            .map(|k| choose(n, k) * p.powi(k as i32) * (1.0 - p).powi((n - k) as i32))
            .sum();
        let ln = binomial_tail_ln(x, n, p);
        assert!(
            (ln - exact.ln()).abs() < 1e-9,
            "{x} of {n} at {p}: {ln} vs {}",
            exact.ln()
        );
        let a = x as f64 / n as f64;
        if a > p {
            assert!(
                ln <= -(n as f64) * kl(a, p) + 1e-12,
                "Chernoff bounds the tail"
            );
        }
    }
    assert_eq!(binomial_tail_ln(0, 10, 0.1), 0.0);
}

#[test]
fn trouble_is_the_default_rate_unless_a_high_one_was_seen() {
    assert!((trouble_rate(0.01, f64::NAN) - 0.21).abs() < 1e-12);
    assert!((trouble_rate(0.2, f64::NAN) - 0.6).abs() < 1e-12);
    // Half-way to 1 at most.
    assert!((trouble_rate(0.6, f64::NAN) - 0.8).abs() < 1e-12);
    // A partial failure's rate is not leaned on; an outage's is.
    assert!((trouble_rate(0.01, 0.3) - 0.21).abs() < 1e-12);
    assert!((trouble_rate(0.01, 0.9) - 0.9).abs() < 1e-12);
    // A handful of samples says less than many.
    assert!(rate_lower_bound(4, 4) < rate_lower_bound(40, 40));
    assert!(rate_lower_bound(40, 40) < 1.0);
    assert_eq!(rate_lower_bound(0, 0), 0.0);
}

#[test]
fn the_baseline_halves_an_old_observation_every_half_life() {
    let mut b = Baseline::new(Duration::from_secs(3600));
    let ex = Excluded::default();
    // 100 failures an hour ago, 100 deliveries now: the failures weigh half.
    for _ in 0..100 {
        b.learn(0, None, 1.0);
        b.learn(60, Some(Duration::from_secs(1)), 1.0);
    }
    let rate = b.failure_rate(60, 0.5, 0.0, &ex);
    assert!((rate - 50.0 / 150.0).abs() < 1e-9, "{rate}");
    assert!((b.effective_deliveries(60, &ex) - 100.0).abs() < 1e-6);
    // Far in the future the weights are rescaled, and the ratios hold.
    let later = 60 * 24 * 365;
    b.learn(later, None, 1.0);
    let rate = b.failure_rate(later, 0.5, 0.0, &ex);
    assert!((rate - 1.0).abs() < 1e-6, "old figures faded: {rate}");
}

#[test]
fn a_new_tenant_starts_from_the_prior_and_its_own_outage_is_not_its_normal() {
    let mut p = FlowPolicy::new(FlowThreshold::default());
    let mut w = window();
    let mut t = t0();
    // Every sample fails from the start, one a minute.
    let mut first_unusual = None;
    for minute in 1..=10 {
        let at = t + TimeDelta::seconds(30);
        w.record(at, &fail());
        p.record(at, &fail());
        t += TimeDelta::minutes(1);
        let v = p.evaluate(&w, t);
        if v.breached && first_unusual.is_none() {
            first_unusual = Some(minute);
            assert_eq!(finding(&v), FlowFinding::UnusualFailures);
            assert!(
                v.reading.to_string().contains("normally 2%"),
                "{}",
                v.reading
            );
        }
    }
    // 2 % prior: four failures in a row are 1.6e-7, five are 3.2e-9 < 1e-7.
    assert_eq!(first_unusual, Some(5));
}

#[test]
fn learned_traffic_is_normal_and_a_stray_failure_changes_nothing() {
    let (mut p, mut w, t) = learned(3);
    let v = p.evaluate(&w, t);
    assert_eq!(finding(&v), FlowFinding::Normal, "{}", v.reading);
    assert_eq!(p.health(&v, true), Health::Healthy);
    let rate = p.normal_failure_rate(t);
    assert!((0.008..0.013).contains(&rate), "{rate}");
    // Two failures in a minute: unlikely, not incredible.
    for s in [5, 6] {
        w.record(t + TimeDelta::seconds(s), &fail());
        p.record(t + TimeDelta::seconds(s), &fail());
    }
    let v = p.evaluate(&w, t + TimeDelta::minutes(1));
    assert!(!v.breached, "{}", v.reading);
}

#[test]
fn an_outage_is_unusual_within_minutes_and_normal_soon_after_it_ends() {
    let (mut p, mut w, mut t) = learned(2);
    let mut raised_after = None;
    for minute in 1..=30 {
        for s in [10, 40] {
            w.record(t + TimeDelta::seconds(s), &fail());
            p.record(t + TimeDelta::seconds(s), &fail());
        }
        t += TimeDelta::minutes(1);
        let v = p.evaluate(&w, t);
        if v.breached && raised_after.is_none() {
            raised_after = Some(minute);
        }
        if raised_after.is_some() {
            assert!(v.breached, "minute {minute}: {}", v.reading);
        }
    }
    let raised_after = raised_after.expect("the outage is found");
    assert!(raised_after <= 3, "{raised_after}");
    // Recovery: a few deliveries are enough against an outage's rate.
    let mut normal_after = None;
    for minute in 1..=15 {
        for s in [10, 40] {
            w.record(t + TimeDelta::seconds(s), &ok(3));
            p.record(t + TimeDelta::seconds(s), &ok(3));
        }
        t += TimeDelta::minutes(1);
        let v = p.evaluate(&w, t);
        if finding(&v) == FlowFinding::Normal {
            normal_after = Some(minute);
            break;
        }
        // Until then still unusual: undecided spans leave it latched.
        assert!(v.breached, "minute {minute}: {}", v.reading);
    }
    let normal_after = normal_after.expect("the recovery is seen");
    assert!(normal_after <= 3, "{normal_after}");
}

#[test]
fn minutes_judged_with_a_partial_failure_raise_nothing_once_it_is_over() {
    let (mut p, mut w, mut t) = learned(2);
    let feed = |p: &mut FlowPolicy, w: &mut SlidingWindow, t: &mut DateTime<Utc>, o: &[Outcome]| {
        for (i, o) in o.iter().enumerate() {
            let at = *t + TimeDelta::seconds(5 + 15 * i as i64);
            w.record(at, o);
            p.record(at, o);
        }
        *t += TimeDelta::minutes(1);
        p.evaluate(w, *t)
    };
    // A third failing for 40 minutes.
    let mut breached = false;
    for _ in 0..40 {
        breached = feed(&mut p, &mut w, &mut t, &[ok(3), fail(), ok(3)]).breached;
    }
    assert!(breached);
    // Recovered: deliveries only, until the flow is found normal.
    let mut normal = false;
    for _ in 0..30 {
        if !feed(&mut p, &mut w, &mut t, &[ok(3), ok(3), ok(3)]).breached {
            normal = true;
            break;
        }
    }
    assert!(normal, "the recovery is seen");
    // The failing minutes are still within the span, but they were judged:
    // the flow's ordinary stray failure raises nothing again.
    for minute in 0..10 {
        let o = if minute == 1 {
            [fail(), ok(3), ok(3)]
        } else {
            [ok(3), ok(3), ok(3)]
        };
        let v = feed(&mut p, &mut w, &mut t, &o);
        assert!(!v.breached, "minute {minute}: {}", v.reading);
    }
}

#[test]
fn the_newest_minutes_of_a_slowdown_are_no_evidence_of_its_end() {
    let (mut p, mut w, mut t) = learned(1);
    // Deliveries slowed to 100 s: each counts in the minute it was due,
    // a minute and a half before it arrives.
    let mut breached = false;
    for _ in 0..40 {
        for s in [10, 40] {
            w.record(t + TimeDelta::seconds(s), &ok(100));
            p.record(t + TimeDelta::seconds(s), &ok(100));
        }
        t += TimeDelta::minutes(1);
        breached = p.evaluate(&w, t).breached;
    }
    assert!(breached);
    // A minute with only the fast few of the slowed traffic: the slow rest
    // of it is still on its way.
    for s in [5, 25, 45] {
        w.record(t + TimeDelta::seconds(s), &ok(3));
        p.record(t + TimeDelta::seconds(s), &ok(3));
    }
    t += TimeDelta::minutes(1);
    let v = p.evaluate(&w, t);
    assert!(v.breached, "{}", v.reading);
}

#[test]
fn thirty_percent_failing_is_unusual_and_a_lucky_run_is_no_recovery() {
    let (mut p, mut w, mut t) = learned(2);
    // 3 failures in every 10 samples, spread out.
    let mut n = 0;
    let mut found = None;
    for minute in 1..=40 {
        for s in [10, 40] {
            n += 1;
            let o = if n % 10 < 3 { fail() } else { ok(3) };
            w.record(t + TimeDelta::seconds(s), &o);
            p.record(t + TimeDelta::seconds(s), &o);
        }
        t += TimeDelta::minutes(1);
        let v = p.evaluate(&w, t);
        if found.is_none() && v.breached {
            found = Some(minute);
        }
    }
    let found = found.expect("30 % failing is found");
    assert!(found <= 15, "{found}");
    // Six deliveries in a row: after an outage that would be a recovery,
    // after 30 % failing it is not.
    for _ in 0..3 {
        for s in [10, 40] {
            w.record(t + TimeDelta::seconds(s), &ok(3));
            p.record(t + TimeDelta::seconds(s), &ok(3));
        }
        t += TimeDelta::minutes(1);
        let v = p.evaluate(&w, t);
        assert!(v.breached, "{}", v.reading);
    }
}

#[test]
fn slower_than_usual_is_unusual_once_the_baseline_knows_latency() {
    let (mut p, mut w, mut t) = learned(1);
    let v = p.evaluate(&w, t);
    let Reading::Flow { slow_above, .. } = v.reading else {
        panic!()
    };
    let slow_above = slow_above.expect("a day of deliveries teaches latency");
    assert!(
        slow_above >= FlowThreshold::DEFAULT_SLOW_FLOOR,
        "{slow_above:?}"
    );
    let mut found = None;
    for minute in 1..=10 {
        for s in [10, 40] {
            w.record(t + TimeDelta::seconds(s), &ok(60));
            p.record(t + TimeDelta::seconds(s), &ok(60));
        }
        t += TimeDelta::minutes(1);
        let v = p.evaluate(&w, t);
        if v.breached {
            assert_eq!(finding(&v), FlowFinding::UnusualLatency);
            let text = v.reading.to_string();
            assert!(text.contains("slower than"), "{text}");
            found = Some(minute);
            break;
        }
    }
    assert!(found.is_some_and(|m| m <= 5), "{found:?}");
}

#[test]
fn a_pending_probe_past_slow_counts_before_it_arrives() {
    let (mut p, mut w, t) = learned(1);
    let v = p.evaluate(&w, t);
    let Reading::Flow {
        slow_above: Some(above),
        ..
    } = v.reading
    else {
        panic!("{v:?}")
    };
    // Three probes sent a minute apart, none back.
    for k in 0..3 {
        let sent = t + TimeDelta::minutes(k);
        w.mark_overdue(
            sent,
            sent + TimeDelta::minutes(30),
            t + TimeDelta::minutes(4),
        );
    }
    let now = t + TimeDelta::minutes(4);
    assert!(p.overdue_after().is_some_and(|d| d < above));
    let v = p.evaluate(&w, now);
    assert!(v.breached, "{}", v.reading);
    assert_eq!(finding(&v), FlowFinding::UnusualLatency);
    // While they are pending the verdict is looked at again every minute.
    assert_eq!(p.valid_until(&v, &w, now), now + TimeDelta::minutes(1));
}

#[test]
fn silence_is_no_data_and_a_normal_verdict_holds_until_something_is_recorded() {
    let mut p = FlowPolicy::new(FlowThreshold::default());
    let w = window();
    let v = p.evaluate(&w, t0());
    assert_eq!(finding(&v), FlowFinding::NoData);
    assert_eq!(p.health(&v, true), Health::Unknown);
    assert!(
        v.reading
            .to_string()
            .starts_with("no deliveries seen in the last 30 min")
    );

    let (mut p, w, t) = learned(1);
    let v = p.evaluate(&w, t);
    assert_eq!(finding(&v), FlowFinding::Normal);
    assert_eq!(p.valid_until(&v, &w, t), DateTime::<Utc>::MAX_UTC);
    assert!(p.absorbs_below(&v, &w, t).is_some());
    // An hour of silence later: no data, not healthy.
    let v = p.evaluate(&w, t + TimeDelta::hours(1));
    assert_eq!(finding(&v), FlowFinding::NoData);
    assert_eq!(p.health(&v, true), Health::Unknown);
}

#[test]
fn memory_is_fixed_and_small() {
    let (p, _, _) = learned(1);
    let fresh = FlowPolicy::new(FlowThreshold::default());
    assert_eq!(p.memory_bytes(), fresh.memory_bytes());
    assert!(p.memory_bytes() <= 768, "{}", p.memory_bytes());
}

#[test]
fn thresholds_validate_with_the_field_named() {
    let ok = FlowThreshold::default();
    ok.validate("inbound.flow").unwrap();
    let cases: [(FlowThreshold, &str); 5] = [
        (
            FlowThreshold {
                span: MIN,
                ..ok.clone()
            },
            "inbound.flow.span",
        ),
        (
            FlowThreshold {
                span: Duration::from_secs(90),
                ..ok.clone()
            },
            "inbound.flow.span",
        ),
        (
            FlowThreshold {
                significance: 0.5,
                ..ok.clone()
            },
            "inbound.flow.significance",
        ),
        (
            FlowThreshold {
                half_life: MIN,
                ..ok.clone()
            },
            "inbound.flow.half_life",
        ),
        (
            FlowThreshold {
                min_count: 0,
                ..ok.clone()
            },
            "inbound.flow.min_count",
        ),
    ];
    for (t, field) in cases {
        match t.validate("inbound.flow") {
            Err(crate::Error::InvalidConfig { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{t:?}: {other:?}"),
        }
    }
    let parsed: FlowThreshold =
        serde_json::from_str(r#"{"span": "20m", "half_life": "7d"}"#).unwrap();
    assert_eq!(parsed.span, 20 * MIN);
    assert_eq!(parsed.significance, FlowThreshold::DEFAULT_SIGNIFICANCE);
    assert!(serde_json::from_str::<FlowThreshold>(r#"{"spam": "20m"}"#).is_err());
}

/// A policy and its window fed `days` of probes alone: one every 5 minutes,
/// back after 20 s, evaluated every minute.
fn learned_probes(days: i64) -> (FlowPolicy, SlidingWindow, DateTime<Utc>) {
    let mut p = FlowPolicy::new(FlowThreshold::default());
    let mut w = window();
    let mut t = t0();
    for minute in 0..days * 1440 {
        if minute % 5 == 0 {
            let at = t + TimeDelta::seconds(20);
            w.record(at, &ok(20));
            p.record(at, &ok(20));
        }
        t += TimeDelta::minutes(1);
        p.evaluate(&w, t);
    }
    (p, w, t)
}

#[test]
fn each_probe_newly_slow_asks_for_one_more_until_the_slowdown_is_found() {
    let (mut p, mut w, t) = learned_probes(2);
    let v = p.evaluate(&w, t);
    assert!(!p.probe_soon(&v), "healthy probes ask for nothing");
    // Six probes in the ring, all on time: too few to rule out a small
    // rise, enough to tell the flow goes on; but not enough to end an
    // outage a restart left raised (health unknown, which clears nothing).
    assert_eq!(finding(&v), FlowFinding::Flowing, "{}", v.reading);
    assert!(!v.reading.is_unknown());
    assert_eq!(p.health(&v, true), Health::Unknown);
    // Probes sent a minute apart (each asked for by the one before), none
    // back: each is checked a minute after it was sent.
    let mut found = None;
    for k in 0..3 {
        let sent = t + TimeDelta::minutes(k);
        let now = sent + TimeDelta::minutes(1);
        w.mark_overdue(sent, sent + TimeDelta::minutes(30), now);
        let v = p.evaluate(&w, now);
        if v.breached {
            assert_eq!(finding(&v), FlowFinding::UnusualLatency);
            assert!(!p.probe_soon(&v), "found: no more probes needed");
            found = Some(k + 1);
            break;
        }
        assert!(p.probe_soon(&v), "probe {k} slow: {}", v.reading);
        // Looking again with nothing new asks for nothing more.
        let again = p.evaluate(&w, now);
        assert!(!p.probe_soon(&again), "probe {k}: asked twice");
    }
    assert_eq!(found, Some(3), "three slow probes make the slowdown");

    // It lasts half an hour, a probe every 5 minutes, each pending for 25
    // (arriving after its deadline's check, never here), and then ends: a
    // probe on time asks for another, to confirm it.
    for minute in 3..33 {
        let now = t + TimeDelta::minutes(minute + 1);
        if minute % 5 == 0 {
            let sent = t + TimeDelta::minutes(minute);
            w.mark_overdue(sent, sent + TimeDelta::minutes(30), now);
        }
        let v = p.evaluate(&w, now);
        assert!(v.breached && !p.probe_soon(&v), "{minute}: {}", v.reading);
    }
    let mut now = t + TimeDelta::minutes(34);
    let mut normal_at = None;
    for k in 0..10 {
        let at = now - TimeDelta::seconds(40);
        w.record(at, &ok(20));
        p.record(at, &ok(20));
        let v = p.evaluate(&w, now);
        if !v.breached {
            normal_at = Some(k);
            break;
        }
        assert!(p.probe_soon(&v), "on time while latched: {}", v.reading);
        // Asked once per delivery on time, not at every look.
        let again = p.evaluate(&w, now);
        assert!(again.breached && !p.probe_soon(&again), "asked twice");
        now += TimeDelta::minutes(1);
    }
    assert!(normal_at.is_some_and(|k| k <= 5), "{normal_at:?}");
}

#[test]
fn plenty_of_traffic_needs_no_probe_to_show_a_recovery() {
    let (mut p, mut w, mut t) = learned(1);
    // A slowdown of passive traffic, then deliveries on time again.
    let mut breached = false;
    for _ in 0..10 {
        for s in [10, 40] {
            w.record(t + TimeDelta::seconds(s), &ok(120));
            p.record(t + TimeDelta::seconds(s), &ok(120));
        }
        t += TimeDelta::minutes(1);
        breached = p.evaluate(&w, t).breached;
    }
    assert!(breached);
    for s in [10, 40] {
        w.record(t + TimeDelta::seconds(s), &ok(3));
        p.record(t + TimeDelta::seconds(s), &ok(3));
    }
    t += TimeDelta::minutes(1);
    let v = p.evaluate(&w, t);
    assert!(!p.probe_soon(&v), "{}", v.reading);
}

#[test]
fn after_a_restart_a_few_good_samples_do_not_end_an_outage() {
    // A restart keeps the baseline (restored from its snapshot) but not the
    // latch: the stored state may still hold an outage raised.
    let (learned_policy, _, mut t) = learned(2);
    let mut p = FlowPolicy::new(FlowThreshold::default());
    let snapshot = learned_policy.snapshot().expect("a learned baseline");
    assert!(p.restore(&snapshot));
    let mut w = window();
    for _ in 0..2 {
        for s in [10, 40] {
            w.record(t + TimeDelta::seconds(s), &ok(3));
            p.record(t + TimeDelta::seconds(s), &ok(3));
        }
        t += TimeDelta::minutes(1);
        let v = p.evaluate(&w, t);
        assert_ne!(p.health(&v, true), Health::Healthy, "{}", v.reading);
    }
}

/// A policy and window fed `days` of heavy-tailed traffic, 2 deliveries a
/// minute: a tenth take 20 s, one in fifty 90 s, one in two hundred 4 min,
/// the rest 3 s; no failures.
fn learned_heavy_tailed(days: i64) -> (FlowPolicy, SlidingWindow, DateTime<Utc>) {
    learned_from(days, |n| {
        ok(match n {
            n if n.is_multiple_of(200) => 240,
            n if n.is_multiple_of(50) => 90,
            n if n.is_multiple_of(10) => 20,
            _ => 3,
        })
    })
}

/// Probes sent at `t + sent` minutes, none back, checked every minute from
/// `t + 1` to `t + until` as the Monitor does (each still pending is marked
/// again); with `traffic`, deliveries of 3 s go on meanwhile. Returns the
/// first minute the flow is unusual, if any.
fn pending_probes(traffic: bool, sent: &[i64], until: i64) -> Option<i64> {
    let (mut p, mut w, t) = learned_heavy_tailed(1);
    let v = p.evaluate(&w, t);
    assert_eq!(finding(&v), FlowFinding::Normal, "{}", v.reading);
    for minute in 1..=until {
        let now = t + TimeDelta::minutes(minute);
        if traffic {
            for s in [10, 40] {
                let at = now - TimeDelta::minutes(1) + TimeDelta::seconds(s);
                w.record(at, &ok(3));
                p.record(at, &ok(3));
            }
        }
        for &k in sent.iter().filter(|&&k| k < minute) {
            let at = t + TimeDelta::minutes(k);
            w.mark_overdue(at, at + TimeDelta::minutes(30), now);
        }
        let v = p.evaluate(&w, now);
        if v.breached {
            assert_eq!(finding(&v), FlowFinding::UnusualLatency, "{}", v.reading);
            return Some(minute);
        }
    }
    None
}

#[test]
fn probes_pending_far_longer_than_deliveries_take_are_an_outage_in_silence() {
    // Against heavy-tailed traffic, a tenth of the deliveries are slow:
    // four probes pending are no evidence by that measure. Four pending
    // for two minutes or more are (one delivery in two hundred takes that
    // long): the fourth reaches two minutes five minutes after the first
    // was sent.
    assert_eq!(pending_probes(false, &[0, 1, 2, 3], 20), Some(5));
    // Three pending that long are not enough at that share; once the
    // youngest has waited longer than any delivery took (past the 4 min
    // class), they are.
    assert_eq!(pending_probes(false, &[0, 1, 2], 20), Some(7));
    // With mail flowing meanwhile, probes held up are no outage.
    assert_eq!(pending_probes(true, &[0, 1, 2, 3], 20), None);
}

#[test]
fn the_far_test_counts_a_probe_only_as_long_as_it_was_seen_pending() {
    let (mut p, mut w, t) = learned_heavy_tailed(1);
    // Four probes seen pending once, a minute after each was sent; their
    // next check is not due yet. Their ages grow, but what they are known
    // to have taken does not: nothing unusual.
    for k in 0..4 {
        let at = t + TimeDelta::minutes(k);
        w.mark_overdue(at, at + TimeDelta::minutes(30), at + TimeDelta::minutes(1));
    }
    let now = t + TimeDelta::minutes(9);
    let v = p.evaluate(&w, now);
    assert!(!v.breached, "{}", v.reading);
    // Checked again, all still pending: an outage.
    for k in 0..4 {
        let at = t + TimeDelta::minutes(k);
        w.mark_overdue(at, at + TimeDelta::minutes(30), now);
    }
    let v = p.evaluate(&w, now);
    assert!(v.breached, "{}", v.reading);
    assert_eq!(finding(&v), FlowFinding::UnusualLatency);
}
