//! `Monitor::shut_down`: what an instance holds is someone else's at once,
//! in a cluster (its shards and probes) and alone (its probes, for the
//! next start).

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, TimeDelta, Utc};
use continuity::{
    Direction, ManualClock, Monitor, TenantId,
    cluster::{SHARDS, ShardSet},
    config::{ChannelKind, Recipient, TenantConfig},
    link::{LinkKey, LinkSigner},
    memory::InMemoryEventStore,
    sim::{SimulatedFlow, SimulatedMailSystem},
    store::EventStore,
    testing::RecordingNotifier,
};

fn start() -> DateTime<Utc> {
    "2026-03-02T09:00:00Z".parse().unwrap()
}

async fn node(store: Arc<InMemoryEventStore>, cluster: Option<&str>) -> Monitor {
    let clock = ManualClock::new(start());
    let mail = Arc::new(SimulatedMailSystem::new(
        Arc::new(clock.clone()),
        Duration::from_secs(20),
    ));
    let mut builder = Monitor::builder()
        .clock(Arc::new(clock))
        .store(store)
        .notifier(Arc::new(RecordingNotifier::new(ChannelKind::Sms)))
        .probe(Direction::Outbound, mail.clone())
        .link_signer(LinkSigner::new(LinkKey::new("k1", [9u8; 32]).unwrap()))
        .portal_url("https://continuity.example.net/c/");
    if let Some(name) = cluster {
        builder = builder.cluster(name);
    }
    let monitor = builder.build().unwrap();
    let acme = TenantId::new("acme").unwrap();
    let mut config = TenantConfig::new(
        acme.clone(),
        vec![Recipient::new("ops", ChannelKind::Sms, "+15550100")],
    );
    config.probes.inbound = false;
    monitor.register_tenant(config).await.unwrap();
    mail.set_flow(&acme, Direction::Outbound, SimulatedFlow::Blackhole);
    monitor
}

/// Probes anyone may claim at `now`.
async fn claimable(store: &InMemoryEventStore, now: DateTime<Utc>) -> usize {
    store
        .claim_probes(now, Duration::from_secs(120), 10, &ShardSet::ALL)
        .await
        .unwrap()
        .len()
}

#[tokio::test]
async fn a_single_instance_hands_its_held_probes_back_for_the_next_start() {
    let store = Arc::new(InMemoryEventStore::leasing_on_put());
    let first = node(store.clone(), None).await;
    let report = first.tick(start()).await.unwrap();
    assert_eq!(report.probes_dispatched, 1);
    first.shut_down().await.unwrap();
    // The next start checks the probe at its first check, not after the
    // lease the first instance held it under.
    assert_eq!(claimable(&store, start() + TimeDelta::minutes(1)).await, 1);
}

#[tokio::test]
async fn without_shutting_down_the_probe_waits_out_its_lease() {
    let store = Arc::new(InMemoryEventStore::leasing_on_put());
    let first = node(store.clone(), None).await;
    first.tick(start()).await.unwrap();
    drop(first);
    assert_eq!(claimable(&store, start() + TimeDelta::minutes(1)).await, 0);
}

#[tokio::test]
async fn a_cluster_member_hands_its_shards_over_at_once() {
    let store = Arc::new(InMemoryEventStore::leasing_on_put());
    let a = node(store.clone(), Some("a")).await;
    let b = node(store.clone(), Some("b")).await;
    a.tick(start()).await.unwrap();
    b.tick(start()).await.unwrap();
    assert_eq!(a.owned_shards().len(), usize::from(SHARDS));
    a.shut_down().await.unwrap();
    assert!(a.owned_shards().is_empty());
    let next = b.tick(start() + TimeDelta::minutes(1)).await.unwrap();
    assert_eq!(b.owned_shards().len(), usize::from(SHARDS));
    assert_eq!(next.probes_checked, 1, "the probe a held is b's to check");
}
