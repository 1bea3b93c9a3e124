//! The `MailProbe` trait: active test messages, in two phases.
//!
//! A probe is *dispatched* (a test message leaves) and later *checked* (has it
//! arrived?). Splitting the two means no task waits minutes on the network:
//! the [`Monitor`](crate::Monitor) keeps the [`ProbeTicket`] in the store as a
//! pending probe and checks it on later ticks until it arrives or its
//! deadline passes (then it counts as a lost-probe failure).

use std::{
    collections::HashMap,
    fmt,
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{
    arrival::{ArrivalRegistry, PROBE_HEADER, probe_subject, wire_id},
    domain::{Direction, TenantId},
    error::{Error, Result},
};

/// What a probe is asked to send or look for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeRequest {
    /// The tenant.
    pub tenant: TenantId,
    /// Which way the test message travels.
    pub direction: Direction,
    /// An id unique per tenant, to be carried in the message (subject token and header).
    pub probe_id: Arc<str>,
    /// When the monitor dispatched it.
    pub sent_at: DateTime<Utc>,
}

/// What a probe needs to find its message later (adapter-defined, stored as
/// text). Cheap to clone: the store hands it out with every check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeTicket(pub Arc<str>);

impl ProbeTicket {
    /// A ticket holding `text`.
    pub fn new(text: impl Into<Arc<str>>) -> Self {
        ProbeTicket(text.into())
    }

    /// The ticket's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for ProbeTicket {
    fn default() -> Self {
        ProbeTicket(Arc::from(""))
    }
}

/// The result of a check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProbeStatus {
    /// The message arrived at `at`.
    Arrived {
        /// Arrival time as the receiving side recorded it.
        at: DateTime<Utc>,
    },
    /// Not (yet) found.
    Pending,
}

/// Sends test messages and finds them again.
///
/// Errors use [`Error::Probe`] with `retryable` set when
/// the remote side is at fault (unreachable, busy): the monitor counts a
/// retryable dispatch error as a failure of the direction, because that is
/// what an outage looks like; a permanent one (credentials, permissions) is a
/// configuration problem and is reported, not counted.
///
/// Throttling is neither: a remote that throttles the prober (EWS
/// `ErrorServerBusy`, HTTP 429) is up and moving mail, it only refuses our
/// request rate. Report it as [`Error::ProbeThrottled`]:
/// from `dispatch`, the monitor reports it in [`TickReport::errors`](crate::monitor::TickReport::errors)
/// and logs it, records no failure, and starts the direction's next round as
/// scheduled, or after `retry_after` if that is later. From `check` it is
/// treated like any other check error: the probe is checked again later and
/// is lost only if it is still not found at its deadline.
#[async_trait]
pub trait MailProbe: Send + Sync + fmt::Debug {
    /// Sends the test message; returns what is needed to find it later.
    async fn dispatch(&self, request: &ProbeRequest) -> Result<ProbeTicket>;

    /// Looks for the message.
    async fn check(&self, request: &ProbeRequest, ticket: &ProbeTicket) -> Result<ProbeStatus>;

    /// A short, fixed name for the adapter (`"ews"`, `"graph"`), the
    /// `adapter` label of the probe [metrics](crate::metrics). The default
    /// is the implementing type's name without its path or generic
    /// arguments (`SimulatedMailSystem`); an adapter overrides it with a
    /// stable name.
    fn kind(&self) -> &'static str {
        type_name_only(std::any::type_name::<Self>())
    }

    /// The name of the adapter that serves `tenant`'s probes, the `adapter`
    /// label of each probe event the [`Monitor`](crate::Monitor) counts for
    /// `tenant`: [`kind`](Self::kind) by default. A probe that hands
    /// tenants to different adapters (a router, such as the service's
    /// per-tenant `TenantProbes`) names the one serving `tenant`, so its
    /// events are counted under `ews` or `graph`, not the router's name.
    /// Called once per probe event: keep it a lookup.
    fn kind_for(&self, tenant: &TenantId) -> &'static str {
        let _ = tenant;
        self.kind()
    }

    /// Every name [`kind_for`](Self::kind_for) may give (default:
    /// [`kind`](Self::kind) alone), read once when the
    /// [`Monitor`](crate::Monitor) is built so that it registers their
    /// counters then. A name missing here is still counted, at the cost of
    /// a look-up in the metrics recorder per event.
    fn kinds(&self) -> Vec<&'static str> {
        vec![self.kind()]
    }
}

