//! Pending probes: claims under leases, settling, batches, shards.

use std::time::Duration;

use super::{at, tenant};
use crate::{
    cluster::{ShardSet, shard_of},
    domain::Direction,
    error::Error,
    probe::ProbeTicket,
    store::{EventStore, PendingProbe},
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
