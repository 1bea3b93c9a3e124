//! The continuity portal's API: what an administrator sees when opening a
//! link, and the actions taken through it, as typed outcomes a web front end
//! (`continuity-portal`) renders.
//!
//! [`open`] verifies a link and returns a [`PortalView`]; [`act`] performs a
//! [`PortalAction`] through a link and answers with a [`PortalOutcome`]:
//! done (with the new view), refused by the tenant's limits (with the reason),
//! a conflict (someone else changed the state first: the fresh view), or the
//! link refused (expired, tampered, another tenant's, a retired key's).
//!
//! [`act`] is the one way to act through a link; an actor without one (an
//! operator's console) calls [`Monitor::act`] instead, or issues a standing
//! link ([`Monitor::standing_link`]) that opens the portal without an alert.
//!
//! ```
//! use std::sync::Arc;
//! use continuity_core::{
//!     config::{ChannelKind, Recipient, TenantConfig},
//!     link::{LinkClaims, LinkKey, LinkSigner},
//!     portal::{self, PortalAction, PortalOutcome, Until, DURATION_PRESETS},
//!     testing::RecordingNotifier,
//!     ManualClock, Monitor, TenantId,
//! };
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> continuity_core::Result<()> {
//! let now = "2026-03-02T08:00:00Z".parse().unwrap();
//! let monitor = Monitor::builder()
//!     .in_memory_store()
//!     .clock(Arc::new(ManualClock::new(now)))
//!     .link_signer(LinkSigner::new(LinkKey::new("k1", [7u8; 32])?))
//!     .portal_url("https://continuity.example.net/c/")
//!     .notifier(Arc::new(RecordingNotifier::new(ChannelKind::Sms)))
//!     .build()?;
//! let acme = TenantId::new("acme")?;
//! monitor
//!     .register_tenant(TenantConfig::new(acme.clone(), vec![Recipient::new("ops", ChannelKind::Sms, "+15550100")]))
//!     .await?;
//! let claims = LinkClaims { tenant: acme, alert_id: 1, recipient: "ops".into() };
//! let link = monitor.link_signer().sign(&claims, now)?;
//!
//! let PortalOutcome::Done(view) = portal::open(&monitor, &link, None, now).await? else { panic!() };
//! assert!(view.active_event.is_none());
//! let four_hours = DURATION_PRESETS[1].duration;
//! let action = PortalAction::StartEvent(Until::For(four_hours));
//! let PortalOutcome::Done(view) = portal::act(&monitor, &link, action, Some(view.version), now).await? else { panic!() };
//! assert!(view.active_event.is_some());
//! # Ok(()) }
//! ```

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::{
    Direction, Error, Monitor, Result, TenantId,
    link::{LinkOrigin, LinkRejection, VerifiedLink},
    machine::{Action, Actor, AlertRecord, ContinuityEvent, Incident, Rejection, Suspension},
    monitor::DirectionHistory,
    notify::FailureSummary,
    policy::Reading,
    store::AuditRecord,
    time_zone::TimeZone,
};

/// A duration offered as a one-click choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct DurationPreset {
    /// What the button says: `1 h`.
    pub label: &'static str,
    /// The duration (in JSON as in configuration: `"1h"`).
    #[serde(with = "crate::duration::serde_duration")]
    pub duration: Duration,
}

/// The durations offered for events, extensions and suspensions: 1 h, 4 h, 24 h.
pub const DURATION_PRESETS: &[DurationPreset] = &[
    DurationPreset {
        label: "1 h",
        duration: Duration::from_secs(3_600),
    },
    DurationPreset {
        label: "4 h",
        duration: Duration::from_secs(4 * 3_600),
    },
    DurationPreset {
        label: "24 h",
        duration: Duration::from_secs(24 * 3_600),
    },
];

