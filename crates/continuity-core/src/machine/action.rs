//! Administrators' actions: [`Action`], the [`Rejection`]s that refuse one,
//! and how a validated action changes the state (with its audit entries).
//!
//! The only part of the machine driven by people rather than by time.

use std::{fmt, time::Duration};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{
    Actor, AuditEntry, ContinuityEvent, Effect, EndReason, EventLimits, EventStatus, Suspension,
    TenantState, describe_event, describe_suspension, end_active, span,
};
use crate::{
    duration::human,
    error::{Error, Result},
    time_zone::TimeZone,
};
/// What an administrator (or the embedder) asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Start a continuity event now, ending at `until`.
    StartEvent {
        /// When it ends by itself.
        until: DateTime<Utc>,
    },
    /// Move the active event's end to `until` (later than now's end).
    ExtendEvent {
        /// The new end.
        until: DateTime<Utc>,
    },
    /// Move the active event's end `by` later, from the end it has in the
    /// state the action is applied to (not the one its caller last saw:
    /// another administrator, or another instance, may have moved it since).
    /// Applied, it is recorded as [`Action::ExtendEvent`] to the end reached.
    ExtendEventBy {
        /// How much later the event ends.
        #[serde(with = "crate::duration::serde_duration")]
        by: Duration,
    },
    /// End the active event now.
    EndEvent,
    /// Plan an event ahead.
    ScheduleEvent {
        /// When it starts.
        start: DateTime<Utc>,
        /// When it ends.
        end: DateTime<Utc>,
    },
    /// Cancel the planned event.
    CancelScheduledEvent,
    /// Suspend notifications until `until`.
    Suspend {
        /// When notifications resume.
        until: DateTime<Utc>,
    },
    /// Lift the suspension now.
    LiftSuspension,
}

impl Action {
    /// The action with its relative end made absolute against `state`: an
    /// extension by a duration ends that much after the active event's
    /// end. `None` when nothing changes (other actions; no active event,
    /// or an end past the calendar, which validation refuses).
    pub(super) fn made_absolute(&self, state: &TenantState) -> Option<Action> {
        let Action::ExtendEventBy { by } = self else {
            return None;
        };
        let end = state.active_event.as_ref()?.end;
        let until = end.checked_add_signed(chrono::TimeDelta::from_std(*by).ok()?)?;
        Some(Action::ExtendEvent { until })
    }

    /// Dotted name used in the audit log: `event.start`, `suspension.lift`, …
    pub fn name(&self) -> &'static str {
        match self {
            Action::StartEvent { .. } => "event.start",
            Action::ExtendEvent { .. } | Action::ExtendEventBy { .. } => "event.extend",
            Action::EndEvent => "event.end",
            Action::ScheduleEvent { .. } => "event.schedule",
            Action::CancelScheduledEvent => "event.cancel",
            Action::Suspend { .. } => "suspension.start",
            Action::LiftSuspension => "suspension.lift",
        }
    }
}

/// Why an action was refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Rejection {
    /// Extend or end with no running event.
    NoActiveEvent,
    /// Start while an event runs.
    EventAlreadyActive {
        /// The running event's end.
        until: DateTime<Utc>,
    },
    /// Cancel with nothing planned.
    NoScheduledEvent,
    /// Schedule while another is planned.
    EventAlreadyScheduled {
        /// The planned event's start.
        start: DateTime<Utc>,
    },
    /// An end at or before the start (or before now).
    EndNotAfterStart,
    /// A scheduled start that is not in the future.
    StartNotInFuture,
    /// Longer than the tenant's maximum.
    TooLong {
        /// Requested duration.
        #[serde(with = "crate::duration::serde_duration_compat")]
        requested: Duration,
        /// The maximum.
        #[serde(with = "crate::duration::serde_duration_compat")]
        max: Duration,
    },
    /// Scheduled further ahead than allowed.
    TooFarAhead {
        /// The maximum.
        #[serde(with = "crate::duration::serde_duration_compat")]
        max: Duration,
    },
    /// An extension whose end is not after the current end.
    WouldShorten {
        /// The current end.
        current_end: DateTime<Utc>,
    },
    /// Lift with no suspension.
    NotSuspended,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, TimeZone::UTC)
    }
}

