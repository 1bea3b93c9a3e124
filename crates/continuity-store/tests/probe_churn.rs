//! The dead row versions pending probes leave in PostgreSQL. Every UPDATE
//! or DELETE leaves one. A heap-only (HOT) update adds no index entry, and
//! its old version is pruned on its page by the next reader; the others,
//! and every deleted row, wait for VACUUM, in the table and in each index.
//!
//! A probe kept as a row is inserted, claimed at each check (an update),
//! and at its last check removed (a delete) or, while still pending,
//! released to the next check (an update of its due time): two dead row
//! versions per check. The claims are HOT (the lease is in columns no
//! index holds, and the table leaves half of each page free for the new
//! versions), so VACUUM has one per check to reclaim. The probes a
//! Monitor sends are not kept as rows at first: each round is one row of
//! `continuity_probe_batches`, deleted when the sender settles it; only a
//! probe still missing at its first check becomes a row.
//!
//! Counted from `pg_stat_user_tables` for the probe table of a schema of
//! the test's own. The store under test has a single connection, named by
//! `application_name`, and is closed before the counts are read: a backend
//! flushes its counters as it exits, before it leaves `pg_stat_activity`,
//! so the counts are complete whatever the statistics flush timer does.
//!
//! PostgreSQL is found at `CONTINUITY_TEST_PG` (default
//! `host=127.0.0.1 port=5432 user=postgres dbname=test`); a missing server
//! fails these tests.

mod common;

use std::{collections::HashMap, sync::Arc, time::Duration};

use chrono::{DateTime, TimeDelta, Utc};
use continuity_core::{
    Direction, ManualClock, Monitor, TenantId,
    cluster::ShardSet,
    config::{ChannelKind, Recipient, TenantConfig},
    probe::ProbeTicket,
    sim::{SimulatedFlow, SimulatedMailSystem},
    store::{EventStore, PendingProbe, ProbeSettlement},
    testing::{RIG_PORTAL_URL, RecordingNotifier, rig_signer},
};
use continuity_store::{PostgresOptions, PostgresStore};

/// The Monitor's defaults: a 2-minute lease, 500 probes a round trip.
const LEASE: Duration = Duration::from_secs(120);
const BATCH: usize = 500;

fn minute(m: i64) -> DateTime<Utc> {
    "2026-06-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap() + TimeDelta::minutes(m)
}

/// What PostgreSQL counted for one table.
#[derive(Clone, Copy, Debug, Default)]
struct Churn {
    inserted: i64,
    updated: i64,
    hot: i64,
    deleted: i64,
    /// `n_dead_tup` at the end: what pruning on the page did not take back
    /// (everything else VACUUM has not yet reclaimed).
    dead_left: i64,
    heap_bytes: i64,
    index_bytes: i64,
}

impl Churn {
    /// Row versions made dead: one per update and one per delete.
    fn dead_versions(&self) -> i64 {
        self.updated + self.deleted
    }

    /// Those only VACUUM reclaims, with their index entries.
    fn for_vacuum(&self) -> i64 {
        self.updated - self.hot + self.deleted
    }

    fn report(&self, what: &str, probes: i64) -> String {
        let per = |n: i64| n as f64 / probes.max(1) as f64;
        format!(
            "{what}: {probes} probes; per probe {:.2} dead row versions, {:.2} HOT updates, \
             {:.2} for VACUUM, {:.2} dead left ({} updates, {} HOT, {} deletes); \
             heap {} kB, indexes {} kB",
            per(self.dead_versions()),
            per(self.hot),
            per(self.for_vacuum()),
            per(self.dead_left),
            self.updated,
            self.hot,
            self.deleted,
            self.heap_bytes / 1024,
            self.index_bytes / 1024,
        )
    }
}

/// `url` with `application_name` set, in either form a connection string takes.
fn named(url: &str, name: &str) -> String {
    if url.contains("://") {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}application_name={name}")
    } else {
        format!("{url} application_name={name}")
    }
}

/// A store on `schema` whose only connection is named `name`.
async fn measured_store(schema: &str, name: &str) -> PostgresStore {
    PostgresStore::connect_with(
        &named(&common::pg_url(), name),
        PostgresOptions {
            schema: schema.into(),
            pool_size: 1,
            ..Default::default()
        },
    )
    .await
    .expect("connect")
}

/// The name of the measured connection on `pg`'s schema.
fn connection_name(pg: &common::PgSchema) -> String {
    format!("churn_{}", pg.schema.trim_start_matches("t_"))
}

