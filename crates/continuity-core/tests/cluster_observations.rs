//! A gateway whose nodes each see part of every tenant's mail: three
//! `Monitor` instances in a cluster, each told about a random third of the
//! observations, judge every tenant as one instance told about all of them
//! would, at most one tick later; nothing counts twice or goes missing.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use chrono::{DateTime, TimeDelta, Utc};
use continuity_core::{
    Direction, ManualClock, Monitor, Observation, TenantId,
    config::{ChannelKind, Recipient, TenantConfig},
    domain::FailureKind,
    link::{LinkKey, LinkSigner},
    machine::AlertKind,
    memory::InMemoryEventStore,
    monitor::MonitorSettings,
    testing::{RecordingNotifier, SplitMix64},
    window::Recorded,
};

const TENANTS: usize = 6;
/// Observations per tenant, direction and minute.
const PER_MINUTE: u64 = 4;
const HOURS: i64 = 8;
/// Tenant 0's outbound mail fails from here, for two hours.
const OUTAGE_FROM: i64 = 5 * 60;
const OUTAGE_TO: i64 = 7 * 60;

fn start() -> DateTime<Utc> {
    "2026-03-02T00:00:00Z".parse().unwrap()
}

struct Node {
    monitor: Monitor,
    clock: ManualClock,
    sms: Arc<RecordingNotifier>,
}

async fn node(cluster: Option<(&str, Arc<InMemoryEventStore>)>, tenants: &[TenantId]) -> Node {
    let clock = ManualClock::new(start());
    let sms = Arc::new(RecordingNotifier::new(ChannelKind::Sms));
    let builder = Monitor::builder()
        .clock(Arc::new(clock.clone()))
        .notifier(sms.clone())
        .link_signer(LinkSigner::new(LinkKey::new("k1", [9u8; 32]).unwrap()))
        .portal_url("https://continuity.example.net/c/")
        .settings(MonitorSettings {
            lease: Duration::from_secs(180),
            ..MonitorSettings::default()
        });
    let monitor = match cluster {
        Some((name, store)) => builder.store(store).cluster(name).build().unwrap(),
        None => builder.in_memory_store().build().unwrap(),
    };
    for t in tenants {
        // The default judgement (the learned flow detector), passive
        // observations only.
        let mut c = TenantConfig::new(
            t.clone(),
            vec![Recipient::new("ops", ChannelKind::Sms, "+15550100")],
        );
        c.probes.inbound = false;
        c.probes.outbound = false;
        monitor.register_tenant(c).await.unwrap();
    }
    Node {
        monitor,
        clock,
        sms,
    }
}

/// (tenant, alert kind) → minutes at which such alerts were sent.
fn timeline(sms: &RecordingNotifier) -> BTreeMap<(String, String), Vec<i64>> {
    let mut out: BTreeMap<(String, String), Vec<i64>> = BTreeMap::new();
    for m in sms.messages() {
        out.entry((m.tenant.to_string(), format!("{:?}", m.kind)))
            .or_default()
            .push((m.created_at - start()).num_minutes());
    }
    out
}

#[tokio::test]
async fn observations_spread_over_three_instances_are_judged_as_by_one_that_saw_them_all() {
    let tenants: Vec<TenantId> = (0..TENANTS)
        .map(|i| TenantId::new(format!("org-{i}")).unwrap())
        .collect();
    let store = Arc::new(InMemoryEventStore::new());
    let mut nodes = Vec::new();
    for name in ["node-a", "node-b", "node-c"] {
        nodes.push(node(Some((name, store.clone())), &tenants).await);
    }
    let single = node(None, &tenants).await;
    let mut rng = SplitMix64::new(7);
    let mut forwarded = 0u64;
    let (mut shared, mut merged) = (0u64, 0u64);
    for minute in 1..=HOURS * 60 {
        let now = start() + TimeDelta::minutes(minute);
        // The minute's mail, stamped inside it; nothing in the last
        // minutes, so that at the end every instance has passed on
        // everything it saw.
        if minute <= HOURS * 60 - 3 {
            for (i, t) in tenants.iter().enumerate() {
                for d in Direction::ALL {
                    for _ in 0..PER_MINUTE {
                        let at = now - TimeDelta::milliseconds(1 + rng.below(59_999) as i64);
                        let failing = i == 0
                            && d == Direction::Outbound
                            && (OUTAGE_FROM..OUTAGE_TO).contains(&minute);
                        let o = if failing {
                            Observation::failed(t.clone(), d, at, FailureKind::TimedOut)
                                .with_reply("421 4.4.2 connection timed out")
                        } else {
                            let latency = Duration::from_millis(2_000 + rng.below(20_000));
                            Observation::delivered(t.clone(), d, at, latency)
                        };
                        single.monitor.observe(o.clone()).unwrap();
                        let n = &nodes[rng.below(3) as usize];
                        if n.monitor.observe(o).unwrap() == Recorded::Forwarded {
                            forwarded += 1;
                        }
                    }
                }
            }
        }
        single.clock.set(now);
        let r = single.monitor.tick(now).await.unwrap();
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        for n in &nodes {
            n.clock.set(now);
            let r = n.monitor.tick(now).await.unwrap();
            assert!(r.errors.is_empty(), "{:?}", r.errors);
            shared += r.observations_shared;
            merged += r.observations_merged;
        }
    }

    // About two thirds of the observations reach an instance that does not
    // own their tenant; every one of them is passed on and merged once.
    let total = (HOURS * 60 - 3) as u64 * TENANTS as u64 * 2 * PER_MINUTE;
    assert!(
        forwarded > total / 2 && forwarded < total * 4 / 5,
        "{forwarded} of {total} forwarded"
    );
    assert_eq!(
        merged, forwarded,
        "every forwarded observation merged, once ({shared} went through the store)"
    );

    // Each owner's window now holds what the single instance's holds.
    for t in &tenants {
        let owner = nodes
            .iter()
            .find(|n| n.monitor.owned_shards().holds(t))
            .expect("every tenant has an owner");
        let mine = owner.monitor.status(t).unwrap();
        let theirs = single.monitor.status(t).unwrap();
        assert_eq!(mine.failing, theirs.failing, "{t}: failures by kind");
        assert_eq!(
            mine.readings.len(),
            theirs.readings.len(),
            "{t}: the same policies read"
        );
    }

    // The same alerts, each at most one tick later.
    let expected = timeline(&single.sms);
    let mut cluster: BTreeMap<(String, String), Vec<i64>> = BTreeMap::new();
    for n in &nodes {
        for (k, v) in timeline(&n.sms) {
            cluster.entry(k).or_default().extend(v);
        }
    }
    for v in cluster.values_mut() {
        v.sort();
    }
    assert!(
        expected.contains_key(&("org-0".to_string(), format!("{:?}", AlertKind::Raised))),
        "the single instance detects the outage: {expected:?}"
    );
    assert_eq!(
        expected.keys().collect::<Vec<_>>(),
        cluster.keys().collect::<Vec<_>>(),
        "the same kinds of alert for the same tenants: single {expected:?}, cluster {cluster:?}"
    );
    for (k, single_at) in &expected {
        let cluster_at = &cluster[k];
        assert_eq!(
            single_at.len(),
            cluster_at.len(),
            "{k:?}: single {single_at:?}, cluster {cluster_at:?}"
        );
        for (s, c) in single_at.iter().zip(cluster_at) {
            assert!(
                (*s..=s + 1).contains(c),
                "{k:?}: the cluster at minute {c}, the single instance at {s}"
            );
        }
    }
}
