//! The tenant registry and each tenant's in-memory runtime: registration,
//! removal, [`Monitor::observe`] and [`Monitor::status`].
//!
//! A [`TenantRuntime`] holds what the engine keeps in memory per tenant (its
//! windows and policies per direction, a cached copy of the stored state,
//! scheduling flags); the store holds the rest. Recording an observation is
//! the hottest path of the engine, so it stays small and lives here, next to
//! the data it touches.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::{DateTime, TimeDelta, Utc};

use tracing::warn;

use super::{
    BucketReading, DenseSlot, DirectionHistory, HISTORY_SPAN, Monitor, OverdueProbe, TenantStatus,
    baselines, health,
    journal::{Journal, store_unreachable},
    lock,
    registry::PolicyRegistry,
    timer::ProbeJob,
};
use crate::{
    cluster::shard_of,
    config::TenantConfig,
    domain::{Direction, FailureKind, Observation, Outcome, RemoteReply, TenantId},
    duration::after,
    error::{Error, Result},
    fxhash::FxHashMap,
    machine::{Rules, TenantState},
    notify::{FailureCount, FailureSummary},
    policy::{
        FailurePolicy, FlowPolicy, LatencyPolicy, LatencyStatistic, LeakyCounterPolicy, Reading,
        ThresholdPolicy, Verdict, next_multiple,
    },
    store::Versioned,
    window::{Recorded, SlidingWindow},
};

pub(super) type Runtime = Arc<Mutex<TenantRuntime>>;

// `repr(C)` keeps the declared order: the fields every tick touches come
// first, next to the mutex word, and the rarely read ones last. With 100,000
// tenants the state does not fit in cache, and each extra cache line touched
// per tenant costs a memory round trip.
#[repr(C)]
pub(super) struct TenantRuntime {
    /// Listed in `Schedule::observed` since its last evaluation.
    pub(super) queued: bool,
    /// Unregistered or replaced: schedule entries still pointing here are dropped.
    pub(super) removed: bool,
    /// Nothing can change before this time unless an observation arrives
    /// (`None`: evaluate at the next tick).
    pub(super) next_eval_at: Option<DateTime<Utc>>,
    /// The tick of the last evaluation (at most one per tick).
    pub(super) last_evaluated: Option<DateTime<Utc>>,
    /// This runtime's index in `TenantRegistry::dense`.
    pub(super) index: u32,
    /// The tenant's shard (see [`crate::cluster`]).
    pub(super) shard: u16,
    /// The stored state may have moved on while another instance owned the
    /// tenant: load it before the next evaluation.
    pub(super) reload: bool,
    /// What was done while the store could not be reached (see
    /// [`journal`](super::journal)). `cached` then holds the newest state, with the version
    /// it builds on.
    pub(super) journal: Journal,
    /// Since when this monitor has watched the tenant (registered it, or
    /// took its shard over). Until a window has been watched for its whole
    /// length, fewer failures than a count threshold prove nothing.
    pub(super) watching_since: DateTime<Utc>,
    /// Copies of what every probe round reads, kept here rather than behind
    /// the configuration's pointer (one cache miss less per probe).
    pub(super) tenant: TenantId,
    pub(super) probe_settings: crate::config::ProbeConfig,
    pub(super) directions: [DirectionRuntime; 2],
    pub(super) cached: Versioned,
    pub(super) rules: Rules,
    pub(super) config: Arc<TenantConfig>,
    /// When this instance saves the tenant's baselines next (`None`: not
    /// scheduled, the tenant is another instance's). A timer entry for
    /// another time is stale. Read about once an hour, so last.
    pub(super) baseline_due: Option<DateTime<Utc>>,
    /// A hash of the snapshots last saved (0: none): unchanged baselines
    /// are not written again.
    pub(super) baseline_saved: u64,
    /// Taken over while the store could not give its baselines: they are
    /// loaded before anything is saved over them.
    pub(super) baseline_owed: bool,
    /// What this tenant adds to the gauges of the metrics (see
    /// `health.rs`, `reconcile_gauges`).
    pub(super) gauged: health::Gauged,
}

