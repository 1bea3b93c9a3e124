//! Pending probes: claims under leases, settling, batches, shards.

use std::time::Duration;

use super::{at, tenant};
use crate::{
    cluster::{ShardSet, shard_of},
    domain::Direction,
    error::Error,
    probe::ProbeTicket,
    store::{EventStore, PendingProbe, ProbeSettlement},
};

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

/// `settle_probes` removes and reschedules in one call, one result per
/// settlement in order: a settlement whose lease is not held (never
/// claimed, unknown probe) fails with `LeaseLost` and changes nothing,
/// without failing the others.
pub async fn event_store_settle_probes_in_a_batch(store: &dyn EventStore) {
    let t = tenant("settle");
    let lease = Duration::from_secs(100);
    let probe = |id: &str| PendingProbe {
        tenant: t.clone(),
        direction: Direction::Inbound,
        probe_id: id.into(),
        sent_at: at(0),
        deadline: at(9000),
        next_check_at: at(4000),
        ticket: ProbeTicket::new(format!("ticket-{id}")),
        lease_id: 0,
        tenant_hint: 0,
    };
    let mut batch = vec![probe("s1"), probe("s2"), probe("s3")];
    store.put_probes(&mut batch).await.expect("put batch");
    let mine = |v: Vec<PendingProbe>| v.into_iter().filter(|p| p.tenant == t).collect::<Vec<_>>();
    let claimed = mine(
        store
            .claim_probes(at(4000), lease, 100, &ShardSet::ALL)
            .await
            .expect("claim"),
    );
    let lease_of = |id: &str| {
        claimed
            .iter()
            .find(|p| &*p.probe_id == id)
            .map(|p| p.lease_id)
            .expect("claimed")
    };
    assert_eq!(claimed.len(), 3);
    assert!(
        store.settle_probes(&[]).await.is_empty(),
        "an empty batch settles nothing"
    );
    let settle = |id: &str, lease_id: u64, next_check_at| ProbeSettlement {
        tenant: t.clone(),
        probe_id: id.into(),
        lease_id,
        next_check_at,
    };
    let results = store
        .settle_probes(&[
            settle("s1", lease_of("s1"), None),
            settle("ghost", lease_of("s2"), None),
            settle("s2", lease_of("s2"), Some(at(4500))),
            settle("s3", 0, None),
        ])
        .await;
    assert_eq!(results.len(), 4, "one result per settlement");
    assert!(results[0].is_ok(), "s1 removed: {:?}", results[0]);
    match &results[1] {
        Err(Error::LeaseLost { .. }) => {}
        other => panic!("an unknown probe must be LeaseLost, got {other:?}"),
    }
    assert!(results[2].is_ok(), "s2 rescheduled: {:?}", results[2]);
    match &results[3] {
        Err(Error::LeaseLost { .. }) => {}
        other => panic!("lease id 0 must be LeaseLost, got {other:?}"),
    }
    // s3 is still leased until 4100, s2 due at 4500, s1 gone.
    let next = mine(
        store
            .claim_probes(at(4099), lease, 100, &ShardSet::ALL)
            .await
            .expect("claim"),
    );
    assert!(
        next.is_empty(),
        "s3 keeps its lease, s2 is not due: {next:?}"
    );
    let mut next = mine(
        store
            .claim_probes(at(4500), lease, 100, &ShardSet::ALL)
            .await
            .expect("claim"),
    );
    next.sort_by(|a, b| a.probe_id.cmp(&b.probe_id));
    assert_eq!(
        next.iter().map(|p| &*p.probe_id).collect::<Vec<_>>(),
        vec!["s2", "s3"],
        "s1 removed, s2 rescheduled, s3 untouched"
    );
    let done: Vec<ProbeSettlement> = next
        .iter()
        .map(|p| settle(&p.probe_id, p.lease_id, None))
        .collect();
    assert!(store.settle_probes(&done).await.iter().all(Result::is_ok));
}

