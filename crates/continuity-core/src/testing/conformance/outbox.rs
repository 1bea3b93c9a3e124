//! The outbox: claims under leases, retries, giving up, order per key.

use std::time::Duration;

use super::{alert, alert_to, at, tenant};
use crate::{
    error::Error,
    machine::{Actor, TenantState},
    store::{Commit, EventStore, OutboxItem, OutboxResult},
};

/// Claims hand an entry to one claimer for the lease; after the lease it
/// can be claimed again; a stale lease cannot complete it.
pub async fn event_store_outbox_claim_and_lease(store: &dyn EventStore) {
    let t = tenant("outbox");
    store
        .commit(
            &t,
            0,
            Commit {
                state: TenantState::default(),
                at: at(7),
                audit: Vec::new(),
                outbox: vec![alert_to(&t, 1, "ops"), alert_to(&t, 2, "noc")],
            },
        )
        .await
        .expect("commit");
    let lease = Duration::from_secs(60);
    let now = at(100);
    let first = store.claim_outbox(now, lease, 100).await.expect("claim");
    let mine: Vec<_> = first
        .into_iter()
        .filter(|e| e.item.tenant() == &t)
        .collect();
    assert_eq!(mine.len(), 2, "both entries are due");
    assert!(mine[0].id < mine[1].id, "oldest first");
    assert!(mine.iter().all(|e| e.attempts == 1 && e.lease_id != 0));
    assert!(
        mine.iter().all(|e| e.created_at == at(7)),
        "created_at is the commit's time"
    );
    let again = store
        .claim_outbox(at(130), lease, 100)
        .await
        .expect("claim");
    assert!(
        again.iter().all(|e| e.item.tenant() != &t),
        "leased entries are not handed out twice"
    );
    store
        .complete_outbox(mine[0].id, mine[0].lease_id, OutboxResult::Done)
        .await
        .expect("done");
    // The holder of entry 2 dies; after its lease another claimer takes over.
    let taken: Vec<_> = store
        .claim_outbox(at(161), lease, 100)
        .await
        .expect("claim")
        .into_iter()
        .filter(|e| e.item.tenant() == &t)
        .collect();
    assert_eq!(
        taken.len(),
        1,
        "an expired lease frees the entry; a done one is gone"
    );
    assert_eq!(taken[0].id, mine[1].id);
    assert_eq!(taken[0].attempts, 2);
    assert_ne!(taken[0].lease_id, mine[1].lease_id, "a new lease id");
    match store
        .complete_outbox(mine[1].id, mine[1].lease_id, OutboxResult::Done)
        .await
    {
        Err(Error::LeaseLost { .. }) => {}
        other => panic!("a stale lease must not complete the entry, got {other:?}"),
    }
    store
        .complete_outbox(taken[0].id, taken[0].lease_id, OutboxResult::Done)
        .await
        .expect("done");
    assert!(
        store
            .pending_outbox(10_000)
            .await
            .expect("pending")
            .iter()
            .all(|e| e.item.tenant() != &t)
    );
}

/// `Retry` hides an entry until its time; `GiveUp` removes it from the queue.
pub async fn event_store_outbox_retry_and_give_up(store: &dyn EventStore) {
    let t = tenant("retry");
    store
        .commit(
            &t,
            0,
            Commit {
                state: TenantState::default(),
                outbox: vec![alert(&t, 1)],
                ..Commit::default()
            },
        )
        .await
        .expect("commit");
    let lease = Duration::from_secs(60);
    let mine = |v: Vec<crate::store::OutboxEntry>| {
        v.into_iter()
            .filter(|e| e.item.tenant() == &t)
            .collect::<Vec<_>>()
    };
    let c = mine(
        store
            .claim_outbox(at(1000), lease, 100)
            .await
            .expect("claim"),
    );
    assert_eq!(c.len(), 1);
    store
        .complete_outbox(
            c[0].id,
            c[0].lease_id,
            OutboxResult::Retry {
                at: at(1300),
                error: "busy".into(),
            },
        )
        .await
        .expect("retry");
    assert!(
        mine(
            store
                .claim_outbox(at(1299), lease, 100)
                .await
                .expect("claim")
        )
        .is_empty(),
        "not before its retry time"
    );
    let c = mine(
        store
            .claim_outbox(at(1300), lease, 100)
            .await
            .expect("claim"),
    );
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].attempts, 2);
    assert_eq!(c[0].last_error.as_deref(), Some("busy"));
    store
        .complete_outbox(
            c[0].id,
            c[0].lease_id,
            OutboxResult::GiveUp {
                error: "invalid number".into(),
            },
        )
        .await
        .expect("give up");
    assert!(
        mine(
            store
                .claim_outbox(at(99_999), lease, 100)
                .await
                .expect("claim")
        )
        .is_empty(),
        "given up entries are not retried"
    );
    assert!(mine(store.pending_outbox(10_000).await.expect("pending")).is_empty());
}

