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

use std::{fmt, time::Duration};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{
    domain::Direction,
    duration::{after, human},
    error::{Error, Result},
};

/// Who did something.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Actor {
    /// The library itself (an event reaching its end, a suspension running out).
    System,
    /// An administrator through a portal link.
    Link {
        /// The recipient the link was sent to.
        recipient: String,
        /// The alert the link came with.
        alert_id: u64,
        /// The key id the link was signed with.
        key_id: String,
        /// When the link was issued.
        issued_at: DateTime<Utc>,
    },
    /// The embedding application, on behalf of `name`.
    Operator {
        /// Who, as the embedder names them.
        name: String,
    },
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::System => f.write_str("system"),
            Actor::Link {
                recipient,
                alert_id,
                ..
            } => write!(f, "{recipient} (link of alert #{alert_id})"),
            Actor::Operator { name } => write!(f, "operator {name}"),
        }
    }
}

/// Where a continuity event is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventStatus {
    /// Planned ahead; not started.
    Scheduled,
    /// Running: the gateway holds and queues inbound mail.
    Active,
    /// Over.
    Ended,
}

impl EventStatus {
    /// `"scheduled"`, `"active"` or `"ended"`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventStatus::Scheduled => "scheduled",
            EventStatus::Active => "active",
            EventStatus::Ended => "ended",
        }
    }
}

/// Why an event ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EndReason {
    /// Someone ended it.
    Stopped {
        /// Who.
        by: Actor,
    },
    /// It reached its end time.
    Expired,
    /// A scheduled event was cancelled before it started.
    Cancelled {
        /// Who.
        by: Actor,
    },
}

/// A continuity event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContinuityEvent {
    /// Per-tenant sequence number.
    pub id: u64,
    /// Scheduled, active or ended.
    pub status: EventStatus,
    /// When it starts (or started).
    pub start: DateTime<Utc>,
    /// When it ends by itself (or ended).
    pub end: DateTime<Utc>,
    /// Who started or scheduled it.
    pub created_by: Actor,
    /// How often it was extended.
    pub extensions: u32,
    /// Why it ended, once ended.
    pub end_reason: Option<EndReason>,
}

/// A notification suspension.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suspension {
    /// Since when.
    pub since: DateTime<Utc>,
    /// Until when (exclusive).
    pub until: DateTime<Utc>,
    /// Who suspended.
    pub by: Actor,
}

/// Hysteresis state of one condition (one policy of one direction).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConditionState {
    /// The direction.
    pub direction: Direction,
    /// The policy's condition name (`latency`, `failures`, `leaky`).
    pub name: String,
    /// Whether the condition holds (raised).
    pub active: bool,
    /// Consecutive evaluations against the current state (breached while
    /// inactive, healthy while active).
    pub streak: u32,
    /// When it last raised or cleared.
    pub since: Option<DateTime<Utc>>,
}

/// The alerting side of one period of trouble.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    /// When the first condition raised.
    pub opened_at: DateTime<Utc>,
    /// Alerts sent for it so far.
    pub alerts_sent: u32,
    /// When the last one was sent.
    pub last_alert_at: Option<DateTime<Utc>>,
    /// An alert is owed at once (raised or suspension ended while suspended).
    pub owed: bool,
}

/// A tenant's durable state. Stored by the [`EventStore`](crate::store::EventStore)
/// under a version; changed only through [`apply`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantState {
    /// Conditions, sorted by direction then name.
    pub conditions: Vec<ConditionState>,
    /// The current period of trouble, if any.
    pub incident: Option<Incident>,
    /// The notification suspension, if any.
    pub suspension: Option<Suspension>,
    /// The running continuity event.
    pub active_event: Option<ContinuityEvent>,
    /// The next planned event.
    pub scheduled_event: Option<ContinuityEvent>,
    /// The most recently ended event.
    pub last_event: Option<ContinuityEvent>,
    /// Id of the next alert.
    pub next_alert_id: u64,
    /// Id of the next continuity event.
    pub next_event_id: u64,
    /// When the last alert (of any kind) was sent.
    pub last_alert_at: Option<DateTime<Utc>>,
    /// Everything cleared while notifications were suspended, after alerts
    /// went out: the resolved notice goes out when the suspension ends.
    #[serde(default)]
    pub resolved_owed: bool,
    /// The last alerts decided (at most [`RECENT_ALERTS`]), oldest first, so
    /// the portal can show what administrators were told and when.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recent_alerts: Vec<AlertRecord>,
}

/// How many alerts [`TenantState::recent_alerts`] keeps.
pub const RECENT_ALERTS: usize = 5;

