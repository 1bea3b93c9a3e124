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
//! Arguments: tenants (default 100000), simulated hours (default 24), and
//! the store: `memory` (the default), `sqlite:PATH` (a new file; `Normal`
//! durability, as a fleet would run it) or `postgres:CONNINFO` (tables in a
//! fresh schema `fleet_<pid>`, dropped at the end), e.g.
//! `fleet 10000 24 sqlite:target/fleet.db` or
//! `fleet 1000 6 "postgres:host=127.0.0.1 user=postgres dbname=test"`.
//! Wall time and peak RSS come from `/usr/bin/time -v`; see BENCHMARKS.md.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use chrono::TimeDelta;
use continuity::{
    Direction, ManualClock, Monitor, TenantId,
    config::{ChannelKind, Recipient, TenantConfig},
    link::{LinkKey, LinkSigner},
    memory::InMemoryEventStore,
    notify::{AlertMessage, Notifier, Receipt},
    sim::{SimulatedFlow, SimulatedMailSystem},
    store::EventStore,
    stores::{Durability, PostgresOptions, PostgresStore, SqliteOptions, SqliteStore},
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

#[tokio::main(flavor = "current_thread")]
async fn main() -> continuity::Result<()> {
    let mut args = std::env::args().skip(1);
    let tenants: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let hours: i64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(24);
    let store_arg = args.next().unwrap_or_else(|| "memory".into());
    let (store, schema) = open_store(&store_arg).await?;

    let clock = ManualClock::new("2026-03-02T00:00:00Z".parse().expect("valid time"));
    let mail = Arc::new(SimulatedMailSystem::new(
        Arc::new(clock.clone()),
        Duration::from_secs(30),
    ));
    let sms = Arc::new(CountingNotifier::default());
    let monitor = Monitor::builder()
        .store(store)
        .clock(Arc::new(clock.clone()))
        .probe(Direction::Inbound, mail.clone())
        .probe(Direction::Outbound, mail.clone())
        .notifier(sms.clone())
        .link_signer(LinkSigner::new(LinkKey::new("fleet", [9u8; 32])?))
        .portal_url("https://continuity.example.net/c/")
        .build()?;

    let ids: Vec<TenantId> = (0..tenants)
        .map(|i| TenantId::new(format!("tenant-{i:06}")))
        .collect::<Result<_, _>>()?;
    for id in &ids {
        let config = TenantConfig::new(
            id.clone(),
            vec![Recipient::new("ops", ChannelKind::Sms, "+15550100")],
        );
        monitor.register_tenant(config).await?;
    }
    let unlucky: Vec<&TenantId> = ids.iter().step_by(100).collect();

    let mut totals = continuity::TickReport::default();
    for minute in 0..hours * 60 {
        if minute == 10 * 60 {
            for t in &unlucky {
                mail.set_flow(t, Direction::Outbound, SimulatedFlow::Blackhole);
            }
        }
        if minute == 12 * 60 {
            for t in &unlucky {
                mail.set_flow(
                    t,
                    Direction::Outbound,
                    SimulatedFlow::Latency(Duration::from_secs(30)),
                );
            }
        }
        let now = clock.advance(TimeDelta::minutes(1));
        let r = monitor.tick(now).await?;
        totals.probes_dispatched += r.probes_dispatched;
        totals.probes_arrived += r.probes_arrived;
        totals.probes_lost += r.probes_lost;
        totals.transitions += r.transitions;
        totals.alerts += r.alerts;
        totals.deliveries += r.deliveries;
        if !r.errors.is_empty() {
            eprintln!(
                "minute {minute}: {} errors, first: {}",
                r.errors.len(),
                r.errors[0]
            );
        }
    }

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
        "tenants: {tenants}, simulated hours: {hours}, ticks: {}",
        hours * 60
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
    drop(monitor);
    if let Some((conninfo, schema)) = schema {
        drop_schema(&conninfo, &schema).await?;
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
