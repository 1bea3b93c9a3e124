//! Learned baselines kept in the store: what the policies learned (the flow
//! detector's baseline) outlives a restart and follows a tenant to the
//! instance that takes it over.
//!
//! Each policy gives its [`snapshot`](ThresholdPolicy::snapshot); the
//! store keeps one [`BaselineRecord`] per tenant, direction and condition.
//! A tenant's baselines are restored when it is registered
//! ([`Monitor::register_tenant`]) and when this instance takes its shard
//! over (`evaluate.rs`, `reload_taken_over`), and saved:
//!
//! - by the tick (`save_due_baselines`, its last phase), every
//!   [`MonitorSettings::baseline_every`](super::MonitorSettings::baseline_every)
//!   per tenant, from the timer queue (`timer.rs`), so a tick's cost follows
//!   the saves due, not the number of tenants; in batches of
//!   [`MonitorSettings::batch`](super::MonitorSettings::batch) records. A
//!   failed batch is logged, reported and tried again later; the tick goes on;
//! - when this instance gives shards up (`cluster.rs`) or leaves the cluster;
//! - when the embedder asks ([`Monitor::save_baselines`], a clean shutdown).
//!
//! Baselines are not journaled while the store is unreachable: the next
//! save supersedes a lost one.

use std::{hash::Hasher, time::Duration};

use chrono::{DateTime, Utc};
use tracing::{debug, info, warn};

use super::{Monitor, Runtime, TenantRuntime, TickReport, journal::store_unreachable, lock};
use crate::{
    cluster::ShardSet,
    domain::{Direction, TenantId},
    duration::{after, ceil_ms},
    error::Result,
    fxhash::FxHasher,
    policy::ThresholdPolicy,
    store::BaselineRecord,
};

/// When a tenant registered or taken over at `now` first saves its
/// baselines: within `every`, at a whole second fixed by its id, so that
/// 100,000 tenants registered at start-up spread their saves over `every`
/// instead of all saving at one tick, and share the timer queue's slots
/// (one a second) rather than holding one each.
pub(super) fn first_save(tenant: &TenantId, now: DateTime<Utc>, every: Duration) -> DateTime<Utc> {
    let mut h = FxHasher::default();
    h.write(tenant.as_str().as_bytes());
    let share = u128::from(h.finish() >> 32);
    let secs = u128::from(every.as_secs()).saturating_mul(share) >> 32;
    after(
        now,
        Duration::from_secs(u64::try_from(secs).unwrap_or(u64::MAX)),
    )
}

/// Restores `records` into the tenant's policies of the same direction and
/// condition. A direction with a baseline restored is evaluated afresh: its
/// cached verdicts were judged on another.
pub(super) fn restore_into(rt: &mut TenantRuntime, records: &[BaselineRecord]) {
    for r in records {
        let dr = &mut rt.directions[r.direction.index()];
        let mut found = false;
        for w in dr.watches.iter_mut() {
            let policy = w.policy.get_mut();
            if policy.condition() != r.condition {
                continue;
            }
            found = true;
            if policy.restore(&r.snapshot) {
                dr.verdicts_until = None;
                dr.absorb_below = None;
            } else {
                // A changed configuration (another half-life), or bytes
                // from a build that wrote another format.
                info!(tenant = %rt.tenant, direction = %r.direction.as_str(), condition = %r.condition, saved_at = %r.saved_at, "stored baseline refused by the policy; it learns afresh");
            }
        }
        if !found {
            debug!(tenant = %rt.tenant, condition = %r.condition, "stored baseline of a condition no longer watched");
        }
    }
}

/// Restores into `to` what the policies of `from` (the same tenant's former
/// runtime) learned, over what the store gave: that is newer.
pub(super) fn carry_over(from: &TenantRuntime, to: &mut TenantRuntime) {
    let mut records = Vec::new();
    snapshots(from, DateTime::<Utc>::MIN_UTC, &mut records);
    restore_into(to, &records);
}

/// Appends the snapshots of the tenant's policies to `out` as records saved
/// at `now`; returns a hash of them (to tell whether they changed since the
/// last save).
fn snapshots(rt: &TenantRuntime, now: DateTime<Utc>, out: &mut Vec<BaselineRecord>) -> u64 {
    let mut hash = FxHasher::default();
    for d in Direction::ALL {
        for w in rt.directions[d.index()].watches.iter() {
            let policy: &dyn ThresholdPolicy = w.policy.get();
            let Some(snapshot) = policy.snapshot() else {
                continue;
            };
            hash.write_usize(d.index());
            hash.write(policy.condition().as_bytes());
            hash.write(&snapshot);
            out.push(BaselineRecord {
                tenant: rt.tenant.clone(),
                direction: d,
                condition: policy.condition().to_string(),
                saved_at: now,
                snapshot,
            });
        }
    }
    hash.finish()
}