/// An alert as remembered in the tenant's state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertRecord {
    /// Per-tenant alert id (the id its links are bound to).
    pub id: u64,
    /// Raised, reminder or resolved.
    pub kind: AlertKind,
    /// When it was decided (queued for every recipient).
    pub at: DateTime<Utc>,
    /// The conditions holding when it was decided.
    pub active: Vec<ConditionRef>,
}

impl TenantState {
    /// Whether any condition holds.
    pub fn any_active(&self) -> bool {
        self.conditions.iter().any(|c| c.active)
    }

    /// Whether notifications are suspended at `now`.
    pub fn suspended_at(&self, now: DateTime<Utc>) -> bool {
        self.suspension.as_ref().is_some_and(|s| now < s.until)
    }

    /// The condition `name` of `direction`.
    pub fn condition(&self, direction: Direction, name: &str) -> Option<&ConditionState> {
        self.conditions
            .iter()
            .find(|c| c.direction == direction && c.name == name)
    }

    /// The earliest time at which time alone (no new evaluation) changes
    /// something: a suspension or event ending, a scheduled event starting, a
    /// reminder falling due.
    pub fn next_deadline(&self, repeat: Duration) -> Option<DateTime<Utc>> {
        let reminder = self.incident.as_ref().and_then(|i| {
            if i.owed {
                return None; // owed alerts wait for the suspension's end, counted below
            }
            let due = i.last_alert_at.map(|t| after(t, repeat))?;
            // Nothing goes out while suspended: a reminder falling due then
            // waits for the suspension's end.
            Some(match &self.suspension {
                Some(s) if due < s.until => s.until,
                _ => due,
            })
        });
        [
            self.suspension.as_ref().map(|s| s.until),
            self.active_event.as_ref().map(|e| e.end),
            self.scheduled_event.as_ref().map(|e| e.start),
            reminder,
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

/// The rules a transition needs from the tenant configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Rules {
    /// Hysteresis per direction: (raise_after, clear_after), indexed by [`Direction::index`].
    pub hysteresis: [(u32, u32); 2],
    /// Reminder interval.
    pub repeat_interval: Duration,
    /// Event and suspension limits.
    pub limits: EventLimits,
}

/// Limits on what administrators may do through the portal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventLimits {
    /// Longest continuity event, extensions included (default 7 days).
    #[serde(
        default = "default_max_event",
        with = "crate::duration::serde_duration"
    )]
    pub max_event_duration: Duration,
    /// How far ahead an event may be scheduled (default 90 days).
    #[serde(
        default = "default_max_ahead",
        with = "crate::duration::serde_duration"
    )]
    pub max_schedule_ahead: Duration,
    /// Longest notification suspension (default 7 days).
    #[serde(
        default = "default_max_suspension",
        with = "crate::duration::serde_duration"
    )]
    pub max_suspension: Duration,
}

fn default_max_event() -> Duration {
    7 * DAY
}
fn default_max_ahead() -> Duration {
    90 * DAY
}
fn default_max_suspension() -> Duration {
    7 * DAY
}

impl Default for EventLimits {
    fn default() -> Self {
        EventLimits {
            max_event_duration: default_max_event(),
            max_schedule_ahead: default_max_ahead(),
            max_suspension: default_max_suspension(),
        }
    }
}

impl EventLimits {
    pub(crate) fn validate(&self) -> crate::error::Result<()> {
        for (field, d) in [
            ("limits.max_event_duration", self.max_event_duration),
            ("limits.max_schedule_ahead", self.max_schedule_ahead),
            ("limits.max_suspension", self.max_suspension),
        ] {
            if d < MINUTE || d > 366 * DAY {
                return Err(crate::error::Error::config(
                    field,
                    "must be between 1 minute and 366 days",
                ));
            }
        }
        Ok(())
    }
}

const MINUTE: Duration = Duration::from_secs(60);
const DAY: Duration = Duration::from_secs(86_400);

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
    /// Dotted name used in the audit log: `event.start`, `suspension.lift`, …
    pub fn name(&self) -> &'static str {
        match self {
            Action::StartEvent { .. } => "event.start",
            Action::ExtendEvent { .. } => "event.extend",
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
        requested: Duration,
        /// The maximum.
        max: Duration,
    },
    /// Scheduled further ahead than allowed.
    TooFarAhead {
        /// The maximum.
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
        let t = |d: &DateTime<Utc>| d.format("%Y-%m-%d %H:%M UTC").to_string();
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

/// What kind of alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A condition raised (or an owed alert after a suspension).
    Raised,
    /// Conditions still hold.
    Reminder,
    /// Everything cleared.
    Resolved,
}

