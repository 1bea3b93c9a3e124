//! The engine test rig: a [`Monitor`] on a [`ManualClock`] with recording
//! notifiers and hook, a simulated mail system as the probe, and one tenant,
//! `acme`; helpers to tick minute by minute and to report traffic.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, TimeDelta, Utc};

use super::{RecordingHook, RecordingNotifier};
use crate::{
    Direction, FailureKind, ManualClock, Monitor, Observation, Result, TenantId,
    config::{ChannelKind, Recipient, TenantConfig},
    link::{LinkKey, LinkSigner},
    memory::InMemoryEventStore,
    policy::{FailureLimit, FailureThreshold, LatencyStatistic, LatencyThreshold},
    sim::SimulatedMailSystem,
    store::EventStore,
};

/// Where the rig's clock starts: Monday 2026-03-02 08:00 UTC.
pub fn rig_start() -> DateTime<Utc> {
    "2026-03-02T08:00:00Z".parse().expect("a valid time")
}

/// `config` watching both directions with absolute thresholds instead of
/// the learned flow policy: `count` failures in the window, and a p95
/// latency over 30 min (the defaults before the learned baseline). What
/// raises is then known in advance, whatever the tenant's history, which
/// is what tests of everything around the judgement (outbox, journal,
/// cluster, portal) need. The rig's tenant is registered this way with a
/// count of 3.
pub fn absolute_thresholds(mut config: TenantConfig, count: u32) -> TenantConfig {
    for d in [&mut config.inbound, &mut config.outbound] {
        d.failures = Some(FailureThreshold::new(FailureLimit::Count(count)));
        d.latency = Some(LatencyThreshold::new(
            LatencyStatistic::P95,
            Duration::from_secs(30 * 60),
        ));
        d.flow = None;
    }
    config
}

/// The portal URL alert links start with.
pub const RIG_PORTAL_URL: &str = "https://continuity.example.net/c/";

/// The rig's link signer (key `k1`).
pub fn rig_signer() -> LinkSigner {
    LinkSigner::new(LinkKey::new("k1", [42u8; 32]).expect("a valid key"))
}

/// What the rig is made of besides its clock, notifiers and hook.
#[derive(Clone, Debug)]
pub struct RigOptions {
    /// The simulated mail system probes both directions (20-second
    /// latency); without, only observations feed the windows.
    pub probes: bool,
    /// An e-mail notifier and recipient `ops-mail` besides SMS `ops-sms`.
    pub email: bool,
    /// The tenant's display name.
    pub display_name: Option<String>,
}

impl Default for RigOptions {
    /// Probes on, SMS only, no display name.
    fn default() -> Self {
        RigOptions {
            probes: true,
            email: false,
            display_name: None,
        }
    }
}

/// A [`Monitor`] with its clock and recording doubles, `acme` registered.
///
/// ```
/// # use continuity_core::testing::{EngineRig, RigOptions};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let r = EngineRig::start(RigOptions::default()).await;
/// r.run(30).await;
/// assert!(r.sms.messages().is_empty(), "healthy mail flow, no alert");
/// # }
/// ```
#[derive(Debug)]
pub struct EngineRig {
    /// The clock the monitor reads.
    pub clock: ManualClock,
    /// The monitor (shared, for tests that tick from several tasks).
    pub monitor: Arc<Monitor>,
    /// The SMS notifier (recipient `ops-sms`).
    pub sms: Arc<RecordingNotifier>,
    /// The e-mail notifier (recipient `ops-mail` when [`RigOptions::email`]).
    pub email: Arc<RecordingNotifier>,
    /// The continuity hook.
    pub hook: Arc<RecordingHook>,
    /// The simulated mail system (the probe when [`RigOptions::probes`]).
    pub mail: Arc<SimulatedMailSystem>,
    /// The one tenant, `acme`.
    pub tenant: TenantId,
}

