//! What the Monitor does while its store cannot be reached.
//!
//! A transition whose commit fails with a retryable [`Error::Store`] is
//! kept in the tenant's [`Journal`], and its alerts and hook calls are made
//! from here, so an outage of the store does not silence the alerts (they go
//! out at least once; a re-send carries the same idempotency key). Later
//! transitions build on the journaled state. At every tick the journal is
//! written as one commit on the version it builds on:
//!
//! - it lands: the journal is done;
//! - the store is still unreachable: the held items are retried (with the
//!   outbox's back-off) and the journal waits;
//! - the version moved on, and the stored state is the journal's own (an
//!   earlier write landed but its answer was lost): the commits it held are
//!   done, and their items' store copies are not sent again if they went
//!   out from here already;
//! - another writer moved it on (a portal action through another instance,
//!   a take-over): its state stands; the journal's audit entries, and a
//!   record of what it did and dropped, are appended on top of it, and the
//!   tenant is evaluated again from there. Items still undelivered are
//!   dropped (decided on a state that no longer holds); counters such as the
//!   next alert id never go back, so an id sent from here is not reused.
//!
//! Limits: items sent from here may overtake older items of the same
//! recipient still waiting in the store's outbox; a partitioned instance of
//! a cluster keeps alerting for its shards after its lease ran out (at least
//! once is preferred to silence).

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use tracing::{error, info, warn};

use super::{Monitor, Runtime, TenantRuntime, TickReport, lock};
use crate::{
    domain::TenantId,
    error::{Error, Result},
    machine::{Actor, AuditEntry, TenantState},
    store::{Commit, OutboxEntry, OutboxItem, OutboxResult, Versioned},
};

/// A tenant's transitions made while the store could not be reached.
#[derive(Debug, Default)]
pub(super) struct Journal {
    /// Oldest first, without their outbox items (moved to `held`).
    commits: Vec<Commit>,
    /// Outbox items not delivered yet, in commit order.
    held: Vec<Held>,
    /// Audit entries about the journal itself (items given up).
    notes: Vec<AuditEntry>,
    /// Delivery keys of items sent from here while a write of theirs may
    /// have landed.
    delivered: Vec<String>,
}

#[derive(Debug)]
struct Held {
    entry: OutboxEntry,
    /// Index in `Journal::commits` of the commit it came from.
    from: usize,
}

impl Journal {
    pub(super) fn is_empty(&self) -> bool {
        self.commits.is_empty()
    }

    /// Transitions held, not yet written.
    pub(super) fn len(&self) -> usize {
        self.commits.len()
    }

    /// Appends `commit` (a no-op re-write of the last state adds nothing);
    /// returns whether it was appended.
    fn push(&mut self, mut commit: Commit) -> bool {
        let noop = commit.audit.is_empty()
            && commit.outbox.is_empty()
            && self.commits.last().is_some_and(|c| c.state == commit.state);
        if noop {
            return false;
        }
        let from = self.commits.len();
        for item in std::mem::take(&mut commit.outbox) {
            self.held.push(Held {
                entry: OutboxEntry {
                    id: 0,
                    item,
                    created_at: commit.at,
                    attempts: 0,
                    next_attempt_at: DateTime::<Utc>::MIN_UTC,
                    lease_id: 0,
                    last_error: None,
                },
                from,
            });
        }
        self.commits.push(commit);
        true
    }

    /// Takes the last commit back out, with its items (not written; the
    /// caller evaluates it again).
    fn pop(&mut self) {
        let last = self.commits.len().saturating_sub(1);
        self.commits.pop();
        self.held.retain(|h| h.from != last);
    }

    /// One commit doing what the journal's commits do, with every held item.
    fn merged(&self) -> Commit {
        let mut merged = Commit::default();
        for c in &self.commits {
            merged.state.clone_from(&c.state);
            merged.at = c.at;
            merged.audit.extend(c.audit.iter().cloned());
        }
        merged.audit.extend(self.notes.iter().cloned());
        merged.outbox = self.held.iter().map(|h| h.entry.item.clone()).collect();
        merged
    }

    /// The first `k` commits landed: drop them and their items (the store
    /// holds those now).
    fn drain_landed(&mut self, k: usize) {
        self.commits.drain(..k);
        self.held.retain(|h| h.from >= k);
        for h in &mut self.held {
            h.from -= k;
        }
    }
}

/// How [`Monitor::write`] kept a transition.
pub(super) enum Written {
    /// In the store, at this version.
    Stored(u64),
    /// In the journal, until the store answers again.
    Journaled,
}

/// Whether `e` says the store could not be reached (rather than refused).
pub(super) fn store_unreachable(e: &Error) -> bool {
    matches!(
        e,
        Error::Store {
            retryable: true,
            ..
        }
    )
}

