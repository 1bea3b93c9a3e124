//! Pins the benchmark harness: the generator makes the traffic it is
//! configured for, and the runner and scoring see what today's defaults do
//! with an unmistakable incident. Simulated time only; a few simulated days
//! at most, so the tests stay fast in debug builds.
//!
//! The goal bounds of issue 14 are not asserted here while today's
//! defaults miss them (`DETECTION.md` shows them). The detector work should
//! tighten `a_total_outage_is_raised_under_the_defaults` (to within 5 min,
//! resolved within 15 min of recovery, never while it lasts),
//! `a_probe_slowdown_is_raised_with_the_quickstart_limit` (under the
//! defaults, within 10 min) and
//! add the latency ×10 and healthy-day (0 false alerts) bounds.

use std::time::Duration;

use chrono::TimeDelta;
use continuity_core::{Direction, Outcome};
use continuity_detection::{
    configs::{DEFAULTS, QUICKSTART},
    runner::{AlertEvent, replay},
    scenario::Scenario,
    score::{Score, score},
    trace::{Incident, Trace},
};

fn scenario(name: &str, days: i64) -> Scenario {
    let mut s = Scenario::all()
        .into_iter()
        .find(|s| s.name == name)
        .expect("a scenario of that name");
    s.days = days;
    s
}

fn p95(mut latencies: Vec<f64>) -> f64 {
    latencies.sort_by(f64::total_cmp);
    latencies[(latencies.len() as f64 * 0.95) as usize]
}

fn latencies(trace: &Trace, keep: impl Fn(&continuity_core::Observation) -> bool) -> Vec<f64> {
    trace
        .observations
        .iter()
        .filter(|o| keep(o))
        .filter_map(|o| o.outcome.latency().map(|l| l.as_secs_f64()))
        .collect()
}

#[test]
fn healthy_traffic_has_the_configured_rate_failure_share_and_latencies() {
    let trace = Scenario::healthy(4).trace(11);
    assert!(trace.incidents.is_empty());
    for d in Direction::ALL {
        let obs: Vec<_> = trace
            .observations
            .iter()
            .filter(|o| o.direction == d)
            .collect();
        // 2 a minute over 4 days: 11,520 expected, sd about 107.
        let n = obs.len() as f64;
        assert!((n - 11_520.0).abs() < 400.0, "{d}: {n} messages");
        let failed = obs.iter().filter(|o| o.outcome.is_failure()).count() as f64;
        let share = failed / n;
        assert!(
            (0.007..0.013).contains(&share),
            "{d}: failure share {share}"
        );
        let l = latencies(&trace, |o| o.direction == d);
        let p95 = p95(l.clone());
        assert!((8.0..18.0).contains(&p95), "{d}: p95 {p95} s");
        let minutes = l.iter().filter(|&&s| s >= 60.0).count() as f64 / n;
        assert!(
            (0.01..0.03).contains(&minutes),
            "{d}: {minutes} take minutes"
        );
        assert!(l.iter().all(|&s| s <= 600.0), "{d}: none over 10 min");
    }
    assert!(
        trace.observations.windows(2).all(|w| w[0].at <= w[1].at),
        "observations in time order"
    );
}

#[test]
fn traces_are_the_same_for_a_seed_and_differ_between_seeds() {
    let s = scenario("outage", 1);
    let (a, b, c) = (s.trace(3), s.trace(3), s.trace(4));
    assert_eq!(a.observations, b.observations);
    assert_eq!(a.incidents, b.incidents);
    assert_ne!(a.observations, c.observations);
}

fn the_incident(trace: &Trace) -> &Incident {
    assert_eq!(trace.incidents.len(), 1);
    &trace.incidents[0]
}

#[test]
fn incidents_do_what_they_say() {
    // Outage: every inbound delivery handed over during it fails.
    let t = scenario("outage", 1).trace(2);
    let i = the_incident(&t);
    assert_eq!(i.end - i.start, TimeDelta::hours(2));
    let during: Vec<_> = t
        .observations
        .iter()
        .filter(|o| o.direction == Direction::Inbound && i.contains(o.at))
        .collect();
    assert!(during.len() > 150, "{} observations", during.len());
    // Known within 30 s of the hand-over: only the first minute's may be deliveries.
    let start_ok = i.start + TimeDelta::minutes(1);
    assert!(
        during
            .iter()
            .filter(|o| o.at > start_ok)
            .all(|o| o.outcome.is_failure())
    );

    // Silent: no outbound arrival during it; the held mail lands after it.
    let t = scenario("silent-outage", 1).trace(2);
    let i = the_incident(&t);
    let out = |o: &&continuity_core::Observation| o.direction == Direction::Outbound;
    let first_minute = i.start + TimeDelta::minutes(11);
    assert!(
        !t.observations
            .iter()
            .filter(out)
            .any(|o| o.at > first_minute && o.at < i.end)
    );
    let held = t
        .observations
        .iter()
        .filter(out)
        .filter(|o| o.at >= i.end && o.at < i.end + TimeDelta::minutes(11))
        .filter(|o| matches!(o.outcome, Outcome::Delivered { latency } if latency > Duration::from_secs(300)))
        .count();
    assert!(held > 150, "{held} held messages delivered after recovery");

    // Latency ×10: the p95 of what arrives during it is about ten times higher.
    let t = scenario("latency-x10", 1).trace(2);
    let i = the_incident(&t);
    let slow = p95(latencies(&t, |o| {
        o.direction == Direction::Outbound
            && o.at >= i.start + TimeDelta::minutes(10)
            && o.at < i.end
    }));
    let normal = p95(latencies(&t, |o| {
        o.direction == Direction::Outbound && o.at < i.start
    }));
    assert!(
        (6.0..16.0).contains(&(slow / normal)),
        "p95 {normal} s → {slow} s"
    );

    // Partial failure: about 30 % fail.
    let t = scenario("partial-failure", 1).trace(2);
    let i = the_incident(&t);
    let inb: Vec<_> = t
        .observations
        .iter()
        .filter(|o| o.direction == Direction::Inbound && i.contains(o.at))
        .collect();
    let share = inb.iter().filter(|o| o.outcome.is_failure()).count() as f64 / inb.len() as f64;
    assert!((0.2..0.4).contains(&share), "{share}");

    // Probes only: no passive traffic at all.
    assert!(
        scenario("probe-slowdown", 1)
            .trace(2)
            .observations
            .is_empty()
    );
}

