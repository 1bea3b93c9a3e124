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

mod baselines;
mod outbox;
mod probes;
mod retention;
mod schema;
mod shards;
mod shared;
mod sql;
mod state;

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use continuity_core::{
    TenantId,
    cluster::ShardSet,
    store::{
        AuditRecord, BaselineRecord, Commit, EventStore, OutboxCounts, OutboxEntry, OutboxResult,
        PendingProbe, ProbeSettlement, PruneBefore, PruneReport, SharedObservations, Versioned,
    },
};
use rusqlite::{Connection, OpenFlags, config::DbConfig};

use self::{schema::migrate, sql::sql_error};
use crate::{codec::Fail, error::StoreError};

const BACKEND: &str = "sqlite";

/// Prepared statements kept per connection: room for all of the store's.
const STATEMENT_CACHE: usize = 64;

/// How hard SQLite works to keep a commit through a crash. In
/// configuration `"full"` or `"normal"`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// `synchronous=FULL`: a commit survives a process crash and a power failure (the default).
    #[default]
    Full,
    /// `synchronous=NORMAL`: a commit survives a process crash; the last
    /// ones before a power failure may be lost.
    Normal,
}

/// How long a write waits for another process's lock when not configured: 5 s.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How to open a [`SqliteStore`].
#[derive(Clone, Debug)]
pub struct SqliteOptions {
    /// Default [`Durability::Full`].
    pub durability: Durability,
    /// How long a write waits for another process's lock (default
    /// [`DEFAULT_BUSY_TIMEOUT`], 5 s).
    pub busy_timeout: Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            durability: Durability::Full,
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
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
    /// What [`open_with`](Self::open_with) checks before it opens the
    /// file: that the directory it is to be created in exists. Opens
    /// nothing (a `--check` of a service's configuration).
    ///
    /// Errors: [`StoreError::Config`] naming the file and its directory.
    pub fn check_path(path: impl AsRef<Path>) -> Result<(), StoreError> {
        check_directory(path.as_ref())
    }

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
    check_directory(path)?;
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
    // Every statement is prepared once and kept (`prepare_cached`); the
    // store has 31, more than rusqlite's default cache of 16, and a
    // statement pushed out is parsed again on its next use.
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // Query-planner stability: a plan never depends on a bound value. By
    // default SQLite re-prepares a statement when a parameter the planner
    // looked at is bound again, which for the probe claim was every
    // execution: a tenth of a fleet's time went to parsing it.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
        .map_err(corrupt)?;
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

/// A missing directory as a configuration error saying so: SQLite creates
/// the file but not its directory, and says only "unable to open database
/// file", which would pass for an outage and be retried for ever.
fn check_directory(path: &Path) -> Result<(), StoreError> {
    let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return Ok(());
    };
    let problem = match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => return Ok(()),
        Ok(_) => "is not a directory",
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "does not exist",
        // Anything else (no permission to look) is for the open to report.
        Err(_) => return Ok(()),
    };
    Err(StoreError::Config(format!(
        "cannot create the SQLite database {}: the directory {} {problem}; create it or choose another path",
        path.display(),
        dir.display()
    )))
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

#[async_trait]
impl EventStore for SqliteStore {
    async fn load(&self, tenant: &TenantId) -> continuity_core::Result<Option<Versioned>> {
        self.load_tenant(tenant).await
    }

    async fn commit(
        &self,
        tenant: &TenantId,
        expected: u64,
        commit: Commit,
    ) -> continuity_core::Result<u64> {
        self.commit_tenant(tenant, expected, commit).await
    }

    async fn audit_log(
        &self,
        tenant: &TenantId,
        after: u64,
        limit: usize,
    ) -> continuity_core::Result<Vec<AuditRecord>> {
        self.audit_records(tenant, after, limit, false).await
    }

    async fn recent_audit(
        &self,
        tenant: &TenantId,
        limit: usize,
    ) -> continuity_core::Result<Vec<AuditRecord>> {
        self.audit_records(tenant, 0, limit, true).await
    }

    async fn given_up_outbox(&self, limit: usize) -> continuity_core::Result<Vec<OutboxEntry>> {
        // The inherent method of the same contract, kept for callers
        // holding the concrete type.
        self.dead_letters(limit).await
    }

    async fn prune(&self, before: &PruneBefore) -> continuity_core::Result<PruneReport> {
        self.prune_records(*before).await
    }

    async fn claim_outbox(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: usize,
    ) -> continuity_core::Result<Vec<OutboxEntry>> {
        self.claim_outbox_entries(now, lease, limit).await
    }

    async fn complete_outbox(
        &self,
        id: u64,
        lease_id: u64,
        result: OutboxResult,
    ) -> continuity_core::Result<()> {
        self.complete_outbox_entry(id, lease_id, result).await
    }

    async fn pending_outbox(&self, limit: usize) -> continuity_core::Result<Vec<OutboxEntry>> {
        self.pending_outbox_entries(limit).await
    }

    async fn put_probes(&self, probes: &mut Vec<PendingProbe>) -> continuity_core::Result<()> {
        self.put_probe_batch(probes, None).await
    }

    async fn put_probes_leased(
        &self,
        probes: &mut Vec<PendingProbe>,
        lease: Duration,
    ) -> continuity_core::Result<()> {
        self.put_probe_batch(probes, Some(lease)).await
    }

    async fn claim_probes(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: usize,
        shards: &ShardSet,
    ) -> continuity_core::Result<Vec<PendingProbe>> {
        self.claim_due_probes(now, lease, limit, shards).await
    }

    async fn sync_shards(
        &self,
        instance: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> continuity_core::Result<ShardSet> {
        self.sync_shard_leases(instance, now, lease).await
    }

    async fn release_shards(&self, instance: &str) -> continuity_core::Result<()> {
        self.release_shard_leases(instance).await
    }

    async fn settle_probes(
        &self,
        settlements: &[ProbeSettlement],
    ) -> Vec<continuity_core::Result<()>> {
        self.settle_probe_batch(settlements).await
    }

    async fn save_baselines(&self, records: &[BaselineRecord]) -> continuity_core::Result<()> {
        self.save_baseline_batch(records).await
    }

    async fn load_baselines(
        &self,
        tenant: &TenantId,
    ) -> continuity_core::Result<Vec<BaselineRecord>> {
        self.load_baseline_records(tenant).await
    }

    async fn share_observations(
        &self,
        batches: &[SharedObservations],
    ) -> continuity_core::Result<()> {
        self.insert_shared(batches).await
    }

    async fn take_shared_observations(
        &self,
        shards: &ShardSet,
        limit: usize,
    ) -> continuity_core::Result<Vec<SharedObservations>> {
        self.delete_shared(shards, limit).await
    }

    // Health and metrics.

    async fn outbox_counts(&self) -> continuity_core::Result<Option<OutboxCounts>> {
        self.count_outbox().await.map(Some)
    }

    async fn ping(&self) -> continuity_core::Result<()> {
        self.ping_database().await
    }
}