/// One condition of one direction as an administrator reads it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConditionView {
    /// The direction.
    pub direction: Direction,
    /// The condition's name (`latency`, `failures`, `leaky`).
    pub name: String,
    /// Whether the condition is raised (an alert is, or was, out for it).
    pub raised: bool,
    /// Whether the latest reading is over its threshold.
    pub breached: bool,
    /// Whether the latest reading has too little data for a verdict (no
    /// deliveries, fewer than the policy's minimum samples): neither healthy
    /// nor breached, and shown as "no data".
    pub no_data: bool,
    /// The figures, e.g. `outbound p95 latency 42 min, threshold 30 min, 18
    /// samples in the last 1 h`.
    pub summary: String,
    /// The figures, typed.
    pub reading: Reading,
}

/// What the portal shows for a link.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PortalView {
    /// The tenant.
    pub tenant: TenantId,
    /// The organisation's name as configured (display name, else the tenant id).
    pub organisation: String,
    /// The state's version: send it back with an action to be told of a
    /// concurrent change instead of acting on a state not seen.
    pub version: u64,
    /// Each direction's conditions, inbound first.
    pub conditions: Vec<ConditionView>,
    /// What is failing, per direction with failures in its window or a
    /// remote reply given inside it: failures by kind and the last reply
    /// (remote text: a page must escape it).
    pub failing: Vec<FailureSummary>,
    /// The current period of trouble and its alerts (how many, the last
    /// when), if one is open.
    pub incident: Option<Incident>,
    /// When the last alert of any kind (raised, reminder, resolved) went out.
    pub last_alert_at: Option<DateTime<Utc>>,
    /// The last alerts, newest first (at most
    /// [`RECENT_ALERTS`](crate::machine::RECENT_ALERTS)).
    pub recent_alerts: Vec<AlertRecord>,
    /// The latest entries of the tenant's audit trail, newest first (at
    /// most [`RECENT_AUDIT`]): administrators' actions, the system's (an
    /// event running out) and the alerts sent and resolved. Empty while the
    /// store cannot be reached.
    pub audit: Vec<AuditRecord>,
    /// The running continuity event.
    pub active_event: Option<ContinuityEvent>,
    /// The planned continuity event.
    pub scheduled_event: Option<ContinuityEvent>,
    /// The notification suspension, if one is in force at `now`.
    pub suspension: Option<Suspension>,
    /// The recipient the link was sent to (recipient id); for a standing
    /// link, who it was issued to.
    pub recipient: String,
    /// The recipient's name, if configured.
    pub recipient_name: Option<String>,
    /// The alert the link came with; 0 for a standing link (see
    /// `link_origin`).
    pub alert_id: u64,
    /// Whether the link came with an alert or is a standing link.
    pub link_origin: LinkOrigin,
    /// When the link expires.
    pub expires_at: DateTime<Utc>,
    /// The time the view was taken at.
    pub now: DateTime<Utc>,
    /// Each direction's last hour, a window bucket at a time, against its
    /// thresholds (inbound first): what the status page's charts draw.
    pub history: Vec<DirectionHistory>,
    /// The tenant's time zone
    /// ([`TenantConfig::time_zone`](crate::config::TenantConfig::time_zone)):
    /// pages write times in it and read the times typed into forms in it.
    /// The times of this view are UTC.
    pub time_zone: TimeZone,
}

/// How many of the latest audit records a [`PortalView`] carries.
pub const RECENT_AUDIT: usize = 20;

/// An end given as a duration from a reference or as a point in time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Until {
    /// A duration: from now, or for an extension from the current end.
    For(#[serde(with = "crate::duration::serde_duration")] Duration),
    /// A point in time.
    At(DateTime<Utc>),
}

/// What an administrator asks for in the portal, with durations as the
/// presets give them; [`act`] turns it into a [`machine::Action`](Action).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", content = "until", rename_all = "snake_case")]
pub enum PortalAction {
    /// Start an event now, ending after the duration or at the time.
    StartEvent(Until),
    /// Extend the running event by the duration (from its current end) or to the time.
    ExtendEvent(Until),
    /// End the running event now.
    EndEvent,
    /// Plan an event from `start` for the duration or to the time.
    ScheduleEvent {
        /// When it starts.
        start: DateTime<Utc>,
        /// When it ends.
        end: Until,
    },
    /// Cancel the planned event.
    CancelScheduledEvent,
    /// Suspend notifications for the duration or until the time.
    Suspend(Until),
    /// Lift the suspension now.
    LiftSuspension,
}