async fn admin() -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&common::pg_url(), tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL is needed for this test");
    tokio::spawn(conn);
    client
}

/// Waits until the connection named `name` is gone: its counters are then
/// in the statistics.
async fn wait_closed(client: &tokio_postgres::Client, name: &str) {
    for _ in 0..300 {
        let open: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                &[&name],
            )
            .await
            .expect("pg_stat_activity")
            .get(0);
        if open == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the store's connection {name} did not close in 30 s");
}

async fn churn(client: &tokio_postgres::Client, schema: &str, table: &str) -> Churn {
    let r = client
        .query_one(
            "SELECT n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del, n_dead_tup,
                    pg_relation_size(relid), pg_indexes_size(relid)
             FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = $2",
            &[&schema, &table],
        )
        .await
        .expect("pg_stat_user_tables");
    Churn {
        inserted: r.get(0),
        updated: r.get(1),
        hot: r.get(2),
        deleted: r.get(3),
        dead_left: r.get(4),
        heap_bytes: r.get(5),
        index_bytes: r.get(6),
    }
}

/// How many checks the `n`th probe needs before it is found, `None` if it
/// never arrives (lost at its deadline): 93 % at the first check, as in
/// production, where probes are checked every minute and usually arrive
/// within one; 5 % at the second, 1.5 % at the third, 0.5 % lost.
fn checks_needed(n: u64) -> Option<u32> {
    match n.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29) % 1000 {
        0..930 => Some(1),
        930..980 => Some(2),
        980..995 => Some(3),
        _ => None,
    }
}

/// Probe traffic as the Monitor makes it: `tenants` tenants, both
/// directions probed every 5 minutes (tenant `i` at the minutes `m` with
/// `m % 5 == i % 5`), each probe first checked a minute after it is sent
/// and every minute after that until it arrives or its 30-minute deadline
/// passes.
struct Traffic {
    ids: Vec<TenantId>,
    /// Checks done and checks needed, per probe not yet settled.
    pending: HashMap<(TenantId, Arc<str>), (u32, Option<u32>)>,
    sent: i64,
    claims: i64,
    releases: i64,
}

impl Traffic {
    fn new(tenants: usize) -> Self {
        Traffic {
            ids: (0..tenants)
                .map(|i| TenantId::new(format!("tenant-{i:06}.onmicrosoft.com")).unwrap())
                .collect(),
            pending: HashMap::new(),
            sent: 0,
            claims: 0,
            releases: 0,
        }
    }

    /// Minute `m`, in the Monitor's order: put the new probes (none when
    /// `send` is false), then claim the due ones in rounds of [`BATCH`]
    /// and settle each round.
    async fn minute(&mut self, store: &PostgresStore, m: i64, send: bool) {
        let now = minute(m);
        let mut batch = Vec::new();
        for (i, t) in self.ids.iter().enumerate() {
            if !send || (m - i as i64).rem_euclid(5) != 0 {
                continue;
            }
            for (d, prefix) in [(Direction::Inbound, "in"), (Direction::Outbound, "ou")] {
                let id: Arc<str> = format!("{prefix}-{:x}", now.timestamp_millis()).into();
                let needed = checks_needed(self.sent as u64 + batch.len() as u64);
                self.pending.insert((t.clone(), id.clone()), (0, needed));
                batch.push(PendingProbe {
                    tenant: t.clone(),
                    direction: d,
                    probe_id: id.clone(),
                    sent_at: now,
                    deadline: now + TimeDelta::minutes(30),
                    next_check_at: now + TimeDelta::minutes(1),
                    ticket: ProbeTicket::new(format!("{id}.{t}")),
                    lease_id: 0,
                    tenant_hint: 0,
                });
            }
        }
        self.sent += batch.len() as i64;
        store.put_probes(&mut batch).await.expect("put");
        loop {
            let claimed = store
                .claim_probes(now, LEASE, BATCH, &ShardSet::ALL)
                .await
                .expect("claim");
            if claimed.is_empty() {
                break;
            }
            self.claims += claimed.len() as i64;
            let settlements: Vec<ProbeSettlement> = claimed
                .into_iter()
                .map(|p| {
                    let key = (p.tenant.clone(), p.probe_id.clone());
                    let (done, needed) = self.pending.get_mut(&key).expect("a probe sent here");
                    *done += 1;
                    let found = needed.is_some_and(|k| *done >= k);
                    let next_check_at = if found || now >= p.deadline {
                        self.pending.remove(&key);
                        None
                    } else {
                        self.releases += 1;
                        Some((now + TimeDelta::minutes(1)).min(p.deadline))
                    };
                    ProbeSettlement {
                        tenant: p.tenant,
                        probe_id: p.probe_id,
                        lease_id: p.lease_id,
                        next_check_at,
                    }
                })
                .collect();
            for r in store.settle_probes(&settlements).await {
                r.expect("settle");
            }
        }
    }

