//! Records read through the trait: the audit trail's latest entries and the
//! dead letters.

use std::time::Duration;

use super::{alert_to, at, audit, tenant};
use crate::{
    machine::TenantState,
    store::{Commit, EventStore, OutboxEntry, OutboxResult},
};

/// [`recent_audit`](EventStore::recent_audit) gives a tenant's latest
/// records newest first, and only that tenant's.
pub async fn event_store_recent_audit(store: &dyn EventStore) {
    let t = tenant("recent-audit");
    let other = tenant("recent-audit-other");
    for (tenant, expected, entries) in [
        (&t, 0, vec![audit(1), audit(2)]),
        (&other, 0, vec![audit(9)]),
        (&t, 1, vec![audit(3)]),
    ] {
        store
            .commit(
                tenant,
                expected,
                Commit {
                    state: TenantState::default(),
                    audit: entries,
                    ..Commit::default()
                },
            )
            .await
            .expect("commit");
    }
    let seqs = |records: Vec<crate::store::AuditRecord>| {
        records
            .into_iter()
            .map(|r| (r.seq, r.tenant.to_string(), r.entry.action))
            .collect::<Vec<_>>()
    };
    let name = t.to_string();
    assert_eq!(
        seqs(store.recent_audit(&t, 2).await.expect("recent")),
        [
            (3, name.clone(), "test.3".into()),
            (2, name.clone(), "test.2".into())
        ],
        "the latest two, newest first"
    );
    assert_eq!(
        seqs(store.recent_audit(&t, 100).await.expect("recent")).len(),
        3
    );
    assert!(store.recent_audit(&t, 0).await.expect("recent").is_empty());
    assert!(
        store
            .recent_audit(&tenant("recent-audit-none"), 10)
            .await
            .expect("recent")
            .is_empty()
    );
    let mine = store.recent_audit(&other, 10).await.expect("recent");
    assert_eq!(seqs(mine), [(1, other.to_string(), "test.9".into())]);
}

/// [`given_up_outbox`](EventStore::given_up_outbox) lists the entries given up
/// on, oldest first, with their last error; not the queued or done ones.
pub async fn event_store_dead_letters(store: &dyn EventStore) {
    let t = tenant("dead-letters");
    store
        .commit(
            &t,
            0,
            Commit {
                state: TenantState::default(),
                at: at(3),
                // Three recipients: three order keys, all claimable at once.
                outbox: vec![
                    alert_to(&t, 1, "ops"),
                    alert_to(&t, 2, "noc"),
                    alert_to(&t, 3, "cto"),
                ],
                ..Commit::default()
            },
        )
        .await
        .expect("commit");
    let mine = |v: Vec<OutboxEntry>| {
        v.into_iter()
            .filter(|e| e.item.tenant() == &t)
            .collect::<Vec<_>>()
    };
    let claimed = mine(
        store
            .claim_outbox(at(2_000_000), Duration::from_secs(60), 100)
            .await
            .expect("claim"),
    );
    assert_eq!(claimed.len(), 3);
    assert!(mine(store.given_up_outbox(10_000).await.expect("dead")).is_empty());
    // Given up out of order: the list is still by id.
    for (i, result) in [
        (
            2,
            OutboxResult::GiveUp {
                error: "no such number".into(),
            },
        ),
        (1, OutboxResult::Done),
        (
            0,
            OutboxResult::GiveUp {
                error: "mailbox full".into(),
            },
        ),
    ] {
        store
            .complete_outbox(claimed[i].id, claimed[i].lease_id, result)
            .await
            .expect("complete");
    }
    let dead = mine(store.given_up_outbox(10_000).await.expect("dead"));
    let got: Vec<_> = dead
        .iter()
        .map(|e| (e.id, e.last_error.as_deref(), e.created_at, e.attempts))
        .collect();
    assert_eq!(
        got,
        [
            (claimed[0].id, Some("mailbox full"), at(3), 1),
            (claimed[2].id, Some("no such number"), at(3), 1),
        ]
    );
    assert_eq!(dead[0].item, claimed[0].item, "the item as queued");
    assert!(store.given_up_outbox(0).await.expect("dead").is_empty());
    assert!(mine(store.pending_outbox(10_000).await.expect("pending")).is_empty());
}
