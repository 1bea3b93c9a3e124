//! The Microsoft Graph [`MailProbe`]: one instance serves both directions
//! for many tenants, split like `continuity-ews`'s probe.
//!
//! - **Outbound** (Exchange Online → gateway): `dispatch` sends a probe with
//!   `sendMail` from the tenant's org mailbox to the gateway's probe address
//!   (`saveToSentItems: false`, so nothing is left to clean up); the
//!   embedding gateway reports what it receives to the [`ArrivalRegistry`];
//!   `check` looks there.
//! - **Inbound** (gateway → Exchange Online): `dispatch` hands the probe to
//!   a pluggable [`ProbeSender`] (the gateway itself, or `continuity-ews`'s
//!   SMTP sender); `check` finds it in the tenant's mailbox (Inbox, then
//!   Junk Email) by its header's named property or its subject probe token, takes
//!   the earliest `receivedDateTime`, and deletes what it found.
//!
//! Exchange maps a new X-header to a named property from a mailbox's second
//! message carrying it on, so the first inbound probe to a mailbox is found
//! by its subject ([`ProbeCounters::header_missing`] counts such finds).

use std::sync::Arc;

use async_trait::async_trait;
use chrono::TimeDelta;
use continuity_core::arrival::{ArrivalRegistry, PROBE_HEADER, probe_subject, wire_id};
use continuity_core::probe::{
    MailProbe, ProbeBase, ProbeCounters, ProbeRequest, ProbeSender, ProbeStatus, ProbeTicket,
    required_mailbox, ticket_probe_token,
};
use continuity_core::{Direction, Error as CoreError, TenantId};

use crate::connection_check::{GraphConnectionInfo, GraphConnectionProblem, MailboxUse};
use crate::error::GraphError;
use crate::graph_client::{GraphClient, MailMessage};
use crate::odata::MailFolder;

/// The body of every probe message.
const PROBE_BODY: &str = "Continuity probe message; safe to delete.";

/// Received times are searched from this long before the probe was sent
/// (clock skew between this host and Exchange Online).
const SEARCH_SKEW: TimeDelta = TimeDelta::minutes(10);

/// A tenant's Graph probing settings.
#[derive(Clone, Debug)]
pub struct GraphTenantProbe {
    /// The client of the tenant's app registration.
    pub client: GraphClient,
    /// Org mailbox that sends outbound probes.
    pub outbound_from: Option<String>,
    /// Org mailbox that receives inbound probes.
    pub inbound_mailbox: Option<String>,
}

/// The Graph mail probe. See the module docs.
#[derive(Debug)]
pub struct GraphProbe {
    base: ProbeBase<GraphTenantProbe>,
}

impl GraphProbe {
    /// A probe sending outbound probes to `gateway_address`, finding their
    /// arrival in `arrivals`, and sending inbound probes with `sender`
    /// (`None`: inbound dispatch is refused as a configuration error).
    pub fn new(
        gateway_address: impl Into<String>,
        arrivals: Arc<ArrivalRegistry>,
        sender: Option<Arc<dyn ProbeSender>>,
    ) -> Self {
        GraphProbe {
            base: ProbeBase::new("Graph", gateway_address, arrivals, sender),
        }
    }

    /// Sets (or replaces) `tenant`'s settings.
    pub fn set_tenant(&self, tenant: TenantId, settings: GraphTenantProbe) {
        self.base.set_tenant(tenant, settings);
    }

    /// Removes `tenant`.
    pub fn remove_tenant(&self, tenant: &TenantId) {
        self.base.remove_tenant(tenant);
    }

    /// The counters so far.
    pub fn counters(&self) -> ProbeCounters {
        self.base.counters()
    }

    /// Runs the connection check for each mailbox `tenant` probes with (the
    /// sender for [`MailboxUse::SendsProbes`], the receiver for
    /// [`MailboxUse::ReceivesProbes`]; one check if they are the same).
    pub async fn check_tenant(
        &self,
        tenant: &TenantId,
    ) -> Result<Vec<GraphConnectionInfo>, GraphConnectionProblem> {
        let not_configured = |reason: String| {
            GraphConnectionProblem::NotConfigured(GraphError::InvalidConfig {
                field: "tenant",
                reason,
            })
        };
        let t = self
            .base
            .tenant(tenant)
            .map_err(|e| not_configured(e.to_string()))?;
        let uses = match (t.outbound_from.as_deref(), t.inbound_mailbox.as_deref()) {
            (Some(a), Some(b)) if a.eq_ignore_ascii_case(b) => {
                vec![(a, MailboxUse::SendsAndReceivesProbes)]
            }
            (a, b) => a
                .map(|a| (a, MailboxUse::SendsProbes))
                .into_iter()
                .chain(b.map(|b| (b, MailboxUse::ReceivesProbes)))
                .collect(),
        };
        if uses.is_empty() {
            return Err(not_configured(format!("{tenant}: no probe mailbox")));
        }
        let mut infos = Vec::with_capacity(uses.len());
        for (mailbox, usage) in uses {
            infos.push(t.client.check_connection(mailbox, usage).await?);
        }
        Ok(infos)
    }