    /// Whether minute `m` is past the traffic's `minutes` and every probe
    /// is settled.
    fn over(&self, m: i64, minutes: i64) -> bool {
        m >= minutes && self.pending.is_empty()
    }
}

/// 250 tenants' probes for an hour (6,000 probes, 7,400 checks), then
/// until every one is settled: the claims are HOT, and what VACUUM has to
/// reclaim is about one row version per probe (the delete) plus one per
/// release to a later check. Before the claims were HOT: 2.47 a probe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_claims_are_hot_updates() {
    let pg = common::PgSchema::new("probe_churn").await;
    let name = connection_name(&pg);
    let store = measured_store(&pg.schema, &name).await;
    let mut traffic = Traffic::new(250);
    let mut m = 0;
    while !traffic.over(m, 60) {
        traffic.minute(&store, m, m < 60).await;
        m += 1;
    }
    drop(store);
    let client = admin().await;
    wait_closed(&client, &name).await;
    let c = churn(&client, &pg.schema, "continuity_probes").await;
    let probes = traffic.sent;
    println!("{}", c.report("store", probes));
    assert_eq!(c.inserted, probes);
    assert_eq!(c.deleted, probes, "every probe removed once");
    assert_eq!(
        c.updated,
        traffic.claims + traffic.releases,
        "one update per claim and per release"
    );
    // Every claim is HOT when nothing holds back pruning; with a snapshot
    // held open by another session of the database for the whole run,
    // 93 % were.
    assert!(
        c.hot * 10 >= traffic.claims * 8,
        "{} of {} claims HOT",
        c.hot,
        traffic.claims
    );
    assert!(
        c.for_vacuum() * 100 <= probes * 140,
        "{} row versions for VACUUM for {probes} probes",
        c.for_vacuum()
    );
    pg.drop().await;
}

/// The Monitor's own traffic: 20 tenants for three hours, one of them with
/// slow inbound mail (three checks a probe) and one whose outbound mail
/// vanishes for the second hour (probes lost at their deadline).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monitor_on_postgres_makes_its_probe_claims_hot() {
    let pg = common::PgSchema::new("monitor_churn").await;
    let name = connection_name(&pg);
    let store = measured_store(&pg.schema, &name).await;
    let clock = ManualClock::new(minute(0));
    let mail = Arc::new(SimulatedMailSystem::new(
        Arc::new(clock.clone()),
        Duration::from_secs(30),
    ));
    let monitor = Monitor::builder()
        .store(Arc::new(store))
        .clock(Arc::new(clock.clone()))
        .probe(Direction::Inbound, mail.clone())
        .probe(Direction::Outbound, mail.clone())
        .notifier(Arc::new(RecordingNotifier::new(ChannelKind::Sms)))
        .link_signer(rig_signer())
        .portal_url(RIG_PORTAL_URL)
        .build()
        .unwrap();
    let ids: Vec<TenantId> = (0..20)
        .map(|i| TenantId::new(format!("tenant-{i:02}")).unwrap())
        .collect();
    for t in &ids {
        monitor
            .register_tenant(TenantConfig::new(
                t.clone(),
                vec![Recipient::new("ops", ChannelKind::Sms, "+15550100")],
            ))
            .await
            .unwrap();
    }
    mail.set_flow(
        &ids[3],
        Direction::Inbound,
        SimulatedFlow::Latency(Duration::from_secs(150)),
    );
    let (mut sent, mut checked, mut settled) = (0i64, 0i64, 0i64);
    for m in 1..=180 {
        if m == 60 {
            mail.set_flow(&ids[7], Direction::Outbound, SimulatedFlow::Blackhole);
        }
        if m == 120 {
            mail.set_flow(
                &ids[7],
                Direction::Outbound,
                SimulatedFlow::Latency(Duration::from_secs(30)),
            );
        }
        clock.set(minute(m));
        let r = monitor.tick(minute(m)).await.unwrap();
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        sent += r.probes_dispatched as i64;
        checked += r.probes_checked as i64;
        settled += (r.probes_arrived + r.probes_lost) as i64;
    }
    drop(monitor);
    let client = admin().await;
    wait_closed(&client, &name).await;
    let c = churn(&client, &pg.schema, "continuity_probes").await;
    let b = churn(&client, &pg.schema, "continuity_probe_batches").await;
    println!("{}", c.report("monitor, probes kept as rows", sent));
    println!(
        "{}",
        b.report("monitor, batches held by their sender", sent)
    );
    println!(
        "{}",
        churn(&client, &pg.schema, "continuity_outbox")
            .await
            .report("outbox, for as many probes", sent)
    );
    // Every probe is put in its sender's batch (one row a put) and first
    // checked from memory; the batch goes when its probes are settled.
    assert!(
        b.inserted > 0 && b.inserted <= 180,
        "a batch a round: {b:?}"
    );
    let pending_batches = b.inserted - b.deleted;
    assert!(
        (0..=3).contains(&pending_batches),
        "only the last rounds' batches are still held: {b:?}"
    );
    // Only probes still missing at their first check become rows: one
    // insert each; later checks claim them (an update), release them (an
    // update) or remove them.
    let claims = checked - sent;
    assert!(claims > 0, "some probes are checked more than once");
    assert!(c.inserted > 0 && c.inserted < sent / 10, "{c:?}");
    let releases_after_a_claim = (checked - settled) - c.inserted;
    assert_eq!(c.updated, claims + releases_after_a_claim);
    assert!(
        (c.dead_versions() + b.dead_versions()) * 4 < sent * 3,
        "under 0.75 dead row versions a probe (1.58 with a row a probe): {c:?} {b:?}"
    );
    assert!(c.hot * 10 >= claims * 8, "{} of {claims} claims HOT", c.hot);
    pg.drop().await;
}

