//! Conditions and alerts: hysteresis moves each condition, and the alert
//! schedule decides when a raised, reminder or resolved alert goes out
//! ([`AlertDecision`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{
    AlertRecord, ConditionState, Effect, Evaluation, Health, Incident, RECENT_ALERTS, Rules,
    TenantState,
};
use crate::{domain::Direction, duration::after};
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
/// Moves one condition's hysteresis. `Some(true)` when it raised, `Some(false)` when it cleared.
pub(super) fn hysteresis(
    state: &mut TenantState,
    ev: &Evaluation<'_>,
    now: DateTime<Utc>,
    rules: &Rules,
) -> Option<bool> {
    let (raise_after, clear_after) = if ev.debounced {
        (1, 1)
    } else {
        rules.hysteresis[ev.direction.index()]
    };
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

pub(super) fn schedule_alerts(
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
