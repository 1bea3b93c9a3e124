//! Two `Monitor` instances in a cluster on one store: the portal on either
//! shows the store's state, and an action taken on either applies to it,
//! an extension by a duration counting from the end it really has.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, TimeDelta, Utc};
use continuity_core::{
    Clock, ManualClock, Monitor, TenantId,
    cluster::shard_of,
    config::{ChannelKind, Recipient, TenantConfig},
    link::{LinkClaims, LinkKey, LinkSigner},
    memory::InMemoryEventStore,
    monitor::MonitorSettings,
    portal::{self, PortalAction, PortalOutcome, PortalView, Until},
    testing::RecordingNotifier,
};

const HOUR: Duration = Duration::from_secs(3600);

fn start() -> DateTime<Utc> {
    "2026-03-02T08:00:00Z".parse().unwrap()
}

async fn instance(name: &str, store: Arc<InMemoryEventStore>, clock: &ManualClock) -> Monitor {
    let monitor = Monitor::builder()
        .clock(Arc::new(clock.clone()))
        .store(store)
        .notifier(Arc::new(RecordingNotifier::new(ChannelKind::Sms)))
        .link_signer(LinkSigner::new(LinkKey::new("k1", [5u8; 32]).unwrap()))
        .portal_url("https://continuity.example.net/c/")
        .settings(MonitorSettings {
            lease: Duration::from_secs(180),
            ..MonitorSettings::default()
        })
        .cluster(name)
        .build()
        .unwrap();
    monitor
        .register_tenant(TenantConfig::new(
            acme(),
            vec![Recipient::new("ops", ChannelKind::Sms, "+15550100")],
        ))
        .await
        .unwrap();
    monitor
}

fn acme() -> TenantId {
    TenantId::new("acme").unwrap()
}

/// The tenant's owner and the other instance, after the shards settled.
async fn cluster() -> (Monitor, Monitor, ManualClock) {
    let store = Arc::new(InMemoryEventStore::new());
    let clock = ManualClock::new(start());
    let a = instance("node-a", store.clone(), &clock).await;
    let b = instance("node-b", store, &clock).await;
    for _ in 0..3 {
        let now = clock.advance(TimeDelta::minutes(1));
        a.tick(now).await.unwrap();
        b.tick(now).await.unwrap();
    }
    let shard = shard_of(&acme());
    assert_ne!(
        a.owned_shards().contains(shard),
        b.owned_shards().contains(shard),
        "one owner"
    );
    if a.owned_shards().contains(shard) {
        (a, b, clock)
    } else {
        (b, a, clock)
    }
}

fn link(m: &Monitor, now: DateTime<Utc>) -> String {
    let claims = LinkClaims {
        tenant: acme(),
        alert_id: 1,
        recipient: "ops".into(),
    };
    m.link_signer().sign(&claims, now).unwrap()
}

async fn view(m: &Monitor, now: DateTime<Utc>) -> Box<PortalView> {
    match portal::open(m, &link(m, now), None, now).await.unwrap() {
        PortalOutcome::Done(v) => v,
        other => panic!("{other:?}"),
    }
}

async fn act(m: &Monitor, action: PortalAction, version: u64, now: DateTime<Utc>) -> PortalOutcome {
    portal::act(m, &link(m, now), action, Some(version), now)
        .await
        .unwrap()
}

#[tokio::test]
async fn either_instance_shows_the_stored_state_and_extends_from_the_stored_end() {
    let (owner, other, clock) = cluster().await;
    let now = clock.now();
    // Each has seen the tenant's state once, at its version.
    let seen = view(&other, now).await.version;

    // The owner starts an event; the other is shown it at once.
    let started = act(
        &owner,
        PortalAction::StartEvent(Until::For(4 * HOUR)),
        seen,
        now,
    )
    .await;
    let PortalOutcome::Done(started) = started else {
        panic!("{started:?}")
    };
    let end = started.active_event.as_ref().unwrap().end;
    let there = view(&other, now).await;
    assert_eq!(there.version, started.version);
    assert_eq!(there.active_event.as_ref().map(|e| e.end), Some(end));

    // The owner extends it by an hour; the other, with the version it was
    // shown then, is told of the conflict...
    let later = act(
        &owner,
        PortalAction::ExtendEvent(Until::For(HOUR)),
        there.version,
        now,
    )
    .await;
    let PortalOutcome::Done(later) = later else {
        panic!("{later:?}")
    };
    let stale = act(
        &other,
        PortalAction::ExtendEvent(Until::For(HOUR)),
        there.version,
        now,
    )
    .await;
    let PortalOutcome::Conflict { view: fresh } = stale else {
        panic!("{stale:?}")
    };
    assert_eq!(fresh.version, later.version);
    // ...and with the version it is shown now, extends from the end the
    // store holds: an hour after the owner's extension.
    let done = act(
        &other,
        PortalAction::ExtendEvent(Until::For(HOUR)),
        fresh.version,
        now,
    )
    .await;
    let PortalOutcome::Done(done) = done else {
        panic!("{done:?}")
    };
    let two_hours = TimeDelta::hours(2);
    assert_eq!(done.active_event.as_ref().unwrap().end, end + two_hours);
    // The owner shows that too.
    let back = view(&owner, now).await;
    assert_eq!(back.version, done.version);
    assert_eq!(back.active_event.as_ref().unwrap().end, end + two_hours);
    // And its next tick builds on it.
    let now = clock.advance(TimeDelta::minutes(1));
    owner.tick(now).await.unwrap();
    other.tick(now).await.unwrap();
    assert_eq!(view(&other, now).await.version, done.version);
}

#[tokio::test]
async fn two_extensions_on_the_same_version_one_applies_the_other_conflicts() {
    let (owner, _other, clock) = cluster().await;
    let now = clock.now();
    let seen = view(&owner, now).await.version;
    let PortalOutcome::Done(v) = act(
        &owner,
        PortalAction::StartEvent(Until::For(HOUR)),
        seen,
        now,
    )
    .await
    else {
        panic!()
    };
    let end = v.active_event.as_ref().unwrap().end;
    let extend = || {
        act(
            &owner,
            PortalAction::ExtendEvent(Until::For(HOUR)),
            v.version,
            now,
        )
    };
    let (x, y) = tokio::join!(extend(), extend());
    let outcomes = [&x, &y];
    let done: Vec<_> = outcomes
        .iter()
        .filter_map(|o| match o {
            PortalOutcome::Done(v) => Some(v.active_event.as_ref().unwrap().end),
            _ => None,
        })
        .collect();
    assert_eq!(done, [end + TimeDelta::hours(1)], "{x:?} {y:?}");
    assert!(
        outcomes
            .iter()
            .any(|o| matches!(o, PortalOutcome::Conflict { .. })),
        "{x:?} {y:?}"
    );
}