/// Whether the tenant's journal waits to be written at this tick (once a tick).
pub(super) fn journal_flush(rt: &TenantRuntime, now: DateTime<Utc>) -> bool {
    !rt.journal.is_empty() && rt.last_evaluated != Some(now)
}

/// What identifies one delivery of an outbox item, whichever copy.
fn delivery_key(item: &OutboxItem) -> String {
    match item {
        OutboxItem::Alert(m) => m.idempotency_key.clone(),
        OutboxItem::EventStarted { tenant, event } => format!("{tenant}/hook/start/{}", event.id),
        OutboxItem::EventEnded { tenant, event } => format!("{tenant}/hook/end/{}", event.id),
    }
}

impl Monitor {
    /// Commits `commit` (based on version `expected`) together with the
    /// tenant's journal; see the [module docs](self). `in_tick`: once the
    /// store was found unreachable, the tick's other writes skip it (a
    /// portal action always asks the store).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn write(
        &self,
        rt: &Runtime,
        tenant: &TenantId,
        expected: u64,
        commit: Commit,
        now: DateTime<Utc>,
        report: &mut TickReport,
        in_tick: bool,
    ) -> Result<Written> {
        let mut journal = std::mem::take(&mut lock(rt).journal);
        // Commits an earlier write may have landed with (the new one was
        // never tried).
        let tried = journal.commits.len();
        let added = journal.push(commit);
        let mut expected = expected;
        loop {
            if in_tick && *lock(&self.outage.store_down_at) == Some(now) {
                // Found unreachable earlier in this tick: do not wait on it again.
                self.hold(rt, journal, now, report).await;
                return Ok(Written::Journaled);
            }
            let error = match self
                .parts
                .store
                .as_ref()
                .commit(tenant, expected, journal.merged())
                .await
            {
                Ok(version) => {
                    if journal.commits.len() > 1 {
                        info!(%tenant, transitions = journal.commits.len(), "transitions made while the store was unreachable are stored");
                    }
                    // No earlier write of theirs landed (this one would have
                    // conflicted): their items have no other copy.
                    self.forget_delivered(&journal);
                    return Ok(Written::Stored(version));
                }
                Err(e) => e,
            };
            if store_unreachable(&error) {
                warn!(%tenant, error = %error, "store unreachable: transition kept in memory, its alerts sent from here");
                report.errors.push(format!(
                    "{tenant}: store unreachable, transition kept: {error}"
                ));
                if in_tick {
                    *lock(&self.outage.store_down_at) = Some(now);
                }
                self.hold(rt, journal, now, report).await;
                return Ok(Written::Journaled);
            }
            let Error::Conflict { .. } = error else {
                // Refused for good: the journal stays, the new transition
                // is dropped (evaluated again later).
                if added {
                    journal.pop();
                }
                lock(rt).journal = journal;
                return Err(error);
            };
            if tried == 0 {
                // Nothing journaled before: an ordinary conflict.
                return Err(error);
            }
            let fresh = match self.parts.store.as_ref().load(tenant).await {
                Ok(f) => f.unwrap_or(Versioned {
                    version: 0,
                    state: TenantState::default(),
                }),
                Err(e) if store_unreachable(&e) => {
                    if in_tick {
                        *lock(&self.outage.store_down_at) = Some(now);
                    }
                    self.hold(rt, journal, now, report).await;
                    return Ok(Written::Journaled);
                }
                Err(e) => {
                    if added {
                        journal.pop();
                    }
                    lock(rt).journal = journal;
                    return Err(e);
                }
            };
            // Every write is one compare-and-swap on `expected`: at most one
            // landed, one version on, with the state of the last commit it
            // held. The smallest match is taken: a repeat beats a loss.
            let landed = (fresh.version == expected.saturating_add(1))
                .then(|| (1..=tried).find(|k| journal.commits[k - 1].state == fresh.state))
                .flatten();
            if let Some(k) = landed {
                info!(%tenant, transitions = k, "an earlier write landed although its answer was lost");
                journal.drain_landed(k);
                // What went out from here may have store copies now: their
                // keys stay known (for a day) so the copies are not sent.
                journal.delivered.clear();
                expected = fresh.version;
                if journal.is_empty() {
                    return Ok(Written::Stored(fresh.version));
                }
                continue;
            }
            // Another writer moved the state on: its state stands.
            if added {
                journal.pop(); // the caller evaluates it again on the new state
            }
            self.supersede(tenant, journal, fresh, now).await;
            return Err(error);
        }
    }

    /// Appends what a superseded journal did (its audit entries, and what
    /// it dropped) on top of `fresh`, keeping counters from going back.
    async fn supersede(
        &self,
        tenant: &TenantId,
        journal: Journal,
        fresh: Versioned,
        now: DateTime<Utc>,
    ) {
        let mut record = journal.merged();
        let ours = std::mem::take(&mut record.state);
        let mut state = fresh.state;
        state.next_alert_id = state.next_alert_id.max(ours.next_alert_id);
        state.next_event_id = state.next_event_id.max(ours.next_event_id);
        let dropped: Vec<String> = journal
            .held
            .iter()
            .map(|h| delivery_key(&h.entry.item))
            .collect();
        record.audit.push(AuditEntry {
            at: now,
            actor: Actor::System,
            action: "store.journal.superseded".into(),
            before: format!(
                "{} transitions made while the store was unreachable; undelivered, dropped: [{}]",
                journal.commits.len(),
                dropped.join(", ")
            ),
            after: format!("the state of version {} stands", fresh.version),
        });
        record.state = state;
        record.outbox.clear();
        record.at = now;
        match self
            .parts
            .store
            .as_ref()
            .commit(tenant, fresh.version, record)
            .await
        {
            Ok(_) => self.forget_delivered(&journal),
            // Lost only the record: the state is the other writer's either way.
            Err(e) => {
                warn!(%tenant, error = %e, "the record of a superseded journal could not be written")
            }
        }
    }

    /// Writes the tenant's journal now, without a new transition. `false`:
    /// the store still cannot be reached (the journal waits).
    pub(super) async fn flush_journal(
        &self,
        rt: &Runtime,
        now: DateTime<Utc>,
        report: &mut TickReport,
        in_tick: bool,
    ) -> Result<bool> {
        let (tenant, expected, commit) = {
            let guard = lock(rt);
            if guard.journal.is_empty() {
                return Ok(true);
            }
            (
                guard.tenant.clone(),
                guard.cached.version,
                Commit {
                    state: guard.cached.state.clone(),
                    at: now,
                    audit: Vec::new(),
                    outbox: Vec::new(),
                },
            )
        };
        match self
            .write(rt, &tenant, expected, commit, now, report, in_tick)
            .await
        {
            Ok(Written::Stored(version)) => {
                lock(rt).cached.version = version;
                Ok(true)
            }
            Ok(Written::Journaled) => {
                // Tried again next tick.
                self.wake(rt, now);
                Ok(false)
            }
            Err(Error::Conflict { .. }) => {
                self.reload(&tenant, rt).await?;
                Ok(true)
            }
            Err(e) => Err(e),
        }
    }

    /// Delivers the journal's held items that are due (in order per
    /// recipient and hook, with the outbox's back-off) and keeps the rest.
    async fn hold(
        &self,
        rt: &Runtime,
        mut journal: Journal,
        now: DateTime<Utc>,
        report: &mut TickReport,
    ) {
        let mut blocked = HashSet::new();
        let mut kept = Vec::with_capacity(journal.held.len());
        for mut h in std::mem::take(&mut journal.held) {
            let key = h.entry.item.order_key();
            if blocked.contains(&key) || h.entry.next_attempt_at > now {
                blocked.insert(key);
                kept.push(h);
                continue;
            }
            h.entry.attempts = h.entry.attempts.saturating_add(1);
            match self.attempt(&h.entry, now, report).await {
                OutboxResult::Done => {
                    let delivered = delivery_key(&h.entry.item);
                    let mut sent = lock(&self.outage.delivered_from_memory);
                    let day = chrono::TimeDelta::days(1);
                    sent.retain(|_, at| *at + day > now);
                    sent.insert(delivered.clone(), now);
                    drop(sent);
                    journal.delivered.push(delivered);
                }
                OutboxResult::Retry { at, error } => {
                    h.entry.next_attempt_at = at;
                    h.entry.last_error = Some(error);
                    blocked.insert(key);
                    kept.push(h);
                }
                OutboxResult::GiveUp { error } => {
                    let delivered = delivery_key(&h.entry.item);
                    error!(
                        key = delivered,
                        error, "delivery given up while the store is unreachable"
                    );
                    journal.notes.push(AuditEntry {
                        at: now,
                        actor: Actor::System,
                        action: "delivery.given_up".into(),
                        before: delivered,
                        after: error,
                    });
                }
            }
        }
        journal.held = kept;
        lock(rt).journal = journal;
    }

    /// Forgets the delivery keys of a journal whose items have no store copy.
    fn forget_delivered(&self, journal: &Journal) {
        if journal.delivered.is_empty() {
            return;
        }
        let mut sent = lock(&self.outage.delivered_from_memory);
        for k in &journal.delivered {
            sent.remove(k);
        }
    }

    /// Whether `item` went out from a journal already (and forgets it: the
    /// store's copy is the only other one).
    pub(super) fn sent_from_memory(&self, item: &OutboxItem) -> bool {
        let mut sent = lock(&self.outage.delivered_from_memory);
        !sent.is_empty() && sent.remove(&delivery_key(item)).is_some()
    }
}