impl TenantRuntime {
    pub(super) fn due(&self, now: DateTime<Utc>) -> bool {
        self.next_eval_at.is_none_or(|t| now >= t) || self.directions.iter().any(|d| d.dirty)
    }

    /// The earliest time at which a policy's verdict can change without a
    /// new observation, or its health (when a window this monitor has
    /// watched for its whole length can first say "healthy").
    pub(super) fn next_verdict_change(&self, now: DateTime<Utc>) -> DateTime<Utc> {
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
    pub(super) fn watched_in_full_at(&self, d: &DirectionRuntime) -> DateTime<Utc> {
        after(self.watching_since, d.window.length())
    }
}

/// A policy of a direction, built-in or the embedder's, behind the trait:
/// the Monitor knows nothing of its kind.
#[derive(Debug)]
pub(super) struct Policy(Box<dyn ThresholdPolicy>);

impl Policy {
    pub(super) fn get(&self) -> &dyn ThresholdPolicy {
        &*self.0
    }

    pub(super) fn get_mut(&mut self) -> &mut dyn ThresholdPolicy {
        &mut *self.0
    }
}

/// A policy with its latest verdict, as [`Watches::iter`] lends them.
pub(super) struct Watch<'a> {
    pub(super) policy: &'a Policy,
    pub(super) verdict: &'a Option<Verdict>,
}

/// [`Watch`], to change.
pub(super) struct WatchMut<'a> {
    pub(super) policy: &'a mut Policy,
    pub(super) verdict: &'a mut Option<Verdict>,
}

/// The direction's policies and their latest verdicts. The first two
/// policies (the defaults' two) are kept inline, in the tenant's runtime:
/// recording an observation calls the policies that ask for every one
/// without a trip through another allocation (with 100,000 tenants, each is
/// a cache miss). The verdicts, read only around evaluations, are apart.
pub(super) struct Watches {
    first: [Option<Policy>; 2],
    rest: Box<[Policy]>,
    verdicts: Box<[Option<Verdict>]>,
}

impl Watches {
    fn new(policies: Vec<Box<dyn ThresholdPolicy>>) -> Self {
        let verdicts = policies.iter().map(|_| None).collect();
        let mut policies = policies.into_iter().map(Policy);
        let first = [policies.next(), policies.next()];
        Watches {
            first,
            rest: policies.collect(),
            verdicts,
        }
    }

    fn policies(&self) -> impl Iterator<Item = &Policy> {
        self.first.iter().flatten().chain(self.rest.iter())
    }

    fn policies_mut(&mut self) -> impl Iterator<Item = &mut Policy> {
        self.first.iter_mut().flatten().chain(self.rest.iter_mut())
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = Watch<'_>> {
        self.policies()
            .zip(self.verdicts.iter())
            .map(|(policy, verdict)| Watch { policy, verdict })
    }

    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = WatchMut<'_>> {
        let verdicts = self.verdicts.iter_mut();
        self.first
            .iter_mut()
            .flatten()
            .chain(self.rest.iter_mut())
            .zip(verdicts)
            .map(|(policy, verdict)| WatchMut { policy, verdict })
    }

    /// Bytes held beyond the struct itself: the policies past the first
    /// two, the verdicts and what each policy holds.
    fn heap_bytes(&self) -> usize {
        self.rest.len() * std::mem::size_of::<Policy>()
            + self.verdicts.len() * std::mem::size_of::<Option<Verdict>>()
            + self
                .policies()
                .map(|p| p.get().memory_bytes())
                .sum::<usize>()
    }
}

