//! The `Monitor`: the engine that ties windows, policies, the state machine,
//! the store, the notifiers, the probes and the hook together.
//!
//! One `Monitor` watches many tenants. The embedder calls
//! [`Monitor::observe`] for every real delivery it sees (cheap, synchronous,
//! no I/O) and [`Monitor::tick`] periodically (every minute is typical). A
//! tick:
//!
//! 1. dispatches the probes that are due;
//! 2. checks pending probes (a probe not found by its deadline is a failure);
//! 3. evaluates the tenants that are due and applies the state machine,
//!    writing changes through the store's compare-and-swap together with
//!    their audit entries and outbox items (rendered alerts, hook calls).
//!    A tenant is due when something can change its state: an observation
//!    its verdicts cannot absorb, a window bucket boundary that can clear a
//!    breach, a running hysteresis streak, a due reminder, suspension end or
//!    event time. It is evaluated at most once per tick, so a tick's cost
//!    follows the work to do, not the number of tenants;
//! 4. works the outbox: delivers alerts through the notifiers and calls the
//!    hook. What fails with a retryable error stays in the outbox for a later
//!    tick; nothing is lost when an instance dies between steps.
//!
//! Windows live in memory: after a restart they fill again from new
//! observations. Everything else (conditions, events, suspensions, alert
//! schedule, pending probes, outbox, audit log) lives in the store.

use std::{
    collections::HashMap,
    fmt,
    sync::{
        Arc, Mutex, MutexGuard, RwLock,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use chrono::{DateTime, Utc};
use tracing::{Instrument, debug, error, info, info_span, warn};

mod journal;

use journal::{Journal, Written, journal_flush, store_unreachable};

use crate::{
    clock::{Clock, SystemClock},
    cluster::{ShardSet, shard_of},
    config::{ChannelKind, TenantConfig},
    domain::{Direction, FailureKind, Observation, Outcome, TenantId},
    duration::{after, ceil_ms, hex_id},
    error::{Error, Result},
    fxhash::FxHashMap,
    hook::ContinuityHook,
    link::{LinkClaims, LinkSigner, VerifiedLink},
    machine::{
        self, Action, Actor, AlertDecision, Effect, Evaluation, Health, Input, Rules, TenantState,
    },
    memory::InMemoryEventStore,
    notify::{AlertMessage, ConditionReport, DeliveryReceipt, Notifier},
    policy::{
        FailureLimit, FailurePolicy, LatencyPolicy, LeakyCounterPolicy, Reading, ThresholdPolicy,
        Verdict,
    },
    probe::{MailProbe, ProbeRequest, ProbeStatus, ProbeTicket},
    store::{
        Commit, EventStore, OutboxEntry, OutboxItem, OutboxResult, PendingProbe, ProbeSettlement,
        Versioned,
    },
    window::{Recorded, SlidingWindow},
};

/// Tuning knobs of the engine itself (not per tenant). The defaults suit a
/// tick every minute.
#[derive(Clone, Debug, PartialEq)]
pub struct MonitorSettings {
    /// How long a claimed outbox entry or probe is reserved for this instance (default 2 min).
    pub lease: Duration,
    /// Items claimed from the store per round trip (default 500).
    pub batch: usize,
    /// First retry delay of a failed delivery or hook call; doubles per attempt (default 30 s).
    pub retry_base: Duration,
    /// Longest retry delay (default 15 min).
    pub retry_max: Duration,
    /// Times a commit is retried after a compare-and-swap conflict within one call (default 5).
    pub conflict_retries: u32,
}

impl Default for MonitorSettings {
    fn default() -> Self {
        MonitorSettings {
            lease: Duration::from_secs(120),
            batch: 500,
            retry_base: Duration::from_secs(30),
            retry_max: Duration::from_secs(900),
            conflict_retries: 5,
        }
    }
}

/// What one tick did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TickReport {
    /// Probes sent.
    pub probes_dispatched: u64,
    /// Pending probes checked.
    pub probes_checked: u64,
    /// Probes found.
    pub probes_arrived: u64,
    /// Probes past their deadline (counted as failures).
    pub probes_lost: u64,
    /// Tenants whose state changed.
    pub transitions: u64,
    /// Alerts decided (one per alert, not per recipient).
    pub alerts: u64,
    /// Messages delivered to recipients.
    pub deliveries: u64,
    /// Delivery attempts that failed (retried later or given up).
    pub delivery_failures: u64,
    /// Hook calls made successfully.
    pub hook_calls: u64,
    /// Problems that did not stop the tick, described.
    pub errors: Vec<String>,
    /// One receipt per message delivered, in completion order.
    pub receipts: Vec<DeliveryReceipt>,
}

/// What an action changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActionOutcome {
    /// The tenant.
    pub tenant: TenantId,
    /// The state's version after the action.
    pub version: u64,
    /// The state after the action.
    pub state: TenantState,
}

/// A tenant's current condition, for status displays.
#[derive(Clone, Debug, PartialEq)]
pub struct TenantStatus {
    /// The stored state and its version.
    pub state: Versioned,
    /// The latest verdict of every policy, per direction.
    pub readings: Vec<(Direction, String, Verdict)>,
}

/// Builds a [`Monitor`].
pub struct MonitorBuilder {
    store: Option<Arc<dyn EventStore>>,
    clock: Arc<dyn Clock>,
    notifiers: HashMap<ChannelKind, Arc<dyn Notifier>>,
    probes: [Option<Arc<dyn MailProbe>>; 2],
    hook: Option<Arc<dyn ContinuityHook>>,
    links: Option<LinkSigner>,
    portal_url: Option<String>,
    settings: MonitorSettings,
    instance: Option<String>,
}

impl fmt::Debug for MonitorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonitorBuilder")
            .field("store", &self.store)
            .field("notifiers", &self.notifiers.keys().collect::<Vec<_>>())
            .field("portal_url", &self.portal_url)
            .finish_non_exhaustive()
    }
}

impl MonitorBuilder {
    /// The event store (default: a new [`InMemoryEventStore`]).
    pub fn store(mut self, store: Arc<dyn EventStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// The clock used by [`Monitor::tick_now`] and [`Monitor::perform`] (default: the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Adds the notifier for its channel (replacing an earlier one for the same channel).
    pub fn notifier(mut self, notifier: Arc<dyn Notifier>) -> Self {
        self.notifiers.insert(notifier.channel(), notifier);
        self
    }

    /// The probe for `direction` (without one, the direction is watched passively only).
    pub fn probe(mut self, direction: Direction, probe: Arc<dyn MailProbe>) -> Self {
        self.probes[direction.index()] = Some(probe);
        self
    }

    /// The embedder's continuity hook.
    pub fn hook(mut self, hook: Arc<dyn ContinuityHook>) -> Self {
        self.hook = Some(hook);
        self
    }

    /// Signs portal links (required).
    pub fn link_signer(mut self, signer: LinkSigner) -> Self {
        self.links = Some(signer);
        self
    }

    /// The portal's base URL; a link is this URL followed by the token (required),
    /// e.g. `https://continuity.example.net/c/`.
    pub fn portal_url(mut self, url: impl Into<String>) -> Self {
        self.portal_url = Some(url.into());
        self
    }

    /// Engine settings.
    pub fn settings(mut self, settings: MonitorSettings) -> Self {
        self.settings = settings;
        self
    }

    /// Runs this monitor as `instance`, one of several sharing the store:
    /// it then evaluates and probes only the tenants of the shards it owns
    /// (see [`cluster`](crate::cluster)). Every instance registers every
    /// tenant; `instance` must be unique among them (a host name and
    /// process id, say). Without it the monitor owns every tenant.
    pub fn cluster(mut self, instance: impl Into<String>) -> Self {
        self.instance = Some(instance.into());
        self
    }

    /// Checks the parts and builds the monitor.
    pub fn build(self) -> Result<Monitor> {
        let links = self.links.ok_or_else(|| {
            Error::config(
                "link_signer",
                "a link signer is required: alerts carry signed portal links",
            )
        })?;
        let portal_url = self
            .portal_url
            .ok_or_else(|| Error::config("portal_url", "the portal's base URL is required"))?;
        if !(portal_url.starts_with("https://") || portal_url.starts_with("http://"))
            || portal_url.chars().any(char::is_whitespace)
        {
            return Err(Error::config(
                "portal_url",
                format!("{portal_url:?} is not an http(s) URL"),
            ));
        }
        if self.notifiers.is_empty() {
            return Err(Error::config(
                "notifiers",
                "at least one notifier is needed, or no alert can go out",
            ));
        }
        let s = &self.settings;
        if let Some(instance) = &self.instance
            && (instance.is_empty() || instance.len() > 200)
        {
            return Err(Error::config(
                "cluster",
                "the instance name must be 1 to 200 bytes long",
            ));
        }
        if s.batch == 0
            || s.lease < Duration::from_secs(1)
            || s.retry_base.is_zero()
            || s.retry_max < s.retry_base
        {
            return Err(Error::config(
                "settings",
                "batch must be positive, lease at least 1 s, and retry_max at least retry_base",
            ));
        }
        Ok(Monitor {
            store: self
                .store
                .unwrap_or_else(|| Arc::new(InMemoryEventStore::new())),
            clock: self.clock,
            notifiers: self.notifiers,
            probes: self.probes,
            hook: self.hook,
            links,
            portal_url,
            settings: self.settings,
            tenants: RwLock::new(FxHashMap::default()),
            dense: RwLock::new(Vec::new()),
            last_tick: Mutex::new(None),
            ticking: AtomicBool::new(false),
            schedule: Mutex::new(Schedule::default()),
            owned: Mutex::new(if self.instance.is_some() {
                ShardSet::EMPTY
            } else {
                ShardSet::ALL
            }),
            instance: self.instance,
            local_probes: Mutex::new(Vec::new()),
            delivered_from_memory: Mutex::new(HashMap::new()),
            store_down_at: Mutex::new(None),
            left: AtomicBool::new(false),
        })
    }
}

type Runtime = Arc<Mutex<TenantRuntime>>;

// `repr(C)` keeps the declared order: the fields every tick touches come
// first, next to the mutex word, and the rarely read ones last. With 100,000
// tenants the state does not fit in cache, and each extra cache line touched
// per tenant costs a memory round trip.
#[repr(C)]
struct TenantRuntime {
    /// Listed in `Schedule::observed` since its last evaluation.
    queued: bool,
    /// Unregistered or replaced: schedule entries still pointing here are dropped.
    removed: bool,
    /// Nothing can change before this time unless an observation arrives
    /// (`None`: evaluate at the next tick).
    next_eval_at: Option<DateTime<Utc>>,
    /// The tick of the last evaluation (at most one per tick).
    last_evaluated: Option<DateTime<Utc>>,
    /// This runtime's index in `Monitor::dense`.
    index: u32,
    /// The tenant's shard (see [`crate::cluster`]).
    shard: u16,
    /// The stored state may have moved on while another instance owned the
    /// tenant: load it before the next evaluation.
    reload: bool,
    /// What was done while the store could not be reached (see
    /// [`journal`]). `cached` then holds the newest state, with the version
    /// it builds on.
    journal: Journal,
    /// Since when this monitor has watched the tenant (registered it, or
    /// took its shard over). Until a window has been watched for its whole
    /// length, fewer failures than a count threshold prove nothing.
    watching_since: DateTime<Utc>,
    /// Copies of what every probe round reads, kept here rather than behind
    /// the configuration's pointer (one cache miss less per probe).
    tenant: TenantId,
    probe_settings: crate::config::ProbeConfig,
    directions: [DirectionRuntime; 2],
    cached: Versioned,
    rules: Rules,
    config: Arc<TenantConfig>,
}

impl TenantRuntime {
    fn due(&self, now: DateTime<Utc>) -> bool {
        self.next_eval_at.is_none_or(|t| now >= t) || self.directions.iter().any(|d| d.dirty)
    }

