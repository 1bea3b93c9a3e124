//! The tenant state machine: pure functions from (state, input, now) to
//! (new state, effects).
//!
//! The [`Monitor`](crate::Monitor) performs the effects (store, notifiers,
//! hook); this module only decides. That keeps every rule testable without I/O.
//!
//! Rules, in the order [`apply`] applies them on every input:
//! 1. a suspension whose end has come is lifted;
//! 2. an active continuity event whose end has come ends by itself;
//! 3. a scheduled event whose start has come becomes active (merged into an
//!    active one if there is one);
//! 4. evaluations move each condition's hysteresis: it raises after
//!    `raise_after` consecutive breached evaluations and clears after
//!    `clear_after` consecutive healthy ones;
//! 5. alerts: a newly raised condition alerts at once (also when another
//!    condition already holds); while any condition holds, a reminder goes
//!    out every `repeat_interval`; when all clear, a resolved notice goes out.
//!    Nothing is sent while notifications are suspended; when a suspension
//!    ends (or is lifted) while a condition holds, an alert goes out at once.
mod action;
mod alert;
mod state;
#[cfg(test)]
mod tests;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{domain::Direction, duration::after, error::Result, time_zone::TimeZone};

pub use action::{Action, Rejection};
use action::{perform, validate_action};
pub use alert::{AlertDecision, AlertKind, ConditionRef};
use alert::{hysteresis, schedule_alerts};
pub use state::{
    Actor, AlertRecord, ConditionState, ContinuityEvent, EndReason, EventLimits, EventStatus,
    Incident, RECENT_ALERTS, Rules, Suspension, TenantState,
};
/// One line of the audit log, as the machine produces it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When.
    pub at: DateTime<Utc>,
    /// Who.
    pub actor: Actor,
    /// What, as a dotted name (`event.start`, `event.expired`,
    /// `suspension.lift`, …; the alerts sent: `alert.raised`,
    /// `alert.reminder`, `alert.resolved`, by [`Actor::System`], with the
    /// conditions and recipients in `after`).
    pub action: String,
    /// The relevant state before.
    pub before: String,
    /// The relevant state after.
    pub after: String,
}

/// Something the monitor must do after a transition is stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Effect {
    /// Send an alert to every recipient.
    Alert(AlertDecision),
    /// Tell the embedder that an event started.
    EventStarted(ContinuityEvent),
    /// Tell the embedder that an event ended.
    EventEnded(ContinuityEvent),
    /// Append to the audit log.
    Audit(AuditEntry),
}

/// What one evaluation found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// Within the threshold.
    Healthy,
    /// Over the threshold.
    Breached,
    /// Not enough data to tell (an empty window after a restart, too few
    /// samples). It neither raises nor clears a condition: the streak stays.
    Unknown,
}

/// An evaluation of one condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Evaluation<'a> {
    /// The direction.
    pub direction: Direction,
    /// The policy's condition name.
    pub name: &'a str,
    /// What the policy found.
    pub health: Health,
    /// The policy's verdicts hold their own hysteresis
    /// ([`ThresholdPolicy::debounced`](crate::policy::ThresholdPolicy::debounced)):
    /// the condition raises on the first breached evaluation and clears on
    /// the first healthy one, whatever the direction's `raise_after` and
    /// `clear_after`.
    pub debounced: bool,
}

/// The input of one transition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input<'a> {
    /// Time passed (and, optionally, conditions were evaluated).
    Tick {
        /// This tick's evaluations.
        evaluations: &'a [Evaluation<'a>],
    },
    /// An action by someone.
    Act {
        /// What.
        action: Action,
        /// Who.
        actor: Actor,
    },
}

/// The outcome of a transition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    /// The new state.
    pub state: TenantState,
    /// What the monitor must do.
    pub effects: Vec<Effect>,
}

fn span(from: DateTime<Utc>, to: DateTime<Utc>) -> Duration {
    (to - from).to_std().unwrap_or(Duration::ZERO)
}

fn describe_event(e: Option<&ContinuityEvent>, zone: TimeZone) -> String {
    match e {
        None => "none".into(),
        Some(e) => format!(
            "event #{} {} {} .. {}",
            e.id,
            e.status.as_str(),
            zone.format_record(e.start),
            zone.format_record(e.end)
        ),
    }
}

fn describe_suspension(s: Option<&Suspension>, zone: TimeZone) -> String {
    match s {
        None => "not suspended".into(),
        Some(s) => format!("suspended until {}", zone.format_record(s.until)),
    }
}

/// Applies `input` at `now` to a copy of `state`.
///
/// Errors only for actions that are not allowed (typed [`Rejection`]s inside
/// [`Error::InvalidTransition`](crate::Error::InvalidTransition)); the state is then unchanged.
pub fn apply(
    state: &TenantState,
    input: &Input<'_>,
    now: DateTime<Utc>,
    rules: &Rules,
) -> Result<Transition> {
    let mut next = state.clone();
    let effects = apply_in_place(&mut next, input, now, rules)?;
    Ok(Transition {
        state: next,
        effects,
    })
}

