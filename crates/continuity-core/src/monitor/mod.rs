//! The `Monitor`: the engine that ties windows, policies, the state machine,
//! the store, the notifiers, the probes and the hook together.
//!
//! One `Monitor` watches many tenants. The embedder calls
//! [`Monitor::observe`] for every real delivery it sees (cheap, synchronous,
//! no I/O) and [`Monitor::tick`] periodically (every minute is typical).
//! A tick works only on what is due, so its cost follows the work to do, not
//! the number of tenants.
//!
//! Windows live in memory: after a restart they fill again from new
//! observations. Everything else (conditions, events, suspensions, alert
//! schedule, pending probes, outbox, audit log) lives in the store, and so
//! does what the policies learned (the flow detector's baseline), saved
//! every [`MonitorSettings::baseline_every`] and restored on registration
//! and take-over (`baselines.rs`).
//!
//! # One tick, step by step
//!
//! The files of this module follow the phases of a tick. [`Monitor::tick`]
//! (in this file) refuses to run twice at once or with a time before the
//! previous tick's, then:
//!
//! 1. **Cluster sync** (`cluster.rs`, `sync_ownership`). In a
//!    [cluster](MonitorBuilder::cluster), this instance renews its shards
//!    with the store; the tenants of shards it gains are marked for reload
//!    and woken. Then it shares what it was told of other instances'
//!    tenants and merges what they shared for its own (`sharing.rs`,
//!    `exchange_observations`). Without a cluster it owns everything and
//!    this does nothing.
//! 2. **Probe dispatch** (`probes.rs`, `dispatch_probes`). The probe rounds
//!    due are taken from the timer queue (`timer.rs`); for each tenant and
//!    direction this instance owns, a probe goes out through the
//!    [`MailProbe`] and is stored as a
//!    [`PendingProbe`], in batches, with
//!    [`EventStore::put_probes_leased`]:
//!    the probes the store leases to this instance as it stores them are
//!    kept in memory (`held_probes`) for their first check; the next round
//!    is scheduled. A dispatch the server refuses counts as a failure.
//! 3. **Probe check** (`probes.rs`, `check_probes`). Pending probes that are
//!    due are looked for: those kept in memory while the store was
//!    unreachable, then the held ones (a held probe of a tenant whose shard
//!    moved is released unchecked, for its new owner), then those claimed
//!    from the store. What a probe found, or its loss at
//!    the deadline, is recorded into the tenant's window just like an
//!    observation (`tenants.rs`, `record_into`), and those tenants are
//!    evaluated right away, while their state is in cache.
//! 4. **Evaluation** (`evaluate.rs`, `evaluate_all`). The tenants due
//!    (`timer.rs`, `due_evaluations`: new observations its verdicts cannot
//!    absorb, a bucket boundary, a running hysteresis streak, a reminder,
//!    suspension end or event time) are evaluated, each at most once per
//!    tick. `evaluate_tenant` leaves tenants of other instances' shards
//!    alone, reloads one just taken over and writes a journal left from a
//!    store outage (`journal.rs`); `decide` runs the policies, hands their
//!    health to the [state machine](crate::machine) and, when the state
//!    changes, builds the commit: the new state, its audit entries and its
//!    outbox items (alerts rendered per recipient with a signed portal link
//!    in `render.rs`, hook calls). `commit_transition` writes it through the
//!    store's compare-and-swap; a conflict reloads and decides again; an
//!    unreachable store keeps it in the tenant's journal, which sends its
//!    alerts itself. The tenant is then woken when something can next
//!    change. A direction whose policy would judge sooner with a fresh
//!    probe ([`ThresholdPolicy::probe_soon`](crate::policy::ThresholdPolicy::probe_soon))
//!    gets one at the end of this step (`probes.rs`, `dispatch_hurried`).
//! 5. **Outbox** (`outbox.rs`, `work_outbox`). Due entries are claimed and
//!    worked in lanes side by side, one per channel and one for the hook:
//!    alerts go out through the [`Notifier`]s,
//!    events to the [`ContinuityHook`]. What
//!    fails with a retryable error stays in the outbox, with back-off;
//!    nothing is lost when an instance dies between steps.
//! 6. **Baselines** (`baselines.rs`, `save_due_baselines`). The tenants
//!    whose baselines are due for saving come off the timer queue; the
//!    snapshots of those this instance owns that changed since their last
//!    save are written in batches. A failed batch is reported and tried
//!    again later.
//! 7. **Retention** (`outbox.rs`, `prune_due`). Once an hour
//!    ([`RETENTION_EVERY`]) old audit records, dead letters and stopped
//!    instances' rows are pruned ([`Monitor::prune_records`]).
//!
//! The tick returns a [`TickReport`] of what it did, and ends by setting
//! the [metrics](crate::metrics)' gauges (`health.rs`, `after_tick`).
//!
//! Outside the tick: `builder.rs` holds [`MonitorBuilder`] and
//! [`MonitorSettings`]; `tenants.rs` the tenant registry and each tenant's
//! runtime ([`Monitor::register_tenant`], [`Monitor::observe`],
//! [`Monitor::status`]); `actions.rs` link verification and actions
//! ([`Monitor::verify_link`], [`Monitor::act`], which
//! [`portal::act`](crate::portal::act) calls for a link), which write
//! through the same compare-and-swap; `report.rs` what the engine hands
//! back; `health.rs` [`Monitor::health`], for a service's health endpoint.

