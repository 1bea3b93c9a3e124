//! Regression tests for engine bugs found in review: wake-ups lost to a
//! sub-millisecond tick, failures stamped ahead of the clock, an action racing
//! a tick's commit, and a reminder falling due during a suspension.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use continuity_core::{
    Clock, Direction, ManualClock, Monitor, Observation, TenantId,
    cluster::ShardSet,
    config::{ChannelKind, Recipient, TenantConfig},
    link::{LinkKey, LinkSigner},
    machine::{Action, Actor, AlertKind},
    memory::InMemoryEventStore,
    sim::{RecordingHook, RecordingNotifier, SimulatedMailSystem},
    store::{
        AuditRecord, Commit, EventStore, OutboxEntry, OutboxResult, PendingProbe, ProbeSettlement,
        Versioned,
    },
};

fn start() -> DateTime<Utc> {
    "2026-03-02T08:00:00Z".parse().unwrap()
}

fn config(tenant: &TenantId) -> TenantConfig {
    TenantConfig::new(
        tenant.clone(),
        vec![Recipient::new("ops-sms", ChannelKind::Sms, "+15550100")],
    )
}

struct R {
    clock: ManualClock,
    monitor: Arc<Monitor>,
    sms: Arc<RecordingNotifier>,
    hook: Arc<RecordingHook>,
    acme: TenantId,
}

impl R {
    /// Reports `n` refused outbound deliveries at `t`.
    fn refused(&self, t: DateTime<Utc>, n: usize) {
        for _ in 0..n {
            self.monitor
                .observe(Observation::failed(
                    self.acme.clone(),
                    Direction::Outbound,
                    t,
                    continuity_core::FailureKind::Refused,
                ))
                .unwrap();
        }
    }
}

async fn rig(store: Arc<dyn EventStore>, probes: bool) -> R {
    let clock = ManualClock::new(start());
    let sms = Arc::new(RecordingNotifier::new(ChannelKind::Sms));
    let hook = Arc::new(RecordingHook::new());
    let mail = Arc::new(SimulatedMailSystem::new(
        Arc::new(clock.clone()),
        Duration::from_secs(20),
    ));
    let mut b = Monitor::builder()
        .clock(Arc::new(clock.clone()))
        .store(store)
        .notifier(sms.clone())
        .hook(hook.clone())
        .link_signer(LinkSigner::new(LinkKey::new("k1", [42u8; 32]).unwrap()))
        .portal_url("https://continuity.example.net/c/");
    if probes {
        b = b
            .probe(Direction::Inbound, mail.clone())
            .probe(Direction::Outbound, mail.clone());
    }
    let monitor = Arc::new(b.build().unwrap());
    let acme = TenantId::new("acme").unwrap();
    monitor.register_tenant(config(&acme)).await.unwrap();
    R {
        clock,
        monitor,
        sms,
        hook,
        acme,
    }
}

fn op() -> Actor {
    Actor::Operator { name: "t".into() }
}

/// A tick that lands in the same millisecond as a wake-up, but a few
/// microseconds before it, drops the wake-up for good.
#[tokio::test]
async fn a_sub_millisecond_tick_keeps_probe_rounds() {
    let r = rig(Arc::new(InMemoryEventStore::new()), true).await;
    let t1 = start() + TimeDelta::minutes(1) + TimeDelta::microseconds(700);
    r.clock.set(t1);
    let rep = r.monitor.tick(t1).await.unwrap();
    assert_eq!(rep.probes_dispatched, 2);
    // 5 min later, 400 us "earlier" in the same millisecond
    let t2 = start() + TimeDelta::minutes(6) + TimeDelta::microseconds(300);
    r.clock.set(t2);
    let mut total = r.monitor.tick(t2).await.unwrap().probes_dispatched;
    for m in 7..60 {
        let t = start() + TimeDelta::minutes(m);
        r.clock.set(t);
        total += r.monitor.tick(t).await.unwrap().probes_dispatched;
    }
    assert!(
        total > 0,
        "no probe was sent in 54 minutes after the round at t2"
    );
}

