//! The metrics the engine records, through the [`metrics` crate](::metrics)
//! facade: the embedder chooses the exporter (Prometheus, StatsD, …), as it
//! chooses the `tracing` subscriber, and installs it **before building the
//! [`Monitor`](crate::Monitor)**: the monitor registers its instruments
//! when it is built and keeps them, so that recording an observation is an
//! atomic increment, not a lookup. Without a recorder every instrument is
//! the facade's no-op.
//!
//! The names are this module's constants, one per metric, and
//! [`CATALOGUE`] lists them all with their kind, labels and meaning (the
//! README's table is checked against it by a test). Names follow the
//! Prometheus conventions: a `continuity_` prefix, counters end in
//! `_total`, durations are histograms in seconds (`_seconds`).
//!
//! Labels have few values each: directions, outcomes, channels, alert
//! kinds, store operations, and the probe adapter's
//! [`kind`](crate::probe::MailProbe::kind). A `tenant` label is added to the
//! per-tenant metrics only when
//! [`MonitorSettings::per_tenant_metrics`](crate::monitor::MonitorSettings::per_tenant_metrics)
//! is on: with many tenants it multiplies the series, and each labelled
//! recording then looks its series up (an allocation per call).
//!
//! ```
//! use continuity_core::metrics::{self, MetricKind};
//!
//! let ticks = metrics::CATALOGUE.iter().find(|m| m.name == metrics::TICKS_TOTAL).unwrap();
//! assert_eq!(ticks.kind, MetricKind::Counter);
//! // Tells the installed recorder what each metric means (the monitor
//! // does it when it is built).
//! metrics::describe();
//! ```

use std::{fmt, sync::Arc, time::Duration};

use ::metrics::{
    Counter, Gauge, Histogram, Unit, counter, describe_counter, describe_gauge, describe_histogram,
    gauge, histogram,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::{
    clock::Clock,
    cluster::ShardSet,
    config::ChannelKind,
    domain::{Direction, Outcome, TenantId},
    error::{Error, Result},
    machine::{AlertKind, TenantState},
    store::{
        AuditRecord, BaselineRecord, Commit, EventStore, OutboxCounts, OutboxEntry, OutboxResult,
        PendingProbe, ProbeSettlement, PruneBefore, PruneReport, SharedObservations, Versioned,
    },
};

/// Counter: ticks run (a tick refused because another runs, or because
/// time went backwards, is not counted).
pub const TICKS_TOTAL: &str = "continuity_ticks_total";
/// Histogram: how long a tick took, in seconds, by the monitor's clock.
pub const TICK_DURATION_SECONDS: &str = "continuity_tick_duration_seconds";
/// Counter: observations recorded, passive and from probes, by `direction`
/// and `outcome` (`delivered`, `failed`).
pub const OBSERVATIONS_TOTAL: &str = "continuity_observations_total";
/// Counter: probes sent, by `adapter` and `direction`.
pub const PROBES_DISPATCHED_TOTAL: &str = "continuity_probes_dispatched_total";
/// Counter: probes found, by `adapter` and `direction`.
pub const PROBES_ARRIVED_TOTAL: &str = "continuity_probes_arrived_total";
/// Counter: probes not found by their deadline (counted as failures), by
/// `adapter` and `direction`.
pub const PROBES_LOST_TOTAL: &str = "continuity_probes_lost_total";
/// Counter: probe dispatches the server throttled (not counted as
/// failures), by `adapter` and `direction`.
pub const PROBES_THROTTLED_TOTAL: &str = "continuity_probes_throttled_total";
/// Gauge: conditions raised now, over the tenants this instance owns, by
/// `direction`; set at the end of every tick.
pub const CONDITIONS_RAISED: &str = "continuity_conditions_raised";
/// Counter: alerts decided (one per alert, not per recipient), by `kind`
/// (`raised`, `reminder`, `resolved`).
pub const ALERTS_TOTAL: &str = "continuity_alerts_total";
/// Counter: alert delivery attempts, by `channel` and `result` (`ok`,
/// `failed`; a failed attempt is retried or given up).
pub const DELIVERIES_TOTAL: &str = "continuity_deliveries_total";
/// Gauge: outbox entries not yet done (queued, waiting for a retry, or
/// claimed), in the whole store; set at the end of every tick.
pub const OUTBOX_BACKLOG: &str = "continuity_outbox_backlog";
/// Gauge: outbox entries given up on (dead letters), in the whole store;
/// set at the end of every tick.
pub const DEAD_LETTERS: &str = "continuity_dead_letters";
/// Counter: store calls that failed, by `operation` (a compare-and-swap
/// conflict or a lost lease is the contract at work, not a failure, and is
/// not counted).
pub const STORE_ERRORS_TOTAL: &str = "continuity_store_errors_total";
/// Histogram: how long store calls took, in seconds, by the monitor's
/// clock, by `operation`.
pub const STORE_DURATION_SECONDS: &str = "continuity_store_duration_seconds";
/// Gauge: transitions held in the store-outage journal (made while the
/// store could not be reached, not yet written); set at the end of every
/// tick.
pub const JOURNAL_TRANSITIONS: &str = "continuity_journal_transitions";
/// Gauge: cluster shards this instance owns (all 256 without a cluster);
/// set at the end of every tick.
pub const CLUSTER_SHARDS_OWNED: &str = "continuity_cluster_shards_owned";

/// The label added to the per-tenant metrics when
/// [`MonitorSettings::per_tenant_metrics`](crate::monitor::MonitorSettings::per_tenant_metrics)
/// is on.
pub const TENANT_LABEL: &str = "tenant";

/// How a metric is recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    /// Only grows.
    Counter,
    /// Set to the current value.
    Gauge,
    /// A distribution of recorded values.
    Histogram,
}

