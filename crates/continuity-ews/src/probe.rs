//! The EWS [`MailProbe`]: one instance serves both directions for many tenants.
//!
//! - **Outbound** (org server → gateway): `dispatch` sends a probe from the
//!   tenant's org mailbox (impersonated) to the gateway's probe address
//!   through the org's Exchange; the embedding gateway reports what it
//!   receives to the [`ArrivalRegistry`]; `check` looks there.
//! - **Inbound** (gateway → org server): `dispatch` hands the probe to a
//!   pluggable [`ProbeSender`] (the gateway itself, or SMTP); `check` finds
//!   it in the tenant's impersonated mailbox (Inbox and Junk E-mail) by its
//!   probe token, takes `DateTimeReceived`, and deletes what it found.
//!
//! Exchange stores a new X-header only from a mailbox's second message
//! carrying it on, so the first inbound probe to a mailbox provisions it and
//! is found by the subject probe token ([`ProbeCounters::header_missing`] counts
//! such finds).

use std::sync::Arc;

use async_trait::async_trait;
use chrono::TimeDelta;
pub use continuity_core::probe::{OutgoingProbe, ProbeCounters, ProbeSender};
use continuity_core::{
    Direction, Error as CoreError, TenantId,
    probe::{
        MailProbe, ProbeBase, ProbeRequest, ProbeStatus, ProbeTicket, required_mailbox,
        ticket_probe_token,
    },
};

use crate::{
    arrival::{ArrivalRegistry, wire_id},
    client::EwsClient,
    request::{Disposition, Folder, ItemId, ProbeMessage},
};

/// A tenant's EWS probing settings.
#[derive(Clone, Debug)]
pub struct EwsTenantProbe {
    /// The client of the service account serving this tenant (share one
    /// client among the tenants of one account).
    pub client: EwsClient,
    /// Org mailbox that sends outbound probes (impersonated).
    pub outbound_from: Option<String>,
    /// Org mailbox that receives inbound probes (impersonated).
    pub inbound_mailbox: Option<String>,
    /// Send outbound probes with `SendAndSaveCopy` (default: `SendOnly`);
    /// the copy is deleted from Sent Items once the probe has arrived.
    pub save_sent_copy: bool,
}

/// The EWS mail probe. See the module docs.
#[derive(Debug)]
pub struct EwsProbe {
    base: ProbeBase<EwsTenantProbe>,
}

impl EwsProbe {
    /// A probe sending outbound probes to `gateway_address`, finding their
    /// arrival in `arrivals`, and sending inbound probes with `sender`
    /// (`None`: inbound dispatch is refused as a configuration error).
    pub fn new(
        gateway_address: impl Into<String>,
        arrivals: Arc<ArrivalRegistry>,
        sender: Option<Arc<dyn ProbeSender>>,
    ) -> Self {
        EwsProbe {
            base: ProbeBase::new("EWS", gateway_address, arrivals, sender),
        }
    }

    /// Sets (or replaces) `tenant`'s settings.
    pub fn set_tenant(&self, tenant: TenantId, settings: EwsTenantProbe) {
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
}

#[async_trait]
impl MailProbe for EwsProbe {
    async fn dispatch(&self, request: &ProbeRequest) -> continuity_core::Result<ProbeTicket> {
        let t = self.base.tenant(&request.tenant)?;
        let probe_token = wire_id(&request.tenant, &request.probe_id);
        match request.direction {
            Direction::Outbound => {
                let from = required_mailbox(request, t.outbound_from.as_deref())?;
                let msg = ProbeMessage {
                    probe_id: &probe_token,
                    to: self.base.gateway_address(),
                    disposition: if t.save_sent_copy {
                        Disposition::SendAndSaveCopy
                    } else {
                        Disposition::SendOnly
                    },
                };
                t.client.send_probe(from, &msg).await?;
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
            Direction::Outbound => {
                let ProbeStatus::Arrived { at } = self.base.take_arrival(&probe_token) else {
                    return Ok(ProbeStatus::Pending);
                };
                let t = self.base.tenant(&request.tenant)?;
                if let (true, Some(from)) = (t.save_sent_copy, t.outbound_from.as_deref()) {
                    // The Sent Items copy is clean-up only: a failure does not undo the arrival.
                    let cleaned = async {
                        let found = t
                            .client
                            .find_probe(from, &probe_token, &[Folder::SentItems], None)
                            .await?;
                        let ids: Vec<ItemId> =
                            found.items.into_iter().filter_map(|i| i.id).collect();
                        t.client.delete_items(from, &ids).await
                    };
                    if let Err(e) = cleaned.await {
                        self.base.count_delete_failure();
                        tracing::warn!(tenant = %request.tenant, %probe_token, error = %e, "could not delete the Sent Items copy");
                    }
                }
                Ok(ProbeStatus::Arrived { at })
            }
            Direction::Inbound => {
                let t = self.base.tenant(&request.tenant)?;
                let mailbox = required_mailbox(request, t.inbound_mailbox.as_deref())?;
                // Bound the store scan: nothing older than the probe (minus clock skew) can be it.
                let after = request.sent_at.checked_sub_signed(TimeDelta::minutes(10));
                let found = t
                    .client
                    .find_probe(
                        mailbox,
                        &probe_token,
                        &[Folder::Inbox, Folder::JunkEmail],
                        after,
                    )
                    .await?;
                if found.items.is_empty() {
                    return Ok(ProbeStatus::Pending);
                }
                let mut ids: Vec<ItemId> =
                    found.items.iter().filter_map(|i| i.id.clone()).collect();
                let mut at = found.items.iter().filter_map(|i| i.received).min();
                if at.is_none() && !ids.is_empty() {
                    at = t
                        .client
                        .get_items(mailbox, &ids)
                        .await?
                        .iter()
                        .filter_map(|i| i.received)
                        .min();
                }
                if found.items.iter().any(|i| i.probe_header.is_none()) {
                    self.base.count_header_missing();
                    tracing::info!(tenant = %request.tenant, %probe_token, "probe found by subject; X-header missing (not provisioned yet, or stripped on the way)");
                }
                ids.dedup();
                if let Err(e) = t.client.delete_items(mailbox, &ids).await {
                    self.base.count_delete_failure();
                    tracing::warn!(tenant = %request.tenant, %probe_token, error = %e, "could not delete found probe");
                }
                match at {
                    Some(at) => Ok(ProbeStatus::Arrived { at }),
                    None => Err(CoreError::probe_transient(format!(
                        "probe {probe_token} found but the server gave no DateTimeReceived"
                    ))),
                }
            }
        }
    }

    /// `"ews"`: the `adapter` label of the probe metrics.
    fn kind(&self) -> &'static str {
        "ews"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_adapter_is_named_ews_in_metrics() {
        let probe = EwsProbe::new(
            "probe@gateway.example",
            Arc::new(ArrivalRegistry::default()),
            None,
        );
        assert_eq!(probe.kind(), "ews");
        // As the monitor reads it: through an `Arc` of the trait object.
        let shared: Arc<dyn MailProbe> = Arc::new(probe);
        assert_eq!(shared.kind_for(&TenantId::new("acme").unwrap()), "ews");
        assert_eq!(shared.kinds(), ["ews"]);
    }
}
