//! Tenant state: compare-and-swap, atomic commits, the audit log.

use super::{alert, at, audit, state_with, tenant};
use crate::{
    error::Error,
    store::{Commit, EventStore},
};

/// Versions start at 1, grow by one, and a stale expected version is refused
/// with `Conflict` carrying the actual version, without writing.
pub async fn event_store_compare_and_swap(store: &dyn EventStore) {
    let t = tenant("cas");
    assert!(
        store.load(&t).await.expect("load").is_none(),
        "fresh tenant has no state"
    );
    let v1 = store
        .commit(
            &t,
            0,
            Commit {
                state: state_with(1),
                ..Commit::default()
            },
        )
        .await
        .expect("create");
    assert_eq!(v1, 1, "first version is 1");
    match store
        .commit(
            &t,
            0,
            Commit {
                state: state_with(99),
                ..Commit::default()
            },
        )
        .await
    {
        Err(Error::Conflict {
            expected: 0,
            actual: 1,
            ..
        }) => {}
        other => panic!("creating twice must conflict with actual 1, got {other:?}"),
    }
    let v2 = store
        .commit(
            &t,
            1,
            Commit {
                state: state_with(2),
                ..Commit::default()
            },
        )
        .await
        .expect("update");
    assert_eq!(v2, 2);
    match store
        .commit(
            &t,
            1,
            Commit {
                state: state_with(99),
                ..Commit::default()
            },
        )
        .await
    {
        Err(Error::Conflict {
            expected: 1,
            actual: 2,
            ..
        }) => {}
        other => panic!("stale version must conflict, got {other:?}"),
    }
    match store
        .commit(
            &t,
            7,
            Commit {
                state: state_with(99),
                ..Commit::default()
            },
        )
        .await
    {
        Err(Error::Conflict { actual: 2, .. }) => {}
        other => panic!("future version must conflict, got {other:?}"),
    }
    let loaded = store.load(&t).await.expect("load").expect("present");
    assert_eq!(loaded.version, 2);
    assert_eq!(
        loaded.state,
        state_with(2),
        "a refused commit wrote nothing"
    );
    let other = tenant("cas-other");
    assert!(
        store.load(&other).await.expect("load").is_none(),
        "tenants are independent"
    );
}

/// Audit records get increasing sequence numbers in commit order; paging by `after` works.
pub async fn event_store_audit_order(store: &dyn EventStore) {
    let t = tenant("audit");
    let mut version = 0;
    for batch in 0..4u32 {
        let entries = (0..3).map(|i| audit(batch * 3 + i)).collect();
        version = store
            .commit(
                &t,
                version,
                Commit {
                    state: state_with(u64::from(batch)),
                    audit: entries,
                    ..Commit::default()
                },
            )
            .await
            .expect("commit");
    }
    let all = store.audit_log(&t, 0, 100).await.expect("audit");
    assert_eq!(all.len(), 12);
    for (i, r) in all.iter().enumerate() {
        assert_eq!(r.entry, audit(i as u32), "audit entries keep commit order");
        assert_eq!(r.tenant, t);
        if i > 0 {
            assert!(r.seq > all[i - 1].seq, "sequence numbers increase");
        }
    }
    let page = store.audit_log(&t, all[4].seq, 3).await.expect("page");
    assert_eq!(
        page.iter().map(|r| r.entry.clone()).collect::<Vec<_>>(),
        vec![audit(5), audit(6), audit(7)]
    );
    assert!(
        store
            .audit_log(&tenant("audit-none"), 0, 10)
            .await
            .expect("empty")
            .is_empty()
    );
}

/// A refused commit writes neither audit entries nor outbox items.
pub async fn event_store_atomic_commit(store: &dyn EventStore) {
    let t = tenant("atomic");
    store
        .commit(&t, 0, Commit::default())
        .await
        .expect("create");
    let refused = Commit {
        state: state_with(5),
        at: at(0),
        audit: vec![audit(1)],
        outbox: vec![alert(&t, 1)],
    };
    assert!(store.commit(&t, 0, refused).await.is_err());
    assert!(
        store.audit_log(&t, 0, 10).await.expect("audit").is_empty(),
        "no audit from a refused commit"
    );
    let pending = store.pending_outbox(10_000).await.expect("outbox");
    assert!(
        pending.iter().all(|e| e.item.tenant() != &t),
        "no outbox item from a refused commit"
    );
}

/// Writers that read the same version: exactly one wins each round; the
/// others see `Conflict`, reload and win later; no update is lost.
pub async fn event_store_concurrent_writers(store: &dyn EventStore) {
    let t = tenant("writers");
    store
        .commit(&t, 0, Commit::default())
        .await
        .expect("create");
    const WRITERS: u64 = 4;
    const ROUNDS: u64 = 5;
    let mut done = [0u64; WRITERS as usize];
    while done.iter().any(|d| *d < ROUNDS) {
        // Every unfinished writer reads, then all try to write what they read + 1.
        let snapshot = store.load(&t).await.expect("load").expect("present");
        let mut winners = 0;
        for (w, d) in done.iter_mut().enumerate() {
            if *d >= ROUNDS {
                continue;
            }
            let next = state_with(snapshot.state.next_alert_id + 1);
            match store
                .commit(
                    &t,
                    snapshot.version,
                    Commit {
                        state: next,
                        ..Commit::default()
                    },
                )
                .await
            {
                Ok(_) => {
                    winners += 1;
                    *d += 1;
                }
                Err(Error::Conflict { .. }) => {}
                Err(e) => panic!("writer {w}: unexpected error {e}"),
            }
        }
        assert_eq!(winners, 1, "exactly one writer wins per version");
    }
    let end = store.load(&t).await.expect("load").expect("present");
    assert_eq!(end.state.next_alert_id, WRITERS * ROUNDS, "no lost update");
    assert_eq!(end.version, WRITERS * ROUNDS + 1);
}