impl MetricKind {
    /// `"counter"`, `"gauge"` or `"histogram"`.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
        }
    }
}

impl fmt::Display for MetricKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One metric the engine records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetricInfo {
    /// Its name (one of this module's constants).
    pub name: &'static str,
    /// How it is recorded.
    pub kind: MetricKind,
    /// Its labels, always present.
    pub labels: &'static [&'static str],
    /// Whether it gets the [`TENANT_LABEL`] when per-tenant metrics are on.
    pub per_tenant: bool,
    /// What it means, in one sentence.
    pub help: &'static str,
}

const fn info(
    name: &'static str,
    kind: MetricKind,
    labels: &'static [&'static str],
    per_tenant: bool,
    help: &'static str,
) -> MetricInfo {
    MetricInfo {
        name,
        kind,
        labels,
        per_tenant,
        help,
    }
}

const PROBE_LABELS: &[&str] = &["adapter", "direction"];

/// Every metric the engine records.
pub const CATALOGUE: &[MetricInfo] = &[
    info(TICKS_TOTAL, MetricKind::Counter, &[], false, "Ticks run."),
    info(
        TICK_DURATION_SECONDS,
        MetricKind::Histogram,
        &[],
        false,
        "How long a tick took, by the monitor's clock.",
    ),
    info(
        OBSERVATIONS_TOTAL,
        MetricKind::Counter,
        &["direction", "outcome"],
        true,
        "Deliveries recorded, passive and from probes; `outcome` is `delivered` or `failed`.",
    ),
    info(
        PROBES_DISPATCHED_TOTAL,
        MetricKind::Counter,
        PROBE_LABELS,
        true,
        "Probes sent.",
    ),
    info(
        PROBES_ARRIVED_TOTAL,
        MetricKind::Counter,
        PROBE_LABELS,
        true,
        "Probes found.",
    ),
    info(
        PROBES_LOST_TOTAL,
        MetricKind::Counter,
        PROBE_LABELS,
        true,
        "Probes not found by their deadline (counted as failures).",
    ),
    info(
        PROBES_THROTTLED_TOTAL,
        MetricKind::Counter,
        PROBE_LABELS,
        true,
        "Probe dispatches the server throttled (not counted as failures).",
    ),
    info(
        CONDITIONS_RAISED,
        MetricKind::Gauge,
        &["direction"],
        false,
        "Conditions raised now, over the tenants this instance owns.",
    ),
    info(
        ALERTS_TOTAL,
        MetricKind::Counter,
        &["kind"],
        true,
        "Alerts decided, one per alert (not per recipient); `kind` is `raised`, `reminder` or `resolved`.",
    ),
    info(
        DELIVERIES_TOTAL,
        MetricKind::Counter,
        &["channel", "result"],
        true,
        "Alert delivery attempts; `result` is `ok` or `failed` (then retried or given up).",
    ),
    info(
        OUTBOX_BACKLOG,
        MetricKind::Gauge,
        &[],
        false,
        "Outbox entries not yet done (queued, waiting for a retry, or claimed), in the whole store.",
    ),
    info(
        DEAD_LETTERS,
        MetricKind::Gauge,
        &[],
        false,
        "Outbox entries given up on, in the whole store.",
    ),
    info(
        STORE_ERRORS_TOTAL,
        MetricKind::Counter,
        &["operation"],
        false,
        "Store calls that failed (conflicts and lost leases are not failures).",
    ),
    info(
        STORE_DURATION_SECONDS,
        MetricKind::Histogram,
        &["operation"],
        false,
        "How long store calls took, by the monitor's clock.",
    ),
    info(
        JOURNAL_TRANSITIONS,
        MetricKind::Gauge,
        &[],
        false,
        "Transitions held in the store-outage journal, not yet written.",
    ),
    info(
        CLUSTER_SHARDS_OWNED,
        MetricKind::Gauge,
        &[],
        false,
        "Cluster shards this instance owns (all 256 without a cluster).",
    ),
];