/// `a::b::Name<c::D>` → `Name`.
fn type_name_only(full: &'static str) -> &'static str {
    let plain = full.split('<').next().unwrap_or(full);
    plain.rsplit("::").next().unwrap_or(plain)
}

#[async_trait]
impl<T: MailProbe + ?Sized> MailProbe for std::sync::Arc<T> {
    async fn dispatch(&self, request: &ProbeRequest) -> Result<ProbeTicket> {
        (**self).dispatch(request).await
    }
    async fn check(&self, request: &ProbeRequest, ticket: &ProbeTicket) -> Result<ProbeStatus> {
        (**self).check(request, ticket).await
    }
    fn kind(&self) -> &'static str {
        (**self).kind()
    }
    fn kind_for(&self, tenant: &TenantId) -> &'static str {
        (**self).kind_for(tenant)
    }
    fn kinds(&self) -> Vec<&'static str> {
        (**self).kinds()
    }
}

/// An inbound probe message for a [`ProbeSender`] to deliver (gateway side →
/// the organisation's mailbox).
#[derive(Clone, Copy, Debug)]
pub struct OutgoingProbe<'a> {
    /// The tenant.
    pub tenant: &'a TenantId,
    /// The org mailbox to deliver to.
    pub to: &'a str,
    /// The subject (carries the probe token).
    pub subject: &'a str,
    /// The header to set ([`PROBE_HEADER`]).
    pub header_name: &'static str,
    /// Its value (the probe token).
    pub header_value: &'a str,
}

/// Sends inbound probes from the gateway side towards the org's server; the
/// mail adapters' probes hand their inbound dispatch to one.
#[async_trait]
pub trait ProbeSender: Send + Sync + fmt::Debug {
    /// Sends `probe`. A retryable error means the gateway side could not
    /// send; it counts as a failure of the inbound direction. A sender that
    /// is only being rate-limited returns
    /// [`Error::ProbeThrottled`],
    /// which is reported but not counted.
    async fn send(&self, probe: &OutgoingProbe<'_>) -> Result<()>;
}

/// Counters of what a mail adapter's probe saw (for metrics and the admin's view).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProbeCounters {
    /// Inbound probes found by their subject while the X-header was missing
    /// (mailbox not provisioned yet, or a hop strips X-headers).
    pub header_missing: u64,
    /// Found probes whose deletion failed (they stay in the mailbox).
    pub delete_failures: u64,
}

/// What every mail adapter's [`MailProbe`] shares: the tenants' settings
/// `T`, the gateway's probe address and the [`ArrivalRegistry`] it feeds
/// (outbound), the [`ProbeSender`] of inbound probes, and the
/// [`ProbeCounters`].
#[derive(Debug)]
pub struct ProbeBase<T> {
    adapter: &'static str,
    gateway_address: String,
    arrivals: Arc<ArrivalRegistry>,
    sender: Option<Arc<dyn ProbeSender>>,
    tenants: RwLock<HashMap<TenantId, Arc<T>>>,
    header_missing: AtomicU64,
    delete_failures: AtomicU64,
}

/// A probe configuration error: reported, not counted as a mail-flow failure.
pub fn config_error(message: impl Into<String>) -> Error {
    Error::probe_permanent(message)
}

