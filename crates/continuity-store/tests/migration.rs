//! Databases written by an earlier schema are migrated when a store opens
//! them, keep their data, and gain what later steps add (the baselines
//! table of step 3; in PostgreSQL, the probe table's fill factor of step 4).
//!
//! PostgreSQL is found at `CONTINUITY_TEST_PG` (default
//! `host=127.0.0.1 port=5432 user=postgres dbname=test`); a missing server
//! fails these tests.

mod common;

use std::time::Duration;

use chrono::{DateTime, Utc};
use continuity_core::{
    Direction, TenantId,
    cluster::{ShardSet, shard_of},
    store::{BaselineRecord, EventStore, PendingProbe, PruneBefore},
};
use continuity_store::{PostgresOptions, PostgresStore, SqliteStore};

/// Schema version 1 of the SQLite store, as released (it stored
/// `tenant_hint`). The meta table is the store's own bookkeeping.
const SQLITE_V1: &str = r#"
CREATE TABLE continuity_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE continuity_tenants (
    tenant   TEXT PRIMARY KEY,
    version  INTEGER NOT NULL,
    state    TEXT NOT NULL
);
CREATE TABLE continuity_audit (
    tenant  TEXT NOT NULL,
    seq     INTEGER NOT NULL,
    entry   TEXT NOT NULL,
    PRIMARY KEY (tenant, seq)
);
CREATE TABLE continuity_outbox (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant           TEXT NOT NULL,
    order_key        TEXT NOT NULL,
    item             TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    lease_id         INTEGER NOT NULL DEFAULT 0,
    lease_until      INTEGER,
    due_at           INTEGER NOT NULL,
    last_error       TEXT,
    dead             INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX continuity_outbox_due ON continuity_outbox (due_at) WHERE dead = 0;
CREATE INDEX continuity_outbox_key ON continuity_outbox (order_key, id) WHERE dead = 0;
CREATE TABLE continuity_probes (
    tenant         TEXT NOT NULL,
    probe_id       TEXT NOT NULL,
    direction      INTEGER NOT NULL,
    sent_at        INTEGER NOT NULL,
    deadline       INTEGER NOT NULL,
    next_check_at  INTEGER NOT NULL,
    ticket         TEXT NOT NULL,
    lease_id       INTEGER NOT NULL DEFAULT 0,
    lease_until    INTEGER,
    due_at         INTEGER NOT NULL,
    tenant_hint    INTEGER NOT NULL DEFAULT 0,
    shard          INTEGER NOT NULL,
    PRIMARY KEY (tenant, probe_id)
);
CREATE INDEX continuity_probes_due ON continuity_probes (due_at);
CREATE INDEX continuity_probes_shard_due ON continuity_probes (shard, due_at);
CREATE TABLE continuity_instances (
    instance     TEXT PRIMARY KEY,
    alive_until  INTEGER NOT NULL
);
CREATE TABLE continuity_shards (
    shard        INTEGER PRIMARY KEY,
    owner        TEXT,
    lease_until  INTEGER NOT NULL DEFAULT 0
);
INSERT INTO continuity_meta (key, value) VALUES ('lease_seq', 0);
INSERT INTO continuity_meta (key, value) VALUES ('schema_version', 1);
"#;

/// Schema version 1 of the PostgreSQL store, as released.
const POSTGRES_V1: &str = r#"
CREATE TABLE continuity_meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL);
CREATE TABLE continuity_tenants (
    tenant   TEXT PRIMARY KEY,
    version  BIGINT NOT NULL,
    state    TEXT NOT NULL
);
CREATE TABLE continuity_audit (
    tenant  TEXT NOT NULL,
    seq     BIGINT NOT NULL,
    entry   TEXT NOT NULL,
    PRIMARY KEY (tenant, seq)
);
CREATE TABLE continuity_outbox (
    id               BIGSERIAL PRIMARY KEY,
    tenant           TEXT NOT NULL,
    order_key        TEXT NOT NULL,
    item             TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL,
    lease_id         BIGINT NOT NULL DEFAULT 0,
    lease_until      BIGINT,
    due_at           BIGINT NOT NULL,
    last_error       TEXT,
    dead             BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX continuity_outbox_due ON continuity_outbox (due_at) WHERE NOT dead;
CREATE INDEX continuity_outbox_key ON continuity_outbox (order_key, id) WHERE NOT dead;
CREATE TABLE continuity_probes (
    tenant         TEXT NOT NULL,
    probe_id       TEXT NOT NULL,
    direction      SMALLINT NOT NULL,
    sent_at        BIGINT NOT NULL,
    deadline       BIGINT NOT NULL,
    next_check_at  BIGINT NOT NULL,
    ticket         TEXT NOT NULL,
    lease_id       BIGINT NOT NULL DEFAULT 0,
    lease_until    BIGINT,
    due_at         BIGINT NOT NULL,
    tenant_hint    BIGINT NOT NULL DEFAULT 0,
    shard          INTEGER NOT NULL,
    PRIMARY KEY (tenant, probe_id)
);
CREATE INDEX continuity_probes_due ON continuity_probes (due_at);
CREATE INDEX continuity_probes_shard_due ON continuity_probes (shard, due_at);
CREATE TABLE continuity_instances (
    instance     TEXT PRIMARY KEY,
    alive_until  BIGINT NOT NULL
);
CREATE TABLE continuity_shards (
    shard        INTEGER PRIMARY KEY,
    owner        TEXT,
    lease_until  BIGINT NOT NULL DEFAULT 0
);
CREATE SEQUENCE continuity_lease_seq;
INSERT INTO continuity_meta (key, value) VALUES ('schema_version', 1);
"#;

/// A probe as version 1 stored it, with a tenant hint of 5, due at `due`.
fn v1_probe_row(tenant: &TenantId, id: &str, due: DateTime<Utc>) -> String {
    let (sent, deadline, due) = (
        due.timestamp_micros() - 60_000_000,
        due.timestamp_micros() + 1_800_000_000,
        due.timestamp_micros(),
    );
    format!(
        "INSERT INTO continuity_probes
           (tenant, probe_id, direction, sent_at, deadline, next_check_at, ticket, lease_id, lease_until, due_at, tenant_hint, shard)
         VALUES ('{tenant}', '{id}', 1, {sent}, {deadline}, {due}, 'ticket-{id}', 0, NULL, {due}, 5, {shard});",
        shard = shard_of(tenant)
    )
}

/// Two audit records as every schema before retention stored them (no time
/// column): one of January, one of March with a fractional second.
fn v1_audit_rows(tenant: &TenantId) -> String {
    let row = |seq: u32, at: &str| {
        let entry = continuity_core::machine::AuditEntry {
            at: at.parse().unwrap(),
            actor: continuity_core::machine::Actor::System,
            action: format!("test.{seq}"),
            before: String::new(),
            after: String::new(),
        };
        format!(
            "INSERT INTO continuity_audit (tenant, seq, entry) VALUES ('{tenant}', {seq}, '{}');",
            serde_json::to_string(&entry).unwrap()
        )
    };
    row(1, "2026-01-01T00:00:00Z") + &row(2, "2026-03-01T12:00:00.5Z")
}

/// The records written before the time column got their time from their
/// entry: a cutoff between them prunes the first (the second is the
/// tenant's latest, kept anyway: another cutoff before it checks its time).
async fn audit_is_dated(store: &dyn EventStore, tenant: &TenantId) {
    let cutoff = |at: &str| PruneBefore {
        audit: at.parse().unwrap(),
        dead_letters: DateTime::<Utc>::MIN_UTC,
        instances: DateTime::<Utc>::MIN_UTC,
    };
    let kept = store
        .prune(&cutoff("2025-12-31T23:59:59Z"))
        .await
        .expect("prune");
    assert_eq!(kept.audit, 0, "nothing is older than its time");
    let pruned = store
        .prune(&cutoff("2026-01-01T00:00:01Z"))
        .await
        .expect("prune");
    assert_eq!(pruned.audit, 1, "the January record, dated from its JSON");
    let left: Vec<u64> = store
        .audit_log(tenant, 0, 10)
        .await
        .unwrap()
        .iter()
        .map(|r| r.seq)
        .collect();
    assert_eq!(left, [2]);
}

fn due() -> DateTime<Utc> {
    "2030-01-01T00:00:00Z".parse().unwrap()
}

/// The probes survived: claimed with their fields, the hint read back as
/// "no hint"; they settle, and new ones are stored.
async fn probes_survive(store: &dyn EventStore, tenant: &TenantId) {
    let claimed = store
        .claim_probes(due(), Duration::from_secs(60), 10, &ShardSet::ALL)
        .await
        .expect("claim");
    let mut ids: Vec<&str> = claimed.iter().map(|p| &*p.probe_id).collect();
    ids.sort_unstable();
    assert_eq!(ids, vec!["p1", "p2"]);
    for p in &claimed {
        assert_eq!(&p.tenant, tenant);
        assert_eq!(p.direction, Direction::Outbound);
        assert_eq!(p.ticket.as_str(), format!("ticket-{}", p.probe_id));
        assert_eq!(p.next_check_at, due());
        assert_eq!(p.tenant_hint, 0, "the hint is no longer stored");
    }
    store
        .remove_probe(tenant, &claimed[0].probe_id, claimed[0].lease_id)
        .await
        .expect("remove");
    store
        .reschedule_probe(
            tenant,
            &claimed[1].probe_id,
            claimed[1].lease_id,
            due() + Duration::from_secs(600),
        )
        .await
        .expect("reschedule");
    store
        .put_probe(PendingProbe {
            tenant: tenant.clone(),
            direction: Direction::Inbound,
            probe_id: "p3".into(),
            sent_at: due(),
            deadline: due() + Duration::from_secs(1800),
            next_check_at: due() + Duration::from_secs(600),
            ticket: continuity_core::probe::ProbeTicket::new("ticket-p3"),
            lease_id: 0,
            tenant_hint: 9,
        })
        .await
        .expect("put");
    let later = store
        .claim_probes(
            due() + Duration::from_secs(600),
            Duration::from_secs(60),
            10,
            &ShardSet::ALL,
        )
        .await
        .expect("claim");
    let mut ids: Vec<&str> = later.iter().map(|p| &*p.probe_id).collect();
    ids.sort_unstable();
    assert_eq!(ids, vec![&*claimed[1].probe_id, "p3"]);
    assert!(later.iter().all(|p| p.tenant_hint == 0));
}

/// The baselines table of step 3 is there and keeps a record per tenant,
/// direction and condition.
async fn baselines_are_kept(store: &dyn EventStore, tenant: &TenantId) {
    assert!(store.load_baselines(tenant).await.expect("load").is_empty());
    let record = |secs: i64, snapshot: Vec<u8>| BaselineRecord {
        tenant: tenant.clone(),
        direction: Direction::Outbound,
        condition: "flow".into(),
        saved_at: due() + Duration::from_secs(secs as u64),
        snapshot,
    };
    store
        .save_baselines(&[record(0, vec![1; 217])])
        .await
        .expect("save");
    store
        .save_baselines(&[record(3600, vec![2; 217])])
        .await
        .expect("save again");
    assert_eq!(
        store.load_baselines(tenant).await.expect("load"),
        vec![record(3600, vec![2; 217])]
    );
}

/// The storage options (`WITH (…)`) of `table` in `schema`.
async fn reloptions(
    client: &tokio_postgres::Client,
    schema: &str,
    table: &str,
) -> Option<Vec<String>> {
    client
        .query_one(
            "SELECT c.reloptions FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = $1 AND c.relname = $2",
            &[&schema, &table],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_file_of_schema_1_is_migrated_and_keeps_its_probes() {
    let dir = common::TempDir::new("migrate-v1");
    let path = dir.path().join("v1.db");
    let tenant = TenantId::new("acme").unwrap();
    common::sqlite_exec(
        &path,
        &format!(
            "{SQLITE_V1}{}{}{}",
            v1_probe_row(&tenant, "p1", due()),
            v1_probe_row(&tenant, "p2", due()),
            v1_audit_rows(&tenant)
        ),
    );

    let store = SqliteStore::open(&path).await.expect("open migrates");
    let c = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = c
        .query_row(
            "SELECT value FROM continuity_meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    // Step 6 (retention) is this branch's; renumber at merge if main moved.
    assert_eq!(version, 6);
    let (without_rowid, shard_index): (i64, i64) = c
        .query_row(
            "SELECT
               (SELECT COUNT(*) FROM sqlite_schema
                WHERE name = 'continuity_probes' AND sql LIKE '%WITHOUT ROWID%'),
               (SELECT COUNT(*) FROM sqlite_schema WHERE name = 'continuity_probes_shard_due')",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        (without_rowid, shard_index),
        (1, 0),
        "probes keyed without a rowid, no index by shard"
    );
    let hint_columns: i64 = c
        .query_row(
            "SELECT COUNT(*) FROM pragma_table_info('continuity_probes') WHERE name = 'tenant_hint'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(hint_columns, 0, "the column is dropped");
    drop(c);
    probes_survive(&store, &tenant).await;
    baselines_are_kept(&store, &tenant).await;
    audit_is_dated(&store, &tenant).await;

    drop(store);
    SqliteStore::open(&path)
        .await
        .expect("a migrated file reopens");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_schema_of_version_1_is_migrated_and_keeps_its_probes() {
    let schema = format!(
        "t_migrate_v1_{}_{}",
        std::process::id(),
        std::time::SystemTime::UNIX_EPOCH
            .elapsed()
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
    );
    let (client, conn) = tokio_postgres::connect(&common::pg_url(), tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL is needed for this test");
    tokio::spawn(conn);
    let tenant = TenantId::new("acme").unwrap();
    client
        .batch_execute(&format!(
            "CREATE SCHEMA {schema}; SET search_path = {schema};{POSTGRES_V1}{}{}{}",
            v1_probe_row(&tenant, "p1", due()),
            v1_probe_row(&tenant, "p2", due()),
            v1_audit_rows(&tenant)
        ))
        .await
        .expect("schema 1");

    let options = PostgresOptions {
        schema: schema.clone(),
        ..Default::default()
    };
    let store = PostgresStore::connect_with(&common::pg_url(), options.clone())
        .await
        .expect("connect migrates");
    let version: i64 = client
        .query_one(
            "SELECT value FROM continuity_meta WHERE key = 'schema_version'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(version, 9);
    // The payload columns compress with LZ4 where the server has it (the
    // test server does: `SHOW default_toast_compression` accepts lz4).
    let lz4_available = client
        .batch_execute("SET LOCAL default_toast_compression = lz4")
        .await
        .is_ok();
    let lz4_columns: i64 = client
        .query_one(
            "SELECT COUNT(*) FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = $1 AND a.attcompression = 'l'
               AND (c.relname, a.attname) IN (('continuity_shared_observations', 'payload'),
                                              ('continuity_probe_batches', 'probes'))",
            &[&schema],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(lz4_columns, if lz4_available { 2 } else { 0 });
    let (shard_index, bytewise_keys): (i64, i64) = {
        let r = client
            .query_one(
                "SELECT
                   (SELECT COUNT(*) FROM pg_indexes
                    WHERE schemaname = $1 AND indexname = 'continuity_probes_shard_due'),
                   (SELECT COUNT(*) FROM information_schema.columns
                    WHERE table_schema = $1 AND table_name = 'continuity_probes'
                      AND column_name IN ('tenant', 'probe_id') AND collation_name = 'C')",
                &[&schema],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(
        (shard_index, bytewise_keys),
        (0, 2),
        "no index by shard, keys compared bytewise"
    );
    let hint_columns: i64 = client
        .query_one(
            "SELECT COUNT(*) FROM information_schema.columns
             WHERE table_schema = $1 AND table_name = 'continuity_probes' AND column_name = 'tenant_hint'",
            &[&schema],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(hint_columns, 0, "the column is dropped");
    probes_survive(&store, &tenant).await;
    baselines_are_kept(&store, &tenant).await;
    audit_is_dated(&store, &tenant).await;
    assert_eq!(
        reloptions(&client, &schema, "continuity_baselines").await,
        Some(vec!["fillfactor=70".to_string()]),
        "room on each page for the hourly updates"
    );
    assert_eq!(
        reloptions(&client, &schema, "continuity_probes").await,
        Some(vec!["fillfactor=50".to_string()]),
        "room on each page for a claim of every probe"
    );

    PostgresStore::connect_with(&common::pg_url(), options)
        .await
        .expect("a migrated schema connects again");
    store.drop_schema().await.expect("drop schema");
}
