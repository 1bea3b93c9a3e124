//! The flow detector's learned baseline is kept in the store: a monitor
//! that restarts, or that takes a tenant over from another instance, judges
//! as the one that learned it, not from the cold prior. Saves are spread
//! over time and come only from the tenant's owner; a store that refuses
//! one does not fail the tick; an instance that took a tenant over without
//! its baselines saves none over them until it has loaded them.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, TimeDelta, Utc};
use continuity_core::{
    Clock, Direction, FailureKind, ManualClock, Monitor, Observation, TenantId,
    cluster::{SHARDS, shard_of},
    config::{ChannelKind, Recipient, TenantConfig},
    memory::InMemoryEventStore,
    monitor::MonitorSettings,
    policy::{FlowFinding, Reading},
    sim::SimulatedMailSystem,
    store::EventStore,
    testing::{FaultyStore, RIG_PORTAL_URL, RecordingNotifier, rig_signer, rig_start},
};

fn config(tenant: &TenantId) -> TenantConfig {
    TenantConfig::new(
        tenant.clone(),
        vec![Recipient::new("ops-sms", ChannelKind::Sms, "+15550100")],
    )
}

struct Node {
    monitor: Monitor,
    clock: ManualClock,
    sms: Arc<RecordingNotifier>,
}

async fn node(
    store: Arc<dyn EventStore>,
    at: DateTime<Utc>,
    settings: MonitorSettings,
    cluster: Option<&str>,
    tenants: &[TenantId],
) -> Node {
    let clock = ManualClock::new(at);
    let sms = Arc::new(RecordingNotifier::new(ChannelKind::Sms));
    let mut b = Monitor::builder()
        .clock(Arc::new(clock.clone()))
        .store(store)
        .notifier(sms.clone())
        .link_signer(rig_signer())
        .portal_url(RIG_PORTAL_URL)
        .settings(settings);
    if let Some(name) = cluster {
        b = b.cluster(name);
    }
    let monitor = b.build().unwrap();
    for t in tenants {
        monitor.register_tenant(config(t)).await.unwrap();
    }
    Node {
        monitor,
        clock,
        sms,
    }
}

/// One minute of ordinary outbound mail for `tenant`, ending at `now`: six
/// deliveries of 5 s; one sample in 500 fails (`n` counts the samples).
fn ordinary_minute(m: &Monitor, tenant: &TenantId, now: DateTime<Utc>, n: &mut u64) {
    for i in 0..6 {
        *n += 1;
        let at = now - TimeDelta::seconds(55 - 10 * i);
        let o = if n.is_multiple_of(500) {
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
                Duration::from_secs(5),
            )
        };
        m.observe(o).unwrap();
    }
}

/// The first minute of an outage: 4 of 10 samples refused.
fn outage_minute(m: &Monitor, tenant: &TenantId, now: DateTime<Utc>) {
    for i in 0..10 {
        let at = now - TimeDelta::seconds(55 - 5 * i);
        let o = if i % 3 == 0 {
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
                Duration::from_secs(5),
            )
        };
        m.observe(o).unwrap();
    }
}

/// The outbound flow reading: what it found, and the baseline's failure share.
fn flow(m: &Monitor, tenant: &TenantId) -> (FlowFinding, f64) {
    let status = m.status(tenant).unwrap();
    status
        .readings
        .iter()
        .find_map(|(d, name, v)| match v.reading {
            Reading::Flow {
                finding, normal, ..
            } if *d == Direction::Outbound && name == "flow" => Some((finding, normal)),
            _ => None,
        })
        .expect("an outbound flow reading")
}

/// Runs `node` for `minutes` of ordinary outbound mail of `tenants`;
/// returns the baseline records saved.
async fn learn(node: &Node, tenants: &[TenantId], minutes: i64, n: &mut u64) -> u64 {
    let mut saved = 0;
    for _ in 0..minutes {
        let now = node.clock.advance(TimeDelta::minutes(1));
        for t in tenants {
            ordinary_minute(&node.monitor, t, now, n);
        }
        let report = node.monitor.tick(now).await.unwrap();
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        saved += report.baselines_saved;
    }
    saved
}

/// Ticks once at the clock's next minute with the first minute of an
/// outage; the finding then.
async fn outage_starts(node: &Node, tenant: &TenantId) -> FlowFinding {
    let now = node.clock.advance(TimeDelta::minutes(1));
    outage_minute(&node.monitor, tenant, now);
    node.monitor.tick(now).await.unwrap();
    flow(&node.monitor, tenant).0
}

/// Ticks `node` at the next minute of its clock.
async fn tick(node: &Node) -> continuity_core::TickReport {
    let now = node.clock.advance(TimeDelta::minutes(1));
    node.monitor.tick(now).await.unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 0.1 * a.max(b)
}