#[repr(C)]
pub(super) struct DirectionRuntime {
    /// An observation arrived since the last evaluation.
    pub(super) dirty: bool,
    /// Some policy wants every observation ([`ThresholdPolicy::records`]).
    /// Kept next to `dirty`, so recording reads one cache line and calls
    /// into no policy that does not need it.
    pub(super) records: bool,
    /// The earliest [`ThresholdPolicy::overdue_after`] of the policies: a
    /// probe pending longer is marked overdue in the window.
    pub(super) overdue_after: Option<Duration>,
    /// The verdicts cannot change before this time without an observation.
    pub(super) verdicts_until: Option<DateTime<Utc>>,
    /// A delivery faster than this leaves the (healthy, steady) verdicts as
    /// they are; `None` while any observation may change them. Cached from
    /// the policies at each evaluation, so recording calls none of them.
    pub(super) absorb_below: Option<Duration>,
    /// The tick of the latest evaluation of these policies.
    pub(super) evaluated_at: Option<DateTime<Utc>>,
    pub(super) window: SlidingWindow,
    pub(super) watches: Watches,
    /// The remote's reply to the latest failure that carried one, and when:
    /// alerts quote it while it is inside the window. Cold, so last.
    pub(super) last_reply: Option<(DateTime<Utc>, RemoteReply)>,
}

impl DirectionRuntime {
    /// Until when the current verdicts hold without a new observation: the
    /// earliest of the policies' [`ThresholdPolicy::valid_until`].
    pub(super) fn verdicts_until(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        // Observations stamped ahead of the clock come into view later.
        let ahead = self.window.newest_bucket_start().is_some_and(|s| s > now);
        let mut until = DateTime::<Utc>::MAX_UTC;
        for w in self.watches.iter() {
            let Some(v) = &w.verdict else {
                return next_multiple(now, self.window.bucket_width());
            };
            until = until.min(w.policy.get().valid_until(v, &self.window, now));
        }
        if ahead {
            until.min(next_multiple(now, self.window.bucket_width()))
        } else {
            until
        }
    }

    /// Whether recording `outcome` leaves every verdict as it is, so that it
    /// needs no evaluation: every verdict holds until something is recorded,
    /// and the delivery is faster than every policy's
    /// [`absorbs_below`](ThresholdPolicy::absorbs_below). Healthy tenants
    /// then cost no evaluation per probe; their readings are brought up to
    /// date by [`Monitor::status`].
    fn absorbs(&self, outcome: &Outcome) -> bool {
        match outcome {
            Outcome::Delivered { latency } => {
                !self.dirty && self.absorb_below.is_some_and(|below| *latency < below)
            }
            Outcome::Failed { .. } => false,
        }
    }

    /// Computes [`absorb_below`](Self::absorb_below) after an evaluation.
    pub(super) fn absorb_threshold(&self, now: DateTime<Utc>) -> Option<Duration> {
        if self.verdicts_until != Some(DateTime::<Utc>::MAX_UTC) {
            return None;
        }
        let mut below = Duration::MAX;
        for w in self.watches.iter() {
            let v = w.verdict.as_ref()?;
            below = below.min(w.policy.get().absorbs_below(v, &self.window, now)?);
        }
        Some(below)
    }

    /// The failures in the window at `now` by kind, and the last remote
    /// reply if it was given inside the window.
    pub(super) fn failure_summary(
        &self,
        direction: Direction,
        now: DateTime<Utc>,
    ) -> Option<FailureSummary> {
        let by_kind = self.window.stats(now).failures_by_kind();
        let failures: Vec<FailureCount> = FailureKind::ALL
            .into_iter()
            .zip(by_kind)
            .filter(|(_, count)| *count > 0)
            .map(|(kind, count)| FailureCount { kind, count })
            .collect();
        let since = chrono::TimeDelta::from_std(self.window.length())
            .ok()
            .and_then(|d| now.checked_sub_signed(d))
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let last_reply = self
            .last_reply
            .as_ref()
            .filter(|(at, _)| *at > since && *at <= now)
            .map(|(_, r)| r.clone());
        (!failures.is_empty() || last_reply.is_some()).then_some(FailureSummary {
            direction,
            failures,
            last_reply,
        })
    }

