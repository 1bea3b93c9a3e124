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
        // The probes this instance holds go back to the store unchecked, so
        // that the next owners check them at once rather than after their
        // leases.
        let released = released(std::mem::take(&mut *lock(&self.ticks.held_probes)));
        for (s, r) in released
            .iter()
            .zip(self.parts.store.as_ref().settle_probes(&released).await)
        {
            if let Err(e) = r {
                warn!(instance, tenant = %s.tenant, probe_id = %s.probe_id, error = %e, "releasing a held probe failed; its lease will run out");
            }
        }
        self.parts.store.as_ref().release_shards(instance).await?;
        saved.map(|_| ())
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