    /// The earliest time at which a policy's verdict can change without a
    /// new observation, or its health (when a window this monitor has
    /// watched for its whole length can first say "healthy").
    fn next_verdict_change(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let verdicts = self
            .directions
            .iter()
            .filter_map(|d| d.verdicts_until)
            .min()
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        self.directions
            .iter()
            .map(|d| self.watched_in_full_at(d))
            .filter(|at| *at > now)
            .fold(verdicts, DateTime::min)
    }

    /// When this monitor will have watched `d`'s window for its whole length.
    fn watched_in_full_at(&self, d: &DirectionRuntime) -> DateTime<Utc> {
        after(self.watching_since, d.window.length())
    }
}

/// `in-<unix ms in hex>` or `ou-…`: unique per tenant and direction, as a
/// direction is probed at most once per tick.
fn probe_id(direction: Direction, now: DateTime<Utc>) -> Arc<str> {
    let prefix = match direction {
        Direction::Inbound => "in-",
        Direction::Outbound => "ou-",
    };
    hex_id(prefix, now.timestamp_millis() as u64)
}

/// The evaluations of one tenant at one tick, on the stack: the built-in
/// policies give at most six; conditions left over from an older
/// configuration spill into a vector.
struct EvalBuf<'a> {
    inline: [Evaluation<'a>; 8],
    len: usize,
    spill: Vec<Evaluation<'a>>,
}

impl<'a> EvalBuf<'a> {
    fn new() -> Self {
        let blank = Evaluation {
            direction: Direction::Inbound,
            name: "",
            health: Health::Unknown,
        };
        EvalBuf {
            inline: [blank; 8],
            len: 0,
            spill: Vec::new(),
        }
    }

    fn push(&mut self, e: Evaluation<'a>) {
        if self.spill.is_empty() && self.len < self.inline.len() {
            self.inline[self.len] = e;
            self.len += 1;
        } else {
            if self.spill.is_empty() {
                self.spill.extend_from_slice(&self.inline[..self.len]);
            }
            self.spill.push(e);
        }
    }

