//! The SQLite store: the embedded default, one file.
//!
//! The file is opened in WAL mode. With [`Durability::Full`] (the default)
//! SQLite syncs the log at every commit, so an acknowledged transition
//! survives a crash of the process and of the machine; with
//! [`Durability::Normal`] it survives a crash of the process, and the last
//! transitions before a power failure may be lost (SQLite's
//! `synchronous=NORMAL` in WAL mode), for several times the commit rate.
//!
//! rusqlite is synchronous: every operation runs on tokio's blocking pool,
//! one at a time over one connection. Several processes may open the same
//! file (SQLite's locking serialises their writes; `busy_timeout` says how
//! long a writer waits), but PostgreSQL is the store for several instances.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use continuity_core::{
    TenantId,
    cluster::{SHARDS, ShardSet, fair_share, shard_of},
    store::{
        AuditRecord, Commit, EventStore, OutboxEntry, OutboxResult, PendingProbe, ProbeSettlement,
        Versioned,
    },
};
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, TransactionBehavior, params};

use crate::{
    codec::{
        Fail, check_schema, conflict, direction_code, direction_from, every_one_failed, from_json,
        from_micros, lease_end, lease_lost, micros, row_limit, signed, to_json, unsigned,
    },
    error::StoreError,
};

const BACKEND: &str = "sqlite";

/// The schema, one migration a step; applied in order on open, each once.
/// Never edit a released step: add one.
const MIGRATIONS: &[&str] = &[r#"
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
"#];

/// How hard SQLite works to keep a commit through a crash.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// `synchronous=FULL`: a commit survives a process crash and a power failure (the default).
    #[default]
    Full,
    /// `synchronous=NORMAL`: a commit survives a process crash; the last
    /// ones before a power failure may be lost.
    Normal,
}

/// How to open a [`SqliteStore`].
#[derive(Clone, Debug)]
pub struct SqliteOptions {
    /// Default [`Durability::Full`].
    pub durability: Durability,
    /// How long a write waits for another process's lock (default 5 s).
    pub busy_timeout: Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            durability: Durability::Full,
            busy_timeout: Duration::from_secs(5),
        }
    }
}

