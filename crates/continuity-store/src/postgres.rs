//! The PostgreSQL store: for several instances of the embedding service.
//!
//! Compare-and-swap is a conditional `UPDATE … WHERE version = $expected`
//! in the same transaction as the audit and outbox inserts. Outbox entries
//! and probes are claimed with `FOR UPDATE SKIP LOCKED`, so instances that
//! claim at once never get the same item, and a claimer never waits for
//! another's lock. Lease ids come from one sequence, so a lease id is never
//! handed out twice.
//!
//! Every table lives in the schema named by [`PostgresOptions::schema`]
//! (created if missing), which lets several deployments, or tests, share one
//! database. Connections go through a pool (`deadpool-postgres`) without TLS;
//! reach a remote server through a TLS tunnel or a local socket until TLS
//! support lands here.

use std::{collections::HashSet, time::Duration};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use continuity_core::{
    TenantId,
    cluster::{SHARDS, ShardSet, fair_share, shard_of},
    probe::ProbeTicket,
    store::{
        AuditRecord, Commit, EventStore, OutboxEntry, OutboxResult, PendingProbe, ProbeSettlement,
        Versioned,
    },
};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::{NoTls, Row, error::SqlState};

use crate::{
    codec::{
        Fail, check_schema, conflict, direction_code, direction_from, every_one_failed, from_json,
        from_micros, lease_end, lease_lost, micros, row_limit, signed, to_json, unsigned,
    },
    error::StoreError,
};

const BACKEND: &str = "postgres";

/// The schema, one migration a step; applied in order on connect, each
/// once, under an advisory lock so that instances starting together do not
/// race. Never edit a released step: add one.
const MIGRATIONS: &[&str] = &[r#"
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
"#];

/// How to connect a [`PostgresStore`].
#[derive(Clone, Debug)]
pub struct PostgresOptions {
    /// The schema that holds the tables (default `public`); created if missing.
    pub schema: String,
    /// Connections in the pool (default 16).
    pub pool_size: usize,
    /// How long to wait for a connection to open, or for a free one (default 5 s).
    pub connect_timeout: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            schema: "public".into(),
            pool_size: 16,
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// An [`EventStore`] in PostgreSQL. See the [module docs](self).
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    schema: String,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The connection string may hold a password: only the schema is shown.
        f.debug_struct("PostgresStore")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

fn valid_schema(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 63
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

impl PostgresStore {
    /// Connects with the default options to `url` (a libpq connection
    /// string or `postgres://` URL) and brings the schema up to date.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, PostgresOptions::default()).await
    }

    /// Connects with `options`.
    ///
    /// Errors: [`StoreError::Unavailable`] when the server cannot be
    /// reached, [`StoreError::SchemaTooNew`] when a newer build wrote the
    /// schema, [`StoreError::Config`] for a bad URL or schema name.
    pub async fn connect_with(url: &str, options: PostgresOptions) -> Result<Self, StoreError> {
        if !valid_schema(&options.schema) {
            return Err(StoreError::Config(format!(
                "schema {:?}: use 1 to 63 lowercase letters, digits and underscores, not starting with a digit",
                options.schema
            )));
        }
        if options.pool_size == 0 {
            return Err(StoreError::Config("pool_size must be at least 1".into()));
        }
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Config(format!("connection string: {e}")))?;
        config.connect_timeout(options.connect_timeout);
        let search_path = format!("-c search_path={}", options.schema);
        let opts = match config.get_options() {
            Some(existing) if !existing.is_empty() => format!("{existing} {search_path}"),
            _ => search_path,
        };
        config.options(&opts);
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.connect_timeout))
            .create_timeout(Some(options.connect_timeout))
            .build()
            .map_err(|e| StoreError::Config(format!("connection pool: {e}")))?;
        let store = PostgresStore {
            pool,
            schema: options.schema,
        };
        store.migrate().await.map_err(|f| match f {
            Fail::Store(e) => e,
            Fail::Core(e) => StoreError::Config(e.to_string()),
        })?;
        Ok(store)
    }

    /// The schema holding the tables.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, Fail> {
        self.pool.get().await.map_err(|e| {
            let message = match &e {
                deadpool_postgres::PoolError::Backend(b) => b.to_string(),
                other => other.to_string(),
            };
            Fail::Store(StoreError::Unavailable {
                backend: BACKEND,
                message,
                source: Some(Box::new(e)),
            })
        })
    }

    async fn migrate(&self) -> Result<(), Fail> {
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

    /// Outbox entries given up on (permanent failures, or withheld), oldest first.
    pub async fn dead_letters(&self, limit: usize) -> continuity_core::Result<Vec<OutboxEntry>> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {OUTBOX_COLUMNS} FROM continuity_outbox WHERE dead ORDER BY id LIMIT $1"
                ),
                &[&row_limit(limit)],
            )
            .await
            .map_err(Fail::from)?;
        Ok(rows.iter().map(outbox_row).collect::<Result<_, _>>()?)
    }

    /// Drops the schema and everything in it. For tests and tear-down.
    pub async fn drop_schema(self) -> Result<(), StoreError> {
        let client = self.client().await.map_err(|f| match f {
            Fail::Store(e) => e,
            Fail::Core(e) => StoreError::Config(e.to_string()),
        })?;
        client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema))
            .await
            .map_err(pg_error)?;
        Ok(())
    }
}