/// Items with the same order key are handed out one at a time, in commit
/// order; other keys are not held up.
pub async fn event_store_outbox_order_per_key(store: &dyn EventStore) {
    use crate::machine::{ContinuityEvent, EventStatus};
    let t = tenant("order");
    let event = ContinuityEvent {
        id: 0,
        status: EventStatus::Active,
        start: at(0),
        end: at(3600),
        created_by: Actor::System,
        extensions: 0,
        end_reason: None,
    };
    let items = vec![
        OutboxItem::EventStarted {
            tenant: t.clone(),
            event: event.clone(),
        },
        alert_to(&t, 1, "ops"),
        alert_to(&t, 2, "ops"),
        alert_to(&t, 3, "noc"),
        OutboxItem::EventEnded {
            tenant: t.clone(),
            event,
        },
    ];
    store
        .commit(
            &t,
            0,
            Commit {
                outbox: items,
                ..Commit::default()
            },
        )
        .await
        .expect("commit");
    let lease = Duration::from_secs(60);
    let mine = |v: Vec<crate::store::OutboxEntry>| {
        v.into_iter()
            .filter(|e| e.item.tenant() == &t)
            .collect::<Vec<_>>()
    };
    let describe = |e: &crate::store::OutboxEntry| match &e.item {
        OutboxItem::Alert(m) => format!("alert {} to {}", m.alert_id, m.recipient.id),
        OutboxItem::EventStarted { .. } => "started".to_string(),
        OutboxItem::EventEnded { .. } => "ended".to_string(),
    };
    let first = mine(store.claim_outbox(at(10), lease, 100).await.expect("claim"));
    assert_eq!(
        first.iter().map(describe).collect::<Vec<_>>(),
        vec!["started", "alert 1 to ops", "alert 3 to noc"],
        "the first item of each key"
    );
    // The hook start fails and waits; the end must not overtake it.
    store
        .complete_outbox(
            first[0].id,
            first[0].lease_id,
            OutboxResult::Retry {
                at: at(500),
                error: "down".into(),
            },
        )
        .await
        .expect("retry");
    store
        .complete_outbox(first[1].id, first[1].lease_id, OutboxResult::Done)
        .await
        .expect("done");
    store
        .complete_outbox(
            first[2].id,
            first[2].lease_id,
            OutboxResult::GiveUp {
                error: "invalid number".into(),
            },
        )
        .await
        .expect("give up");
    let second = mine(store.claim_outbox(at(20), lease, 100).await.expect("claim"));
    assert_eq!(
        second.iter().map(describe).collect::<Vec<_>>(),
        vec!["alert 2 to ops"],
        "the end waits for the start"
    );
    store
        .complete_outbox(second[0].id, second[0].lease_id, OutboxResult::Done)
        .await
        .expect("done");
    let third = mine(
        store
            .claim_outbox(at(500), lease, 100)
            .await
            .expect("claim"),
    );
    assert_eq!(
        third.iter().map(describe).collect::<Vec<_>>(),
        vec!["started"]
    );
    store
        .complete_outbox(third[0].id, third[0].lease_id, OutboxResult::Done)
        .await
        .expect("done");
    let fourth = mine(
        store
            .claim_outbox(at(501), lease, 100)
            .await
            .expect("claim"),
    );
    assert_eq!(
        fourth.iter().map(describe).collect::<Vec<_>>(),
        vec!["ended"]
    );
    store
        .complete_outbox(fourth[0].id, fourth[0].lease_id, OutboxResult::Done)
        .await
        .expect("done");
    assert!(mine(store.pending_outbox(10_000).await.expect("pending")).is_empty());
}