/// The mailbox `configured` for `request`'s direction, or a configuration
/// error saying which one the tenant lacks.
pub fn required_mailbox<'a>(
    request: &ProbeRequest,
    configured: Option<&'a str>,
) -> Result<&'a str> {
    configured.ok_or_else(|| {
        config_error(format!(
            "tenant {}: no {} mailbox",
            request.tenant,
            match request.direction {
                Direction::Outbound => "outbound sender",
                Direction::Inbound => "inbound",
            }
        ))
    })
}

/// The probe token a probe's message carries: the ticket's, or (for an empty
/// ticket) the one built from the request.
pub fn ticket_probe_token(request: &ProbeRequest, ticket: &ProbeTicket) -> String {
    if ticket.as_str().is_empty() {
        wire_id(&request.tenant, &request.probe_id)
    } else {
        ticket.as_str().to_owned()
    }
}

impl<T> ProbeBase<T> {
    /// The base of `adapter`'s probe (`EWS`, `Graph`: named in errors),
    /// sending outbound probes to `gateway_address`, finding their arrival
    /// in `arrivals`, and sending inbound probes with `sender` (`None`:
    /// inbound dispatch is refused as a configuration error).
    pub fn new(
        adapter: &'static str,
        gateway_address: impl Into<String>,
        arrivals: Arc<ArrivalRegistry>,
        sender: Option<Arc<dyn ProbeSender>>,
    ) -> Self {
        ProbeBase {
            adapter,
            gateway_address: gateway_address.into(),
            arrivals,
            sender,
            tenants: RwLock::new(HashMap::new()),
            header_missing: AtomicU64::new(0),
            delete_failures: AtomicU64::new(0),
        }
    }

    /// The gateway's probe address (where outbound probes go).
    pub fn gateway_address(&self) -> &str {
        &self.gateway_address
    }