/// Autovacuum's rule, applied once a simulated minute (its default nap
/// time) to `tenants` tenants' probes for two hours: `VACUUM` when the
/// dead rows exceed `threshold + scale × reltuples`, or the rows inserted
/// since the last vacuum exceed `1000 + 0.2 × reltuples` (the insert
/// defaults); no vacuum at all when `threshold` is infinite. The store
/// reconnects every minute so that its counters are flushed before the
/// rule reads them.
async fn with_autovacuum(tenants: usize, threshold: f64, scale: f64) -> String {
    let pg = common::PgSchema::new("probe_vacuum").await;
    let client = admin().await;
    let name = connection_name(&pg);
    let mut traffic = Traffic::new(tenants);
    let (mut vacuums, mut peak_dead, mut peak_heap, mut peak_index) = (0, 0i64, 0i64, 0i64);
    let mut m = 0;
    while !traffic.over(m, 120) {
        let store = measured_store(&pg.schema, &name).await;
        traffic.minute(&store, m, m < 120).await;
        drop(store);
        wait_closed(&client, &name).await;
        let r = client
            .query_one(
                "SELECT s.n_dead_tup, s.n_ins_since_vacuum, greatest(c.reltuples, 0)::float8,
                        pg_relation_size(s.relid), pg_indexes_size(s.relid)
                 FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
                 WHERE s.schemaname = $1 AND s.relname = 'continuity_probes'",
                &[&pg.schema],
            )
            .await
            .expect("statistics");
        let (dead, inserted, rows): (i64, i64, f64) = (r.get(0), r.get(1), r.get(2));
        peak_dead = peak_dead.max(dead);
        peak_heap = peak_heap.max(r.get(3));
        peak_index = peak_index.max(r.get(4));
        if threshold.is_finite()
            && (dead as f64 > threshold + scale * rows || inserted as f64 > 1000.0 + 0.2 * rows)
        {
            client
                .batch_execute(&format!("VACUUM {}.continuity_probes", pg.schema))
                .await
                .expect("vacuum");
            vacuums += 1;
        }
        m += 1;
    }
    pg.drop().await;
    format!(
        "vacuum at {threshold} + {scale} x rows: {tenants} tenants, {} probes in {m} minutes, \
         {vacuums} vacuums, at most {peak_dead} dead rows, heap at most {} kB, indexes at most {} kB",
        traffic.sent,
        peak_heap / 1024,
        peak_index / 1024
    )
}

/// The figures behind the README's autovacuum advice (BENCHMARKS.md).
/// Slow (a reconnection a simulated minute):
/// `cargo test -p continuity-store --test probe_churn -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "figures for BENCHMARKS.md; about a minute"]
async fn probe_table_under_autovacuum() {
    for tenants in [20, 250, 1000] {
        for (threshold, scale) in [(f64::INFINITY, 0.0), (50.0, 0.2), (1000.0, 0.0)] {
            println!("{}", with_autovacuum(tenants, threshold, scale).await);
        }
    }
}
