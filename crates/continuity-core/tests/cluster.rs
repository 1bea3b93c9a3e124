//! Three `Monitor` instances sharing one store (in one process, on one
//! manual clock): each tenant is evaluated and probed by one instance, gets
//! its first alert and one an hour, none twice; when an instance stops, the
//! others take its tenants over.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use chrono::{DateTime, TimeDelta, Utc};
use continuity_core::{
    Direction, ManualClock, Monitor, TenantId,
    cluster::{SHARDS, ShardSet},
    config::{ChannelKind, Recipient, TenantConfig},
    link::{LinkKey, LinkSigner},
    machine::AlertKind,
    memory::InMemoryEventStore,
    monitor::MonitorSettings,
    notify::AlertMessage,
    sim::{SimulatedFlow, SimulatedMailSystem},
    store::EventStore,
    testing::{RecordingNotifier, absolute_thresholds},
};

const TENANTS: usize = 30;

fn start() -> DateTime<Utc> {
    "2026-03-02T00:00:00Z".parse().unwrap()
}

struct Node {
    monitor: Monitor,
    clock: ManualClock,
    probes_dispatched: u64,
}

async fn node(
    name: &str,
    store: Arc<InMemoryEventStore>,
    sms: Arc<RecordingNotifier>,
    tenants: &[TenantId],
) -> Node {
    let clock = ManualClock::new(start());
    let mail = Arc::new(SimulatedMailSystem::new(
        Arc::new(clock.clone()),
        Duration::from_secs(20),
    ));
    let monitor = Monitor::builder()
        .clock(Arc::new(clock.clone()))
        .store(store)
        .notifier(sms)
        .probe(Direction::Outbound, mail.clone())
        .link_signer(LinkSigner::new(LinkKey::new("k1", [9u8; 32]).unwrap()))
        .portal_url("https://continuity.example.net/c/")
        .settings(MonitorSettings {
            lease: Duration::from_secs(180),
            ..MonitorSettings::default()
        })
        .cluster(name)
        .build()
        .unwrap();
    for t in tenants {
        let mut c = absolute_thresholds(
            TenantConfig::new(
                t.clone(),
                vec![Recipient::new("ops", ChannelKind::Sms, "+15550100")],
            ),
            3,
        );
        c.probes.inbound = false;
        monitor.register_tenant(c).await.unwrap();
        // The organisation's server sends nothing: every probe is lost.
        mail.set_flow(t, Direction::Outbound, SimulatedFlow::Blackhole);
    }
    Node {
        monitor,
        clock,
        probes_dispatched: 0,
    }
}

fn assert_partition(sets: &[ShardSet]) {
    let mut seen = ShardSet::EMPTY;
    for s in sets {
        assert_eq!(s.difference(&seen), *s, "a shard has two owners");
        for shard in s.iter() {
            seen.insert(shard);
        }
    }
    assert_eq!(seen.len(), usize::from(SHARDS), "every shard has an owner");
}

#[tokio::test]
async fn three_instances_share_the_tenants_and_take_over_from_a_dead_one() {
    let store = Arc::new(InMemoryEventStore::leasing_on_put());
    let sms = Arc::new(RecordingNotifier::new(ChannelKind::Sms));
    let tenants: Vec<TenantId> = (0..TENANTS)
        .map(|i| TenantId::new(format!("org-{i}")).unwrap())
        .collect();
    let mut nodes = Vec::new();
    for name in ["node-a", "node-b", "node-c"] {
        nodes.push(node(name, store.clone(), sms.clone(), &tenants).await);
    }
    let hours = 6;
    let dies_at = 3 * 60;
    for minute in 1..=hours * 60 {
        let now = start() + TimeDelta::minutes(minute);
        for (i, n) in nodes.iter_mut().enumerate() {
            if i == 1 && minute > dies_at {
                continue; // node-b died
            }
            n.clock.set(now);
            let report = n.monitor.tick(now).await.unwrap();
            assert!(report.errors.is_empty(), "{:?}", report.errors);
            n.probes_dispatched += report.probes_dispatched;
        }
        if minute == dies_at - 1 {
            assert_partition(&[
                nodes[0].monitor.owned_shards(),
                nodes[1].monitor.owned_shards(),
                nodes[2].monitor.owned_shards(),
            ]);
            for n in &nodes {
                let owned = n.monitor.owned_shards().len();
                assert!((84..=86).contains(&owned), "fair shares, got {owned}");
            }
        }
    }
    // node-b's shards went to the two others.
    assert_partition(&[
        nodes[0].monitor.owned_shards(),
        nodes[2].monitor.owned_shards(),
    ]);

    // Each probe round was sent once, not once per instance: 30 tenants,
    // one outbound probe every 5 minutes for 6 hours (a round or so fewer
    // for the dead instance's tenants while its lease ran out).
    let dispatched: u64 = nodes.iter().map(|n| n.probes_dispatched).sum();
    let rounds = (TENANTS * hours as usize * 60 / 5) as u64;
    assert!(
        dispatched >= rounds - rounds / 50 && dispatched <= rounds,
        "probes dispatched {dispatched}, expected about {rounds}"
    );

    let mut by_tenant: BTreeMap<String, Vec<AlertMessage>> = BTreeMap::new();
    for m in sms.messages() {
        by_tenant.entry(m.tenant.to_string()).or_default().push(m);
    }
    assert_eq!(by_tenant.len(), TENANTS, "every tenant was alerted");
    for t in &tenants {
        let alerts = &by_tenant[t.as_str()];
        let ids: Vec<u64> = alerts.iter().map(|m| m.alert_id).collect();
        assert_eq!(
            ids,
            (0..alerts.len() as u64).collect::<Vec<_>>(),
            "{t}: every alert once, in order"
        );
        let stored = store.load(t).await.unwrap().unwrap();
        assert_eq!(
            stored.state.next_alert_id,
            alerts.len() as u64,
            "{t}: every alert decided went out"
        );
        assert_eq!(alerts[0].kind, AlertKind::Raised);
        assert!(
            alerts[1..].iter().all(|m| m.kind == AlertKind::Reminder),
            "{t}: {:?}",
            alerts
                .iter()
                .map(|m| (m.kind, m.created_at.format("%H:%M").to_string()))
                .collect::<Vec<_>>()
        );
        for pair in alerts.windows(2) {
            let gap = pair[1].created_at - pair[0].created_at;
            assert!(
                gap >= TimeDelta::hours(1) && gap <= TimeDelta::minutes(64),
                "{t}: reminders an hour apart, got {gap}"
            );
        }
        // Raised after about 40 minutes (probes lost after 30, three
        // failures, two breached ticks); reminders every hour to the end.
        assert!(
            (5..=6).contains(&alerts.len()),
            "{t}: {} alerts in 6 hours",
            alerts.len()
        );
    }
    assert!(
        store.pending_outbox(10).await.unwrap().is_empty(),
        "nothing left undelivered"
    );
}