/// What came of opening a link or acting through it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
#[non_exhaustive]
pub enum PortalOutcome {
    /// The link opened, or the action was applied: the (new) view.
    Done(Box<PortalView>),
    /// The action is not allowed (limits, or not in this state): why, and the
    /// unchanged view.
    Refused {
        /// Why.
        reason: Rejection,
        /// The state as it is.
        view: Box<PortalView>,
    },
    /// The action asked for a time the calendar cannot hold (a duration of
    /// centuries from now): nothing was done. An extension that long is
    /// refused instead ([`Rejection::TooLong`]): it counts from the event's
    /// end, which only the state it is applied to knows.
    OutOfRange {
        /// The unchanged view.
        view: Box<PortalView>,
    },
    /// The state changed since the version the administrator saw (someone
    /// else acted first): nothing was done; here it is now.
    Conflict {
        /// The fresh view.
        view: Box<PortalView>,
    },
    /// The link does not open the portal; its `Display` says why and what to do
    /// (for an expired link: a fresh one comes with the next alert).
    LinkRefused {
        /// Why.
        reason: LinkRejection,
    },
}

/// Verifies `link` (optionally for `tenant`) at `now` and returns the view.
///
/// The state shown is the store's (see [`Monitor::status_current`]): with
/// several instances, another one may have moved it on since this one last
/// loaded it. The readings are this instance's.
///
/// # Errors
///
/// Only for failures that are not the link's or the administrator's: an
/// unknown tenant ([`Error::UnknownTenant`]), a store error other than an
/// unreachable store (which shows the state known to this instance).
/// A refused link is [`PortalOutcome::LinkRefused`].
pub async fn open(
    monitor: &Monitor,
    link: &str,
    tenant: Option<&TenantId>,
    now: DateTime<Utc>,
) -> Result<PortalOutcome> {
    match monitor.verify_link(link, tenant, now) {
        Ok(verified) => Ok(PortalOutcome::Done(Box::new(
            view(monitor, &verified, now).await?,
        ))),
        Err(Error::Link { reason }) => Ok(PortalOutcome::LinkRefused { reason }),
        Err(e) => Err(e),
    }
}

/// Performs `action` through `link` at `now`, as its recipient.
///
/// With `expected_version` (the [`PortalView::version`] the administrator
/// saw), a state changed in between gives [`PortalOutcome::Conflict`] rather
/// than an action on a state nobody looked at. The action is applied with the
/// store's compare-and-swap, calls the embedder's hook and is audited with the
/// link's recipient, alert and key as the actor ([`Actor::Link`]), or for a
/// standing link with whom it was issued to and its key
/// ([`Actor::StandingLink`]).
///
/// # Errors
///
/// As [`open`], and a store that cannot be reached while acting (the action
/// is then not applied).
pub async fn act(
    monitor: &Monitor,
    link: &str,
    action: PortalAction,
    expected_version: Option<u64>,
    now: DateTime<Utc>,
) -> Result<PortalOutcome> {
    let verified = match monitor.verify_link(link, None, now) {
        Ok(verified) => verified,
        Err(Error::Link { reason }) => return Ok(PortalOutcome::LinkRefused { reason }),
        Err(e) => return Err(e),
    };
    let tenant = verified.claims.tenant.clone();
    let Some(action) = resolve(action, now) else {
        return Ok(PortalOutcome::OutOfRange {
            view: Box::new(view(monitor, &verified, now).await?),
        });
    };
    let actor = match verified.origin {
        LinkOrigin::Alert => Actor::Link {
            recipient: verified.claims.recipient.clone(),
            alert_id: verified.claims.alert_id,
            key_id: verified.key_id.clone(),
            issued_at: verified.issued_at,
        },
        LinkOrigin::Standing => Actor::StandingLink {
            issued_to: verified.claims.recipient.clone(),
            key_id: verified.key_id.clone(),
            issued_at: verified.issued_at,
        },
    };
    match monitor
        .act(&tenant, actor, action, expected_version, now)
        .await
    {
        Ok(_) => Ok(PortalOutcome::Done(Box::new(
            view(monitor, &verified, now).await?,
        ))),
        Err(Error::InvalidTransition { reason }) => Ok(PortalOutcome::Refused {
            reason,
            view: Box::new(view(monitor, &verified, now).await?),
        }),
        Err(Error::Conflict { .. }) => Ok(PortalOutcome::Conflict {
            view: Box::new(view(monitor, &verified, now).await?),
        }),
        Err(e) => Err(e),
    }
}