    async fn find_inbound(
        &self,
        request: &ProbeRequest,
        t: &GraphTenantProbe,
        probe_token: &str,
    ) -> continuity_core::Result<ProbeStatus> {
        let mailbox = required_mailbox(request, t.inbound_mailbox.as_deref())?;
        let after = request
            .sent_at
            .checked_sub_signed(SEARCH_SKEW)
            .unwrap_or(request.sent_at);
        let found = t
            .client
            .find_probe(
                mailbox,
                PROBE_HEADER,
                probe_token,
                &[MailFolder::Inbox, MailFolder::JunkEmail],
                after,
            )
            .await?;
        if found.is_empty() {
            return Ok(ProbeStatus::Pending);
        }
        if found.iter().any(|m| !m.by_header) {
            self.base.count_header_missing();
            tracing::info!(tenant = %request.tenant, %probe_token, "probe found by subject; the header's named property did not match (not mapped yet, or stripped on the way)");
        }
        for m in &found {
            // Clean-up only: a failure does not undo the arrival.
            if let Err(e) = t.client.delete_message(mailbox, &m.id).await {
                self.base.count_delete_failure();
                tracing::warn!(tenant = %request.tenant, %probe_token, error = %e, "could not delete a found probe");
            }
        }
        match found.iter().filter_map(|m| m.received).min() {
            Some(at) => Ok(ProbeStatus::Arrived { at }),
            None => Err(CoreError::probe_transient(format!(
                "probe {probe_token} found but Graph gave no receivedDateTime"
            ))),
        }
    }
}

#[async_trait]
impl MailProbe for GraphProbe {
    async fn dispatch(&self, request: &ProbeRequest) -> continuity_core::Result<ProbeTicket> {
        let t = self.base.tenant(&request.tenant)?;
        let probe_token = wire_id(&request.tenant, &request.probe_id);
        match request.direction {
            Direction::Outbound => {
                let from = required_mailbox(request, t.outbound_from.as_deref())?;
                let subject = probe_subject(&probe_token);
                t.client
                    .send_mail(
                        from,
                        &MailMessage {
                            to: self.base.gateway_address(),
                            subject: &subject,
                            body: PROBE_BODY,
                            headers: &[(PROBE_HEADER, &probe_token)],
                            save_to_sent_items: false,
                        },
                    )
                    .await?;
            }
            Direction::Inbound => {
                let mailbox = required_mailbox(request, t.inbound_mailbox.as_deref())?;
                self.base
                    .send_inbound(request, mailbox, &probe_token)
                    .await?;
            }
        }
        Ok(ProbeTicket::new(probe_token))
    }

    async fn check(
        &self,
        request: &ProbeRequest,
        ticket: &ProbeTicket,
    ) -> continuity_core::Result<ProbeStatus> {
        let probe_token = ticket_probe_token(request, ticket);
        match request.direction {
            Direction::Outbound => Ok(self.base.take_arrival(&probe_token)),
            Direction::Inbound => {
                let t = self.base.tenant(&request.tenant)?;
                self.find_inbound(request, &t, &probe_token).await
            }
        }
    }

    /// `"graph"`: the `adapter` label of the probe metrics.
    fn kind(&self) -> &'static str {
        "graph"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_adapter_is_named_graph_in_metrics() {
        let probe = GraphProbe::new(
            "probe@gateway.example",
            Arc::new(ArrivalRegistry::default()),
            None,
        );
        assert_eq!(probe.kind(), "graph");
        // As the monitor reads it: through an `Arc` of the trait object.
        let shared: Arc<dyn MailProbe> = Arc::new(probe);
        assert_eq!(shared.kind_for(&TenantId::new("acme").unwrap()), "graph");
        assert_eq!(shared.kinds(), ["graph"]);
    }
}