impl Rejection {
    /// The reason as an administrator reads it, with its times in `zone`
    /// (the `Display` form writes them in UTC).
    pub fn describe(&self, zone: TimeZone) -> String {
        crate::time_zone::in_zone(zone, |f, zone| self.write(f, zone))
    }

    fn write(&self, f: &mut fmt::Formatter<'_>, zone: TimeZone) -> fmt::Result {
        let t = |d: &DateTime<Utc>| zone.format(*d);
        match self {
            Rejection::NoActiveEvent => f.write_str("no continuity event is running"),
            Rejection::EventAlreadyActive { until } => {
                write!(
                    f,
                    "a continuity event is already running (until {}); extend it instead",
                    t(until)
                )
            }
            Rejection::NoScheduledEvent => f.write_str("no continuity event is scheduled"),
            Rejection::EventAlreadyScheduled { start } => write!(
                f,
                "a continuity event is already scheduled to start at {}; cancel it first",
                t(start)
            ),
            Rejection::EndNotAfterStart => {
                f.write_str("the end must be after the start and in the future")
            }
            Rejection::StartNotInFuture => {
                f.write_str("a scheduled event must start in the future")
            }
            Rejection::TooLong { requested, max } => write!(
                f,
                "{} is longer than the maximum of {}",
                human(*requested),
                human(*max)
            ),
            Rejection::TooFarAhead { max } => {
                write!(f, "events can be scheduled at most {} ahead", human(*max))
            }
            Rejection::WouldShorten { current_end } => write!(
                f,
                "the event already runs until {}; an extension must end later",
                t(current_end)
            ),
            Rejection::NotSuspended => f.write_str("notifications are not suspended"),
        }
    }
}
pub(super) fn validate_action(
    state: &TenantState,
    action: &Action,
    now: DateTime<Utc>,
    limits: &EventLimits,
) -> Result<()> {
    let reject = |reason| Err(Error::InvalidTransition { reason });
    // `state` has had its time-driven changes applied already.
    let active = state.active_event.as_ref();
    let scheduled = state.scheduled_event.as_ref();
    let running_until = active.map(|e| e.end);
    match action {
        Action::StartEvent { until } => {
            if let Some(until) = running_until {
                return reject(Rejection::EventAlreadyActive { until });
            }
            if *until <= now {
                return reject(Rejection::EndNotAfterStart);
            }
            let requested = span(now, *until);
            if requested > limits.max_event_duration {
                return reject(Rejection::TooLong {
                    requested,
                    max: limits.max_event_duration,
                });
            }
        }
        Action::ExtendEvent { until } => {
            let Some(current_end) = running_until else {
                return reject(Rejection::NoActiveEvent);
            };
            if *until <= current_end {
                return reject(Rejection::WouldShorten { current_end });
            }
            let start = active.map_or(now, |e| e.start);
            let requested = span(start, *until);
            if requested > limits.max_event_duration {
                return reject(Rejection::TooLong {
                    requested,
                    max: limits.max_event_duration,
                });
            }
        }
        Action::ExtendEventBy { by } => {
            // Reached only when it could not be made absolute.
            if running_until.is_none() {
                return reject(Rejection::NoActiveEvent);
            }
            return reject(Rejection::TooLong {
                requested: *by,
                max: limits.max_event_duration,
            });
        }
        Action::EndEvent => {
            if running_until.is_none() {
                return reject(Rejection::NoActiveEvent);
            }
        }
        Action::ScheduleEvent { start, end } => {
            if *start <= now {
                return reject(Rejection::StartNotInFuture);
            }
            if end <= start {
                return reject(Rejection::EndNotAfterStart);
            }
            if let Some(s) = scheduled {
                return reject(Rejection::EventAlreadyScheduled { start: s.start });
            }
            if span(now, *start) > limits.max_schedule_ahead {
                return reject(Rejection::TooFarAhead {
                    max: limits.max_schedule_ahead,
                });
            }
            let requested = span(*start, *end);
            if requested > limits.max_event_duration {
                return reject(Rejection::TooLong {
                    requested,
                    max: limits.max_event_duration,
                });
            }
        }
        Action::CancelScheduledEvent => {
            if scheduled.is_none() {
                return reject(Rejection::NoScheduledEvent);
            }
        }
        Action::Suspend { until } => {
            if *until <= now {
                return reject(Rejection::EndNotAfterStart);
            }
            let requested = span(now, *until);
            if requested > limits.max_suspension {
                return reject(Rejection::TooLong {
                    requested,
                    max: limits.max_suspension,
                });
            }
        }
        Action::LiftSuspension => {
            if !state.suspended_at(now) {
                return reject(Rejection::NotSuspended);
            }
        }
    }
    Ok(())
}