/// Like [`apply`], on `state` itself. On error `state` is unchanged.
pub fn apply_in_place(
    state: &mut TenantState,
    input: &Input<'_>,
    now: DateTime<Utc>,
    rules: &Rules,
) -> Result<Vec<Effect>> {
    let mut fx = Vec::new();
    match input {
        Input::Tick { evaluations } => {
            let owed_now = time_driven(state, now, rules, &mut fx);
            let mut newly_raised = Vec::new();
            let mut cleared_any = false;
            for ev in evaluations.iter() {
                match hysteresis(state, ev, now, rules) {
                    Some(true) => newly_raised.push(ConditionRef {
                        direction: ev.direction,
                        name: ev.name.to_string(),
                    }),
                    Some(false) => cleared_any = true,
                    None => {}
                }
            }
            schedule_alerts(
                state,
                now,
                rules,
                newly_raised,
                cleared_any,
                owed_now,
                &mut fx,
            );
        }
        Input::Act { action, actor } => {
            // Judge the action against the state that time has already moved
            // to (an event that just expired, a planned one that just began),
            // and leave `state` untouched if it is refused.
            let mut next = state.clone();
            let owed_by_time = time_driven(&mut next, now, rules, &mut fx);
            let absolute = action.made_absolute(&next);
            let action = absolute.as_ref().unwrap_or(action);
            validate_action(&next, action, now, &rules.limits)?;
            let owed_by_action = perform(&mut next, action, actor, now, rules.time_zone, &mut fx);
            schedule_alerts(
                &mut next,
                now,
                rules,
                Vec::new(),
                false,
                owed_by_time || owed_by_action,
                &mut fx,
            );
            *state = next;
        }
    }
    Ok(fx)
}

/// Suspension end, event end, scheduled start. Returns whether an alert is owed at once.
fn time_driven(
    state: &mut TenantState,
    now: DateTime<Utc>,
    rules: &Rules,
    fx: &mut Vec<Effect>,
) -> bool {
    let (limits, zone) = (&rules.limits, rules.time_zone);
    let mut owed = false;
    if let Some(s) = &state.suspension
        && now >= s.until
    {
        let before = describe_suspension(Some(s), zone);
        state.suspension = None;
        fx.push(Effect::Audit(AuditEntry {
            at: now,
            actor: Actor::System,
            action: "suspension.expired".into(),
            before,
            after: describe_suspension(None, zone),
        }));
        owed = state.any_active();
    }
    // In time order: a planned window that began before the running event's
    // end merges into it, even when this call comes late (after both times).
    if let Some(s) = state.scheduled_event.take_if(|s| now >= s.start) {
        let merge = state.active_event.as_ref().is_some_and(|a| s.start < a.end);
        if merge {
            if let Some(active) = state.active_event.as_mut() {
                let before = describe_event(Some(active), zone);
                // Merging never makes an event longer than the tenant allows.
                let cap = after(active.start, limits.max_event_duration).max(active.end);
                let end = s.end.min(cap);
                if end > active.end {
                    active.end = end;
                    active.extensions = active.extensions.saturating_add(1);
                }
                fx.push(Effect::Audit(AuditEntry {
                    at: now,
                    actor: Actor::System,
                    action: "event.merged".into(),
                    before,
                    after: describe_event(Some(active), zone),
                }));
            }
        } else {
            if state.active_event.as_ref().is_some_and(|a| now >= a.end) {
                end_active(
                    state,
                    now,
                    EndReason::Expired,
                    Actor::System,
                    "event.expired",
                    zone,
                    fx,
                );
            }
            let before = describe_event(state.active_event.as_ref(), zone);
            let mut e = s;
            e.status = EventStatus::Active;
            fx.push(Effect::EventStarted(e.clone()));
            fx.push(Effect::Audit(AuditEntry {
                at: now,
                actor: Actor::System,
                action: "event.scheduled_start".into(),
                before,
                after: describe_event(Some(&e), zone),
            }));
            state.active_event = Some(e);
        }
    }
    if state.active_event.as_ref().is_some_and(|e| now >= e.end) {
        end_active(
            state,
            now,
            EndReason::Expired,
            Actor::System,
            "event.expired",
            zone,
            fx,
        );
    }
    owed
}

fn end_active(
    state: &mut TenantState,
    now: DateTime<Utc>,
    reason: EndReason,
    actor: Actor,
    action: &str,
    zone: TimeZone,
    fx: &mut Vec<Effect>,
) {
    if let Some(mut e) = state.active_event.take() {
        let before = describe_event(Some(&e), zone);
        // An expired event ends at its end time; a stopped one now.
        if !matches!(reason, EndReason::Expired) {
            e.end = now.max(e.start);
        }
        e.status = EventStatus::Ended;
        e.end_reason = Some(reason);
        fx.push(Effect::EventEnded(e.clone()));
        fx.push(Effect::Audit(AuditEntry {
            at: now,
            actor,
            action: action.into(),
            before,
            after: describe_event(Some(&e), zone),
        }));
        state.last_event = Some(e);
    }
}
