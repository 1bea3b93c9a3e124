//! The PostgreSQL schema and its migrations, applied when a store connects.

use continuity_core::cluster::SHARDS;

use super::{BACKEND, PostgresStore};
use crate::codec::{Fail, check_schema};

/// The schema, one migration a step; applied in order on connect, each
/// once, under an advisory lock so that instances starting together do not
/// race. Never edit a released step: add one.
const MIGRATIONS: &[&str] = &[
    r#"
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
"#,
    // 2: `tenant_hint` indexes one monitor's memory, meaningless to any
    // other process or after a restart: no longer stored.
    "ALTER TABLE continuity_probes DROP COLUMN tenant_hint;",
    // 3: what the policies learned (the flow detector's baseline), so that a
    // restart or a take-over does not forget it. Every row is rewritten
    // about once an hour and no indexed column changes: the room a fill
    // factor of 70 leaves on each page lets those updates be HOT (no new
    // index entry; the old version is pruned on the page) instead of
    // bloating the table and its index.
    r#"
CREATE TABLE continuity_baselines (
    tenant     TEXT NOT NULL,
    direction  SMALLINT NOT NULL,
    condition  TEXT NOT NULL,
    saved_at   BIGINT NOT NULL,
    snapshot   BYTEA NOT NULL,
    PRIMARY KEY (tenant, direction, condition)
) WITH (fillfactor = 70);
"#,
    // 4: a claim writes only the lease (no indexed column), so it can be
    // a HOT update, but only with room on the row's page: the rows a claim
    // round takes were put together and share their pages, and one
    // statement cannot prune the versions it has just made dead. Half of
    // each page left free fits a new version of every row: all claims
    // were HOT, against 59 % with a fill factor of 70 and 30 % with none
    // (BENCHMARKS.md). The table holds only the probes in flight, so
    // twice its pages cost little.
    "ALTER TABLE continuity_probes SET (fillfactor = 50);",
    // 5: a probe is inserted and deleted within minutes, so each index it
    // is in costs a write twice. The index by shard goes (a claim for some
    // shards filters them on the due index: the due probes of the other
    // shards are few, as their owners settle them every tick), and the keys
    // compare bytewise (`COLLATE "C"`) instead of through the locale. Bulk
    // inserts took 35 % less time without the index, deletes 30 % less
    // with the bytewise keys (BENCHMARKS.md, "The fleet on real stores").
    r#"
DROP INDEX continuity_probes_shard_due;
ALTER TABLE continuity_probes
    ALTER COLUMN tenant TYPE TEXT COLLATE "C",
    ALTER COLUMN probe_id TYPE TEXT COLLATE "C";
"#,
    // 6: observations an instance made of tenants it does not own, by shard,
    // until the shard's owner takes them (`EventStore::share_observations`).
    // A batch is inserted once and deleted once: no update to keep on its
    // page.
    r#"
CREATE TABLE continuity_shared_observations (
    seq        BIGSERIAL PRIMARY KEY,
    shard      SMALLINT NOT NULL,
    shared_at  BIGINT NOT NULL,
    payload    BYTEA NOT NULL
);
CREATE INDEX continuity_shared_observations_shard ON continuity_shared_observations (shard, seq);
"#,
    // 7: probes leased to their sender as they are put, one row per put
    // (`held.rs`): written twice for a whole batch instead of twice per
    // probe.
    r#"
CREATE TABLE continuity_probe_batches (
    lease_id     BIGINT PRIMARY KEY,
    lease_until  BIGINT NOT NULL,
    probes       TEXT NOT NULL
);
CREATE INDEX continuity_probe_batches_lease_until ON continuity_probe_batches (lease_until);
"#,
    // 8: the payloads of shared observations and held probes are JSON of up
    // to a few MB a tick; LZ4 compresses them for a fraction of the CPU
    // the default (pglz) takes, which halved a 100,000-tenant tick's
    // sharing (BENCHMARKS.md, "Sharing observations"). A server built
    // without LZ4 keeps the default.
    r#"
DO $$
BEGIN
    ALTER TABLE continuity_shared_observations ALTER COLUMN payload SET COMPRESSION lz4;
    ALTER TABLE continuity_probe_batches ALTER COLUMN probes SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
    RAISE NOTICE 'LZ4 is not available: the payloads keep the default compression';
END
$$;
"#,
    // 9: retention (`EventStore::prune`). Audit records get their time as a
    // column, indexed, so pruning does not parse every entry; existing
    // rows take it from their JSON. Dead letters are found by an index of
    // their own.
    r#"
ALTER TABLE continuity_audit ADD COLUMN at BIGINT;
UPDATE continuity_audit
    SET at = (EXTRACT(EPOCH FROM (entry::jsonb ->> 'at')::timestamptz) * 1000000)::bigint;
ALTER TABLE continuity_audit ALTER COLUMN at SET NOT NULL;
CREATE INDEX continuity_audit_at ON continuity_audit (at);
CREATE INDEX continuity_outbox_dead ON continuity_outbox (created_at) WHERE dead;
"#,
];

impl PostgresStore {
    pub(super) async fn migrate(&self) -> Result<(), Fail> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // One migrator per schema at a time; the lock ends with the transaction.
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext('continuity-migrate:' || $1))",
            &[&self.schema],
        )
        .await?;
        tx.batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {schema};
             CREATE TABLE IF NOT EXISTS {schema}.continuity_meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL);",
            schema = self.schema
        ))
        .await?;
        let found: i64 = tx
            .query_opt(
                "SELECT value FROM continuity_meta WHERE key = 'schema_version'",
                &[],
            )
            .await?
            .map_or(0, |r| r.get(0));
        check_schema(BACKEND, found, MIGRATIONS.len())?;
        let applied = usize::try_from(found).unwrap_or(0);
        for step in &MIGRATIONS[applied..] {
            tx.batch_execute(step).await?;
        }
        tx.execute(
            "INSERT INTO continuity_meta (key, value) VALUES ('schema_version', $1)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            &[&i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX)],
        )
        .await?;
        tx.execute(
            "INSERT INTO continuity_shards (shard) SELECT generate_series(0, $1 - 1)
             ON CONFLICT (shard) DO NOTHING",
            &[&i32::from(SHARDS)],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
