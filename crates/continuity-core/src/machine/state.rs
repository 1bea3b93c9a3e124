//! A tenant's durable state: [`TenantState`] and its parts (events,
//! suspension, conditions, incident, recent alerts), plus the [`Rules`] and
//! [`EventLimits`] a transition reads from the tenant's configuration.

use std::{fmt, time::Duration};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{AlertKind, ConditionRef};
use crate::{domain::Direction, duration::after, time_zone::TimeZone};
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
    /// An administrator through a standing link (issued by the embedder's
    /// admin console without an alert).
    StandingLink {
        /// Who the link was issued to, as the embedder named them.
        issued_to: String,
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
            Actor::StandingLink { issued_to, .. } => write!(f, "{issued_to} (standing link)"),
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
/// under a version; changed only through [`apply`](super::apply).
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
    /// The zone the audit trail's descriptions write their times in (with
    /// the zone's abbreviation and UTC offset,
    /// [`TimeZone::format_record`], so a record keeps its meaning if the
    /// zone is changed later).
    pub time_zone: TimeZone,
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