#[tokio::test]
async fn a_sub_millisecond_tick_still_ends_the_event() {
    let r = rig(Arc::new(InMemoryEventStore::new()), false).await;
    let t0 = start() + TimeDelta::minutes(1);
    r.clock.set(t0);
    r.monitor.tick(t0).await.unwrap();
    let until = t0 + TimeDelta::minutes(10) + TimeDelta::microseconds(700);
    r.monitor
        .act(&r.acme, op(), Action::StartEvent { until }, None, t0)
        .await
        .unwrap();
    let t = t0 + TimeDelta::minutes(1);
    r.monitor.tick(t).await.unwrap();
    // tick at the end's millisecond, just before it
    let t = t0 + TimeDelta::minutes(10) + TimeDelta::microseconds(300);
    r.monitor.tick(t).await.unwrap();
    for m in 11..200 {
        r.monitor.tick(t0 + TimeDelta::minutes(m)).await.unwrap();
    }
    let calls = r.hook.calls();
    assert_eq!(calls.len(), 2, "event start and end hooks: {calls:?}");
}

/// A failure stamped (within the allowed skew) in the next bucket is not in
/// view at the tick that evaluates it; the direction is then "steady".
#[tokio::test]
async fn failures_stamped_ahead_are_noticed_when_due() {
    let r = rig(Arc::new(InMemoryEventStore::new()), false).await;
    let now = start() + TimeDelta::minutes(4);
    r.clock.set(now);
    for _ in 0..3 {
        r.monitor
            .observe(Observation::failed(
                r.acme.clone(),
                Direction::Outbound,
                now + TimeDelta::minutes(2),
                continuity_core::FailureKind::Refused,
            ))
            .unwrap();
    }
    r.monitor.tick(now).await.unwrap();
    for m in 5..40 {
        let t = start() + TimeDelta::minutes(m);
        r.clock.set(t);
        r.monitor.tick(t).await.unwrap();
    }
    let st = r.monitor.status(&r.acme).unwrap();
    eprintln!("readings: {:?}", st.readings);
    assert!(
        !r.sms.messages().is_empty(),
        "3 failures in the window never raised"
    );
}

