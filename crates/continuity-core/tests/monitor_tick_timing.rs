//! The engine's timing: wake-ups and failures that fall within a tick's
//! millisecond or ahead of the clock are handled when due, and a reminder
//! deferred by a suspension writes nothing while it waits.

use std::sync::Arc;

use chrono::TimeDelta;
use continuity_core::{
    Direction, Observation,
    machine::{Action, Actor},
    memory::InMemoryEventStore,
    store::EventStore,
    testing::{EngineRig, RigOptions, rig_start},
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

fn op() -> Actor {
    Actor::Operator { name: "t".into() }
}

/// A tick that lands in the same millisecond as a wake-up, but a few
/// microseconds before it, drops the wake-up for good.
#[tokio::test]
async fn a_sub_millisecond_tick_keeps_probe_rounds() {
    let r = rig(Arc::new(InMemoryEventStore::new()), true).await;
    let t1 = rig_start() + TimeDelta::minutes(1) + TimeDelta::microseconds(700);
    r.clock.set(t1);
    let rep = r.monitor.tick(t1).await.unwrap();
    assert_eq!(rep.probes_dispatched, 2);
    // 5 min later, 400 us "earlier" in the same millisecond
    let t2 = rig_start() + TimeDelta::minutes(6) + TimeDelta::microseconds(300);
    r.clock.set(t2);
    let mut total = r.monitor.tick(t2).await.unwrap().probes_dispatched;
    for m in 7..60 {
        let t = rig_start() + TimeDelta::minutes(m);
        r.clock.set(t);
        total += r.monitor.tick(t).await.unwrap().probes_dispatched;
    }
    assert!(
        total > 0,
        "no probe was sent in 54 minutes after the round at t2"
    );
}

#[tokio::test]
async fn a_sub_millisecond_tick_still_ends_the_event() {
    let r = rig(Arc::new(InMemoryEventStore::new()), false).await;
    let t0 = rig_start() + TimeDelta::minutes(1);
    r.clock.set(t0);
    r.monitor.tick(t0).await.unwrap();
    let until = t0 + TimeDelta::minutes(10) + TimeDelta::microseconds(700);
    r.monitor
        .act(&r.tenant, op(), Action::StartEvent { until }, None, t0)
        .await
        .unwrap();
    let t = t0 + TimeDelta::minutes(1);
    r.monitor.tick(t).await.unwrap();
    // tick at the end's millisecond, just before it
    let t = t0 + TimeDelta::minutes(10) + TimeDelta::microseconds(300);
    r.monitor.tick(t).await.unwrap();
    for m in 11..200 {
        r.monitor.tick(t0 + TimeDelta::minutes(m)).await.unwrap();
    }
    let calls = r.hook.calls();
    assert_eq!(calls.len(), 2, "event start and end hooks: {calls:?}");
}

/// A failure stamped (within the allowed skew) in the next bucket is not in
/// view at the tick that evaluates it; the direction is then "steady".
#[tokio::test]
async fn failures_stamped_ahead_are_noticed_when_due() {
    let r = rig(Arc::new(InMemoryEventStore::new()), false).await;
    let now = rig_start() + TimeDelta::minutes(4);
    r.clock.set(now);
    for _ in 0..3 {
        r.monitor
            .observe(Observation::failed(
                r.tenant.clone(),
                Direction::Outbound,
                now + TimeDelta::minutes(2),
                continuity_core::FailureKind::Refused,
            ))
            .unwrap();
    }
    r.monitor.tick(now).await.unwrap();
    for m in 5..40 {
        let t = rig_start() + TimeDelta::minutes(m);
        r.clock.set(t);
        r.monitor.tick(t).await.unwrap();
    }
    let st = r.monitor.status(&r.tenant).unwrap();
    eprintln!("readings: {:?}", st.readings);
    assert!(
        !r.sms.messages().is_empty(),
        "3 failures in the window never raised"
    );
}

#[tokio::test]
async fn a_reminder_deferred_by_a_suspension_writes_nothing() {
    let store = Arc::new(InMemoryEventStore::new());
    let r = rig(store.clone(), false).await;
    let mut t = rig_start();
    for _ in 0..5 {
        t += TimeDelta::minutes(1);
        r.clock.set(t);
        r.refused(Direction::Outbound, t, 3);
        r.monitor.tick(t).await.unwrap();
    }
    assert_eq!(r.sms.messages().len(), 1);
    r.monitor
        .act(
            &r.tenant,
            op(),
            Action::Suspend {
                until: t + TimeDelta::hours(6),
            },
            None,
            t,
        )
        .await
        .unwrap();
    for _ in 0..70 {
        t += TimeDelta::minutes(1);
        r.clock.set(t);
        r.refused(Direction::Outbound, t, 3);
        r.monitor.tick(t).await.unwrap();
    }
    let v0 = store.load(&r.tenant).await.unwrap().unwrap().version;
    for _ in 0..10 {
        t += TimeDelta::minutes(1);
        r.clock.set(t);
        r.monitor.tick(t).await.unwrap();
    }
    let v1 = store.load(&r.tenant).await.unwrap().unwrap().version;
    assert_eq!(v0, v1, "identical state re-committed every tick");
}