/// Replays `name` with `seed` under the defaults and scores it.
fn defaults_on(name: &str, seed: u64) -> (Score, Vec<AlertEvent>) {
    // As in the report: two days of history before the incident's day.
    let t = scenario(name, 3).trace(seed);
    let r = replay(&t, &DEFAULTS, false).unwrap();
    (score(&r.alerts, &t.incidents, t.days()), r.alerts)
}

const MIN: Duration = Duration::from_secs(60);

/// Asserts the goals for `name` under the defaults on `seeds`:
/// raised within `detect`, resolved within 15 minutes of recovery, no false
/// alert, no resolved notice while the trouble lasts.
fn goal_met(name: &str, seeds: [u64; 2], detect: Duration) {
    for seed in seeds {
        let (s, alerts) = defaults_on(name, seed);
        let i = &s.incidents[0];
        let detection = i.detection.expect("the incident is raised");
        assert!(detection <= detect, "seed {seed}: {detection:?} {alerts:?}");
        let reset = i.reset.expect("and resolved");
        assert!(reset <= 15 * MIN, "seed {seed}: {reset:?} {alerts:?}");
        assert_eq!(s.false_alerts(), 0, "seed {seed}: {alerts:?}");
        assert_eq!(s.resolved_during_trouble, 0, "seed {seed}: {alerts:?}");
    }
}

#[test]
fn a_total_outage_is_raised_within_5_minutes_and_resolved_within_15() {
    goal_met("outage", [1, 4], 5 * MIN);
}

#[test]
fn a_tenfold_latency_is_raised_within_10_minutes_and_resolved_within_15() {
    goal_met("latency-x10", [2, 5], 10 * MIN);
}

#[test]
fn a_silent_outage_with_probes_is_raised_within_10_minutes_and_resolved_within_15() {
    // No failure is reported and no mail lands: only the probes, held
    // too, pending far longer than the heavy-tailed traffic ever takes.
    goal_met("silent-outage-probed", [2, 4], 10 * MIN);
}

#[test]
fn healthy_days_raise_nothing_under_the_defaults() {
    let t = Scenario::healthy(4).trace(3);
    let r = replay(&t, &DEFAULTS, false).unwrap();
    assert!(r.alerts.is_empty(), "{:?}", r.alerts);
}

#[test]
fn healthy_noisy_probes_raise_nothing_under_the_defaults() {
    // Probes as heavy-tailed as the traffic, 1 % of them lost: the slow
    // ones, the lost ones pending until their deadline and the probes they
    // hurry out are no outage, with passive traffic or without.
    for (scenario, seed) in [
        (Scenario::healthy_probes_only(6), 1),
        (Scenario::healthy_probes_only(6), 2),
        (Scenario::healthy_probed(3), 3),
    ] {
        let t = scenario.trace(seed);
        let r = replay(&t, &DEFAULTS, false).unwrap();
        assert!(
            r.alerts.is_empty(),
            "{} {seed}: {:?}",
            scenario.name,
            r.alerts
        );
    }
}

#[test]
fn a_probe_slowdown_is_raised_within_10_minutes_and_resolved_within_15() {
    // Probes alone, every 5 minutes: each probe found slow brings another
    // at once, and so does each on time while the slowdown is latched.
    goal_met("probe-slowdown", [1, 3], 10 * MIN);
    // The quickstart's absolute limit on top changes nothing of that.
    let t = scenario("probe-slowdown", 3).trace(1);
    let r = replay(&t, &QUICKSTART, false).unwrap();
    let s = score(&r.alerts, &t.incidents, t.days());
    let detection = s.incidents[0].detection.expect("the slowdown is raised");
    assert!(detection <= 10 * MIN, "{detection:?}");
    assert_eq!(s.false_alerts(), 0, "{:?}", r.alerts);
}

#[test]
fn sampled_readings_cover_every_minute_and_condition() {
    let t = scenario("outage", 1).trace(1);
    let r = replay(&t, &QUICKSTART, true).unwrap();
    // Latency and flow on both directions, every minute of a day.
    assert_eq!(r.samples.len(), 1440 * 4);
    let during = r
        .samples
        .iter()
        .filter(|s| s.direction == Direction::Inbound && s.condition == "flow")
        .filter(|s| {
            s.at >= t.incidents[0].start + TimeDelta::minutes(30) && s.at < t.incidents[0].end
        })
        .collect::<Vec<_>>();
    assert!(during.iter().all(|s| s.breached && s.value > s.threshold));
}