/// Tells the installed recorder what each metric of [`CATALOGUE`] means
/// (and that the `_seconds` histograms are in seconds). The monitor calls
/// it when it is built; calling it again does no harm.
pub fn describe() {
    for m in CATALOGUE {
        match m.kind {
            MetricKind::Counter => describe_counter!(m.name, m.help),
            MetricKind::Gauge => describe_gauge!(m.name, m.help),
            MetricKind::Histogram => describe_histogram!(m.name, Unit::Seconds, m.help),
        }
    }
}

/// Seconds from `start` to `end`, by the monitor's clock (0 if it stepped back).
pub(crate) fn seconds_between(start: DateTime<Utc>, end: DateTime<Utc>) -> f64 {
    (end - start)
        .to_std()
        .map_or(0.0, |d: Duration| d.as_secs_f64())
}

fn channel_index(channel: ChannelKind) -> usize {
    match channel {
        ChannelKind::Sms => 0,
        ChannelKind::Email => 1,
        ChannelKind::Webhook => 2,
    }
}

fn alert_index(kind: AlertKind) -> usize {
    match kind {
        AlertKind::Raised => 0,
        AlertKind::Reminder => 1,
        AlertKind::Resolved => 2,
    }
}

/// A probe adapter's counters for one direction.
struct ProbeInstruments {
    adapter: &'static str,
    dispatched: Counter,
    arrived: Counter,
    lost: Counter,
    throttled: Counter,
}

/// What a probe did, for [`Instruments::probe`].
#[derive(Clone, Copy, Debug)]
pub(crate) enum ProbeEvent {
    Dispatched,
    Arrived,
    Lost,
    Throttled,
}

impl ProbeEvent {
    fn name(self) -> &'static str {
        match self {
            ProbeEvent::Dispatched => PROBES_DISPATCHED_TOTAL,
            ProbeEvent::Arrived => PROBES_ARRIVED_TOTAL,
            ProbeEvent::Lost => PROBES_LOST_TOTAL,
            ProbeEvent::Throttled => PROBES_THROTTLED_TOTAL,
        }
    }
}

/// The monitor's instruments, registered once when it is built: recording
/// is then an atomic operation on a handle (a no-op without a recorder),
/// with no lookup and no allocation, except for the metrics labelled by
/// tenant when that is on.
pub(crate) struct Instruments {
    per_tenant: bool,
    ticks: Counter,
    tick_duration: Histogram,
    /// By [`Direction::index`], then delivered (0) or failed (1).
    observations: [[Counter; 2]; 2],
    /// By [`Direction::index`], one per adapter the direction's probe
    /// names ([`MailProbe::kinds`](crate::probe::MailProbe::kinds)); empty
    /// without a probe for the direction.
    probes: [Vec<ProbeInstruments>; 2],
    /// By [`alert_index`].
    alerts: [Counter; 3],
    /// By [`channel_index`], then ok (0) or failed (1).
    deliveries: [[Counter; 2]; 3],
    conditions_raised: [Gauge; 2],
    outbox_backlog: Gauge,
    dead_letters: Gauge,
    journal: Gauge,
    shards_owned: Gauge,
}

