//! Rendering an alert the state machine decided into one [`AlertMessage`]
//! per recipient, each with its signed portal link; and issuing the portal
//! links that come without an alert ([`Monitor::standing_link`]).
//!
//! Separate from evaluation because it is about presentation: readings as
//! text, what is failing (failures by kind, the last remote reply), the
//! active event, the link.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{Monitor, TenantRuntime};
use crate::{
    domain::{Direction, TenantId},
    duration::after,
    error::Result,
    link::{LinkClaims, StandingLink},
    machine::{Actor, AlertDecision, AlertKind, AuditEntry, TenantState},
    notify::{AlertMessage, ConditionReport, FailureSummary},
};

impl Monitor {
    /// Issues a standing portal link for `tenant` to `issued_to`, now (by
    /// the monitor's clock), valid for `valid_for` (`None`: 24 hours,
    /// [`LinkSigner::DEFAULT_STANDING_TTL`](crate::link::LinkSigner::DEFAULT_STANDING_TTL);
    /// at most 7 days, [`LinkSigner::MAX_STANDING_TTL`](crate::link::LinkSigner::MAX_STANDING_TTL)).
    ///
    /// For the embedder's admin console: the link opens the portal without
    /// an alert, so an administrator can start, plan, extend or end a
    /// continuity event and suspend alerts at any time (planned
    /// maintenance). `issued_to` names the person as the console knows them
    /// (1 to 64 bytes; it need not be a configured recipient); the audit
    /// trail records their actions as
    /// [`Actor::StandingLink`]. Anyone
    /// holding the link can act until it expires: hand it over as privately
    /// as an alert's link, and keep `valid_for` short.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use continuity_core::{config::{ChannelKind, Recipient, TenantConfig}, link::{LinkKey, LinkOrigin, LinkSigner}, testing::RecordingNotifier, ManualClock, Monitor, TenantId};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> continuity_core::Result<()> {
    /// # let now = "2026-03-02T08:00:00Z".parse().unwrap();
    /// # let monitor = Monitor::builder().in_memory_store().clock(Arc::new(ManualClock::new(now)))
    /// #     .link_signer(LinkSigner::new(LinkKey::new("k1", [7u8; 32])?))
    /// #     .portal_url("https://ops.example.net/continuity/")
    /// #     .notifier(Arc::new(RecordingNotifier::new(ChannelKind::Sms))).build()?;
    /// let acme = TenantId::new("acme")?;
    /// # monitor.register_tenant(TenantConfig::new(acme.clone(), vec![Recipient::new("ops", ChannelKind::Sms, "+15550100")])).await?;
    /// let link = monitor.standing_link(&acme, "jane@acme.example", None)?;
    /// assert!(link.url.starts_with("https://ops.example.net/continuity/"));
    /// let verified = monitor.verify_link(&link.token, Some(&acme), now)?;
    /// assert_eq!(verified.origin, LinkOrigin::Standing);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::UnknownTenant`](crate::Error::UnknownTenant) if `tenant` is
    /// not registered; [`Error::InvalidConfig`](crate::Error::InvalidConfig)
    /// (fields `link.issued_to`, `link.valid_for`) for an empty or too long
    /// `issued_to` or a validity out of range.
    pub fn standing_link(
        &self,
        tenant: &TenantId,
        issued_to: &str,
        valid_for: Option<Duration>,
    ) -> Result<StandingLink> {
        // A link for a tenant this monitor does not serve would only ever
        // be refused by the portal.
        self.runtime(tenant)?;
        let now = self.clock().now();
        let signer = &self.links.signer;
        let valid_for = valid_for.unwrap_or(crate::link::LinkSigner::DEFAULT_STANDING_TTL);
        let token = signer.sign_standing(tenant, issued_to, valid_for, now)?;
        // Read back rather than recomputed: the token holds whole seconds.
        let verified = signer.verify(&token, Some(tenant), now)?;
        Ok(StandingLink {
            url: format!("{}{}", self.links.portal_url, token),
            token,
            expires_at: verified.expires_at,
        })
    }

    /// The audit entry of an alert committed for `messages` (one per
    /// recipient): `alert.raised`, `alert.reminder` or `alert.resolved`, by
    /// the system, saying which conditions hold and who it is queued for.
    /// Written in the same commit as the outbox entries, so the trail shows
    /// exactly the alerts that were sent (delivery failures end in the dead
    /// letters, not here).
    pub(super) fn alert_audit_entry(
        alert: &AlertDecision,
        messages: &[AlertMessage],
        now: DateTime<Utc>,
    ) -> AuditEntry {
        let conditions = if alert.kind == AlertKind::Resolved || alert.active.is_empty() {
            "all clear".to_owned()
        } else {
            alert
                .active
                .iter()
                .map(|c| format!("{} {}", c.direction, c.name))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let recipients = if messages.is_empty() {
            "no recipient".to_owned()
        } else {
            messages
                .iter()
                .map(|m| m.recipient.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        AuditEntry {
            at: now,
            actor: Actor::System,
            action: format!("alert.{}", alert.kind.as_str()),
            before: String::new(),
            after: format!(
                "alert #{} {}: {conditions}; sent to {recipients}",
                alert.id,
                alert.kind.as_str()
            ),
        }
    }

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
        let zone = rt.config.time_zone;
        let event = state.active_event.as_ref().map(|e| {
            format!(
                "active since {} until {}",
                zone.format(e.start),
                zone.format(e.end)
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
                    time_zone: zone,
                })
            })
            .collect()
    }
}