    fn as_slice(&self) -> &[Evaluation<'a>] {
        if self.spill.is_empty() {
            &self.inline[..self.len]
        } else {
            &self.spill
        }
    }
}

/// The first multiple of `step` since the Unix epoch that is after `now`.
fn next_multiple(now: DateTime<Utc>, step: Duration) -> DateTime<Utc> {
    let step = i64::try_from(step.as_millis()).unwrap_or(i64::MAX).max(1);
    let next = now
        .timestamp_millis()
        .div_euclid(step)
        .saturating_add(1)
        .saturating_mul(step);
    DateTime::<Utc>::from_timestamp_millis(next).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// A built-in policy, held inline: one allocation per direction instead of
/// one per policy keeps a tenant's state compact and its evaluation cheap.
#[derive(Debug)]
enum Builtin {
    Latency(LatencyPolicy),
    Failures(FailurePolicy),
    Leaky(LeakyCounterPolicy),
}

impl Builtin {
    fn get(&self) -> &dyn ThresholdPolicy {
        match self {
            Builtin::Latency(p) => p,
            Builtin::Failures(p) => p,
            Builtin::Leaky(p) => p,
        }
    }

    fn get_mut(&mut self) -> &mut dyn ThresholdPolicy {
        match self {
            Builtin::Latency(p) => p,
            Builtin::Failures(p) => p,
            Builtin::Leaky(p) => p,
        }
    }
}

/// A policy with its latest verdict.
struct Watch {
    policy: Builtin,
    verdict: Option<Verdict>,
}

/// Up to one watch per built-in policy, inline in the direction's state (no
/// separate allocation to chase on every evaluation).
struct Watches([Option<Watch>; 3]);

impl Watches {
    fn iter(&self) -> impl Iterator<Item = &Watch> {
        self.0.iter().flatten()
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = &mut Watch> {
        self.0.iter_mut().flatten()
    }
}

#[repr(C)]
struct DirectionRuntime {
    /// An observation arrived since the last evaluation.
    dirty: bool,
    /// The verdicts cannot change before this time without an observation.
    verdicts_until: Option<DateTime<Utc>>,
    /// A delivery faster than this leaves the (healthy, steady) verdicts as
    /// they are; `None` while any observation may change them. Kept next to
    /// `dirty`, so recording reads one cache line.
    absorb_below: Option<Duration>,
    leaky_period: Option<Duration>,
    window: SlidingWindow,
    watches: Watches,
}

impl DirectionRuntime {
    /// The next window bucket boundary, or the next leaky counter period.
    fn next_verdict_change(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let at = next_multiple(now, self.window.bucket_width());
        match self.leaky_period {
            Some(period) => at.min(next_multiple(now, period)),
            None => at,
        }
    }

    /// Until when the current verdicts hold without a new observation.
    ///
    /// Expiring data can only lower a failure count, a maximum and a sample
    /// count, so a healthy count-based failure verdict, a healthy latency
    /// verdict whose every sample is under the limit, or one with too few
    /// samples stays healthy until something new is recorded. Anything else
    /// is looked at again at the next bucket boundary (or leaky period).
    fn verdicts_until(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        // Observations stamped ahead of the clock come into view later.
        let ahead = self.window.newest_bucket_start().is_some_and(|s| s > now);
        let steady = !ahead
            && self.watches.iter().all(|w| match (&w.policy, &w.verdict) {
                (_, None) => false,
                (_, Some(v)) if v.breached => false,
                (Builtin::Failures(_), Some(v)) => {
                    matches!(
                        v.reading,
                        Reading::Failures {
                            limit: FailureLimit::Count(_),
                            ..
                        }
                    )
                }
                (Builtin::Latency(_), Some(v)) => match v.reading {
                    Reading::Latency { value: None, .. } => true,
                    Reading::Latency { limit, .. } => self
                        .window
                        .stats(now)
                        .max_latency()
                        .is_none_or(|m| m <= limit),
                    _ => false,
                },
                (Builtin::Leaky(_), Some(_)) => false,
            });
        if steady {
            DateTime::<Utc>::MAX_UTC
        } else {
            self.next_verdict_change(now)
        }
    }

    /// Whether recording `outcome` leaves every verdict as it is, so that it
    /// needs no evaluation: every verdict is healthy and steady (see
    /// [`verdicts_until`](Self::verdicts_until)), and a delivery faster than
    /// the latency limit can neither raise the maximum past it nor add a
    /// failure. Healthy tenants then cost no evaluation per probe; their
    /// readings are brought up to date by [`Monitor::status`].
    fn absorbs(&self, outcome: &Outcome) -> bool {
        match outcome {
            Outcome::Delivered { latency } => {
                !self.dirty && self.absorb_below.is_some_and(|below| *latency < below)
            }
            Outcome::Failed { .. } => false,
        }
    }

    /// Computes [`absorb_below`](Self::absorb_below) after an evaluation.
    fn absorb_threshold(&self) -> Option<Duration> {
        if self.verdicts_until != Some(DateTime::<Utc>::MAX_UTC) {
            return None;
        }
        let mut below = Duration::MAX;
        for w in self.watches.iter() {
            match (&w.policy, &w.verdict) {
                (_, Some(v)) if v.breached => return None,
                (
                    Builtin::Failures(_),
                    Some(Verdict {
                        reading:
                            Reading::Failures {
                                limit: FailureLimit::Count(_),
                                samples,
                                ..
                            },
                        ..
                    }),
                ) if *samples > 0 => {}
                // One millisecond of margin: the window keeps whole milliseconds, rounded up.
                (
                    Builtin::Latency(_),
                    Some(Verdict {
                        reading:
                            Reading::Latency {
                                value: Some(_),
                                limit,
                                ..
                            },
                        ..
                    }),
                ) => below = below.min(limit.saturating_sub(Duration::from_millis(1))),
                _ => return None,
            }
        }
        Some(below)
    }

    /// Bytes held for this direction: the window, the policies and their last verdicts.
    fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>() - std::mem::size_of::<SlidingWindow>()
            + self.window.memory_bytes()
    }

    fn new(config: &crate::config::DirectionConfig) -> Result<Self> {
        let policies = [
            config
                .latency
                .clone()
                .map(|t| Builtin::Latency(LatencyPolicy::new(t))),
            config
                .failures
                .clone()
                .map(|t| Builtin::Failures(FailurePolicy::new(t))),
            config
                .leaky
                .clone()
                .map(|t| Builtin::Leaky(LeakyCounterPolicy::new(t))),
        ];
        let watches = Watches(policies.map(|p| {
            p.map(|policy| Watch {
                policy,
                verdict: None,
            })
        }));
        Ok(DirectionRuntime {
            window: SlidingWindow::new(config.window, SlidingWindow::DEFAULT_BUCKETS)?,
            watches,
            dirty: false,
            verdicts_until: None,
            absorb_below: None,
            leaky_period: config.leaky.as_ref().map(|l| l.period),
        })
    }
}

/// The engine. Share it with `Arc`; every method takes `&self`.
///
/// ```
/// use std::{sync::Arc, time::Duration};
/// use continuity_core::{
///     config::{ChannelKind, Recipient, TenantConfig},
///     link::{LinkKey, LinkSigner},
///     sim::RecordingNotifier,
///     Direction, ManualClock, Monitor, Observation, TenantId,
/// };
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> continuity_core::Result<()> {
/// let clock = ManualClock::new("2026-03-02T09:00:00Z".parse().unwrap());
/// let sms = Arc::new(RecordingNotifier::new(ChannelKind::Sms));
/// let monitor = Monitor::builder()
///     .clock(Arc::new(clock.clone()))
///     .notifier(sms.clone())
///     .link_signer(LinkSigner::new(LinkKey::new("k1", [7u8; 32])?))
///     .portal_url("https://continuity.example.net/c/")
///     .build()?;
///
/// let acme = TenantId::new("acme")?;
/// let mut config = TenantConfig::new(acme.clone(), vec![Recipient::new("ops", ChannelKind::Sms, "+15550100")]);
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
    store: Arc<dyn EventStore>,
    clock: Arc<dyn Clock>,
    notifiers: HashMap<ChannelKind, Arc<dyn Notifier>>,
    probes: [Option<Arc<dyn MailProbe>>; 2],
    hook: Option<Arc<dyn ContinuityHook>>,
    links: LinkSigner,
    portal_url: String,
    settings: MonitorSettings,
    tenants: RwLock<FxHashMap<TenantId, Runtime>>,
    /// The same runtimes by registration order: probes carry their index as
    /// a hint, which spares a hash lookup (and a cache miss) per probe check.
    dense: RwLock<Vec<DenseSlot>>,
    last_tick: Mutex<Option<DateTime<Utc>>>,
    ticking: AtomicBool,
    schedule: Mutex<Schedule>,
    /// This instance's name in a cluster (`None`: the only instance).
    instance: Option<String>,
    /// The shards this instance owns (all of them without a cluster).
    owned: Mutex<ShardSet>,
    /// Probes sent while the store could not take them: checked from here
    /// until it can.
    local_probes: Mutex<Vec<PendingProbe>>,
    /// Outbox items delivered from a journal whose write may have landed
    /// (see [`journal`]): the store's copy is not sent again.
    delivered_from_memory: Mutex<HashMap<String, DateTime<Utc>>>,
    /// The tick at which the store was last found unreachable: the other
    /// writes of that tick go to the journal without waiting on it again.
    store_down_at: Mutex<Option<DateTime<Utc>>>,
    /// Set by [`Monitor::leave_cluster`]: no more shard syncs.
    left: AtomicBool,
}

/// When to look at which tenant. A tick works only on what is due, so its
/// cost follows the work to do, not the number of tenants.
///
/// Entries can be stale (a tenant evaluated early because an observation
/// arrived keeps its older timed entry); a stale entry finds nothing due
/// and is dropped.
#[derive(Default)]
struct Schedule {
    evaluations: TimerQueue<Runtime>,
    probes: TimerQueue<ProbeJob>,
    /// Tenants with new observations since their last evaluation.
    observed: Vec<Runtime>,
}

/// One direction of one tenant to probe, with all a dispatch needs, so a
/// probe round does not touch the tenant's state.
struct ProbeJob {
    tenant: TenantId,
    direction: Direction,
    /// The tenant's index in `Monitor::dense`.
    index: u32,
    /// The registration it belongs to (stale once the tenant is removed or
    /// registered again).
    epoch: u32,
    /// The tenant's shard.
    shard: u16,
    settings: Arc<crate::config::ProbeConfig>,
}

/// A runtime in registration order, with its registration epoch.
struct DenseSlot {
    rt: Runtime,
    epoch: u32,
}

/// Wake-ups grouped by their exact time (Unix ms). Many tenants fall due at
/// the same instants (bucket boundaries, probe rounds), so a group is taken
/// whole, which costs far less than a heap operation per tenant.
struct TimerQueue<T> {
    slots: std::collections::BTreeMap<i64, Vec<T>>,
    /// Emptied vectors kept for new slots: a round of 200,000 wake-ups then
    /// fills a vector that already has the room.
    spare: Vec<Vec<T>>,
}

impl<T> Default for TimerQueue<T> {
    fn default() -> Self {
        TimerQueue {
            slots: std::collections::BTreeMap::new(),
            spare: Vec::new(),
        }
    }
}

impl<T> TimerQueue<T> {
    fn push(&mut self, at: DateTime<Utc>, what: T) {
        let spare = &mut self.spare;
        self.slots
            .entry(ceil_ms(at))
            .or_insert_with(|| spare.pop().unwrap_or_default())
            .push(what);
    }

    /// Takes back a drained vector for reuse.
    fn recycle(&mut self, mut v: Vec<T>) {
        v.clear();
        if v.capacity() > 0 && self.spare.len() < 4 {
            self.spare.push(v);
        }
    }

    /// Moves every entry due at or before `now` into `out`.
    fn drain_due(&mut self, now: DateTime<Utc>, out: &mut Vec<T>) {
        let now = now.timestamp_millis();
        while let Some(entry) = self.slots.first_entry() {
            if *entry.key() > now {
                break;
            }
            let mut due = entry.remove();
            if out.is_empty() {
                std::mem::swap(out, &mut due);
            } else {
                out.append(&mut due);
            }
        }
    }
}

impl Schedule {
    fn wake(&mut self, rt: Runtime, at: DateTime<Utc>) {
        self.evaluations.push(at, rt);
    }

    fn probe(&mut self, job: ProbeJob, at: DateTime<Utc>) {
        self.probes.push(at, job);
    }
}

impl Monitor {
    fn wake(&self, rt: &Runtime, at: DateTime<Utc>) {
        lock(&self.schedule).wake(rt.clone(), at);
    }
}

impl fmt::Debug for Monitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Monitor")
            .field("store", &self.store)
            .field("tenants", &self.read_tenants().len())
            .field("portal_url", &self.portal_url)
            .finish_non_exhaustive()
    }
}

/// Outbox lanes worked at once by one tick: all of them (three channels and the hook).
const OUTBOX_CONCURRENCY: usize = 4;