impl fmt::Debug for Instruments {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Instruments")
            .field("per_tenant", &self.per_tenant)
            .finish_non_exhaustive()
    }
}

impl Instruments {
    /// Registers every instrument with the recorder installed now (see
    /// the [module docs](self)); `adapters` names the adapters each
    /// direction's probe may count under (none without a probe).
    pub(crate) fn register(per_tenant: bool, adapters: [Vec<&'static str>; 2]) -> Self {
        describe();
        let probe = |d: Direction| {
            let mut kinds = adapters[d.index()].clone();
            kinds.sort_unstable();
            kinds.dedup();
            kinds
                .into_iter()
                .map(|adapter| ProbeInstruments {
                    adapter,
                    dispatched: counter!(PROBES_DISPATCHED_TOTAL, "adapter" => adapter, "direction" => d.as_str()),
                    arrived: counter!(PROBES_ARRIVED_TOTAL, "adapter" => adapter, "direction" => d.as_str()),
                    lost: counter!(PROBES_LOST_TOTAL, "adapter" => adapter, "direction" => d.as_str()),
                    throttled: counter!(PROBES_THROTTLED_TOTAL, "adapter" => adapter, "direction" => d.as_str()),
                })
                .collect::<Vec<_>>()
        };
        let deliveries = |channel: &'static str| {
            [
                counter!(DELIVERIES_TOTAL, "channel" => channel, "result" => "ok"),
                counter!(DELIVERIES_TOTAL, "channel" => channel, "result" => "failed"),
            ]
        };
        Instruments {
            per_tenant,
            ticks: counter!(TICKS_TOTAL),
            tick_duration: histogram!(TICK_DURATION_SECONDS),
            observations: [
                [
                    counter!(OBSERVATIONS_TOTAL, "direction" => "inbound", "outcome" => "delivered"),
                    counter!(OBSERVATIONS_TOTAL, "direction" => "inbound", "outcome" => "failed"),
                ],
                [
                    counter!(OBSERVATIONS_TOTAL, "direction" => "outbound", "outcome" => "delivered"),
                    counter!(OBSERVATIONS_TOTAL, "direction" => "outbound", "outcome" => "failed"),
                ],
            ],
            probes: [probe(Direction::Inbound), probe(Direction::Outbound)],
            alerts: [
                counter!(ALERTS_TOTAL, "kind" => "raised"),
                counter!(ALERTS_TOTAL, "kind" => "reminder"),
                counter!(ALERTS_TOTAL, "kind" => "resolved"),
            ],
            deliveries: [
                deliveries(ChannelKind::Sms.as_str()),
                deliveries(ChannelKind::Email.as_str()),
                deliveries(ChannelKind::Webhook.as_str()),
            ],
            conditions_raised: [
                gauge!(CONDITIONS_RAISED, "direction" => "inbound"),
                gauge!(CONDITIONS_RAISED, "direction" => "outbound"),
            ],
            outbox_backlog: gauge!(OUTBOX_BACKLOG),
            dead_letters: gauge!(DEAD_LETTERS),
            journal: gauge!(JOURNAL_TRANSITIONS),
            shards_owned: gauge!(CLUSTER_SHARDS_OWNED),
        }
    }

    pub(crate) fn tick(&self, seconds: f64) {
        self.ticks.increment(1);
        self.tick_duration.record(seconds);
    }

    /// One delivery recorded into a tenant's window. The hot path: a
    /// counter increment on a handle, unless per-tenant labels are on.
    #[inline]
    pub(crate) fn observation(&self, tenant: &TenantId, direction: Direction, outcome: &Outcome) {
        let failed = outcome.is_failure();
        if self.per_tenant {
            counter!(
                OBSERVATIONS_TOTAL,
                "direction" => direction.as_str(),
                "outcome" => if failed { "failed" } else { "delivered" },
                TENANT_LABEL => tenant.as_str().to_owned()
            )
            .increment(1);
        } else {
            self.observations[direction.index()][usize::from(failed)].increment(1);
        }
    }

