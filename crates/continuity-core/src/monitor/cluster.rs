//! Cluster membership: which shards of tenants this instance owns, kept in
//! step with the store at the start of every tick (see [`crate::cluster`]).

use std::sync::atomic::Ordering;

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use super::{Monitor, Runtime, TickReport, lock, probes::released};
use crate::{cluster::ShardSet, error::Result};

impl Monitor {
    /// The shards this monitor owns: all of them unless it runs in a
    /// [cluster](super::MonitorBuilder::cluster), where the last successful sync
    /// with the store decided.
    pub fn owned_shards(&self) -> ShardSet {
        *lock(&self.cluster.owned)
    }

    /// Gives this instance's shards up (a clean shutdown of a
    /// [cluster](super::MonitorBuilder::cluster) member), so the other instances
    /// take its tenants over at their next tick instead of after the lease.
    /// First it saves the learned baselines of the tenants it owns
    /// ([`save_baselines`](Self::save_baselines)), so the instances taking
    /// them over start from what it learned; it hands the probes it holds
    /// back unchecked, for the next owners to check at their first tick (call
    /// it after the last tick: a tick still running may hold new ones).
    /// Without a cluster it does
    /// nothing.
    ///
    /// Errors: the store's, from saving the baselines or releasing the
    /// shards; the shards are released even when the save failed.
    pub async fn leave_cluster(&self) -> Result<()> {
        let Some(instance) = &self.cluster.instance else {
            return Ok(());
        };
        self.cluster.left.store(true, Ordering::Release);
        let saved = self.save_baselines().await;
        if let Err(e) = &saved {
            warn!(instance, error = %e, "saving the baselines before leaving the cluster failed");
        }
        *lock(&self.cluster.owned) = ShardSet::EMPTY;
        // What this instance kept for other owners, and from now on all it
        // observes, goes to the next owners: it owns nothing any more.
        let mut report = TickReport::default();
        self.share_forwarded(self.parts.clock.now(), &mut report)
            .await;
        // The probes this instance holds go back to the store unchecked, so
        // that the next owners check them at once rather than after their
        // leases.
        self.release_held_probes().await;
        self.parts.store.as_ref().release_shards(instance).await?;
        saved.map(|_| ())
    }

    /// Leaves things for the next instance (or the next start of this one)
    /// to take up at once: call it once, after the last tick, when the
    /// process stops cleanly (`continuity::service::Runner` does).
    ///
    /// - In a [cluster](super::MonitorBuilder::cluster) it is
    ///   [`leave_cluster`](Self::leave_cluster): baselines saved, held
    ///   probes handed back, shards released.
    /// - A single instance saves the learned baselines
    ///   ([`save_baselines`](Self::save_baselines)), hands the probes it
    ///   holds in memory back to the store unchecked, due when they were
    ///   (so that the next start checks them at its first tick rather than
    ///   after their lease, 2 minutes by default), and stores the probes it
    ///   kept in memory while the store could not take them.
    ///
    /// A tick after this works, but holds new probes again.
    ///
    /// Errors: the store's, from saving the baselines or (in a cluster)
    /// releasing the shards. A probe the store does not take back is logged
    /// and waits out its lease; everything else is still attempted.
    pub async fn shut_down(&self) -> Result<()> {
        if self.cluster.instance.is_some() {
            return self.leave_cluster().await;
        }
        let saved = self.save_baselines().await;
        if let Err(e) = &saved {
            warn!(error = %e, "saving the baselines at shutdown failed");
        }
        self.release_held_probes().await;
        let mut local = std::mem::take(&mut *lock(&self.outage.local_probes));
        if !local.is_empty() {
            let count = local.len();
            if let Err(e) = self.parts.store.as_ref().put_probes(&mut local).await {
                warn!(count, error = %e, "probes kept in memory while the store was unreachable are lost at shutdown");
            }
        }
        saved.map(|_| ())
    }

    /// Hands the probes this instance holds back to the store, unchecked.
    async fn release_held_probes(&self) {
        let released = released(std::mem::take(&mut *lock(&self.ticks.held_probes)));
        if released.is_empty() {
            return;
        }
        for (s, r) in released
            .iter()
            .zip(self.parts.store.as_ref().settle_probes(&released).await)
        {
            if let Err(e) = r {
                warn!(tenant = %s.tenant, probe_id = %s.probe_id, error = %e, "releasing a held probe failed; its lease will run out");
            }
        }
    }

    /// Renews this instance's shards and takes over or gives up shards as
    /// the store decides; tenants of shards gained are reloaded and woken.
    /// While the store cannot be reached the last known shards are kept:
    /// nobody else can take them over through an unreachable store either.
    pub(super) async fn sync_ownership(&self, now: DateTime<Utc>, report: &mut TickReport) {
        let Some(instance) = &self.cluster.instance else {
            return;
        };
        if self.cluster.left.load(Ordering::Acquire) {
            return;
        }
        let new = match self
            .parts
            .store
            .as_ref()
            .sync_shards(instance, now, self.settings.lease)
            .await
        {
            Ok(new) => new,
            Err(e) => {
                warn!(instance, error = %e, "syncing shard ownership failed; keeping the shards known");
                report.errors.push(format!("syncing shard ownership: {e}"));
                return;
            }
        };
        let old = std::mem::replace(&mut *lock(&self.cluster.owned), new);
        if new == old {
            return;
        }
        let gained = new.difference(&old);
        let lost = old.difference(&new);
        info!(
            instance,
            owned = new.len(),
            gained = gained.len(),
            lost = lost.len(),
            "shard ownership changed"
        );
        if !lost.is_empty() {
            self.save_lost(&lost, now, report).await;
        }
        if gained.is_empty() {
            return;
        }
        // Rare (instances joining or leaving): a walk over all tenants is fine.
        let runtimes: Vec<Runtime> = self.read_tenants().values().cloned().collect();
        let mut woken = Vec::new();
        for rt in runtimes {
            let mut guard = lock(&rt);
            if gained.contains(guard.shard) {
                guard.reload = true;
                guard.next_eval_at = None;
                guard.watching_since = now;
                drop(guard);
                woken.push(rt);
            }
        }
        let mut schedule = lock(&self.ticks.schedule);
        for rt in woken {
            schedule.wake(rt, DateTime::<Utc>::MIN_UTC);
        }
    }

    /// Saves the baselines of the tenants of shards just given up (to a
    /// newcomer, at the next sync of the instance that takes them): that
    /// instance then starts from what this one learned, not from its last
    /// timed save. After a partition, when the shards were taken for a lease
    /// that ran out, this may overwrite a save of the new owner's; its next
    /// timed save puts it right.
    async fn save_lost(&self, lost: &ShardSet, now: DateTime<Utc>, report: &mut TickReport) {
        // Rare (instances joining or leaving): a walk over all tenants is fine.
        let runtimes: Vec<Runtime> = self
            .read_tenants()
            .values()
            .filter(|rt| lost.contains(lock(rt).shard))
            .cloned()
            .collect();
        let owned = *lock(&self.cluster.owned);
        for rt in &runtimes {
            self.reconcile_gauges(&mut lock(rt), &owned);
        }
        match self.save_runtimes(&runtimes, now).await {
            Ok(saved) => report.baselines_saved += saved,
            Err(e) => {
                warn!(error = %e, "saving the baselines of shards given up failed");
                report
                    .errors
                    .push(format!("saving baselines of shards given up: {e}"));
            }
        }
    }
}