/// Runs `futures` with at most `limit` in flight (a new one starts as soon as
/// one finishes) and returns their outputs in completion order. Written by
/// hand so that core needs no futures crate.
async fn run_bounded<F: Future>(
    limit: usize,
    futures: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    let mut queue = futures.into_iter();
    let mut running: Vec<std::pin::Pin<Box<F>>> = Vec::new();
    let mut out = Vec::new();
    std::future::poll_fn(|cx| {
        loop {
            while running.len() < limit.max(1) {
                match queue.next() {
                    Some(f) => running.push(Box::pin(f)),
                    None => break,
                }
            }
            if running.is_empty() {
                // Nothing left to start either.
                return std::task::Poll::Ready(());
            }
            let before = out.len();
            let mut i = 0;
            while i < running.len() {
                if let std::task::Poll::Ready(v) = running[i].as_mut().poll(cx) {
                    out.push(v);
                    drop(running.swap_remove(i));
                } else {
                    i += 1;
                }
            }
            if out.len() == before {
                return std::task::Poll::Pending;
            }
        }
    })
    .await;
    out
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
    /// A builder with the defaults.
    pub fn builder() -> MonitorBuilder {
        MonitorBuilder {
            store: None,
            clock: Arc::new(SystemClock),
            notifiers: HashMap::new(),
            probes: [None, None],
            hook: None,
            links: None,
            portal_url: None,
            settings: MonitorSettings::default(),
            instance: None,
        }
    }

    /// The store this monitor writes to.
    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    /// The monitor's clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The link signer (the portal verifies links with it).
    pub fn link_signer(&self) -> &LinkSigner {
        &self.links
    }

    fn read_tenants(&self) -> std::sync::RwLockReadGuard<'_, FxHashMap<TenantId, Runtime>> {
        self.tenants.read().unwrap_or_else(|e| e.into_inner())
    }

    fn runtime(&self, tenant: &TenantId) -> Result<Runtime> {
        self.read_tenants()
            .get(tenant)
            .cloned()
            .ok_or_else(|| Error::UnknownTenant {
                tenant: tenant.to_string(),
            })
    }

    /// The runtime of `tenant`, through the dense index when `hint` (index + 1)
    /// names it, else by id.
    fn runtime_hinted(&self, tenant: &TenantId, hint: u32) -> Option<Runtime> {
        if let Some(i) = hint.checked_sub(1) {
            let dense = self.dense.read().unwrap_or_else(|e| e.into_inner());
            if let Some(DenseSlot { rt, .. }) = dense.get(i as usize) {
                let guard = lock(rt);
                if !guard.removed && guard.tenant == *tenant {
                    drop(guard);
                    return Some(rt.clone());
                }
            }
        }
        self.runtime(tenant).ok()
    }

    /// Registers a tenant, or replaces its configuration. Loads its stored
    /// state. A replaced configuration starts new windows.
    pub async fn register_tenant(&self, config: TenantConfig) -> Result<()> {
        config.validate()?;
        for (i, r) in config.recipients.iter().enumerate() {
            if !self.notifiers.contains_key(&r.channel) {
                return Err(Error::config(
                    format!("recipients[{i}].channel"),
                    format!("no {} notifier is installed in this monitor", r.channel),
                ));
            }
        }
        let tenant = config.tenant.clone();
        let cached = self
            .store
            .as_ref()
            .load(&tenant)
            .await?
            .unwrap_or(Versioned {
                version: 0,
                state: TenantState::default(),
            });
        let runtime = TenantRuntime {
            rules: config.rules(),
            directions: [
                DirectionRuntime::new(&config.inbound)?,
                DirectionRuntime::new(&config.outbound)?,
            ],
            index: 0,
            shard: shard_of(&config.tenant),
            reload: false,
            journal: Journal::default(),
            watching_since: self.clock.now(),
            tenant: config.tenant.clone(),
            probe_settings: config.probes.clone(),
            config: Arc::new(config),
            cached,
            next_eval_at: None,
            queued: false,
            removed: false,
            last_evaluated: None,
        };
        let probed: Vec<Direction> = Direction::ALL
            .into_iter()
            .filter(|d| self.probes[d.index()].is_some() && runtime.config.probes.enabled(*d))
            .collect();
        let tenant_id = runtime.tenant.clone();
        let probe_settings = Arc::new(runtime.probe_settings.clone());
        let runtime = Arc::new(Mutex::new(runtime));
        let mut tenants = self.tenants.write().unwrap_or_else(|e| e.into_inner());
        let mut dense = self.dense.write().unwrap_or_else(|e| e.into_inner());
        let index = match tenants.get(&tenant) {
            Some(old) => lock(old).index,
            None => u32::try_from(dense.len()).unwrap_or(u32::MAX),
        };
        lock(&runtime).index = index;
        // A new epoch makes the probe jobs of a replaced configuration stale.
        let epoch = match dense.get_mut(index as usize) {
            Some(slot) => {
                slot.rt = runtime.clone();
                slot.epoch = slot.epoch.wrapping_add(1);
                slot.epoch
            }
            None => {
                dense.push(DenseSlot {
                    rt: runtime.clone(),
                    epoch: 0,
                });
                0
            }
        };
        let replaced = tenants.insert(tenant, runtime.clone());
        drop(dense);
        drop(tenants);
        if let Some(old) = replaced {
            lock(&old).removed = true;
        }
        let mut schedule = lock(&self.schedule);
        schedule.wake(runtime.clone(), DateTime::<Utc>::MIN_UTC);
        for direction in probed {
            let job = ProbeJob {
                shard: shard_of(&tenant_id),
                tenant: tenant_id.clone(),
                direction,
                index,
                epoch,
                settings: probe_settings.clone(),
            };
            schedule.probe(job, DateTime::<Utc>::MIN_UTC);
        }
        Ok(())
    }

    /// Stops watching a tenant (its stored state stays).
    pub fn remove_tenant(&self, tenant: &TenantId) -> bool {
        let removed = self
            .tenants
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(tenant);
        if let Some(rt) = &removed {
            let index = {
                let mut rt = lock(rt);
                rt.removed = true;
                rt.index
            };
            let mut dense = self.dense.write().unwrap_or_else(|e| e.into_inner());
            if let Some(slot) = dense.get_mut(index as usize) {
                slot.epoch = slot.epoch.wrapping_add(1);
            }
        }
        removed.is_some()
    }

    /// The configuration `tenant` is registered with.
    pub fn tenant_config(&self, tenant: &TenantId) -> Result<Arc<TenantConfig>> {
        let rt = self.runtime(tenant)?;
        let config = lock(&rt).config.clone();
        Ok(config)
    }

    /// Number of registered tenants.
    pub fn tenant_count(&self) -> usize {
        self.read_tenants().len()
    }

    /// How far ahead of the monitor's clock an observation may be stamped
    /// (clock skew between the gateway and this process).
    pub const MAX_FUTURE_SKEW: Duration = Duration::from_secs(300);

    /// Records a passive observation (a delivery the gateway saw). Cheap and
    /// synchronous. An observation older than the window is dropped and
    /// counted (`Ok(Recorded::TooOld)`); one stamped more than
    /// [`MAX_FUTURE_SKEW`](Self::MAX_FUTURE_SKEW) ahead of the monitor's clock
    /// is refused with [`Error::InvalidObservation`], because it would push
    /// the window past every real observation.
    pub fn observe(&self, observation: Observation) -> Result<Recorded> {
        let limit = after(self.clock.now(), Self::MAX_FUTURE_SKEW);
        if observation.at > limit {
            return Err(Error::InvalidObservation {
                reason: format!(
                    "stamped {}, more than {} ahead of this monitor's clock",
                    observation.at.to_rfc3339(),
                    crate::duration::human(Self::MAX_FUTURE_SKEW)
                ),
            });
        }
        let rt = self.runtime(&observation.tenant)?;
        Ok(self.record_into(
            &rt,
            observation.direction,
            observation.at,
            &observation.outcome,
        ))
    }

    /// Records into a tenant's window and queues the tenant for evaluation at the next tick.
    fn record_into(
        &self,
        rt: &Runtime,
        direction: Direction,
        at: DateTime<Utc>,
        outcome: &Outcome,
    ) -> Recorded {
        let (recorded, newly_queued) = {
            let mut rt = lock(rt);
            let recorded = record(&mut rt, direction, at, outcome);
            let newly = rt.directions[direction.index()].dirty && !rt.queued;
            if newly {
                rt.queued = true;
            }
            (recorded, newly)
        };
        if newly_queued {
            lock(&self.schedule).observed.push(rt.clone());
        }
        recorded
    }

    /// The stored state and the current readings of a tenant (at the
    /// monitor's clock).
    pub fn status(&self, tenant: &TenantId) -> Result<TenantStatus> {
        let rt = self.runtime(tenant)?;
        let rt = lock(&rt);
        let now = self.clock.now();
        let mut readings = Vec::new();
        for d in Direction::ALL {
            let dr = &rt.directions[d.index()];
            for w in dr.watches.iter() {
                // Window-based verdicts are recomputed for an up-to-date
                // reading (ticks skip healthy tenants); the leaky counter's
                // state only moves at ticks, so its last verdict stands.
                let fresh = match &w.policy {
                    Builtin::Latency(p) => Some(p.clone().evaluate(&dr.window, now)),
                    Builtin::Failures(p) => Some(p.clone().evaluate(&dr.window, now)),
                    Builtin::Leaky(_) => w.verdict.clone(),
                };
                if let Some(v) = fresh {
                    readings.push((d, w.policy.get().condition().to_string(), v));
                }
            }
        }
        Ok(TenantStatus {
            state: rt.cached.clone(),
            readings,
        })
    }

    /// Bytes of monitored state held in memory for each direction of `tenant`
    /// (indexed by [`Direction::index`]): the window, the policies and their
    /// last verdicts. The tenant's configuration and cached stored state are
    /// shared by both directions and not included.
    pub fn direction_memory_bytes(&self, tenant: &TenantId) -> Result<[usize; 2]> {
        let rt = self.runtime(tenant)?;
        let rt = lock(&rt);
        Ok([
            rt.directions[0].memory_bytes(),
            rt.directions[1].memory_bytes(),
        ])
    }

    /// [`tick`](Self::tick) at the clock's time.
    pub async fn tick_now(&self) -> Result<TickReport> {
        self.tick(self.clock.now()).await
    }

    /// The shards this monitor owns: all of them unless it runs in a
    /// [cluster](MonitorBuilder::cluster), where the last successful sync
    /// with the store decided.
    pub fn owned_shards(&self) -> ShardSet {
        *lock(&self.owned)
    }

    /// Gives this instance's shards up (a clean shutdown of a
    /// [cluster](MonitorBuilder::cluster) member), so the other instances
    /// take its tenants over at their next tick instead of after the lease.
    /// Without a cluster it does nothing.
    pub async fn leave_cluster(&self) -> Result<()> {
        let Some(instance) = &self.instance else {
            return Ok(());
        };
        self.left.store(true, Ordering::Release);
        *lock(&self.owned) = ShardSet::EMPTY;
        self.store.as_ref().release_shards(instance).await
    }

    /// Renews this instance's shards and takes over or gives up shards as
    /// the store decides; tenants of shards gained are reloaded and woken.
    /// While the store cannot be reached the last known shards are kept:
    /// nobody else can take them over through an unreachable store either.
    async fn sync_ownership(&self, now: DateTime<Utc>, report: &mut TickReport) {
        let Some(instance) = &self.instance else {
            return;
        };
        if self.left.load(Ordering::Acquire) {
            return;
        }
        let new = match self
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
        let old = std::mem::replace(&mut *lock(&self.owned), new);
        if new == old {
            return;
        }
        let gained = new.difference(&old);
        info!(
            instance,
            owned = new.len(),
            gained = gained.len(),
            lost = old.difference(&new).len(),
            "shard ownership changed"
        );
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
        let mut schedule = lock(&self.schedule);
        for rt in woken {
            schedule.wake(rt, DateTime::<Utc>::MIN_UTC);
        }
    }

    /// Runs one round of the engine at `now` (see the [module docs](self)).
    ///
    /// Errors: [`Error::ClockWentBackwards`] if `now` is before the previous
    /// tick; [`Error::TickInProgress`] if another tick of this monitor is running.
    /// Failures of single probes, deliveries or commits do not stop the tick:
    /// they are logged, retried later and listed in [`TickReport::errors`].
    pub async fn tick(&self, now: DateTime<Utc>) -> Result<TickReport> {
        if self.ticking.swap(true, Ordering::Acquire) {
            return Err(Error::TickInProgress);
        }
        let _guard = TickGuard(&self.ticking);
        {
            let mut last = lock(&self.last_tick);
            if let Some(previous) = *last
                && now < previous
            {
                return Err(Error::ClockWentBackwards { previous, now });
            }
            *last = Some(now);
        }
        let span = info_span!("tick", %now);
        async {
            let mut report = TickReport::default();
            self.sync_ownership(now, &mut report).await;
            self.dispatch_probes(now, &mut report).await;
            self.check_probes(now, &mut report).await;
            let due = self.due_evaluations(now);
            self.evaluate_all(due, now, &mut report).await;
            self.work_outbox(now, &mut report).await;
            debug!(?report, "tick done");
            Ok(report)
        }
        .instrument(span)
        .await
    }

    /// Tenants to evaluate at `now`: timed wake-ups that are due, and
    /// tenants with new observations. Sorted, without duplicates.
    /// Tenants to evaluate at `now`: timed wake-ups that are due, and
    /// tenants with new observations. A tenant may appear more than once;
    /// `evaluate_tenant` evaluates a tenant at most once per tick.
    fn due_evaluations(&self, now: DateTime<Utc>) -> Vec<Runtime> {
        let mut schedule = lock(&self.schedule);
        let mut due = std::mem::take(&mut schedule.observed);
        schedule.evaluations.drain_due(now, &mut due);
        due
    }

    fn due_probes(&self, now: DateTime<Utc>) -> Vec<ProbeJob> {
        let mut schedule = lock(&self.schedule);
        let mut due = schedule.probes.spare.pop().unwrap_or_default();
        schedule.probes.drain_due(now, &mut due);
        due
    }

    async fn evaluate_all(
        &self,
        mut tenants: Vec<Runtime>,
        now: DateTime<Utc>,
        report: &mut TickReport,
    ) {
        let owned = *lock(&self.owned);
        for rt in tenants.drain(..) {
            if lock(&rt).removed {
                continue;
            }
            match self.evaluate_tenant(&rt, now, &owned, report).await {
                Ok(Some(at)) => self.wake(&rt, at),
                Ok(None) => {}
                Err((tenant, e)) => {
                    warn!(%tenant, error = %e, "evaluation not committed; retried next tick");
                    report.errors.push(format!("{tenant}: {e}"));
                    self.wake(&rt, now);
                }
            }
        }
        // Hand the emptied buffer back for the next round of observations.
        let mut schedule = lock(&self.schedule);
        if schedule.observed.is_empty() && schedule.observed.capacity() < tenants.capacity() {
            schedule.observed = tenants;
        } else {
            schedule.evaluations.recycle(tenants);
        }
    }

    async fn dispatch_probes(&self, now: DateTime<Utc>, report: &mut TickReport) {
        let mut due = self.due_probes(now);
        let owned = *lock(&self.owned);
        let mut pending_probes = Vec::new();
        let mut next_rounds = Vec::with_capacity(due.len());
        for job in due.drain(..) {
            if !owned.contains(job.shard) {
                // Another instance probes this tenant; look again next round,
                // in case the shard comes here.
                let next = after(now, job.settings.interval);
                next_rounds.push((job, next));
                continue;
            }
            let direction = job.direction;
            let Some(probe) = &self.probes[direction.index()] else {
                continue;
            };
            {
                // A job of a removed or re-registered tenant is stale; the
                // check reads a small dense array, not the tenant's state.
                let current = self
                    .dense
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(job.index as usize)
                    .is_some_and(|slot| slot.epoch == job.epoch);
                if !current {
                    continue;
                }
                let next = after(now, job.settings.interval);
                let (deadline, check, hint) = (
                    job.settings.deadline,
                    job.settings.check_interval,
                    job.index.saturating_add(1),
                );
                let tenant = job.tenant.clone();
                next_rounds.push((job, next));
                let tenant = &tenant;
                let request = ProbeRequest {
                    tenant: tenant.clone(),
                    direction,
                    probe_id: probe_id(direction, now),
                    sent_at: now,
                };
                let span =
                    info_span!("probe.dispatch", %tenant, %direction, probe_id = %request.probe_id);
                match probe.as_ref().dispatch(&request).instrument(span).await {
                    Ok(ticket) => {
                        report.probes_dispatched += 1;
                        let pending = PendingProbe {
                            tenant: tenant.clone(),
                            direction,
                            probe_id: request.probe_id,
                            sent_at: now,
                            deadline: after(now, deadline),
                            next_check_at: after(now, check),
                            ticket,
                            lease_id: 0,
                            tenant_hint: hint,
                        };
                        pending_probes.push(pending);
                        if pending_probes.len() >= self.settings.batch {
                            self.store_probes(&mut pending_probes, report).await;
                        }
                    }
                    Err(e @ Error::ProbeThrottled { .. }) => {
                        // Throttling says the server is up; it is not an outage.
                        if let (
                            Error::ProbeThrottled {
                                retry_after: Some(wait),
                                ..
                            },
                            Some(round),
                        ) = (&e, next_rounds.last_mut())
                        {
                            round.1 = round.1.max(after(now, *wait));
                        }
                        warn!(%tenant, %direction, error = %e, "probe dispatch throttled; not counted");
                        report
                            .errors
                            .push(format!("{tenant}: {direction} probe dispatch: {e}"));
                    }
                    Err(e) if e.is_retryable() => {
                        // The org's server refusing or timing out is exactly what we watch for.
                        warn!(%tenant, %direction, error = %e, "probe dispatch failed; counted as a failure");
                        if let Some(rt) = self.runtime_hinted(tenant, hint) {
                            self.record_into(
                                &rt,
                                direction,
                                now,
                                &Outcome::Failed {
                                    kind: FailureKind::Unreachable,
                                },
                            );
                        }
                        report
                            .errors
                            .push(format!("{tenant}: {direction} probe dispatch: {e}"));
                    }
                    Err(e) => {
                        error!(%tenant, %direction, error = %e, "probe dispatch failed (configuration?); not counted");
                        report
                            .errors
                            .push(format!("{tenant}: {direction} probe dispatch: {e}"));
                    }
                }
            }
        }
        self.store_probes(&mut pending_probes, report).await;
        let mut schedule = lock(&self.schedule);
        for (job, at) in next_rounds {
            schedule.probe(job, at);
        }
        schedule.probes.recycle(due);
    }

    async fn store_probes(&self, pending: &mut Vec<PendingProbe>, report: &mut TickReport) {
        if pending.is_empty() {
            return;
        }
        let count = pending.len();
        if let Err(e) = self.store.as_ref().put_probes(pending).await {
            warn!(count, error = %e, "pending probes not stored; checking them from memory until the store answers");
            report.errors.push(format!("storing {count} probes: {e}"));
            lock(&self.local_probes).append(pending);
        }
    }

    /// Probes the store could not take: handed to it now if it answers,
    /// else checked from memory.
    async fn check_local_probes(&self, now: DateTime<Utc>, report: &mut TickReport) {
        let mut local = std::mem::take(&mut *lock(&self.local_probes));
        if local.is_empty() {
            return;
        }
        let count = local.len();
        if self.store.as_ref().put_probes(&mut local).await.is_ok() {
            info!(count, "probes kept in memory are stored now");
            return;
        }
        let mut kept = Vec::with_capacity(count);
        for mut p in local {
            if p.next_check_at > now {
                kept.push(p);
                continue;
            }
            let request = ProbeRequest {
                tenant: p.tenant.clone(),
                direction: p.direction,
                probe_id: p.probe_id.clone(),
                sent_at: p.sent_at,
            };
            if let Some(at) = self
                .check_request(&request, p.deadline, &p.ticket, p.tenant_hint, now, report)
                .await
            {
                p.next_check_at = at;
                kept.push(p);
            }
        }
        lock(&self.local_probes).extend(kept);
    }

    async fn check_probes(&self, now: DateTime<Utc>, report: &mut TickReport) {
        self.check_local_probes(now, report).await;
        let owned = *lock(&self.owned);
        // Bounded: each round claims up to `batch`; a probe claimed in this
        // tick is rescheduled into the future, so rounds end.
        for _ in 0..10_000 {
            let claimed = match self
                .store
                .as_ref()
                .claim_probes(now, self.settings.lease, self.settings.batch, &owned)
                .await
            {
                Ok(c) => c,
                Err(e) => {
                    warn!(error = %e, "claiming pending probes failed");
                    report.errors.push(format!("claiming probes: {e}"));
                    return;
                }
            };
            if claimed.is_empty() {
                return;
            }
            let mut settlements = Vec::with_capacity(claimed.len());
            for p in claimed {
                let PendingProbe {
                    tenant,
                    direction,
                    probe_id,
                    sent_at,
                    deadline,
                    ticket,
                    lease_id,
                    tenant_hint,
                    ..
                } = p;
                let request = ProbeRequest {
                    tenant,
                    direction,
                    probe_id,
                    sent_at,
                };
                let next_check_at = self
                    .check_request(&request, deadline, &ticket, tenant_hint, now, report)
                    .await;
                settlements.push(ProbeSettlement {
                    tenant: request.tenant,
                    probe_id: request.probe_id,
                    lease_id,
                    next_check_at,
                });
            }
            let results = self.store.as_ref().settle_probes(&settlements).await;
            for (s, r) in settlements.iter().zip(results) {
                if let Err(e) = r {
                    warn!(tenant = %s.tenant, probe_id = %s.probe_id, error = %e, "settling a probe failed");
                    report
                        .errors
                        .push(format!("{}: probe {}: {e}", s.tenant, s.probe_id));
                }
            }
            // Evaluate the tenants whose probes just arrived while their state
            // is still in the processor's cache (the same tick would reach
            // them later anyway).
            let observed = std::mem::take(&mut lock(&self.schedule).observed);
            self.evaluate_all(observed, now, report).await;
        }
    }

    /// Checks one claimed probe and records what it found. Returns when to
    /// check it again (`None`: it is done, found or lost).
    async fn check_request(
        &self,
        request: &ProbeRequest,
        deadline: DateTime<Utc>,
        ticket: &ProbeTicket,
        tenant_hint: u32,
        now: DateTime<Utc>,
        report: &mut TickReport,
    ) -> Option<DateTime<Utc>> {
        let (tenant, direction, probe_id) = (&request.tenant, request.direction, &request.probe_id);
        // A removed tenant, or a direction no longer probed: nobody will
        // evaluate this probe.
        let rt = self.runtime_hinted(tenant, tenant_hint)?;
        let probe = self.probes[direction.index()].as_ref()?;
        report.probes_checked += 1;
        let span = info_span!("probe.check", %tenant, %direction, %probe_id);
        let status = probe.as_ref().check(request, ticket).instrument(span).await;
        match status {
            Ok(ProbeStatus::Arrived { at }) => {
                // A mailbox whose clock runs ahead must not stamp the future
                // (it would blind the window); one behind must not go negative.
                let at = at.clamp(request.sent_at, now.max(request.sent_at));
                let latency = (at - request.sent_at).to_std().unwrap_or(Duration::ZERO);
                report.probes_arrived += 1;
                self.record_into(&rt, direction, at, &Outcome::Delivered { latency });
                None
            }
            Ok(ProbeStatus::Pending) | Err(_) if now >= deadline => {
                report.probes_lost += 1;
                if let Err(e) = &status {
                    report
                        .errors
                        .push(format!("{tenant}: probe {probe_id}: {e}"));
                }
                info!(%tenant, %direction, %probe_id, "probe lost: not found by its deadline");
                self.record_into(
                    &rt,
                    direction,
                    now,
                    &Outcome::Failed {
                        kind: FailureKind::LostProbe,
                    },
                );
                None
            }
            Ok(ProbeStatus::Pending) => {
                Some(after(now, lock(&rt).probe_settings.check_interval).min(deadline))
            }
            Err(e) => {
                warn!(%tenant, %probe_id, error = %e, "probe check failed; checking again later");
                report
                    .errors
                    .push(format!("{tenant}: probe {probe_id}: {e}"));
                Some(after(now, lock(&rt).probe_settings.check_interval).min(deadline))
            }
        }
    }

    /// Evaluates one tenant and commits what changed. Returns when to wake
    /// it next (`None`: an existing wake-up stands).
    async fn evaluate_tenant(
        &self,
        rt: &Runtime,
        now: DateTime<Utc>,
        owned: &ShardSet,
        report: &mut TickReport,
    ) -> std::result::Result<Option<DateTime<Utc>>, (TenantId, Error)> {
        let tenant_of = |rt: &Runtime| lock(rt).config.tenant.clone();
        let (reload, mut flush, owner) = {
            let guard = lock(rt);
            (
                guard.reload.then(|| guard.tenant.clone()),
                journal_flush(&guard, now),
                owned.contains(guard.shard),
            )
        };
        if !owner {
            // Another instance evaluates it; it is woken again if its shard
            // comes here. A journal left from when it was ours is still
            // written (on top of the new owner's state).
            if flush {
                self.flush_journal(rt, now, report, true)
                    .await
                    .map_err(|e| (tenant_of(rt), e))?;
            }
            return Ok(None);
        }
        if let Some(tenant) = reload {
            // The previous owner may have moved the state on.
            match self.store.as_ref().load(&tenant).await {
                Ok(fresh) => {
                    let mut guard = lock(rt);
                    if let Some(fresh) = fresh
                        && fresh.version >= guard.cached.version
                    {
                        guard.cached = fresh;
                    }
                    guard.reload = false;
                    guard.next_eval_at = None;
                    flush = journal_flush(&guard, now);
                }
                // Go on with what is known; a stale version only makes the
                // next write conflict and reload. Loaded again next time.
                Err(e) if store_unreachable(&e) => {
                    warn!(%tenant, error = %e, "reloading a tenant taken over failed; using the state known");
                }
                Err(e) => return Err((tenant, e)),
            }
        }
        if flush {
            self.flush_journal(rt, now, report, true)
                .await
                .map_err(|e| (tenant_of(rt), e))?;
        }
        for attempt in 0..=self.settings.conflict_retries {
            let prepared = {
                let mut guard = lock(rt);
                let rt = &mut *guard;
                if attempt == 0 {
                    if rt.last_evaluated == Some(now) {
                        // One evaluation per tick: hysteresis counts ticks. If
                        // this tenant must be looked at again (a streak is
                        // running, or new data arrived), that is next tick.
                        let again = rt.next_eval_at.is_none_or(|t| t <= now)
                            || rt.directions.iter().any(|d| d.dirty);
                        return Ok(again.then_some(now));
                    }
                    if !rt.due(now) {
                        // Verdicts only change with new observations or at bucket
                        // and period boundaries, and nothing in the state is due.
                        return Ok(None);
                    }
                    rt.last_evaluated = Some(now);
                }
                rt.queued = false;
                let mut evaluations = EvalBuf::new();
                for d in Direction::ALL {
                    let dr = &mut rt.directions[d.index()];
                    // Re-evaluating after a conflict must not advance stateful
                    // policies twice; a direction whose verdicts cannot have
                    // changed keeps them.
                    let stale = dr.dirty || dr.verdicts_until.is_none_or(|t| now >= t);
                    if attempt == 0 && stale {
                        for w in dr.watches.iter_mut() {
                            w.verdict = Some(w.policy.get_mut().evaluate(&dr.window, now));
                        }
                        dr.dirty = false;
                        dr.verdicts_until = Some(dr.verdicts_until(now));
                        dr.absorb_below = dr.absorb_threshold();
                    }
                }
                for d in Direction::ALL {
                    let dr = &rt.directions[d.index()];
                    let full = now >= rt.watched_in_full_at(dr);
                    for w in dr.watches.iter() {
                        evaluations.push(Evaluation {
                            direction: d,
                            name: w.policy.get().condition(),
                            health: w
                                .verdict
                                .as_ref()
                                .map_or(Health::Unknown, |v| health(v, full)),
                        });
                    }
                }
                // Conditions no policy watches any more (the configuration
                // changed) are evaluated as healthy, so they clear.
                for c in &rt.cached.state.conditions {
                    let watched = rt.directions[c.direction.index()]
                        .watches
                        .iter()
                        .any(|w| w.policy.get().condition() == c.name);
                    if !watched {
                        evaluations.push(Evaluation {
                            direction: c.direction,
                            name: &c.name,
                            health: Health::Healthy,
                        });
                    }
                }
                let evaluations = evaluations.as_slice();
                if is_quiet(&rt.cached.state, evaluations, now, &rt.rules) {
                    let next = rt.next_verdict_change(now);
                    let deadline = rt.cached.state.next_deadline(rt.rules.repeat_interval);
                    let at = deadline.map_or(next, |d| d.min(next));
                    rt.next_eval_at = Some(at);
                    return Ok(Some(at));
                }
                let mut next = rt.cached.state.clone();
                let tenant = rt.config.tenant.clone();
                let effects = machine::apply_in_place(
                    &mut next,
                    &Input::Tick { evaluations },
                    now,
                    &rt.rules,
                )
                .map_err(|e| (tenant.clone(), e))?;
                if effects.is_empty() && next == rt.cached.state {
                    // Nothing to write (a reminder deferred by a suspension, say).
                    let at = rt.next_verdict_change(now);
                    let at = next
                        .next_deadline(rt.rules.repeat_interval)
                        .map_or(at, |d| d.min(at));
                    let at = if is_quiet(&next, evaluations, now, &rt.rules) {
                        at
                    } else {
                        now
                    };
                    rt.next_eval_at = Some(at);
                    return Ok(Some(at));
                }
                // With the same verdicts, would the next tick change anything
                // (a hysteresis streak still running)? Then look again next tick.
                let settled = is_quiet(&next, evaluations, now, &rt.rules);
                let next_eval_at = settled.then(|| {
                    let at = rt.next_verdict_change(now);
                    next.next_deadline(rt.rules.repeat_interval)
                        .map_or(at, |d| d.min(at))
                });
                rt.next_eval_at = None;
                let commit = self
                    .build_commit(rt, next, effects, now)
                    .map_err(|e| (tenant.clone(), e))?;
                (tenant, rt.cached.version, commit, next_eval_at)
            };
            let (tenant, expected, commit, next_eval_at) = prepared;
            let tenant = &tenant;
            let state = commit.state.clone();
            let span = info_span!("transition", %tenant, expected);
            match self
                .write(rt, tenant, expected, commit, now, report, true)
                .instrument(span)
                .await
            {
                Ok(Written::Journaled) => {
                    let mut rt = lock(rt);
                    report.alerts += state
                        .next_alert_id
                        .saturating_sub(rt.cached.state.next_alert_id);
                    // Not confirmed: the version stays the one it builds on;
                    // the write is tried again next tick.
                    rt.cached.state = state;
                    rt.next_eval_at = next_eval_at;
                    return Ok(Some(now));
                }
                Ok(Written::Stored(version)) => {
                    report.transitions += 1;
                    let alerts = state
                        .next_alert_id
                        .saturating_sub(lock(rt).cached.state.next_alert_id);
                    if alerts > 0 {
                        info!(%tenant, alerts, "alert committed to the outbox");
                    }
                    report.alerts += alerts;
                    let mut rt = lock(rt);
                    if version > rt.cached.version {
                        rt.cached = Versioned { version, state };
                        rt.next_eval_at = next_eval_at;
                    } else {
                        // An action committed a newer state while we waited:
                        // keep it, and look again next tick.
                        rt.next_eval_at = None;
                        return Ok(Some(now));
                    }
                    // Not settled: look again at the next tick.
                    return Ok(Some(next_eval_at.unwrap_or(now)));
                }
                Err(Error::Conflict { .. }) => {
                    debug!(%tenant, "state changed concurrently; reloading");
                    self.reload(tenant, rt)
                        .await
                        .map_err(|e| (tenant.clone(), e))?;
                }
                Err(e) => return Err((tenant.clone(), e)),
            }
        }
        let tenant = tenant_of(rt);
        let expected = lock(rt).cached.version;
        Err((
            tenant.clone(),
            Error::Conflict {
                tenant: tenant.to_string(),
                expected,
                actual: 0,
            },
        ))
    }

    async fn reload(&self, tenant: &TenantId, rt: &Runtime) -> Result<()> {
        let fresh = self
            .store
            .as_ref()
            .load(tenant)
            .await?
            .unwrap_or(Versioned {
                version: 0,
                state: TenantState::default(),
            });
        {
            let mut rt = lock(rt);
            // A journaled state is newer than anything stored: the journal's
            // write decides (see `journal`).
            if fresh.version >= rt.cached.version && rt.journal.is_empty() {
                rt.cached = fresh;
            }
            rt.next_eval_at = None;
        }
        self.wake(rt, DateTime::<Utc>::MIN_UTC);
        Ok(())
    }

    fn build_commit(
        &self,
        rt: &TenantRuntime,
        state: TenantState,
        effects: Vec<Effect>,
        now: DateTime<Utc>,
    ) -> Result<Commit> {
        let mut commit = Commit {
            state,
            at: now,
            audit: Vec::new(),
            outbox: Vec::new(),
        };
        for effect in effects {
            match effect {
                Effect::Audit(entry) => commit.audit.push(entry),
                Effect::Alert(alert) => {
                    debug!(tenant = %rt.config.tenant, alert_id = alert.id, kind = alert.kind.as_str(), "alert decided");
                    for message in self.render_alert(rt, &commit.state, &alert, now)? {
                        commit.outbox.push(OutboxItem::Alert(Box::new(message)));
                    }
                }
                Effect::EventStarted(event) if self.hook.is_some() => {
                    commit.outbox.push(OutboxItem::EventStarted {
                        tenant: rt.config.tenant.clone(),
                        event,
                    })
                }
                Effect::EventEnded(event) if self.hook.is_some() => {
                    commit.outbox.push(OutboxItem::EventEnded {
                        tenant: rt.config.tenant.clone(),
                        event,
                    })
                }
                Effect::EventStarted(_) | Effect::EventEnded(_) => {}
            }
        }
        Ok(commit)
    }

    fn render_alert(
        &self,
        rt: &TenantRuntime,
        state: &TenantState,
        alert: &AlertDecision,
        now: DateTime<Utc>,
    ) -> Result<Vec<AlertMessage>> {
        let conditions: Vec<ConditionReport> = alert
            .active
            .iter()
            .map(|c| {
                let dr = &rt.directions[c.direction.index()];
                let reading = dr
                    .watches
                    .iter()
                    .find(|w| w.policy.get().condition() == c.name)
                    .and_then(|w| w.verdict.as_ref())
                    .map_or_else(
                        || format!("{} condition", c.name),
                        |v| v.reading.to_string(),
                    );
                ConditionReport {
                    direction: c.direction,
                    name: c.name.clone(),
                    reading,
                    newly_raised: alert.newly_raised.contains(c),
                }
            })
            .collect();
        let event = state.active_event.as_ref().map(|e| {
            format!(
                "active since {} until {}",
                e.start.format("%Y-%m-%d %H:%M UTC"),
                e.end.format("%Y-%m-%d %H:%M UTC")
            )
        });
        let expires = after(now, self.links.ttl());
        rt.config
            .recipients
            .iter()
            .map(|r| {
                let token = self.links.sign(
                    &LinkClaims {
                        tenant: rt.config.tenant.clone(),
                        alert_id: alert.id,
                        recipient: r.id.clone(),
                    },
                    now,
                )?;
                Ok(AlertMessage {
                    tenant: rt.config.tenant.clone(),
                    tenant_name: rt.config.name().to_string(),
                    alert_id: alert.id,
                    kind: alert.kind,
                    recipient: r.clone(),
                    idempotency_key: format!("{}/{}/{}", rt.config.tenant, alert.id, r.id),
                    created_at: now,
                    link: format!("{}{}", self.portal_url, token),
                    link_expires_at: expires,
                    conditions: conditions.clone(),
                    event: event.clone(),
                })
            })
            .collect()
    }

    async fn work_outbox(&self, now: DateTime<Utc>, report: &mut TickReport) {
        for _ in 0..10_000 {
            let claimed = match self
                .store
                .as_ref()
                .claim_outbox(now, self.settings.lease, self.settings.batch)
                .await
            {
                Ok(c) => c,
                Err(e) => {
                    warn!(error = %e, "claiming the outbox failed");
                    report.errors.push(format!("claiming outbox: {e}"));
                    return;
                }
            };
            if claimed.is_empty() {
                return;
            }
            // One lane per channel (and one for the hook calls), the lanes
            // side by side: a slow or failing channel never holds back the
            // others. Within a lane entries go one at a time, so an instance
            // dying mid-tick leaves at most one delivery per channel sent
            // and not recorded. Order per recipient and per tenant hook
            // stays: the store hands out only the oldest entry of each
            // order key.
            let mut lanes: Vec<(Option<ChannelKind>, Vec<OutboxEntry>)> = Vec::new();
            for entry in claimed {
                let lane = match &entry.item {
                    OutboxItem::Alert(m) => Some(m.recipient.channel),
                    _ => None,
                };
                match lanes.iter_mut().find(|(l, _)| *l == lane) {
                    Some((_, entries)) => entries.push(entry),
                    None => lanes.push((lane, vec![entry])),
                }
            }
            let attempts = lanes.into_iter().map(|(_, entries)| async move {
                let mut part = TickReport::default();
                for entry in entries {
                    let result = if self.sent_from_memory(&entry.item) {
                        // The journal sent it while the store looked unreachable,
                        // and the commit had landed after all.
                        debug!(id = entry.id, "already delivered from memory");
                        OutboxResult::Done
                    } else {
                        self.attempt(&entry, now, &mut part).await
                    };
                    if let Err(e) = self
                        .store
                        .as_ref()
                        .complete_outbox(entry.id, entry.lease_id, result)
                        .await
                    {
                        warn!(id = entry.id, error = %e, "recording an outbox result failed; the entry will be retried");
                        part.errors.push(format!("outbox {}: {e}", entry.id));
                    }
                }
                part
            });
            for part in run_bounded(OUTBOX_CONCURRENCY, attempts).await {
                report.deliveries += part.deliveries;
                report.delivery_failures += part.delivery_failures;
                report.hook_calls += part.hook_calls;
                report.errors.extend(part.errors);
                report.receipts.extend(part.receipts);
            }
        }
    }

    fn retry_at(
        &self,
        entry: &OutboxEntry,
        now: DateTime<Utc>,
        retry_after: Option<Duration>,
    ) -> DateTime<Utc> {
        let exp = entry.attempts.saturating_sub(1).min(20);
        let backoff = self
            .settings
            .retry_base
            .saturating_mul(1u32 << exp)
            .min(self.settings.retry_max);
        after(
            now,
            retry_after
                .unwrap_or(backoff)
                .max(backoff)
                .min(self.settings.retry_max),
        )
    }

    async fn attempt(
        &self,
        entry: &OutboxEntry,
        now: DateTime<Utc>,
        report: &mut TickReport,
    ) -> OutboxResult {
        match &entry.item {
            OutboxItem::Alert(message) => {
                // An alert decided just before an administrator suspended
                // notifications is not sent during the suspension; if the
                // trouble lasts, its end sends the current state at once.
                let suspended = self
                    .runtime(&message.tenant)
                    .is_ok_and(|rt| lock(&rt).cached.state.suspended_at(now));
                if suspended {
                    info!(key = %message.idempotency_key, "alert withheld: notifications were suspended before it went out");
                    return OutboxResult::GiveUp {
                        error: "withheld: notifications were suspended before delivery".into(),
                    };
                }
                if now >= message.link_expires_at {
                    report.delivery_failures += 1;
                    error!(key = %message.idempotency_key, "alert not delivered before its link expired; giving up");
                    return OutboxResult::GiveUp {
                        error: format!(
                            "not delivered before its link expired; last error: {}",
                            entry.last_error.as_deref().unwrap_or("none")
                        ),
                    };
                }
                let Some(notifier) = self.notifiers.get(&message.recipient.channel) else {
                    report.delivery_failures += 1;
                    return OutboxResult::GiveUp {
                        error: format!("no {} notifier installed", message.recipient.channel),
                    };
                };
                let span = info_span!("alert.deliver", key = %message.idempotency_key, channel = %message.recipient.channel);
                match notifier.as_ref().deliver(message).instrument(span).await {
                    Ok(receipt) => {
                        report.deliveries += 1;
                        info!(key = %message.idempotency_key, provider_id = ?receipt.provider_id, "alert delivered");
                        report.receipts.push(DeliveryReceipt {
                            idempotency_key: message.idempotency_key.clone(),
                            tenant: message.tenant.clone(),
                            alert_id: message.alert_id,
                            recipient: message.recipient.id.clone(),
                            channel: message.recipient.channel,
                            delivered_at: now,
                            attempts: entry.attempts.max(1),
                            receipt,
                        });
                        OutboxResult::Done
                    }
                    Err(e) => {
                        report.delivery_failures += 1;
                        let retry_after = match &e {
                            Error::Notify { retry_after, .. } => *retry_after,
                            _ => None,
                        };
                        if e.is_retryable() {
                            warn!(key = %message.idempotency_key, error = %e, "delivery failed; will retry");
                            OutboxResult::Retry {
                                at: self.retry_at(entry, now, retry_after),
                                error: e.to_string(),
                            }
                        } else {
                            error!(key = %message.idempotency_key, error = %e, "delivery failed permanently");
                            OutboxResult::GiveUp {
                                error: e.to_string(),
                            }
                        }
                    }
                }
            }
            OutboxItem::EventStarted { tenant, event }
            | OutboxItem::EventEnded { tenant, event } => {
                // In order: the store hands out a tenant's hook calls one at a
                // time (its order-per-key contract), so a failing start holds
                // back the end.
                let Some(hook) = &self.hook else {
                    return OutboxResult::Done;
                };
                let started = matches!(entry.item, OutboxItem::EventStarted { .. });
                let span = info_span!("hook", %tenant, event_id = event.id, started);
                let result = if started {
                    hook.as_ref()
                        .event_started(tenant, event)
                        .instrument(span)
                        .await
                } else {
                    hook.as_ref()
                        .event_ended(tenant, event)
                        .instrument(span)
                        .await
                };
                match result {
                    Ok(()) => {
                        report.hook_calls += 1;
                        OutboxResult::Done
                    }
                    Err(e) if e.is_retryable() => {
                        warn!(%tenant, event_id = event.id, error = %e, "continuity hook failed; will retry");
                        let at = self.retry_at(entry, now, None);
                        OutboxResult::Retry {
                            at,
                            error: e.to_string(),
                        }
                    }
                    Err(e) => {
                        report
                            .errors
                            .push(format!("{tenant}: hook for event {}: {e}", event.id));
                        error!(%tenant, event_id = event.id, error = %e, "continuity hook failed permanently; giving up");
                        OutboxResult::GiveUp {
                            error: e.to_string(),
                        }
                    }
                }
            }
        }
    }

    /// Verifies a portal link at the clock's time and performs `action` as its recipient.
    pub async fn perform(&self, token: &str, action: Action) -> Result<ActionOutcome> {
        self.perform_at(token, action, self.clock.now()).await
    }

    /// Verifies a portal link at `now` and performs `action` as its recipient.
    pub async fn perform_at(
        &self,
        token: &str,
        action: Action,
        now: DateTime<Utc>,
    ) -> Result<ActionOutcome> {
        let link = self.verify_link(token, None, now)?;
        let actor = Actor::Link {
            recipient: link.claims.recipient.clone(),
            alert_id: link.claims.alert_id,
            key_id: link.key_id.clone(),
            issued_at: link.issued_at,
        };
        self.act(&link.claims.tenant, actor, action, None, now)
            .await
    }

    /// Verifies a portal link (optionally for a given tenant) at `now`.
    pub fn verify_link(
        &self,
        token: &str,
        tenant: Option<&TenantId>,
        now: DateTime<Utc>,
    ) -> Result<VerifiedLink> {
        let link = self.links.verify(token, tenant, now)?;
        let rt = self.runtime(&link.claims.tenant)?;
        // A link of a recipient removed from the configuration no longer opens the portal.
        if !lock(&rt)
            .config
            .recipients
            .iter()
            .any(|r| r.id == link.claims.recipient)
        {
            return Err(Error::Link {
                reason: crate::link::LinkRejection::UnknownRecipient,
            });
        }
        Ok(link)
    }

    /// Performs `action` on `tenant` as `actor` at `now` (not before the last
    /// tick: [`Error::ClockWentBackwards`]).
    ///
    /// With `expected_version`, the action is refused with
    /// [`Error::Conflict`] if the tenant's state changed since the caller saw
    /// that version (two administrators acting at once: one wins, the other
    /// is told). Without it, the action applies to the current state.
    pub async fn act(
        &self,
        tenant: &TenantId,
        actor: Actor,
        action: Action,
        expected_version: Option<u64>,
        now: DateTime<Utc>,
    ) -> Result<ActionOutcome> {
        if let Some(previous) = *lock(&self.last_tick)
            && now < previous
        {
            // An action stamped before the last tick would be judged against
            // a past that the state has already moved beyond.
            return Err(Error::ClockWentBackwards { previous, now });
        }
        let rt = self.runtime(tenant)?;
        // What this instance did while the store was unreachable is written
        // first, so the action builds on it (or is refused while the store
        // still cannot be reached).
        if !self
            .flush_journal(&rt, now, &mut TickReport::default(), false)
            .await?
        {
            return Err(Error::Store {
                backend: "monitor",
                retryable: true,
                message:
                    "the store cannot be reached: the action was not applied; try again shortly"
                        .into(),
                source: None,
            });
        }
        self.reload(tenant, &rt).await?;
        let span = info_span!("action", %tenant, action = action.name(), %actor);
        async {
            for _ in 0..=self.settings.conflict_retries {
                let (expected, commit) = {
                    let guard = lock(&rt);
                    if let Some(v) = expected_version
                        && v != guard.cached.version
                    {
                        return Err(Error::Conflict {
                            tenant: tenant.to_string(),
                            expected: v,
                            actual: guard.cached.version,
                        });
                    }
                    let mut next = guard.cached.state.clone();
                    let effects = machine::apply_in_place(
                        &mut next,
                        &Input::Act {
                            action: action.clone(),
                            actor: actor.clone(),
                        },
                        now,
                        &guard.rules,
                    )?;
                    (
                        guard.cached.version,
                        self.build_commit(&guard, next, effects, now)?,
                    )
                };
                let state = commit.state.clone();
                match self.store.as_ref().commit(tenant, expected, commit).await {
                    Ok(version) => {
                        let mut guard = lock(&rt);
                        if version > guard.cached.version {
                            guard.cached = Versioned {
                                version,
                                state: state.clone(),
                            };
                        }
                        guard.next_eval_at = None;
                        drop(guard);
                        self.wake(&rt, DateTime::<Utc>::MIN_UTC);
                        info!(version, "action applied");
                        return Ok(ActionOutcome {
                            tenant: tenant.clone(),
                            version,
                            state,
                        });
                    }
                    Err(Error::Conflict { .. }) => self.reload(tenant, &rt).await?,
                    Err(e) => return Err(e),
                }
            }
            Err(Error::Conflict {
                tenant: tenant.to_string(),
                expected: expected_version.unwrap_or(0),
                actual: lock(&rt).cached.version,
            })
        }
        .instrument(span)
        .await
    }
}