    /// A probe event of `tenant`'s, served by `adapter`
    /// ([`MailProbe::kind_for`](crate::probe::MailProbe::kind_for)).
    pub(crate) fn probe(
        &self,
        event: ProbeEvent,
        adapter: &'static str,
        tenant: &TenantId,
        direction: Direction,
    ) {
        if self.per_tenant {
            counter!(
                event.name(),
                "adapter" => adapter,
                "direction" => direction.as_str(),
                TENANT_LABEL => tenant.as_str().to_owned()
            )
            .increment(1);
            return;
        }
        // One or two adapters a direction: a scan beats a map.
        let Some(p) = self.probes[direction.index()]
            .iter()
            .find(|p| p.adapter == adapter)
        else {
            // An adapter the probe did not list in `kinds`: counted all the
            // same, through the recorder's look-up.
            counter!(event.name(), "adapter" => adapter, "direction" => direction.as_str())
                .increment(1);
            return;
        };
        match event {
            ProbeEvent::Dispatched => &p.dispatched,
            ProbeEvent::Arrived => &p.arrived,
            ProbeEvent::Lost => &p.lost,
            ProbeEvent::Throttled => &p.throttled,
        }
        .increment(1);
    }

    pub(crate) fn alert(&self, tenant: &TenantId, kind: AlertKind) {
        if self.per_tenant {
            counter!(ALERTS_TOTAL, "kind" => kind.as_str(), TENANT_LABEL => tenant.as_str().to_owned())
                .increment(1);
        } else {
            self.alerts[alert_index(kind)].increment(1);
        }
    }

    /// Counts the alerts `state` decided from alert id `first` on (the
    /// `next_alert_id` of the state it replaces): those are in its
    /// `recent_alerts`, one transition deciding at most one.
    pub(crate) fn alerts_decided(&self, tenant: &TenantId, first: u64, state: &TenantState) {
        for a in state.recent_alerts.iter().filter(|a| a.id >= first) {
            self.alert(tenant, a.kind);
        }
    }

    pub(crate) fn delivery(&self, tenant: &TenantId, channel: ChannelKind, ok: bool) {
        if self.per_tenant {
            counter!(
                DELIVERIES_TOTAL,
                "channel" => channel.as_str(),
                "result" => if ok { "ok" } else { "failed" },
                TENANT_LABEL => tenant.as_str().to_owned()
            )
            .increment(1);
        } else {
            self.deliveries[channel_index(channel)][usize::from(!ok)].increment(1);
        }
    }

    /// The gauges set at the end of a tick (`counts`: `None` when the store
    /// could not count, and the outbox gauges keep their last value).
    pub(crate) fn gauges(
        &self,
        raised: [u64; 2],
        journal: u64,
        shards: u32,
        counts: Option<OutboxCounts>,
    ) {
        for d in Direction::ALL {
            self.conditions_raised[d.index()].set(raised[d.index()] as f64);
        }
        self.journal.set(journal as f64);
        self.shards_owned.set(f64::from(shards));
        if let Some(c) = counts {
            self.outbox_backlog.set(c.backlog as f64);
            self.dead_letters.set(c.dead_letters as f64);
        }
    }
}

/// The store operations [`MeteredStore`] times, as the `operation` label.
#[derive(Clone, Copy, Debug)]
enum Op {
    Load,
    Commit,
    AuditLog,
    ClaimOutbox,
    CompleteOutbox,
    PendingOutbox,
    PutProbes,
    PutProbesLeased,
    ClaimProbes,
    SyncShards,
    ReleaseShards,
    SettleProbes,
    SaveBaselines,
    LoadBaselines,
    OutboxCounts,
    Ping,
    ShareObservations,
    TakeSharedObservations,
    RecentAudit,
    GivenUpOutbox,
    Prune,
}