/// What a due timer entry asks for.
enum Due {
    /// Nothing: the entry is stale, the tenant removed or another instance's.
    Nothing,
    /// The baselines did not change since the last save: look again later.
    Unchanged,
    /// Taken over without its baselines (the store could not be reached):
    /// load them before anything is saved over them.
    Owed(TenantId),
    /// Its records are in the batch.
    Save,
}

/// Records to save, with the tenants they came from and the hash of each
/// tenant's records.
#[derive(Default)]
struct Batch {
    records: Vec<BaselineRecord>,
    tenants: Vec<(Runtime, u64)>,
}

impl Batch {
    /// Adds the snapshots of `rt`'s policies unless there are none or they
    /// did not change since the last save; whether it added them.
    fn add(&mut self, rt: &Runtime, g: &TenantRuntime, now: DateTime<Utc>) -> bool {
        let start = self.records.len();
        let hash = snapshots(g, now, &mut self.records);
        if self.records.len() == start || hash == g.baseline_saved {
            self.records.truncate(start);
            return false;
        }
        self.tenants.push((rt.clone(), hash));
        true
    }
}

impl Monitor {
    /// Sets when `rt` saves its baselines next, and queues it for then.
    pub(super) fn schedule_baselines(&self, rt: &Runtime, at: DateTime<Utc>) {
        lock(rt).baseline_due = Some(at);
        lock(&self.ticks.schedule).baselines.push(at, rt.clone());
    }

    /// What a timer entry due at `key` (Unix ms) asks for `rt`; its records
    /// go into `batch`.
    fn due_baselines(
        &self,
        rt: &Runtime,
        key: i64,
        owned: &ShardSet,
        now: DateTime<Utc>,
        batch: &mut Batch,
    ) -> Due {
        let mut g = lock(rt);
        if g.removed || g.baseline_due.map(ceil_ms) != Some(key) {
            return Due::Nothing;
        }
        if !owned.contains(g.shard) {
            // Scheduled again when this instance takes the shard over.
            g.baseline_due = None;
            return Due::Nothing;
        }
        if g.baseline_owed {
            return Due::Owed(g.tenant.clone());
        }
        if batch.add(rt, &g, now) {
            Due::Save
        } else {
            Due::Unchanged
        }
    }

    /// Puts the tenants of a batch not sent back in the queue, due at once
    /// (the next tick takes them).
    fn requeue(&self, batch: &mut Batch, now: DateTime<Utc>) {
        batch.records.clear();
        for (rt, _) in batch.tenants.drain(..) {
            self.schedule_baselines(&rt, now);
        }
    }

    /// Loads and restores the baselines of a tenant taken over without them;
    /// whether it could.
    /// An unreachable store is noted for the tick (`store_down_at`), so the
    /// phase tries it no more.
    async fn pay_owed(
        &self,
        rt: &Runtime,
        tenant: &TenantId,
        now: DateTime<Utc>,
        report: &mut TickReport,
    ) -> bool {
        match self.parts.store.as_ref().load_baselines(tenant).await {
            Ok(records) => {
                let mut g = lock(rt);
                restore_into(&mut g, &records);
                g.baseline_owed = false;
                true
            }
            Err(e) => {
                warn!(%tenant, error = %e, "loading the baselines of a tenant taken over failed; retried later");
                report
                    .errors
                    .push(format!("{tenant}: loading baselines: {e}"));
                if store_unreachable(&e) {
                    *lock(&self.outage.store_down_at) = Some(now);
                }
                false
            }
        }
    }

