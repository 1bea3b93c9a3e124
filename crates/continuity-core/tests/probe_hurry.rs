//! Probes sent at once to confirm what a slow or an on-time probe hints
//! (`ThresholdPolicy::probe_soon`), through the `Monitor` on the manual
//! clock with the simulated mail system: a slowdown seen by probes alone is
//! raised within minutes, its end too, and the extra probes stop once the
//! question is answered.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, TimeDelta, Utc};
use continuity_core::{
    Clock, Direction, ManualClock, Monitor, TenantId,
    config::{ChannelKind, Recipient, TenantConfig},
    machine::AlertKind,
    memory::InMemoryEventStore,
    sim::{SimulatedFlow, SimulatedMailSystem},
    testing::{RecordingNotifier, rig_signer, rig_start},
};

const MINUTE: TimeDelta = TimeDelta::minutes(1);

struct Rig {
    clock: ManualClock,
    sms: Arc<RecordingNotifier>,
    mail: Arc<SimulatedMailSystem>,
    monitor: Monitor,
    acme: TenantId,
}

impl Rig {
    /// Outbound probes every 5 minutes (the defaults), healthy ones back
    /// after 20 s, and a day of them learned.
    async fn after_a_day() -> Rig {
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
        let mut config = TenantConfig::new(
            acme.clone(),
            vec![Recipient::new("ops-sms", ChannelKind::Sms, "+15550100")],
        );
        config.probes.inbound = false;
        monitor.register_tenant(config).await.unwrap();
        let rig = Rig {
            clock,
            sms,
            mail,
            monitor,
            acme,
        };
        let (hurried, _) = rig.run(24 * 60, None).await;
        assert_eq!(hurried, 0, "healthy probes ask for no more");
        assert!(rig.sms.messages().is_empty());
        rig
    }

    /// Ticks every minute for `minutes`; returns the probes hurried and
    /// when the first alert of `kind` went out, if one did.
    async fn run(&self, minutes: u32, kind: Option<AlertKind>) -> (u64, Option<DateTime<Utc>>) {
        let (mut hurried, mut at) = (0, None);
        for _ in 0..minutes {
            let now = self.clock.advance(MINUTE);
            let report = self.monitor.tick(now).await.unwrap();
            assert!(report.probes_hurried <= report.probes_dispatched);
            hurried += report.probes_hurried;
            let sent = self.sms.messages();
            if at.is_none() && kind.is_some_and(|k| sent.iter().any(|m| m.kind == k)) {
                at = Some(now);
            }
        }
        (hurried, at)
    }

    fn slow_down(&self, latency: Duration) {
        self.mail.set_flow(
            &self.acme,
            Direction::Outbound,
            SimulatedFlow::Latency(latency),
        );
    }
}

#[tokio::test]
async fn a_slowdown_seen_by_probes_alone_is_confirmed_in_minutes_and_so_is_its_end() {
    let rig = Rig::after_a_day().await;
    let start = rig.clock.now();
    rig.slow_down(Duration::from_secs(25 * 60));
    let (hurried, raised) = rig.run(15, Some(AlertKind::Raised)).await;
    let raised = raised.expect("the slowdown is raised");
    // Probes every 5 minutes alone would need three rounds (10 to 15 min).
    assert!(
        raised - start <= TimeDelta::minutes(10),
        "raised after {}",
        raised - start
    );
    assert!((1..=3).contains(&hurried), "{hurried} probes hurried");

    // While it lasts, nothing more is asked: the question is answered.
    let (hurried, _) = rig.run(60, None).await;
    assert_eq!(hurried, 0, "probes hurried while the slowdown was known");

    let end = rig.clock.now();
    rig.slow_down(Duration::from_secs(20));
    let (hurried, resolved) = rig.run(30, Some(AlertKind::Resolved)).await;
    let resolved = resolved.expect("the end is seen");
    assert!(
        resolved - end <= TimeDelta::minutes(15),
        "resolved after {}",
        resolved - end
    );
    assert!((1..=6).contains(&hurried), "{hurried} probes hurried");
}
