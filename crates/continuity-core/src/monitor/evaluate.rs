//! Evaluation: running each due tenant's policies, feeding their health to
//! the state machine, and committing what changed (state, audit entries and
//! outbox items) through the store's compare-and-swap.
//!
//! Most evaluations find nothing to change ([`is_quiet`]) and end without a
//! copy of the state or a write.

use chrono::{DateTime, Utc};
use tracing::{Instrument, debug, info, info_span, warn};

use super::{
    Monitor, Runtime, TenantRuntime, TickReport,
    baselines::{first_save, restore_into},
    journal::{Written, journal_flush, store_unreachable},
    lock,
    timer::Hurry,
};
use crate::{
    cluster::ShardSet,
    domain::{Direction, TenantId},
    error::{Error, Result},
    machine::{self, Effect, Evaluation, Health, Input, Rules, TenantState},
    store::{Commit, OutboxItem, Versioned},
};

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
            debounced: false,
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

/// What [`Monitor::decide`] found.
// Returned once per evaluation and taken apart at once: a box would cost an
// allocation per transition for nothing.
#[allow(clippy::large_enum_variant)]
enum Step {
    /// Nothing to write: wake the tenant at this time (`None`: an existing
    /// wake-up stands).
    Wake(Option<DateTime<Utc>>),
    /// A transition to commit.
    Commit(Transition),
}

/// A transition ready to commit.
struct Transition {
    tenant: TenantId,
    /// The version it builds on.
    expected: u64,
    commit: Commit,
    /// When to look at the tenant again once it is committed (`None`: next
    /// tick, a hysteresis streak is still running).
    next_eval_at: Option<DateTime<Utc>>,
}

impl TenantRuntime {
    /// When something can next change for a tenant in `state` without a new
    /// observation: a verdict, or a deadline of the state (a reminder, the
    /// end of a suspension or event).
    fn next_look(&self, state: &TenantState, now: DateTime<Utc>) -> DateTime<Utc> {
        let at = self.next_verdict_change(now);
        state
            .next_deadline(self.rules.repeat_interval)
            .map_or(at, |d| d.min(at))
    }
}

/// Runs the policies of every direction whose verdicts may have changed
/// (new observations, or past the time they held until); a direction whose
/// verdicts cannot have changed keeps them.
fn refresh_verdicts(rt: &mut TenantRuntime, now: DateTime<Utc>) {
    for d in Direction::ALL {
        // While a condition of the direction is raised or on its way
        // (a hysteresis streak), every observation is looked at: one that
        // cannot change a verdict's breach may still turn "unknown" into
        // the "healthy" that clears it.
        let raised = rt
            .cached
            .state
            .conditions
            .iter()
            .any(|c| c.direction == d && (c.active || c.streak != 0));
        let dr = &mut rt.directions[d.index()];
        if dr.dirty || dr.verdicts_until.is_none_or(|t| now >= t) {
            for w in dr.watches.iter_mut() {
                *w.verdict = Some(w.policy.get_mut().evaluate(&dr.window, now));
            }
            dr.dirty = false;
            dr.evaluated_at = Some(now);
            dr.verdicts_until = Some(dr.verdicts_until(now));
            dr.absorb_below = if raised {
                None
            } else {
                dr.absorb_threshold(now)
            };
        }
    }
}

/// The health of every watched condition as the state machine sees it, and
/// of every condition in the state that no policy watches any more (the
/// configuration changed): those are evaluated as healthy, so they clear.
fn evaluations(rt: &TenantRuntime, now: DateTime<Utc>) -> EvalBuf<'_> {
    let mut evaluations = EvalBuf::new();
    for d in Direction::ALL {
        let dr = &rt.directions[d.index()];
        let full = now >= rt.watched_in_full_at(dr);
        let evaluated_now = dr.evaluated_at == Some(now);
        for w in dr.watches.iter() {
            let policy = w.policy.get();
            // A policy whose hysteresis counts its own periods gives no new
            // evidence at a tick that did not evaluate it.
            let health = match w.verdict {
                Some(v) if evaluated_now || policy.counts_ticks() => policy.health(v, full),
                _ => Health::Unknown,
            };
            evaluations.push(Evaluation {
                direction: d,
                name: policy.condition(),
                health,
                debounced: policy.debounced(),
            });
        }
    }
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
                debounced: false,
            });
        }
    }
    evaluations
}