    /// Sets (or replaces) `tenant`'s settings.
    pub fn set_tenant(&self, tenant: TenantId, settings: T) {
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

    /// `tenant`'s settings, or a configuration error naming the adapter.
    pub fn tenant(&self, tenant: &TenantId) -> Result<Arc<T>> {
        self.tenants
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(tenant)
            .cloned()
            .ok_or_else(|| {
                config_error(format!(
                    "tenant {tenant} has no {} probe settings",
                    self.adapter
                ))
            })
    }

    /// The counters so far.
    pub fn counters(&self) -> ProbeCounters {
        ProbeCounters {
            header_missing: self.header_missing.load(Ordering::Relaxed),
            delete_failures: self.delete_failures.load(Ordering::Relaxed),
        }
    }

    /// Counts an inbound probe found without its header.
    pub fn count_header_missing(&self) {
        self.header_missing.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a found probe that could not be deleted.
    pub fn count_delete_failure(&self) {
        self.delete_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Hands the inbound probe carrying `probe_token` to the sender, addressed to `mailbox`.
    pub async fn send_inbound(
        &self,
        request: &ProbeRequest,
        mailbox: &str,
        probe_token: &str,
    ) -> Result<()> {
        let sender = self
            .sender
            .as_ref()
            .ok_or_else(|| config_error("no inbound probe sender configured"))?;
        let subject = probe_subject(probe_token);
        sender
            .send(&OutgoingProbe {
                tenant: &request.tenant,
                to: mailbox,
                subject: &subject,
                header_name: PROBE_HEADER,
                header_value: probe_token,
            })
            .await
    }

    /// The outbound probe's status: arrived if the gateway reported `probe_token`.
    pub fn take_arrival(&self, probe_token: &str) -> ProbeStatus {
        match self.arrivals.take(probe_token) {
            Some(at) => ProbeStatus::Arrived { at },
            None => ProbeStatus::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_adapter_kind_defaults_to_its_type_name() {
        assert_eq!(
            type_name_only("continuity_ews::probe::EwsProbe"),
            "EwsProbe"
        );
        assert_eq!(type_name_only("a::Harness<b::c::Inner>"), "Harness");
        assert_eq!(type_name_only("Plain"), "Plain");
        let sim: std::sync::Arc<dyn MailProbe> =
            std::sync::Arc::new(crate::sim::SimulatedMailSystem::new(
                std::sync::Arc::new(crate::clock::ManualClock::new(chrono::DateTime::UNIX_EPOCH)),
                std::time::Duration::from_secs(1),
            ));
        // Through the `Arc` and the trait object: the adapter's own type.
        assert_eq!(std::sync::Arc::new(sim).kind(), "SimulatedMailSystem");
    }

    #[derive(Debug, Default)]
    struct Recorder(std::sync::Mutex<Vec<(String, String, String, String)>>);

    #[async_trait]
    impl ProbeSender for Recorder {
        async fn send(&self, p: &OutgoingProbe<'_>) -> Result<()> {
            self.0.lock().unwrap().push((
                p.to.to_owned(),
                p.subject.to_owned(),
                p.header_name.to_owned(),
                p.header_value.to_owned(),
            ));
            Ok(())
        }
    }

    fn request(direction: Direction) -> ProbeRequest {
        ProbeRequest {
            tenant: TenantId::new("acme").unwrap(),
            direction,
            probe_id: "in-1".into(),
            sent_at: "2026-03-02T08:00:00Z".parse().unwrap(),
        }
    }

    #[tokio::test]
    async fn the_base_serves_tenants_senders_and_arrivals() {
        let arrivals = Arc::new(ArrivalRegistry::default());
        let sender = Arc::new(Recorder::default());
        let base: ProbeBase<u8> = ProbeBase::new(
            "Test",
            "probe@gateway.example",
            arrivals.clone(),
            Some(sender.clone()),
        );
        let req = request(Direction::Inbound);
        let e = base.tenant(&req.tenant).unwrap_err();
        assert!(
            !e.is_retryable() && e.to_string().contains("no Test probe settings"),
            "{e}"
        );
        base.set_tenant(req.tenant.clone(), 7);
        assert_eq!(*base.tenant(&req.tenant).unwrap(), 7);

        let probe_token = ticket_probe_token(&req, &ProbeTicket::default());
        assert_eq!(probe_token, "in-1.acme");
        assert_eq!(ticket_probe_token(&req, &ProbeTicket::new("kept")), "kept");
        base.send_inbound(&req, "in@acme.example", &probe_token)
            .await
            .unwrap();
        assert_eq!(
            sender.0.lock().unwrap().as_slice(),
            [(
                "in@acme.example".to_owned(),
                "[continuity-probe] in-1.acme".to_owned(),
                "X-Continuity-Probe-Id".to_owned(),
                "in-1.acme".to_owned()
            )]
        );

        assert_eq!(base.take_arrival(&probe_token), ProbeStatus::Pending);
        let at = "2026-03-02T08:00:41Z".parse().unwrap();
        arrivals.report(&probe_token, at);
        assert_eq!(base.take_arrival(&probe_token), ProbeStatus::Arrived { at });

        base.count_header_missing();
        base.count_delete_failure();
        base.count_delete_failure();
        assert_eq!(
            base.counters(),
            ProbeCounters {
                header_missing: 1,
                delete_failures: 2
            }
        );
        base.remove_tenant(&req.tenant);
        assert!(base.tenant(&req.tenant).is_err());

        let no_sender: ProbeBase<u8> = ProbeBase::new("Test", "g@x", arrivals, None);
        assert!(
            !no_sender
                .send_inbound(&req, "in@acme.example", &probe_token)
                .await
                .unwrap_err()
                .is_retryable()
        );
        let e = required_mailbox(&request(Direction::Outbound), None).unwrap_err();
        assert!(e.to_string().contains("no outbound sender mailbox"), "{e}");
        assert_eq!(required_mailbox(&req, Some("m")).unwrap(), "m");
    }
}
