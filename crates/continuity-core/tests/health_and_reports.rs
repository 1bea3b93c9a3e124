//! `Monitor::health` and its judgement; what reports and statuses look like
//! in JSON (durations as in configuration, never `{"secs":…,"nanos":…}`);
//! failed deliveries listed in the tick report.

use std::{sync::Arc, time::Duration};

use chrono::TimeDelta;
use continuity_core::{
    Clock, Direction,
    memory::InMemoryEventStore,
    monitor::{HealthStatus, MonitorSettings},
    testing::{EngineRig, FaultyStore, RigOptions},
};
use serde_json::{Value, json};

fn passive() -> RigOptions {
    RigOptions {
        probes: false,
        ..RigOptions::default()
    }
}

/// Panics on any `{"secs": …, "nanos": …}` object inside `v`.
fn no_raw_durations(v: &Value, path: &str) {
    match v {
        Value::Object(map) => {
            assert!(
                !(map.contains_key("secs") && map.contains_key("nanos")),
                "{path}: a duration written as {{secs, nanos}}: {v}"
            );
            for (k, v) in map {
                no_raw_durations(v, &format!("{path}.{k}"));
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                no_raw_durations(v, &format!("{path}[{i}]"));
            }
        }
        _ => {}
    }
}

#[tokio::test(flavor = "current_thread")]
async fn health_follows_the_ticks() {
    let r = EngineRig::start(passive()).await;
    let h = r.monitor.health_now().await;
    assert_eq!(h.status, HealthStatus::Degraded, "{h:?}");
    assert_eq!(h.last_tick, None);
    assert!(h.reasons[0].contains("no tick"), "{:?}", h.reasons);

    r.run(1).await;
    let h = r.monitor.health_now().await;
    assert!(h.is_ok(), "{h:?}");
    assert!(h.store_reachable);
    assert_eq!(
        (h.outbox_backlog, h.dead_letters, h.journal_transitions),
        (Some(0), Some(0), 0)
    );
    assert!(h.reasons.is_empty());

    let late = r.clock.advance(TimeDelta::minutes(4));
    let h = r.monitor.health(late).await;
    assert_eq!(h.status, HealthStatus::Degraded);
    assert_eq!(h.last_tick_age, Some(Duration::from_secs(240)));
    let stale = r.clock.advance(TimeDelta::minutes(6));
    let h = r.monitor.health(stale).await;
    assert_eq!(h.status, HealthStatus::Failing, "{h:?}");
    assert!(
        h.reasons[0].contains("no tick for 10 min"),
        "{:?}",
        h.reasons
    );

    // The JSON a health endpoint serves.
    let v = serde_json::to_value(&h).expect("serialisable");
    assert_eq!(
        v,
        json!({
            "status": "failing",
            "checked_at": "2026-03-02T08:11:00Z",
            "last_tick": "2026-03-02T08:01:00Z",
            "last_tick_age": "10m",
            "store_reachable": true,
            "outbox_backlog": 0,
            "dead_letters": 0,
            "journal_transitions": 0,
            "reasons": h.reasons,
        })
    );
}

