//! An in-memory [`EventStore`] with true compare-and-swap semantics.
//!
//! For tests, simulations and single-process embedders that accept losing
//! state on restart. It passes the same conformance suite as the durable stores.

use std::{
    collections::BTreeMap,
    sync::{Mutex, MutexGuard},
    time::Duration,
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::{
    cluster::{SHARDS, ShardSet, fair_share},
    domain::{Direction, TenantId},
    duration::{after, ceil_ms},
    error::{Error, Result},
    fxhash::FxHashMap,
    store::{
        AuditRecord, BaselineRecord, Commit, EventStore, OutboxCounts, OutboxEntry, OutboxResult,
        PendingProbe, PruneBefore, PruneReport, SharedObservations, Versioned,
    },
};

/// An in-memory event store. Cheap to create; share it with `Arc`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use continuity_core::{memory::InMemoryEventStore, store::{Commit, EventStore}, TenantId};
///
/// let store = InMemoryEventStore::new();
/// let acme = TenantId::new("acme").unwrap();
/// let v1 = store.commit(&acme, 0, Commit::default()).await.unwrap();
/// assert_eq!(v1, 1);
/// // A second writer that also read version 0 loses:
/// assert!(store.commit(&acme, 0, Commit::default()).await.is_err());
/// # }
/// ```
#[derive(Debug, Default)]
pub struct InMemoryEventStore {
    inner: Mutex<Inner>,
    /// Whether [`put_probes_leased`](EventStore::put_probes_leased) leases
    /// the probes to their sender (see [`leasing_on_put`](Self::leasing_on_put)).
    lease_on_put: bool,
}

#[derive(Debug, Default)]
struct Inner {
    tenants: FxHashMap<TenantId, Versioned>,
    audit: FxHashMap<TenantId, Vec<AuditRecord>>,
    outbox: BTreeMap<u64, Slot<OutboxEntry>>,
    dead_letters: Vec<OutboxEntry>,
    next_outbox_id: u64,
    probes: Slab<Slot<PendingProbe>>,
    /// Keys of each tenant's probes (a handful each), so that finding a
    /// probe by name needs no allocation.
    probe_keys: FxHashMap<TenantId, Keys>,
    /// Probe keys by due time (Unix ms): the check time, or the lease's end
    /// while leased. Keys are not removed when a probe is rescheduled or
    /// removed; a key whose slot no longer has that due time is skipped
    /// (cheaper than ordered-set removals on the hot path). Probes sent in
    /// one round share a due time, so one entry holds many keys.
    probe_due: BTreeMap<i64, Vec<u64>>,
    next_lease_id: u64,
    /// Live instances and when they stop counting as live.
    instances: BTreeMap<String, DateTime<Utc>>,
    /// Each shard's owner and the end of its lease.
    shard_owners: Vec<Option<(String, DateTime<Utc>)>>,
    /// Each tenant's baselines, one per direction and condition (a few).
    baselines: FxHashMap<TenantId, Vec<StoredBaseline>>,
    /// Observations shared for the owners of their shards, oldest first.
    shared: std::collections::VecDeque<SharedObservations>,
}

/// A [`BaselineRecord`] without its tenant (the map's key), in boxes rather
/// than vectors: kept for every direction of every tenant.
#[derive(Debug)]
struct StoredBaseline {
    direction: Direction,
    condition: Box<str>,
    saved_at: DateTime<Utc>,
    snapshot: Box<[u8]>,
}

/// A tenant's probe keys: a few inline (no allocation to chase), more spill
/// into a vector.
#[derive(Debug, Default)]
struct Keys {
    inline: [u64; 4],
    len: usize,
    spill: Vec<u64>,
}

impl Keys {
    fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.inline[..self.len].iter().chain(&self.spill).copied()
    }

    fn push(&mut self, key: u64) {
        if self.len < self.inline.len() {
            self.inline[self.len] = key;
            self.len += 1;
        } else {
            self.spill.push(key);
        }
    }

    /// Keeps the keys for which `keep` says yes (order is not kept).
    fn retain(&mut self, mut keep: impl FnMut(u64) -> bool) {
        let drop: Vec<u64> = self.iter().filter(|k| !keep(*k)).collect();
        for k in drop {
            self.remove(k);
        }
    }

    /// Removes `key` (order is not kept).
    fn remove(&mut self, key: u64) {
        if let Some(i) = self.inline[..self.len].iter().position(|k| *k == key) {
            match self.spill.pop() {
                Some(last) => self.inline[i] = last,
                None => {
                    self.inline[i] = self.inline[self.len - 1];
                    self.len -= 1;
                }
            }
        } else if let Some(i) = self.spill.iter().position(|k| *k == key) {
            self.spill.swap_remove(i);
        }
    }
}

