//! An administrator's action racing a tick's commit to the store is kept
//! (the tick retries on the new version instead of overwriting it).

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use continuity_core::{
    TenantId,
    cluster::ShardSet,
    machine::{Action, Actor},
    memory::InMemoryEventStore,
    store::{
        AuditRecord, BaselineRecord, Commit, EventStore, OutboxEntry, OutboxResult, PendingProbe,
        ProbeSettlement, Versioned,
    },
    testing::{EngineRig, RigOptions, rig_start},
};

/// The engine rig: one tenant alerting by SMS, probed by the simulated mail
/// system or not.
async fn rig(store: Arc<dyn EventStore>, probes: bool) -> EngineRig {
    let options = RigOptions {
        probes,
        ..RigOptions::default()
    };
    EngineRig::start_on(store, options).await
}

fn op() -> Actor {
    Actor::Operator { name: "t".into() }
}

// ---- act racing a tick's commit ----
#[derive(Debug)]
struct Gate {
    inner: InMemoryEventStore,
    armed: std::sync::atomic::AtomicBool,
    reached: std::sync::atomic::AtomicBool,
    release: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl EventStore for Gate {
    async fn load(&self, t: &TenantId) -> continuity_core::Result<Option<Versioned>> {
        self.inner.load(t).await
    }
    async fn commit(&self, t: &TenantId, e: u64, c: Commit) -> continuity_core::Result<u64> {
        let r = self.inner.commit(t, e, c).await;
        if self.armed.swap(false, std::sync::atomic::Ordering::SeqCst) {
            self.reached
                .store(true, std::sync::atomic::Ordering::SeqCst);
            while !self.release.load(std::sync::atomic::Ordering::SeqCst) {
                tokio::task::yield_now().await;
            }
        }
        r
    }
    async fn audit_log(
        &self,
        t: &TenantId,
        a: u64,
        l: usize,
    ) -> continuity_core::Result<Vec<AuditRecord>> {
        self.inner.audit_log(t, a, l).await
    }
    async fn claim_outbox(
        &self,
        n: DateTime<Utc>,
        l: Duration,
        k: usize,
    ) -> continuity_core::Result<Vec<OutboxEntry>> {
        self.inner.claim_outbox(n, l, k).await
    }
    async fn complete_outbox(
        &self,
        i: u64,
        l: u64,
        r: OutboxResult,
    ) -> continuity_core::Result<()> {
        self.inner.complete_outbox(i, l, r).await
    }
    async fn pending_outbox(&self, l: usize) -> continuity_core::Result<Vec<OutboxEntry>> {
        self.inner.pending_outbox(l).await
    }
    async fn put_probes(&self, p: &mut Vec<PendingProbe>) -> continuity_core::Result<()> {
        self.inner.put_probes(p).await
    }
    async fn claim_probes(
        &self,
        n: DateTime<Utc>,
        l: Duration,
        k: usize,
        s: &ShardSet,
    ) -> continuity_core::Result<Vec<PendingProbe>> {
        self.inner.claim_probes(n, l, k, s).await
    }
    async fn sync_shards(
        &self,
        i: &str,
        n: DateTime<Utc>,
        l: Duration,
    ) -> continuity_core::Result<ShardSet> {
        self.inner.sync_shards(i, n, l).await
    }
    async fn release_shards(&self, i: &str) -> continuity_core::Result<()> {
        self.inner.release_shards(i).await
    }
    async fn settle_probes(&self, s: &[ProbeSettlement]) -> Vec<continuity_core::Result<()>> {
        self.inner.settle_probes(s).await
    }
    async fn save_baselines(&self, r: &[BaselineRecord]) -> continuity_core::Result<()> {
        self.inner.save_baselines(r).await
    }
    async fn load_baselines(&self, t: &TenantId) -> continuity_core::Result<Vec<BaselineRecord>> {
        self.inner.load_baselines(t).await
    }
}

#[tokio::test]
async fn an_action_racing_a_tick_commit_is_kept() {
    let gate = Arc::new(Gate {
        inner: InMemoryEventStore::new(),
        armed: false.into(),
        reached: false.into(),
        release: false.into(),
    });
    let r = rig(gate.clone(), false).await;
    let t0 = rig_start() + TimeDelta::minutes(1);
    r.clock.set(t0);
    r.monitor.tick(t0).await.unwrap();
    r.monitor
        .act(
            &r.tenant,
            op(),
            Action::StartEvent {
                until: t0 + TimeDelta::minutes(10),
            },
            None,
            t0,
        )
        .await
        .unwrap();
    r.monitor.tick(t0 + TimeDelta::minutes(1)).await.unwrap();
    // The tick at the event's end commits "event.expired"; hold its reply.
    let t_end = t0 + TimeDelta::minutes(10);
    r.clock.set(t_end);
    gate.armed.store(true, std::sync::atomic::Ordering::SeqCst);
    let m = r.monitor.clone();
    let h = tokio::spawn(async move { m.tick(t_end).await.unwrap() });
    while !gate.reached.load(std::sync::atomic::Ordering::SeqCst) {
        tokio::task::yield_now().await;
    }
    // Meanwhile an operator plans an event.
    r.monitor
        .act(
            &r.tenant,
            op(),
            Action::ScheduleEvent {
                start: t_end + TimeDelta::minutes(10),
                end: t_end + TimeDelta::minutes(30),
            },
            None,
            t_end,
        )
        .await
        .unwrap();
    gate.release
        .store(true, std::sync::atomic::Ordering::SeqCst);
    h.await.unwrap();
    for m in 11..120 {
        r.monitor.tick(t_end + TimeDelta::minutes(m)).await.unwrap();
    }
    let calls = r.hook.calls();
    assert_eq!(
        calls.len(),
        4,
        "start, end, planned start, planned end: {calls:?}"
    );
}
