//! Fleet simulation: many tenants, one simulated day, single-threaded.
//!
//! Every tenant is probed every 5 minutes in both directions through the
//! simulated mail system (clearly a simulation), and the monitor ticks every
//! simulated minute. One tenant in a hundred suffers a two-hour outbound
//! outage, so alerts, reminders and resolved notices flow too.
//!
//! ```text
//! cargo build --release --example fleet
//! /usr/bin/time -v target/release/examples/fleet 100000 24
//! ```
//!
//! Arguments: tenants (default 100000), simulated hours (default 24), the
//! store, the batch size (`MonitorSettings::batch`, default 500), the
//! instances (default 1; more run as a cluster, in this process and on
//! this thread, so the wall time is the cost of all of them), and the
//! passive observations per tenant, direction and minute (default 0), each
//! told to one instance at random (a load balancer), so that with several
//! instances most go through the store to the tenant's owner. The
//! store: `memory` (the default), `sqlite:PATH` (a new file; `Normal`
//! durability, as a fleet would run it) or `postgres:CONNINFO` (tables in a
//! fresh schema `fleet_<pid>`, dropped at the end), e.g.
//! `fleet 10000 24 sqlite:target/fleet.db` or
//! `fleet 1000 6 "postgres:host=127.0.0.1 user=postgres dbname=test"`.
//! Wall time and peak RSS come from `/usr/bin/time -v`; see BENCHMARKS.md.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use continuity::{
    Direction, FailureKind, ManualClock, Monitor, Observation, TenantId,
    cluster::ShardSet,
    config::{ChannelKind, Recipient, TenantConfig},
    link::{LinkKey, LinkSigner},
    memory::InMemoryEventStore,
    monitor::MonitorSettings,
    notify::{AlertMessage, Notifier, Receipt},
    sim::{SimulatedFlow, SimulatedMailSystem},
    store::{
        AuditRecord, BaselineRecord, Commit, EventStore, OutboxCounts, OutboxEntry, OutboxResult,
        PendingProbe, ProbeSettlement, PruneBefore, PruneReport, SharedObservations, Versioned,
    },
    stores::{Durability, PostgresOptions, PostgresStore, SqliteOptions, SqliteStore},
    testing::SplitMix64,
};

/// Counts messages instead of keeping them (a day of a fleet's alerts would
/// otherwise dominate the memory figure).
#[derive(Debug, Default)]
struct CountingNotifier {
    delivered: AtomicU64,
}

#[async_trait]
impl Notifier for CountingNotifier {
    fn channel(&self) -> ChannelKind {
        ChannelKind::Sms
    }
    async fn deliver(&self, _message: &AlertMessage) -> continuity::Result<Receipt> {
        self.delivered.fetch_add(1, Ordering::Relaxed);
        Ok(Receipt::default())
    }
}

/// The store, with the calls to it counted and timed by method: where a
/// fleet's day goes on a real store.
#[derive(Debug)]
struct TimedStore {
    inner: Arc<dyn EventStore>,
    calls: Mutex<BTreeMap<&'static str, (u64, Duration)>>,
}

impl TimedStore {
    // Wall time is the measure here; the monitor's own time stays the
    // manual clock's.
    #[allow(clippy::disallowed_methods)]
    async fn time<T>(&self, method: &'static str, call: impl Future<Output = T>) -> T {
        let start = Instant::now();
        let out = call.await;
        let took = start.elapsed();
        let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        let entry = calls.entry(method).or_default();
        entry.0 += 1;
        entry.1 += took;
        out
    }

    fn print(&self) {
        let calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        println!("store calls: method, calls, total, mean");
        for (method, (n, total)) in calls.iter() {
            println!(
                "  {method}: {n}, {:.1} s, {:.0} µs",
                total.as_secs_f64(),
                total.as_secs_f64() * 1e6 / (*n).max(1) as f64
            );
        }
    }
}

