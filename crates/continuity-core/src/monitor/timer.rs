//! When to look at which tenant: the [`Schedule`] of timed evaluations and
//! probe rounds, on a [`TimerQueue`] that groups wake-ups by their exact time.
//!
//! A tick takes only what is due from here, so its cost follows the work to
//! do, not the number of tenants.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{Monitor, Runtime, lock};
use crate::{
    domain::{Direction, TenantId},
    duration::ceil_ms,
};

/// When to look at which tenant. A tick works only on what is due, so its
/// cost follows the work to do, not the number of tenants.
///
/// Entries can be stale (a tenant evaluated early because an observation
/// arrived keeps its older timed entry); a stale entry finds nothing due
/// and is dropped.
#[derive(Default)]
pub(super) struct Schedule {
    pub(super) evaluations: TimerQueue<Runtime>,
    pub(super) probes: TimerQueue<ProbeJob>,
    /// Tenants by when their baselines are saved next (see `baselines.rs`).
    pub(super) baselines: TimerQueue<Runtime>,
    /// Tenants with new observations since their last evaluation.
    pub(super) observed: Vec<Runtime>,
    /// Directions whose policies asked for a probe at this tick.
    pub(super) hurried: Vec<Hurry>,
}

/// A direction whose policies asked for a probe sooner than its next round
/// ([`ThresholdPolicy::probe_soon`](crate::policy::ThresholdPolicy::probe_soon)).
pub(super) struct Hurry {
    pub(super) tenant: TenantId,
    /// The tenant's index in `TenantRegistry::dense`.
    pub(super) index: u32,
    pub(super) direction: Direction,
}

/// One direction of one tenant to probe, with all a dispatch needs, so a
/// probe round does not touch the tenant's state.
pub(super) struct ProbeJob {
    pub(super) tenant: TenantId,
    pub(super) direction: Direction,
    /// The tenant's index in `TenantRegistry::dense`.
    pub(super) index: u32,
    /// The registration it belongs to (stale once the tenant is removed or
    /// registered again).
    pub(super) epoch: u32,
    /// The tenant's shard.
    pub(super) shard: u16,
    pub(super) settings: Arc<crate::config::ProbeConfig>,
}

/// A runtime in registration order, with its registration epoch.
pub(super) struct DenseSlot {
    pub(super) rt: Runtime,
    pub(super) epoch: u32,
}

/// Wake-ups grouped by their exact time (Unix ms). Many tenants fall due at
/// the same instants (bucket boundaries, probe rounds), so a group is taken
/// whole, which costs far less than a heap operation per tenant.
pub(super) struct TimerQueue<T> {
    pub(super) slots: std::collections::BTreeMap<i64, Vec<T>>,
    /// Emptied vectors kept for new slots: a round of 200,000 wake-ups then
    /// fills a vector that already has the room.
    pub(super) spare: Vec<Vec<T>>,
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
    pub(super) fn push(&mut self, at: DateTime<Utc>, what: T) {
        let spare = &mut self.spare;
        self.slots
            .entry(ceil_ms(at))
            .or_insert_with(|| spare.pop().unwrap_or_default())
            .push(what);
    }

    /// Queues every item of `what` at `at`: one lookup for all of them.
    pub(super) fn push_all(&mut self, at: DateTime<Utc>, what: impl IntoIterator<Item = T>) {
        let spare = &mut self.spare;
        self.slots
            .entry(ceil_ms(at))
            .or_insert_with(|| spare.pop().unwrap_or_default())
            .extend(what);
    }

    /// Takes back a drained vector for reuse.
    pub(super) fn recycle(&mut self, mut v: Vec<T>) {
        v.clear();
        if v.capacity() > 0 && self.spare.len() < 4 {
            self.spare.push(v);
        }
    }

    /// Takes one entry due at or before `now`, with its time (Unix ms), so
    /// that a caller working in batches leaves the rest in place.
    pub(super) fn pop_due(&mut self, now: DateTime<Utc>) -> Option<(i64, T)> {
        let now = now.timestamp_millis();
        loop {
            let mut entry = self.slots.first_entry()?;
            let at = *entry.key();
            if at > now {
                return None;
            }
            let what = entry.get_mut().pop();
            if entry.get().is_empty() {
                let emptied = entry.remove();
                self.recycle(emptied);
            }
            if let Some(what) = what {
                return Some((at, what));
            }
        }
    }

    /// Moves every entry due at or before `now` into `out`.
    pub(super) fn drain_due(&mut self, now: DateTime<Utc>, out: &mut Vec<T>) {
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
    pub(super) fn wake(&mut self, rt: Runtime, at: DateTime<Utc>) {
        self.evaluations.push(at, rt);
    }

    pub(super) fn probe(&mut self, job: ProbeJob, at: DateTime<Utc>) {
        self.probes.push(at, job);
    }
}

impl Monitor {
    pub(super) fn wake(&self, rt: &Runtime, at: DateTime<Utc>) {
        lock(&self.ticks.schedule).wake(rt.clone(), at);
    }

    /// Tenants to evaluate at `now`: timed wake-ups that are due, and
    /// tenants with new observations. A tenant may appear more than once;
    /// `evaluate_tenant` evaluates a tenant at most once per tick.
    pub(super) fn due_evaluations(&self, now: DateTime<Utc>) -> Vec<Runtime> {
        let mut schedule = lock(&self.ticks.schedule);
        let mut due = std::mem::take(&mut schedule.observed);
        schedule.evaluations.drain_due(now, &mut due);
        due
    }

    /// Probe jobs whose round is due at `now`.
    pub(super) fn due_probes(&self, now: DateTime<Utc>) -> Vec<ProbeJob> {
        let mut schedule = lock(&self.ticks.schedule);
        let mut due = schedule.probes.spare.pop().unwrap_or_default();
        schedule.probes.drain_due(now, &mut due);
        due
    }
}