fn record(
    rt: &mut TenantRuntime,
    direction: Direction,
    at: DateTime<Utc>,
    outcome: &Outcome,
) -> Recorded {
    let dr = &mut rt.directions[direction.index()];
    let absorbed = dr.absorbs(outcome);
    let recorded = dr.window.record(at, outcome);
    if recorded == Recorded::Counted {
        dr.dirty |= !absorbed;
        // Only the leaky counter keeps per-observation state; the other
        // policies read the window, so their (cold) memory is left alone.
        if dr.leaky_period.is_some() {
            for w in dr.watches.iter_mut() {
                if let Builtin::Leaky(p) = &mut w.policy {
                    p.record(at, outcome);
                }
            }
        }
    }
    recorded
}

/// A verdict as the state machine sees it: a policy without enough data to
/// judge (no samples, fewer than its minimum) is `Unknown`, which neither
/// raises nor clears, so an empty window after a restart cannot end an
/// outage by itself. `full_window`: the monitor has watched the window for
/// its whole length (since it registered the tenant or took it over).
fn health(v: &Verdict, full_window: bool) -> Health {
    if v.breached {
        return Health::Breached;
    }
    match v.reading {
        Reading::Latency { value: None, .. } | Reading::Failures { samples: 0, .. } => {
            Health::Unknown
        }
        // Fewer failures than the count in a window watched for only part
        // of its length (after a restart or a take-over) prove nothing: an
        // outage must not "resolve" because the window is still filling.
        Reading::Failures {
            limit: FailureLimit::Count(_),
            ..
        } if !full_window => Health::Unknown,
        _ => Health::Healthy,
    }
}

/// Whether a tick with these evaluations would leave the state as it is (the
/// common case: everything healthy, nothing due), so no copy and no write is needed.
fn is_quiet(
    state: &TenantState,
    evaluations: &[Evaluation<'_>],
    now: DateTime<Utc>,
    rules: &Rules,
) -> bool {
    for ev in evaluations {
        match state.condition(ev.direction, ev.name) {
            _ if ev.health == Health::Unknown => {}
            Some(c) if c.active != (ev.health == Health::Breached) || c.streak != 0 => {
                return false;
            }
            None if ev.health == Health::Breached => return false,
            _ => {}
        }
    }
    if state
        .next_deadline(rules.repeat_interval)
        .is_some_and(|d| d <= now)
    {
        return false;
    }
    if state.resolved_owed && !state.suspended_at(now) {
        return false;
    }
    if let Some(i) = &state.incident {
        if i.owed && !state.suspended_at(now) {
            return false;
        }
        if !state.any_active() {
            return false;
        }
    }
    true
}