impl AlertKind {
    /// `"raised"`, `"reminder"` or `"resolved"`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Raised => "raised",
            AlertKind::Reminder => "reminder",
            AlertKind::Resolved => "resolved",
        }
    }
}

/// A condition named by direction and policy.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ConditionRef {
    /// The direction.
    pub direction: Direction,
    /// The policy's condition name.
    pub name: String,
}

/// An alert the machine decided to send.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertDecision {
    /// Per-tenant alert id.
    pub id: u64,
    /// Raised, reminder or resolved.
    pub kind: AlertKind,
    /// Conditions holding after this transition.
    pub active: Vec<ConditionRef>,
    /// Conditions that raised in this transition.
    pub newly_raised: Vec<ConditionRef>,
}

/// One line of the audit log, as the machine produces it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When.
    pub at: DateTime<Utc>,
    /// Who.
    pub actor: Actor,
    /// What, as a dotted name (`event.start`, `event.expired`, `suspension.lift`, …).
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

fn fmt_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

fn describe_event(e: Option<&ContinuityEvent>) -> String {
    match e {
        None => "none".into(),
        Some(e) => format!(
            "event #{} {} {} .. {}",
            e.id,
            e.status.as_str(),
            fmt_time(e.start),
            fmt_time(e.end)
        ),
    }
}

fn describe_suspension(s: Option<&Suspension>) -> String {
    match s {
        None => "not suspended".into(),
        Some(s) => format!("suspended until {}", fmt_time(s.until)),
    }
}