#[tokio::test]
async fn a_restarted_monitor_judges_with_what_it_learned_before() {
    let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
    let acme = TenantId::new("acme").unwrap();
    let tenants = [acme.clone()];
    let a = node(
        store.clone(),
        rig_start(),
        MonitorSettings::default(),
        None,
        &tenants,
    )
    .await;
    let mut n = 0;
    let saved = learn(&a, &tenants, 24 * 60, &mut n).await;
    // Hourly, outbound only (nothing inbound was learned).
    assert!((23..=25).contains(&saved), "{saved} records saved in a day");
    let (_, learned) = flow(&a.monitor, &acme);
    assert!(
        (0.0015..0.003).contains(&learned),
        "one sample in 500 fails: {learned}"
    );

    // The process dies without a word: the next one starts from the last
    // hourly save.
    let t = a.clock.now();
    drop(a);
    let b = node(store.clone(), t, MonitorSettings::default(), None, &tenants).await;
    let (finding, restored) = flow(&b.monitor, &acme);
    assert_eq!(finding, FlowFinding::NoData);
    assert!(
        close(restored, learned),
        "restored {restored}, learned {learned}"
    );
    assert_eq!(
        outage_starts(&b, &acme).await,
        FlowFinding::UnusualFailures,
        "4 failures in 10 are unusual where 1 in 500 is normal"
    );
    b.clock.advance(TimeDelta::minutes(1));
    let now = b.clock.now();
    outage_minute(&b.monitor, &acme, now);
    b.monitor.tick(now).await.unwrap();
    assert_eq!(b.sms.messages().len(), 1, "raised after two minutes");

    // A monitor that learned nothing starts from the prior (2 %), under
    // which the same minute proves nothing yet.
    let cold = node(
        Arc::new(InMemoryEventStore::new()),
        t,
        MonitorSettings::default(),
        None,
        &tenants,
    )
    .await;
    let (_, prior) = flow(&cold.monitor, &acme);
    assert!(!close(prior, learned), "prior {prior}");
    assert_ne!(
        outage_starts(&cold, &acme).await,
        FlowFinding::UnusualFailures
    );
}

#[tokio::test]
async fn a_clean_shutdown_saves_what_was_learned_since_the_last_save() {
    let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
    let acme = TenantId::new("acme").unwrap();
    let tenants = [acme.clone()];
    // Saves a day apart: the one of the shutdown is the only one.
    let settings = MonitorSettings {
        baseline_every: Duration::from_secs(86_400),
        ..MonitorSettings::default()
    };
    let a = node(store.clone(), rig_start(), settings.clone(), None, &tenants).await;
    let mut n = 0;
    assert_eq!(learn(&a, &tenants, 6 * 60, &mut n).await, 0);
    assert!(store.load_baselines(&acme).await.unwrap().is_empty());
    assert_eq!(a.monitor.save_baselines().await.unwrap(), 1);
    assert_eq!(
        a.monitor.save_baselines().await.unwrap(),
        0,
        "nothing learned since: nothing written"
    );
    let (_, learned) = flow(&a.monitor, &acme);
    let t = a.clock.now();
    drop(a);
    let b = node(store, t, settings, None, &tenants).await;
    let (_, restored) = flow(&b.monitor, &acme);
    assert!(
        close(restored, learned),
        "restored {restored}, learned {learned}"
    );
}

/// Two tenant ids, the first in the lower half of the shards (kept by the
/// first instance when a second joins), the second in the upper half.
fn one_per_half() -> [TenantId; 2] {
    let half = SHARDS / 2;
    let pick = |low: bool| {
        (0..)
            .map(|i| TenantId::new(format!("org-{i}")).unwrap())
            .find(|t| (shard_of(t) < half) == low)
            .unwrap()
    };
    [pick(true), pick(false)]
}

