//! The journal written while the store was unreachable: a commit whose
//! answer was lost is recognised, a journal overtaken by another writer keeps
//! both records, and an action right after the store returns builds on the
//! journal.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use continuity_core::{
    Direction,
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

// ---- journal written while the store was unreachable ----

/// Refused outbound deliveries every minute for `minutes`, ticking.
async fn refuse_for(r: &EngineRig, t: &mut DateTime<Utc>, minutes: usize) {
    for _ in 0..minutes {
        *t += TimeDelta::minutes(1);
        r.clock.set(*t);
        r.refused(Direction::Outbound, *t, 1);
        r.monitor.tick(*t).await.unwrap();
    }
}

#[tokio::test]
async fn a_commit_whose_answer_was_lost_is_recognised_not_written_twice() {
    let faulty = Arc::new(continuity_core::testing::FaultyStore::new(
        InMemoryEventStore::new(),
    ));
    let r = rig(faulty.clone(), false).await;
    let mut t = rig_start();
    refuse_for(&r, &mut t, 3).await;
    assert!(r.sms.messages().is_empty(), "breached once: not raised yet");
    // The raise is written, but the monitor hears "connection reset".
    faulty.lose_next_ack();
    refuse_for(&r, &mut t, 1).await;
    assert_eq!(r.sms.messages().len(), 1, "alerted from memory");
    let landed = faulty.inner().load(&r.tenant).await.unwrap().unwrap();
    assert!(landed.state.any_active(), "the commit did land");
    refuse_for(&r, &mut t, 2).await;
    let stored = faulty.inner().load(&r.tenant).await.unwrap().unwrap();
    assert_eq!(stored.state.next_alert_id, 1, "one alert, not two");
    let audit = faulty.inner().audit_log(&r.tenant, 0, 100).await.unwrap();
    assert!(
        audit
            .iter()
            .all(|a| a.entry.action != "store.journal.superseded"),
        "our own write was recognised: {audit:?}"
    );
    assert_eq!(r.monitor.status(&r.tenant).unwrap().state, stored);
    // The alert landed in the store's outbox with the commit; the copy sent
    // from memory stands for it.
    assert_eq!(r.sms.messages().len(), 1, "sent once");
    assert!(faulty.inner().pending_outbox(10).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_journal_overtaken_by_another_writer_keeps_both_records() {
    let shared = Arc::new(InMemoryEventStore::new());
    let faulty = Arc::new(continuity_core::testing::FaultyStore::new(shared.clone()));
    let r = rig(faulty.clone(), false).await;
    let mut t = rig_start();
    faulty.set_down(true);
    refuse_for(&r, &mut t, 4).await;
    assert_eq!(r.sms.messages().len(), 1, "alerted with the store down");
    // Meanwhile an administrator acts through another instance that can
    // reach the store.
    let other = rig(shared.clone(), false).await;
    other.clock.set(t);
    other
        .monitor
        .act(
            &other.tenant,
            op(),
            Action::Suspend {
                until: t + TimeDelta::hours(2),
            },
            None,
            t,
        )
        .await
        .unwrap();
    faulty.set_down(false);
    refuse_for(&r, &mut t, 3).await;
    let stored = shared.load(&r.tenant).await.unwrap().unwrap();
    assert!(
        stored.state.suspension.is_some(),
        "the other writer's action stands"
    );
    let audit = shared.audit_log(&r.tenant, 0, 100).await.unwrap();
    let actions: Vec<&str> = audit.iter().map(|a| a.entry.action.as_str()).collect();
    assert!(actions.contains(&"suspension.start"), "{actions:?}");
    assert!(
        actions.contains(&"store.journal.superseded"),
        "what this instance did while cut off is recorded: {actions:?}"
    );
    assert_eq!(
        r.monitor.status(&r.tenant).unwrap().state.version,
        stored.version
    );
}

#[tokio::test]
async fn a_merged_journal_write_whose_answer_was_lost_is_recognised() {
    let faulty = Arc::new(continuity_core::testing::FaultyStore::new(
        InMemoryEventStore::new(),
    ));
    let r = rig(faulty.clone(), false).await;
    let mut t = rig_start();
    refuse_for(&r, &mut t, 2).await;
    // Two transitions while the store is down: the first breached
    // evaluation, then the raise.
    faulty.set_down(true);
    refuse_for(&r, &mut t, 2).await;
    assert_eq!(r.sms.messages().len(), 1, "alerted from memory");
    // Back, but the answer to the journal's write is lost.
    faulty.set_down(false);
    faulty.lose_next_ack();
    refuse_for(&r, &mut t, 3).await;
    let stored = faulty.inner().load(&r.tenant).await.unwrap().unwrap();
    assert!(stored.state.any_active());
    assert_eq!(stored.state.next_alert_id, 1);
    let audit = faulty.inner().audit_log(&r.tenant, 0, 100).await.unwrap();
    assert!(
        audit
            .iter()
            .all(|a| a.entry.action != "store.journal.superseded"),
        "the merged write was recognised as ours: {audit:?}"
    );
    assert!(faulty.inner().pending_outbox(10).await.unwrap().is_empty());
    assert_eq!(r.sms.messages().len(), 1, "sent once");
    assert_eq!(r.monitor.status(&r.tenant).unwrap().state, stored);
}

#[tokio::test]
async fn an_action_right_after_the_store_returns_builds_on_the_journal() {
    let faulty = Arc::new(continuity_core::testing::FaultyStore::new(
        InMemoryEventStore::new(),
    ));
    let r = rig(faulty.clone(), false).await;
    let mut t = rig_start();
    faulty.set_down(true);
    refuse_for(&r, &mut t, 4).await;
    assert_eq!(r.sms.messages().len(), 1, "alerted from memory");
    // While it is still down, an action cannot be stored: refused, clearly.
    let until = t + TimeDelta::hours(1);
    let refused = r
        .monitor
        .act(&r.tenant, op(), Action::Suspend { until }, None, t)
        .await
        .unwrap_err();
    assert!(refused.is_retryable(), "{refused}");
    // The store is back; the administrator acts before the next tick.
    faulty.set_down(false);
    let outcome = r
        .monitor
        .act(&r.tenant, op(), Action::Suspend { until }, None, t)
        .await
        .unwrap();
    assert!(
        outcome.state.any_active(),
        "the raise made while cut off is kept"
    );
    assert!(outcome.state.suspension.is_some());
    let stored = faulty.inner().load(&r.tenant).await.unwrap().unwrap();
    assert_eq!(stored.state, outcome.state);
    assert_eq!(stored.state.next_alert_id, 1);
}
