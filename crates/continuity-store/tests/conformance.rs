//! The core's `EventStore` conformance suite, run against the SQLite and
//! PostgreSQL stores (the in-memory store runs it in `continuity-core`).
//!
//! PostgreSQL is found at `CONTINUITY_TEST_PG` (default
//! `host=127.0.0.1 port=5432 user=postgres dbname=test`); a missing server
//! fails these tests.

mod common;

use continuity_core::{
    TenantId,
    store::{Commit, EventStore},
    testing::conformance,
};
use continuity_store::{SqliteStore, StoreError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_passes_the_conformance_suite() {
    let dir = common::TempDir::new("conformance");
    let store = SqliteStore::open(dir.path().join("c.db"))
        .await
        .expect("open");
    conformance::event_store_all(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_passes_the_conformance_suite() {
    let pg = common::PgSchema::new("conformance").await;
    conformance::event_store_all(&pg.store).await;
    pg.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boxed_durable_stores_pass_too() {
    let dir = common::TempDir::new("boxed");
    let boxed: Box<dyn EventStore> = Box::new(
        SqliteStore::open(dir.path().join("b.db"))
            .await
            .expect("open"),
    );
    conformance::event_store_all(&boxed).await;
    let pg = common::PgSchema::new("boxed").await;
    let shared: std::sync::Arc<dyn EventStore> = std::sync::Arc::new(pg.store.clone());
    conformance::event_store_all(&shared).await;
    pg.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_state_survives_reopening() {
    let dir = common::TempDir::new("reopen");
    let path = dir.path().join("r.db");
    let t = TenantId::new("reopen").unwrap();
    {
        let store = SqliteStore::open(&path).await.expect("open");
        store
            .commit(&t, 0, Commit::default())
            .await
            .expect("commit");
        store
            .commit(&t, 1, Commit::default())
            .await
            .expect("commit");
    }
    let store = SqliteStore::open(&path).await.expect("reopen");
    assert_eq!(store.load(&t).await.unwrap().unwrap().version, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_sqlite_file_is_a_typed_error() {
    let dir = common::TempDir::new("corrupt");
    let path = dir.path().join("garbage.db");
    std::fs::write(&path, vec![0x5a_u8; 8192]).unwrap();
    match SqliteStore::open(&path).await {
        Err(e @ StoreError::Corrupt { .. }) => {
            assert!(!e.is_retryable());
            assert!(e.to_string().contains("garbage.db"), "{e}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // A real database whose pages were overwritten after the header.
    let path = dir.path().join("damaged.db");
    {
        let store = SqliteStore::open(&path).await.expect("open");
        let t = TenantId::new("damaged").unwrap();
        store
            .commit(&t, 0, Commit::default())
            .await
            .expect("commit");
    }
    std::fs::remove_file(dir.path().join("damaged.db-wal")).ok();
    std::fs::remove_file(dir.path().join("damaged.db-shm")).ok();
    let mut bytes = std::fs::read(&path).unwrap();
    for b in bytes.iter_mut().skip(100) {
        *b = 0xa5;
    }
    std::fs::write(&path, bytes).unwrap();
    let err = match SqliteStore::open(&path).await {
        Err(e) => e,
        Ok(store) => {
            let t = TenantId::new("damaged").unwrap();
            let err = store
                .load(&t)
                .await
                .expect_err("a damaged file cannot be read");
            assert!(err.to_string().contains("damaged.db"), "{err}");
            return;
        }
    };
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_directory_is_a_permanent_configuration_error() {
    let dir = common::TempDir::new("missing-dir");
    let path = dir.path().join("not-made").join("state.db");
    match SqliteStore::open(&path).await {
        Err(e @ StoreError::Config(_)) => {
            let text = e.to_string();
            assert!(
                text.contains("not-made") && text.contains("does not exist"),
                "{text}"
            );
            assert!(!continuity_core::Error::from(e).is_retryable());
        }
        other => panic!("expected Config, got {other:?}"),
    }
    // A file where the directory should be.
    std::fs::write(dir.path().join("a-file"), b"").unwrap();
    match SqliteStore::open(dir.path().join("a-file").join("state.db")).await {
        Err(e @ StoreError::Config(_)) => {
            assert!(e.to_string().contains("is not a directory"), "{e}");
        }
        other => panic!("expected Config, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_from_a_newer_build_is_refused() {
    let dir = common::TempDir::new("newer");
    let path = dir.path().join("n.db");
    drop(SqliteStore::open(&path).await.expect("open"));
    common::sqlite_exec(
        &path,
        "UPDATE continuity_meta SET value = 999 WHERE key = 'schema_version'",
    );
    match SqliteStore::open(&path).await {
        Err(e @ StoreError::SchemaTooNew { found: 999, .. }) => {
            assert!(e.to_string().contains("upgrade continuity-store"), "{e}")
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }

    let pg = common::PgSchema::new("newer").await;
    pg.exec("UPDATE continuity_meta SET value = 999 WHERE key = 'schema_version'")
        .await;
    match continuity_store::PostgresStore::connect_with(&common::pg_url(), pg.options()).await {
        Err(StoreError::SchemaTooNew { found: 999, .. }) => {}
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
    pg.exec("UPDATE continuity_meta SET value = 1 WHERE key = 'schema_version'")
        .await;
    pg.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_postgres_is_a_retryable_typed_error() {
    // A port nobody listens on: bind one, note it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("host=127.0.0.1 port={port} user=postgres password=hunter2 dbname=test");
    let options = continuity_store::PostgresOptions {
        connect_timeout: std::time::Duration::from_secs(2),
        ..Default::default()
    };
    match continuity_store::PostgresStore::connect_with(&url, options).await {
        Err(e @ StoreError::Unavailable { .. }) => {
            assert!(e.is_retryable());
            assert!(!e.to_string().contains("hunter2"), "no password in {e}");
            let core: continuity_core::Error = e.into();
            assert!(core.is_retryable());
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_postgres_options_are_refused() {
    let options = continuity_store::PostgresOptions {
        schema: "Robert'); DROP TABLE students;--".into(),
        ..Default::default()
    };
    assert!(matches!(
        continuity_store::PostgresStore::connect_with(&common::pg_url(), options).await,
        Err(StoreError::Config(_))
    ));
    assert!(matches!(
        continuity_store::PostgresStore::connect("postgres://[not a url").await,
        Err(StoreError::Config(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_migrating_at_once_agree() {
    let pg = common::PgSchema::new("race").await;
    let url = common::pg_url();
    let schema = format!("{}_fresh", pg.store.schema());
    let mut joins = Vec::new();
    for _ in 0..4 {
        let url = url.clone();
        let options = continuity_store::PostgresOptions {
            schema: schema.clone(),
            ..Default::default()
        };
        joins.push(tokio::spawn(async move {
            continuity_store::PostgresStore::connect_with(&url, options).await
        }));
    }
    let mut stores = Vec::new();
    for j in joins {
        stores.push(j.await.unwrap().expect("every instance opens the store"));
    }
    let t = TenantId::new("race").unwrap();
    stores[0].commit(&t, 0, Commit::default()).await.unwrap();
    assert_eq!(stores[3].load(&t).await.unwrap().unwrap().version, 1);
    stores.pop().unwrap().drop_schema().await.unwrap();
    pg.drop().await;
}

/// The durable stores lease probes to the instance that stores them (the
/// conformance suite accepts a store that does not), through a box as well.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_stores_lease_probes_as_they_store_them() {
    use continuity_core::{Direction, probe::ProbeTicket, store::PendingProbe};
    let probe = || PendingProbe {
        tenant: TenantId::new("held").expect("id"),
        direction: Direction::Outbound,
        probe_id: "ou-1".into(),
        sent_at: chrono::DateTime::UNIX_EPOCH,
        deadline: chrono::DateTime::UNIX_EPOCH + chrono::TimeDelta::minutes(30),
        next_check_at: chrono::DateTime::UNIX_EPOCH + chrono::TimeDelta::minutes(1),
        ticket: ProbeTicket::new("t"),
        lease_id: 0,
        tenant_hint: 0,
    };
    let lease = std::time::Duration::from_secs(120);
    let dir = common::TempDir::new("held");
    let sqlite: Box<dyn EventStore> = Box::new(
        SqliteStore::open(dir.path().join("h.db"))
            .await
            .expect("open"),
    );
    let pg = common::PgSchema::new("held").await;
    let postgres: std::sync::Arc<dyn EventStore> = std::sync::Arc::new(pg.store.clone());
    for (name, store) in [("sqlite", &*sqlite), ("postgres", &*postgres)] {
        let mut batch = vec![probe()];
        store
            .put_probes_leased(&mut batch, lease)
            .await
            .expect("put");
        assert_eq!(batch.len(), 1, "{name}: held");
        assert_ne!(batch[0].lease_id, 0, "{name}: leased");
    }
    pg.drop().await;
}

/// Shares 200 batches, then lets `takers` stores take them concurrently in
/// small bites: every batch reaches exactly one taker.
async fn takers_share_out_every_batch_once(takers: Vec<std::sync::Arc<dyn EventStore>>) {
    use continuity_core::{cluster::ShardSet, store::SharedObservations};
    let t0: chrono::DateTime<chrono::Utc> = "2030-01-01T00:00:00Z".parse().unwrap();
    let shared: Vec<SharedObservations> = (0..200u32)
        .map(|i| SharedObservations {
            shard: (i % 3) as u16,
            shared_at: t0 + chrono::TimeDelta::seconds(i64::from(i)),
            payload: i.to_be_bytes().to_vec(),
        })
        .collect();
    takers[0].share_observations(&shared).await.expect("share");
    let mut set = ShardSet::EMPTY;
    for s in 0..3 {
        set.insert(s);
    }
    let tasks: Vec<_> = takers
        .into_iter()
        .map(|store| {
            tokio::spawn(async move {
                let mut got = Vec::new();
                loop {
                    let batch = store.take_shared_observations(&set, 4).await.expect("take");
                    if batch.is_empty() {
                        return got;
                    }
                    got.extend(batch);
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("taker"));
    }
    all.sort_by_key(|b| b.shared_at);
    assert_eq!(all, shared, "every batch taken, and taken once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_taking_shared_observations_at_once_never_get_the_same_batch() {
    let dir = common::TempDir::new("shared_takers");
    let path = dir.path().join("s.db");
    let mut sqlite: Vec<std::sync::Arc<dyn EventStore>> = Vec::new();
    for _ in 0..3 {
        sqlite.push(std::sync::Arc::new(
            SqliteStore::open(&path).await.expect("open"),
        ));
    }
    takers_share_out_every_batch_once(sqlite).await;

    let pg = common::PgSchema::new("shared_takers").await;
    let mut postgres: Vec<std::sync::Arc<dyn EventStore>> = Vec::new();
    for _ in 0..3 {
        postgres.push(std::sync::Arc::new(
            continuity_store::PostgresStore::connect_with(&common::pg_url(), pg.options())
                .await
                .expect("connect"),
        ));
    }
    takers_share_out_every_batch_once(postgres).await;
    pg.drop().await;
}