/// The single-item forms (`put_probe`, `reschedule_probe`,
/// `remove_probe`) act as batches of one: a probe re-put replaces the
/// stored one and drops its lease; settling without the lease held is
/// `LeaseLost` and changes nothing.
pub async fn event_store_single_probe_forms(store: &dyn EventStore) {
    let t = tenant("single");
    let lease = Duration::from_secs(100);
    let probe = |id: &str, ticket: &str, due: i64| PendingProbe {
        tenant: t.clone(),
        direction: Direction::Outbound,
        probe_id: id.into(),
        sent_at: at(0),
        deadline: at(9000),
        next_check_at: at(due),
        ticket: ProbeTicket::new(ticket),
        lease_id: 0,
        tenant_hint: 0,
    };
    let mine = |v: Vec<PendingProbe>| v.into_iter().filter(|p| p.tenant == t).collect::<Vec<_>>();
    let lost = |what: &str, r: crate::error::Result<()>| match r {
        Err(Error::LeaseLost { .. }) => {}
        other => panic!("{what}: expected LeaseLost, got {other:?}"),
    };
    store
        .put_probe(probe("one", "first", 5000))
        .await
        .expect("put");
    lost(
        "rescheduling a probe never claimed",
        store.reschedule_probe(&t, "one", 0, at(5200)).await,
    );
    lost(
        "removing an unknown probe",
        store.remove_probe(&t, "nobody", 1).await,
    );
    let c1 = mine(
        store
            .claim_probes(at(5000), lease, 100, &ShardSet::ALL)
            .await
            .expect("claim"),
    );
    assert_eq!(c1.len(), 1);
    // Re-put while leased: the new probe replaces it, unleased.
    store
        .put_probe(probe("one", "second", 5010))
        .await
        .expect("re-put");
    lost(
        "rescheduling under the lease of a replaced probe",
        store
            .reschedule_probe(&t, "one", c1[0].lease_id, at(5200))
            .await,
    );
    let c2 = mine(
        store
            .claim_probes(at(5010), lease, 100, &ShardSet::ALL)
            .await
            .expect("claim"),
    );
    assert_eq!(
        c2.iter()
            .map(|p| (&*p.probe_id, p.ticket.as_str()))
            .collect::<Vec<_>>(),
        vec![("one", "second")],
        "the re-put probe replaced the first, not the reschedule"
    );
    store
        .reschedule_probe(&t, "one", c2[0].lease_id, at(5300))
        .await
        .expect("reschedule");
    lost(
        "rescheduling twice under one lease",
        store
            .reschedule_probe(&t, "one", c2[0].lease_id, at(5400))
            .await,
    );
    let c3 = mine(
        store
            .claim_probes(at(5300), lease, 100, &ShardSet::ALL)
            .await
            .expect("claim"),
    );
    assert_eq!(c3.len(), 1, "due at the rescheduled time");
    store
        .remove_probe(&t, "one", c3[0].lease_id)
        .await
        .expect("remove");
    lost(
        "removing twice",
        store.remove_probe(&t, "one", c3[0].lease_id).await,
    );
    assert!(
        mine(
            store
                .claim_probes(at(100_000), lease, 100, &ShardSet::ALL)
                .await
                .expect("claim")
        )
        .is_empty(),
        "removed"
    );
}

/// Probes stored with [`EventStore::put_probes_leased`]: those handed back
/// are leased to the caller until their first check plus the lease, so no
/// claim gets them before; the holder settles them with that lease; once
/// it runs out they are claimed as usual, and the old lease settles
/// nothing. A backend that holds none (the trait's default) leaves the
/// batch empty, and the probes are then claimed as usual.
pub async fn event_store_put_probes_leased(store: &dyn EventStore) {
    let t = tenant("put-leased");
    let lease = Duration::from_secs(60);
    let probe = |id: &str| PendingProbe {
        tenant: t.clone(),
        direction: Direction::Inbound,
        probe_id: id.into(),
        sent_at: at(0),
        deadline: at(1800),
        next_check_at: at(100),
        ticket: ProbeTicket::new(format!("ticket-{id}")),
        lease_id: 0,
        tenant_hint: 7,
    };
    let mine = |v: Vec<PendingProbe>| v.into_iter().filter(|p| p.tenant == t).collect::<Vec<_>>();
    let claim = |now: i64| async move {
        mine(
            store
                .claim_probes(at(now), lease, 10, &ShardSet::ALL)
                .await
                .expect("claim"),
        )
    };
    // "a" is put twice: the last one wins, and is the one handed back.
    let mut again = probe("a");
    again.ticket = ProbeTicket::new("ticket-a-again");
    let mut batch = vec![probe("a"), probe("b"), again];
    store
        .put_probes_leased(&mut batch, lease)
        .await
        .expect("put leased");
    if batch.is_empty() {
        assert_eq!(claim(100).await.len(), 2, "not held: claimed as usual");
        return;
    }
    assert_eq!(
        batch.iter().map(|p| &*p.probe_id).collect::<Vec<_>>(),
        vec!["b", "a"],
        "handed back once each, in the order stored"
    );
    assert!(batch.iter().all(|p| p.lease_id != 0), "each with its lease");
    assert_eq!(batch[1].ticket, ProbeTicket::new("ticket-a-again"));
    batch.swap(0, 1);
    assert!(claim(100).await.is_empty(), "leased: due, but not claimed");
    assert!(claim(159).await.is_empty(), "leased until 100 s + 60 s");
    let results = store
        .settle_probes(&[ProbeSettlement {
            tenant: t.clone(),
            probe_id: "a".into(),
            lease_id: batch[0].lease_id,
            next_check_at: None,
        }])
        .await;
    assert!(
        matches!(results[..], [Ok(())]),
        "the holder settles it: {results:?}"
    );
    let c = claim(160).await;
    assert_eq!(
        c.iter().map(|p| &*p.probe_id).collect::<Vec<_>>(),
        vec!["b"],
        "the lease ran out: claimed as usual, the settled one gone"
    );
    assert_ne!(c[0].lease_id, batch[1].lease_id, "under a new lease");
    match store.remove_probe(&t, "b", batch[1].lease_id).await {
        Err(Error::LeaseLost { .. }) => {}
        other => panic!("the old lease settles nothing: {other:?}"),
    }
    store
        .remove_probe(&t, "b", c[0].lease_id)
        .await
        .expect("the new holder removes it");
    assert!(claim(10_000).await.is_empty());
}
