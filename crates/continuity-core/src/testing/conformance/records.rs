//! Records read through the trait: the audit trail's latest entries and the
//! dead letters; and their retention.

use std::time::Duration;

use chrono::TimeDelta;

use super::{alert_to, at, audit, t0, tenant};
use crate::{
    machine::{AuditEntry, TenantState},
    store::{Commit, EventStore, OutboxEntry, OutboxResult, PruneBefore, PruneReport},
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

/// [`prune`](EventStore::prune) removes audit records, dead letters and
/// instance rows older than its cutoffs, keeps each tenant's latest audit
/// record (numbering goes on after it), and never touches queued work.
pub async fn event_store_prune(store: &dyn EventStore) {
    // Everything here lies weeks before the other cases' times, so the
    // counts are this case's alone.
    let days = |d: i64| t0() - TimeDelta::days(d);
    let entry = |d: i64, n: u32| AuditEntry {
        at: days(d),
        ..audit(n)
    };
    let t = tenant("prune");
    let quiet = tenant("prune-quiet");
    store
        .commit(
            &t,
            0,
            Commit {
                state: TenantState::default(),
                at: days(40),
                audit: vec![entry(40, 1), entry(30, 2)],
                outbox: vec![alert_to(&t, 1, "ops"), alert_to(&t, 2, "noc")],
            },
        )
        .await
        .expect("commit");
    store
        .commit(
            &t,
            1,
            Commit {
                state: TenantState::default(),
                at: days(10),
                audit: vec![entry(10, 3)],
                outbox: vec![alert_to(&t, 3, "cto")],
            },
        )
        .await
        .expect("commit");
    store
        .commit(
            &quiet,
            0,
            Commit {
                state: TenantState::default(),
                audit: vec![entry(40, 9)],
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
            .claim_outbox(at(3_000_000), Duration::from_secs(60), 100)
            .await
            .expect("claim"),
    );
    assert_eq!(claimed.len(), 3);
    // #1 (old) is given up, #2 (old) stays queued, #3 (recent) is given up.
    for (i, result) in [
        (
            0,
            OutboxResult::GiveUp {
                error: "old".into(),
            },
        ),
        (
            1,
            OutboxResult::Retry {
                at: at(4_000_000),
                error: "busy".into(),
            },
        ),
        (
            2,
            OutboxResult::GiveUp {
                error: "recent".into(),
            },
        ),
    ] {
        store
            .complete_outbox(claimed[i].id, claimed[i].lease_id, result)
            .await
            .expect("complete");
    }
    // Instance `a` stopped 10 days ago (within a minute of starting);
    // `b`'s liveness runs until 8 days ago, after the cutoff.
    let a = "conf-prune-a";
    let b = "conf-prune-b";
    store
        .sync_shards(a, days(10), Duration::from_secs(60))
        .await
        .expect("sync");
    store
        .sync_shards(b, days(10), Duration::from_secs(2 * 86_400))
        .await
        .expect("sync");

    let before = PruneBefore {
        audit: days(20),
        dead_letters: days(20),
        instances: days(9),
    };
    let report = store.prune(&before).await.expect("prune");
    assert_eq!(
        (report.audit, report.instances),
        (2, 1),
        "two old audit records, instance a"
    );
    // Other cases leave dead letters queued at the default commit time
    // (long ago): they go too.
    assert!(report.dead_letters >= 1, "{report:?}");
    let seqs = |r: Vec<crate::store::AuditRecord>| r.iter().map(|r| r.seq).collect::<Vec<_>>();
    assert_eq!(seqs(store.audit_log(&t, 0, 100).await.expect("audit")), [3]);
    assert_eq!(
        seqs(store.audit_log(&quiet, 0, 100).await.expect("audit")),
        [1],
        "a tenant's latest record stays however old"
    );
    let dead = mine(store.given_up_outbox(10_000).await.expect("dead"));
    assert_eq!(
        dead.iter().map(|e| e.id).collect::<Vec<_>>(),
        [claimed[2].id],
        "the recent dead letter stays"
    );
    assert_eq!(
        mine(store.pending_outbox(10_000).await.expect("pending"))
            .iter()
            .map(|e| e.id)
            .collect::<Vec<_>>(),
        [claimed[1].id],
        "queued work is never pruned, however old"
    );
    assert_eq!(
        store.prune(&before).await.expect("prune again"),
        PruneReport::default(),
        "nothing left to prune"
    );

    // Numbering goes on after the kept record.
    store
        .commit(
            &t,
            2,
            Commit {
                state: TenantState::default(),
                audit: vec![audit(4)],
                ..Commit::default()
            },
        )
        .await
        .expect("commit");
    assert_eq!(
        seqs(store.recent_audit(&t, 10).await.expect("recent")),
        [4, 3]
    );
    store.release_shards(b).await.expect("release");
}
