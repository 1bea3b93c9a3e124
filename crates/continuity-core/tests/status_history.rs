//! `TenantStatus::history`: a direction's recent flow bucket by bucket, as
//! the portal's chart draws it: which buckets, whether this instance watched
//! them, the thresholds, and the probes on their way.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, TimeDelta, Utc};
use continuity_core::{
    Direction, ManualClock, Monitor, Observation, TenantId,
    config::{ChannelKind, Recipient, TenantConfig},
    link::{LinkKey, LinkSigner},
    memory::InMemoryEventStore,
    monitor::{DirectionHistory, HISTORY_SPAN},
    sim::{SimulatedFlow, SimulatedMailSystem},
    testing::RecordingNotifier,
};

fn t0() -> DateTime<Utc> {
    "2026-03-02T08:00:00Z".parse().unwrap()
}

fn monitor(clock: &ManualClock, mail: Option<Arc<SimulatedMailSystem>>) -> Monitor {
    let mut b = Monitor::builder()
        .in_memory_store()
        .clock(Arc::new(clock.clone()))
        .notifier(Arc::new(RecordingNotifier::new(ChannelKind::Sms)))
        .link_signer(LinkSigner::new(LinkKey::new("k1", [1u8; 32]).unwrap()))
        .portal_url("https://continuity.example.net/c/");
    if let Some(mail) = mail {
        b = b.probe(Direction::Outbound, mail);
    }
    b.build().unwrap()
}

fn config(tenant: &TenantId) -> TenantConfig {
    let mut c = TenantConfig::new(
        tenant.clone(),
        vec![Recipient::new("ops", ChannelKind::Sms, "+15550100")],
    );
    c.probes.inbound = false;
    c.probes.outbound = false;
    c
}

fn outbound(m: &Monitor, t: &TenantId) -> DirectionHistory {
    let h = m.status(t).unwrap().history;
    assert_eq!(h.len(), 2);
    assert_eq!(h[0].direction, Direction::Inbound);
    h[1].clone()
}

#[tokio::test]
async fn the_buckets_are_those_of_the_last_hour_whatever_the_window() {
    let clock = ManualClock::new(t0());
    let m = monitor(&clock, None);
    let acme = TenantId::new("acme").unwrap();
    // (window, bucket width in seconds, buckets shown): a window shorter
    // than the hour shows all it holds; a longer one the buckets that end
    // within the hour, the first of them partly older.
    for (window, width, count) in [("15m", 75, 12), ("1h", 300, 12), ("2h", 600, 7)] {
        let mut c = config(&acme);
        c.outbound.window = continuity_core::duration::parse(window).unwrap();
        m.register_tenant(c).await.unwrap();
        // Halfway into a bucket, and on a bucket's first instant (where the
        // bucket ending exactly an hour ago must not count).
        for offset in [width / 2, 0] {
            let now = t0() + TimeDelta::hours(3) + TimeDelta::seconds(offset);
            clock.set(now);
            let h = outbound(&m, &acme);
            assert_eq!(
                h.bucket_width,
                Duration::from_secs(width as u64),
                "{window}"
            );
            assert_eq!(h.buckets.len(), count, "{window} at {now}");
            let last = h.buckets.last().unwrap().start;
            assert!(
                last <= now && now < last + TimeDelta::seconds(width),
                "{window}"
            );
            let hour = TimeDelta::from_std(HISTORY_SPAN).unwrap();
            let first = h.buckets[0].start;
            assert!(first + TimeDelta::seconds(width) > now - hour, "{window}");
            if window == "2h" {
                assert!(first <= now - hour, "{window}: {first}");
            }
            for pair in h.buckets.windows(2) {
                assert_eq!(pair[1].start - pair[0].start, TimeDelta::seconds(width));
            }
        }
        clock.set(t0());
    }
}