/// An [`EventStore`] in one SQLite file. See the [module docs](self).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use continuity_core::{store::{Commit, EventStore}, TenantId};
/// use continuity_store::SqliteStore;
///
/// let dir = std::env::temp_dir().join(format!("continuity-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let store = SqliteStore::open(dir.join("state.db")).await?;
/// let acme = TenantId::new("acme")?;
/// let v = store.commit(&acme, 0, Commit::default()).await?;
/// assert_eq!(store.load(&acme).await?.map(|s| s.version), Some(v));
/// # drop(store); std::fs::remove_dir_all(&dir)?; Ok(()) }
/// ```
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    path: Arc<PathBuf>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` with the default
    /// options, and brings its schema up to date.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path, SqliteOptions::default()).await
    }

    /// Opens the database at `path` with `options`.
    ///
    /// Errors: [`StoreError::Corrupt`] for a file that is not a database,
    /// [`StoreError::SchemaTooNew`] for one written by a newer build.
    pub async fn open_with(
        path: impl AsRef<Path>,
        options: SqliteOptions,
    ) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let shown = path.clone();
        let conn = tokio::task::spawn_blocking(move || open_blocking(&path, &options))
            .await
            .map_err(|e| StoreError::Query {
                backend: BACKEND,
                retryable: false,
                code: None,
                message: format!("opening the database panicked: {e}"),
                source: None,
            })?
            .map_err(|e| match e {
                Fail::Store(e) => e,
                Fail::Core(e) => StoreError::Config(e.to_string()),
            })?;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
            path: Arc::new(shown),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Outbox entries given up on (permanent failures, or withheld), oldest first.
    pub async fn dead_letters(&self, limit: usize) -> continuity_core::Result<Vec<OutboxEntry>> {
        self.run(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {OUTBOX_COLUMNS} FROM continuity_outbox WHERE dead = 1 ORDER BY id LIMIT ?1"
            ))?;
            let rows = stmt.query_map([row_limit(limit)], outbox_row)?;
            collect(rows)
        })
        .await
    }

    async fn settle_one(&self, s: ProbeSettlement) -> continuity_core::Result<()> {
        self.run(move |c| {
            let tx = c.transaction()?;
            settle(&tx, &s)?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    /// Runs `f` on the connection, on tokio's blocking pool.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, Fail> + Send + 'static,
    ) -> continuity_core::Result<T> {
        let conn = self.conn.clone();
        let path = self.path.clone();
        let out = tokio::task::spawn_blocking(move || {
            // A panic inside `f` rolled its transaction back when the
            // transaction guard dropped, so the connection is still sound.
            let mut conn = conn.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut conn)
        })
        .await
        .map_err(|e| StoreError::Query {
            backend: BACKEND,
            retryable: false,
            code: None,
            message: format!("a store operation panicked: {e}"),
            source: None,
        })?;
        out.map_err(|f| corrupt_file(&path, f).into())
    }
}

fn open_blocking(path: &Path, options: &SqliteOptions) -> Result<Connection, Fail> {
    let shown = path.display().to_string();
    let corrupt = |e: rusqlite::Error| corrupt_file(path, Fail::Store(sql_error(e)));
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| {
        Fail::Store(StoreError::Unavailable {
            backend: BACKEND,
            message: format!("cannot open {shown}: {e}"),
            source: Some(Box::new(e)),
        })
    })?;
    conn.busy_timeout(options.busy_timeout).map_err(corrupt)?;
    // The first statement reads the header: a damaged file fails here.
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(corrupt)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Fail::Store(StoreError::Config(format!(
            "{shown}: SQLite refused WAL mode (journal_mode is {mode})"
        ))));
    }
    let sync = match options.durability {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", sync)
        .map_err(corrupt)?;
    let mut conn = conn;
    migrate(&mut conn).map_err(|f| corrupt_file(path, f))?;
    Ok(conn)
}

/// SQLite's "not a database" and "malformed" as [`StoreError::Corrupt`],
/// naming the file.
fn corrupt_file(path: &Path, f: Fail) -> Fail {
    match f {
        Fail::Store(StoreError::Query {
            code: Some(code),
            message,
            ..
        }) if code == "SQLITE_NOTADB" || code == "SQLITE_CORRUPT" => {
            Fail::Store(StoreError::Corrupt {
                path: path.display().to_string(),
                message,
            })
        }
        other => other,
    }
}

fn migrate(conn: &mut Connection) -> Result<(), Fail> {
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

/// SQLite's error, with its extended code name (`SQLITE_BUSY`, …) kept.
fn sql_error(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;
    let (retryable, code) = match &e {
        rusqlite::Error::SqliteFailure(f, _) => (
            matches!(
                f.code,
                ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked | ErrorCode::SystemIoFailure
            ),
            Some(
                match f.code {
                    ErrorCode::NotADatabase => "SQLITE_NOTADB".to_string(),
                    ErrorCode::DatabaseCorrupt => "SQLITE_CORRUPT".to_string(),
                    ErrorCode::DatabaseBusy => "SQLITE_BUSY".to_string(),
                    ErrorCode::DatabaseLocked => "SQLITE_LOCKED".to_string(),
                    ErrorCode::DiskFull => "SQLITE_FULL".to_string(),
                    ErrorCode::SystemIoFailure => "SQLITE_IOERR".to_string(),
                    ErrorCode::ReadOnly => "SQLITE_READONLY".to_string(),
                    _ => format!("SQLITE_{}", f.extended_code),
                }
                .to_string(),
            ),
        ),
        _ => (false, None),
    };
    StoreError::Query {
        backend: BACKEND,
        retryable,
        code,
        message: e.to_string(),
        source: Some(Box::new(e)),
    }
}

impl From<rusqlite::Error> for Fail {
    fn from(e: rusqlite::Error) -> Self {
        Fail::Store(sql_error(e))
    }
}

/// Converts a row-mapping closure's error. rusqlite wants its own error
/// type out of `query_map`, so decode failures travel inside it.
fn decode_err(e: StoreError) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(e))
}

fn collect<T>(rows: impl Iterator<Item = rusqlite::Result<T>>) -> Result<Vec<T>, Fail> {
    let mut out = Vec::new();
    for r in rows {
        out.push(r.map_err(undecode)?);
    }
    Ok(out)
}

/// Gets a decode error back out of rusqlite's wrapper.
fn undecode(e: rusqlite::Error) -> Fail {
    match e {
        rusqlite::Error::ToSqlConversionFailure(inner) => match inner.downcast::<StoreError>() {
            Ok(store) => Fail::Store(*store),
            Err(other) => Fail::Store(sql_error(rusqlite::Error::ToSqlConversionFailure(other))),
        },
        other => other.into(),
    }
}

fn next_lease(tx: &rusqlite::Transaction<'_>) -> Result<u64, Fail> {
    let id: i64 = tx.query_row(
        "UPDATE continuity_meta SET value = value + 1 WHERE key = 'lease_seq' RETURNING value",
        [],
        |r| r.get(0),
    )?;
    Ok(unsigned(BACKEND, "lease id", id)?)
}

const OUTBOX_COLUMNS: &str =
    "id, item, created_at, attempts, next_attempt_at, lease_id, last_error";

fn outbox_row(r: &Row<'_>) -> rusqlite::Result<OutboxEntry> {
    let id: i64 = r.get(0)?;
    let what = || format!("outbox entry {id}");
    let item: String = r.get(1)?;
    let entry = (|| -> Result<OutboxEntry, StoreError> {
        Ok(OutboxEntry {
            id: unsigned(BACKEND, "outbox id", id)?,
            item: from_json(BACKEND, what, &item)?,
            created_at: from_micros(BACKEND, what, r.get(2).map_err(sql_error)?)?,
            attempts: u32::try_from(r.get::<_, i64>(3).map_err(sql_error)?).unwrap_or(u32::MAX),
            next_attempt_at: from_micros(BACKEND, what, r.get(4).map_err(sql_error)?)?,
            lease_id: unsigned(BACKEND, "lease id", r.get(5).map_err(sql_error)?)?,
            last_error: r.get(6).map_err(sql_error)?,
        })
    })();
    entry.map_err(decode_err)
}

const PROBE_COLUMNS: &str =
    "tenant, probe_id, direction, sent_at, deadline, next_check_at, ticket, lease_id, tenant_hint";

fn probe_row(r: &Row<'_>) -> rusqlite::Result<PendingProbe> {
    let tenant: String = r.get(0)?;
    let probe_id: String = r.get(1)?;
    let what = || format!("probe {tenant}/{probe_id}");
    let probe = (|| -> Result<PendingProbe, StoreError> {
        Ok(PendingProbe {
            tenant: TenantId::new(tenant.as_str()).map_err(|e| StoreError::Decode {
                backend: BACKEND,
                what: what(),
                message: e.to_string(),
            })?,
            direction: direction_from(BACKEND, r.get(2).map_err(sql_error)?)?,
            probe_id: probe_id.as_str().into(),
            sent_at: from_micros(BACKEND, what, r.get(3).map_err(sql_error)?)?,
            deadline: from_micros(BACKEND, what, r.get(4).map_err(sql_error)?)?,
            next_check_at: from_micros(BACKEND, what, r.get(5).map_err(sql_error)?)?,
            ticket: continuity_core::probe::ProbeTicket::new(
                r.get::<_, String>(6).map_err(sql_error)?,
            ),
            lease_id: unsigned(BACKEND, "lease id", r.get(7).map_err(sql_error)?)?,
            tenant_hint: u32::try_from(r.get::<_, i64>(8).map_err(sql_error)?).unwrap_or(0),
        })
    })();
    probe.map_err(decode_err)
}

fn put_probe(tx: &rusqlite::Transaction<'_>, p: &PendingProbe) -> Result<(), Fail> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO continuity_probes
           (tenant, probe_id, direction, sent_at, deadline, next_check_at, ticket, lease_id, lease_until, due_at, tenant_hint, shard)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0, NULL, ?6, ?8, ?9)
         ON CONFLICT (tenant, probe_id) DO UPDATE SET
           direction = excluded.direction, sent_at = excluded.sent_at, deadline = excluded.deadline,
           next_check_at = excluded.next_check_at, ticket = excluded.ticket, lease_id = 0,
           lease_until = NULL, due_at = excluded.due_at, tenant_hint = excluded.tenant_hint",
    )?;
    stmt.execute(params![
        p.tenant.as_str(),
        &*p.probe_id,
        direction_code(p.direction),
        micros(p.sent_at),
        micros(p.deadline),
        micros(p.next_check_at),
        p.ticket.as_str(),
        i64::from(p.tenant_hint),
        i64::from(shard_of(&p.tenant)),
    ])?;
    Ok(())
}

fn settle(tx: &rusqlite::Transaction<'_>, s: &ProbeSettlement) -> Result<(), Fail> {
    let lease = signed(BACKEND, "lease id", s.lease_id)?;
    let changed = match s.next_check_at {
        None => tx
            .prepare_cached(
                "DELETE FROM continuity_probes
                 WHERE tenant = ?1 AND probe_id = ?2 AND lease_id = ?3 AND lease_id <> 0",
            )?
            .execute(params![s.tenant.as_str(), &*s.probe_id, lease])?,
        Some(at) => tx
            .prepare_cached(
                "UPDATE continuity_probes
                 SET next_check_at = ?4, due_at = ?4, lease_id = 0, lease_until = NULL
                 WHERE tenant = ?1 AND probe_id = ?2 AND lease_id = ?3 AND lease_id <> 0",
            )?
            .execute(params![s.tenant.as_str(), &*s.probe_id, lease, micros(at)])?,
    };
    if changed == 0 {
        return Err(lease_lost(format!("probe {}/{}", s.tenant, s.probe_id)));
    }
    Ok(())
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn load(&self, tenant: &TenantId) -> continuity_core::Result<Option<Versioned>> {
        let tenant = tenant.clone();
        self.run(move |c| {
            let row: Option<(i64, String)> = c
                .prepare_cached("SELECT version, state FROM continuity_tenants WHERE tenant = ?1")?
                .query_row([tenant.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            let Some((version, state)) = row else {
                return Ok(None);
            };
            Ok(Some(Versioned {
                version: unsigned(BACKEND, "version", version)?,
                state: from_json(BACKEND, || format!("state of tenant {tenant}"), &state)?,
            }))
        })
        .await
    }

    async fn commit(
        &self,
        tenant: &TenantId,
        expected: u64,
        commit: Commit,
    ) -> continuity_core::Result<u64> {
        let tenant = tenant.clone();
        self.run(move |c| {
            let state = to_json(BACKEND, || format!("state of tenant {tenant}"), &commit.state)?;
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let actual: Option<i64> = tx
                .prepare_cached("SELECT version FROM continuity_tenants WHERE tenant = ?1")?
                .query_row([tenant.as_str()], |r| r.get(0))
                .optional()?;
            let actual = unsigned(BACKEND, "version", actual.unwrap_or(0))?;
            if actual != expected {
                return Err(conflict(&tenant, expected, actual));
            }
            let version = expected.checked_add(1).ok_or_else(|| StoreError::Config(format!(
                "version of tenant {tenant} cannot grow past {expected}"
            )))?;
            let v = signed(BACKEND, "version", version)?;
            if expected == 0 {
                tx.prepare_cached(
                    "INSERT INTO continuity_tenants (tenant, version, state) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![tenant.as_str(), v, state])?;
            } else {
                tx.prepare_cached(
                    "UPDATE continuity_tenants SET version = ?2, state = ?3 WHERE tenant = ?1",
                )?
                .execute(params![tenant.as_str(), v, state])?;
            }
            if !commit.audit.is_empty() {
                let last: i64 = tx
                    .prepare_cached(
                        "SELECT COALESCE(MAX(seq), 0) FROM continuity_audit WHERE tenant = ?1",
                    )?
                    .query_row([tenant.as_str()], |r| r.get(0))?;
                let mut insert = tx.prepare_cached(
                    "INSERT INTO continuity_audit (tenant, seq, entry) VALUES (?1, ?2, ?3)",
                )?;
                for (i, entry) in commit.audit.iter().enumerate() {
                    let json = to_json(BACKEND, || format!("audit entry of {tenant}"), entry)?;
                    let seq = last.saturating_add(i64::try_from(i).unwrap_or(i64::MAX)) + 1;
                    insert.execute(params![tenant.as_str(), seq, json])?;
                }
            }
            if !commit.outbox.is_empty() {
                let created = micros(commit.at);
                let never = micros(DateTime::<Utc>::MIN_UTC);
                let mut insert = tx.prepare_cached(
                    "INSERT INTO continuity_outbox (tenant, order_key, item, created_at, next_attempt_at, due_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                )?;
                for item in &commit.outbox {
                    let json = to_json(BACKEND, || format!("outbox item of {tenant}"), item)?;
                    insert.execute(params![
                        item.tenant().as_str(),
                        item.order_key(),
                        json,
                        created,
                        never
                    ])?;
                }
            }
            tx.commit()?;
            Ok(version)
        })
        .await
    }

    async fn audit_log(
        &self,
        tenant: &TenantId,
        after: u64,
        limit: usize,
    ) -> continuity_core::Result<Vec<AuditRecord>> {
        let tenant = tenant.clone();
        self.run(move |c| {
            let after = i64::try_from(after).unwrap_or(i64::MAX);
            let mut stmt = c.prepare_cached(
                "SELECT seq, entry FROM continuity_audit WHERE tenant = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
            )?;
            let rows = stmt.query_map(params![tenant.as_str(), after, row_limit(limit)], |r| {
                let seq: i64 = r.get(0)?;
                let entry: String = r.get(1)?;
                let record = (|| -> Result<AuditRecord, StoreError> {
                    Ok(AuditRecord {
                        seq: unsigned(BACKEND, "audit seq", seq)?,
                        tenant: tenant.clone(),
                        entry: from_json(BACKEND, || format!("audit entry {tenant}/{seq}"), &entry)?,
                    })
                })();
                record.map_err(decode_err)
            })?;
            collect(rows)
        })
        .await
    }

    async fn claim_outbox(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: usize,
    ) -> continuity_core::Result<Vec<OutboxEntry>> {
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let ids: Vec<i64> = {
                let mut stmt = tx.prepare_cached(
                    "SELECT o.id FROM continuity_outbox o
                     WHERE o.dead = 0 AND o.due_at <= ?1
                       AND NOT EXISTS (SELECT 1 FROM continuity_outbox p
                                       WHERE p.order_key = o.order_key AND p.id < o.id AND p.dead = 0)
                     ORDER BY o.id LIMIT ?2",
                )?;
                let rows = stmt.query_map(params![micros(now), row_limit(limit)], |r| r.get(0))?;
                collect(rows)?
            };
            let until = lease_end(now, lease);
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                let lease_id = signed(BACKEND, "lease id", next_lease(&tx)?)?;
                let entry = tx
                    .prepare_cached(&format!(
                        "UPDATE continuity_outbox
                         SET lease_id = ?2, lease_until = ?3, due_at = ?3, attempts = attempts + 1
                         WHERE id = ?1 RETURNING {OUTBOX_COLUMNS}"
                    ))?
                    .query_row(params![id, lease_id, until], outbox_row)
                    .map_err(undecode)?;
                out.push(entry);
            }
            tx.commit()?;
            Ok(out)
        })
        .await
    }

    async fn complete_outbox(
        &self,
        id: u64,
        lease_id: u64,
        result: OutboxResult,
    ) -> continuity_core::Result<()> {
        self.run(move |c| {
            let sid = signed(BACKEND, "outbox id", id)?;
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let found: Option<(i64, String)> = tx
                .prepare_cached(
                    "SELECT lease_id, tenant FROM continuity_outbox WHERE id = ?1 AND dead = 0",
                )?
                .query_row([sid], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            let Some((held, tenant)) = found else {
                return Err(lease_lost(format!("outbox entry {id} (already completed)")));
            };
            if lease_id == 0 || unsigned(BACKEND, "lease id", held)? != lease_id {
                return Err(lease_lost(format!("outbox entry {id} of tenant {tenant}")));
            }
            match result {
                OutboxResult::Done => {
                    tx.prepare_cached("DELETE FROM continuity_outbox WHERE id = ?1")?
                        .execute([sid])?;
                }
                OutboxResult::Retry { at, error } => {
                    tx.prepare_cached(
                        "UPDATE continuity_outbox SET next_attempt_at = ?2, due_at = ?2, last_error = ?3,
                           lease_id = 0, lease_until = NULL WHERE id = ?1",
                    )?
                    .execute(params![sid, micros(at), error])?;
                }
                OutboxResult::GiveUp { error } => {
                    tx.prepare_cached(
                        "UPDATE continuity_outbox SET dead = 1, last_error = ?2, lease_id = 0,
                           lease_until = NULL WHERE id = ?1",
                    )?
                    .execute(params![sid, error])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn pending_outbox(&self, limit: usize) -> continuity_core::Result<Vec<OutboxEntry>> {
        self.run(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {OUTBOX_COLUMNS} FROM continuity_outbox WHERE dead = 0 ORDER BY id LIMIT ?1"
            ))?;
            let rows = stmt.query_map([row_limit(limit)], outbox_row)?;
            collect(rows)
        })
        .await
    }

    async fn put_probe(&self, probe: PendingProbe) -> continuity_core::Result<()> {
        self.put_probes(&mut vec![probe]).await
    }

    async fn put_probes(&self, probes: &mut Vec<PendingProbe>) -> continuity_core::Result<()> {
        if probes.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(probes);
        // The batch travels to the blocking pool and back, so that a
        // failure hands it back to the caller.
        let (batch, outcome) = self
            .run(move |c| {
                let outcome = (|| {
                    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                    for p in &batch {
                        put_probe(&tx, p)?;
                    }
                    tx.commit()?;
                    Ok::<_, Fail>(())
                })();
                Ok((batch, outcome))
            })
            .await?;
        outcome.map_err(|f| {
            *probes = batch;
            corrupt_file(&self.path, f).into()
        })
    }

    async fn claim_probes(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: usize,
        shards: &ShardSet,
    ) -> continuity_core::Result<Vec<PendingProbe>> {
        let shards = *shards;
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let keys: Vec<(String, String)> = {
                let row = |r: &Row<'_>| Ok((r.get(0)?, r.get(1)?));
                if shards.is_all() {
                    let mut stmt = tx.prepare_cached(
                        "SELECT tenant, probe_id FROM continuity_probes WHERE due_at <= ?1
                         ORDER BY due_at LIMIT ?2",
                    )?;
                    collect(stmt.query_map(params![micros(now), row_limit(limit)], row)?)?
                } else {
                    let list: Vec<u16> = shards.iter().collect();
                    let list = to_json(BACKEND, || "shard list".into(), &list)?;
                    let mut stmt = tx.prepare_cached(
                        "SELECT tenant, probe_id FROM continuity_probes WHERE due_at <= ?1
                           AND shard IN (SELECT value FROM json_each(?3))
                         ORDER BY due_at LIMIT ?2",
                    )?;
                    collect(stmt.query_map(params![micros(now), row_limit(limit), list], row)?)?
                }
            };
            let until = lease_end(now, lease);
            let mut out = Vec::with_capacity(keys.len());
            for (tenant, probe_id) in keys {
                let lease_id = signed(BACKEND, "lease id", next_lease(&tx)?)?;
                let probe = tx
                    .prepare_cached(&format!(
                        "UPDATE continuity_probes SET lease_id = ?3, lease_until = ?4, due_at = ?4
                         WHERE tenant = ?1 AND probe_id = ?2 RETURNING {PROBE_COLUMNS}"
                    ))?
                    .query_row(params![tenant, probe_id, lease_id, until], probe_row)
                    .map_err(undecode)?;
                out.push(probe);
            }
            tx.commit()?;
            Ok(out)
        })
        .await
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
        let instance = instance.to_string();
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let (now, until) = (micros(now), lease_end(now, lease));
            tx.prepare_cached("DELETE FROM continuity_instances WHERE alive_until <= ?1")?
                .execute([now])?;
            tx.prepare_cached(
                "INSERT INTO continuity_instances (instance, alive_until) VALUES (?1, ?2)
                 ON CONFLICT (instance) DO UPDATE SET alive_until = excluded.alive_until",
            )?
            .execute(params![instance, until])?;
            let live: i64 = tx
                .prepare_cached("SELECT COUNT(*) FROM continuity_instances")?
                .query_row([], |r| r.get(0))?;
            let fair = fair_share(usize::try_from(live).unwrap_or(1));
            tx.prepare_cached("UPDATE continuity_shards SET lease_until = ?2 WHERE owner = ?1")?
                .execute(params![instance, until])?;
            let mut mine: Vec<i64> = collect(
                tx.prepare_cached(
                    "SELECT shard FROM continuity_shards WHERE owner = ?1 ORDER BY shard",
                )?
                .query_map([&instance], |r| r.get(0))?,
            )?;
            while mine.len() > fair {
                if let Some(s) = mine.pop() {
                    tx.prepare_cached(
                        "UPDATE continuity_shards SET owner = NULL, lease_until = 0 WHERE shard = ?1",
                    )?
                    .execute([s])?;
                }
            }
            if mine.len() < fair {
                let free: Vec<i64> = collect(
                    tx.prepare_cached(
                        "SELECT shard FROM continuity_shards
                         WHERE owner IS NULL OR lease_until <= ?1 ORDER BY shard LIMIT ?2",
                    )?
                    .query_map(params![now, row_limit(fair - mine.len())], |r| r.get(0))?,
                )?;
                for s in free {
                    tx.prepare_cached(
                        "UPDATE continuity_shards SET owner = ?2, lease_until = ?3 WHERE shard = ?1",
                    )?
                    .execute(params![s, instance, until])?;
                    mine.push(s);
                }
            }
            tx.commit()?;
            Ok(mine.into_iter().filter_map(|s| u16::try_from(s).ok()).collect())
        })
        .await
    }

    async fn release_shards(&self, instance: &str) -> continuity_core::Result<()> {
        let instance = instance.to_string();
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute(
                "DELETE FROM continuity_instances WHERE instance = ?1",
                [&instance],
            )?;
            tx.execute(
                "UPDATE continuity_shards SET owner = NULL, lease_until = 0 WHERE owner = ?1",
                [&instance],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn settle_probes(
        &self,
        settlements: &[ProbeSettlement],
    ) -> Vec<continuity_core::Result<()>> {
        let n = settlements.len();
        let settlements = settlements.to_vec();
        let outcome = self
            .run(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let mut results = Vec::with_capacity(settlements.len());
                for s in &settlements {
                    results.push(match settle(&tx, s) {
                        Ok(()) => Ok(()),
                        Err(Fail::Core(e)) => Err(e),
                        Err(store) => return Err(store),
                    });
                }
                tx.commit()?;
                Ok(results)
            })
            .await;
        outcome.unwrap_or_else(|e| every_one_failed(BACKEND, &e, n))
    }
}