#[tokio::test]
async fn instances_taking_tenants_over_start_from_what_the_previous_owner_learned() {
    let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
    let [low, high] = one_per_half();
    let tenants = [low.clone(), high.clone()];
    let settings = MonitorSettings {
        lease: Duration::from_secs(180),
        ..MonitorSettings::default()
    };
    let a = node(
        store.clone(),
        rig_start(),
        settings.clone(),
        Some("a"),
        &tenants,
    )
    .await;
    let b = node(store.clone(), rig_start(), settings, Some("b"), &tenants).await;
    let (mut n, mut m) = (0, 0);
    // a alone learns a day of both tenants' mail. b, not in the cluster
    // yet, is told of a third of `low`'s mail failing (misrouted
    // observations): what it learns from them must never reach the store.
    for _ in 0..24 * 60 {
        let now = a.clock.advance(TimeDelta::minutes(1));
        b.clock.set(now);
        for t in &tenants {
            ordinary_minute(&a.monitor, t, now, &mut n);
        }
        for i in 0..6 {
            m += 1;
            let at = now - TimeDelta::seconds(55 - 10 * i);
            b.monitor
                .observe(if m % 3 == 0 {
                    Observation::failed(low.clone(), Direction::Outbound, at, FailureKind::Refused)
                } else {
                    Observation::delivered(
                        low.clone(),
                        Direction::Outbound,
                        at,
                        Duration::from_secs(5),
                    )
                })
                .unwrap();
        }
        a.monitor.tick(now).await.unwrap();
    }
    let learned: Vec<f64> = tenants.iter().map(|t| flow(&a.monitor, t).1).collect();
    let (_, cold) = flow(&b.monitor, &high);
    assert!(!close(cold, learned[1]), "b knows nothing yet: {cold}");

    // b joins: a gives the upper half up (saving those tenants' baselines
    // as it does), b takes it.
    b.clock.set(a.clock.now());
    tick(&b).await;
    let report = tick(&a).await;
    assert!(report.baselines_saved >= 1, "the tenant given up is saved");
    let given_up = store.load_baselines(&high).await.unwrap();
    assert_eq!(
        given_up[0].saved_at,
        a.clock.now(),
        "saved as it was given up"
    );
    tick(&b).await;
    assert!(b.monitor.owned_shards().contains(shard_of(&high)));
    let (_, taken_over) = flow(&b.monitor, &high);
    assert!(
        close(taken_over, learned[1]),
        "b took {high} over with {taken_over}, a had learned {}",
        learned[1]
    );

    // a dies (no leave): once its lease ran out, b takes the rest over
    // with a's last hourly save.
    for _ in 0..5 {
        tick(&b).await;
    }
    assert_eq!(b.monitor.owned_shards().len(), usize::from(SHARDS));
    let (_, taken_over) = flow(&b.monitor, &low);
    assert!(
        close(taken_over, learned[0]),
        "b took {low} over with {taken_over}, a had learned {}",
        learned[0]
    );
    assert_eq!(outage_starts(&b, &low).await, FlowFinding::UnusualFailures);
}

#[tokio::test]
async fn leaving_the_cluster_hands_the_baselines_over() {
    let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
    let acme = TenantId::new("acme").unwrap();
    let tenants = [acme.clone()];
    let settings = MonitorSettings {
        baseline_every: Duration::from_secs(86_400),
        ..MonitorSettings::default()
    };
    let a = node(
        store.clone(),
        rig_start(),
        settings.clone(),
        Some("a"),
        &tenants,
    )
    .await;
    let b = node(store.clone(), rig_start(), settings, Some("b"), &tenants).await;
    let mut n = 0;
    learn(&a, &tenants, 6 * 60, &mut n).await;
    assert!(store.load_baselines(&acme).await.unwrap().is_empty());
    let (_, learned) = flow(&a.monitor, &acme);
    a.monitor.leave_cluster().await.unwrap();
    assert_eq!(store.load_baselines(&acme).await.unwrap().len(), 1);
    let now = a.clock.now() + TimeDelta::minutes(1);
    b.clock.set(now);
    b.monitor.tick(now).await.unwrap();
    assert!(b.monitor.owned_shards().contains(shard_of(&acme)));
    let (_, taken_over) = flow(&b.monitor, &acme);
    assert!(close(taken_over, learned), "{taken_over} vs {learned}");
}

#[tokio::test]
async fn saves_are_spread_over_the_hour_and_follow_the_work_due() {
    let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
    let tenants: Vec<TenantId> = (0..300)
        .map(|i| TenantId::new(format!("tenant-{i:04}")).unwrap())
        .collect();
    let clock = ManualClock::new(rig_start());
    let mail = Arc::new(SimulatedMailSystem::new(
        Arc::new(clock.clone()),
        Duration::from_secs(20),
    ));
    let monitor = Monitor::builder()
        .clock(Arc::new(clock.clone()))
        .store(store.clone())
        .notifier(Arc::new(RecordingNotifier::new(ChannelKind::Sms)))
        .probe(Direction::Inbound, mail.clone())
        .probe(Direction::Outbound, mail)
        .link_signer(rig_signer())
        .portal_url(RIG_PORTAL_URL)
        .settings(MonitorSettings {
            batch: 50,
            ..MonitorSettings::default()
        })
        .build()
        .unwrap();
    for t in &tenants {
        monitor.register_tenant(config(t)).await.unwrap();
    }
    let mut per_tick = Vec::new();
    for _ in 0..3 * 60 {
        let now = clock.advance(TimeDelta::minutes(1));
        let report = monitor.tick(now).await.unwrap();
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        per_tick.push(report.baselines_saved);
    }
    // 300 tenants, two directions, once an hour: 10 records a minute on
    // average, never all at once.
    let busiest = per_tick.iter().max().copied().unwrap_or(0);
    assert!(busiest <= 40, "{busiest} records saved in one tick");
    let last_hour: u64 = per_tick[120..].iter().sum();
    assert_eq!(last_hour, 600, "each tenant's two directions once an hour");
    for t in &tenants {
        let kept = store.load_baselines(t).await.unwrap();
        assert_eq!(kept.len(), 2, "{t}: both directions saved");
        assert!(
            kept.iter()
                .all(|r| r.saved_at > clock.now() - TimeDelta::hours(1))
        );
    }
}