#[tokio::test]
async fn buckets_before_the_tenant_was_watched_here_say_so() {
    let clock = ManualClock::new(t0());
    let m = monitor(&clock, None);
    let acme = TenantId::new("acme").unwrap();
    m.register_tenant(config(&acme)).await.unwrap();
    clock.set(t0() + TimeDelta::minutes(21));
    m.observe(Observation::delivered(
        acme.clone(),
        Direction::Outbound,
        t0() + TimeDelta::minutes(12),
        Duration::from_secs(30),
    ))
    .unwrap();
    // Mail from before the registration, reported late, was seen all the
    // same.
    m.observe(Observation::delivered(
        acme.clone(),
        Direction::Outbound,
        t0() - TimeDelta::minutes(22),
        Duration::from_secs(40),
    ))
    .unwrap();
    let h = outbound(&m, &acme);
    // 07:25 to 08:20: watched from registration at 08:00 on, and 07:35.
    let watched: Vec<bool> = h.buckets.iter().map(|b| b.watched).collect();
    let mut want = [vec![false; 7], vec![true; 5]].concat();
    want[2] = true;
    assert_eq!(watched, want);
    assert_eq!(h.buckets[2].deliveries, 1);
    let b = &h.buckets[9];
    assert_eq!(b.start, t0() + TimeDelta::minutes(10));
    assert_eq!((b.deliveries, b.failures), (1, 0));
    assert_eq!(b.latency, Some(Duration::from_secs(30)));
    // The default judgement: no absolute threshold, nothing learned yet.
    assert_eq!(h.latency_limit, None);
    assert_eq!(h.failure_limit, None);
}

#[tokio::test]
async fn the_flow_detectors_slow_limit_and_probes_on_their_way_are_drawn() {
    let clock = ManualClock::new(t0());
    let mail = Arc::new(SimulatedMailSystem::new(
        Arc::new(clock.clone()),
        Duration::from_secs(20),
    ));
    let m = monitor(&clock, Some(mail.clone()));
    let acme = TenantId::new("acme").unwrap();
    let mut c = config(&acme);
    c.probes.outbound = true;
    m.register_tenant(c).await.unwrap();
    // Four hours of normal mail: the detector learns what is slow.
    for minute in 1..=240 {
        let now = clock.advance(TimeDelta::minutes(1));
        for i in 0..4 {
            m.observe(Observation::delivered(
                acme.clone(),
                Direction::Outbound,
                now - TimeDelta::seconds(10 * i),
                Duration::from_secs(15 + (minute + i) as u64 % 20),
            ))
            .unwrap();
        }
        m.tick(now).await.unwrap();
    }
    let learned = outbound(&m, &acme);
    let slow = learned
        .latency_limit
        .expect("the detector learned what is slow");
    assert!(
        slow > Duration::from_secs(15) && slow < Duration::from_secs(300),
        "{slow:?}"
    );
    assert!(learned.overdue.is_empty());
    // Then the server stops sending: probes stay on their way and show
    // before any of them is lost.
    mail.set_flow(&acme, Direction::Outbound, SimulatedFlow::Blackhole);
    let mut seen = None;
    for _ in 0..30 {
        let now = clock.advance(TimeDelta::minutes(1));
        m.tick(now).await.unwrap();
        let h = outbound(&m, &acme);
        if let Some(p) = h.overdue.first() {
            assert!(p.age > slow, "{:?} not past {slow:?}", p.age);
            assert!(h.buckets.iter().all(|b| b.failures == 0));
            seen = Some(h);
            break;
        }
    }
    let h = seen.expect("a probe on its way past what is slow");
    assert_eq!(h.latency_limit, Some(slow));
    let json = serde_json::to_value(&h).unwrap();
    assert!(json["overdue"][0]["age"].is_string(), "{json}");
}

#[tokio::test]
async fn in_a_cluster_only_the_owner_shows_figures() {
    let store = Arc::new(InMemoryEventStore::new());
    let clock = ManualClock::new(t0());
    let tenants: Vec<TenantId> = (0..16)
        .map(|i| TenantId::new(format!("t{i}")).unwrap())
        .collect();
    let mut nodes = Vec::new();
    for name in ["a", "b"] {
        let m = Monitor::builder()
            .store(store.clone())
            .cluster(name)
            .clock(Arc::new(clock.clone()))
            .notifier(Arc::new(RecordingNotifier::new(ChannelKind::Sms)))
            .link_signer(LinkSigner::new(LinkKey::new("k1", [1u8; 32]).unwrap()))
            .portal_url("https://continuity.example.net/c/")
            .build()
            .unwrap();
        for t in &tenants {
            m.register_tenant(config(t)).await.unwrap();
        }
        nodes.push(m);
    }
    for _ in 0..5 {
        let now = clock.advance(TimeDelta::minutes(1));
        for m in &nodes {
            m.tick(now).await.unwrap();
        }
    }
    let mut owned = [0, 0];
    for t in &tenants {
        let watched: Vec<bool> = nodes
            .iter()
            .map(|m| outbound(m, t).buckets.iter().any(|b| b.watched))
            .collect();
        assert_eq!(
            watched.iter().filter(|w| **w).count(),
            1,
            "{t}: {watched:?}"
        );
        owned[usize::from(watched[1])] += 1;
    }
    assert!(owned[0] > 0 && owned[1] > 0, "{owned:?}");
}
