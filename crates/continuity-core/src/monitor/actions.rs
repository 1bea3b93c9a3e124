//! Actions: verifying a signed link and applying what an administrator
//! asked for (start an event, suspend notifications, ...) to the tenant's
//! state.
//!
//! [`Monitor::act`] is the engine-level call, for an actor without a link
//! (an operator's console); an administrator acting through a link goes
//! through [`portal::act`](crate::portal::act), which verifies the link and
//! calls it. Actions run outside the tick, at any time, and write through
//! the same compare-and-swap as evaluations.

use chrono::{DateTime, Utc};
use tracing::{Instrument, info, info_span};

use super::{ActionOutcome, Monitor, Runtime, TenantRuntime, TickReport, lock};
use crate::{
    domain::TenantId,
    error::{Error, Result},
    link::VerifiedLink,
    machine::{self, Action, Actor, Input, TenantState},
    store::{Commit, Versioned},
};

impl Monitor {
    /// Verifies a portal link (the signed text after the portal URL),
    /// optionally for a given tenant, at `now`.
    pub fn verify_link(
        &self,
        link: &str,
        tenant: Option<&TenantId>,
        now: DateTime<Utc>,
    ) -> Result<VerifiedLink> {
        let link = self.links.signer.verify(link, tenant, now)?;
        let rt = self.runtime(&link.claims.tenant)?;
        // A link of a recipient removed from the configuration no longer
        // opens the portal. A standing link names whoever the embedder gave
        // it to, not a recipient: it lives by its (shorter) ttl alone.
        if link.origin == crate::link::LinkOrigin::Alert
            && !lock(&rt)
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
    /// The engine-level call, for an actor without a link (an operator's
    /// console, [`Actor::Operator`]). Through a portal link, call
    /// [`portal::act`](crate::portal::act): it verifies the link, acts as its
    /// recipient and answers with a typed
    /// [`PortalOutcome`](crate::portal::PortalOutcome).
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
        if let Some(previous) = *lock(&self.ticks.last)
            && now < previous
        {
            // An action stamped before the last tick would be judged against
            // a past that the state has already moved beyond.
            return Err(Error::ClockWentBackwards { previous, now });
        }
        let rt = self.runtime(tenant)?;
        self.catch_up_for_action(tenant, &rt, now).await?;
        let span = info_span!("action", %tenant, action = action.name(), %actor);
        async {
            for _ in 0..=self.settings.conflict_retries {
                let (expected, commit) = self.prepare_action(
                    tenant,
                    &lock(&rt),
                    &actor,
                    &action,
                    expected_version,
                    now,
                )?;
                let state = commit.state.clone();
                match self
                    .parts
                    .store
                    .as_ref()
                    .commit(tenant, expected, commit)
                    .await
                {
                    Ok(version) => {
                        self.action_committed(&rt, version, &state);
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

    /// Brings the tenant's state up to date before an action: what this
    /// instance did while the store was unreachable is written first, so the
    /// action builds on it (or is refused while the store still cannot be
    /// reached); then the stored state is loaded.
    async fn catch_up_for_action(
        &self,
        tenant: &TenantId,
        rt: &Runtime,
        now: DateTime<Utc>,
    ) -> Result<()> {
        if !self
            .flush_journal(rt, now, &mut TickReport::default(), false)
            .await?
        {
            return Err(Error::store_transient(
                "monitor",
                "the store cannot be reached: the action was not applied; try again shortly",
            ));
        }
        self.reload(tenant, rt).await
    }

    /// Applies `action` to the state known and returns the commit, with the
    /// version it builds on; refused if the caller expected another version.
    fn prepare_action(
        &self,
        tenant: &TenantId,
        rt: &TenantRuntime,
        actor: &Actor,
        action: &Action,
        expected_version: Option<u64>,
        now: DateTime<Utc>,
    ) -> Result<(u64, Commit)> {
        if let Some(v) = expected_version
            && v != rt.cached.version
        {
            return Err(Error::Conflict {
                tenant: tenant.to_string(),
                expected: v,
                actual: rt.cached.version,
            });
        }
        let mut next = rt.cached.state.clone();
        let effects = machine::apply_in_place(
            &mut next,
            &Input::Act {
                action: action.clone(),
                actor: actor.clone(),
            },
            now,
            &rt.rules,
        )?;
        Ok((
            rt.cached.version,
            self.build_commit(rt, next, effects, now)?,
        ))
    }

    /// Keeps the committed state (unless a newer one is known already) and
    /// has the tenant evaluated at the next tick.
    fn action_committed(&self, rt: &Runtime, version: u64, state: &TenantState) {
        let mut guard = lock(rt);
        if version > guard.cached.version {
            self.parts.instruments.alerts_decided(
                &guard.tenant,
                guard.cached.state.next_alert_id,
                state,
            );
            guard.cached = Versioned {
                version,
                state: state.clone(),
            };
        }
        guard.next_eval_at = None;
        drop(guard);
        self.wake(rt, DateTime::<Utc>::MIN_UTC);
    }
}
