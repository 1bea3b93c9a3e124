//! Unknown is unknown: a policy below its minimum samples, and silence,
//! neither raise nor clear a condition, and the alerts say there is no data
//! rather than repeating figures of nothing. Through the `Monitor` on the
//! manual clock, passive observations only.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use continuity_core::{
    Direction, FailureKind, Observation,
    config::TenantConfig,
    machine::AlertKind,
    policy::{FailureLimit, FailureThreshold, LatencyStatistic, LatencyThreshold},
    testing::{EngineRig, RigOptions},
};

const MINUTE: TimeDelta = TimeDelta::minutes(1);
const INBOUND: Direction = Direction::Inbound;

async fn rig(configure: impl FnOnce(&mut TenantConfig)) -> EngineRig {
    let r = EngineRig::start(RigOptions {
        probes: false,
        ..RigOptions::default()
    })
    .await;
    let mut config = TenantConfig::clone(&r.monitor.tenant_config(&r.tenant).unwrap());
    configure(&mut config);
    r.monitor.register_tenant(config).await.unwrap();
    r
}

fn delivered(r: &EngineRig, at: DateTime<Utc>, n: usize, latency: Duration) {
    for _ in 0..n {
        r.monitor
            .observe(Observation::delivered(
                r.tenant.clone(),
                INBOUND,
                at,
                latency,
            ))
            .unwrap();
    }
}

fn failed(r: &EngineRig, at: DateTime<Utc>, n: usize) {
    for _ in 0..n {
        r.monitor
            .observe(Observation::failed(
                r.tenant.clone(),
                INBOUND,
                at,
                FailureKind::Refused,
            ))
            .unwrap();
    }
}

/// Advances a minute, reports what `traffic` says for it, and ticks.
async fn minutes(r: &EngineRig, n: i64, traffic: impl Fn(&EngineRig, DateTime<Utc>)) {
    for _ in 0..n {
        let now = r.clock.advance(MINUTE);
        traffic(r, now);
        r.monitor.tick(now).await.unwrap();
    }
}

fn kinds(r: &EngineRig) -> Vec<AlertKind> {
    r.sms.messages().iter().map(|m| m.kind).collect()
}

fn active(r: &EngineRig, name: &str) -> bool {
    r.monitor
        .status(&r.tenant)
        .unwrap()
        .state
        .state
        .condition(INBOUND, name)
        .is_some_and(|c| c.active)
}

const FAST: Duration = Duration::from_secs(5);

/// The case: a failure-rate condition must not resolve while the
/// window holds fewer samples than its minimum. Half the deliveries fail
/// for half an hour, a few go through, then nothing at all arrives: the
/// failures leave the window first, and the few successes left behind are
/// no evidence of recovery.
#[tokio::test]
async fn a_rate_condition_does_not_resolve_in_silence_below_its_minimum() {
    let r = rig(|c| {
        c.inbound.latency = None;
        c.inbound.failures = Some(FailureThreshold {
            limit: FailureLimit::Rate(0.25),
            min_samples: 20,
        });
    })
    .await;
    minutes(&r, 30, |r, now| {
        delivered(r, now, 1, FAST);
        failed(r, now, 1);
    })
    .await;
    assert_eq!(kinds(&r), [AlertKind::Raised]);
    minutes(&r, 1, |r, now| delivered(r, now, 5, FAST)).await;
    minutes(&r, 180, |_, _| {}).await;
    assert!(active(&r, "failures"), "silence is not a recovery");
    assert!(!kinds(&r).contains(&AlertKind::Resolved), "{:?}", kinds(&r));

    // Traffic comes back healthy and plentiful: that clears it.
    minutes(&r, 15, |r, now| delivered(r, now, 2, FAST)).await;
    assert!(!active(&r, "failures"));
    assert_eq!(kinds(&r).last(), Some(&AlertKind::Resolved));
}

/// For a count, `min_samples` keeps a nearly empty window from clearing:
/// a count reached raises whatever the samples, but fewer failures than the
/// count over fewer samples than the minimum say nothing.
#[tokio::test]
async fn a_count_condition_below_its_minimum_samples_holds() {
    let r = rig(|c| {
        c.inbound.latency = None;
        c.inbound.failures = Some(FailureThreshold {
            limit: FailureLimit::Count(3),
            min_samples: 10,
        });
    })
    .await;
    minutes(&r, 3, |r, now| failed(r, now, 3)).await;
    assert_eq!(
        kinds(&r),
        [AlertKind::Raised],
        "9 samples, the count reached"
    );
    // A trickle of five deliveries over five minutes, then nothing: once the
    // failures have left the window, five minutes of "0 failures of a few
    // deliveries" follow, enough ticks to clear if they counted as healthy.
    minutes(&r, 5, |r, now| delivered(r, now, 1, FAST)).await;
    minutes(&r, 180, |_, _| {}).await;
    assert!(active(&r, "failures"));
    assert_eq!(kinds(&r).last(), Some(&AlertKind::Reminder));
}

/// A latency condition below its minimum samples holds as well.
#[tokio::test]
async fn a_latency_condition_does_not_resolve_on_too_few_deliveries() {
    let r = rig(|c| {
        c.inbound.failures = None;
        c.inbound.latency = Some(LatencyThreshold {
            statistic: LatencyStatistic::P95,
            limit: Duration::from_secs(30 * 60),
            min_samples: 5,
        });
    })
    .await;
    let slow = Duration::from_secs(45 * 60);
    minutes(&r, 10, |r, now| delivered(r, now, 1, slow)).await;
    assert_eq!(kinds(&r), [AlertKind::Raised]);
    minutes(&r, 1, |r, now| delivered(r, now, 4, FAST)).await;
    minutes(&r, 180, |_, _| {}).await;
    assert!(active(&r, "latency"), "four fast deliveries prove nothing");
    assert!(!kinds(&r).contains(&AlertKind::Resolved));
}

/// With nothing in the window, a reminder says so instead of "0 failures of
/// 0 deliveries".
#[tokio::test]
async fn a_reminder_in_silence_says_no_deliveries_were_seen() {
    let r = rig(|_| {}).await;
    minutes(&r, 3, |r, now| failed(r, now, 3)).await;
    assert_eq!(kinds(&r), [AlertKind::Raised]);
    minutes(&r, 150, |_, _| {}).await;
    let messages = r.sms.messages();
    let last = messages.last().unwrap();
    assert_eq!(last.kind, AlertKind::Reminder);
    let headline = last.headline();
    assert!(
        headline.contains("inbound no deliveries seen in the last 1 h"),
        "{headline}"
    );
    assert!(!headline.contains("0 failures of 0"), "{headline}");
    assert!(headline.starts_with("NO DATA acme: "), "{headline}");
    assert!(last.no_data() && last.conditions.iter().all(|c| c.no_data));
    assert!(active(&r, "failures"));
    // The raised alert had its figures.
    assert!(!messages[0].no_data());
    let raised = messages[0].headline();
    assert!(raised.starts_with("ALERT acme: inbound "), "{raised}");
    assert!(raised.contains(" failures of "), "{raised}");
}