#[async_trait]
impl EventStore for TimedStore {
    async fn load(&self, tenant: &TenantId) -> continuity::Result<Option<Versioned>> {
        self.time("load", self.inner.load(tenant)).await
    }
    async fn commit(
        &self,
        tenant: &TenantId,
        expected: u64,
        commit: Commit,
    ) -> continuity::Result<u64> {
        self.time("commit", self.inner.commit(tenant, expected, commit))
            .await
    }
    async fn audit_log(
        &self,
        tenant: &TenantId,
        after: u64,
        limit: usize,
    ) -> continuity::Result<Vec<AuditRecord>> {
        self.time("audit_log", self.inner.audit_log(tenant, after, limit))
            .await
    }
    async fn claim_outbox(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: usize,
    ) -> continuity::Result<Vec<OutboxEntry>> {
        self.time("claim_outbox", self.inner.claim_outbox(now, lease, limit))
            .await
    }
    async fn complete_outbox(
        &self,
        id: u64,
        lease_id: u64,
        result: OutboxResult,
    ) -> continuity::Result<()> {
        self.time(
            "complete_outbox",
            self.inner.complete_outbox(id, lease_id, result),
        )
        .await
    }
    async fn pending_outbox(&self, limit: usize) -> continuity::Result<Vec<OutboxEntry>> {
        self.time("pending_outbox", self.inner.pending_outbox(limit))
            .await
    }
    async fn claim_probes(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: usize,
        shards: &ShardSet,
    ) -> continuity::Result<Vec<PendingProbe>> {
        self.time(
            "claim_probes",
            self.inner.claim_probes(now, lease, limit, shards),
        )
        .await
    }
    async fn sync_shards(
        &self,
        instance: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> continuity::Result<ShardSet> {
        self.time("sync_shards", self.inner.sync_shards(instance, now, lease))
            .await
    }
    async fn release_shards(&self, instance: &str) -> continuity::Result<()> {
        self.time("release_shards", self.inner.release_shards(instance))
            .await
    }
    async fn put_probes(&self, probes: &mut Vec<PendingProbe>) -> continuity::Result<()> {
        self.time("put_probes", self.inner.put_probes(probes)).await
    }
    async fn put_probes_leased(
        &self,
        probes: &mut Vec<PendingProbe>,
        lease: Duration,
    ) -> continuity::Result<()> {
        self.time(
            "put_probes_leased",
            self.inner.put_probes_leased(probes, lease),
        )
        .await
    }
    async fn settle_probes(&self, settlements: &[ProbeSettlement]) -> Vec<continuity::Result<()>> {
        self.time("settle_probes", self.inner.settle_probes(settlements))
            .await
    }
    async fn save_baselines(&self, records: &[BaselineRecord]) -> continuity::Result<()> {
        self.time("save_baselines", self.inner.save_baselines(records))
            .await
    }
    async fn load_baselines(&self, tenant: &TenantId) -> continuity::Result<Vec<BaselineRecord>> {
        self.time("load_baselines", self.inner.load_baselines(tenant))
            .await
    }
    async fn outbox_counts(&self) -> continuity::Result<Option<OutboxCounts>> {
        self.time("outbox_counts", self.inner.outbox_counts()).await
    }
    async fn ping(&self) -> continuity::Result<()> {
        self.time("ping", self.inner.ping()).await
    }
    async fn recent_audit(
        &self,
        tenant: &TenantId,
        limit: usize,
    ) -> continuity::Result<Vec<AuditRecord>> {
        self.time("recent_audit", self.inner.recent_audit(tenant, limit))
            .await
    }
    async fn given_up_outbox(&self, limit: usize) -> continuity::Result<Vec<OutboxEntry>> {
        self.time("given_up_outbox", self.inner.given_up_outbox(limit))
            .await
    }
    async fn prune(&self, before: &PruneBefore) -> continuity::Result<PruneReport> {
        self.time("prune", self.inner.prune(before)).await
    }
    async fn share_observations(&self, batches: &[SharedObservations]) -> continuity::Result<()> {
        self.time("share_observations", self.inner.share_observations(batches))
            .await
    }
    async fn take_shared_observations(
        &self,
        shards: &ShardSet,
        limit: usize,
    ) -> continuity::Result<Vec<SharedObservations>> {
        self.time(
            "take_shared_observations",
            self.inner.take_shared_observations(shards, limit),
        )
        .await
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> continuity::Result<()> {
    let mut args = std::env::args().skip(1);
    let tenants: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let hours: i64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(24);
    let store_arg = args.next().unwrap_or_else(|| "memory".into());
    let defaults = MonitorSettings::default();
    let batch: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(defaults.batch);
    let instances: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1).max(1);
    let observations: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(0);
    let (store, schema) = open_store(&store_arg).await?;
    // The in-memory store is timed by the whole run; a clock read per call
    // would be a good part of it.
    let timed = (store_arg != "memory").then(|| {
        Arc::new(TimedStore {
            inner: store.clone(),
            calls: Mutex::default(),
        })
    });
    let store: Arc<dyn EventStore> = match &timed {
        Some(t) => t.clone(),
        None => store,
    };

    let clock = ManualClock::new("2026-03-02T00:00:00Z".parse().expect("valid time"));
    let mail = Arc::new(SimulatedMailSystem::new(
        Arc::new(clock.clone()),
        Duration::from_secs(30),
    ));
    let sms = Arc::new(CountingNotifier::default());
    let ids: Vec<TenantId> = (0..tenants)
        .map(|i| TenantId::new(format!("tenant-{i:06}")))
        .collect::<Result<_, _>>()?;
    let mut monitors = Vec::new();
    for i in 0..instances {
        let builder = Monitor::builder()
            .store(store.clone())
            .clock(Arc::new(clock.clone()))
            .probe(Direction::Inbound, mail.clone())
            .probe(Direction::Outbound, mail.clone())
            .notifier(sms.clone())
            .link_signer(LinkSigner::new(LinkKey::new("fleet", [9u8; 32])?))
            .portal_url("https://continuity.example.net/c/")
            .settings(MonitorSettings {
                batch,
                ..defaults.clone()
            });
        let monitor = if instances > 1 {
            builder.cluster(format!("fleet-{i}")).build()?
        } else {
            builder.build()?
        };
        for id in &ids {
            let config = TenantConfig::new(
                id.clone(),
                vec![Recipient::new("ops", ChannelKind::Sms, "+15550100")],
            );
            monitor.register_tenant(config).await?;
        }
        monitors.push(monitor);
    }
    let unlucky: Vec<&TenantId> = ids.iter().step_by(100).collect();
    let mut rng = SplitMix64::new(42);
    let mut failing = false;

    let mut totals = continuity::TickReport::default();
    let mut tick_errors = 0usize;
    for minute in 0..hours * 60 {
        if minute == 10 * 60 {
            failing = true;
            for t in &unlucky {
                mail.set_flow(t, Direction::Outbound, SimulatedFlow::Blackhole);
            }
        }
        if minute == 12 * 60 {
            failing = false;
            for t in &unlucky {
                mail.set_flow(
                    t,
                    Direction::Outbound,
                    SimulatedFlow::Latency(Duration::from_secs(30)),
                );
            }
        }
        let now = clock.advance(TimeDelta::minutes(1));
        if observations > 0 {
            for (i, id) in ids.iter().enumerate() {
                for d in Direction::ALL {
                    for _ in 0..observations {
                        let at = now - TimeDelta::milliseconds(1 + rng.below(59_000) as i64);
                        let o = if failing && i % 100 == 0 && d == Direction::Outbound {
                            Observation::failed(id.clone(), d, at, FailureKind::TimedOut)
                        } else {
                            let latency = Duration::from_millis(5_000 + rng.below(25_000));
                            Observation::delivered(id.clone(), d, at, latency)
                        };
                        monitors[rng.below(instances as u64) as usize].observe(o)?;
                    }
                }
            }
        }
        for monitor in &monitors {
            let r = monitor.tick(now).await?;
            totals.probes_dispatched += r.probes_dispatched;
            totals.probes_arrived += r.probes_arrived;
            totals.probes_lost += r.probes_lost;
            totals.transitions += r.transitions;
            totals.alerts += r.alerts;
            totals.deliveries += r.deliveries;
            totals.observations_shared += r.observations_shared;
            totals.observations_merged += r.observations_merged;
            if !r.errors.is_empty() {
                tick_errors += r.errors.len();
                eprintln!(
                    "minute {minute}: {} errors, first: {}",
                    r.errors.len(),
                    r.errors[0]
                );
            }
        }
    }
    let monitor = &monitors[0];

    let sizes = ids
        .iter()
        .take(1000)
        .map(|t| monitor.direction_memory_bytes(t))
        .collect::<Result<Vec<_>, _>>()?;
    let max = sizes
        .iter()
        .flat_map(|s| s.iter().copied())
        .max()
        .unwrap_or(0);
    let mean = sizes.iter().flat_map(|s| s.iter().copied()).sum::<usize>() as f64
        / (sizes.len() * 2).max(1) as f64;
    println!(
        "tenants: {tenants}, simulated hours: {hours}, ticks: {}, batch: {batch}, instances: {instances}",
        hours * 60
    );
    println!(
        "passive observations per tenant, direction and minute: {observations}; shared through the store: {}, merged by owners: {}",
        totals.observations_shared, totals.observations_merged
    );
    println!(
        "probes dispatched: {}, arrived: {}, lost: {}",
        totals.probes_dispatched, totals.probes_arrived, totals.probes_lost
    );
    println!(
        "transitions: {}, alerts: {}, messages delivered: {}",
        totals.transitions,
        totals.alerts,
        sms.delivered.load(Ordering::Relaxed)
    );
    println!(
        "monitored state per (tenant, direction): mean {mean:.0} B, max {max} B (first 1000 tenants)"
    );
    println!("store: {store_arg}");
    if let Some(timed) = &timed {
        timed.print();
    }
    drop(monitors);
    if let Some((conninfo, schema)) = schema {
        drop_schema(&conninfo, &schema).await?;
    }
    // A day with errors measured another path (probes kept in memory while
    // the store refused them, say), not the fleet's.
    if tick_errors > 0 {
        return Err(continuity::Error::config(
            "fleet",
            format!("{tick_errors} errors in the ticks' reports: the figures do not count"),
        ));
    }
    Ok(())
}

/// The store named on the command line, and for PostgreSQL the connection
/// and schema to drop at the end.
async fn open_store(
    arg: &str,
) -> continuity::Result<(Arc<dyn EventStore>, Option<(String, String)>)> {
    if arg == "memory" {
        return Ok((Arc::new(InMemoryEventStore::new()), None));
    }
    if let Some(path) = arg.strip_prefix("sqlite:") {
        // A fresh file each run: a fleet's day, not a continuation.
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{path}{suffix}"));
        }
        let options = SqliteOptions {
            durability: Durability::Normal,
            ..SqliteOptions::default()
        };
        let store = SqliteStore::open_with(path, options).await?;
        return Ok((Arc::new(store), None));
    }
    if let Some(conninfo) = arg.strip_prefix("postgres:") {
        let schema = format!("fleet_{}", std::process::id());
        let options = PostgresOptions {
            schema: schema.clone(),
            ..PostgresOptions::default()
        };
        let store = PostgresStore::connect_with(conninfo, options).await?;
        return Ok((Arc::new(store), Some((conninfo.to_owned(), schema))));
    }
    Err(continuity::Error::config(
        "store",
        format!("`{arg}`: expected memory, sqlite:PATH or postgres:CONNINFO"),
    ))
}

/// Drops the run's schema (its tables with it).
async fn drop_schema(conninfo: &str, schema: &str) -> continuity::Result<()> {
    let fail = |e: tokio_postgres::Error| continuity::Error::config("store", e.to_string());
    let (client, connection) = tokio_postgres::connect(conninfo, tokio_postgres::NoTls)
        .await
        .map_err(fail)?;
    tokio::spawn(connection);
    client
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .map_err(fail)?;
    Ok(())
}