impl Op {
    const ALL: [Op; 21] = [
        Op::Load,
        Op::Commit,
        Op::AuditLog,
        Op::ClaimOutbox,
        Op::CompleteOutbox,
        Op::PendingOutbox,
        Op::PutProbes,
        Op::PutProbesLeased,
        Op::ClaimProbes,
        Op::SyncShards,
        Op::ReleaseShards,
        Op::SettleProbes,
        Op::SaveBaselines,
        Op::LoadBaselines,
        Op::OutboxCounts,
        Op::Ping,
        Op::ShareObservations,
        Op::TakeSharedObservations,
        Op::RecentAudit,
        Op::GivenUpOutbox,
        Op::Prune,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Op::Load => "load",
            Op::Commit => "commit",
            Op::AuditLog => "audit_log",
            Op::ClaimOutbox => "claim_outbox",
            Op::CompleteOutbox => "complete_outbox",
            Op::PendingOutbox => "pending_outbox",
            Op::PutProbes => "put_probes",
            Op::PutProbesLeased => "put_probes_leased",
            Op::ClaimProbes => "claim_probes",
            Op::SyncShards => "sync_shards",
            Op::ReleaseShards => "release_shards",
            Op::SettleProbes => "settle_probes",
            Op::SaveBaselines => "save_baselines",
            Op::LoadBaselines => "load_baselines",
            Op::OutboxCounts => "outbox_counts",
            Op::Ping => "ping",
            Op::ShareObservations => "share_observations",
            Op::TakeSharedObservations => "take_shared_observations",
            Op::RecentAudit => "recent_audit",
            Op::GivenUpOutbox => "given_up_outbox",
            Op::Prune => "prune",
        }
    }
}

struct OpInstruments {
    errors: Counter,
    duration: Histogram,
}

/// Whether `e` is the store failing, rather than its contract at work.
fn is_failure(e: &Error) -> bool {
    !matches!(e, Error::Conflict { .. } | Error::LeaseLost { .. })
}

/// The store as the monitor sees it: every call is timed with the
/// monitor's clock and its failures counted, by operation. The builder
/// wraps the embedder's store in one; it forwards every method of
/// [`EventStore`], and a method added to the trait is added here too (a
/// method left to its default here would skip the wrapped store's own).
pub(crate) struct MeteredStore {
    inner: Arc<dyn EventStore>,
    clock: Arc<dyn Clock>,
    /// By `Op as usize`.
    ops: Vec<OpInstruments>,
}

impl fmt::Debug for MeteredStore {
    // The wrapper is invisible: the monitor's store prints as the embedder's.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.inner, f)
    }
}

impl MeteredStore {
    pub(crate) fn new(inner: Arc<dyn EventStore>, clock: Arc<dyn Clock>) -> Self {
        let ops = Op::ALL
            .iter()
            .map(|op| OpInstruments {
                errors: counter!(STORE_ERRORS_TOTAL, "operation" => op.as_str()),
                duration: histogram!(STORE_DURATION_SECONDS, "operation" => op.as_str()),
            })
            .collect();
        MeteredStore { inner, clock, ops }
    }

    fn op(&self, op: Op) -> &OpInstruments {
        &self.ops[op as usize]
    }

    async fn timed<T>(&self, op: Op, call: impl Future<Output = Result<T>>) -> Result<T> {
        let start = self.clock.now();
        let result = call.await;
        let m = self.op(op);
        m.duration.record(seconds_between(start, self.clock.now()));
        if let Err(e) = &result
            && is_failure(e)
        {
            m.errors.increment(1);
        }
        result
    }
}