    /// The window's buckets of the last hour against the thresholds the
    /// `verdicts` (this direction's) name; buckets that ended before
    /// `watched_since` (all of them without it) were not watched here.
    pub(super) fn history<'a>(
        &self,
        direction: Direction,
        verdicts: impl Iterator<Item = &'a Verdict>,
        watched_since: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> DirectionHistory {
        let (mut latency, mut slow_above, mut failure_limit) = (None, None, None);
        for v in verdicts {
            match &v.reading {
                Reading::Latency {
                    statistic, limit, ..
                } => latency = latency.or(Some((*statistic, *limit))),
                Reading::Flow { slow_above: s, .. } => slow_above = slow_above.or(*s),
                Reading::Failures { limit, .. } => failure_limit = failure_limit.or(Some(*limit)),
                _ => {}
            }
        }
        let statistic = latency.map_or(LatencyStatistic::P95, |(s, _)| s);
        let width = self.window.bucket_width();
        let since = now
            .checked_sub_signed(TimeDelta::from_std(HISTORY_SPAN).unwrap_or(TimeDelta::MAX))
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let buckets = self
            .window
            .bucket_stats(now)
            .filter(|(start, _)| after(*start, width) > since)
            .map(|(start, stats)| BucketReading {
                start,
                // Mail recorded in a bucket was seen, even when stamped
                // before this instance began watching (a gateway's late
                // report); an empty bucket from before says nothing.
                watched: watched_since
                    .is_some_and(|since| stats.samples() > 0 || after(start, width) > since),
                deliveries: stats.deliveries(),
                failures: stats.failures(),
                latency: match statistic {
                    LatencyStatistic::Max => stats.max_latency(),
                    LatencyStatistic::Quantile(q) => stats.latency_quantile(q),
                },
            })
            .collect();
        let overdue = if watched_since.is_some() {
            let ages = self.window.stats(now).overdue_over(Duration::ZERO);
            ages.into_iter()
                .flatten()
                .map(|age| OverdueProbe { age })
                .collect()
        } else {
            Vec::new()
        };
        DirectionHistory {
            direction,
            bucket_width: width,
            statistic,
            latency_limit: latency.map(|(_, l)| l).or(slow_above),
            failure_limit,
            buckets,
            overdue,
        }
    }

    /// Bytes held for this direction: the window, the policies and their
    /// last verdicts, the last remote reply.
    fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>() - std::mem::size_of::<SlidingWindow>()
            + self.window.memory_bytes()
            + self.last_reply.as_ref().map_or(0, |(_, r)| r.heap_bytes())
            + self.watches.heap_bytes()
    }

    /// The direction's runtime: its window, the built-in policies its
    /// configuration turns on, and the policies it selects by name from
    /// `registry`. `prefix` (`inbound`, `outbound`) names the fields in errors.
    fn new(
        config: &crate::config::DirectionConfig,
        registry: &PolicyRegistry,
        tenant: &TenantId,
        prefix: &str,
    ) -> Result<Self> {
        let mut policies: Vec<Box<dyn ThresholdPolicy>> = Vec::new();
        if let Some(t) = &config.latency {
            policies.push(Box::new(LatencyPolicy::new(t.clone())));
        }
        if let Some(t) = &config.failures {
            policies.push(Box::new(FailurePolicy::new(t.clone())));
        }
        if let Some(t) = &config.leaky {
            policies.push(Box::new(LeakyCounterPolicy::new(t.clone())));
        }
        if let Some(t) = &config.flow {
            policies.push(Box::new(FlowPolicy::new(t.clone())));
        }
        for (i, selection) in config.policies.iter().enumerate() {
            let field = format!("{prefix}.policies[{i}]");
            let policy = registry.build(selection, tenant, &field)?;
            if policies.iter().any(|p| p.condition() == policy.condition()) {
                return Err(Error::config(
                    format!("{field}.name"),
                    format!(
                        "tenant {tenant}: policy {:?} watches condition {:?}, which another policy of {prefix} already watches",
                        selection.name,
                        policy.condition()
                    ),
                ));
            }
            policies.push(policy);
        }
        let records = policies.iter().any(|p| p.records());
        let overdue_after = policies.iter().filter_map(|p| p.overdue_after()).min();
        let watches = Watches::new(policies);
        Ok(DirectionRuntime {
            window: SlidingWindow::new(config.window, SlidingWindow::DEFAULT_BUCKETS)?,
            watches,
            dirty: false,
            records,
            overdue_after,
            verdicts_until: None,
            absorb_below: None,
            evaluated_at: None,
            last_reply: None,
        })
    }
}

