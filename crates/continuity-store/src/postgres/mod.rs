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
//! database. Connections go through a pool (`deadpool-postgres`), over TLS
//! (rustls, verified against the system's roots and any given) when
//! [`PostgresOptions::tls`] says so; without it, plain TCP or a local socket.

mod baselines;
mod held;
mod outbox;
mod probes;
mod retention;
mod schema;
mod shards;
mod shared;
mod sql;
mod state;
mod tls;

use std::time::Duration;

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
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use self::sql::pg_error;
pub use self::tls::PostgresTls;
use crate::{codec::Fail, error::StoreError};

const BACKEND: &str = "postgres";

/// The schema holding the tables when none is configured: `public`.
pub const DEFAULT_SCHEMA: &str = "public";
/// Connections in the pool when not configured: 16.
pub const DEFAULT_POOL_SIZE: usize = 16;
/// How long to wait for a connection when not configured: 5 s.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How to connect a [`PostgresStore`].
#[derive(Clone, Debug)]
pub struct PostgresOptions {
    /// The schema that holds the tables (default `public`); created if missing.
    pub schema: String,
    /// Connections in the pool (default 16).
    pub pool_size: usize,
    /// How long to wait for a connection to open, or for a free one (default 5 s).
    pub connect_timeout: Duration,
    /// TLS to the server (default `None`: no TLS, whatever `sslmode` the
    /// connection string names).
    pub tls: Option<PostgresTls>,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            schema: DEFAULT_SCHEMA.into(),
            pool_size: DEFAULT_POOL_SIZE,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            tls: None,
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
        let store = Self::unconnected(url, options)?;
        store.migrate().await.map_err(|f| match f {
            Fail::Store(e) => e,
            Fail::Core(e) => StoreError::Config(e.to_string()),
        })?;
        Ok(store)
    }

    /// What [`connect_with`](Self::connect_with) checks before it
    /// connects: the schema name, the pool size, the connection string and
    /// the TLS set-up. Connects nowhere (a `--check` of a service's
    /// configuration).
    ///
    /// Errors: [`StoreError::Config`] naming what is wrong.
    pub fn check_with(url: &str, options: PostgresOptions) -> Result<(), StoreError> {
        Self::unconnected(url, options).map(drop)
    }

    /// The store with its pool set up; the pool connects on first use.
    fn unconnected(url: &str, options: PostgresOptions) -> Result<Self, StoreError> {
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
        let recycling = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match &options.tls {
            None => {
                config.ssl_mode(tokio_postgres::config::SslMode::Disable);
                Manager::from_config(config, NoTls, recycling)
            }
            Some(tls) => {
                config.ssl_mode(tokio_postgres::config::SslMode::Require);
                Manager::from_config(config, tls.connector()?, recycling)
            }
        };
        let pool = Pool::builder(manager)
            .max_size(options.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.connect_timeout))
            .create_timeout(Some(options.connect_timeout))
            .build()
            .map_err(|e| StoreError::Config(format!("connection pool: {e}")))?;
        Ok(PostgresStore {
            pool,
            schema: options.schema,
        })
    }

    /// The schema holding the tables.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, Fail> {
        self.pool.get().await.map_err(|e| {
            let message = match e {
                deadpool_postgres::PoolError::Backend(b) => return Fail::Store(pg_error(b)),
                other => other,
            };
            Fail::Store(StoreError::Unavailable {
                backend: BACKEND,
                message: message.to_string(),
                source: Some(Box::new(message)),
            })
        })
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

#[async_trait]
impl EventStore for PostgresStore {
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
        self.prune_records(before).await
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
