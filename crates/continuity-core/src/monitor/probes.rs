//! Active probes: sending them when their round is due
//! ([`Monitor::dispatch_probes`]) and checking the pending ones until they
//! arrive or their deadline passes ([`Monitor::check_probes`]).
//!
//! What a probe finds is recorded like a passive observation; evaluation
//! then treats both alike.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use tracing::{Instrument, error, info, info_span, warn};

use super::{
    Monitor, Runtime, TickReport, lock,
    timer::{Hurry, ProbeJob},
};
use crate::{
    cluster::{ShardSet, shard_of},
    domain::{Direction, FailureKind, Outcome, TenantId},
    duration::{after, hex_id},
    error::Error,
    metrics::ProbeEvent,
    probe::{ProbeRequest, ProbeStatus, ProbeTicket},
    store::{PendingProbe, ProbeSettlement},
};

/// `in-<unix ms in hex>` or `ou-…`: unique per tenant and direction, as a
/// direction is probed at most once per tick.
fn probe_id(direction: Direction, now: DateTime<Utc>) -> Arc<str> {
    let prefix = match direction {
        Direction::Inbound => "in-",
        Direction::Outbound => "ou-",
    };
    hex_id(prefix, now.timestamp_millis() as u64)
}

/// Settlements that hand held probes back to the store unchecked, due when
/// they were, for whichever instance claims them.
pub(super) fn released(held: Vec<PendingProbe>) -> Vec<ProbeSettlement> {
    held.into_iter()
        .map(|p| ProbeSettlement {
            tenant: p.tenant,
            probe_id: p.probe_id,
            lease_id: p.lease_id,
            next_check_at: Some(p.next_check_at),
        })
        .collect()
}

impl Monitor {
    /// Counts a probe event of `tenant` under the adapter serving it
    /// ([`MailProbe::kind_for`](crate::probe::MailProbe::kind_for)): a
    /// probe routing tenants to several adapters counts each under its own.
    fn count_probe(&self, event: ProbeEvent, tenant: &TenantId, direction: Direction) {
        if let Some(probe) = &self.parts.probes[direction.index()] {
            let adapter = probe.kind_for(tenant);
            self.parts
                .instruments
                .probe(event, adapter, tenant, direction);
        }
    }