/// Applies `input` at `now` to a copy of `state`.
///
/// Errors only for actions that are not allowed (typed [`Rejection`]s inside
/// [`Error::InvalidTransition`]); the state is then unchanged.
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
            let owed_now = time_driven(state, now, &rules.limits, &mut fx);
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
            let owed_by_time = time_driven(&mut next, now, &rules.limits, &mut fx);
            validate_action(&next, action, now, &rules.limits)?;
            let owed_by_action = perform(&mut next, action, actor, now, &mut fx);
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
    limits: &EventLimits,
    fx: &mut Vec<Effect>,
) -> bool {
    let mut owed = false;
    if let Some(s) = &state.suspension
        && now >= s.until
    {
        let before = describe_suspension(Some(s));
        state.suspension = None;
        fx.push(Effect::Audit(AuditEntry {
            at: now,
            actor: Actor::System,
            action: "suspension.expired".into(),
            before,
            after: describe_suspension(None),
        }));
        owed = state.any_active();
    }
    // In time order: a planned window that began before the running event's
    // end merges into it, even when this call comes late (after both times).
    if let Some(s) = state.scheduled_event.take_if(|s| now >= s.start) {
        let merge = state.active_event.as_ref().is_some_and(|a| s.start < a.end);
        if merge {
            if let Some(active) = state.active_event.as_mut() {
                let before = describe_event(Some(active));
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
                    after: describe_event(Some(active)),
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
                    fx,
                );
            }
            let before = describe_event(state.active_event.as_ref());
            let mut e = s;
            e.status = EventStatus::Active;
            fx.push(Effect::EventStarted(e.clone()));
            fx.push(Effect::Audit(AuditEntry {
                at: now,
                actor: Actor::System,
                action: "event.scheduled_start".into(),
                before,
                after: describe_event(Some(&e)),
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
    fx: &mut Vec<Effect>,
) {
    if let Some(mut e) = state.active_event.take() {
        let before = describe_event(Some(&e));
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
            after: describe_event(Some(&e)),
        }));
        state.last_event = Some(e);
    }
}

/// Moves one condition's hysteresis. `Some(true)` when it raised, `Some(false)` when it cleared.
fn hysteresis(
    state: &mut TenantState,
    ev: &Evaluation<'_>,
    now: DateTime<Utc>,
    rules: &Rules,
) -> Option<bool> {
    let (raise_after, clear_after) = rules.hysteresis[ev.direction.index()];
    let breached = match ev.health {
        Health::Breached => true,
        Health::Healthy => false,
        Health::Unknown => return None,
    };
    let idx = match state
        .conditions
        .binary_search_by(|c| (c.direction, c.name.as_str()).cmp(&(ev.direction, ev.name)))
    {
        Ok(i) => i,
        Err(i) => {
            if !breached {
                return None; // a healthy condition never seen needs no state
            }
            state.conditions.insert(
                i,
                ConditionState {
                    direction: ev.direction,
                    name: ev.name.to_string(),
                    active: false,
                    streak: 0,
                    since: None,
                },
            );
            i
        }
    };
    let c = &mut state.conditions[idx];
    if breached == c.active {
        c.streak = 0;
        return None;
    }
    c.streak = c.streak.saturating_add(1);
    let needed = if c.active { clear_after } else { raise_after };
    if c.streak < needed.max(1) {
        return None;
    }
    c.active = !c.active;
    c.streak = 0;
    c.since = Some(now);
    Some(c.active)
}

fn schedule_alerts(
    state: &mut TenantState,
    now: DateTime<Utc>,
    rules: &Rules,
    newly_raised: Vec<ConditionRef>,
    cleared_any: bool,
    owed_now: bool,
    fx: &mut Vec<Effect>,
) {
    let suspended = state.suspended_at(now);
    let holding = state.any_active();
    if holding {
        let incident = state.incident.get_or_insert(Incident {
            opened_at: now,
            alerts_sent: 0,
            last_alert_at: None,
            owed: false,
        });
        if !newly_raised.is_empty() || owed_now {
            incident.owed = true;
        }
        // Trouble is back: the raised alert replaces the pending all-clear.
        state.resolved_owed = false;
        if suspended {
            return;
        }
        let due_reminder = incident
            .last_alert_at
            .is_some_and(|t| now >= after(t, rules.repeat_interval));
        let kind = if incident.owed {
            AlertKind::Raised
        } else if due_reminder {
            AlertKind::Reminder
        } else {
            return;
        };
        incident.owed = false;
        incident.alerts_sent = incident.alerts_sent.saturating_add(1);
        incident.last_alert_at = Some(now);
        emit_alert(state, now, kind, newly_raised, fx);
    } else {
        // All clear. A resolved notice only makes sense if someone was told of the trouble.
        if let Some(incident) = state.incident.take()
            && cleared_any
            && incident.alerts_sent > 0
        {
            state.resolved_owed = true;
        }
        if state.resolved_owed && !suspended {
            state.resolved_owed = false;
            emit_alert(state, now, AlertKind::Resolved, Vec::new(), fx);
        }
    }
}

fn emit_alert(
    state: &mut TenantState,
    now: DateTime<Utc>,
    kind: AlertKind,
    newly_raised: Vec<ConditionRef>,
    fx: &mut Vec<Effect>,
) {
    let id = state.next_alert_id;
    state.next_alert_id = state.next_alert_id.saturating_add(1);
    state.last_alert_at = Some(now);
    let active = state
        .conditions
        .iter()
        .filter(|c| c.active)
        .map(|c| ConditionRef {
            direction: c.direction,
            name: c.name.clone(),
        })
        .collect::<Vec<_>>();
    // Kept in the state (not read from the outbox) so that the portal sees
    // alerts already delivered and removed from the queue.
    if state.recent_alerts.len() >= RECENT_ALERTS {
        let excess = state.recent_alerts.len() + 1 - RECENT_ALERTS;
        state.recent_alerts.drain(..excess);
    }
    state.recent_alerts.push(AlertRecord {
        id,
        kind,
        at: now,
        active: active.clone(),
    });
    fx.push(Effect::Alert(AlertDecision {
        id,
        kind,
        active,
        newly_raised,
    }));
}

fn validate_action(
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
fn perform(
    state: &mut TenantState,
    action: &Action,
    actor: &Actor,
    now: DateTime<Utc>,
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
            audit(fx, describe_event(None), describe_event(Some(&e)));
            state.active_event = Some(e);
        }
        Action::ExtendEvent { until } => {
            if let Some(e) = state.active_event.as_mut() {
                let before = describe_event(Some(e));
                e.end = *until;
                e.extensions = e.extensions.saturating_add(1);
                let after = describe_event(Some(e));
                audit(fx, before, after);
            }
        }
        Action::EndEvent => {
            end_active(
                state,
                now,
                EndReason::Stopped { by: actor.clone() },
                actor.clone(),
                action.name(),
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
                describe_event(state.scheduled_event.as_ref()),
                describe_event(Some(&e)),
            );
            state.scheduled_event = Some(e);
        }
        Action::CancelScheduledEvent => {
            if let Some(mut e) = state.scheduled_event.take() {
                let before = describe_event(Some(&e));
                e.status = EventStatus::Ended;
                e.end_reason = Some(EndReason::Cancelled { by: actor.clone() });
                audit(fx, before, "none".into());
            }
        }
        Action::Suspend { until } => {
            let before = describe_suspension(state.suspension.as_ref());
            let since = state.suspension.as_ref().map_or(now, |s| s.since);
            state.suspension = Some(Suspension {
                since,
                until: *until,
                by: actor.clone(),
            });
            audit(fx, before, describe_suspension(state.suspension.as_ref()));
        }
        Action::LiftSuspension => {
            let before = describe_suspension(state.suspension.as_ref());
            state.suspension = None;
            audit(fx, before, describe_suspension(None));
            return state.any_active();
        }
    }
    false
}

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;
