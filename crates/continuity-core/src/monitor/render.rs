//! Rendering an alert the state machine decided into one [`AlertMessage`]
//! per recipient, each with its signed portal link.
//!
//! Separate from evaluation because it is about presentation: readings as
//! text, what is failing (failures by kind, the last remote reply), the
//! active event, the link.

use chrono::{DateTime, Utc};

use super::{Monitor, TenantRuntime};
use crate::{
    domain::Direction,
    duration::after,
    error::Result,
    link::LinkClaims,
    machine::{AlertDecision, TenantState},
    notify::{AlertMessage, ConditionReport, FailureSummary},
};

impl Monitor {
    pub(super) fn render_alert(
        &self,
        rt: &TenantRuntime,
        state: &TenantState,
        alert: &AlertDecision,
        now: DateTime<Utc>,
    ) -> Result<Vec<AlertMessage>> {
        let conditions: Vec<ConditionReport> = alert
            .active
            .iter()
            .map(|c| {
                let dr = &rt.directions[c.direction.index()];
                let verdict = dr
                    .watches
                    .iter()
                    .find(|w| w.policy.get().condition() == c.name)
                    .and_then(|w| w.verdict.as_ref());
                let reading = verdict.map_or_else(
                    || format!("{} condition", c.name),
                    |v| v.reading.to_string(),
                );
                ConditionReport {
                    direction: c.direction,
                    name: c.name.clone(),
                    reading,
                    newly_raised: alert.newly_raised.contains(c),
                    no_data: verdict.is_some_and(|v| !v.breached && v.reading.is_unknown()),
                }
            })
            .collect();
        // What is failing, in the directions the alert is about (none for a
        // resolved notice, whose conditions are empty).
        let failing: Vec<FailureSummary> = Direction::ALL
            .into_iter()
            .filter(|d| conditions.iter().any(|c| c.direction == *d))
            .filter_map(|d| rt.directions[d.index()].failure_summary(d, now))
            .collect();
        let event = state.active_event.as_ref().map(|e| {
            format!(
                "active since {} until {}",
                e.start.format("%Y-%m-%d %H:%M UTC"),
                e.end.format("%Y-%m-%d %H:%M UTC")
            )
        });
        let expires = after(now, self.links.signer.ttl());
        rt.config
            .recipients
            .iter()
            .map(|r| {
                let token = self.links.signer.sign(
                    &LinkClaims {
                        tenant: rt.config.tenant.clone(),
                        alert_id: alert.id,
                        recipient: r.id.clone(),
                    },
                    now,
                )?;
                Ok(AlertMessage {
                    tenant: rt.config.tenant.clone(),
                    tenant_name: rt.config.name().to_string(),
                    alert_id: alert.id,
                    kind: alert.kind,
                    recipient: r.clone(),
                    idempotency_key: format!("{}/{}/{}", rt.config.tenant, alert.id, r.id),
                    created_at: now,
                    link: format!("{}{}", self.links.portal_url, token),
                    link_expires_at: expires,
                    conditions: conditions.clone(),
                    event: event.clone(),
                    failing: failing.clone(),
                })
            })
            .collect()
    }
}