#[tokio::test]
async fn a_reminder_deferred_by_a_suspension_writes_nothing() {
    let store = Arc::new(InMemoryEventStore::new());
    let r = rig(store.clone(), false).await;
    let mut t = start();
    for _ in 0..5 {
        t += TimeDelta::minutes(1);
        r.clock.set(t);
        r.refused(t, 3);
        r.monitor.tick(t).await.unwrap();
    }
    assert_eq!(r.sms.messages().len(), 1);
    r.monitor
        .act(
            &r.acme,
            op(),
            Action::Suspend {
                until: t + TimeDelta::hours(6),
            },
            None,
            t,
        )
        .await
        .unwrap();
    for _ in 0..70 {
        t += TimeDelta::minutes(1);
        r.clock.set(t);
        r.refused(t, 3);
        r.monitor.tick(t).await.unwrap();
    }
    let v0 = store.load(&r.acme).await.unwrap().unwrap().version;
    for _ in 0..10 {
        t += TimeDelta::minutes(1);
        r.clock.set(t);
        r.monitor.tick(t).await.unwrap();
    }
    let v1 = store.load(&r.acme).await.unwrap().unwrap().version;
    assert_eq!(v0, v1, "identical state re-committed every tick");
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
    let t0 = start() + TimeDelta::minutes(1);
    r.clock.set(t0);
    r.monitor.tick(t0).await.unwrap();
    r.monitor
        .act(
            &r.acme,
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
            &r.acme,
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

// ---- a window still filling after a restart does not "resolve" an outage ----
#[tokio::test]
async fn a_restart_in_an_outage_does_not_resolve_it_on_the_first_failures() {
    let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
    let r = rig(store.clone(), false).await;
    let mut t = start();
    for _ in 0..10 {
        t += TimeDelta::minutes(1);
        r.clock.set(t);
        r.refused(t, 1);
        r.monitor.tick(t).await.unwrap();
    }
    assert_eq!(r.sms.messages().len(), 1, "raised");
    drop(r);

    // The process restarts: a new monitor on the same store, windows empty.
    let clock = ManualClock::new(t + TimeDelta::minutes(5));
    let sms = Arc::new(RecordingNotifier::new(ChannelKind::Sms));
    let monitor = Monitor::builder()
        .clock(Arc::new(clock.clone()))
        .store(store.clone())
        .notifier(sms.clone())
        .link_signer(LinkSigner::new(LinkKey::new("k1", [42u8; 32]).unwrap()))
        .portal_url("https://continuity.example.net/c/")
        .build()
        .unwrap();
    let acme = TenantId::new("acme").unwrap();
    monitor.register_tenant(config(&acme)).await.unwrap();
    let mut t = clock.now();
    // The outage goes on: one refused delivery every 10 minutes, fewer than
    // the 3 of the threshold in what the new window has seen so far.
    for minute in 0..55 {
        t += TimeDelta::minutes(1);
        clock.set(t);
        if minute % 10 == 0 {
            monitor
                .observe(Observation::failed(
                    acme.clone(),
                    Direction::Outbound,
                    t,
                    continuity_core::FailureKind::Refused,
                ))
                .unwrap();
        }
        monitor.tick(t).await.unwrap();
    }
    let kinds: Vec<AlertKind> = sms.messages().iter().map(|m| m.kind).collect();
    assert!(
        !kinds.contains(&AlertKind::Resolved),
        "a partly filled window resolved the outage: {kinds:?}"
    );
    assert_eq!(
        kinds,
        vec![AlertKind::Reminder],
        "the hourly reminder goes on"
    );
    assert!(store.load(&acme).await.unwrap().unwrap().state.any_active());
}

// ---- journal written while the store was unreachable ----

/// Refused outbound deliveries every minute for `minutes`, ticking.
async fn refuse_for(r: &R, t: &mut DateTime<Utc>, minutes: usize) {
    for _ in 0..minutes {
        *t += TimeDelta::minutes(1);
        r.clock.set(*t);
        r.refused(*t, 1);
        r.monitor.tick(*t).await.unwrap();
    }
}

#[tokio::test]
async fn a_commit_whose_answer_was_lost_is_recognised_not_written_twice() {
    let faulty = Arc::new(continuity_core::testing::FaultyStore::new(
        InMemoryEventStore::new(),
    ));
    let r = rig(faulty.clone(), false).await;
    let mut t = start();
    refuse_for(&r, &mut t, 3).await;
    assert!(r.sms.messages().is_empty(), "breached once: not raised yet");
    // The raise is written, but the monitor hears "connection reset".
    faulty.lose_next_ack();
    refuse_for(&r, &mut t, 1).await;
    assert_eq!(r.sms.messages().len(), 1, "alerted from memory");
    let landed = faulty.inner().load(&r.acme).await.unwrap().unwrap();
    assert!(landed.state.any_active(), "the commit did land");
    refuse_for(&r, &mut t, 2).await;
    let stored = faulty.inner().load(&r.acme).await.unwrap().unwrap();
    assert_eq!(stored.state.next_alert_id, 1, "one alert, not two");
    let audit = faulty.inner().audit_log(&r.acme, 0, 100).await.unwrap();
    assert!(
        audit
            .iter()
            .all(|a| a.entry.action != "store.journal.superseded"),
        "our own write was recognised: {audit:?}"
    );
    assert_eq!(r.monitor.status(&r.acme).unwrap().state, stored);
    // The alert landed in the store's outbox with the commit; the copy sent
    // from memory stands for it.
    assert_eq!(r.sms.messages().len(), 1, "sent once");
    assert!(faulty.inner().pending_outbox(10).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_journal_overtaken_by_another_writer_keeps_both_records() {
    let shared = Arc::new(InMemoryEventStore::new());
    let faulty = Arc::new(continuity_core::testing::FaultyStore::new(shared.clone()));
    let r = rig(faulty.clone(), false).await;
    let mut t = start();
    faulty.set_down(true);
    refuse_for(&r, &mut t, 4).await;
    assert_eq!(r.sms.messages().len(), 1, "alerted with the store down");
    // Meanwhile an administrator acts through another instance that can
    // reach the store.
    let other = rig(shared.clone(), false).await;
    other.clock.set(t);
    other
        .monitor
        .act(
            &other.acme,
            op(),
            Action::Suspend {
                until: t + TimeDelta::hours(2),
            },
            None,
            t,
        )
        .await
        .unwrap();
    faulty.set_down(false);
    refuse_for(&r, &mut t, 3).await;
    let stored = shared.load(&r.acme).await.unwrap().unwrap();
    assert!(
        stored.state.suspension.is_some(),
        "the other writer's action stands"
    );
    let audit = shared.audit_log(&r.acme, 0, 100).await.unwrap();
    let actions: Vec<&str> = audit.iter().map(|a| a.entry.action.as_str()).collect();
    assert!(actions.contains(&"suspension.start"), "{actions:?}");
    assert!(
        actions.contains(&"store.journal.superseded"),
        "what this instance did while cut off is recorded: {actions:?}"
    );
    assert_eq!(
        r.monitor.status(&r.acme).unwrap().state.version,
        stored.version
    );
}

#[tokio::test]
async fn a_merged_journal_write_whose_answer_was_lost_is_recognised() {
    let faulty = Arc::new(continuity_core::testing::FaultyStore::new(
        InMemoryEventStore::new(),
    ));
    let r = rig(faulty.clone(), false).await;
    let mut t = start();
    refuse_for(&r, &mut t, 2).await;
    // Two transitions while the store is down: the first breached
    // evaluation, then the raise.
    faulty.set_down(true);
    refuse_for(&r, &mut t, 2).await;
    assert_eq!(r.sms.messages().len(), 1, "alerted from memory");
    // Back, but the answer to the journal's write is lost.
    faulty.set_down(false);
    faulty.lose_next_ack();
    refuse_for(&r, &mut t, 3).await;
    let stored = faulty.inner().load(&r.acme).await.unwrap().unwrap();
    assert!(stored.state.any_active());
    assert_eq!(stored.state.next_alert_id, 1);
    let audit = faulty.inner().audit_log(&r.acme, 0, 100).await.unwrap();
    assert!(
        audit
            .iter()
            .all(|a| a.entry.action != "store.journal.superseded"),
        "the merged write was recognised as ours: {audit:?}"
    );
    assert!(faulty.inner().pending_outbox(10).await.unwrap().is_empty());
    assert_eq!(r.sms.messages().len(), 1, "sent once");
    assert_eq!(r.monitor.status(&r.acme).unwrap().state, stored);
}

#[tokio::test]
async fn an_action_right_after_the_store_returns_builds_on_the_journal() {
    let faulty = Arc::new(continuity_core::testing::FaultyStore::new(
        InMemoryEventStore::new(),
    ));
    let r = rig(faulty.clone(), false).await;
    let mut t = start();
    faulty.set_down(true);
    refuse_for(&r, &mut t, 4).await;
    assert_eq!(r.sms.messages().len(), 1, "alerted from memory");
    // While it is still down, an action cannot be stored: refused, clearly.
    let until = t + TimeDelta::hours(1);
    let refused = r
        .monitor
        .act(&r.acme, op(), Action::Suspend { until }, None, t)
        .await
        .unwrap_err();
    assert!(refused.is_retryable(), "{refused}");
    // The store is back; the administrator acts before the next tick.
    faulty.set_down(false);
    let outcome = r
        .monitor
        .act(&r.acme, op(), Action::Suspend { until }, None, t)
        .await
        .unwrap();
    assert!(
        outcome.state.any_active(),
        "the raise made while cut off is kept"
    );
    assert!(outcome.state.suspension.is_some());
    let stored = faulty.inner().load(&r.acme).await.unwrap().unwrap();
    assert_eq!(stored.state, outcome.state);
    assert_eq!(stored.state.next_alert_id, 1);
}