    /// The tick's last phase: saves the baselines due, in batches of about
    /// [`MonitorSettings::batch`](super::MonitorSettings::batch) records (a
    /// tenant's records are not split). The first batch the store refuses
    /// ends the phase: the entries not tried stay due for the next tick,
    /// those of the batch are tried again after `retry_base`, so an
    /// unreachable store costs one attempt per tick.
    pub(super) async fn save_due_baselines(&self, now: DateTime<Utc>, report: &mut TickReport) {
        if *lock(&self.outage.store_down_at) == Some(now) {
            return;
        }
        let owned = *lock(&self.cluster.owned);
        let every = self.settings.baseline_every;
        let mut batch = Batch::default();
        loop {
            while batch.records.len() < self.settings.batch {
                let popped = lock(&self.ticks.schedule).baselines.pop_due(now);
                let Some((key, rt)) = popped else { break };
                let mut due = self.due_baselines(&rt, key, &owned, now, &mut batch);
                if let Due::Owed(tenant) = &due {
                    if !self.pay_owed(&rt, tenant, now, report).await {
                        let retry = after(now, self.settings.retry_base.min(every));
                        self.schedule_baselines(&rt, retry);
                        if *lock(&self.outage.store_down_at) == Some(now) {
                            // One attempt a tick at an unreachable store; the
                            // batch gathered so far waits for the next tick.
                            self.requeue(&mut batch, now);
                            return;
                        }
                        continue;
                    }
                    due = self.due_baselines(&rt, key, &owned, now, &mut batch);
                }
                match due {
                    Due::Unchanged => self.schedule_baselines(&rt, after(now, every)),
                    Due::Nothing | Due::Owed(_) | Due::Save => {}
                }
            }
            if batch.tenants.is_empty() {
                return;
            }
            let (next, failed) = match self.save_batch(&batch).await {
                Ok(saved) => {
                    report.baselines_saved += saved;
                    (after(now, every), false)
                }
                Err(e) => {
                    warn!(records = batch.records.len(), error = %e, "saving baselines failed; retried later");
                    report.errors.push(format!("saving baselines: {e}"));
                    if store_unreachable(&e) {
                        *lock(&self.outage.store_down_at) = Some(now);
                    }
                    (after(now, self.settings.retry_base.min(every)), true)
                }
            };
            for (rt, _) in &batch.tenants {
                lock(rt).baseline_due = Some(next);
            }
            lock(&self.ticks.schedule)
                .baselines
                .push_all(next, batch.tenants.drain(..).map(|(rt, _)| rt));
            if failed {
                return;
            }
            batch.records.clear();
        }
    }

    /// Saves, in batches, the baselines of `runtimes` that changed since
    /// their last save (those taken over without their baselines loaded
    /// excepted: what they hold is older than the store's). Returns the
    /// records written; stops at the first error.
    pub(super) async fn save_runtimes(
        &self,
        runtimes: &[Runtime],
        now: DateTime<Utc>,
    ) -> Result<u64> {
        let mut saved = 0u64;
        let mut batch = Batch::default();
        for rt in runtimes {
            {
                let g = lock(rt);
                if !g.removed && !g.baseline_owed {
                    batch.add(rt, &g, now);
                }
            }
            if batch.records.len() >= self.settings.batch {
                saved += self.save_batch(&batch).await?;
                batch.records.clear();
                batch.tenants.clear();
            }
        }
        if !batch.tenants.is_empty() {
            saved += self.save_batch(&batch).await?;
        }
        Ok(saved)
    }

    /// Writes `batch`; on success notes what each tenant saved.
    async fn save_batch(&self, batch: &Batch) -> Result<u64> {
        self.parts
            .store
            .as_ref()
            .save_baselines(&batch.records)
            .await?;
        for (rt, hash) in &batch.tenants {
            lock(rt).baseline_saved = *hash;
        }
        Ok(batch.records.len() as u64)
    }

    /// Saves now the learned baselines of every tenant this instance owns
    /// (those unchanged since their last save excepted), in batches of
    /// [`MonitorSettings::batch`](super::MonitorSettings::batch) records.
    /// Returns the number of records written.
    ///
    /// The tick saves each tenant's baselines every
    /// [`MonitorSettings::baseline_every`](super::MonitorSettings::baseline_every);
    /// call this on a clean shutdown so that a restart forgets nothing
    /// ([`leave_cluster`](Self::leave_cluster) does it for a cluster member).
    ///
    /// Errors: the store's, from the first batch it refused (the batches
    /// before it are saved).
    pub async fn save_baselines(&self) -> Result<u64> {
        let owned = *lock(&self.cluster.owned);
        let runtimes: Vec<Runtime> = self
            .read_tenants()
            .values()
            .filter(|rt| owned.contains(lock(rt).shard))
            .cloned()
            .collect();
        self.save_runtimes(&runtimes, self.parts.clock.now()).await
    }
}
