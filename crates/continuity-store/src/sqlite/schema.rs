//! The SQLite schema and its migrations, applied when a store opens.

use continuity_core::cluster::SHARDS;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use super::BACKEND;
use crate::codec::{Fail, check_schema};

/// The schema, one migration a step; applied in order on open, each once.
/// Never edit a released step: add one.
const MIGRATIONS: &[&str] = &[
    r#"
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
"#,
    // 2: `tenant_hint` indexes one monitor's memory, meaningless to any
    // other process or after a restart: no longer stored.
    "ALTER TABLE continuity_probes DROP COLUMN tenant_hint;",
    // 3: what the policies learned (the flow detector's baseline), so that a
    // restart does not forget it. Small rows, one key: no rowid b-tree.
    r#"
CREATE TABLE continuity_baselines (
    tenant     TEXT NOT NULL,
    direction  INTEGER NOT NULL,
    condition  TEXT NOT NULL,
    saved_at   INTEGER NOT NULL,
    snapshot   BLOB NOT NULL,
    PRIMARY KEY (tenant, direction, condition)
) WITHOUT ROWID;
"#,
    // Pending probes keyed by their primary key alone (no rowid b-tree),
    // and without the index by shard: the claim filters shards on the due
    // index. A probe is inserted, claimed and removed within minutes, so
    // every b-tree it lives in costs a write three times; this step made a
    // fleet's day on SQLite faster (BENCHMARKS.md, "The fleet on real
    // stores").
    r#"
CREATE TABLE continuity_probes_keyed (
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
    shard          INTEGER NOT NULL,
    PRIMARY KEY (tenant, probe_id)
) WITHOUT ROWID;
INSERT INTO continuity_probes_keyed
    (tenant, probe_id, direction, sent_at, deadline, next_check_at, ticket, lease_id, lease_until, due_at, shard)
    SELECT tenant, probe_id, direction, sent_at, deadline, next_check_at, ticket, lease_id, lease_until, due_at, shard
    FROM continuity_probes;
DROP TABLE continuity_probes;
ALTER TABLE continuity_probes_keyed RENAME TO continuity_probes;
CREATE INDEX continuity_probes_due ON continuity_probes (due_at);
"#,
    // 5: observations an instance made of tenants it does not own, by shard,
    // until the shard's owner takes them (`EventStore::share_observations`).
    r#"
CREATE TABLE continuity_shared_observations (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    shard      INTEGER NOT NULL,
    shared_at  INTEGER NOT NULL,
    payload    BLOB NOT NULL
);
CREATE INDEX continuity_shared_observations_shard ON continuity_shared_observations (shard, seq);
"#,
    // 6: retention (`EventStore::prune`). Audit records get their time as a
    // column, indexed, so pruning does not parse every entry; existing
    // rows take it from their JSON (a row whose time cannot be read is
    // never pruned). Dead letters are found by an index of their own.
    r#"
ALTER TABLE continuity_audit ADD COLUMN at INTEGER NOT NULL DEFAULT 0;
UPDATE continuity_audit SET at = COALESCE(
    CAST((julianday(json_extract(entry, '$.at')) - 2440587.5) * 86400000000.0 AS INTEGER),
    9223372036854775807);
CREATE INDEX continuity_audit_at ON continuity_audit (at);
CREATE INDEX continuity_outbox_dead ON continuity_outbox (created_at) WHERE dead = 1;
"#,
];

pub(super) fn migrate(conn: &mut Connection) -> Result<(), Fail> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS continuity_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    )?;
    let found: i64 = tx
        .query_row(
            "SELECT value FROM continuity_meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(0);
    check_schema(BACKEND, found, MIGRATIONS.len())?;
    let applied = usize::try_from(found).unwrap_or(0);
    for step in &MIGRATIONS[applied..] {
        tx.execute_batch(step)?;
    }
    tx.execute(
        "INSERT INTO continuity_meta (key, value) VALUES ('schema_version', ?1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX)],
    )?;
    {
        let mut shard =
            tx.prepare("INSERT OR IGNORE INTO continuity_shards (shard) VALUES (?1)")?;
        for s in 0..SHARDS {
            shard.execute([i64::from(s)])?;
        }
    }
    tx.commit()?;
    Ok(())
}
