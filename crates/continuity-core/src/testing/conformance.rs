//! The `EventStore` conformance suite.
//!
//! Each case takes a store that holds **no data for the tenants it uses**
//! (every case uses its own tenant ids, prefixed `conf-`) and panics with a
//! message on the first violation. [`event_store_all`] runs them all.
//!
//! Outbox and probe cases claim with times far in the future of any real
//! clock so they never pick up items of a shared store's other users: run
//! the suite on a store of its own.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use continuity_core::{memory::InMemoryEventStore, testing::conformance};
//! conformance::event_store_all(&InMemoryEventStore::new()).await;
//! # }
//! ```

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::{
    cluster::{SHARDS, ShardSet, shard_of},
    config::{ChannelKind, Recipient},
    domain::{Direction, TenantId},
    error::Error,
    machine::{Actor, AlertKind, AuditEntry, TenantState},
    notify::AlertMessage,
    probe::ProbeTicket,
    store::{Commit, EventStore, OutboxItem, OutboxResult, PendingProbe},
};

fn tenant(name: &str) -> TenantId {
    TenantId::new(format!("conf-{name}")).expect("valid tenant id")
}

fn t0() -> DateTime<Utc> {
    "2030-01-01T00:00:00Z".parse().expect("valid time")
}

fn at(secs: i64) -> DateTime<Utc> {
    t0() + TimeDelta::seconds(secs)
}

fn audit(n: u32) -> AuditEntry {
    AuditEntry {
        at: at(i64::from(n)),
        actor: Actor::System,
        action: format!("test.{n}"),
        before: format!("before {n}"),
        after: format!("after {n}"),
    }
}

fn alert(tenant: &TenantId, id: u64) -> OutboxItem {
    alert_to(tenant, id, "ops")
}

fn alert_to(tenant: &TenantId, id: u64, recipient: &str) -> OutboxItem {
    OutboxItem::Alert(Box::new(AlertMessage {
        tenant: tenant.clone(),
        tenant_name: tenant.to_string(),
        alert_id: id,
        kind: AlertKind::Raised,
        recipient: Recipient::new(recipient, ChannelKind::Sms, "+15550100"),
        idempotency_key: format!("{tenant}/{id}/{recipient}"),
        created_at: at(0),
        link: "https://portal.example/c/x".into(),
        link_expires_at: at(86_400),
        conditions: Vec::new(),
        event: None,
    }))
}

fn state_with(next_alert_id: u64) -> TenantState {
    TenantState {
        next_alert_id,
        ..TenantState::default()
    }
}

/// Runs every case.
pub async fn event_store_all(store: &dyn EventStore) {
    event_store_compare_and_swap(store).await;
    event_store_audit_order(store).await;
    event_store_atomic_commit(store).await;
    event_store_concurrent_writers(store).await;
    event_store_outbox_claim_and_lease(store).await;
    event_store_outbox_retry_and_give_up(store).await;
    event_store_outbox_order_per_key(store).await;
    event_store_probe_claims(store).await;
    event_store_probe_edge_cases(store).await;
    event_store_probe_claims_by_shard(store).await;
    event_store_put_probes_in_a_batch(store).await;
    event_store_shard_ownership(store).await;
}

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