/// The machine action for `action` at `now`; `None` when a time falls
/// outside the calendar. An extension by a duration stays relative: the
/// machine counts it from the end of the event in the very state it is
/// applied to, in the same compare-and-swap.
fn resolve(action: PortalAction, now: DateTime<Utc>) -> Option<Action> {
    let after = |from: DateTime<Utc>, until: Until| match until {
        Until::At(t) => Some(t),
        Until::For(d) => from.checked_add_signed(TimeDelta::from_std(d).ok()?),
    };
    Some(match action {
        PortalAction::StartEvent(u) => Action::StartEvent {
            until: after(now, u)?,
        },
        PortalAction::ExtendEvent(Until::For(by)) => Action::ExtendEventBy { by },
        PortalAction::ExtendEvent(Until::At(until)) => Action::ExtendEvent { until },
        PortalAction::EndEvent => Action::EndEvent,
        PortalAction::ScheduleEvent { start, end } => Action::ScheduleEvent {
            start,
            end: after(start, end)?,
        },
        PortalAction::CancelScheduledEvent => Action::CancelScheduledEvent,
        PortalAction::Suspend(u) => Action::Suspend {
            until: after(now, u)?,
        },
        PortalAction::LiftSuspension => Action::LiftSuspension,
    })
}

async fn view(monitor: &Monitor, link: &VerifiedLink, now: DateTime<Utc>) -> Result<PortalView> {
    let status = monitor.status_current(&link.claims.tenant).await?;
    let config = monitor.tenant_config(&link.claims.tenant)?;
    let audit = match monitor
        .store()
        .recent_audit(&link.claims.tenant, RECENT_AUDIT)
        .await
    {
        Ok(audit) => audit,
        // Like the state (see `status_current`), the page still opens while
        // the store is down, so an administrator can act once it is back.
        Err(e) if e.is_retryable() => {
            tracing::warn!(tenant = %link.claims.tenant, error = %e, "audit trail not read");
            Vec::new()
        }
        Err(e) => return Err(e),
    };
    let state = status.state.state;
    let failing = status.failing;
    let history = status.history;
    let conditions = status
        .readings
        .into_iter()
        .map(|(direction, name, verdict)| ConditionView {
            raised: state.condition(direction, &name).is_some_and(|c| c.active),
            breached: verdict.breached,
            no_data: !verdict.breached && verdict.reading.is_unknown(),
            summary: format!("{direction} {}", verdict.reading),
            direction,
            name,
            reading: verdict.reading,
        })
        .collect();
    Ok(PortalView {
        tenant: link.claims.tenant.clone(),
        organisation: config.name().to_owned(),
        version: status.state.version,
        conditions,
        failing,
        suspension: state.suspension.clone().filter(|s| s.until > now),
        incident: state.incident.clone(),
        last_alert_at: state.last_alert_at,
        recent_alerts: state.recent_alerts.iter().rev().cloned().collect(),
        audit,
        active_event: state.active_event,
        scheduled_event: state.scheduled_event,
        recipient: link.claims.recipient.clone(),
        recipient_name: config
            .recipients
            .iter()
            // A standing link's holder is not looked up: a configured
            // recipient's name would misattribute it.
            .filter(|_| link.origin == LinkOrigin::Alert)
            .find(|r| r.id == link.claims.recipient)
            .and_then(|r| r.name.clone()),
        alert_id: link.claims.alert_id,
        link_origin: link.origin,
        expires_at: link.expires_at,
        now,
        history,
        time_zone: config.time_zone,
    })
}

#[cfg(test)]
mod tests;
