//! What the health check and the metrics read: the outbox counts and the ping.

use std::time::Duration;

use super::{alert_to, at, tenant};
use crate::{
    machine::TenantState,
    store::{Commit, EventStore, OutboxCounts, OutboxResult},
};

async fn counts(store: &dyn EventStore) -> OutboxCounts {
    store
        .outbox_counts()
        .await
        .expect("outbox counts")
        .expect("a backend of this suite counts its outbox (outbox_counts must not answer None)")
}

/// The backlog counts entries not yet done, queued or claimed; a completed
/// entry leaves it, and one given up moves to the dead letters. Counted
/// over the whole store, so the case compares before and after.
pub async fn event_store_outbox_counts(store: &dyn EventStore) {
    store
        .ping()
        .await
        .expect("a reachable store answers a ping");
    let before = counts(store).await;
    let t = tenant("counts");
    store
        .commit(
            &t,
            0,
            Commit {
                state: TenantState::default(),
                at: at(3),
                audit: Vec::new(),
                outbox: vec![alert_to(&t, 1, "ops"), alert_to(&t, 1, "noc")],
            },
        )
        .await
        .expect("commit");
    let queued = counts(store).await;
    assert_eq!(
        queued.backlog,
        before.backlog + 2,
        "a commit's outbox items are in the backlog"
    );
    assert_eq!(queued.dead_letters, before.dead_letters);
    // Later than any other case's claim, so that nothing of theirs is in
    // the way; what of theirs this claims stays claimed, in the backlog.
    let claimed: Vec<_> = store
        .claim_outbox(at(1_000_000), Duration::from_secs(60), 1000)
        .await
        .expect("claim")
        .into_iter()
        .filter(|e| e.item.tenant() == &t)
        .collect();
    assert_eq!(claimed.len(), 2, "both entries are due");
    assert_eq!(
        counts(store).await,
        queued,
        "claimed entries are still in the backlog"
    );
    store
        .complete_outbox(claimed[0].id, claimed[0].lease_id, OutboxResult::Done)
        .await
        .expect("done");
    store
        .complete_outbox(
            claimed[1].id,
            claimed[1].lease_id,
            OutboxResult::GiveUp {
                error: "permanent".into(),
            },
        )
        .await
        .expect("given up");
    assert_eq!(
        counts(store).await,
        OutboxCounts {
            backlog: before.backlog,
            dead_letters: before.dead_letters + 1,
        },
        "a done entry leaves the backlog; one given up becomes a dead letter"
    );
}