#[async_trait]
impl EventStore for MeteredStore {
    async fn load(&self, tenant: &TenantId) -> Result<Option<Versioned>> {
        self.timed(Op::Load, self.inner.load(tenant)).await
    }
    async fn commit(&self, tenant: &TenantId, expected: u64, commit: Commit) -> Result<u64> {
        self.timed(Op::Commit, self.inner.commit(tenant, expected, commit))
            .await
    }
    async fn audit_log(
        &self,
        tenant: &TenantId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<AuditRecord>> {
        self.timed(Op::AuditLog, self.inner.audit_log(tenant, after, limit))
            .await
    }
    async fn claim_outbox(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>> {
        self.timed(Op::ClaimOutbox, self.inner.claim_outbox(now, lease, limit))
            .await
    }
    async fn complete_outbox(&self, id: u64, lease_id: u64, result: OutboxResult) -> Result<()> {
        self.timed(
            Op::CompleteOutbox,
            self.inner.complete_outbox(id, lease_id, result),
        )
        .await
    }
    async fn pending_outbox(&self, limit: usize) -> Result<Vec<OutboxEntry>> {
        self.timed(Op::PendingOutbox, self.inner.pending_outbox(limit))
            .await
    }
    async fn put_probes(&self, probes: &mut Vec<PendingProbe>) -> Result<()> {
        self.timed(Op::PutProbes, self.inner.put_probes(probes))
            .await
    }
    async fn put_probes_leased(
        &self,
        probes: &mut Vec<PendingProbe>,
        lease: Duration,
    ) -> Result<()> {
        self.timed(
            Op::PutProbesLeased,
            self.inner.put_probes_leased(probes, lease),
        )
        .await
    }
    async fn claim_probes(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: usize,
        shards: &ShardSet,
    ) -> Result<Vec<PendingProbe>> {
        self.timed(
            Op::ClaimProbes,
            self.inner.claim_probes(now, lease, limit, shards),
        )
        .await
    }
    async fn sync_shards(
        &self,
        instance: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<ShardSet> {
        self.timed(Op::SyncShards, self.inner.sync_shards(instance, now, lease))
            .await
    }
    async fn release_shards(&self, instance: &str) -> Result<()> {
        self.timed(Op::ReleaseShards, self.inner.release_shards(instance))
            .await
    }
    async fn settle_probes(&self, settlements: &[ProbeSettlement]) -> Vec<Result<()>> {
        let start = self.clock.now();
        let results = self.inner.settle_probes(settlements).await;
        let m = self.op(Op::SettleProbes);
        m.duration.record(seconds_between(start, self.clock.now()));
        let failed = results
            .iter()
            .filter(|r| r.as_ref().is_err_and(is_failure))
            .count();
        if failed > 0 {
            m.errors.increment(failed as u64);
        }
        results
    }
    async fn save_baselines(&self, records: &[BaselineRecord]) -> Result<()> {
        self.timed(Op::SaveBaselines, self.inner.save_baselines(records))
            .await
    }
    async fn load_baselines(&self, tenant: &TenantId) -> Result<Vec<BaselineRecord>> {
        self.timed(Op::LoadBaselines, self.inner.load_baselines(tenant))
            .await
    }
    async fn outbox_counts(&self) -> Result<Option<OutboxCounts>> {
        self.timed(Op::OutboxCounts, self.inner.outbox_counts())
            .await
    }
    async fn ping(&self) -> Result<()> {
        self.timed(Op::Ping, self.inner.ping()).await
    }
    async fn share_observations(&self, batches: &[SharedObservations]) -> Result<()> {
        self.timed(
            Op::ShareObservations,
            self.inner.share_observations(batches),
        )
        .await
    }
    async fn take_shared_observations(
        &self,
        shards: &ShardSet,
        limit: usize,
    ) -> Result<Vec<SharedObservations>> {
        self.timed(
            Op::TakeSharedObservations,
            self.inner.take_shared_observations(shards, limit),
        )
        .await
    }
    async fn recent_audit(&self, tenant: &TenantId, limit: usize) -> Result<Vec<AuditRecord>> {
        self.timed(Op::RecentAudit, self.inner.recent_audit(tenant, limit))
            .await
    }
    async fn given_up_outbox(&self, limit: usize) -> Result<Vec<OutboxEntry>> {
        self.timed(Op::GivenUpOutbox, self.inner.given_up_outbox(limit))
            .await
    }
    async fn prune(&self, before: &PruneBefore) -> Result<PruneReport> {
        self.timed(Op::Prune, self.inner.prune(before)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_conventions_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for m in CATALOGUE {
            assert!(seen.insert(m.name), "{} listed twice", m.name);
            assert!(m.name.starts_with("continuity_"), "{}: prefix", m.name);
            assert_eq!(
                m.kind == MetricKind::Counter,
                m.name.ends_with("_total"),
                "{}: counters, and only counters, end in _total",
                m.name
            );
            assert_eq!(
                m.kind == MetricKind::Histogram,
                m.name.ends_with("_seconds"),
                "{}: the histograms are durations in seconds",
                m.name
            );
            assert!(!m.help.is_empty());
        }
    }

    #[test]
    fn every_store_operation_has_its_slot() {
        for (i, op) in Op::ALL.iter().enumerate() {
            assert_eq!(*op as usize, i, "{} out of place", op.as_str());
        }
    }
}