#[tokio::test(flavor = "current_thread")]
async fn an_unreachable_store_is_failing_and_a_journal_degraded() {
    let store = Arc::new(FaultyStore::new(InMemoryEventStore::new()));
    let r = EngineRig::start_on(store.clone(), passive()).await;
    r.run(1).await;
    store.set_down(true);
    r.refused(Direction::Outbound, r.clock.now(), 3);
    r.run(2).await;
    let h = r.monitor.health_now().await;
    assert_eq!(h.status, HealthStatus::Failing);
    assert!(!h.store_reachable);
    assert_eq!(h.outbox_backlog, None);
    assert!(
        h.reasons
            .iter()
            .any(|r| r.contains("the store does not answer")),
        "{:?}",
        h.reasons
    );
    assert!(h.journal_transitions > 0, "the outage's transitions wait");

    store.set_down(false);
    let h = r.monitor.health_now().await;
    assert_eq!(
        h.status,
        HealthStatus::Degraded,
        "until the journal is written"
    );
    r.run(1).await;
    let h = r.monitor.health_now().await;
    assert!(h.is_ok(), "{h:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn backlog_and_dead_letters_have_thresholds() {
    let store = Arc::new(InMemoryEventStore::new());
    let r = EngineRig::start_on(store.clone(), passive()).await;
    r.sms.fail_next(1, false);
    r.refused(Direction::Outbound, r.clock.now(), 3);
    r.run(2).await;
    let h = r.monitor.health_now().await;
    assert_eq!(h.dead_letters, Some(1));
    assert!(h.is_ok(), "dead letters are not judged by default: {h:?}");

    // Another instance on the same store, with thresholds of its own.
    let settings = MonitorSettings {
        health: toml::from_str("dead_letters = 1").expect("thresholds"),
        ..MonitorSettings::default()
    };
    assert_eq!(settings.health.tick_late, Duration::from_secs(180));
    let strict = continuity_core::Monitor::builder()
        .store(store.clone())
        .clock(Arc::new(r.clock.clone()))
        .notifier(r.sms.clone())
        .link_signer(continuity_core::testing::rig_signer())
        .portal_url(continuity_core::testing::RIG_PORTAL_URL)
        .settings(settings)
        .build()
        .expect("monitor");
    strict.tick_now().await.expect("tick");
    let h = strict.health_now().await;
    assert_eq!(h.status, HealthStatus::Degraded);
    assert_eq!(h.reasons, ["1 dead letters (threshold 1)"]);

    // An outbox that does not drain: a notifier failing every time.
    let settings = MonitorSettings {
        health: toml::from_str("outbox_backlog = 1").expect("thresholds"),
        ..MonitorSettings::default()
    };
    let backlogged = continuity_core::Monitor::builder()
        .store(store)
        .clock(Arc::new(r.clock.clone()))
        .notifier(r.sms.clone())
        .link_signer(continuity_core::testing::rig_signer())
        .portal_url(continuity_core::testing::RIG_PORTAL_URL)
        .settings(settings)
        .build()
        .expect("monitor");
    r.sms.fail_next(1000, true);
    // The trouble lasts; the reminder cannot go out.
    for _ in 0..120 {
        r.refused(Direction::Outbound, r.clock.now(), 3);
        r.run(1).await;
        if r.monitor.health_now().await.outbox_backlog > Some(0) {
            break;
        }
    }
    backlogged.tick_now().await.expect("tick");
    let h = backlogged.health_now().await;
    assert_eq!(h.status, HealthStatus::Degraded, "{h:?}");
    assert!(
        h.reasons[0].contains("outbox entries waiting (threshold 1)"),
        "{:?}",
        h.reasons
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_failed_delivery_is_listed_in_the_tick_report() {
    let r = EngineRig::start(passive()).await;
    r.sms.fail_next(1, true);
    r.refused(Direction::Outbound, r.clock.now(), 3);
    r.run(1).await;
    let now = r.clock.advance(TimeDelta::minutes(1));
    let report = r.monitor.tick(now).await.expect("tick");
    assert_eq!(report.alerts, 1);
    assert_eq!(report.delivery_failures, 1);
    assert_eq!(report.failed_deliveries.len(), 1);
    let f = &report.failed_deliveries[0];
    assert_eq!(
        (f.tenant.as_str(), f.alert_id),
        ("acme", 0),
        "the first alert"
    );
    assert_eq!(f.recipient, "ops-sms");
    assert!(!f.is_permanent());
    assert!(f.retry_at.is_some_and(|at| at > now));
    assert!(
        report.errors.is_empty(),
        "errors keep listing the other problems: {:?}",
        report.errors
    );
    let v = serde_json::to_value(&report).expect("serialisable");
    let listed = &v["failed_deliveries"][0];
    assert_eq!(listed["channel"], "sms");
    assert_eq!(listed["tenant"], "acme");
    assert_eq!(listed["recipient"], "ops-sms");
    assert_eq!(listed["attempts"], 1);
    assert!(listed["error"].as_str().is_some_and(|e| !e.is_empty()));
    assert_eq!(v["delivery_failures"], 1);
    no_raw_durations(&v, "report");

    // Given up: no retry time, in JSON as null.
    r.sms.fail_next(5, false);
    let mut given_up = None;
    for _ in 0..120 {
        let now = r.clock.advance(TimeDelta::minutes(1));
        r.refused(Direction::Outbound, now, 3);
        let report = r.monitor.tick(now).await.expect("tick");
        if let Some(f) = report.failed_deliveries.into_iter().next() {
            given_up = Some(f);
            break;
        }
    }
    let f = given_up.expect("the retry (or a reminder) fails for good");
    assert!(f.is_permanent());
    assert_eq!(
        serde_json::to_value(&f).expect("serialisable")["retry_at"],
        Value::Null
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_tenant_status_writes_durations_as_configuration_does() {
    let r = EngineRig::start(passive()).await;
    r.refused(Direction::Outbound, r.clock.now(), 3);
    r.run(2).await;
    let status = r.monitor.status(&r.tenant).expect("status");
    let v = serde_json::to_value(&status).expect("serialisable");
    no_raw_durations(&v, "status");
    assert_eq!(v["state"]["version"], status.state.version);
    // Readings are (direction, condition, verdict) triples.
    let failures = v["readings"]
        .as_array()
        .expect("readings")
        .iter()
        .find(|r| r[0] == "outbound" && r[1] == "failures")
        .expect("the outbound failure reading");
    assert_eq!(failures[2]["breached"], true);
    assert_eq!(failures[2]["reading"]["Failures"]["window"], "1h");
    let latency = v["readings"]
        .as_array()
        .expect("readings")
        .iter()
        .find(|r| r[1] == "latency")
        .expect("a latency reading");
    assert_eq!(latency[2]["reading"]["Latency"]["limit"], "30m");
    assert_eq!(v["failing"][0]["direction"], "outbound");
}
