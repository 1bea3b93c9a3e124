//! The EWS [`MailProbe`]: one instance serves both directions for many tenants.
//!
//! - **Outbound** (org server → gateway): `dispatch` sends a probe from the
//!   tenant's org mailbox (impersonated) to the gateway's probe address
//!   through the org's Exchange; the embedding gateway reports what it
//!   receives to the [`ArrivalRegistry`]; `check` looks there.
//! - **Inbound** (gateway → org server): `dispatch` hands the probe to a
//!   pluggable [`ProbeSender`] (the gateway itself, or SMTP); `check` finds
//!   it in the tenant's impersonated mailbox (Inbox and Junk E-mail) by its
//!   token, takes `DateTimeReceived`, and deletes what it found.
//!
//! Exchange stores a new X-header only from a mailbox's second message
//! carrying it on, so the first inbound probe to a mailbox provisions it and
//! is found by the subject token ([`ProbeCounters::header_missing`] counts
//! such finds).

use std::{
    collections::HashMap,
    fmt,
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
};

use async_trait::async_trait;
use chrono::TimeDelta;
use continuity_core::{
    Direction, Error as CoreError, TenantId,
    probe::{MailProbe, ProbeRequest, ProbeStatus, ProbeTicket},
};

use crate::{
    arrival::{ArrivalRegistry, wire_id},
    client::EwsClient,
    request::{Disposition, Folder, ItemId, PROBE_HEADER, ProbeMessage, probe_subject},
};

/// An inbound probe message for a [`ProbeSender`] to deliver.
#[derive(Clone, Copy, Debug)]
pub struct OutgoingProbe<'a> {
    /// The tenant.
    pub tenant: &'a TenantId,
    /// The org mailbox to deliver to.
    pub to: &'a str,
    /// The subject (carries the token).
    pub subject: &'a str,
    /// The header to set ([`PROBE_HEADER`]).
    pub header_name: &'static str,
    /// Its value (the token).
    pub header_value: &'a str,
}

/// Sends inbound probes from the gateway side towards the org's server.
#[async_trait]
pub trait ProbeSender: Send + Sync + fmt::Debug {
    /// Sends `probe`. A retryable error means the gateway side could not
    /// send; it counts as a failure of the inbound direction. A sender that
    /// is only being rate-limited returns
    /// [`Error::ProbeThrottled`](continuity_core::Error::ProbeThrottled),
    /// which is reported but not counted.
    async fn send(&self, probe: &OutgoingProbe<'_>) -> continuity_core::Result<()>;
}

/// A tenant's EWS probing settings.
#[derive(Clone, Debug)]
pub struct TenantProbe {
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

/// Counters of what the probe saw (for metrics and the admin's view).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProbeCounters {
    /// Inbound probes found by their subject while the X-header was missing
    /// (mailbox not provisioned yet, or a hop strips X-headers).
    pub header_missing: u64,
    /// Found probes whose deletion failed (they stay in the mailbox).
    pub delete_failures: u64,
}

/// The EWS mail probe. See the module docs.
#[derive(Debug)]
pub struct EwsProbe {
    gateway_address: String,
    arrivals: Arc<ArrivalRegistry>,
    sender: Option<Arc<dyn ProbeSender>>,
    tenants: RwLock<HashMap<TenantId, Arc<TenantProbe>>>,
    header_missing: AtomicU64,
    delete_failures: AtomicU64,
}

fn config_error(message: String) -> CoreError {
    CoreError::Probe {
        retryable: false,
        code: None,
        message,
    }
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
            gateway_address: gateway_address.into(),
            arrivals,
            sender,
            tenants: RwLock::new(HashMap::new()),
            header_missing: AtomicU64::new(0),
            delete_failures: AtomicU64::new(0),
        }
    }

    /// Sets (or replaces) `tenant`'s settings.
    pub fn set_tenant(&self, tenant: TenantId, settings: TenantProbe) {
        self.tenants
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(tenant, Arc::new(settings));
    }

    /// Removes `tenant`.
    pub fn remove_tenant(&self, tenant: &TenantId) {
        self.tenants
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(tenant);
    }

    fn tenant(&self, tenant: &TenantId) -> continuity_core::Result<Arc<TenantProbe>> {
        self.tenants
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(tenant)
            .cloned()
            .ok_or_else(|| config_error(format!("tenant {tenant} has no EWS probe settings")))
    }

    /// The counters so far.
    pub fn counters(&self) -> ProbeCounters {
        ProbeCounters {
            header_missing: self.header_missing.load(Ordering::Relaxed),
            delete_failures: self.delete_failures.load(Ordering::Relaxed),
        }
    }
}

