//! The `Monitor` end to end on the manual clock, with the simulated mail
//! system, recording notifiers and hook, and the in-memory store.

use std::{sync::Arc, time::Duration};

use chrono::TimeDelta;
use continuity_core::{
    Clock, Direction, Error, ManualClock, Monitor, Observation, TenantId,
    config::{ChannelKind, Recipient, TenantConfig},
    link::LinkRejection,
    machine::{Action, AlertKind, EventStatus},
    memory::InMemoryEventStore,
    notify::AlertMessage,
    portal::{self, PortalAction, PortalOutcome, Until},
    sim::{SimulatedFlow, SimulatedMailSystem},
    store::{AuditRecord, EventStore},
    testing::{
        EngineRig, FaultyStore, RecordingNotifier, RigOptions, absolute_thresholds, rig_signer,
        rig_start,
    },
};

const MINUTE: TimeDelta = TimeDelta::minutes(1);

/// The engine rig with e-mail besides SMS, and a handle on its in-memory
/// store for what only that store shows (dead letters).
struct Rig {
    rig: EngineRig,
    store: Arc<InMemoryEventStore>,
}

impl std::ops::Deref for Rig {
    type Target = EngineRig;
    fn deref(&self) -> &EngineRig {
        &self.rig
    }
}

/// The tenant configuration the rig registers.
fn config(tenant: &TenantId) -> TenantConfig {
    let mut c = TenantConfig::new(
        tenant.clone(),
        vec![
            Recipient::new("ops-sms", ChannelKind::Sms, "+15550100"),
            Recipient::new("ops-mail", ChannelKind::Email, "ops@acme-external.example"),
        ],
    );
    c.display_name = Some("ACME Corp".into());
    absolute_thresholds(c, 3)
}

async fn rig_with(store: Arc<InMemoryEventStore>, probes: bool) -> Rig {
    let options = RigOptions {
        probes,
        email: true,
        display_name: Some("ACME Corp".into()),
    };
    Rig {
        rig: EngineRig::start_on(store.clone(), options).await,
        store,
    }
}

async fn rig() -> Rig {
    rig_with(Arc::new(InMemoryEventStore::new()), true).await
}

impl Rig {
    /// Like `run`, also reporting `per_minute` passive outbound deliveries of `latency`.
    async fn run_with_traffic(&self, minutes: i64, latency: Duration, per_minute: u32) {
        for _ in 0..minutes {
            let now = self.clock.advance(MINUTE);
            for _ in 0..per_minute {
                self.monitor
                    .observe(Observation::delivered(
                        self.tenant.clone(),
                        Direction::Outbound,
                        now,
                        latency,
                    ))
                    .unwrap();
            }
            self.monitor.tick(now).await.unwrap();
        }
    }

    fn sms_kinds(&self) -> Vec<AlertKind> {
        self.sms.messages().iter().map(|m| m.kind).collect()
    }
}

/// The link's text after the portal URL.
fn link(m: &AlertMessage) -> &str {
    m.link
        .strip_prefix("https://continuity.example.net/c/")
        .unwrap()
}