/// Performs a validated action. Returns whether an alert is owed at once.
pub(super) fn perform(
    state: &mut TenantState,
    action: &Action,
    actor: &Actor,
    now: DateTime<Utc>,
    zone: TimeZone,
    fx: &mut Vec<Effect>,
) -> bool {
    let audit = |fx: &mut Vec<Effect>, before: String, after: String| {
        fx.push(Effect::Audit(AuditEntry {
            at: now,
            actor: actor.clone(),
            action: action.name().into(),
            before,
            after,
        }))
    };
    match action {
        Action::StartEvent { until } => {
            let e = ContinuityEvent {
                id: state.next_event_id,
                status: EventStatus::Active,
                start: now,
                end: *until,
                created_by: actor.clone(),
                extensions: 0,
                end_reason: None,
            };
            state.next_event_id = state.next_event_id.saturating_add(1);
            fx.push(Effect::EventStarted(e.clone()));
            audit(
                fx,
                describe_event(None, zone),
                describe_event(Some(&e), zone),
            );
            state.active_event = Some(e);
        }
        Action::ExtendEvent { until } => {
            if let Some(e) = state.active_event.as_mut() {
                let before = describe_event(Some(e), zone);
                e.end = *until;
                e.extensions = e.extensions.saturating_add(1);
                let after = describe_event(Some(e), zone);
                audit(fx, before, after);
            }
        }
        // Made absolute before it is validated (and refused if it cannot be).
        Action::ExtendEventBy { .. } => {}
        Action::EndEvent => {
            end_active(
                state,
                now,
                EndReason::Stopped { by: actor.clone() },
                actor.clone(),
                action.name(),
                zone,
                fx,
            );
        }
        Action::ScheduleEvent { start, end } => {
            let e = ContinuityEvent {
                id: state.next_event_id,
                status: EventStatus::Scheduled,
                start: *start,
                end: *end,
                created_by: actor.clone(),
                extensions: 0,
                end_reason: None,
            };
            state.next_event_id = state.next_event_id.saturating_add(1);
            audit(
                fx,
                describe_event(state.scheduled_event.as_ref(), zone),
                describe_event(Some(&e), zone),
            );
            state.scheduled_event = Some(e);
        }
        Action::CancelScheduledEvent => {
            if let Some(mut e) = state.scheduled_event.take() {
                let before = describe_event(Some(&e), zone);
                e.status = EventStatus::Ended;
                e.end_reason = Some(EndReason::Cancelled { by: actor.clone() });
                audit(fx, before, "none".into());
            }
        }
        Action::Suspend { until } => {
            let before = describe_suspension(state.suspension.as_ref(), zone);
            let since = state.suspension.as_ref().map_or(now, |s| s.since);
            state.suspension = Some(Suspension {
                since,
                until: *until,
                by: actor.clone(),
            });
            audit(
                fx,
                before,
                describe_suspension(state.suspension.as_ref(), zone),
            );
        }
        Action::LiftSuspension => {
            let before = describe_suspension(state.suspension.as_ref(), zone);
            state.suspension = None;
            audit(fx, before, describe_suspension(None, zone));
            return state.any_active();
        }
    }
    false
}
