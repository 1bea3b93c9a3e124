//! A monitor driving one mail adapter's probe, for adapters' end-to-end
//! tests: both directions probed by the same [`MailProbe`], one tenant with
//! one SMS recipient, ticks on a [`ManualClock`].

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};

use super::RecordingNotifier;
use crate::config::{ChannelKind, Recipient, TenantConfig};
use crate::link::{LinkKey, LinkSigner};
use crate::probe::MailProbe;
use crate::{Direction, ManualClock, Monitor, Result, TenantId};

/// A [`Monitor`] probing tenant `acme` in both directions with one probe,
/// alerting by SMS to a [`RecordingNotifier`].
///
/// ```
/// # use std::{sync::Arc, time::Duration};
/// # use continuity_core::{ManualClock, sim::SimulatedMailSystem, testing::ProbeHarness};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let clock = ManualClock::new("2026-03-02T08:00:00Z".parse().unwrap());
/// let mail = SimulatedMailSystem::new(Arc::new(clock.clone()), Duration::from_secs(20));
/// let h = ProbeHarness::new(clock, Arc::new(mail)).await.unwrap();
/// let (arrived, lost) = h.run(30, |_now| {}).await;
/// assert!(arrived > 0);
/// assert_eq!(lost, 0);
/// assert!(h.sms.messages().is_empty());
/// # }
/// ```
#[derive(Debug)]
pub struct ProbeHarness {
    /// The clock the monitor and the run share.
    pub clock: ManualClock,
    /// The monitor.
    pub monitor: Monitor,
    /// Where the alerts go.
    pub sms: Arc<RecordingNotifier>,
    /// The one tenant, `acme`.
    pub tenant: TenantId,
}

impl ProbeHarness {
    /// The monitor on `clock`, `probe` serving both directions, `acme` registered.
    pub async fn new(clock: ManualClock, probe: Arc<dyn MailProbe>) -> Result<Self> {
        let sms = Arc::new(RecordingNotifier::new(ChannelKind::Sms));
        let monitor = Monitor::builder()
            .in_memory_store()
            .clock(Arc::new(clock.clone()))
            .probe(Direction::Inbound, probe.clone())
            .probe(Direction::Outbound, probe)
            .notifier(sms.clone())
            .link_signer(LinkSigner::new(LinkKey::new("k1", [7u8; 32])?))
            .portal_url("https://continuity.example.net/c/")
            .build()?;
        let tenant = TenantId::new("acme")?;
        monitor
            .register_tenant(super::absolute_thresholds(
                TenantConfig::new(
                    tenant.clone(),
                    vec![Recipient::new("ops", ChannelKind::Sms, "+15550100")],
                ),
                3,
            ))
            .await?;
        Ok(ProbeHarness {
            clock,
            monitor,
            sms,
            tenant,
        })
    }

    /// Runs `minutes` one-minute ticks, calling `before_tick` with each
    /// tick's time first (a test gateway reports its arrivals there).
    /// Returns the probes (arrived, lost).
    ///
    /// # Panics
    /// On a tick error or an error in a tick's report: this is test support.
    pub async fn run(
        &self,
        minutes: u32,
        mut before_tick: impl FnMut(DateTime<Utc>),
    ) -> (u64, u64) {
        let (mut arrived, mut lost) = (0, 0);
        for _ in 0..minutes {
            let now = self.clock.advance(TimeDelta::minutes(1));
            before_tick(now);
            let report = self.monitor.tick(now).await.expect("tick");
            assert!(report.errors.is_empty(), "{:?}", report.errors);
            arrived += report.probes_arrived;
            lost += report.probes_lost;
        }
        (arrived, lost)
    }
}