#[tokio::test]
async fn a_clean_shutdown_hands_the_shards_over_at_once() {
    let store = Arc::new(InMemoryEventStore::leasing_on_put());
    let sms = Arc::new(RecordingNotifier::new(ChannelKind::Sms));
    let tenants = [TenantId::new("org").unwrap()];
    let a = node("a", store.clone(), sms.clone(), &tenants).await;
    let b = node("b", store.clone(), sms.clone(), &tenants).await;
    let now = start() + TimeDelta::minutes(1);
    a.monitor.tick(now).await.unwrap();
    b.monitor.tick(now).await.unwrap();
    assert_eq!(a.monitor.owned_shards().len(), usize::from(SHARDS));
    assert!(b.monitor.owned_shards().is_empty());
    a.monitor.leave_cluster().await.unwrap();
    assert!(a.monitor.owned_shards().is_empty());
    b.monitor.tick(now + TimeDelta::seconds(1)).await.unwrap();
    assert_eq!(b.monitor.owned_shards().len(), usize::from(SHARDS));
    // a's probe, sent at its last tick, is b's to check at the next minute,
    // not once a's lease on it runs out.
    let next = b.monitor.tick(now + TimeDelta::minutes(1)).await.unwrap();
    assert_eq!(next.probes_checked, 1, "the probe a held is checked");
}

/// A probe's first check is its sender's, under the lease the store gave
/// it as it was stored. When the tenant's shard moves to another instance
/// before that check, the sender releases the probe unchecked and the new
/// owner checks it at once, not after the lease: each probe is checked
/// once, by the instance that owns its tenant then.
#[tokio::test]
async fn a_probe_whose_shard_moves_before_its_first_check_is_checked_by_the_new_owner() {
    let store = Arc::new(InMemoryEventStore::leasing_on_put());
    let sms = Arc::new(RecordingNotifier::new(ChannelKind::Sms));
    let tenants: Vec<TenantId> = (0..TENANTS)
        .map(|i| TenantId::new(format!("org-{i}")).unwrap())
        .collect();
    let a = node("a", store.clone(), sms.clone(), &tenants).await;
    let b = node("b", store.clone(), sms.clone(), &tenants).await;
    let minute = |m: i64| start() + TimeDelta::minutes(m);
    a.clock.set(minute(1));
    let first = a.monitor.tick(minute(1)).await.unwrap();
    assert_eq!(
        first.probes_dispatched, TENANTS as u64,
        "a owns every tenant"
    );
    b.clock.set(minute(1));
    b.monitor.tick(minute(1)).await.unwrap();

    // a gives b its share, then checks the probes it still owns; b takes
    // the share and checks the probes a released.
    a.clock.set(minute(2));
    let at_a = a.monitor.tick(minute(2)).await.unwrap();
    b.clock.set(minute(2));
    let at_b = b.monitor.tick(minute(2)).await.unwrap();
    assert!(at_a.errors.is_empty() && at_b.errors.is_empty());
    let owned_by_b = tenants
        .iter()
        .filter(|t| b.monitor.owned_shards().holds(t))
        .count() as u64;
    assert!(
        owned_by_b > 0 && owned_by_b < TENANTS as u64,
        "the tenants are shared"
    );
    assert_eq!(
        at_b.probes_checked, owned_by_b,
        "b checks its share at once"
    );
    assert_eq!(
        at_a.probes_checked,
        TENANTS as u64 - owned_by_b,
        "a checks only what it still owns"
    );
}