#[tokio::test]
async fn a_latency_outage_alerts_reminds_hourly_and_resolves() {
    let r = rig().await;
    let slow = Duration::from_secs(45 * 60);
    let fast = Duration::from_secs(30);
    r.run_with_traffic(30, fast, 2).await;
    assert!(r.sms.messages().is_empty(), "healthy flow sends nothing");

    // Outbound latency climbs: p95 over the last hour passes 30 min once
    // more than 5% of the hour's deliveries are slow.
    r.run_with_traffic(10, slow, 10).await;
    let sent = r.sms.messages();
    assert_eq!(r.sms_kinds(), vec![AlertKind::Raised]);
    let alert = &sent[0];
    assert_eq!(alert.recipient.id, "ops-sms");
    assert!(
        alert
            .headline()
            .starts_with("ALERT ACME Corp: outbound p95 latency"),
        "{}",
        alert.headline()
    );
    assert_eq!(r.email.messages().len(), 1, "every channel gets the alert");
    assert_eq!(r.email.messages()[0].alert_id, alert.alert_id);
    assert_ne!(
        r.email.messages()[0].link,
        alert.link,
        "links are bound to their recipient"
    );
    let link = r
        .monitor
        .verify_link(link(alert), Some(&r.tenant), r.clock.now())
        .unwrap();
    assert_eq!(link.claims.recipient, "ops-sms");

    // Still slow: a reminder every hour, not sooner. It raised at minute 32
    // (two breached evaluations from minute 31); the clock is at minute 40.
    r.run_with_traffic(51, slow, 10).await;
    assert_eq!(
        r.sms.messages().len(),
        1,
        "no reminder before the hour is up"
    );
    r.run_with_traffic(1, slow, 10).await;
    assert_eq!(r.sms_kinds(), vec![AlertKind::Raised, AlertKind::Reminder]);
    r.run_with_traffic(60, slow, 10).await;
    assert_eq!(
        r.sms_kinds(),
        vec![AlertKind::Raised, AlertKind::Reminder, AlertKind::Reminder]
    );

    // Recovery: once the slow deliveries leave the window, it clears and resolves.
    r.run_with_traffic(90, fast, 10).await;
    let kinds = r.sms_kinds();
    assert_eq!(kinds.last(), Some(&AlertKind::Resolved), "{kinds:?}");
    assert!(
        r.sms
            .messages()
            .last()
            .unwrap()
            .headline()
            .starts_with("RESOLVED ACME Corp")
    );
    let n = kinds.len();
    r.run_with_traffic(180, fast, 2).await;
    assert_eq!(r.sms_kinds().len(), n, "nothing more once healthy");
}

#[tokio::test]
async fn lost_probes_count_as_failures() {
    let r = rig().await;
    r.run(20).await;
    let s = r.monitor.status(&r.tenant).unwrap();
    assert!(
        s.readings
            .iter()
            .any(|(d, n, v)| *d == Direction::Inbound && n == "latency" && !v.breached)
    );
    assert!(r.sms.messages().is_empty());

    r.mail
        .set_flow(&r.tenant, Direction::Inbound, SimulatedFlow::Blackhole);
    // Probes every 5 min, lost after 30 min; 3 failures in the window raise
    // after 2 consecutive breached evaluations.
    r.run(60).await;
    let sent = r.sms.messages();
    assert_eq!(
        sent.len(),
        1,
        "{:?}",
        sent.iter().map(|m| m.headline()).collect::<Vec<_>>()
    );
    assert!(
        sent[0].headline().contains("inbound 3 failures"),
        "{}",
        sent[0].headline()
    );
}

#[tokio::test]
async fn arrived_probes_feed_the_latency_window() {
    let r = rig().await;
    r.mail.set_flow(
        &r.tenant,
        Direction::Outbound,
        SimulatedFlow::Latency(Duration::from_secs(40 * 60)),
    );
    // Probes arrive after 40 min (past the 30 min deadline? no: deadline is 30 min, so they are lost).
    // Use a 20 min latency against a 10 min limit instead.
    let mut c = config(&r.tenant);
    c.outbound.latency.as_mut().unwrap().limit = Duration::from_secs(10 * 60);
    r.monitor.register_tenant(c).await.unwrap();
    r.mail.set_flow(
        &r.tenant,
        Direction::Outbound,
        SimulatedFlow::Latency(Duration::from_secs(20 * 60)),
    );
    r.run(60).await;
    let sent = r.sms.messages();
    assert_eq!(sent.len(), 1);
    assert!(
        sent[0].headline().contains("outbound p95 latency 20 min"),
        "{}",
        sent[0].headline()
    );
}

#[tokio::test]
async fn a_refusing_server_counts_as_failures() {
    let r = rig().await;
    r.mail
        .set_flow(&r.tenant, Direction::Outbound, SimulatedFlow::Refusing);
    r.run(30).await;
    assert_eq!(r.sms_kinds(), vec![AlertKind::Raised]);
    assert!(r.sms.messages()[0].headline().contains("outbound"));
}

