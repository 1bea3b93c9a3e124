//! The `EventStore` trait: durable, shared tenant state.
//!
//! # Contract
//!
//! Every backend (in-memory here; SQLite and PostgreSQL in
//! `continuity-store`) must pass the conformance suite in
//! `continuity_core::testing::conformance` (feature `testing`):
//!
//! - **Compare-and-swap.** [`EventStore::commit`] writes a tenant's new state
//!   only if the stored version still equals `expected` (0: the tenant must
//!   not exist yet), and returns the new version (`expected + 1`). Otherwise it
//!   fails with [`Error::Conflict`](crate::Error::Conflict) carrying the version found; nothing is written.
//! - **Atomicity.** The audit entries and outbox items of a commit are written
//!   in the same transaction as the state, or not at all.
//! - **Audit order.** Audit records of a tenant get strictly increasing
//!   sequence numbers in commit order and are never changed.
//! - **Leases.** [`EventStore::claim_outbox`] and [`EventStore::claim_probes`]
//!   hand each due item to one claimer at a time, for the lease's length;
//!   an item whose lease ran out (its claimer died) can be claimed again. A
//!   completion carries the lease id it was claimed with; a stale lease id is
//!   refused with [`Error::LeaseLost`](crate::Error::LeaseLost) so a slow instance cannot undo the work
//!   of the one that took over. [`EventStore::put_probes_leased`] may lease
//!   probes to their sender as it stores them, until their first check
//!   plus the lease: they are then not claimable before that, so a sender
//!   that dies leaves them to others once the lease runs out.
//! - **Order per key.** Outbox items with the same
//!   [`order_key`](OutboxItem::order_key) (the hook calls of a tenant; the
//!   alerts to one recipient) are handed out in commit order: an item is not
//!   claimed while an older item with the same key is still queued or
//!   claimed. A failing item therefore holds back the later ones (an event's
//!   end never reaches the hook before its start; a recipient never reads
//!   "resolved" before the alert it resolves).
//! - **Shards.** [`EventStore::sync_shards`] gives each of the
//!   [`SHARDS`](crate::cluster::SHARDS) shards to at most one live instance
//!   at a time, each instance about its fair share; a shard whose owner
//!   stopped renewing it is free once its lease ran out.
//!   [`EventStore::claim_probes`] hands out only probes of tenants in the
//!   shards asked for.
//! - **Probes in batches.** A backend writes probes only in batches
//!   ([`EventStore::put_probes`], [`EventStore::settle_probes`]); the
//!   single-item forms are batches of one, with the same errors. The
//!   [`tenant_hint`](PendingProbe::tenant_hint) of a probe is an index into
//!   one monitor's memory: durable stores do not keep it.
//! - **Baselines.** [`EventStore::save_baselines`] keeps one
//!   [`BaselineRecord`] per tenant, direction and condition: a later save
//!   of the same three replaces it, and a batch is written whole or not at
//!   all. [`EventStore::load_baselines`] returns a tenant's records, and
//!   only that tenant's. The snapshot is opaque bytes, returned as given.
//! - **Records.** [`EventStore::recent_audit`] returns a tenant's latest
//!   audit records, newest first; [`EventStore::given_up_outbox`] (the dead letters) the outbox
//!   entries given up on, oldest first, never the queued ones.
//! - **Retention.** [`EventStore::prune`] removes audit records, dead
//!   letters and instance rows older than the times given, keeping each
//!   tenant's latest audit record (sequence numbers never go back), and
//!   never touches queued work or states.
//! - **Shared observations.** [`EventStore::share_observations`] keeps
//!   batches of observations that an instance made of tenants it does not
//!   own, by shard, all of a call's batches or none;
//!   [`EventStore::take_shared_observations`] removes and returns the
//!   oldest batches of the shards asked for, in the order they were shared,
//!   each to one taker only (two instances taking at once never both get a
//!   batch). The payload is opaque bytes, returned as given.
//! - **Counts.** [`EventStore::outbox_counts`] counts the entries not yet
//!   done (queued or claimed) and those given up (dead letters), over the
//!   whole store; the durable backends count (the conformance suite checks
//!   it), a store that cannot answers `None`. [`EventStore::ping`] is one
//!   cheap round trip.

use std::{fmt, sync::Arc, time::Duration};

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::{
    cluster::ShardSet,
    domain::{Direction, TenantId},
    duration::serde_duration,
    error::Result,
    machine::{AuditEntry, ContinuityEvent, TenantState},
    notify::AlertMessage,
    probe::ProbeTicket,
};