/// Values in a vector, addressed by index, with freed indices reused: probes
/// sent together sit together in memory, which a hash map would scatter.
#[derive(Debug)]
struct Slab<T> {
    slots: Vec<Option<T>>,
    free: Vec<usize>,
    len: usize,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Slab<T> {
    fn insert(&mut self, value: T) -> u64 {
        self.len += 1;
        match self.free.pop() {
            Some(i) => {
                self.slots[i] = Some(value);
                i as u64
            }
            None => {
                self.slots.push(Some(value));
                (self.slots.len() - 1) as u64
            }
        }
    }

    fn get(&self, key: &u64) -> Option<&T> {
        self.slots.get(usize::try_from(*key).ok()?)?.as_ref()
    }

    fn get_mut(&mut self, key: &u64) -> Option<&mut T> {
        self.slots.get_mut(usize::try_from(*key).ok()?)?.as_mut()
    }

    fn remove(&mut self, key: &u64) -> Option<T> {
        let i = usize::try_from(*key).ok()?;
        let value = self.slots.get_mut(i)?.take()?;
        self.free.push(i);
        self.len -= 1;
        Some(value)
    }

    fn len(&self) -> usize {
        self.len
    }
}

#[derive(Debug)]
struct Slot<T> {
    value: T,
    leased_until: Option<DateTime<Utc>>,
}

impl Slot<PendingProbe> {
    fn due_ms(&self) -> i64 {
        ceil_ms(self.leased_until.unwrap_or(self.value.next_check_at))
    }
}

/// Low bits of a probe's lease id: its slot. The high bits count claims, so
/// a lease id is never reused (2^36 claims) and names its slot directly.
const LEASE_SLOT_BITS: u32 = 28;
const LEASE_SLOT_MASK: u64 = (1 << LEASE_SLOT_BITS) - 1;

/// A fresh lease id for the probe in slot `key` (`put_probe` keeps slots
/// below the mask).
fn lease_id_for(counter: u64, key: u64) -> u64 {
    (counter << LEASE_SLOT_BITS) | (key & LEASE_SLOT_MASK)
}

fn stale_lease(what: &str, tenant: &TenantId) -> Error {
    Error::LeaseLost {
        what: format!("{what} of tenant {tenant}"),
    }
}

impl Inner {
    /// Stores `probe`; with `lease`, leased at once until its first check
    /// plus `lease`. Returns its lease id (0: not leased).
    fn put_probe(&mut self, probe: PendingProbe, lease: Option<Duration>) -> Result<u64> {
        let Inner {
            probes,
            probe_keys,
            probe_due,
            next_lease_id,
            ..
        } = self;
        let keys = match probe_keys.get_mut(&probe.tenant) {
            Some(keys) => keys,
            None => probe_keys.entry(probe.tenant.clone()).or_default(),
        };
        // The list is cleaned here, not on removal: keys of removed probes
        // (whose slots may since hold another tenant's probe) are dropped.
        keys.retain(|k| {
            probes
                .get(&k)
                .is_some_and(|s| s.value.tenant == probe.tenant)
        });
        if probes.len() as u64 >= LEASE_SLOT_MASK {
            return Err(Error::store_permanent(
                "memory",
                format!("the in-memory store holds at most {LEASE_SLOT_MASK} pending probes"),
            ));
        }
        let old = keys.iter().find(|k| {
            probes
                .get(k)
                .is_some_and(|s| s.value.probe_id == probe.probe_id)
        });
        if let Some(old) = old {
            keys.remove(old);
            probes.remove(&old);
        }
        let leased_until = lease.map(|lease| after(probe.next_check_at, lease));
        let mut value = probe;
        value.lease_id = 0;
        let key = probes.insert(Slot {
            value,
            leased_until,
        });
        keys.push(key);
        let mut lease_id = 0;
        if let Some(slot) = probes.get_mut(&key) {
            if leased_until.is_some() {
                *next_lease_id += 1;
                lease_id = lease_id_for(*next_lease_id, key);
                slot.value.lease_id = lease_id;
            }
            probe_due.entry(slot.due_ms()).or_default().push(key);
        }
        Ok(lease_id)
    }