impl Monitor {
    pub(super) async fn evaluate_all(
        &self,
        mut tenants: Vec<Runtime>,
        now: DateTime<Utc>,
        report: &mut TickReport,
    ) {
        let owned = *lock(&self.cluster.owned);
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
            self.reconcile_gauges(&mut lock(&rt), &owned);
        }
        // Hand the emptied buffer back for the next round of observations.
        let mut schedule = lock(&self.ticks.schedule);
        if schedule.observed.is_empty() && schedule.observed.capacity() < tenants.capacity() {
            schedule.observed = tenants;
        } else {
            schedule.evaluations.recycle(tenants);
        }
    }

    /// Evaluates one tenant and commits what changed. Returns when to wake
    /// it next (`None`: an existing wake-up stands).
    ///
    /// In order: a tenant of a shard this instance does not own is left to
    /// its owner; a tenant just taken over is reloaded; a journal left from
    /// a store outage is written; then [`decide`](Self::decide) runs the
    /// policies and the state machine under the tenant's lock, and
    /// [`commit_transition`](Self::commit_transition) writes what changed,
    /// again after a reload if another writer got there first.
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
        if let Some(tenant) = reload
            && let Some(reloaded) = self.reload_taken_over(rt, tenant, now, report).await?
        {
            flush = reloaded;
        }
        if flush {
            self.flush_journal(rt, now, report, true)
                .await
                .map_err(|e| (tenant_of(rt), e))?;
        }
        for attempt in 0..=self.settings.conflict_retries {
            // The tenant's lock is released before its id is read for an error.
            let step = self.decide(&mut lock(rt), attempt, now);
            let transition = match step.map_err(|e| (tenant_of(rt), e))? {
                Step::Wake(at) => return Ok(at),
                Step::Commit(transition) => transition,
            };
            if let Some(at) = self.commit_transition(rt, transition, now, report).await? {
                return Ok(Some(at));
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

    /// Loads the state of a tenant whose shard this instance just took over:
    /// the previous owner may have moved it on. Returns whether a journal is
    /// then to be written, or `None` when the store could not be reached
    /// (evaluation goes on with the state known; a stale version only makes
    /// the next write conflict and reload, and it is loaded again next time).
    ///
    /// The baselines the previous owner saved are restored too, and this
    /// instance saves them from now on; if they cannot be loaded, the
    /// policies go on with what they have, and the baselines are loaded
    /// before this instance saves any over them (`baselines.rs`).
    async fn reload_taken_over(
        &self,
        rt: &Runtime,
        tenant: TenantId,
        now: DateTime<Utc>,
        report: &mut TickReport,
    ) -> std::result::Result<Option<bool>, (TenantId, Error)> {
        let store = self.parts.store.as_ref();
        let owed = match store.load_baselines(&tenant).await {
            Ok(records) => {
                restore_into(&mut lock(rt), &records);
                false
            }
            Err(e) => {
                warn!(%tenant, error = %e, "loading the baselines of a tenant taken over failed; going on with those known");
                report
                    .errors
                    .push(format!("{tenant}: loading baselines: {e}"));
                true
            }
        };
        lock(rt).baseline_owed = owed;
        let at = first_save(&tenant, now, self.settings.baseline_every);
        self.schedule_baselines(rt, at);
        match store.load(&tenant).await {
            Ok(fresh) => {
                let mut guard = lock(rt);
                if let Some(fresh) = fresh
                    && fresh.version >= guard.cached.version
                {
                    guard.cached = fresh;
                }
                guard.reload = false;
                guard.next_eval_at = None;
                Ok(Some(journal_flush(&guard, now)))
            }
            Err(e) if store_unreachable(&e) => {
                warn!(%tenant, error = %e, "reloading a tenant taken over failed; using the state known");
                Ok(None)
            }
            Err(e) => Err((tenant, e)),
        }
    }

    /// Runs the policies and the state machine for one tenant, under its
    /// lock: either nothing is to be written (and the tenant is woken when
    /// something can next change), or a transition is ready to commit.
    /// `attempt` counts the retries after a conflict, which reuse the
    /// verdicts of the first.
    fn decide(&self, rt: &mut TenantRuntime, attempt: u32, now: DateTime<Utc>) -> Result<Step> {
        if attempt == 0 {
            if rt.last_evaluated == Some(now) {
                // One evaluation per tick: hysteresis counts ticks. If
                // this tenant must be looked at again (a streak is
                // running, or new data arrived), that is next tick.
                let again = rt.next_eval_at.is_none_or(|t| t <= now)
                    || rt.directions.iter().any(|d| d.dirty);
                return Ok(Step::Wake(again.then_some(now)));
            }
            if !rt.due(now) {
                // Verdicts only change with new observations or at bucket
                // and period boundaries, and nothing in the state is due.
                return Ok(Step::Wake(None));
            }
            rt.last_evaluated = Some(now);
        }
        rt.queued = false;
        if attempt == 0 {
            // Re-evaluating after a conflict must not advance stateful
            // policies twice.
            refresh_verdicts(rt, now);
            self.hurry_probes(rt, now);
        }
        let evaluations = evaluations(rt, now);
        let evaluations = evaluations.as_slice();
        if is_quiet(&rt.cached.state, evaluations, now, &rt.rules) {
            let at = rt.next_look(&rt.cached.state, now);
            rt.next_eval_at = Some(at);
            return Ok(Step::Wake(Some(at)));
        }
        let mut next = rt.cached.state.clone();
        let tenant = rt.config.tenant.clone();
        let effects =
            machine::apply_in_place(&mut next, &Input::Tick { evaluations }, now, &rt.rules)?;
        if effects.is_empty() && next == rt.cached.state {
            // Nothing to write (a reminder deferred by a suspension, say).
            let at = if is_quiet(&next, evaluations, now, &rt.rules) {
                rt.next_look(&next, now)
            } else {
                now
            };
            rt.next_eval_at = Some(at);
            return Ok(Step::Wake(Some(at)));
        }
        // With the same verdicts, would the next tick change anything
        // (a hysteresis streak still running)? Then look again next tick.
        let settled = is_quiet(&next, evaluations, now, &rt.rules);
        let next_eval_at = settled.then(|| rt.next_look(&next, now));
        rt.next_eval_at = None;
        let commit = self.build_commit(rt, next, effects, now)?;
        Ok(Step::Commit(Transition {
            tenant,
            expected: rt.cached.version,
            commit,
            next_eval_at,
        }))
    }

    /// Asks for a probe of each probed direction a policy evaluated at
    /// `now` would judge sooner with
    /// ([`ThresholdPolicy::probe_soon`](crate::policy::ThresholdPolicy::probe_soon)); it
    /// goes out at the end of this tick.
    fn hurry_probes(&self, rt: &TenantRuntime, now: DateTime<Utc>) {
        for d in Direction::ALL {
            let dr = &rt.directions[d.index()];
            if dr.evaluated_at != Some(now)
                || self.parts.probes[d.index()].is_none()
                || !rt.probe_settings.enabled(d)
            {
                continue;
            }
            let wanted = dr.watches.iter().any(|w| {
                w.verdict
                    .as_ref()
                    .is_some_and(|v| w.policy.get().probe_soon(v))
            });
            if wanted {
                lock(&self.ticks.schedule).hurried.push(Hurry {
                    tenant: rt.tenant.clone(),
                    index: rt.index,
                    direction: d,
                });
            }
        }
    }

    /// Writes a transition [`decide`](Self::decide) prepared, through the
    /// store or, while it cannot be reached, the tenant's journal. Returns
    /// when to wake the tenant next, or `None` after a conflict (the state
    /// is reloaded; decide again).
    async fn commit_transition(
        &self,
        rt: &Runtime,
        transition: Transition,
        now: DateTime<Utc>,
        report: &mut TickReport,
    ) -> std::result::Result<Option<DateTime<Utc>>, (TenantId, Error)> {
        let Transition {
            tenant,
            expected,
            commit,
            next_eval_at,
        } = transition;
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
                self.parts.instruments.alerts_decided(
                    tenant,
                    rt.cached.state.next_alert_id,
                    &state,
                );
                // Not confirmed: the version stays the one it builds on;
                // the write is tried again next tick.
                rt.cached.state = state;
                rt.next_eval_at = next_eval_at;
                Ok(Some(now))
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
                self.parts.instruments.alerts_decided(
                    tenant,
                    rt.cached.state.next_alert_id,
                    &state,
                );
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
                Ok(Some(next_eval_at.unwrap_or(now)))
            }
            Err(Error::Conflict { .. }) => {
                debug!(%tenant, "state changed concurrently; reloading");
                self.reload(tenant, rt)
                    .await
                    .map_err(|e| (tenant.clone(), e))?;
                Ok(None)
            }
            Err(e) => Err((tenant.clone(), e)),
        }
    }

    pub(super) async fn reload(&self, tenant: &TenantId, rt: &Runtime) -> Result<()> {
        let fresh = self
            .parts
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

    pub(super) fn build_commit(
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
                    let messages = self.render_alert(rt, &commit.state, &alert, now)?;
                    commit
                        .audit
                        .push(Self::alert_audit_entry(&alert, &messages, now));
                    for message in messages {
                        commit.outbox.push(OutboxItem::Alert(Box::new(message)));
                    }
                }
                Effect::EventStarted(event) if self.parts.hook.is_some() => {
                    commit.outbox.push(OutboxItem::EventStarted {
                        tenant: rt.config.tenant.clone(),
                        event,
                    })
                }
                Effect::EventEnded(event) if self.parts.hook.is_some() => {
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