mod actions;
mod baselines;
mod builder;
mod cluster;
mod evaluate;
mod health;
mod journal;
mod outbox;
mod probes;
mod registry;
mod render;
mod report;
mod sharing;
mod tenants;
mod timer;

pub use builder::{MonitorBuilder, MonitorSettings};
pub use health::{Health, HealthStatus, HealthThresholds};
pub use outbox::RETENTION_EVERY;
pub use report::{
    ActionOutcome, BucketReading, DeliveryFailure, DirectionHistory, HISTORY_SPAN, OverdueProbe,
    TenantStatus, TickReport,
};
pub use sharing::MAX_FORWARDING;

use std::{
    collections::HashMap,
    fmt,
    sync::{
        Arc, Mutex, MutexGuard, RwLock,
        atomic::{AtomicBool, Ordering},
    },
};

use chrono::{DateTime, Utc};
use tracing::{Instrument, debug, info_span};

use tenants::{Runtime, TenantRuntime};
use timer::{DenseSlot, Schedule};

use crate::{
    clock::Clock,
    cluster::ShardSet,
    config::ChannelKind,
    domain::TenantId,
    error::{Error, Result},
    fxhash::FxHashMap,
    hook::ContinuityHook,
    link::LinkSigner,
    metrics::Instruments,
    notify::Notifier,
    probe::MailProbe,
    store::{EventStore, PendingProbe},
};