#[tokio::test]
async fn a_store_that_refuses_a_save_fails_no_tick_and_the_save_comes_later() {
    let store = Arc::new(FaultyStore::new(InMemoryEventStore::new()));
    let acme = TenantId::new("acme").unwrap();
    let tenants = [acme.clone()];
    let settings = MonitorSettings {
        baseline_every: Duration::from_secs(600),
        ..MonitorSettings::default()
    };
    let a = node(store.clone(), rig_start(), settings, None, &tenants).await;
    let mut n = 0;
    learn(&a, &tenants, 15, &mut n).await;
    let before = store.load_baselines(&acme).await.unwrap();
    assert_eq!(before.len(), 1, "saved within the first ten minutes");
    // Down for the next save (due ten minutes after the first).
    store.set_down(true);
    let mut errors = Vec::new();
    for _ in 0..12 {
        let now = a.clock.advance(TimeDelta::minutes(1));
        ordinary_minute(&a.monitor, &acme, now, &mut n);
        let report = a.monitor.tick(now).await.expect("the tick goes on");
        assert_eq!(report.baselines_saved, 0);
        errors.extend(report.errors);
    }
    assert!(
        errors.iter().any(|e| e.contains("saving baselines")),
        "{errors:?}"
    );
    store.set_down(false);
    let now = a.clock.advance(TimeDelta::minutes(1));
    let report = a.monitor.tick(now).await.unwrap();
    assert_eq!(report.baselines_saved, 1, "{:?}", report.errors);
    let after = store.load_baselines(&acme).await.unwrap();
    assert_eq!(after[0].saved_at, now);
    assert_ne!(after[0].snapshot, before[0].snapshot);
}

#[tokio::test]
async fn a_take_over_that_cannot_load_the_baselines_saves_none_over_them_until_it_can() {
    let store = Arc::new(FaultyStore::new(InMemoryEventStore::new()));
    let acme = TenantId::new("acme").unwrap();
    let tenants = [acme.clone()];
    let settings = MonitorSettings {
        baseline_every: Duration::from_secs(600),
        ..MonitorSettings::default()
    };
    let a = node(
        store.clone(),
        rig_start(),
        settings.clone(),
        Some("a"),
        &tenants,
    )
    .await;
    let b = node(store.clone(), rig_start(), settings, Some("b"), &tenants).await;
    let mut n = 0;
    learn(&a, &tenants, 6 * 60, &mut n).await;
    let (_, learned) = flow(&a.monitor, &acme);
    a.monitor.leave_cluster().await.unwrap();
    let saved = store.load_baselines(&acme).await.unwrap();

    // b takes acme over while its baselines cannot be loaded, and goes on
    // learning from what it sees.
    store.set_baseline_loads_down(true);
    b.clock.set(a.clock.now());
    let mut errors = Vec::new();
    for _ in 0..30 {
        let now = b.clock.advance(TimeDelta::minutes(1));
        ordinary_minute(&b.monitor, &acme, now, &mut n);
        let report = b.monitor.tick(now).await.expect("the tick goes on");
        assert_eq!(
            report.baselines_saved, 0,
            "nothing saved over the stored baseline"
        );
        errors.extend(report.errors);
    }
    assert!(b.monitor.owned_shards().contains(shard_of(&acme)));
    assert!(
        errors.iter().any(|e| e.contains("loading baselines")),
        "{errors:?}"
    );
    store.set_baseline_loads_down(false);
    assert_eq!(
        store.load_baselines(&acme).await.unwrap(),
        saved,
        "a's baseline is still the one stored"
    );

    // Once the store answers, the baselines are loaded, then saved on.
    let mut written = 0;
    for _ in 0..10 {
        written += tick(&b).await.baselines_saved;
    }
    assert_eq!(written, 1);
    let (_, taken_over) = flow(&b.monitor, &acme);
    assert!(close(taken_over, learned), "{taken_over} vs {learned}");
}