/// How long records are kept before [`EventStore::prune`] removes them, as
/// configured (in [`MonitorSettings`](crate::monitor::MonitorSettings), table `retention`):
///
/// ```toml
/// [retention]
/// audit = "400d"        # audit records (each tenant's latest is always kept)
/// dead_letters = "30d"  # outbox entries given up on, from when they were queued
/// instances = "1d"      # rows of cluster instances that stopped renewing
/// ```
///
/// Every field may be left out for its default; each must be at least 1 h.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionSettings {
    /// Audit records older than this go (default [`Self::DEFAULT_AUDIT`], 400 days).
    #[serde(with = "serde_duration")]
    pub audit: Duration,
    /// Dead letters queued longer ago than this go (default
    /// [`Self::DEFAULT_DEAD_LETTERS`], 30 days).
    #[serde(with = "serde_duration")]
    pub dead_letters: Duration,
    /// Instances that stopped renewing their liveness longer ago than this
    /// go (default [`Self::DEFAULT_INSTANCES`], 1 day). Live instances
    /// already drop expired rows as they sync their shards; this clears
    /// what a cluster that stopped altogether left behind.
    #[serde(with = "serde_duration")]
    pub instances: Duration,
}

impl RetentionSettings {
    /// Default retention of audit records: 400 days (a year and some, for
    /// yearly reviews).
    pub const DEFAULT_AUDIT: Duration = Duration::from_secs(400 * 86_400);
    /// Default retention of dead letters: 30 days.
    pub const DEFAULT_DEAD_LETTERS: Duration = Duration::from_secs(30 * 86_400);
    /// Default retention of stopped instances' rows: 1 day.
    pub const DEFAULT_INSTANCES: Duration = Duration::from_secs(86_400);
    /// Shortest retention accepted: 1 hour.
    pub const MIN: Duration = Duration::from_secs(3_600);

    /// The cutoffs at `now`: records older than each retention.
    pub fn cutoffs(&self, now: DateTime<Utc>) -> PruneBefore {
        let before = |d: Duration| {
            i64::try_from(d.as_millis())
                .ok()
                .and_then(TimeDelta::try_milliseconds)
                .and_then(|d| now.checked_sub_signed(d))
                // Longer than the calendar: nothing is old enough.
                .unwrap_or(DateTime::<Utc>::MIN_UTC)
        };
        PruneBefore {
            audit: before(self.audit),
            dead_letters: before(self.dead_letters),
            instances: before(self.instances),
        }
    }
}

impl Default for RetentionSettings {
    fn default() -> Self {
        RetentionSettings {
            audit: Self::DEFAULT_AUDIT,
            dead_letters: Self::DEFAULT_DEAD_LETTERS,
            instances: Self::DEFAULT_INSTANCES,
        }
    }
}

/// What [`EventStore::prune`] removes: records older than these times.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PruneBefore {
    /// Audit records stamped ([`AuditEntry::at`]) before this.
    pub audit: DateTime<Utc>,
    /// Dead letters queued ([`OutboxEntry::created_at`]) before this.
    pub dead_letters: DateTime<Utc>,
    /// Cluster instances that stopped renewing their liveness before this.
    pub instances: DateTime<Utc>,
}

/// How many records [`EventStore::prune`] removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PruneReport {
    /// Audit records.
    pub audit: u64,
    /// Dead letters.
    pub dead_letters: u64,
    /// Cluster instance rows.
    pub instances: u64,
}

/// A tenant's state with its version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Versioned {
    /// Starts at 1 with the first commit and grows by 1 with every commit.
    pub version: u64,
    /// The state.
    pub state: TenantState,
}

/// Everything one transition writes, atomically.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commit {
    /// The tenant's new state.
    pub state: TenantState,
    /// When the transition happened (the `created_at` of its outbox entries).
    pub at: DateTime<Utc>,
    /// Audit entries to append, in order.
    pub audit: Vec<AuditEntry>,
    /// Work to do after the commit (alert deliveries, hook calls).
    pub outbox: Vec<OutboxItem>,
}

/// A stored audit entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Per-tenant sequence number, from 1, in commit order.
    pub seq: u64,
    /// The tenant.
    pub tenant: TenantId,
    /// The entry.
    pub entry: AuditEntry,
}

