//! A store that can be switched off, for testing what the engine does while
//! its store is unreachable.

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::{
    cluster::ShardSet,
    domain::TenantId,
    error::{Error, Result},
    store::{
        AuditRecord, BaselineRecord, Commit, EventStore, OutboxCounts, OutboxEntry, OutboxResult,
        PendingProbe, ProbeSettlement, PruneBefore, PruneReport, SharedObservations, Versioned,
    },
};

/// Wraps a store; while [`set_down(true)`](Self::set_down), every call fails
/// with a retryable [`Error::Store`] ("connection refused"), as an
/// unreachable database would.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use continuity_core::{memory::InMemoryEventStore, store::EventStore, testing::FaultyStore, TenantId};
///
/// let store = FaultyStore::new(InMemoryEventStore::new());
/// store.set_down(true);
/// let err = store.load(&TenantId::new("acme").unwrap()).await.unwrap_err();
/// assert!(err.is_retryable());
/// # }
/// ```
#[derive(Debug)]
pub struct FaultyStore<S> {
    inner: S,
    down: AtomicBool,
    lose_ack: AtomicBool,
    baseline_loads_down: AtomicBool,
}

impl<S: EventStore> FaultyStore<S> {
    /// Wraps `inner`, up.
    pub fn new(inner: S) -> Self {
        FaultyStore {
            inner,
            down: AtomicBool::new(false),
            lose_ack: AtomicBool::new(false),
            baseline_loads_down: AtomicBool::new(false),
        }
    }

    /// Takes the store down (`true`) or brings it back.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// While `true`, only [`EventStore::load_baselines`] fails (as
    /// [`set_down`](Self::set_down) makes every call fail): a take-over
    /// that cannot load the baselines while everything else works.
    pub fn set_baseline_loads_down(&self, down: bool) {
        self.baseline_loads_down.store(down, Ordering::SeqCst);
    }

    /// The next commit is written, but its caller hears "connection reset"
    /// (a retryable [`Error::Store`]), as when the connection breaks between
    /// the database's commit and its answer.
    pub fn lose_next_ack(&self) {
        self.lose_ack.store(true, Ordering::SeqCst);
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    fn check(&self) -> Result<()> {
        if self.down.load(Ordering::SeqCst) {
            Err(refused())
        } else {
            Ok(())
        }
    }
}

fn refused() -> Error {
    Error::store_transient("faulty", "connection refused")
}

// The single-item probe methods are left to their defaults, which reach the
// batch forms below and so the switch.
#[async_trait]
impl<S: EventStore> EventStore for FaultyStore<S> {
    async fn load(&self, tenant: &TenantId) -> Result<Option<Versioned>> {
        self.check()?;
        self.inner.load(tenant).await
    }
    async fn commit(&self, tenant: &TenantId, expected: u64, commit: Commit) -> Result<u64> {
        self.check()?;
        let version = self.inner.commit(tenant, expected, commit).await?;
        if self.lose_ack.swap(false, Ordering::SeqCst) {
            return Err(Error::store_transient(
                "faulty",
                "connection reset after the commit",
            ));
        }
        Ok(version)
    }
    async fn audit_log(
        &self,
        tenant: &TenantId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<AuditRecord>> {
        self.check()?;
        self.inner.audit_log(tenant, after, limit).await
    }
    async fn claim_outbox(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>> {
        self.check()?;
        self.inner.claim_outbox(now, lease, limit).await
    }
    async fn complete_outbox(&self, id: u64, lease_id: u64, result: OutboxResult) -> Result<()> {
        self.check()?;
        self.inner.complete_outbox(id, lease_id, result).await
    }
    async fn pending_outbox(&self, limit: usize) -> Result<Vec<OutboxEntry>> {
        self.check()?;
        self.inner.pending_outbox(limit).await
    }
    async fn recent_audit(&self, tenant: &TenantId, limit: usize) -> Result<Vec<AuditRecord>> {
        self.check()?;
        self.inner.recent_audit(tenant, limit).await
    }
    async fn given_up_outbox(&self, limit: usize) -> Result<Vec<OutboxEntry>> {
        self.check()?;
        self.inner.given_up_outbox(limit).await
    }
    async fn prune(&self, before: &PruneBefore) -> Result<PruneReport> {
        self.check()?;
        self.inner.prune(before).await
    }
    async fn claim_probes(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: usize,
        shards: &ShardSet,
    ) -> Result<Vec<PendingProbe>> {
        self.check()?;
        self.inner.claim_probes(now, lease, limit, shards).await
    }
    async fn sync_shards(
        &self,
        instance: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<ShardSet> {
        self.check()?;
        self.inner.sync_shards(instance, now, lease).await
    }
    async fn release_shards(&self, instance: &str) -> Result<()> {
        self.check()?;
        self.inner.release_shards(instance).await
    }
    async fn put_probes(&self, probes: &mut Vec<PendingProbe>) -> Result<()> {
        self.check()?;
        self.inner.put_probes(probes).await
    }
    async fn put_probes_leased(
        &self,
        probes: &mut Vec<PendingProbe>,
        lease: std::time::Duration,
    ) -> Result<()> {
        self.check()?;
        self.inner.put_probes_leased(probes, lease).await
    }
    async fn settle_probes(&self, settlements: &[ProbeSettlement]) -> Vec<Result<()>> {
        if self.check().is_err() {
            return settlements.iter().map(|_| Err(refused())).collect();
        }
        self.inner.settle_probes(settlements).await
    }
    async fn save_baselines(&self, records: &[BaselineRecord]) -> Result<()> {
        self.check()?;
        self.inner.save_baselines(records).await
    }
    async fn load_baselines(&self, tenant: &TenantId) -> Result<Vec<BaselineRecord>> {
        self.check()?;
        if self.baseline_loads_down.load(Ordering::SeqCst) {
            return Err(refused());
        }
        self.inner.load_baselines(tenant).await
    }
    async fn share_observations(&self, batches: &[SharedObservations]) -> Result<()> {
        self.check()?;
        self.inner.share_observations(batches).await
    }
    async fn take_shared_observations(
        &self,
        shards: &ShardSet,
        limit: usize,
    ) -> Result<Vec<SharedObservations>> {
        self.check()?;
        self.inner.take_shared_observations(shards, limit).await
    }

    // Health and metrics.

    async fn outbox_counts(&self) -> Result<Option<OutboxCounts>> {
        self.check()?;
        self.inner.outbox_counts().await
    }
    async fn ping(&self) -> Result<()> {
        self.check()?;
        self.inner.ping().await
    }
}