/// Probes are claimed when due, leased, rescheduled and removed only by the lease holder.
pub async fn event_store_probe_claims(store: &dyn EventStore) {
    let t = tenant("probes");
    let lease = Duration::from_secs(100);
    let probe = |id: &str, due: i64| PendingProbe {
        tenant: t.clone(),
        direction: Direction::Outbound,
        probe_id: id.into(),
        sent_at: at(0),
        deadline: at(1800),
        next_check_at: at(due),
        ticket: ProbeTicket::new(format!("ticket-{id}")),
        lease_id: 0,
        tenant_hint: 0,
    };
    store.put_probe(probe("p1", 60)).await.expect("put");
    store.put_probe(probe("p2", 120)).await.expect("put");
    let mine = |v: Vec<PendingProbe>| v.into_iter().filter(|p| p.tenant == t).collect::<Vec<_>>();
    assert!(
        mine(
            store
                .claim_probes(at(59), lease, 10, &ShardSet::ALL)
                .await
                .expect("claim")
        )
        .is_empty(),
        "not due yet"
    );
    let c = mine(
        store
            .claim_probes(at(60), lease, 10, &ShardSet::ALL)
            .await
            .expect("claim"),
    );
    assert_eq!(c.len(), 1);
    assert_eq!(&*c[0].probe_id, "p1");
    assert_eq!(c[0].ticket, ProbeTicket("ticket-p1".into()));
    assert_ne!(c[0].lease_id, 0);
    let c2 = mine(
        store
            .claim_probes(at(120), lease, 10, &ShardSet::ALL)
            .await
            .expect("claim"),
    );
    assert_eq!(
        c2.iter().map(|p| &*p.probe_id).collect::<Vec<_>>(),
        vec!["p2"],
        "p1 is leased"
    );
    store
        .reschedule_probe(&t, "p2", c2[0].lease_id, at(500))
        .await
        .expect("reschedule");
    match store.remove_probe(&t, "p2", c2[0].lease_id).await {
        Err(Error::LeaseLost { .. }) => {}
        other => panic!("a released lease must not remove the probe, got {other:?}"),
    }
    // p1's holder died: after the lease another instance gets it.
    let c3 = mine(
        store
            .claim_probes(at(160), lease, 10, &ShardSet::ALL)
            .await
            .expect("claim"),
    );
    assert_eq!(
        c3.iter().map(|p| &*p.probe_id).collect::<Vec<_>>(),
        vec!["p1"]
    );
    assert!(
        store.remove_probe(&t, "p1", c[0].lease_id).await.is_err(),
        "stale lease cannot remove"
    );
    store
        .remove_probe(&t, "p1", c3[0].lease_id)
        .await
        .expect("remove");
    let c4 = mine(
        store
            .claim_probes(at(500), lease, 10, &ShardSet::ALL)
            .await
            .expect("claim"),
    );
    assert_eq!(
        c4.iter().map(|p| &*p.probe_id).collect::<Vec<_>>(),
        vec!["p2"],
        "rescheduled time honoured"
    );
    store
        .remove_probe(&t, "p2", c4[0].lease_id)
        .await
        .expect("remove");
    assert!(
        mine(
            store
                .claim_probes(at(100_000), lease, 10, &ShardSet::ALL)
                .await
                .expect("claim")
        )
        .is_empty(),
        "all removed"
    );
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

/// Claim limits, earliest-first order, re-putting a probe id, and
/// rescheduling to the time its lease would end.
pub async fn event_store_probe_edge_cases(store: &dyn EventStore) {
    let t = tenant("probe-edges");
    let lease = Duration::from_secs(60);
    let probe = |id: &str, due: i64| PendingProbe {
        tenant: t.clone(),
        direction: Direction::Inbound,
        probe_id: id.into(),
        sent_at: at(0),
        deadline: at(7200),
        next_check_at: at(due),
        ticket: ProbeTicket::new(format!("t-{id}-{due}")),
        lease_id: 0,
        tenant_hint: 0,
    };
    let mine = |v: Vec<PendingProbe>| v.into_iter().filter(|p| p.tenant == t).collect::<Vec<_>>();
    for (id, due) in [("late", 300), ("early", 100), ("mid", 200)] {
        store.put_probe(probe(id, due)).await.expect("put");
    }
    // Re-putting an id replaces the probe: one probe, the new ticket and time.
    store.put_probe(probe("late", 250)).await.expect("re-put");
    let one = mine(
        store
            .claim_probes(at(1000), lease, 1, &ShardSet::ALL)
            .await
            .expect("claim"),
    );
    assert_eq!(
        one.iter().map(|p| &*p.probe_id).collect::<Vec<_>>(),
        vec!["early"],
        "limit and earliest first"
    );
    let rest = mine(
        store
            .claim_probes(at(1000), lease, 10, &ShardSet::ALL)
            .await
            .expect("claim"),
    );
    assert_eq!(
        rest.iter().map(|p| &*p.probe_id).collect::<Vec<_>>(),
        vec!["mid", "late"],
        "earliest first"
    );
    assert_eq!(
        rest[1].ticket,
        ProbeTicket("t-late-250".into()),
        "the re-put probe replaced the first"
    );
    // Reschedule to exactly the lease's end: claimed once at that time, not twice.
    store
        .reschedule_probe(&t, "mid", rest[0].lease_id, at(1060))
        .await
        .expect("reschedule");
    let again = mine(
        store
            .claim_probes(at(1060), lease, 10, &ShardSet::ALL)
            .await
            .expect("claim"),
    );
    let ids: Vec<&str> = again.iter().map(|p| &*p.probe_id).collect();
    assert_eq!(
        ids.iter().filter(|i| **i == "mid").count(),
        1,
        "one claim per probe: {ids:?}"
    );
    for p in again {
        store
            .remove_probe(&t, &p.probe_id, p.lease_id)
            .await
            .expect("remove");
    }
    for p in mine(
        store
            .claim_probes(at(99_999), lease, 10, &ShardSet::ALL)
            .await
            .expect("claim"),
    ) {
        store
            .remove_probe(&t, &p.probe_id, p.lease_id)
            .await
            .expect("remove");
    }
    assert!(
        mine(
            store
                .claim_probes(at(200_000), lease, 10, &ShardSet::ALL)
                .await
                .expect("claim")
        )
        .is_empty()
    );
}

/// `claim_probes` hands out only the probes of tenants in the shards asked for.
pub async fn event_store_probe_claims_by_shard(store: &dyn EventStore) {
    let a = tenant("shard-a");
    let b = (0..)
        .map(|i| tenant(&format!("shard-b{i}")))
        .find(|t| shard_of(t) != shard_of(&a))
        .expect("a tenant in another shard");
    let lease = Duration::from_secs(100);
    for t in [&a, &b] {
        store
            .put_probe(PendingProbe {
                tenant: t.clone(),
                direction: Direction::Inbound,
                probe_id: "s1".into(),
                sent_at: at(0),
                deadline: at(1800),
                next_check_at: at(2000),
                ticket: ProbeTicket::new("t"),
                lease_id: 0,
                tenant_hint: 0,
            })
            .await
            .expect("put");
    }
    let only_a: ShardSet = [shard_of(&a)].into_iter().collect();
    let mine = |v: Vec<PendingProbe>| {
        v.into_iter()
            .filter(|p| p.tenant == a || p.tenant == b)
            .collect::<Vec<_>>()
    };
    let got = mine(
        store
            .claim_probes(at(2000), lease, 10, &only_a)
            .await
            .expect("claim"),
    );
    assert_eq!(got.len(), 1, "only the probe of the shard asked for");
    assert_eq!(got[0].tenant, a);
    assert!(
        mine(
            store
                .claim_probes(at(2000), lease, 10, &ShardSet::EMPTY)
                .await
                .expect("claim")
        )
        .is_empty(),
        "no shard, no probe"
    );
    let rest = mine(
        store
            .claim_probes(at(2000), lease, 10, &ShardSet::ALL)
            .await
            .expect("claim"),
    );
    assert_eq!(
        rest.len(),
        1,
        "the other probe was left for its shard's owner"
    );
    assert_eq!(rest[0].tenant, b);
    for p in got.iter().chain(&rest) {
        store
            .remove_probe(&p.tenant, &p.probe_id, p.lease_id)
            .await
            .expect("remove");
    }
}

/// Shards are shared out fairly among live instances, each to one owner;
/// a dead instance's shards are taken over once its lease ran out; a
/// released instance's at once.
pub async fn event_store_shard_ownership(store: &dyn EventStore) {
    let lease = Duration::from_secs(120);
    let (a, b, c) = ("conf-node-a", "conf-node-b", "conf-node-c");
    let sync = |who: &'static str, t: i64| async move {
        store
            .sync_shards(who, at(t), lease)
            .await
            .expect("sync shards")
    };
    let all = usize::from(SHARDS);
    let disjoint_and_whole = |sets: &[ShardSet]| {
        let mut seen = ShardSet::EMPTY;
        for s in sets {
            assert!(
                s.difference(&seen) == *s,
                "a shard has two owners: {sets:?}"
            );
            for shard in s.iter() {
                seen.insert(shard);
            }
        }
        seen.len()
    };
    assert_eq!(
        sync(a, 0).await.len(),
        all,
        "a lone instance owns every shard"
    );
    let b1 = sync(b, 1).await;
    assert!(
        b1.is_empty(),
        "nothing is free until a gives some up: {b1:?}"
    );
    let a2 = sync(a, 2).await;
    assert_eq!(a2.len(), all / 2, "a keeps its fair share");
    let b2 = sync(b, 3).await;
    assert_eq!(b2.len(), all / 2, "b takes what a gave up");
    assert_eq!(disjoint_and_whole(&[a2, b2]), all);

    // A third joins; after a round each holds about a third.
    sync(c, 4).await;
    let a3 = sync(a, 5).await;
    let b3 = sync(b, 6).await;
    let c3 = sync(c, 7).await;
    for s in [&a3, &b3, &c3] {
        assert!(
            (84..=86).contains(&s.len()),
            "fair shares: {} {} {}",
            a3.len(),
            b3.len(),
            c3.len()
        );
    }
    assert_eq!(disjoint_and_whole(&[a3, b3, c3]), all);

    // c dies. Until its lease runs out its shards stay its own.
    let a4 = sync(a, 60).await;
    let b4 = sync(b, 61).await;
    assert_eq!(
        disjoint_and_whole(&[a4, b4, c3]),
        all,
        "c's shards wait for its lease"
    );
    // After it, a and b share everything.
    let a5 = sync(a, 130).await;
    let b5 = sync(b, 131).await;
    let a5 = if a5.len() + b5.len() < all {
        sync(a, 132).await
    } else {
        a5
    };
    assert_eq!(a5.len() + b5.len(), all, "c's shards were taken over");
    assert_eq!(disjoint_and_whole(&[a5, b5]), all);
    assert!(
        a5.len() >= all / 2 - 2 && b5.len() >= all / 2 - 2,
        "{} {}",
        a5.len(),
        b5.len()
    );

    // a shuts down cleanly: b takes over at its next sync, no lease to wait out.
    store.release_shards(a).await.expect("release");
    assert_eq!(sync(b, 133).await.len(), all, "b owns everything");
    store.release_shards(b).await.expect("release");
    store.release_shards(c).await.expect("release");
    assert_eq!(
        sync(c, 134).await.len(),
        all,
        "released instances leave nothing behind"
    );
    store.release_shards(c).await.expect("release");
}