/// Work queued by a commit. Stored as JSON by the durable stores, tagged
/// `"type"` (an alert has a `kind` field of its own).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutboxItem {
    /// Deliver a rendered alert to one recipient.
    Alert(Box<AlertMessage>),
    /// Call the embedder's hook: an event started.
    EventStarted {
        /// The tenant.
        tenant: TenantId,
        /// The event.
        event: ContinuityEvent,
    },
    /// Call the embedder's hook: an event ended.
    EventEnded {
        /// The tenant.
        tenant: TenantId,
        /// The event.
        event: ContinuityEvent,
    },
}

impl OutboxItem {
    /// Items with the same key are delivered in commit order (see the
    /// [module docs](self)): `<tenant>/hook` for hook calls,
    /// `<tenant>/alert/<recipient>` for alerts.
    pub fn order_key(&self) -> String {
        match self {
            OutboxItem::Alert(m) => format!("{}/alert/{}", m.tenant, m.recipient.id),
            OutboxItem::EventStarted { tenant, .. } | OutboxItem::EventEnded { tenant, .. } => {
                format!("{tenant}/hook")
            }
        }
    }

    /// The tenant the item belongs to.
    pub fn tenant(&self) -> &TenantId {
        match self {
            OutboxItem::Alert(m) => &m.tenant,
            OutboxItem::EventStarted { tenant, .. } | OutboxItem::EventEnded { tenant, .. } => {
                tenant
            }
        }
    }
}

/// An outbox item as stored, with its delivery bookkeeping.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// Store-assigned id, increasing in commit order.
    pub id: u64,
    /// What to do.
    pub item: OutboxItem,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// Attempts so far.
    pub attempts: u32,
    /// Not before this time.
    pub next_attempt_at: DateTime<Utc>,
    /// The lease this entry was claimed under (0 when not claimed).
    pub lease_id: u64,
    /// The last error, if an attempt failed.
    pub last_error: Option<String>,
}

/// How an outbox attempt ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum OutboxResult {
    /// Done: remove the entry.
    Done,
    /// Try again at `at`.
    Retry {
        /// Not before.
        at: DateTime<Utc>,
        /// What went wrong.
        error: String,
    },
    /// Give up: the entry is moved out of the queue (kept for inspection).
    GiveUp {
        /// Why.
        error: String,
    },
}

/// What a policy learned about one direction of one tenant (its
/// [`snapshot`](crate::policy::ThresholdPolicy::snapshot)), kept so that a
/// restart or another instance taking the tenant over does not start from
/// nothing. Saved by [`EventStore::save_baselines`], one record per tenant,
/// direction and condition; the Monitor hands it back to the policy that
/// watches the same condition of the same direction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaselineRecord {
    /// The tenant.
    pub tenant: TenantId,
    /// The direction the policy watches.
    pub direction: Direction,
    /// The policy's [condition](crate::policy::ThresholdPolicy::condition) (`"flow"`).
    pub condition: String,
    /// When the snapshot was taken.
    pub saved_at: DateTime<Utc>,
    /// The policy's snapshot, opaque to the store (a couple of hundred
    /// bytes for the flow policy).
    pub snapshot: Vec<u8>,
}

/// Observations of one shard's tenants, made by an instance that does not
/// own them, on their way to the instance that does (see
/// [`EventStore::share_observations`] and
/// [`Monitor::observe`](crate::Monitor::observe)).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedObservations {
    /// The shard of every tenant in the batch.
    pub shard: u16,
    /// When the batch was shared (the sharing instance's tick).
    pub shared_at: DateTime<Utc>,
    /// The observations, encoded by the monitor; opaque to the store.
    pub payload: Vec<u8>,
}

/// How much work the outbox holds, for health checks and metrics
/// ([`EventStore::outbox_counts`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxCounts {
    /// Entries not yet done: queued, waiting for a retry, or claimed.
    pub backlog: u64,
    /// Entries given up on ([`OutboxResult::GiveUp`]), kept for inspection.
    pub dead_letters: u64,
}