#[tokio::test]
async fn failed_deliveries_stay_in_the_outbox_until_they_go_out() {
    let r = rig().await;
    r.sms.fail_next(3, true);
    r.mail
        .set_flow(&r.tenant, Direction::Outbound, SimulatedFlow::Refusing);
    // Dispatch failures at minutes 1, 6 and 11 breach at 11 and 12: raised at 12.
    r.run(12).await;
    assert!(r.sms.messages().is_empty(), "first attempts fail");
    assert_eq!(
        r.email.messages().len(),
        1,
        "other channels are not held up"
    );
    assert!(
        !r.store.pending_outbox(10).await.unwrap().is_empty(),
        "kept for retry"
    );
    r.run(10).await;
    assert_eq!(r.sms.messages().len(), 1, "delivered after retries");
    assert_eq!(r.sms.attempts(), 4);
    assert!(r.store.pending_outbox(10).await.unwrap().is_empty());
    assert!(r.store.dead_letters().is_empty());
}

#[tokio::test]
async fn a_permanent_delivery_error_is_given_up_and_kept_for_inspection() {
    let r = rig().await;
    r.sms.fail_next(1, false);
    r.mail
        .set_flow(&r.tenant, Direction::Outbound, SimulatedFlow::Refusing);
    r.run(30).await;
    assert!(r.sms.messages().is_empty());
    let dead = r.store.dead_letters();
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0].last_error.as_deref().unwrap().contains("simulated"),
        "{:?}",
        dead[0].last_error
    );
}