    fn reschedule_probe(
        &mut self,
        tenant: &TenantId,
        probe_id: &str,
        lease_id: u64,
        next_check_at: DateTime<Utc>,
    ) -> Result<()> {
        let Some(key) = self.leased_probe(tenant, probe_id, lease_id) else {
            return Err(stale_lease("probe", tenant));
        };
        let Some(slot) = self.probes.get_mut(&key) else {
            return Err(stale_lease("probe", tenant));
        };
        slot.value.next_check_at = next_check_at;
        slot.value.lease_id = 0;
        slot.leased_until = None;
        self.probe_due
            .entry(ceil_ms(next_check_at))
            .or_default()
            .push(key);
        Ok(())
    }

    fn remove_probe(&mut self, tenant: &TenantId, probe_id: &str, lease_id: u64) -> Result<()> {
        let Some(key) = self.leased_probe(tenant, probe_id, lease_id) else {
            return Err(stale_lease("probe", tenant));
        };
        // The tenant's key list is cleaned by its next `put_probe`.
        self.probes.remove(&key);
        Ok(())
    }

    /// The slot of the probe claimed under `lease_id`, if that lease still
    /// holds it. The slot is read straight from the lease id (see
    /// [`lease_id_for`]), so settling a probe needs no lookup by name.
    fn leased_probe(&self, tenant: &TenantId, probe_id: &str, lease_id: u64) -> Option<u64> {
        if lease_id == 0 {
            return None;
        }
        let key = lease_id & LEASE_SLOT_MASK;
        let slot = self.probes.get(&key)?;
        (slot.value.lease_id == lease_id
            && *slot.value.probe_id == *probe_id
            && slot.value.tenant == *tenant)
            .then_some(key)
    }
}

impl InMemoryEventStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store that, like the durable ones, leases probes to the
    /// instance that stores them
    /// ([`put_probes_leased`](EventStore::put_probes_leased)), for tests of
    /// that path. Off by default: a durable store saves a write per probe
    /// that way, but in memory a claim costs less than keeping the copy
    /// (the fleet's day took 15 % longer).
    pub fn leasing_on_put() -> Self {
        InMemoryEventStore {
            lease_on_put: true,
            ..Self::default()
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every mutation below keeps Inner consistent before it can panic, so a
        // poisoned lock still guards valid data.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Outbox entries that were given up on (permanent delivery errors), oldest first.
    pub fn dead_letters(&self) -> Vec<OutboxEntry> {
        self.lock().dead_letters.clone()
    }

    /// Number of tenants with stored state.
    pub fn tenant_count(&self) -> usize {
        self.lock().tenants.len()
    }

    /// Number of pending probes.
    pub fn probe_count(&self) -> usize {
        self.lock().probes.len()
    }
}

#[async_trait]
impl EventStore for InMemoryEventStore {
    async fn load(&self, tenant: &TenantId) -> Result<Option<Versioned>> {
        Ok(self.lock().tenants.get(tenant).cloned())
    }

    async fn commit(&self, tenant: &TenantId, expected: u64, commit: Commit) -> Result<u64> {
        let mut inner = self.lock();
        let actual = inner.tenants.get(tenant).map_or(0, |v| v.version);
        if actual != expected {
            return Err(Error::Conflict {
                tenant: tenant.to_string(),
                expected,
                actual,
            });
        }
        let version = expected.checked_add(1).ok_or_else(|| {
            Error::store_permanent(
                "memory",
                format!("version of tenant {tenant} cannot grow past {expected}"),
            )
        })?;
        inner.tenants.insert(
            tenant.clone(),
            Versioned {
                version,
                state: commit.state,
            },
        );
        if !commit.audit.is_empty() {
            let log = inner.audit.entry(tenant.clone()).or_default();
            for entry in commit.audit {
                let seq = log.last().map_or(1, |r| r.seq + 1);
                log.push(AuditRecord {
                    seq,
                    tenant: tenant.clone(),
                    entry,
                });
            }
        }
        for item in commit.outbox {
            inner.next_outbox_id += 1;
            let id = inner.next_outbox_id;
            let created_at = commit.at;
            inner.outbox.insert(
                id,
                Slot {
                    value: OutboxEntry {
                        id,
                        item,
                        created_at,
                        attempts: 0,
                        next_attempt_at: DateTime::<Utc>::MIN_UTC,
                        lease_id: 0,
                        last_error: None,
                    },
                    leased_until: None,
                },
            );
        }
        Ok(version)
    }

    async fn audit_log(
        &self,
        tenant: &TenantId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<AuditRecord>> {
        let inner = self.lock();
        Ok(inner
            .audit
            .get(tenant)
            .map(|log| {
                let start = log.partition_point(|r| r.seq <= after);
                log[start..].iter().take(limit).cloned().collect()
            })
            .unwrap_or_default())
    }

    async fn claim_outbox(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>> {
        let mut inner = self.lock();
        let inner = &mut *inner;
        let until = after(now, lease);
        let mut out = Vec::new();
        // Keys with an older item still pending: later items of the key wait.
        let mut held = std::collections::HashSet::new();
        for slot in inner.outbox.values_mut() {
            if out.len() >= limit {
                break;
            }
            let key = slot.value.item.order_key();
            let free = slot.leased_until.is_none_or(|t| t <= now);
            if free && slot.value.next_attempt_at <= now && !held.contains(&key) {
                inner.next_lease_id += 1;
                slot.value.lease_id = inner.next_lease_id;
                slot.value.attempts = slot.value.attempts.saturating_add(1);
                slot.leased_until = Some(until);
                out.push(slot.value.clone());
            }
            held.insert(key);
        }
        Ok(out)
    }

    async fn complete_outbox(&self, id: u64, lease_id: u64, result: OutboxResult) -> Result<()> {
        let mut inner = self.lock();
        let Some(slot) = inner.outbox.get_mut(&id) else {
            return Err(Error::LeaseLost {
                what: format!("outbox entry {id} (already completed)"),
            });
        };
        if slot.value.lease_id != lease_id || lease_id == 0 {
            let tenant = slot.value.item.tenant().clone();
            return Err(stale_lease("outbox", &tenant));
        }
        match result {
            OutboxResult::Done => {
                inner.outbox.remove(&id);
            }
            OutboxResult::Retry { at, error } => {
                slot.value.next_attempt_at = at;
                slot.value.last_error = Some(error);
                slot.value.lease_id = 0;
                slot.leased_until = None;
            }
            OutboxResult::GiveUp { error } => {
                if let Some(mut slot) = inner.outbox.remove(&id) {
                    slot.value.last_error = Some(error);
                    slot.value.lease_id = 0;
                    inner.dead_letters.push(slot.value);
                }
            }
        }
        Ok(())
    }

    async fn pending_outbox(&self, limit: usize) -> Result<Vec<OutboxEntry>> {
        Ok(self
            .lock()
            .outbox
            .values()
            .take(limit)
            .map(|s| s.value.clone())
            .collect())
    }

    async fn recent_audit(&self, tenant: &TenantId, limit: usize) -> Result<Vec<AuditRecord>> {
        Ok(self
            .lock()
            .audit
            .get(tenant)
            .map(|log| log.iter().rev().take(limit).cloned().collect())
            .unwrap_or_default())
    }

    async fn given_up_outbox(&self, limit: usize) -> Result<Vec<OutboxEntry>> {
        // Kept in the order they were given up; the contract is by id.
        let mut dead = self.lock().dead_letters.clone();
        dead.sort_by_key(|e| e.id);
        dead.truncate(limit);
        Ok(dead)
    }

    async fn prune(&self, before: &PruneBefore) -> Result<PruneReport> {
        let mut inner = self.lock();
        let mut report = PruneReport::default();
        for log in inner.audit.values_mut() {
            // The latest record stays: the next sequence number follows it.
            let latest = log.last().map_or(0, |r| r.seq);
            let was = log.len();
            log.retain(|r| r.seq == latest || r.entry.at >= before.audit);
            report.audit += (was - log.len()) as u64;
        }
        let was = inner.dead_letters.len();
        inner
            .dead_letters
            .retain(|e| e.created_at >= before.dead_letters);
        report.dead_letters = (was - inner.dead_letters.len()) as u64;
        let was = inner.instances.len();
        inner
            .instances
            .retain(|_, alive| *alive >= before.instances);
        report.instances = (was - inner.instances.len()) as u64;
        Ok(report)
    }

    async fn put_probes(&self, probes: &mut Vec<PendingProbe>) -> Result<()> {
        let mut inner = self.lock();
        let mut batch = std::mem::take(probes).into_iter();
        while let Some(p) = batch.next() {
            // Fails only when the store is full, for good: the probe that
            // did not fit is dropped, the rest handed back.
            if let Err(e) = inner.put_probe(p, None) {
                probes.extend(batch);
                return Err(e);
            }
        }
        Ok(())
    }

    async fn put_probes_leased(
        &self,
        probes: &mut Vec<PendingProbe>,
        lease: Duration,
    ) -> Result<()> {
        if !self.lease_on_put {
            return self.put_probes(probes).await;
        }
        let mut inner = self.lock();
        let mut batch = std::mem::take(probes).into_iter();
        let mut held = Vec::with_capacity(batch.len());
        while let Some(p) = batch.next() {
            let mut copy = p.clone();
            match inner.put_probe(p, Some(lease)) {
                Ok(lease_id) => {
                    copy.lease_id = lease_id;
                    held.push(copy);
                }
                // As `put_probes`: the probe that did not fit is dropped and
                // the rest handed back; those stored are claimed once their
                // lease runs out.
                Err(e) => {
                    probes.extend(batch);
                    return Err(e);
                }
            }
        }
        // A probe id put twice was stored once, the last: its earlier
        // copies' leases went with the slot they replaced.
        held.retain(|p| {
            inner
                .leased_probe(&p.tenant, &p.probe_id, p.lease_id)
                .is_some()
        });
        *probes = held;
        Ok(())
    }

    async fn settle_probes(
        &self,
        settlements: &[crate::store::ProbeSettlement],
    ) -> Vec<Result<()>> {
        let mut inner = self.lock();
        settlements
            .iter()
            .map(|s| match s.next_check_at {
                None => inner.remove_probe(&s.tenant, &s.probe_id, s.lease_id),
                Some(at) => inner.reschedule_probe(&s.tenant, &s.probe_id, s.lease_id, at),
            })
            .collect()
    }

    async fn claim_probes(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: usize,
        shards: &ShardSet,
    ) -> Result<Vec<PendingProbe>> {
        let mut inner = self.lock();
        let inner = &mut *inner;
        let now_ms = now.timestamp_millis();
        let until = after(now, lease);
        let until_ms = ceil_ms(until);
        let mut out = Vec::new();
        let mut leased = Vec::new();
        // Probes of other instances' shards, put back once the walk is done.
        let mut others: Vec<(i64, u64)> = Vec::new();
        while out.len() < limit {
            let Some(entry) = inner.probe_due.first_entry() else {
                break;
            };
            let due = *entry.key();
            if due > now_ms {
                break;
            }
            // Keys of one due time are taken from the end (their order among
            // themselves does not matter), so a partial claim leaves the rest
            // in place without copying.
            let mut keys = entry.remove();
            while out.len() < limit {
                let Some(key) = keys.pop() else { break };
                let Some(slot) = inner.probes.get_mut(&key) else {
                    continue;
                };
                if slot.due_ms() != due {
                    continue; // stale: rescheduled, re-leased or replaced since
                }
                if !shards.holds(&slot.value.tenant) {
                    others.push((due, key));
                    continue;
                }
                inner.next_lease_id += 1;
                slot.value.lease_id = lease_id_for(inner.next_lease_id, key);
                slot.leased_until = Some(until);
                leased.push(key);
                out.push(slot.value.clone());
            }
            if !keys.is_empty() {
                inner.probe_due.insert(due, keys);
            }
        }
        if !leased.is_empty() {
            inner
                .probe_due
                .entry(until_ms)
                .or_default()
                .append(&mut leased);
        }
        for (due, key) in others {
            inner.probe_due.entry(due).or_default().push(key);
        }
        Ok(out)
    }

    async fn sync_shards(
        &self,
        instance: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<ShardSet> {
        let mut inner = self.lock();
        let inner = &mut *inner;
        let until = after(now, lease);
        inner.instances.retain(|_, alive| *alive > now);
        inner.instances.insert(instance.to_string(), until);
        let fair = fair_share(inner.instances.len());
        let owners = &mut inner.shard_owners;
        owners.resize(usize::from(SHARDS), None);
        let mut mine: Vec<usize> = Vec::new();
        for (i, o) in owners.iter_mut().enumerate() {
            if let Some((who, end)) = o
                && who == instance
            {
                *end = until;
                mine.push(i);
            }
        }
        while mine.len() > fair {
            if let Some(i) = mine.pop() {
                owners[i] = None;
            }
        }
        for (i, o) in owners.iter_mut().enumerate() {
            if mine.len() >= fair {
                break;
            }
            if o.as_ref().is_none_or(|(_, end)| *end <= now) {
                *o = Some((instance.to_string(), until));
                mine.push(i);
            }
        }
        Ok(mine
            .into_iter()
            .filter_map(|i| u16::try_from(i).ok())
            .collect())
    }

    async fn release_shards(&self, instance: &str) -> Result<()> {
        let mut inner = self.lock();
        inner.instances.remove(instance);
        for o in inner.shard_owners.iter_mut() {
            if o.as_ref().is_some_and(|(who, _)| who == instance) {
                *o = None;
            }
        }
        Ok(())
    }

    async fn save_baselines(&self, records: &[BaselineRecord]) -> Result<()> {
        let mut inner = self.lock();
        for r in records {
            let kept = match inner.baselines.get_mut(&r.tenant) {
                Some(kept) => kept,
                None => inner.baselines.entry(r.tenant.clone()).or_default(),
            };
            let found = kept
                .iter_mut()
                .find(|b| b.direction == r.direction && *b.condition == *r.condition);
            match found {
                // The hourly save of a snapshot of the same size allocates nothing.
                Some(b) if b.snapshot.len() == r.snapshot.len() => {
                    b.snapshot.copy_from_slice(&r.snapshot);
                    b.saved_at = r.saved_at;
                }
                Some(b) => {
                    b.snapshot = r.snapshot.as_slice().into();
                    b.saved_at = r.saved_at;
                }
                None => kept.push(StoredBaseline {
                    direction: r.direction,
                    condition: r.condition.as_str().into(),
                    saved_at: r.saved_at,
                    snapshot: r.snapshot.as_slice().into(),
                }),
            }
        }
        Ok(())
    }

    async fn share_observations(&self, batches: &[SharedObservations]) -> Result<()> {
        self.lock().shared.extend(batches.iter().cloned());
        Ok(())
    }

    async fn take_shared_observations(
        &self,
        shards: &ShardSet,
        limit: usize,
    ) -> Result<Vec<SharedObservations>> {
        let mut inner = self.lock();
        let mut taken = Vec::new();
        let mut kept = std::collections::VecDeque::with_capacity(inner.shared.len());
        for batch in inner.shared.drain(..) {
            if taken.len() < limit && shards.contains(batch.shard) {
                taken.push(batch);
            } else {
                kept.push_back(batch);
            }
        }
        inner.shared = kept;
        Ok(taken)
    }

    async fn load_baselines(&self, tenant: &TenantId) -> Result<Vec<BaselineRecord>> {
        let inner = self.lock();
        Ok(inner
            .baselines
            .get(tenant)
            .map(|kept| {
                kept.iter()
                    .map(|b| BaselineRecord {
                        tenant: tenant.clone(),
                        direction: b.direction,
                        condition: b.condition.to_string(),
                        saved_at: b.saved_at,
                        snapshot: b.snapshot.to_vec(),
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    // Health and metrics.

    async fn outbox_counts(&self) -> Result<Option<OutboxCounts>> {
        let inner = self.lock();
        Ok(Some(OutboxCounts {
            backlog: inner.outbox.len() as u64,
            dead_letters: inner.dead_letters.len() as u64,
        }))
    }

    async fn ping(&self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod keys_tests {
    use super::Keys;

    #[test]
    fn keys_spill_and_remove() {
        let mut k = Keys::default();
        for i in 0..7 {
            k.push(i);
        }
        k.remove(1);
        k.remove(6);
        k.remove(42);
        let mut v: Vec<u64> = k.iter().collect();
        v.sort_unstable();
        assert_eq!(v, vec![0, 2, 3, 4, 5]);
        for i in [0, 2, 3, 4, 5] {
            k.remove(i);
        }
        assert_eq!(k.iter().count(), 0);
        k.push(9);
        assert_eq!(k.iter().collect::<Vec<_>>(), vec![9]);
    }
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use super::*;
    use crate::testing::conformance;

    #[tokio::test]
    async fn in_memory_store_passes_the_conformance_suite() {
        conformance::event_store_all(&InMemoryEventStore::new()).await;
        conformance::event_store_all(&InMemoryEventStore::leasing_on_put()).await;
    }

    #[tokio::test]
    async fn boxed_and_shared_stores_pass_too() {
        let boxed: Box<dyn EventStore> = Box::new(InMemoryEventStore::new());
        conformance::event_store_all(&boxed).await;
        let shared: std::sync::Arc<dyn EventStore> = std::sync::Arc::new(InMemoryEventStore::new());
        conformance::event_store_all(&shared).await;
    }

    #[tokio::test]
    async fn a_faulty_store_that_is_up_passes_and_one_that_is_down_refuses() {
        let store = crate::testing::FaultyStore::new(InMemoryEventStore::new());
        conformance::event_store_all(&store).await;
        store.set_down(true);
        let tenant = TenantId::new("down").unwrap();
        assert!(store.load(&tenant).await.unwrap_err().is_retryable());
        assert!(store.commit(&tenant, 0, Commit::default()).await.is_err());
        store.set_down(false);
        assert!(
            store.inner().load(&tenant).await.unwrap().is_none(),
            "nothing written while down"
        );
    }
}
