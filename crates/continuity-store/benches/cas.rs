//! Compare-and-swap transitions per second: SQLite (durable and normal
//! sync) and PostgreSQL, with one and with several writers.
//!
//! A transition is what the engine commits when an alert goes out: the
//! tenant's new state, one audit entry and one outbox item, against the
//! version read before. Several writers work on tenants of their own, as
//! the instances of a fleet do; each measured iteration is one commit per
//! writer, all at once.
//!
//! PostgreSQL comes from `CONTINUITY_TEST_PG` (default: the local server,
//! database `test`). Run: `cargo bench -p continuity-store --bench cas`.
#![allow(missing_docs)]

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use chrono::{DateTime, Utc};
use continuity_core::{
    TenantId,
    machine::{Actor, AuditEntry, TenantState},
    store::{Commit, EventStore},
};
use continuity_store::{Durability, PostgresOptions, PostgresStore, SqliteOptions, SqliteStore};
use continuity_test_support::{
    TempDir,
    postgres::{pg_url, unique_schema},
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// One writer: a tenant and the version it last wrote.
struct Writer {
    tenant: TenantId,
    version: AtomicU64,
}

fn transition(version: u64) -> Commit {
    let at: DateTime<Utc> = "2030-01-01T00:00:00Z".parse().expect("time");
    Commit {
        state: TenantState {
            next_alert_id: version + 1,
            ..TenantState::default()
        },
        at,
        audit: vec![AuditEntry {
            at,
            actor: Actor::System,
            action: "bench.transition".into(),
            before: format!("v{version}"),
            after: format!("v{}", version + 1),
        }],
        outbox: Vec::new(),
    }
}

async fn step(store: &dyn EventStore, w: &Writer) {
    let expected = w.version.load(Ordering::Relaxed);
    let v = store
        .commit(&w.tenant, expected, transition(expected))
        .await
        .expect("commit");
    w.version.store(v, Ordering::Relaxed);
}

fn writers(label: &str, n: usize) -> Vec<Arc<Writer>> {
    (0..n)
        .map(|i| {
            Arc::new(Writer {
                tenant: TenantId::new(format!("bench-{label}-{}-{i}", std::process::id()))
                    .expect("tenant"),
                version: AtomicU64::new(0),
            })
        })
        .collect()
}

fn bench_store(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    name: &str,
    store: Arc<dyn EventStore>,
) {
    let mut group = c.benchmark_group(format!("cas/{name}"));
    for n in [1usize, 4] {
        let ws = writers(&format!("{name}-{n}"), n);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(format!("{n}_writers"), |b| {
            b.to_async(rt).iter(|| {
                let store = store.clone();
                let ws = ws.clone();
                async move {
                    let tasks: Vec<_> = ws
                        .iter()
                        .map(|w| {
                            let (store, w) = (store.clone(), w.clone());
                            tokio::spawn(async move { step(store.as_ref(), &w).await })
                        })
                        .collect();
                    for t in tasks {
                        t.await.expect("writer");
                    }
                }
            })
        });
    }
    group.finish();
}

fn cas(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let tmp = TempDir::new("bench");
    let dir = tmp.path();
    for (label, durability) in [
        ("sqlite_full", Durability::Full),
        ("sqlite_normal", Durability::Normal),
    ] {
        let store = rt
            .block_on(SqliteStore::open_with(
                dir.join(format!("{label}.db")),
                SqliteOptions {
                    durability,
                    ..Default::default()
                },
            ))
            .expect("sqlite");
        bench_store(c, &rt, label, Arc::new(store));
    }
    let url = pg_url();
    let schema = unique_schema("bench");
    let pg = rt
        .block_on(PostgresStore::connect_with(
            &url,
            PostgresOptions {
                schema,
                ..Default::default()
            },
        ))
        .expect("PostgreSQL (CONTINUITY_TEST_PG) is needed for this benchmark");
    bench_store(c, &rt, "postgres", Arc::new(pg.clone()));
    rt.block_on(pg.drop_schema()).expect("drop schema");
}

criterion_group!(benches, cas);
criterion_main!(benches);
