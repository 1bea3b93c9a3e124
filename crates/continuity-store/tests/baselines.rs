//! A monitor restarted on the same database judges with the baseline it
//! learned before: the flow detector's baseline goes through SQLite and
//! PostgreSQL as it goes through the in-memory store.
//!
//! PostgreSQL is found at `CONTINUITY_TEST_PG` (default
//! `host=127.0.0.1 port=5432 user=postgres dbname=test`); a missing server
//! fails these tests.

mod common;

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, TimeDelta, Utc};
use continuity_core::{
    Clock, Direction, FailureKind, ManualClock, Monitor, Observation, TenantId,
    config::{ChannelKind, Recipient, TenantConfig},
    policy::Reading,
    store::EventStore,
    testing::{RIG_PORTAL_URL, RecordingNotifier, rig_signer, rig_start},
};
use continuity_store::{PostgresStore, SqliteStore};

async fn monitor(
    store: Arc<dyn EventStore>,
    at: DateTime<Utc>,
    tenant: &TenantId,
) -> (Monitor, ManualClock) {
    let clock = ManualClock::new(at);
    let monitor = Monitor::builder()
        .clock(Arc::new(clock.clone()))
        .store(store)
        .notifier(Arc::new(RecordingNotifier::new(ChannelKind::Sms)))
        .link_signer(rig_signer())
        .portal_url(RIG_PORTAL_URL)
        .build()
        .unwrap();
    monitor
        .register_tenant(TenantConfig::new(
            tenant.clone(),
            vec![Recipient::new("ops-sms", ChannelKind::Sms, "+15550100")],
        ))
        .await
        .unwrap();
    (monitor, clock)
}

/// The baseline's failure share of the outbound flow, as `Monitor::status` shows it.
fn normal(m: &Monitor, tenant: &TenantId) -> f64 {
    m.status(tenant)
        .unwrap()
        .readings
        .iter()
        .find_map(|(d, _, v)| match v.reading {
            Reading::Flow { normal, .. } if *d == Direction::Outbound => Some(normal),
            _ => None,
        })
        .expect("an outbound flow reading")
}

/// Six hours of outbound mail, one sample in 200 refused, ticked every
/// minute; returns the baseline's failure share and the time after.
async fn learn(m: &Monitor, clock: &ManualClock, tenant: &TenantId) -> (f64, DateTime<Utc>) {
    let mut n = 0u64;
    for _ in 0..6 * 60 {
        let now = clock.advance(TimeDelta::minutes(1));
        for i in 0..6 {
            n += 1;
            let at = now - TimeDelta::seconds(55 - 10 * i);
            m.observe(if n.is_multiple_of(200) {
                Observation::failed(
                    tenant.clone(),
                    Direction::Outbound,
                    at,
                    FailureKind::Refused,
                )
            } else {
                Observation::delivered(
                    tenant.clone(),
                    Direction::Outbound,
                    at,
                    Duration::from_secs(4),
                )
            })
            .unwrap();
        }
        let report = m.tick(now).await.unwrap();
        assert!(report.errors.is_empty(), "{:?}", report.errors);
    }
    (normal(m, tenant), clock.now())
}

fn assert_restored(restored: f64, learned: f64) {
    assert!(
        (restored - learned).abs() <= 0.1 * learned,
        "restored {restored}, learned {learned} (the prior is 0.02)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monitor_restarted_on_a_sqlite_file_keeps_its_baseline() {
    let dir = common::TempDir::new("baselines");
    let path = dir.path().join("b.db");
    let acme = TenantId::new("acme").unwrap();
    let (learned, t) = {
        let store = Arc::new(SqliteStore::open(&path).await.expect("open"));
        let (m, clock) = monitor(store, rig_start(), &acme).await;
        learn(&m, &clock, &acme).await
    };
    let store = Arc::new(SqliteStore::open(&path).await.expect("reopen"));
    let (m, _) = monitor(store, t, &acme).await;
    assert_restored(normal(&m, &acme), learned);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monitor_restarted_on_postgres_keeps_its_baseline() {
    let pg = common::PgSchema::new("baselines").await;
    let acme = TenantId::new("acme").unwrap();
    let (m, clock) = monitor(Arc::new(pg.store.clone()), rig_start(), &acme).await;
    let (learned, t) = learn(&m, &clock, &acme).await;
    drop(m);
    let reconnected = PostgresStore::connect_with(&common::pg_url(), pg.options())
        .await
        .expect("connect");
    let (m, _) = monitor(Arc::new(reconnected), t, &acme).await;
    assert_restored(normal(&m, &acme), learned);
    pg.drop().await;
}