    /// Sends the probes whose round is due, for the tenants this instance
    /// owns, and stores them as pending (in batches); schedules every job's
    /// next round.
    pub(super) async fn dispatch_probes(&self, now: DateTime<Utc>, report: &mut TickReport) {
        let mut due = self.due_probes(now);
        let owned = *lock(&self.cluster.owned);
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
            if self.parts.probes[job.direction.index()].is_none() || !self.is_current(&job) {
                continue;
            }
            let mut next = after(now, job.settings.interval);
            self.dispatch_one(&job, now, now, Some(&mut next), &mut pending_probes, report)
                .await;
            next_rounds.push((job, next));
        }
        self.store_probes(&mut pending_probes, report).await;
        let mut schedule = lock(&self.ticks.schedule);
        for (job, at) in next_rounds {
            schedule.probe(job, at);
        }
        schedule.probes.recycle(due);
    }

    /// Sends one probe of `job`'s direction at the tick of `now`, stamped
    /// `at`, and adds it to `pending` (stored once `pending` holds a batch);
    /// its first check is due a check interval after `now`, so that it
    /// falls on a tick. A refusal is
    /// handled by [`dispatch_failed`](Self::dispatch_failed), which may put
    /// `next_round` back.
    /// Returns whether the probe went out.
    async fn dispatch_one(
        &self,
        job: &ProbeJob,
        now: DateTime<Utc>,
        at: DateTime<Utc>,
        next_round: Option<&mut DateTime<Utc>>,
        pending: &mut Vec<PendingProbe>,
        report: &mut TickReport,
    ) -> bool {
        let direction = job.direction;
        let Some(probe) = &self.parts.probes[direction.index()] else {
            return false;
        };
        let hint = job.index.saturating_add(1);
        let tenant = &job.tenant;
        let request = ProbeRequest {
            tenant: tenant.clone(),
            direction,
            probe_id: probe_id(direction, at),
            sent_at: at,
        };
        let span = info_span!("probe.dispatch", %tenant, %direction, probe_id = %request.probe_id);
        match probe.as_ref().dispatch(&request).instrument(span).await {
            Ok(ticket) => {
                report.probes_dispatched += 1;
                self.count_probe(ProbeEvent::Dispatched, tenant, direction);
                pending.push(PendingProbe {
                    tenant: tenant.clone(),
                    direction,
                    probe_id: request.probe_id,
                    sent_at: at,
                    deadline: after(at, job.settings.deadline),
                    next_check_at: after(now, job.settings.check_interval),
                    ticket,
                    lease_id: 0,
                    tenant_hint: hint,
                });
                if pending.len() >= self.settings.batch {
                    self.store_probes(pending, report).await;
                }
                true
            }
            Err(e) => {
                self.dispatch_failed(&request, hint, e, next_round, at, report);
                false
            }
        }
    }

    /// Sends the probes the policies asked for at this tick
    /// ([`ThresholdPolicy::probe_soon`](crate::policy::ThresholdPolicy::probe_soon)),
    /// one per direction, besides the regular rounds (which keep their
    /// times). Each is stamped a millisecond after `now`, so that it never
    /// shares its id, or its place among the overdue probes, with a round
    /// of the same direction sent at this tick; it is checked from the next
    /// tick on, as the round would be (a check due a millisecond after a
    /// tick would wait for the tick after).
    pub(super) async fn dispatch_hurried(&self, now: DateTime<Utc>, report: &mut TickReport) {
        let hurried = std::mem::take(&mut lock(&self.ticks.schedule).hurried);
        if hurried.is_empty() {
            return;
        }
        let owned = *lock(&self.cluster.owned);
        // At the very end of time there is no later millisecond: no hurry.
        let Some(at) = now.checked_add_signed(chrono::TimeDelta::milliseconds(1)) else {
            return;
        };
        let mut pending = Vec::new();
        for h in hurried {
            let Some(job) = self.hurry_job(h) else {
                continue;
            };
            if owned.contains(job.shard)
                && self
                    .dispatch_one(&job, now, at, None, &mut pending, report)
                    .await
            {
                report.probes_hurried += 1;
            }
        }
        self.store_probes(&mut pending, report).await;
    }

    /// The probe job of a direction that asked for a probe, if its tenant
    /// is still registered as it was and probes the direction.
    fn hurry_job(&self, h: Hurry) -> Option<ProbeJob> {
        let dense = self.tenants.dense.read().unwrap_or_else(|e| e.into_inner());
        let slot = dense.get(h.index as usize)?;
        let rt = lock(&slot.rt);
        if rt.removed || rt.tenant != h.tenant || !rt.probe_settings.enabled(h.direction) {
            return None;
        }
        Some(ProbeJob {
            shard: rt.shard,
            tenant: h.tenant,
            direction: h.direction,
            index: h.index,
            epoch: slot.epoch,
            settings: Arc::new(rt.probe_settings.clone()),
        })
    }

    /// Whether `job` belongs to the tenant's current registration (a job
    /// of a removed or re-registered tenant is stale). The check reads a
    /// small dense array, not the tenant's state.
    fn is_current(&self, job: &ProbeJob) -> bool {
        self.tenants
            .dense
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(job.index as usize)
            .is_some_and(|slot| slot.epoch == job.epoch)
    }

    /// What a failed dispatch means: throttling puts the next round back
    /// (`next_round`) and is not counted; a retryable error (the server
    /// refusing or timing out) is a failure of the direction; any other
    /// error is a configuration problem, reported but not counted.
    fn dispatch_failed(
        &self,
        request: &ProbeRequest,
        hint: u32,
        e: Error,
        next_round: Option<&mut DateTime<Utc>>,
        now: DateTime<Utc>,
        report: &mut TickReport,
    ) {
        let (tenant, direction) = (&request.tenant, request.direction);
        match e {
            e @ Error::ProbeThrottled { .. } => {
                // Throttling says the server is up; it is not an outage.
                if let (
                    Error::ProbeThrottled {
                        retry_after: Some(wait),
                        ..
                    },
                    Some(round),
                ) = (&e, next_round)
                {
                    *round = (*round).max(after(now, *wait));
                }
                warn!(%tenant, %direction, error = %e, "probe dispatch throttled; not counted");
                self.count_probe(ProbeEvent::Throttled, tenant, direction);
                report
                    .errors
                    .push(format!("{tenant}: {direction} probe dispatch: {e}"));
            }
            e if e.is_retryable() => {
                // The org's server refusing or timing out is exactly what we watch for.
                warn!(%tenant, %direction, error = %e, "probe dispatch failed; counted as a failure");
                if let Some(rt) = self.runtime_hinted(tenant, hint) {
                    self.record_replied(
                        &rt,
                        direction,
                        now,
                        &Outcome::Failed {
                            kind: FailureKind::Unreachable,
                        },
                        e.remote_reply(),
                    );
                }
                report
                    .errors
                    .push(format!("{tenant}: {direction} probe dispatch: {e}"));
            }
            e => {
                error!(%tenant, %direction, error = %e, "probe dispatch failed (configuration?); not counted");
                report
                    .errors
                    .push(format!("{tenant}: {direction} probe dispatch: {e}"));
            }
        }
    }

    async fn store_probes(&self, pending: &mut Vec<PendingProbe>, report: &mut TickReport) {
        if pending.is_empty() {
            return;
        }
        let count = pending.len();
        match self
            .parts
            .store
            .as_ref()
            .put_probes_leased(pending, self.settings.lease)
            .await
        {
            // What the store leased to this instance at once is checked
            // from memory; the rest is claimed from the store.
            Ok(()) => lock(&self.ticks.held_probes).append(pending),
            Err(e) => {
                warn!(count, error = %e, "pending probes not stored; checking them from memory until the store answers");
                report.errors.push(format!("storing {count} probes: {e}"));
                lock(&self.outage.local_probes).append(pending);
            }
        }
    }

    /// Probes the store could not take: handed to it now if it answers,
    /// else checked from memory.
    async fn check_local_probes(&self, now: DateTime<Utc>, report: &mut TickReport) {
        let mut local = std::mem::take(&mut *lock(&self.outage.local_probes));
        if local.is_empty() {
            return;
        }
        let count = local.len();
        if self
            .parts
            .store
            .as_ref()
            .put_probes(&mut local)
            .await
            .is_ok()
        {
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
        lock(&self.outage.local_probes).extend(kept);
    }

    /// Checks the pending probes that are due: first those kept in memory
    /// while the store could not take them, then those claimed from the
    /// store, batch by batch. After each batch the tenants whose probes
    /// arrived are evaluated at once.
    pub(super) async fn check_probes(&self, now: DateTime<Utc>, report: &mut TickReport) {
        self.check_local_probes(now, report).await;
        let owned = *lock(&self.cluster.owned);
        self.check_held_probes(now, &owned, report).await;
        // Bounded: each round claims up to `batch`; a probe claimed in this
        // tick is rescheduled into the future, so rounds end.
        for _ in 0..10_000 {
            let claimed = match self
                .parts
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
            let settlements = self.check_claimed(claimed, now, report).await;
            self.settle_and_evaluate(settlements, now, report).await;
        }
    }

    /// Checks the probes the store leased to this instance as it stored
    /// them, whose first check is due, batch by batch. A probe of a tenant
    /// whose shard has moved to another instance meanwhile is released
    /// unchecked, for its new owner to claim.
    async fn check_held_probes(
        &self,
        now: DateTime<Utc>,
        owned: &ShardSet,
        report: &mut TickReport,
    ) {
        let due: Vec<PendingProbe> = {
            let mut held = lock(&self.ticks.held_probes);
            if held.is_empty() {
                return;
            }
            held.extract_if(.., |p| p.next_check_at <= now).collect()
        };
        let (mine, moved): (Vec<_>, Vec<_>) = due
            .into_iter()
            .partition(|p| owned.contains(shard_of(&p.tenant)));
        if !moved.is_empty() {
            self.settle_and_evaluate(released(moved), now, report).await;
        }
        let mut mine = mine.into_iter().peekable();
        while mine.peek().is_some() {
            let batch: Vec<_> = mine.by_ref().take(self.settings.batch.max(1)).collect();
            let settlements = self.check_claimed(batch, now, report).await;
            self.settle_and_evaluate(settlements, now, report).await;
        }
    }

    /// Tells the store what the checks found, then evaluates the tenants
    /// whose probes just arrived while their state is still in the
    /// processor's cache (the same tick would reach them later anyway).
    async fn settle_and_evaluate(
        &self,
        settlements: Vec<ProbeSettlement>,
        now: DateTime<Utc>,
        report: &mut TickReport,
    ) {
        let results = self.parts.store.as_ref().settle_probes(&settlements).await;
        for (s, r) in settlements.iter().zip(results) {
            if let Err(e) = r {
                warn!(tenant = %s.tenant, probe_id = %s.probe_id, error = %e, "settling a probe failed");
                report
                    .errors
                    .push(format!("{}: probe {}: {e}", s.tenant, s.probe_id));
            }
        }
        let observed = std::mem::take(&mut lock(&self.ticks.schedule).observed);
        self.evaluate_all(observed, now, report).await;
    }

    /// Checks claimed probes one by one; returns what to tell the store
    /// about each.
    async fn check_claimed(
        &self,
        claimed: Vec<PendingProbe>,
        now: DateTime<Utc>,
        report: &mut TickReport,
    ) -> Vec<ProbeSettlement> {
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
        settlements
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
        let probe = self.parts.probes[direction.index()].as_ref()?;
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
                self.count_probe(ProbeEvent::Arrived, tenant, direction);
                self.settle_overdue(&rt, direction, request.sent_at);
                self.record_into(&rt, direction, at, &Outcome::Delivered { latency });
                None
            }
            Ok(ProbeStatus::Pending) | Err(_) if now >= deadline => {
                report.probes_lost += 1;
                self.count_probe(ProbeEvent::Lost, tenant, direction);
                if let Err(e) = &status {
                    report
                        .errors
                        .push(format!("{tenant}: probe {probe_id}: {e}"));
                }
                info!(%tenant, %direction, %probe_id, "probe lost: not found by its deadline");
                self.record_replied(
                    &rt,
                    direction,
                    now,
                    &Outcome::Failed {
                        kind: FailureKind::LostProbe,
                    },
                    status.as_ref().err().and_then(Error::remote_reply),
                );
                None
            }
            Ok(ProbeStatus::Pending) => Some(self.still_pending(&rt, request, deadline, now)),
            Err(e) => {
                warn!(%tenant, %probe_id, error = %e, "probe check failed; checking again later");
                report
                    .errors
                    .push(format!("{tenant}: probe {probe_id}: {e}"));
                Some(after(now, lock(&rt).probe_settings.check_interval).min(deadline))
            }
        }
    }

    /// A probe still pending at `now`: once it has waited longer than its
    /// direction's policies call normal, it is marked overdue in the window
    /// (a latency of at least its age) and the tenant is evaluated, so a
    /// slowdown shows before the slow probe lands. Returns when to check
    /// it again.
    fn still_pending(
        &self,
        rt: &Runtime,
        request: &ProbeRequest,
        deadline: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> DateTime<Utc> {
        let (next, newly_queued) = {
            let mut rt = lock(rt);
            let next = after(now, rt.probe_settings.check_interval).min(deadline);
            let dr = &mut rt.directions[request.direction.index()];
            let overdue = dr
                .overdue_after
                .is_some_and(|normal| now > after(request.sent_at, normal));
            if overdue && dr.window.mark_overdue(request.sent_at, deadline, now) {
                dr.dirty = true;
            }
            let newly = rt.directions[request.direction.index()].dirty && !rt.queued;
            if newly {
                rt.queued = true;
            }
            (next, newly)
        };
        if newly_queued {
            lock(&self.ticks.schedule).observed.push(rt.clone());
        }
        next
    }

    /// A probe that arrived replaces its censored latency, if it had one:
    /// it counts once, with its real latency.
    fn settle_overdue(&self, rt: &Runtime, direction: Direction, sent_at: DateTime<Utc>) {
        let mut rt = lock(rt);
        let dr = &mut rt.directions[direction.index()];
        if dr.window.settle_overdue(sent_at) {
            // The real latency is recorded next and is above the limit that
            // made it overdue, so it is evaluated anyway; this makes sure.
            dr.dirty = true;
        }
    }
}
