//! Overdue probes are evidence: a probe pending longer than the latency
//! limit counts as a latency of at least its age, through the `Monitor` on
//! the manual clock with the simulated mail system.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, TimeDelta, Utc};
use continuity_core::{
    Clock, Direction, ManualClock, Monitor, TenantId,
    config::{ChannelKind, Recipient, TenantConfig},
    machine::AlertKind,
    memory::InMemoryEventStore,
    policy::{LatencyStatistic, LatencyThreshold, Reading},
    sim::{SimulatedFlow, SimulatedMailSystem},
    testing::{RecordingNotifier, absolute_thresholds, rig_signer, rig_start},
};

const MINUTE: TimeDelta = TimeDelta::minutes(1);
const MIN: Duration = Duration::from_secs(60);

struct Rig {
    clock: ManualClock,
    sms: Arc<RecordingNotifier>,
    mail: Arc<SimulatedMailSystem>,
    monitor: Monitor,
    acme: TenantId,
}

/// Outbound probes every 5 minutes (the default), checked every minute,
/// latency limit p95 over 5 minutes, other defaults; healthy probes take 20 s.
async fn rig() -> Rig {
    let clock = ManualClock::new(rig_start());
    let sms = Arc::new(RecordingNotifier::new(ChannelKind::Sms));
    let mail = Arc::new(SimulatedMailSystem::new(
        Arc::new(clock.clone()),
        Duration::from_secs(20),
    ));
    let monitor = Monitor::builder()
        .clock(Arc::new(clock.clone()))
        .store(Arc::new(InMemoryEventStore::new()))
        .notifier(sms.clone())
        .probe(Direction::Outbound, mail.clone())
        .link_signer(rig_signer())
        .portal_url("https://continuity.example.net/c/")
        .build()
        .unwrap();
    let acme = TenantId::new("acme").unwrap();
    let mut config = absolute_thresholds(
        TenantConfig::new(
            acme.clone(),
            vec![Recipient::new("ops-sms", ChannelKind::Sms, "+15550100")],
        ),
        3,
    );
    config.outbound.latency = Some(LatencyThreshold::new(LatencyStatistic::P95, 5 * MIN));
    monitor.register_tenant(config).await.unwrap();
    Rig {
        clock,
        sms,
        mail,
        monitor,
        acme,
    }
}

impl Rig {
    /// Ticks every minute for `minutes`; returns when the first alert was
    /// raised, if one was.
    async fn run(&self, minutes: u32) -> Option<DateTime<Utc>> {
        let mut raised = None;
        for _ in 0..minutes {
            let now = self.clock.advance(MINUTE);
            self.monitor.tick(now).await.unwrap();
            if raised.is_none()
                && self
                    .sms
                    .messages()
                    .iter()
                    .any(|m| m.kind == AlertKind::Raised)
            {
                raised = Some(now);
            }
        }
        raised
    }

    /// The outbound latency reading's value and samples, and the samples
    /// the window holds (the failures reading's, which knows no overdue).
    fn outbound_latency(&self) -> (Option<Duration>, u64, u64) {
        let status = self.monitor.status(&self.acme).unwrap();
        let outbound = || {
            status
                .readings
                .iter()
                .filter(|(d, ..)| *d == Direction::Outbound)
        };
        let (value, samples) = outbound()
            .find_map(|(_, _, v)| match v.reading {
                Reading::Latency { value, samples, .. } => Some((value, samples)),
                _ => None,
            })
            .expect("an outbound latency reading");
        let recorded = outbound()
            .find_map(|(_, _, v)| match v.reading {
                Reading::Failures { samples, .. } => Some(samples),
                _ => None,
            })
            .expect("an outbound failures reading");
        (value, samples, recorded)
    }
}

#[tokio::test]
async fn a_slowdown_is_raised_while_the_slow_probes_are_on_their_way() {
    let rig = rig().await;
    assert_eq!(rig.run(120).await, None, "two healthy hours raise nothing");
    rig.mail.set_flow(
        &rig.acme,
        Direction::Outbound,
        SimulatedFlow::Latency(25 * MIN),
    );
    let start = rig.clock.now();
    let raised = rig.run(30).await.expect("the slowdown is raised");
    assert!(
        raised - start <= TimeDelta::minutes(10),
        "raised {} min after the slowdown began (goal: 10)",
        (raised - start).num_minutes()
    );
}

#[tokio::test]
async fn occasional_multi_minute_probes_raise_nothing() {
    let rig = rig().await;
    for round in 0..36 {
        // Every fourth probe takes 4 minutes, under the 5-minute limit.
        let latency = if round % 4 == 3 {
            4 * MIN
        } else {
            20 * Duration::from_secs(1)
        };
        rig.mail.set_flow(
            &rig.acme,
            Direction::Outbound,
            SimulatedFlow::Latency(latency),
        );
        assert_eq!(rig.run(5).await, None, "round {round}");
    }
}

#[tokio::test]
async fn an_overdue_probe_that_arrives_counts_once() {
    let rig = rig().await;
    rig.run(60).await;
    // The next probe takes 8 minutes, the ones after it 20 s again.
    rig.mail.set_flow(
        &rig.acme,
        Direction::Outbound,
        SimulatedFlow::Latency(8 * MIN),
    );
    rig.run(5).await;
    rig.mail.set_flow(
        &rig.acme,
        Direction::Outbound,
        SimulatedFlow::Latency(Duration::from_secs(20)),
    );
    // 7 minutes after sending: overdue, counted as at least 6 minutes.
    rig.run(2).await;
    let (value, samples, recorded) = rig.outbound_latency();
    assert!(
        value.is_some_and(|v| v > 5 * MIN),
        "overdue counts: {value:?}"
    );
    assert_eq!(samples, recorded + 1, "the pending probe counts once");
    // Arrived: its 8 minutes replace the censored value, not join it.
    rig.run(3).await;
    let (value, samples, recorded) = rig.outbound_latency();
    assert_eq!(value, Some(8 * MIN));
    assert_eq!(samples, recorded, "the arrival replaced the overdue sample");
}