/// PostgreSQL's error, SQLSTATE kept; connection trouble is `Unavailable`.
fn pg_error(e: tokio_postgres::Error) -> StoreError {
    let Some(code) = e.code().cloned() else {
        // No SQLSTATE: the connection broke, timed out or never opened.
        return StoreError::Unavailable {
            backend: BACKEND,
            message: e.to_string(),
            source: Some(Box::new(e)),
        };
    };
    let class = &code.code()[..2];
    if class == "08" || code == SqlState::ADMIN_SHUTDOWN || code == SqlState::CANNOT_CONNECT_NOW {
        return StoreError::Unavailable {
            backend: BACKEND,
            message: e.to_string(),
            source: Some(Box::new(e)),
        };
    }
    let retryable = code == SqlState::T_R_SERIALIZATION_FAILURE
        || code == SqlState::T_R_DEADLOCK_DETECTED
        || code == SqlState::LOCK_NOT_AVAILABLE
        || class == "53"
        || class == "57";
    let message = e
        .as_db_error()
        .map_or_else(|| e.to_string(), |d| d.message().to_string());
    StoreError::Query {
        backend: BACKEND,
        retryable,
        code: Some(code.code().to_string()),
        message,
        source: Some(Box::new(e)),
    }
}

impl From<tokio_postgres::Error> for Fail {
    fn from(e: tokio_postgres::Error) -> Self {
        Fail::Store(pg_error(e))
    }
}

fn column<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a Row,
    i: usize,
) -> Result<T, StoreError> {
    row.try_get(i).map_err(pg_error)
}

const OUTBOX_COLUMNS: &str =
    "id, item, created_at, attempts, next_attempt_at, lease_id, last_error";

fn outbox_row(r: &Row) -> Result<OutboxEntry, StoreError> {
    let id: i64 = column(r, 0)?;
    let what = || format!("outbox entry {id}");
    let item: String = column(r, 1)?;
    Ok(OutboxEntry {
        id: unsigned(BACKEND, "outbox id", id)?,
        item: from_json(BACKEND, what, &item)?,
        created_at: from_micros(BACKEND, what, column(r, 2)?)?,
        attempts: u32::try_from(column::<i32>(r, 3)?).unwrap_or(0),
        next_attempt_at: from_micros(BACKEND, what, column(r, 4)?)?,
        lease_id: unsigned(BACKEND, "lease id", column(r, 5)?)?,
        last_error: column(r, 6)?,
    })
}

const PROBE_COLUMNS: &str = "p.tenant, p.probe_id, p.direction, p.sent_at, p.deadline, p.next_check_at, p.ticket, p.lease_id, p.tenant_hint";