/// A probe sent and not yet found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingProbe {
    /// The tenant.
    pub tenant: TenantId,
    /// The direction probed.
    pub direction: Direction,
    /// The probe id carried in the message; unique per tenant.
    pub probe_id: Arc<str>,
    /// When it was sent.
    pub sent_at: DateTime<Utc>,
    /// Not found by then: lost.
    pub deadline: DateTime<Utc>,
    /// When to look for it next.
    pub next_check_at: DateTime<Utc>,
    /// What the probe needs to find it.
    pub ticket: ProbeTicket,
    /// The lease it was claimed under (0 when not claimed).
    pub lease_id: u64,
    /// Where the dispatching monitor keeps the tenant's state (0: unknown).
    /// A hint that spares a lookup per check. It indexes one monitor's
    /// memory, so it is never persisted: durable stores hand probes back
    /// with 0, the in-memory store keeps it as given, and a monitor that
    /// does not recognise it looks the tenant up by id.
    #[serde(skip)]
    pub tenant_hint: u32,
}

/// What to do with a claimed probe, for [`EventStore::settle_probes`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeSettlement {
    /// The tenant.
    pub tenant: TenantId,
    /// The probe id.
    pub probe_id: Arc<str>,
    /// The lease it was claimed under.
    pub lease_id: u64,
    /// `None`: remove it (found, or lost); `Some(t)`: release it to be checked again at `t`.
    pub next_check_at: Option<DateTime<Utc>>,
}

/// Durable state shared by the instances of the embedding service.
/// See the [module docs](self) for the contract.
#[async_trait]
pub trait EventStore: Send + Sync + fmt::Debug {
    /// The tenant's state and version, `None` if it was never committed.
    async fn load(&self, tenant: &TenantId) -> Result<Option<Versioned>>;

    /// Writes `commit` if the stored version is `expected` (0: absent).
    /// Returns the new version.
    async fn commit(&self, tenant: &TenantId, expected: u64, commit: Commit) -> Result<u64>;