#[async_trait]
impl MailProbe for EwsProbe {
    async fn dispatch(&self, request: &ProbeRequest) -> continuity_core::Result<ProbeTicket> {
        let t = self.tenant(&request.tenant)?;
        let token = wire_id(&request.tenant, &request.probe_id);
        match request.direction {
            Direction::Outbound => {
                let from = t.outbound_from.as_deref().ok_or_else(|| {
                    config_error(format!(
                        "tenant {}: no outbound sender mailbox",
                        request.tenant
                    ))
                })?;
                let msg = ProbeMessage {
                    probe_id: &token,
                    to: &self.gateway_address,
                    disposition: if t.save_sent_copy {
                        Disposition::SendAndSaveCopy
                    } else {
                        Disposition::SendOnly
                    },
                };
                t.client.send_probe(from, &msg).await?;
            }
            Direction::Inbound => {
                let mailbox = t.inbound_mailbox.as_deref().ok_or_else(|| {
                    config_error(format!("tenant {}: no inbound mailbox", request.tenant))
                })?;
                let sender = self
                    .sender
                    .as_ref()
                    .ok_or_else(|| config_error("no inbound probe sender configured".into()))?;
                let subject = probe_subject(&token);
                sender
                    .send(&OutgoingProbe {
                        tenant: &request.tenant,
                        to: mailbox,
                        subject: &subject,
                        header_name: PROBE_HEADER,
                        header_value: &token,
                    })
                    .await?;
            }
        }
        Ok(ProbeTicket::new(token))
    }

    async fn check(
        &self,
        request: &ProbeRequest,
        ticket: &ProbeTicket,
    ) -> continuity_core::Result<ProbeStatus> {
        let token = if ticket.as_str().is_empty() {
            wire_id(&request.tenant, &request.probe_id)
        } else {
            ticket.as_str().to_owned()
        };
        match request.direction {
            Direction::Outbound => {
                let Some(at) = self.arrivals.take(&token) else {
                    return Ok(ProbeStatus::Pending);
                };
                let t = self.tenant(&request.tenant)?;
                if let (true, Some(from)) = (t.save_sent_copy, t.outbound_from.as_deref()) {
                    // The Sent Items copy is clean-up only: a failure does not undo the arrival.
                    let cleaned = async {
                        let found = t
                            .client
                            .find_probe(from, &token, &[Folder::SentItems], None)
                            .await?;
                        let ids: Vec<ItemId> =
                            found.items.into_iter().filter_map(|i| i.id).collect();
                        t.client.delete_items(from, &ids).await
                    };
                    if let Err(e) = cleaned.await {
                        self.delete_failures.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(tenant = %request.tenant, %token, error = %e, "could not delete the Sent Items copy");
                    }
                }
                Ok(ProbeStatus::Arrived { at })
            }
            Direction::Inbound => {
                let t = self.tenant(&request.tenant)?;
                let mailbox = t.inbound_mailbox.as_deref().ok_or_else(|| {
                    config_error(format!("tenant {}: no inbound mailbox", request.tenant))
                })?;
                // Bound the store scan: nothing older than the probe (minus clock skew) can be it.
                let after = request.sent_at.checked_sub_signed(TimeDelta::minutes(10));
                let found = t
                    .client
                    .find_probe(mailbox, &token, &[Folder::Inbox, Folder::JunkEmail], after)
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
                    self.header_missing.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(tenant = %request.tenant, %token, "probe found by subject; X-header missing (not provisioned yet, or stripped on the way)");
                }
                ids.dedup();
                if let Err(e) = t.client.delete_items(mailbox, &ids).await {
                    self.delete_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(tenant = %request.tenant, %token, error = %e, "could not delete found probe");
                }
                match at {
                    Some(at) => Ok(ProbeStatus::Arrived { at }),
                    None => Err(CoreError::Probe {
                        retryable: true,
                        code: None,
                        message: format!(
                            "probe {token} found but the server gave no DateTimeReceived"
                        ),
                    }),
                }
            }
        }
    }
}