fn probe_row(r: &Row) -> Result<PendingProbe, StoreError> {
    let tenant: String = column(r, 0)?;
    let probe_id: String = column(r, 1)?;
    let what = || format!("probe {tenant}/{probe_id}");
    Ok(PendingProbe {
        tenant: TenantId::new(tenant.as_str()).map_err(|e| StoreError::Decode {
            backend: BACKEND,
            what: what(),
            message: e.to_string(),
        })?,
        direction: direction_from(BACKEND, i64::from(column::<i16>(r, 2)?))?,
        probe_id: probe_id.as_str().into(),
        sent_at: from_micros(BACKEND, what, column(r, 3)?)?,
        deadline: from_micros(BACKEND, what, column(r, 4)?)?,
        next_check_at: from_micros(BACKEND, what, column(r, 5)?)?,
        ticket: ProbeTicket::new(column::<String>(r, 6)?),
        lease_id: unsigned(BACKEND, "lease id", column(r, 7)?)?,
        tenant_hint: u32::try_from(column::<i64>(r, 8)?).unwrap_or(0),
    })
}

impl PostgresStore {
    async fn settle_all(&self, settlements: &[ProbeSettlement]) -> Result<Vec<bool>, Fail> {
        let mut removals: (Vec<&str>, Vec<&str>, Vec<i64>) = Default::default();
        let mut moves: (Vec<&str>, Vec<&str>, Vec<i64>, Vec<i64>) = Default::default();
        for s in settlements {
            let lease = signed(BACKEND, "lease id", s.lease_id)?;
            match s.next_check_at {
                None => {
                    removals.0.push(s.tenant.as_str());
                    removals.1.push(&s.probe_id);
                    removals.2.push(lease);
                }
                Some(at) => {
                    moves.0.push(s.tenant.as_str());
                    moves.1.push(&s.probe_id);
                    moves.2.push(lease);
                    moves.3.push(micros(at));
                }
            }
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let mut done: HashSet<(String, String)> = HashSet::new();
        if !removals.0.is_empty() {
            let rows = tx
                .query(
                    "DELETE FROM continuity_probes p
                     USING unnest($1::text[], $2::text[], $3::bigint[]) AS s(t, id, l)
                     WHERE p.tenant = s.t AND p.probe_id = s.id AND p.lease_id = s.l AND s.l <> 0
                     RETURNING p.tenant, p.probe_id",
                    &[&removals.0, &removals.1, &removals.2],
                )
                .await?;
            for r in rows {
                done.insert((column(&r, 0)?, column(&r, 1)?));
            }
        }
        if !moves.0.is_empty() {
            let rows = tx
                .query(
                    "UPDATE continuity_probes p
                     SET next_check_at = s.at, due_at = s.at, lease_id = 0, lease_until = NULL
                     FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[]) AS s(t, id, l, at)
                     WHERE p.tenant = s.t AND p.probe_id = s.id AND p.lease_id = s.l AND s.l <> 0
                     RETURNING p.tenant, p.probe_id",
                    &[&moves.0, &moves.1, &moves.2, &moves.3],
                )
                .await?;
            for r in rows {
                done.insert((column(&r, 0)?, column(&r, 1)?));
            }
        }
        tx.commit().await?;
        Ok(settlements
            .iter()
            .map(|s| done.contains(&(s.tenant.to_string(), s.probe_id.to_string())))
            .collect())
    }

    async fn settle_one(&self, s: ProbeSettlement) -> continuity_core::Result<()> {
        let what = format!("probe {}/{}", s.tenant, s.probe_id);
        let ok = self.settle_all(std::slice::from_ref(&s)).await?;
        if ok.first().copied().unwrap_or(false) {
            Ok(())
        } else {
            Err(lease_lost(what).into())
        }
    }
}