impl Monitor {
    pub(super) fn read_tenants(
        &self,
    ) -> std::sync::RwLockReadGuard<'_, FxHashMap<TenantId, Runtime>> {
        self.tenants.by_id.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn runtime(&self, tenant: &TenantId) -> Result<Runtime> {
        self.read_tenants()
            .get(tenant)
            .cloned()
            .ok_or_else(|| Error::UnknownTenant {
                tenant: tenant.to_string(),
            })
    }

    /// The runtime of `tenant`, through the dense index when `hint` (index + 1)
    /// names it, else by id.
    pub(super) fn runtime_hinted(&self, tenant: &TenantId, hint: u32) -> Option<Runtime> {
        if let Some(i) = hint.checked_sub(1) {
            let dense = self.tenants.dense.read().unwrap_or_else(|e| e.into_inner());
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
    /// state and the baselines its policies learned (see
    /// [`MonitorSettings::baseline_every`](super::MonitorSettings::baseline_every));
    /// a store error fails the registration. A replaced configuration starts
    /// new windows; its policies keep what the former ones learned where
    /// they watch the same condition and take it (the flow detector with
    /// the same half-life).
    pub async fn register_tenant(&self, config: TenantConfig) -> Result<()> {
        config.validate()?;
        self.check_channels(&config)?;
        let tenant = config.tenant.clone();
        let store = self.parts.store.as_ref();
        let cached = store.load(&tenant).await?.unwrap_or(Versioned {
            version: 0,
            state: TenantState::default(),
        });
        let baselines = store.load_baselines(&tenant).await?;
        let now = self.parts.clock.now();
        // Built here rather than by a constructor returning it: a runtime
        // is about two kilobytes, and each move of it is a copy.
        let mut runtime = TenantRuntime {
            rules: config.rules(),
            directions: [
                DirectionRuntime::new(
                    &config.inbound,
                    &self.parts.policies,
                    &config.tenant,
                    "inbound",
                )?,
                DirectionRuntime::new(
                    &config.outbound,
                    &self.parts.policies,
                    &config.tenant,
                    "outbound",
                )?,
            ],
            index: 0,
            shard: shard_of(&config.tenant),
            reload: false,
            journal: Journal::default(),
            watching_since: now,
            tenant: config.tenant.clone(),
            probe_settings: config.probes.clone(),
            config: Arc::new(config),
            cached,
            next_eval_at: None,
            queued: false,
            removed: false,
            last_evaluated: None,
            baseline_due: None,
            baseline_saved: 0,
            baseline_owed: false,
            gauged: health::Gauged::default(),
        };
        baselines::restore_into(&mut runtime, &baselines);
        // A configuration replaced on the instance that owns the tenant: its
        // policies learned since the last save.
        let owned = *lock(&self.cluster.owned);
        let former = self.read_tenants().get(&tenant).cloned();
        if let Some(former) = former {
            let former = lock(&former);
            if owned.contains(former.shard) && !former.baseline_owed {
                baselines::carry_over(&former, &mut runtime);
            }
        }
        let first_save = baselines::first_save(&tenant, now, self.settings.baseline_every);
        runtime.baseline_due = Some(first_save);
        let probed: Vec<Direction> = Direction::ALL
            .into_iter()
            .filter(|d| self.parts.probes[d.index()].is_some() && runtime.config.probes.enabled(*d))
            .collect();
        let tenant_id = runtime.tenant.clone();
        let probe_settings = Arc::new(runtime.probe_settings.clone());
        let runtime = Arc::new(Mutex::new(runtime));
        let (index, epoch) = self.insert_runtime(tenant, &runtime);
        let mut schedule = lock(&self.ticks.schedule);
        schedule.wake(runtime.clone(), DateTime::<Utc>::MIN_UTC);
        schedule.baselines.push(first_save, runtime.clone());
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

    /// Refuses a configuration with a recipient on a channel no notifier
    /// of this monitor serves.
    fn check_channels(&self, config: &TenantConfig) -> Result<()> {
        for (i, r) in config.recipients.iter().enumerate() {
            if !self.parts.notifiers.contains_key(&r.channel) {
                return Err(Error::config(
                    format!("recipients[{i}].channel"),
                    format!("no {} notifier is installed in this monitor", r.channel),
                ));
            }
        }
        Ok(())
    }

    /// Puts a new runtime in the registry, in place of the tenant's former
    /// one if any (which keeps its dense index and is marked removed).
    /// Returns the dense index and the registration epoch.
    fn insert_runtime(&self, tenant: TenantId, runtime: &Runtime) -> (u32, u32) {
        let mut tenants = self
            .tenants
            .by_id
            .write()
            .unwrap_or_else(|e| e.into_inner());
        let mut dense = self
            .tenants
            .dense
            .write()
            .unwrap_or_else(|e| e.into_inner());
        let index = match tenants.get(&tenant) {
            Some(old) => lock(old).index,
            None => u32::try_from(dense.len()).unwrap_or(u32::MAX),
        };
        lock(runtime).index = index;
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
            let mut old = lock(&old);
            old.removed = true;
            self.reconcile_gauges(&mut old, &crate::cluster::ShardSet::EMPTY);
        }
        (index, epoch)
    }

    /// Stops watching a tenant (its stored state stays).
    pub fn remove_tenant(&self, tenant: &TenantId) -> bool {
        let removed = self
            .tenants
            .by_id
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(tenant);
        if let Some(rt) = &removed {
            let index = {
                let mut rt = lock(rt);
                rt.removed = true;
                self.reconcile_gauges(&mut rt, &crate::cluster::ShardSet::EMPTY);
                rt.index
            };
            let mut dense = self
                .tenants
                .dense
                .write()
                .unwrap_or_else(|e| e.into_inner());
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
    ///
    /// In a [cluster](super::MonitorBuilder::cluster), any instance may be
    /// told about any tenant: an observation of a tenant another instance
    /// owns is kept for it (`Ok(Recorded::Forwarded)`), shared through the
    /// store at this instance's next tick and counted once, by the owner, at
    /// its next tick (see `monitor/sharing.rs`).
    pub fn observe(&self, observation: Observation) -> Result<Recorded> {
        let limit = after(self.parts.clock.now(), Self::MAX_FUTURE_SKEW);
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
        if self.cluster.instance.is_some() {
            let shard = shard_of(&observation.tenant);
            if !self.owned_shards().contains(shard) {
                return Ok(self.forward(shard, observation));
            }
        }
        Ok(self.record_replied(
            &rt,
            observation.direction,
            observation.at,
            &observation.outcome,
            observation.reply,
        ))
    }

    /// Records into a tenant's window and queues the tenant for evaluation at the next tick.
    pub(super) fn record_into(
        &self,
        rt: &Runtime,
        direction: Direction,
        at: DateTime<Utc>,
        outcome: &Outcome,
    ) -> Recorded {
        self.record_replied(rt, direction, at, outcome, None)
    }

    /// [`record_into`](Self::record_into), keeping the remote's `reply` to a
    /// counted failure as the direction's last reply (unless a later one is
    /// already kept).
    pub(super) fn record_replied(
        &self,
        rt: &Runtime,
        direction: Direction,
        at: DateTime<Utc>,
        outcome: &Outcome,
        reply: Option<RemoteReply>,
    ) -> Recorded {
        let (recorded, newly_queued) = {
            let mut rt = lock(rt);
            let recorded = record(&mut rt, direction, at, outcome);
            self.parts
                .instruments
                .observation(&rt.tenant, direction, outcome);
            if let Some(reply) = reply
                && recorded == Recorded::Counted
                && outcome.is_failure()
            {
                let last = &mut rt.directions[direction.index()].last_reply;
                if last.as_ref().is_none_or(|(t, _)| *t <= at) {
                    *last = Some((at, reply));
                }
            }
            let newly = rt.directions[direction.index()].dirty && !rt.queued;
            if newly {
                rt.queued = true;
            }
            (recorded, newly)
        };
        if newly_queued {
            lock(&self.ticks.schedule).observed.push(rt.clone());
        }
        recorded
    }

    /// [`status`](Self::status) with the stored state read through: in a
    /// cluster ([`MonitorBuilder::cluster`](super::MonitorBuilder::cluster)),
    /// another instance, or an action taken there, may have moved the
    /// tenant's state on since this instance last loaded it, whether or not
    /// it owns the tenant. A newer stored state is shown; what this instance
    /// keeps is left alone (it reloads when its next write finds the store
    /// moved on), so a view never races a write in flight. A state this
    /// instance journaled while the store was unreachable is newer than
    /// anything stored, and shown instead. The only instance (no cluster)
    /// writes every change itself: its state is current, and it reads
    /// nothing.
    ///
    /// Errors: [`Error::UnknownTenant`], and the store's, except that a store
    /// that cannot be reached gives the state known here (logged).
    pub async fn status_current(&self, tenant: &TenantId) -> Result<TenantStatus> {
        let rt = self.runtime(tenant)?;
        let stored = if self.cluster.instance.is_some() {
            match self.parts.store.as_ref().load(tenant).await {
                Ok(stored) => stored,
                Err(e) if store_unreachable(&e) => {
                    warn!(%tenant, error = %e, "the store cannot be reached: the state known here is shown");
                    None
                }
                Err(e) => return Err(e),
            }
        } else {
            None
        };
        let g = lock(&rt);
        let mut status = self.status_of(&g);
        if let Some(stored) = stored
            && stored.version > status.state.version
            && g.journal.is_empty()
        {
            status.state = stored;
        }
        Ok(status)
    }

    /// The stored state and the current readings of a tenant (at the
    /// monitor's clock), as this instance knows them; see
    /// [`status_current`](Self::status_current) for the store's.
    pub fn status(&self, tenant: &TenantId) -> Result<TenantStatus> {
        let rt = self.runtime(tenant)?;
        Ok(self.status_of(&lock(&rt)))
    }

    fn status_of(&self, rt: &TenantRuntime) -> TenantStatus {
        let now = self.parts.clock.now();
        let mut readings = Vec::new();
        for d in Direction::ALL {
            let dr = &rt.directions[d.index()];
            for w in dr.watches.iter() {
                // Verdicts the policy can give without changing its state are
                // recomputed for an up-to-date reading (ticks skip healthy
                // tenants); otherwise the last verdict stands.
                let fresh = w
                    .policy
                    .get()
                    .peek(&dr.window, now)
                    .or_else(|| w.verdict.as_ref().cloned());
                if let Some(v) = fresh {
                    readings.push((d, w.policy.get().condition().to_string(), v));
                }
            }
        }
        let failing = Direction::ALL
            .into_iter()
            .filter_map(|d| rt.directions[d.index()].failure_summary(d, now))
            .collect();
        // Windows live in memory: they hold the tenant's mail from when this
        // instance began watching it, and nothing on an instance of a
        // cluster that does not own it (its observations go to the owner).
        let watched_since =
            if self.cluster.instance.is_none() || self.owned_shards().contains(rt.shard) {
                Some(rt.watching_since)
            } else {
                None
            };
        let history = Direction::ALL
            .into_iter()
            .map(|d| {
                let verdicts = readings.iter().filter(|r| r.0 == d).map(|r| &r.2);
                rt.directions[d.index()].history(d, verdicts, watched_since, now)
            })
            .collect();
        TenantStatus {
            state: rt.cached.clone(),
            readings,
            failing,
            history,
        }
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
        // Most policies read the window; only those that asked are called,
        // so their (cold) memory is left alone.
        if dr.records {
            for policy in dr.watches.policies_mut() {
                let policy = policy.get_mut();
                if policy.records() {
                    policy.record(at, outcome);
                }
            }
        }
    }
    recorded
}