#[tokio::test]
async fn an_administrator_runs_a_continuity_event_through_the_link() {
    let r = rig().await;
    r.mail
        .set_flow(&r.tenant, Direction::Outbound, SimulatedFlow::Refusing);
    r.run(30).await;
    let alert = r.sms.messages().remove(0);
    let now = r.clock.now();

    // Each at the clock's time, as the portal acts.
    let act = |action| portal::act(&r.monitor, link(&alert), action, None, r.clock.now());
    let PortalOutcome::Done(started) = act(PortalAction::StartEvent(Until::At(
        now + TimeDelta::hours(4),
    )))
    .await
    .unwrap() else {
        panic!("the start was not done");
    };
    let event = started.active_event.clone().unwrap();
    assert_eq!(event.status, EventStatus::Active);
    r.run(1).await;
    assert_eq!(r.hook.calls().len(), 1, "hook called with the start");
    assert!(r.hook.calls()[0].started);

    let extended = act(PortalAction::ExtendEvent(Until::At(
        now + TimeDelta::hours(6),
    )))
    .await
    .unwrap();
    assert!(matches!(extended, PortalOutcome::Done(_)), "{extended:?}");
    let shortened = act(PortalAction::ExtendEvent(Until::At(
        now + TimeDelta::hours(5),
    )))
    .await
    .unwrap();
    assert!(
        matches!(shortened, PortalOutcome::Refused { .. }),
        "{shortened:?}"
    );
    let ended = act(PortalAction::EndEvent).await.unwrap();
    assert!(matches!(ended, PortalOutcome::Done(_)), "{ended:?}");
    r.run(1).await;
    let calls = r.hook.calls();
    assert_eq!(calls.len(), 2);
    assert!(!calls[1].started);
    assert_eq!(calls[1].event.id, event.id);

    let audit: Vec<AuditRecord> = r.store.audit_log(&r.tenant, 0, 100).await.unwrap();
    let actions: Vec<&str> = audit.iter().map(|a| a.entry.action.as_str()).collect();
    // The alert that brought the link is in the trail too, by the system.
    assert_eq!(
        actions,
        vec!["alert.raised", "event.start", "event.extend", "event.end"]
    );
    assert_eq!(
        audit[0].entry.actor,
        continuity_core::machine::Actor::System
    );
    assert!(
        audit[0]
            .entry
            .after
            .starts_with(&format!("alert #{} raised: outbound ", alert.alert_id)),
        "{:?}",
        audit[0].entry
    );
    match &audit[1].entry.actor {
        continuity_core::machine::Actor::Link {
            recipient,
            alert_id,
            ..
        } => {
            assert_eq!(recipient, "ops-sms");
            assert_eq!(*alert_id, alert.alert_id);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn hook_calls_are_retried_in_order() {
    let r = rig().await;
    r.hook.fail_next(3);
    let now = r.clock.now();
    let op = continuity_core::machine::Actor::Operator { name: "noc".into() };
    r.monitor
        .act(
            &r.tenant,
            op.clone(),
            Action::StartEvent {
                until: now + TimeDelta::minutes(30),
            },
            None,
            now,
        )
        .await
        .unwrap();
    r.monitor
        .act(&r.tenant, op, Action::EndEvent, None, now)
        .await
        .unwrap();
    r.run(1).await;
    assert!(r.hook.calls().is_empty(), "start failed, end waits");
    r.run(20).await;
    let calls = r.hook.calls();
    assert_eq!(
        calls.iter().map(|c| c.started).collect::<Vec<_>>(),
        vec![true, false],
        "start before end"
    );
}

#[tokio::test]
async fn links_are_refused_with_their_reason() {
    let r = rig().await;
    r.mail
        .set_flow(&r.tenant, Direction::Outbound, SimulatedFlow::Refusing);
    r.run(30).await;
    let alert = r.sms.messages().remove(0);
    let reason = |e: Error| match e {
        Error::Link { reason } => reason,
        other => panic!("{other:?}"),
    };
    let mut tampered = link(&alert).to_string();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let refused = |outcome: PortalOutcome| match outcome {
        PortalOutcome::LinkRefused { reason } => reason,
        other => panic!("{other:?}"),
    };
    let now = r.clock.now();
    let outcome = portal::act(&r.monitor, &tampered, PortalAction::EndEvent, None, now)
        .await
        .unwrap();
    assert!(matches!(
        refused(outcome),
        LinkRejection::BadSignature | LinkRejection::Malformed
    ));
    let other = TenantId::new("globex").unwrap();
    let e = r
        .monitor
        .verify_link(link(&alert), Some(&other), r.clock.now())
        .unwrap_err();
    assert_eq!(reason(e), LinkRejection::WrongTenant);

    let later = r.clock.advance(TimeDelta::hours(24));
    let outcome = portal::act(
        &r.monitor,
        link(&alert),
        PortalAction::EndEvent,
        None,
        later,
    )
    .await
    .unwrap();
    let why = refused(outcome);
    assert!(matches!(why, LinkRejection::Expired { .. }));
    assert!(
        why.to_string()
            .contains("fresh link comes with the next alert"),
        "{why}"
    );
}

#[tokio::test]
async fn bad_calls_get_typed_errors() {
    let r = rig().await;
    let ghost = TenantId::new("ghost").unwrap();
    assert!(matches!(
        r.monitor.observe(Observation::delivered(
            ghost.clone(),
            Direction::Inbound,
            rig_start(),
            Duration::from_secs(1)
        )),
        Err(Error::UnknownTenant { .. })
    ));
    r.run(2).await;
    let e = r.monitor.tick(rig_start()).await.unwrap_err();
    assert!(matches!(e, Error::ClockWentBackwards { .. }), "{e}");
    let mut bad = config(&r.tenant);
    bad.recipients.push(Recipient::new(
        "hook",
        ChannelKind::Webhook,
        "https://hooks.example/x",
    ));
    let e = r.monitor.register_tenant(bad).await.unwrap_err();
    assert!(e.to_string().contains("no webhook notifier"), "{e}");
    let e = Monitor::builder()
        .in_memory_store()
        .link_signer(rig_signer())
        .portal_url("https://x/")
        .build()
        .unwrap_err();
    assert!(matches!(e, Error::InvalidConfig { .. }));
    // An observation far older than the window is dropped and counted, not an error.
    let old = Observation::delivered(
        r.tenant.clone(),
        Direction::Outbound,
        rig_start() - TimeDelta::days(3),
        Duration::from_secs(1),
    );
    assert_eq!(
        r.monitor.observe(old).unwrap(),
        continuity_core::window::Recorded::TooOld
    );
}

#[test]
fn the_store_is_chosen_explicitly() {
    let builder = || {
        Monitor::builder()
            .notifier(Arc::new(RecordingNotifier::new(ChannelKind::Sms)))
            .link_signer(rig_signer())
            .portal_url("https://continuity.example.net/c/")
    };
    match builder().build() {
        Err(Error::InvalidConfig { field, reason }) => {
            assert_eq!(field, "store");
            assert!(
                reason.contains(".store(") && reason.contains(".in_memory_store()"),
                "{reason}"
            );
        }
        other => panic!("expected a missing-store error, got {other:?}"),
    }
    builder().in_memory_store().build().unwrap();
}

#[tokio::test]
async fn two_instances_on_one_store_send_each_alert_once() {
    let store = Arc::new(InMemoryEventStore::new());
    let a = rig_with(store.clone(), false).await;
    let b = rig_with(store.clone(), false).await;
    // Both instances see the same traffic (as when the gateway reports to both).
    for _ in 0..200 {
        let now = a.clock.advance(MINUTE);
        b.clock.set(now);
        for r in [&a, &b] {
            r.refused(Direction::Outbound, now, 5);
        }
        a.monitor.tick(now).await.unwrap();
        b.monitor.tick(now).await.unwrap();
    }
    let ids: Vec<u64> = a
        .sms
        .messages()
        .iter()
        .chain(b.sms.messages().iter())
        .map(|m| m.alert_id)
        .collect();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(ids.len(), unique.len(), "no alert sent twice: {ids:?}");
    assert_eq!(
        ids.len(),
        4,
        "raised + 3 hourly reminders in 200 minutes: {ids:?}"
    );
}

/// A monitor on a store that can be taken down, with an outbound probe.
struct FaultyRig {
    clock: ManualClock,
    sms: Arc<RecordingNotifier>,
    store: Arc<FaultyStore<InMemoryEventStore>>,
    mail: Arc<SimulatedMailSystem>,
    monitor: Monitor,
    acme: TenantId,
}

async fn faulty_rig() -> FaultyRig {
    let clock = ManualClock::new(rig_start());
    let sms = Arc::new(RecordingNotifier::new(ChannelKind::Sms));
    let store = Arc::new(FaultyStore::new(InMemoryEventStore::new()));
    let mail = Arc::new(SimulatedMailSystem::new(
        Arc::new(clock.clone()),
        Duration::from_secs(20),
    ));
    let monitor = Monitor::builder()
        .clock(Arc::new(clock.clone()))
        .store(store.clone())
        .notifier(sms.clone())
        .notifier(Arc::new(RecordingNotifier::new(ChannelKind::Email)))
        .probe(Direction::Outbound, mail.clone())
        .link_signer(rig_signer())
        .portal_url("https://continuity.example.net/c/")
        .build()
        .unwrap();
    let acme = TenantId::new("acme").unwrap();
    monitor.register_tenant(config(&acme)).await.unwrap();
    FaultyRig {
        clock,
        sms,
        store,
        mail,
        monitor,
        acme,
    }
}

#[tokio::test]
async fn an_unreachable_store_does_not_silence_the_alert_and_loses_nothing() {
    let FaultyRig {
        clock,
        sms,
        store,
        monitor,
        acme,
        ..
    } = faulty_rig().await;
    store.set_down(true);
    let refuse = |now| {
        monitor
            .observe(Observation::failed(
                acme.clone(),
                Direction::Inbound,
                now,
                continuity_core::FailureKind::Refused,
            ))
            .unwrap();
    };
    for _ in 0..10 {
        let now = clock.advance(MINUTE);
        refuse(now);
        let report = monitor.tick(now).await.unwrap();
        assert!(!report.errors.is_empty(), "store errors are reported");
    }
    let sent = sms.messages();
    assert_eq!(sent.len(), 1, "the alert went out while the store was down");
    assert_eq!(sent[0].kind, AlertKind::Raised);
    assert!(
        store.inner().load(&acme).await.unwrap().is_none(),
        "nothing reached the store"
    );

    store.set_down(false);
    let now = clock.advance(MINUTE);
    refuse(now);
    assert!(monitor.tick(now).await.unwrap().errors.is_empty());
    // What happened while the store was down is written now.
    let stored = store.inner().load(&acme).await.unwrap().unwrap();
    assert!(stored.state.any_active(), "the raised condition is stored");
    assert_eq!(stored.state.next_alert_id, 1, "the alert is recorded");
    assert_eq!(
        monitor.status(&acme).unwrap().state,
        stored,
        "the monitor works on the stored version now"
    );
    assert!(
        store.inner().pending_outbox(10).await.unwrap().is_empty(),
        "delivered alerts are not queued again"
    );
    assert_eq!(sms.messages().len(), 1, "and not sent again");

    // The outage goes on: the hourly reminder comes from the stored schedule.
    for _ in 0..60 {
        let now = clock.advance(MINUTE);
        refuse(now);
        assert!(monitor.tick(now).await.unwrap().errors.is_empty());
    }
    let kinds: Vec<AlertKind> = sms.messages().iter().map(|m| m.kind).collect();
    assert_eq!(kinds, vec![AlertKind::Raised, AlertKind::Reminder]);
}

#[tokio::test]
async fn probes_sent_while_the_store_is_down_are_checked_from_memory() {
    let FaultyRig {
        clock,
        sms,
        store,
        mail,
        monitor,
        acme,
    } = faulty_rig().await;
    // The store and the organisation's server fail together.
    store.set_down(true);
    mail.set_flow(&acme, Direction::Outbound, SimulatedFlow::Blackhole);
    let mut lost = 0;
    for _ in 0..60 {
        let now = clock.advance(MINUTE);
        lost += monitor.tick(now).await.unwrap().probes_lost;
    }
    assert!(
        lost >= 3,
        "probes kept in memory were checked and lost: {lost}"
    );
    let kinds: Vec<AlertKind> = sms.messages().iter().map(|m| m.kind).collect();
    assert_eq!(
        kinds,
        vec![AlertKind::Raised],
        "alerted with the store down"
    );

    store.set_down(false);
    let now = clock.advance(MINUTE);
    monitor.tick(now).await.unwrap();
    let stored = store.inner().load(&acme).await.unwrap().unwrap();
    assert!(stored.state.any_active());
    assert!(
        store.inner().probe_count() > 0,
        "the probes still pending went to the store"
    );
}

#[tokio::test]
async fn scenario_three_simulated_days() {
    let r = rig().await;
    // Day 1 healthy; day 2 outbound blackholed 10:00-13:00; day 3 healthy with a planned event.
    r.run(24 * 60).await;
    assert!(r.sms.messages().is_empty());
    r.run(2 * 60).await;
    r.mail
        .set_flow(&r.tenant, Direction::Outbound, SimulatedFlow::Blackhole);
    r.run(3 * 60).await;
    r.mail.set_flow(
        &r.tenant,
        Direction::Outbound,
        SimulatedFlow::Latency(Duration::from_secs(20)),
    );
    r.run(19 * 60).await;
    let kinds = r.sms_kinds();
    assert_eq!(kinds.first(), Some(&AlertKind::Raised));
    assert_eq!(kinds.last(), Some(&AlertKind::Resolved));
    assert!(
        kinds.iter().filter(|k| **k == AlertKind::Reminder).count() >= 2,
        "{kinds:?}"
    );
    let op = continuity_core::machine::Actor::Operator { name: "noc".into() };
    let now = r.clock.now();
    r.monitor
        .act(
            &r.tenant,
            op,
            Action::ScheduleEvent {
                start: now + TimeDelta::hours(2),
                end: now + TimeDelta::hours(4),
            },
            None,
            now,
        )
        .await
        .unwrap();
    r.run(24 * 60).await;
    let calls = r.hook.calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].event.start, now + TimeDelta::hours(2));
    assert!(calls[1].event.end_reason.is_some());
    assert!(
        r.store.probe_count() <= 2,
        "only the probes in flight are pending"
    );
}

#[tokio::test]
async fn hysteresis_counts_one_evaluation_per_tick() {
    let r = rig_with(Arc::new(InMemoryEventStore::new()), false).await;
    let mut c = config(&r.tenant);
    c.inbound.raise_after = 4;
    r.monitor.register_tenant(c).await.unwrap();
    let mut raised_at = None;
    for minute in 1..=6 {
        let now = r.clock.advance(MINUTE);
        r.refused(Direction::Inbound, now, 3);
        r.monitor.tick(now).await.unwrap();
        if raised_at.is_none() && !r.sms.messages().is_empty() {
            raised_at = Some(minute);
        }
    }
    assert_eq!(
        raised_at,
        Some(4),
        "raise_after = 4 breached evaluations, one per tick"
    );
}

#[tokio::test]
async fn a_condition_whose_policy_was_removed_clears() {
    let r = rig().await;
    let mut c = config(&r.tenant);
    // One period per probe round, so every period holds a failure.
    let mut leaky = continuity_core::policy::LeakyThreshold::new(1, Duration::from_secs(60));
    leaky.period = Duration::from_secs(300);
    c.inbound.leaky = Some(leaky);
    c.inbound.failures = None;
    c.inbound.latency = None;
    r.monitor.register_tenant(c).await.unwrap();
    r.mail
        .set_flow(&r.tenant, Direction::Inbound, SimulatedFlow::Refusing);
    r.run(15).await;
    assert_eq!(r.sms_kinds(), vec![AlertKind::Raised]);
    assert!(
        r.monitor
            .status(&r.tenant)
            .unwrap()
            .state
            .state
            .condition(Direction::Inbound, "leaky")
            .unwrap()
            .active
    );
    // The administrator drops the leaky counter; the flow is fine again.
    r.mail.set_flow(
        &r.tenant,
        Direction::Inbound,
        SimulatedFlow::Latency(Duration::from_secs(20)),
    );
    r.monitor.register_tenant(config(&r.tenant)).await.unwrap();
    r.run(10).await;
    let state = r.monitor.status(&r.tenant).unwrap().state.state;
    assert!(!state.any_active(), "{:?}", state.conditions);
    assert_eq!(r.sms_kinds().last(), Some(&AlertKind::Resolved));
}

#[tokio::test]
async fn re_registering_during_an_outage_does_not_resolve_it() {
    let r = rig_with(Arc::new(InMemoryEventStore::new()), false).await;
    for _ in 0..5 {
        let now = r.clock.advance(MINUTE);
        r.refused(Direction::Outbound, now, 3);
        r.monitor.tick(now).await.unwrap();
    }
    assert_eq!(r.sms_kinds(), vec![AlertKind::Raised]);
    // New windows, no data yet: that is not a recovery.
    r.monitor.register_tenant(config(&r.tenant)).await.unwrap();
    r.run(30).await;
    assert_eq!(
        r.sms_kinds(),
        vec![AlertKind::Raised],
        "no false resolved notice"
    );
}

#[tokio::test]
async fn far_future_observations_are_refused_and_probe_clocks_clamped() {
    let r = rig().await;
    let future = r.clock.now() + TimeDelta::days(365);
    let e = r
        .monitor
        .observe(Observation::delivered(
            r.tenant.clone(),
            Direction::Inbound,
            future,
            Duration::from_secs(1),
        ))
        .unwrap_err();
    assert!(matches!(e, Error::InvalidObservation { .. }), "{e}");
    // Within the allowed skew is fine.
    let soon = r.clock.now() + TimeDelta::minutes(2);
    r.monitor
        .observe(Observation::delivered(
            r.tenant.clone(),
            Direction::Inbound,
            soon,
            Duration::from_secs(1),
        ))
        .unwrap();
    // The window still sees the failures that follow.
    for _ in 0..10 {
        let now = r.clock.advance(MINUTE);
        r.monitor
            .observe(Observation::failed(
                r.tenant.clone(),
                Direction::Inbound,
                now,
                continuity_core::FailureKind::Refused,
            ))
            .unwrap();
        r.monitor.tick(now).await.unwrap();
    }
    assert_eq!(r.sms_kinds(), vec![AlertKind::Raised]);
}

#[tokio::test]
async fn hook_calls_keep_their_order_across_ticks() {
    let r = rig().await;
    r.hook.fail_next(1);
    let op = continuity_core::machine::Actor::Operator { name: "noc".into() };
    let now = r.clock.now();
    r.monitor
        .act(
            &r.tenant,
            op.clone(),
            Action::StartEvent {
                until: now + TimeDelta::hours(1),
            },
            None,
            now,
        )
        .await
        .unwrap();
    r.run(1).await; // the start fails and is retried 30 s later
    let now = r.clock.now() + TimeDelta::seconds(10);
    r.monitor
        .act(&r.tenant, op, Action::EndEvent, None, now)
        .await
        .unwrap();
    r.clock.set(now);
    r.monitor.tick(now).await.unwrap();
    assert!(r.hook.calls().is_empty(), "the end waits for the start");
    r.run(5).await;
    assert_eq!(
        r.hook.calls().iter().map(|c| c.started).collect::<Vec<_>>(),
        vec![true, false]
    );
}

#[tokio::test]
async fn a_recipient_never_reads_resolved_before_the_alert() {
    let r = rig_with(Arc::new(InMemoryEventStore::new()), false).await;
    let mut c = config(&r.tenant);
    c.inbound.clear_after = 1;
    c.inbound.raise_after = 1;
    c.inbound.window = Duration::from_secs(60);
    r.monitor.register_tenant(c).await.unwrap();
    r.sms.fail_next(3, true);
    let now = r.clock.advance(MINUTE);
    r.refused(Direction::Inbound, now, 3);
    r.monitor.tick(now).await.unwrap();
    for _ in 0..20 {
        let now = r.clock.advance(MINUTE);
        r.monitor
            .observe(Observation::delivered(
                r.tenant.clone(),
                Direction::Inbound,
                now,
                Duration::from_secs(5),
            ))
            .unwrap();
        r.monitor.tick(now).await.unwrap();
    }
    assert_eq!(r.sms_kinds(), vec![AlertKind::Raised, AlertKind::Resolved]);
    let email: Vec<AlertKind> = r.email.messages().iter().map(|m| m.kind).collect();
    assert_eq!(email, vec![AlertKind::Raised, AlertKind::Resolved]);
}

#[tokio::test]
async fn a_running_streak_is_evaluated_every_tick_without_new_data() {
    let r = rig_with(Arc::new(InMemoryEventStore::new()), false).await;
    let mut c = config(&r.tenant);
    c.outbound.raise_after = 3;
    r.monitor.register_tenant(c).await.unwrap();
    let now = r.clock.advance(MINUTE);
    r.refused(Direction::Outbound, now, 3);
    r.monitor.tick(now).await.unwrap();
    r.run(1).await;
    assert!(
        r.sms.messages().is_empty(),
        "two breached evaluations so far"
    );
    r.run(1).await;
    assert_eq!(
        r.sms_kinds(),
        vec![AlertKind::Raised],
        "the third tick raises, with no new data"
    );
}

#[tokio::test]
async fn the_engine_can_run_on_a_multi_threaded_runtime() {
    fn assert_send<T: Send>(t: T) -> T {
        t
    }
    fn assert_sync<T: Send + Sync>(_: &T) {}
    let r = rig().await;
    assert_sync(&r.monitor);
    let now = r.clock.advance(MINUTE);
    assert_send(r.monitor.tick(now)).await.unwrap();
    let op = continuity_core::machine::Actor::Operator { name: "noc".into() };
    assert_send(r.monitor.act(
        &r.tenant,
        op,
        Action::StartEvent {
            until: now + TimeDelta::hours(1),
        },
        None,
        now,
    ))
    .await
    .unwrap();
}
