//! Retention through the monitor: `Monitor::prune_records` prunes with the
//! configured ages, which are checked when the monitor is built.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, TimeDelta, Utc};
use continuity_core::{
    ManualClock, Monitor, TenantId,
    config::{ChannelKind, Recipient, TenantConfig},
    link::{LinkKey, LinkSigner},
    machine::{Action, Actor},
    memory::InMemoryEventStore,
    monitor::MonitorSettings,
    store::{EventStore, RetentionSettings},
    testing::RecordingNotifier,
};

fn t0() -> DateTime<Utc> {
    "2026-03-02T08:00:00Z".parse().unwrap()
}

fn builder(
    store: Arc<InMemoryEventStore>,
    settings: MonitorSettings,
) -> continuity_core::MonitorBuilder {
    Monitor::builder()
        .store(store)
        .clock(Arc::new(ManualClock::new(t0())))
        .link_signer(LinkSigner::new(LinkKey::new("k1", [7u8; 32]).unwrap()))
        .portal_url("https://continuity.example.net/c/")
        .notifier(Arc::new(RecordingNotifier::new(ChannelKind::Sms)))
        .settings(settings)
}

#[tokio::test]
async fn prune_records_removes_what_is_older_than_the_configured_age() {
    let store = Arc::new(InMemoryEventStore::new());
    let settings = MonitorSettings {
        retention: RetentionSettings {
            audit: Duration::from_secs(2 * 86_400),
            ..RetentionSettings::default()
        },
        ..MonitorSettings::default()
    };
    let monitor = builder(store.clone(), settings).build().unwrap();
    let acme = TenantId::new("acme").unwrap();
    monitor
        .register_tenant(TenantConfig::new(
            acme.clone(),
            vec![Recipient::new("ops", ChannelKind::Sms, "+15550100")],
        ))
        .await
        .unwrap();
    let op = Actor::Operator { name: "noc".into() };
    let act = |action: Action, at: DateTime<Utc>| monitor.act(&acme, op.clone(), action, None, at);
    act(
        Action::Suspend {
            until: t0() + TimeDelta::hours(1),
        },
        t0(),
    )
    .await
    .unwrap();
    act(Action::LiftSuspension, t0()).await.unwrap();
    let later = t0() + TimeDelta::days(3);
    act(
        Action::Suspend {
            until: later + TimeDelta::hours(1),
        },
        later,
    )
    .await
    .unwrap();

    // A day on, nothing is two days old; by `later` the first two are
    // three days old and go, the latest stays.
    let report = monitor
        .prune_records(t0() + TimeDelta::days(1))
        .await
        .unwrap();
    assert_eq!(report.audit, 0);
    let report = monitor.prune_records(later).await.unwrap();
    assert_eq!(report.audit, 2);
    let left: Vec<String> = store
        .audit_log(&acme, 0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.entry.action)
        .collect();
    assert_eq!(left, ["suspension.start"]);
}

#[test]
fn retention_shorter_than_an_hour_is_refused_when_building() {
    for retention in [
        RetentionSettings {
            audit: Duration::from_secs(600),
            ..RetentionSettings::default()
        },
        RetentionSettings {
            dead_letters: Duration::ZERO,
            ..RetentionSettings::default()
        },
        RetentionSettings {
            instances: Duration::from_secs(3_599),
            ..RetentionSettings::default()
        },
    ] {
        let settings = MonitorSettings {
            retention,
            ..MonitorSettings::default()
        };
        let e = builder(Arc::new(InMemoryEventStore::new()), settings)
            .build()
            .expect_err("refused");
        assert!(e.to_string().contains("settings.retention"), "{e}");
    }
    let at_least = RetentionSettings {
        audit: RetentionSettings::MIN,
        dead_letters: RetentionSettings::MIN,
        instances: RetentionSettings::MIN,
    };
    let settings = MonitorSettings {
        retention: at_least,
        ..MonitorSettings::default()
    };
    assert!(
        builder(Arc::new(InMemoryEventStore::new()), settings)
            .build()
            .is_ok()
    );
}

#[test]
fn cutoffs_saturate_instead_of_panicking() {
    let huge = RetentionSettings {
        audit: Duration::MAX,
        ..RetentionSettings::default()
    };
    let c = huge.cutoffs(t0());
    assert_eq!(c.audit, DateTime::<Utc>::MIN_UTC);
    assert_eq!(c.dead_letters, t0() - TimeDelta::days(30));
    assert_eq!(c.instances, t0() - TimeDelta::days(1));
}

/// The tick prunes by itself, at most once an hour: a record that ages
/// past the retention between two hourly prunes waits for the next one.
#[tokio::test]
async fn the_tick_prunes_once_an_hour() {
    let store = Arc::new(InMemoryEventStore::new());
    let settings = MonitorSettings {
        retention: RetentionSettings {
            audit: Duration::from_secs(2 * 3600),
            ..RetentionSettings::default()
        },
        ..MonitorSettings::default()
    };
    let monitor = builder(store.clone(), settings).build().unwrap();
    let acme = TenantId::new("acme").unwrap();
    let mut config = TenantConfig::new(
        acme.clone(),
        vec![Recipient::new("ops", ChannelKind::Sms, "+15550100")],
    );
    config.probes.inbound = false;
    config.probes.outbound = false;
    monitor.register_tenant(config).await.unwrap();
    let op = Actor::Operator { name: "noc".into() };
    for minutes in [0, 50] {
        let at = t0() + TimeDelta::minutes(minutes);
        monitor
            .act(
                &acme,
                op.clone(),
                Action::Suspend {
                    until: at + TimeDelta::hours(8),
                },
                None,
                at,
            )
            .await
            .unwrap();
        monitor
            .act(&acme, op.clone(), Action::LiftSuspension, None, at)
            .await
            .unwrap();
    }
    let entries = || async { store.audit_log(&acme, 0, 100).await.unwrap().len() };
    assert_eq!(entries().await, 4);
    // The first tick prunes (nothing is two hours old yet); the next may
    // prune an hour later.
    monitor.tick(t0() + TimeDelta::minutes(100)).await.unwrap();
    assert_eq!(entries().await, 4);
    // At 2 h 10 min the first two are old enough, but the last prune was
    // only 30 minutes ago; at 2 h 40 min it runs again.
    monitor.tick(t0() + TimeDelta::minutes(130)).await.unwrap();
    assert_eq!(entries().await, 4, "pruned more often than hourly");
    monitor.tick(t0() + TimeDelta::minutes(160)).await.unwrap();
    assert_eq!(entries().await, 2, "the two older than two hours are gone");
}