impl EngineRig {
    /// The rig on a fresh in-memory store.
    pub async fn start(options: RigOptions) -> EngineRig {
        Self::start_on(Arc::new(InMemoryEventStore::new()), options).await
    }

    /// The rig on `store` (several rigs on one store are several instances).
    ///
    /// # Panics
    /// When the monitor cannot be built or the tenant registered: this is
    /// test support.
    pub async fn start_on(store: Arc<dyn EventStore>, options: RigOptions) -> EngineRig {
        Self::try_start_on(store, options)
            .await
            .expect("engine rig")
    }

    async fn try_start_on(store: Arc<dyn EventStore>, options: RigOptions) -> Result<EngineRig> {
        let clock = ManualClock::new(rig_start());
        let sms = Arc::new(RecordingNotifier::new(ChannelKind::Sms));
        let email = Arc::new(RecordingNotifier::new(ChannelKind::Email));
        let hook = Arc::new(RecordingHook::new());
        let mail = Arc::new(SimulatedMailSystem::new(
            Arc::new(clock.clone()),
            Duration::from_secs(20),
        ));
        let mut b = Monitor::builder()
            .clock(Arc::new(clock.clone()))
            .store(store)
            .notifier(sms.clone());
        if options.email {
            b = b.notifier(email.clone());
        }
        b = b
            .hook(hook.clone())
            .link_signer(rig_signer())
            .portal_url(RIG_PORTAL_URL);
        if options.probes {
            b = b
                .probe(Direction::Inbound, mail.clone())
                .probe(Direction::Outbound, mail.clone());
        }
        let monitor = Arc::new(b.build()?);
        let tenant = TenantId::new("acme")?;
        let mut recipients = vec![Recipient::new("ops-sms", ChannelKind::Sms, "+15550100")];
        if options.email {
            recipients.push(Recipient::new(
                "ops-mail",
                ChannelKind::Email,
                "ops@acme-external.example",
            ));
        }
        let mut config = absolute_thresholds(TenantConfig::new(tenant.clone(), recipients), 3);
        config.display_name = options.display_name;
        monitor.register_tenant(config).await?;
        Ok(EngineRig {
            clock,
            monitor,
            sms,
            email,
            hook,
            mail,
            tenant,
        })
    }

    /// Advances minute by minute, ticking each minute, for `minutes`.
    ///
    /// # Panics
    /// On a tick error.
    pub async fn run(&self, minutes: i64) {
        for _ in 0..minutes {
            let now = self.clock.advance(TimeDelta::minutes(1));
            self.monitor.tick(now).await.expect("tick");
        }
    }

    /// Reports `n` refused deliveries of the tenant in `direction` at `at`.
    pub fn refused(&self, direction: Direction, at: DateTime<Utc>, n: usize) {
        refused(&self.monitor, &self.tenant, direction, at, n);
    }
}

/// Reports `n` refused deliveries of `tenant` in `direction` at `at`.
///
/// # Panics
/// When the monitor refuses the observation.
pub fn refused(
    monitor: &Monitor,
    tenant: &TenantId,
    direction: Direction,
    at: DateTime<Utc>,
    n: usize,
) {
    for _ in 0..n {
        monitor
            .observe(Observation::failed(
                tenant.clone(),
                direction,
                at,
                FailureKind::Refused,
            ))
            .expect("observe");
    }
}

/// Feeds `tenant` 18 outbound deliveries, each 42 minutes late, over the 50
/// minutes before `now`: over the default 30-minute latency threshold.
///
/// # Panics
/// When the monitor refuses an observation.
pub fn late_outbound_mail(monitor: &Monitor, tenant: &TenantId, now: DateTime<Utc>) {
    for i in 0..18 {
        monitor
            .observe(Observation::delivered(
                tenant.clone(),
                Direction::Outbound,
                now - TimeDelta::minutes(50 - i),
                Duration::from_secs(42 * 60),
            ))
            .expect("observe");
    }
}