#[async_trait]
impl EventStore for PostgresStore {
    async fn load(&self, tenant: &TenantId) -> continuity_core::Result<Option<Versioned>> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached("SELECT version, state FROM continuity_tenants WHERE tenant = $1")
            .await
            .map_err(Fail::from)?;
        let Some(row) = client
            .query_opt(&stmt, &[&tenant.as_str()])
            .await
            .map_err(Fail::from)?
        else {
            return Ok(None);
        };
        let state: String = column(&row, 1)?;
        Ok(Some(Versioned {
            version: unsigned(BACKEND, "version", column(&row, 0)?)?,
            state: from_json(BACKEND, || format!("state of tenant {tenant}"), &state)?,
        }))
    }

    async fn commit(
        &self,
        tenant: &TenantId,
        expected: u64,
        commit: Commit,
    ) -> continuity_core::Result<u64> {
        let state = to_json(
            BACKEND,
            || format!("state of tenant {tenant}"),
            &commit.state,
        )?;
        let audit = commit
            .audit
            .iter()
            .map(|e| to_json(BACKEND, || format!("audit entry of {tenant}"), e))
            .collect::<Result<Vec<_>, _>>()?;
        let mut outbox: (Vec<&str>, Vec<String>, Vec<String>) = Default::default();
        for item in &commit.outbox {
            outbox.0.push(item.tenant().as_str());
            outbox.1.push(item.order_key());
            outbox.2.push(to_json(
                BACKEND,
                || format!("outbox item of {tenant}"),
                item,
            )?);
        }
        let version = expected.checked_add(1).ok_or_else(|| {
            StoreError::Config(format!(
                "version of tenant {tenant} cannot grow past {expected}"
            ))
        })?;
        let (expected_s, version_s) = (
            signed(BACKEND, "version", expected)?,
            signed(BACKEND, "version", version)?,
        );
        let run = async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let changed = if expected == 0 {
                tx.execute(
                    "INSERT INTO continuity_tenants (tenant, version, state) VALUES ($1, 1, $2)
                     ON CONFLICT (tenant) DO NOTHING",
                    &[&tenant.as_str(), &state],
                )
                .await?
            } else {
                tx.execute(
                    "UPDATE continuity_tenants SET version = $3, state = $2
                     WHERE tenant = $1 AND version = $4",
                    &[&tenant.as_str(), &state, &version_s, &expected_s],
                )
                .await?
            };
            if changed == 0 {
                let actual = tx
                    .query_opt(
                        "SELECT version FROM continuity_tenants WHERE tenant = $1",
                        &[&tenant.as_str()],
                    )
                    .await?
                    .map_or(Ok(0), |r| column::<i64>(&r, 0))?;
                return Err(conflict(
                    tenant,
                    expected,
                    unsigned(BACKEND, "version", actual)?,
                ));
            }
            if !audit.is_empty() {
                // The tenant row is locked by the update above: no other
                // commit of this tenant can take the same sequence numbers.
                tx.execute(
                    "INSERT INTO continuity_audit (tenant, seq, entry)
                     SELECT $1, last.seq + e.ord, e.entry
                     FROM (SELECT COALESCE(MAX(seq), 0) AS seq FROM continuity_audit WHERE tenant = $1) AS last,
                          unnest($2::text[]) WITH ORDINALITY AS e(entry, ord)",
                    &[&tenant.as_str(), &audit],
                )
                .await?;
            }
            if !outbox.0.is_empty() {
                let created = micros(commit.at);
                let never = micros(DateTime::<Utc>::MIN_UTC);
                tx.execute(
                    "INSERT INTO continuity_outbox (tenant, order_key, item, created_at, next_attempt_at, due_at)
                     SELECT u.t, u.k, u.i, $4, $5, $5
                     FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS u(t, k, i, ord)
                     ORDER BY u.ord",
                    &[&outbox.0, &outbox.1, &outbox.2, &created, &never],
                )
                .await?;
            }
            tx.commit().await?;
            Ok::<_, Fail>(version)
        };
        Ok(run.await?)
    }

    async fn audit_log(
        &self,
        tenant: &TenantId,
        after: u64,
        limit: usize,
    ) -> continuity_core::Result<Vec<AuditRecord>> {
        let client = self.client().await?;
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let rows = client
            .query(
                "SELECT seq, entry FROM continuity_audit WHERE tenant = $1 AND seq > $2
                 ORDER BY seq LIMIT $3",
                &[&tenant.as_str(), &after, &row_limit(limit)],
            )
            .await
            .map_err(Fail::from)?;
        rows.iter()
            .map(|r| {
                let seq: i64 = column(r, 0)?;
                let entry: String = column(r, 1)?;
                Ok(AuditRecord {
                    seq: unsigned(BACKEND, "audit seq", seq)?,
                    tenant: tenant.clone(),
                    entry: from_json(BACKEND, || format!("audit entry {tenant}/{seq}"), &entry)?,
                })
            })
            .collect::<Result<_, StoreError>>()
            .map_err(Into::into)
    }

    async fn claim_outbox(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: usize,
    ) -> continuity_core::Result<Vec<OutboxEntry>> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "WITH due AS (
                       SELECT o.id FROM continuity_outbox o
                       WHERE NOT o.dead AND o.due_at <= $1
                         AND NOT EXISTS (SELECT 1 FROM continuity_outbox p
                                         WHERE p.order_key = o.order_key AND p.id < o.id AND NOT p.dead)
                       ORDER BY o.id LIMIT $2
                       FOR UPDATE SKIP LOCKED)
                     UPDATE continuity_outbox o
                     SET lease_id = nextval('continuity_lease_seq'), lease_until = $3, due_at = $3,
                         attempts = o.attempts + 1
                     FROM due WHERE o.id = due.id
                     RETURNING {}",
                    OUTBOX_COLUMNS
                        .split(", ")
                        .map(|c| format!("o.{c}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                &[&micros(now), &row_limit(limit), &lease_end(now, lease)],
            )
            .await
            .map_err(Fail::from)?;
        let mut out = rows.iter().map(outbox_row).collect::<Result<Vec<_>, _>>()?;
        out.sort_by_key(|e| e.id);
        Ok(out)
    }

    async fn complete_outbox(
        &self,
        id: u64,
        lease_id: u64,
        result: OutboxResult,
    ) -> continuity_core::Result<()> {
        let sid = signed(BACKEND, "outbox id", id)?;
        let lease = signed(BACKEND, "lease id", lease_id)?;
        let client = self.client().await?;
        let changed = match &result {
            OutboxResult::Done => client
                .execute(
                    "DELETE FROM continuity_outbox WHERE id = $1 AND lease_id = $2 AND $2 <> 0 AND NOT dead",
                    &[&sid, &lease],
                )
                .await,
            OutboxResult::Retry { at, error } => client
                .execute(
                    "UPDATE continuity_outbox SET next_attempt_at = $3, due_at = $3, last_error = $4,
                       lease_id = 0, lease_until = NULL
                     WHERE id = $1 AND lease_id = $2 AND $2 <> 0 AND NOT dead",
                    &[&sid, &lease, &micros(*at), error],
                )
                .await,
            OutboxResult::GiveUp { error } => client
                .execute(
                    "UPDATE continuity_outbox SET dead = TRUE, last_error = $3, lease_id = 0, lease_until = NULL
                     WHERE id = $1 AND lease_id = $2 AND $2 <> 0 AND NOT dead",
                    &[&sid, &lease, error],
                )
                .await,
        }
        .map_err(Fail::from)?;
        if changed == 1 {
            return Ok(());
        }
        let holder = client
            .query_opt(
                "SELECT tenant FROM continuity_outbox WHERE id = $1 AND NOT dead",
                &[&sid],
            )
            .await
            .map_err(Fail::from)?;
        Err(match holder {
            None => lease_lost(format!("outbox entry {id} (already completed)")),
            Some(r) => lease_lost(format!(
                "outbox entry {id} of tenant {}",
                column::<String>(&r, 0)?
            )),
        }
        .into())
    }

    async fn pending_outbox(&self, limit: usize) -> continuity_core::Result<Vec<OutboxEntry>> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {OUTBOX_COLUMNS} FROM continuity_outbox WHERE NOT dead ORDER BY id LIMIT $1"
                ),
                &[&row_limit(limit)],
            )
            .await
            .map_err(Fail::from)?;
        Ok(rows.iter().map(outbox_row).collect::<Result<_, _>>()?)
    }

    async fn put_probe(&self, probe: PendingProbe) -> continuity_core::Result<()> {
        self.put_probes(&mut vec![probe]).await
    }

    async fn put_probes(&self, probes: &mut Vec<PendingProbe>) -> continuity_core::Result<()> {
        if probes.is_empty() {
            return Ok(());
        }
        // One statement may not touch a row twice: the last put of a probe id wins.
        let mut seen = HashSet::new();
        let mut unique: Vec<&PendingProbe> = probes
            .iter()
            .rev()
            .filter(|p| seen.insert((p.tenant.as_str(), &*p.probe_id)))
            .collect();
        unique.reverse();
        let tenants: Vec<&str> = unique.iter().map(|p| p.tenant.as_str()).collect();
        let ids: Vec<&str> = unique.iter().map(|p| &*p.probe_id).collect();
        let directions: Vec<i16> = unique.iter().map(|p| direction_code(p.direction)).collect();
        let sent: Vec<i64> = unique.iter().map(|p| micros(p.sent_at)).collect();
        let deadlines: Vec<i64> = unique.iter().map(|p| micros(p.deadline)).collect();
        let checks: Vec<i64> = unique.iter().map(|p| micros(p.next_check_at)).collect();
        let tickets: Vec<&str> = unique.iter().map(|p| p.ticket.as_str()).collect();
        let hints: Vec<i64> = unique.iter().map(|p| i64::from(p.tenant_hint)).collect();
        let shards: Vec<i32> = unique
            .iter()
            .map(|p| i32::from(shard_of(&p.tenant)))
            .collect();
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO continuity_probes
                   (tenant, probe_id, direction, sent_at, deadline, next_check_at, ticket, lease_id, lease_until, due_at, tenant_hint, shard)
                 SELECT t, id, d, s, dl, c, tk, 0, NULL, c, h, sh
                 FROM unnest($1::text[], $2::text[], $3::smallint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::text[], $8::bigint[], $9::int[])
                   AS u(t, id, d, s, dl, c, tk, h, sh)
                 ON CONFLICT (tenant, probe_id) DO UPDATE SET
                   direction = excluded.direction, sent_at = excluded.sent_at, deadline = excluded.deadline,
                   next_check_at = excluded.next_check_at, ticket = excluded.ticket, lease_id = 0,
                   lease_until = NULL, due_at = excluded.due_at, tenant_hint = excluded.tenant_hint",
                &[&tenants, &ids, &directions, &sent, &deadlines, &checks, &tickets, &hints, &shards],
            )
            .await
            .map_err(Fail::from)?;
        probes.clear();
        Ok(())
    }

    async fn claim_probes(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: usize,
        shards: &ShardSet,
    ) -> continuity_core::Result<Vec<PendingProbe>> {
        let client = self.client().await?;
        // Every shard: no filter (`$4` is then NULL).
        let list: Option<Vec<i32>> =
            (!shards.is_all()).then(|| shards.iter().map(i32::from).collect());
        let rows = client
            .query(
                &format!(
                    "WITH due AS (
                       SELECT tenant, probe_id, due_at FROM continuity_probes
                       WHERE due_at <= $1 AND ($4::int[] IS NULL OR shard = ANY($4))
                       ORDER BY due_at LIMIT $2
                       FOR UPDATE SKIP LOCKED)
                     UPDATE continuity_probes p
                     SET lease_id = nextval('continuity_lease_seq'), lease_until = $3, due_at = $3
                     FROM due WHERE p.tenant = due.tenant AND p.probe_id = due.probe_id
                     RETURNING {PROBE_COLUMNS}, due.due_at"
                ),
                &[
                    &micros(now),
                    &row_limit(limit),
                    &lease_end(now, lease),
                    &list,
                ],
            )
            .await
            .map_err(Fail::from)?;
        let mut out = rows
            .iter()
            .map(|r| Ok((column::<i64>(r, 9)?, probe_row(r)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        out.sort_by_key(|(due, _)| *due);
        Ok(out.into_iter().map(|(_, p)| p).collect())
    }

    async fn reschedule_probe(
        &self,
        tenant: &TenantId,
        probe_id: &str,
        lease_id: u64,
        next_check_at: DateTime<Utc>,
    ) -> continuity_core::Result<()> {
        self.settle_one(ProbeSettlement {
            tenant: tenant.clone(),
            probe_id: probe_id.into(),
            lease_id,
            next_check_at: Some(next_check_at),
        })
        .await
    }

    async fn remove_probe(
        &self,
        tenant: &TenantId,
        probe_id: &str,
        lease_id: u64,
    ) -> continuity_core::Result<()> {
        self.settle_one(ProbeSettlement {
            tenant: tenant.clone(),
            probe_id: probe_id.into(),
            lease_id,
            next_check_at: None,
        })
        .await
    }

    async fn sync_shards(
        &self,
        instance: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> continuity_core::Result<ShardSet> {
        let (now, until) = (micros(now), lease_end(now, lease));
        let run = async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            // One sync at a time per schema: the fair share is computed
            // from a count that a concurrent join would change.
            tx.execute(
                "SELECT pg_advisory_xact_lock(hashtext('continuity-shards:' || $1))",
                &[&self.schema],
            )
            .await?;
            tx.execute(
                "DELETE FROM continuity_instances WHERE alive_until <= $1",
                &[&now],
            )
            .await?;
            tx.execute(
                "INSERT INTO continuity_instances (instance, alive_until) VALUES ($1, $2)
                 ON CONFLICT (instance) DO UPDATE SET alive_until = excluded.alive_until",
                &[&instance, &until],
            )
            .await?;
            let live: i64 = tx
                .query_one("SELECT COUNT(*) FROM continuity_instances", &[])
                .await
                .map_err(Fail::from)
                .and_then(|r| Ok(column(&r, 0)?))?;
            let fair = fair_share(usize::try_from(live).unwrap_or(1));
            let mut mine: Vec<i32> = tx
                .query(
                    "UPDATE continuity_shards SET lease_until = $2 WHERE owner = $1 RETURNING shard",
                    &[&instance, &until],
                )
                .await?
                .iter()
                .map(|r| column(r, 0))
                .collect::<Result<_, _>>()?;
            mine.sort_unstable();
            if mine.len() > fair {
                let extra = mine.split_off(fair);
                tx.execute(
                    "UPDATE continuity_shards SET owner = NULL, lease_until = 0 WHERE shard = ANY($1)",
                    &[&extra],
                )
                .await?;
            } else if mine.len() < fair {
                let want = row_limit(fair - mine.len());
                let taken: Vec<i32> = tx
                    .query(
                        "UPDATE continuity_shards SET owner = $1, lease_until = $2
                         WHERE shard IN (SELECT shard FROM continuity_shards
                                         WHERE owner IS NULL OR lease_until <= $3
                                         ORDER BY shard LIMIT $4)
                         RETURNING shard",
                        &[&instance, &until, &now, &want],
                    )
                    .await?
                    .iter()
                    .map(|r| column(r, 0))
                    .collect::<Result<_, _>>()?;
                mine.extend(taken);
            }
            tx.commit().await?;
            Ok::<_, Fail>(
                mine.into_iter()
                    .filter_map(|s| u16::try_from(s).ok())
                    .collect(),
            )
        };
        Ok(run.await?)
    }

    async fn release_shards(&self, instance: &str) -> continuity_core::Result<()> {
        let run = async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            tx.execute(
                "DELETE FROM continuity_instances WHERE instance = $1",
                &[&instance],
            )
            .await?;
            tx.execute(
                "UPDATE continuity_shards SET owner = NULL, lease_until = 0 WHERE owner = $1",
                &[&instance],
            )
            .await?;
            tx.commit().await?;
            Ok::<_, Fail>(())
        };
        Ok(run.await?)
    }

    async fn settle_probes(
        &self,
        settlements: &[ProbeSettlement],
    ) -> Vec<continuity_core::Result<()>> {
        match self.settle_all(settlements).await {
            Ok(done) => settlements
                .iter()
                .zip(done)
                .map(|(s, ok)| {
                    if ok {
                        Ok(())
                    } else {
                        Err(lease_lost(format!("probe {}/{}", s.tenant, s.probe_id)).into())
                    }
                })
                .collect(),
            Err(e) => every_one_failed(BACKEND, &e.into(), settlements.len()),
        }
    }
}