    /// Audit records of `tenant` with `seq > after`, oldest first, at most `limit`.
    async fn audit_log(
        &self,
        tenant: &TenantId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<AuditRecord>>;

    /// Claims up to `limit` outbox entries that are due at `now` and not
    /// leased, leasing them for `lease`. Oldest first.
    async fn claim_outbox(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>>;

    /// Records how an attempt on a claimed entry ended.
    async fn complete_outbox(&self, id: u64, lease_id: u64, result: OutboxResult) -> Result<()>;

    /// Outbox entries not yet done (queued or claimed), oldest first, at most `limit`.
    async fn pending_outbox(&self, limit: usize) -> Result<Vec<OutboxEntry>>;

    // ---- Records: the audit trail's latest entries and the dead letters,
    // readable through any store, and their retention (issue #15, item 5). ----

    /// The latest `limit` audit records of `tenant`, newest first (what the
    /// portal's status page shows).
    ///
    /// The default pages through [`audit_log`](Self::audit_log) from the
    /// start, which is correct but reads the whole trail: every backend of
    /// this library answers from an index instead.
    async fn recent_audit(&self, tenant: &TenantId, limit: usize) -> Result<Vec<AuditRecord>> {
        const PAGE: usize = 512;
        let mut tail = std::collections::VecDeque::with_capacity(limit.min(PAGE));
        let mut after = 0;
        loop {
            let page = self.audit_log(tenant, after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            let full = page.len() == PAGE;
            for record in page {
                if tail.len() == limit {
                    tail.pop_front();
                }
                if limit > 0 {
                    tail.push_back(record);
                }
            }
            if !full {
                break;
            }
        }
        Ok(tail.into_iter().rev().collect())
    }

    /// The dead letters: outbox entries given up on
    /// ([`OutboxResult::GiveUp`]: a permanent failure, or retries
    /// exhausted), oldest first, at most `limit`. They are kept for
    /// inspection, out of the queue. (Named beside
    /// [`pending_outbox`](Self::pending_outbox); the stores' inherent
    /// `dead_letters` methods give the same entries.)
    ///
    /// The default refuses with a permanent error naming what to implement:
    /// a store that keeps no dead letters cannot show any (every backend of
    /// this library implements it).
    async fn given_up_outbox(&self, limit: usize) -> Result<Vec<OutboxEntry>> {
        let _ = limit;
        Err(crate::Error::store_permanent(
            "event store",
            format!("{self:?} cannot list dead letters: implement EventStore::given_up_outbox"),
        ))
    }

    /// Removes what is older than `before` says (retention): audit records
    /// stamped before `before.audit` (except each tenant's latest, which
    /// keeps the sequence numbers growing), dead letters queued before
    /// `before.dead_letters`, and rows of cluster instances whose liveness
    /// ended before `before.instances`. Queued outbox entries, tenant states
    /// and anything newer are never touched. Returns how many of each went.
    ///
    /// [`Monitor::prune_records`](crate::Monitor::prune_records) calls it
    /// with the cutoffs of
    /// [`MonitorSettings::retention`](crate::monitor::MonitorSettings::retention).
    /// The default refuses with a permanent error naming what to implement
    /// (every backend of this library implements it).
    async fn prune(&self, before: &PruneBefore) -> Result<PruneReport> {
        let _ = before;
        Err(crate::Error::store_permanent(
            "event store",
            format!("{self:?} cannot prune old records: implement EventStore::prune"),
        ))
    }

    /// Stores many new pending probes, each replacing one with the same
    /// tenant and probe id (within the batch, the last one wins). On success
    /// `probes` is left empty. On failure it still holds the probes (some
    /// may have been stored as well; storing them again replaces them), so
    /// the caller loses none and copies none.
    async fn put_probes(&self, probes: &mut Vec<PendingProbe>) -> Result<()>;

    /// Stores new pending probes as [`put_probes`](Self::put_probes) does
    /// and, where the backend can, leases them to the caller in the same
    /// write, each until its `next_check_at` plus `lease`: the instance that
    /// sent a probe checks it first without claiming it (a claim is a write
    /// per probe). On success `probes` holds the probes leased to the
    /// caller, each with its `lease_id` set, to be settled with it like
    /// claimed ones; no other claim gets them before their lease runs out.
    /// The default stores them unleased, with
    /// [`put_probes`](Self::put_probes), and leaves `probes` empty: they
    /// are claimed as usual. On failure, as [`put_probes`](Self::put_probes).
    ///
    /// A backend may keep the batch as one record under one lease (the
    /// PostgreSQL store does: its probes are then written twice a batch
    /// instead of twice a probe); the lease then lasts until the last
    /// probe's first check plus `lease`, and a probe id still held in an
    /// earlier batch need not be found and replaced (the engine never puts
    /// a probe id twice; one stored unleased is replaced).
    async fn put_probes_leased(
        &self,
        probes: &mut Vec<PendingProbe>,
        lease: Duration,
    ) -> Result<()> {
        let _ = lease;
        self.put_probes(probes).await
    }

    /// Claims up to `limit` probes of tenants in `shards` whose
    /// `next_check_at` has come and that are not leased, leasing them for
    /// `lease`. Earliest first.
    async fn claim_probes(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: usize,
        shards: &ShardSet,
    ) -> Result<Vec<PendingProbe>>;

    /// In one step: records that `instance` is alive until `now + lease`,
    /// renews the leases of the shards it owns, gives up those above its
    /// [fair share](crate::cluster::fair_share) of the live instances, and
    /// takes free shards (never owned, given up, or whose lease ran out) up
    /// to it, lowest first. Returns the shards `instance` owns now.
    async fn sync_shards(
        &self,
        instance: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<ShardSet>;

    /// Gives up every shard of `instance` and forgets it (a clean
    /// shutdown), so the other instances take over at their next sync.
    async fn release_shards(&self, instance: &str) -> Result<()>;

    /// Settles many claimed probes: removes those whose `next_check_at` is
    /// `None` (found, or lost) and releases the others to be checked again
    /// at that time. Returns one result per settlement, in order; a
    /// settlement whose lease is no longer held fails with
    /// [`Error::LeaseLost`](crate::Error::LeaseLost) and changes nothing.
    async fn settle_probes(&self, settlements: &[ProbeSettlement]) -> Vec<Result<()>>;

    /// Stores `records`, each replacing the record with the same tenant,
    /// direction and condition (within the batch, the last one wins), in
    /// one transaction: all of them or, on error, none.
    async fn save_baselines(&self, records: &[BaselineRecord]) -> Result<()>;

    /// The baseline records of `tenant`, in no particular order (empty if
    /// none was saved).
    async fn load_baselines(&self, tenant: &TenantId) -> Result<Vec<BaselineRecord>>;

    /// Keeps `batches` until the owners of their shards take them
    /// ([`take_shared_observations`](Self::take_shared_observations)), in
    /// one transaction: all of them or, on error, none. An instance of a
    /// cluster calls it at each tick with what it observed of tenants it
    /// does not own.
    ///
    /// The default refuses with a permanent error: a store that several
    /// instances share must implement both methods (every backend of this
    /// library does).
    async fn share_observations(&self, batches: &[SharedObservations]) -> Result<()> {
        if batches.is_empty() {
            return Ok(());
        }
        Err(crate::Error::store_permanent(
            "event store",
            format!(
                "{self:?} cannot share observations between instances: implement \
                 EventStore::share_observations and take_shared_observations"
            ),
        ))
    }

    /// Removes and returns up to `limit` of the oldest batches shared for
    /// `shards`, oldest first. A batch is returned to one caller only.
    /// The default has nothing to return (see
    /// [`share_observations`](Self::share_observations)).
    async fn take_shared_observations(
        &self,
        shards: &ShardSet,
        limit: usize,
    ) -> Result<Vec<SharedObservations>> {
        let _ = (shards, limit);
        Ok(Vec::new())
    }

    // --- Health and metrics -------------------------------------------------
    // What `Monitor::health` and the metrics gauges read. Kept together, and
    // apart from the other methods; a wrapper (`metrics::MeteredStore`,
    // `testing::FaultyStore`, the `Arc`/`Box` forwarding below) forwards
    // each of them.

    /// How many outbox entries are not yet done and how many were given up
    /// (see [`OutboxCounts`]). Called once per tick for the gauges and by
    /// every health check, so a backend answers from indexes where it can.
    /// The default answers `None`: this store cannot count, and the gauges
    /// and the health check leave the figures out. The stores of this
    /// project count.
    async fn outbox_counts(&self) -> Result<Option<OutboxCounts>> {
        Ok(None)
    }

    /// One cheap round trip to the store, for health checks: `Ok` when it
    /// answers. The default loads a tenant that cannot exist (its id is
    /// reserved here), which every backend answers from its primary key.
    async fn ping(&self) -> Result<()> {
        let nobody = TenantId::new(PING_TENANT)
            .map_err(|e| crate::Error::store_permanent("event store", format!("ping: {e}")))?;
        self.load(&nobody).await.map(drop)
    }

    // --- end of health and metrics ------------------------------------------

    /// Stores a new pending probe (replacing one with the same tenant and
    /// probe id): [`put_probes`](Self::put_probes) with a batch of one.
    async fn put_probe(&self, probe: PendingProbe) -> Result<()> {
        self.put_probes(&mut vec![probe]).await
    }

    /// Releases a claimed probe with a new check time:
    /// [`settle_probes`](Self::settle_probes) with a batch of one.
    async fn reschedule_probe(
        &self,
        tenant: &TenantId,
        probe_id: &str,
        lease_id: u64,
        next_check_at: DateTime<Utc>,
    ) -> Result<()> {
        let settlement = ProbeSettlement {
            tenant: tenant.clone(),
            probe_id: probe_id.into(),
            lease_id,
            next_check_at: Some(next_check_at),
        };
        let results = self.settle_probes(std::slice::from_ref(&settlement)).await;
        only_result(results, &settlement)
    }

    /// Removes a claimed probe (found, or lost):
    /// [`settle_probes`](Self::settle_probes) with a batch of one.
    async fn remove_probe(&self, tenant: &TenantId, probe_id: &str, lease_id: u64) -> Result<()> {
        let settlement = ProbeSettlement {
            tenant: tenant.clone(),
            probe_id: probe_id.into(),
            lease_id,
            next_check_at: None,
        };
        let results = self.settle_probes(std::slice::from_ref(&settlement)).await;
        only_result(results, &settlement)
    }
}

/// The tenant [`EventStore::ping`] loads by default: a valid id that no
/// embedder is expected to register.
const PING_TENANT: &str = "continuity-store-ping";

/// The result of a batch of one settlement; a backend that answers with no
/// result breaks the contract, which is reported rather than taken as success.
fn only_result(mut results: Vec<Result<()>>, s: &ProbeSettlement) -> Result<()> {
    results.pop().unwrap_or_else(|| {
        Err(crate::Error::store_permanent(
            "event store",
            format!(
                "settle_probes gave no result for probe {}/{}",
                s.tenant, s.probe_id
            ),
        ))
    })
}

// Forwards every required method. The single-item probe methods are left
// to their defaults, which call the forwarded batch forms: one path per
// operation.
macro_rules! forward_event_store {
    ($($ptr:ty),*) => {$(
        #[async_trait]
        impl<T: EventStore + ?Sized> EventStore for $ptr {
            async fn load(&self, tenant: &TenantId) -> Result<Option<Versioned>> {
                (**self).load(tenant).await
            }
            async fn commit(&self, tenant: &TenantId, expected: u64, commit: Commit) -> Result<u64> {
                (**self).commit(tenant, expected, commit).await
            }
            async fn audit_log(&self, tenant: &TenantId, after: u64, limit: usize) -> Result<Vec<AuditRecord>> {
                (**self).audit_log(tenant, after, limit).await
            }
            async fn claim_outbox(&self, now: DateTime<Utc>, lease: Duration, limit: usize) -> Result<Vec<OutboxEntry>> {
                (**self).claim_outbox(now, lease, limit).await
            }
            async fn complete_outbox(&self, id: u64, lease_id: u64, result: OutboxResult) -> Result<()> {
                (**self).complete_outbox(id, lease_id, result).await
            }
            async fn pending_outbox(&self, limit: usize) -> Result<Vec<OutboxEntry>> {
                (**self).pending_outbox(limit).await
            }
            async fn recent_audit(&self, tenant: &TenantId, limit: usize) -> Result<Vec<AuditRecord>> {
                (**self).recent_audit(tenant, limit).await
            }
            async fn given_up_outbox(&self, limit: usize) -> Result<Vec<OutboxEntry>> {
                (**self).given_up_outbox(limit).await
            }
            async fn prune(&self, before: &PruneBefore) -> Result<PruneReport> {
                (**self).prune(before).await
            }
            async fn claim_probes(&self, now: DateTime<Utc>, lease: Duration, limit: usize, shards: &ShardSet) -> Result<Vec<PendingProbe>> {
                (**self).claim_probes(now, lease, limit, shards).await
            }
            async fn sync_shards(&self, instance: &str, now: DateTime<Utc>, lease: Duration) -> Result<ShardSet> {
                (**self).sync_shards(instance, now, lease).await
            }
            async fn release_shards(&self, instance: &str) -> Result<()> {
                (**self).release_shards(instance).await
            }
            async fn put_probes(&self, probes: &mut Vec<PendingProbe>) -> Result<()> {
                (**self).put_probes(probes).await
            }
            async fn put_probes_leased(&self, probes: &mut Vec<PendingProbe>, lease: Duration) -> Result<()> {
                (**self).put_probes_leased(probes, lease).await
            }
            async fn settle_probes(&self, settlements: &[ProbeSettlement]) -> Vec<Result<()>> {
                (**self).settle_probes(settlements).await
            }
            async fn save_baselines(&self, records: &[BaselineRecord]) -> Result<()> {
                (**self).save_baselines(records).await
            }
            async fn load_baselines(&self, tenant: &TenantId) -> Result<Vec<BaselineRecord>> {
                (**self).load_baselines(tenant).await
            }
            async fn share_observations(&self, batches: &[SharedObservations]) -> Result<()> {
                (**self).share_observations(batches).await
            }
            async fn take_shared_observations(&self, shards: &ShardSet, limit: usize) -> Result<Vec<SharedObservations>> {
                (**self).take_shared_observations(shards, limit).await
            }
            async fn outbox_counts(&self) -> Result<Option<OutboxCounts>> {
                (**self).outbox_counts().await
            }
            async fn ping(&self) -> Result<()> {
                (**self).ping().await
            }
        }
    )*};
}

forward_event_store!(std::sync::Arc<T>, Box<T>);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        config::{ChannelKind, Recipient},
        machine::AlertKind,
    };

    #[test]
    fn outbox_items_survive_a_json_round_trip() {
        let tenant = TenantId::new("acme").unwrap();
        let at: DateTime<Utc> = "2030-01-01T00:00:00.123456789Z".parse().unwrap();
        let alert = OutboxItem::Alert(Box::new(AlertMessage {
            tenant: tenant.clone(),
            tenant_name: "Acme".into(),
            alert_id: 3,
            kind: AlertKind::Reminder,
            recipient: Recipient::new("ops", ChannelKind::Email, "ops@example.net"),
            idempotency_key: "acme/3/ops".into(),
            created_at: at,
            link: "https://portal.example/c/x".into(),
            link_expires_at: at,
            conditions: Vec::new(),
            event: Some("active".into()),
            failing: Vec::new(),
            time_zone: Default::default(),
        }));
        let json = serde_json::to_string(&alert).unwrap();
        assert_eq!(serde_json::from_str::<OutboxItem>(&json).unwrap(), alert);
        let entry = OutboxEntry {
            id: 1,
            item: alert,
            created_at: at,
            attempts: 0,
            next_attempt_at: DateTime::<Utc>::MIN_UTC,
            lease_id: 0,
            last_error: None,
        };
        let json = serde_json::to_string(&entry).unwrap();
        assert_eq!(serde_json::from_str::<OutboxEntry>(&json).unwrap(), entry);
    }
}

/// The defaults of the records block, on a store that overrides neither.
#[cfg(test)]
mod record_defaults {
    use super::*;
    use crate::memory::InMemoryEventStore;

    /// Forwards the required methods only.
    #[derive(Debug, Default)]
    struct Plain(InMemoryEventStore);

    #[async_trait]
    impl EventStore for Plain {
        async fn load(&self, t: &TenantId) -> Result<Option<Versioned>> {
            self.0.load(t).await
        }
        async fn commit(&self, t: &TenantId, expected: u64, c: Commit) -> Result<u64> {
            self.0.commit(t, expected, c).await
        }
        async fn audit_log(&self, t: &TenantId, after: u64, n: usize) -> Result<Vec<AuditRecord>> {
            self.0.audit_log(t, after, n).await
        }
        async fn claim_outbox(
            &self,
            now: DateTime<Utc>,
            lease: Duration,
            n: usize,
        ) -> Result<Vec<OutboxEntry>> {
            self.0.claim_outbox(now, lease, n).await
        }
        async fn complete_outbox(&self, id: u64, lease: u64, r: OutboxResult) -> Result<()> {
            self.0.complete_outbox(id, lease, r).await
        }
        async fn pending_outbox(&self, n: usize) -> Result<Vec<OutboxEntry>> {
            self.0.pending_outbox(n).await
        }
        async fn put_probes(&self, p: &mut Vec<PendingProbe>) -> Result<()> {
            self.0.put_probes(p).await
        }
        async fn claim_probes(
            &self,
            now: DateTime<Utc>,
            lease: Duration,
            n: usize,
            shards: &ShardSet,
        ) -> Result<Vec<PendingProbe>> {
            self.0.claim_probes(now, lease, n, shards).await
        }
        async fn sync_shards(
            &self,
            i: &str,
            now: DateTime<Utc>,
            lease: Duration,
        ) -> Result<ShardSet> {
            self.0.sync_shards(i, now, lease).await
        }
        async fn release_shards(&self, i: &str) -> Result<()> {
            self.0.release_shards(i).await
        }
        async fn settle_probes(&self, s: &[ProbeSettlement]) -> Vec<Result<()>> {
            self.0.settle_probes(s).await
        }
        async fn save_baselines(&self, r: &[BaselineRecord]) -> Result<()> {
            self.0.save_baselines(r).await
        }
        async fn load_baselines(&self, t: &TenantId) -> Result<Vec<BaselineRecord>> {
            self.0.load_baselines(t).await
        }
    }

    #[tokio::test]
    async fn recent_audit_pages_through_the_whole_trail() {
        let store = Plain::default();
        let t = TenantId::new("acme").unwrap();
        // More than two of the default's pages.
        for version in 0..1100u32 {
            let entry = crate::machine::AuditEntry {
                at: DateTime::<Utc>::UNIX_EPOCH,
                actor: crate::machine::Actor::System,
                action: format!("n.{version}"),
                before: String::new(),
                after: String::new(),
            };
            let commit = Commit {
                audit: vec![entry],
                ..Commit::default()
            };
            store.commit(&t, u64::from(version), commit).await.unwrap();
        }
        for limit in [0, 1, 3, 600, 1100, 5000] {
            let ours: Vec<u64> = store
                .recent_audit(&t, limit)
                .await
                .unwrap()
                .iter()
                .map(|r| r.seq)
                .collect();
            let expected: Vec<u64> = (1..=1100u64).rev().take(limit).collect();
            assert_eq!(ours, expected, "limit {limit}");
        }
        let other = TenantId::new("globex").unwrap();
        assert!(store.recent_audit(&other, 5).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_store_without_dead_letters_says_so() {
        let e = Plain::default().given_up_outbox(10).await.unwrap_err();
        assert!(!e.is_retryable());
        assert!(e.to_string().contains("EventStore::given_up_outbox"), "{e}");
    }
}