/// `put_probes` stores a batch (the last of a repeated probe id wins) and
/// empties the vector it was given.
pub async fn event_store_put_probes_in_a_batch(store: &dyn EventStore) {
    let t = tenant("batch");
    let probe = |id: &str, ticket: &str| PendingProbe {
        tenant: t.clone(),
        direction: Direction::Outbound,
        probe_id: id.into(),
        sent_at: at(0),
        deadline: at(1800),
        next_check_at: at(3000),
        ticket: ProbeTicket::new(ticket),
        lease_id: 0,
        tenant_hint: 7,
    };
    let mut batch = vec![
        probe("b1", "first"),
        probe("b2", "x"),
        probe("b1", "second"),
    ];
    store.put_probes(&mut batch).await.expect("put batch");
    assert!(batch.is_empty(), "a stored batch is taken");
    let mut got: Vec<PendingProbe> = store
        .claim_probes(at(3000), Duration::from_secs(60), 100, &ShardSet::ALL)
        .await
        .expect("claim")
        .into_iter()
        .filter(|p| p.tenant == t)
        .collect();
    got.sort_by(|a, b| a.probe_id.cmp(&b.probe_id));
    let seen: Vec<(&str, &str)> = got
        .iter()
        .map(|p| (&*p.probe_id, p.ticket.as_str()))
        .collect();
    assert_eq!(seen, vec![("b1", "second"), ("b2", "x")]);
    assert!(
        got.iter().all(|p| p.tenant_hint == 7 || p.tenant_hint == 0),
        "the tenant hint comes back as given or as 0 (not stored)"
    );
    for p in &got {
        store
            .remove_probe(&p.tenant, &p.probe_id, p.lease_id)
            .await
            .expect("remove");
    }
}
