//! A restart during an outage: the new instance's windows, still filling,
//! do not resolve the outage on the first failures they see.

use std::sync::Arc;

use chrono::TimeDelta;
use continuity_core::{
    Clock, Direction, ManualClock, Monitor, Observation, TenantId,
    config::{ChannelKind, Recipient, TenantConfig},
    machine::AlertKind,
    memory::InMemoryEventStore,
    store::EventStore,
    testing::{
        EngineRig, RIG_PORTAL_URL, RecordingNotifier, RigOptions, absolute_thresholds, rig_signer,
        rig_start,
    },
};

/// The engine rig: one tenant alerting by SMS, probed by the simulated mail
/// system or not.
async fn rig(store: Arc<dyn EventStore>, probes: bool) -> EngineRig {
    let options = RigOptions {
        probes,
        ..RigOptions::default()
    };
    EngineRig::start_on(store, options).await
}

fn config(tenant: &TenantId) -> TenantConfig {
    absolute_thresholds(
        TenantConfig::new(
            tenant.clone(),
            vec![Recipient::new("ops-sms", ChannelKind::Sms, "+15550100")],
        ),
        3,
    )
}

// ---- a window still filling after a restart does not "resolve" an outage ----
#[tokio::test]
async fn a_restart_in_an_outage_does_not_resolve_it_on_the_first_failures() {
    let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
    let r = rig(store.clone(), false).await;
    let mut t = rig_start();
    for _ in 0..10 {
        t += TimeDelta::minutes(1);
        r.clock.set(t);
        r.refused(Direction::Outbound, t, 1);
        r.monitor.tick(t).await.unwrap();
    }
    assert_eq!(r.sms.messages().len(), 1, "raised");
    drop(r);

    // The process restarts: a new monitor on the same store, windows empty.
    let clock = ManualClock::new(t + TimeDelta::minutes(5));
    let sms = Arc::new(RecordingNotifier::new(ChannelKind::Sms));
    let monitor = Monitor::builder()
        .clock(Arc::new(clock.clone()))
        .store(store.clone())
        .notifier(sms.clone())
        .link_signer(rig_signer())
        .portal_url(RIG_PORTAL_URL)
        .build()
        .unwrap();
    let acme = TenantId::new("acme").unwrap();
    monitor.register_tenant(config(&acme)).await.unwrap();
    let mut t = clock.now();
    // The outage goes on: one refused delivery every 10 minutes, fewer than
    // the 3 of the threshold in what the new window has seen so far.
    for minute in 0..55 {
        t += TimeDelta::minutes(1);
        clock.set(t);
        if minute % 10 == 0 {
            monitor
                .observe(Observation::failed(
                    acme.clone(),
                    Direction::Outbound,
                    t,
                    continuity_core::FailureKind::Refused,
                ))
                .unwrap();
        }
        monitor.tick(t).await.unwrap();
    }
    let kinds: Vec<AlertKind> = sms.messages().iter().map(|m| m.kind).collect();
    assert!(
        !kinds.contains(&AlertKind::Resolved),
        "a partly filled window resolved the outage: {kinds:?}"
    );
    assert_eq!(
        kinds,
        vec![AlertKind::Reminder],
        "the hourly reminder goes on"
    );
    assert!(store.load(&acme).await.unwrap().unwrap().state.any_active());
}