/// The engine. Share it with `Arc`; every method takes `&self`.
///
/// ```
/// use std::{sync::Arc, time::Duration};
/// use continuity_core::{
///     config::{ChannelKind, Recipient, TenantConfig},
///     link::{LinkKey, LinkSigner},
///     policy::{LatencyStatistic, LatencyThreshold},
///     testing::RecordingNotifier,
///     Direction, ManualClock, Monitor, Observation, TenantId,
/// };
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> continuity_core::Result<()> {
/// let clock = ManualClock::new("2026-03-02T09:00:00Z".parse().unwrap());
/// let sms = Arc::new(RecordingNotifier::new(ChannelKind::Sms));
/// let monitor = Monitor::builder()
///     .in_memory_store()
///     .clock(Arc::new(clock.clone()))
///     .notifier(sms.clone())
///     .link_signer(LinkSigner::new(LinkKey::new("k1", [7u8; 32])?))
///     .portal_url("https://continuity.example.net/c/")
///     .build()?;
///
/// let acme = TenantId::new("acme")?;
/// let mut config = TenantConfig::new(acme.clone(), vec![Recipient::new("ops", ChannelKind::Sms, "+15550100")]);
/// // An absolute limit (none is on by default): p95 latency over 30 minutes.
/// config.outbound.latency = Some(LatencyThreshold::new(LatencyStatistic::P95, Duration::from_secs(30 * 60)));
/// config.outbound.raise_after = 1;
/// monitor.register_tenant(config).await?;
///
/// // The gateway reports three outbound deliveries that took 45 minutes each.
/// for _ in 0..3 {
///     monitor.observe(Observation::delivered(acme.clone(), Direction::Outbound, clock.now(), Duration::from_secs(45 * 60)))?;
/// }
/// monitor.tick(clock.now()).await?;
/// let sent = sms.messages();
/// assert_eq!(sent.len(), 1);
/// assert!(sent[0].headline().contains("outbound p95 latency"));
/// # use continuity_core::Clock; Ok(()) }
/// ```
pub struct Monitor {
    parts: Parts,
    links: Links,
    settings: MonitorSettings,
    tenants: TenantRegistry,
    ticks: TickState,
    cluster: Membership,
    outage: StoreOutage,
}

/// What the embedder plugged in: the engine talks to the world only
/// through these.
struct Parts {
    store: Arc<dyn EventStore>,
    clock: Arc<dyn Clock>,
    notifiers: HashMap<ChannelKind, Arc<dyn Notifier>>,
    /// Indexed by [`Direction::index`](crate::Direction::index).
    probes: [Option<Arc<dyn MailProbe>>; 2],
    hook: Option<Arc<dyn ContinuityHook>>,
    /// The embedder's policies, selected by name in tenants' configurations.
    policies: registry::PolicyRegistry,
    /// The metrics' handles, registered when the monitor was built.
    instruments: Instruments,
}

/// What an alert's portal link is made of.
struct Links {
    signer: LinkSigner,
    /// A link is this URL followed by the text [`LinkSigner::sign`](crate::link::LinkSigner::sign) returns.
    portal_url: String,
}

/// The tenants watched, with their in-memory runtimes.
struct TenantRegistry {
    by_id: RwLock<FxHashMap<TenantId, Runtime>>,
    /// The same runtimes by registration order: probes carry their index as
    /// a hint, which spares a hash lookup (and a cache miss) per probe check.
    dense: RwLock<Vec<DenseSlot>>,
}

/// What ticks share from one to the next.
struct TickState {
    /// The time of the latest tick: time only moves forward.
    last: Mutex<Option<DateTime<Utc>>>,
    /// A tick is running: a second one is refused.
    running: AtomicBool,
    /// When to evaluate and probe which tenant (see [`timer`]).
    schedule: Mutex<Schedule>,
    /// Probes this instance sent and the store leased to it as it stored
    /// them ([`EventStore::put_probes_leased`]): checked from here at their
    /// first check, without a claim.
    held_probes: Mutex<Vec<PendingProbe>>,
    /// The totals behind the gauges read from the tenants.
    gauges: health::GaugeTotals,
    /// When this instance last pruned old records (see `outbox.rs`).
    last_pruned: Mutex<Option<DateTime<Utc>>>,
}

/// This instance's place in a [cluster](MonitorBuilder::cluster).
struct Membership {
    /// This instance's name in a cluster (`None`: the only instance).
    instance: Option<String>,
    /// The shards this instance owns (all of them without a cluster).
    owned: Mutex<ShardSet>,
    /// Set by [`Monitor::leave_cluster`]: no more shard syncs.
    left: AtomicBool,
    /// Observations of tenants of other instances' shards, shared at the
    /// next tick (see [`sharing`]).
    forwarding: Mutex<sharing::Forwarding>,
}

/// What is kept in memory while the store cannot be reached (see
/// [`journal`]; each tenant's journal is in its runtime).
#[derive(Default)]
struct StoreOutage {
    /// Probes sent while the store could not take them: checked from here
    /// until it can.
    local_probes: Mutex<Vec<PendingProbe>>,
    /// Outbox items delivered from a journal whose write may have landed:
    /// the store's copy is not sent again.
    delivered_from_memory: Mutex<HashMap<String, DateTime<Utc>>>,
    /// The tick at which the store was last found unreachable: the other
    /// writes of that tick go to the journal without waiting on it again.
    store_down_at: Mutex<Option<DateTime<Utc>>>,
}

impl fmt::Debug for Monitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Monitor")
            .field("store", &self.parts.store)
            .field("tenants", &self.read_tenants().len())
            .field("portal_url", &self.links.portal_url)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Runtime data stays consistent across a panic in another thread (no
    // multi-step invariants are left half-done), so poisoning is not fatal.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct TickGuard<'a>(&'a AtomicBool);

impl Drop for TickGuard<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl Monitor {
    /// The store this monitor writes to, as the monitor sees it: the
    /// store it was built with, wrapped so that each call is timed and its
    /// failures counted in the [metrics](crate::metrics) (it prints as the
    /// store it wraps).
    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.parts.store
    }

    /// The monitor's clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.parts.clock
    }

    /// The link signer (the portal verifies links with it).
    pub fn link_signer(&self) -> &LinkSigner {
        &self.links.signer
    }

    /// [`tick`](Self::tick) at the clock's time.
    pub async fn tick_now(&self) -> Result<TickReport> {
        self.tick(self.parts.clock.now()).await
    }

    /// Runs one round of the engine at `now` (see the [module docs](self)).
    ///
    /// Errors: [`Error::ClockWentBackwards`] if `now` is before the previous
    /// tick; [`Error::TickInProgress`] if another tick of this monitor is running.
    /// Failures of single probes, deliveries or commits do not stop the tick:
    /// they are logged and retried later; failed deliveries are listed in
    /// [`TickReport::failed_deliveries`], the other problems in
    /// [`TickReport::errors`].
    pub async fn tick(&self, now: DateTime<Utc>) -> Result<TickReport> {
        if self.ticks.running.swap(true, Ordering::Acquire) {
            return Err(Error::TickInProgress);
        }
        let _guard = TickGuard(&self.ticks.running);
        {
            let mut last = lock(&self.ticks.last);
            if let Some(previous) = *last
                && now < previous
            {
                return Err(Error::ClockWentBackwards { previous, now });
            }
            *last = Some(now);
        }
        let span = info_span!("tick", %now);
        let started = self.parts.clock.now();
        async {
            let mut report = TickReport::default();
            self.sync_ownership(now, &mut report).await;
            self.exchange_observations(now, &mut report).await;
            self.dispatch_probes(now, &mut report).await;
            self.check_probes(now, &mut report).await;
            let due = self.due_evaluations(now);
            self.evaluate_all(due, now, &mut report).await;
            self.dispatch_hurried(now, &mut report).await;
            self.work_outbox(now, &mut report).await;
            self.save_due_baselines(now, &mut report).await;
            self.prune_due(now, &mut report).await;
            self.after_tick(started).await;
            debug!(?report, "tick done");
            Ok(report)
        }
        .instrument(span)
        .await
    }
}
