//! The `MailProbe` trait: active test messages, in two phases.
//!
//! A probe is *dispatched* (a test message leaves) and later *checked* (has it
//! arrived?). Splitting the two means no task waits minutes on the network:
//! the [`Monitor`](crate::Monitor) keeps the [`ProbeTicket`] in the store as a
//! pending probe and checks it on later ticks until it arrives or its
//! deadline passes (then it counts as a lost-probe failure).

use std::{fmt, sync::Arc};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{
    domain::{Direction, TenantId},
    error::Result,
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
/// Errors use [`Error::Probe`](crate::Error::Probe) with `retryable` set when
/// the remote side is at fault (unreachable, busy): the monitor counts a
/// retryable dispatch error as a failure of the direction, because that is
/// what an outage looks like; a permanent one (credentials, permissions) is a
/// configuration problem and is reported, not counted.
///
/// Throttling is neither: a remote that throttles the prober (EWS
/// `ErrorServerBusy`, HTTP 429) is up and moving mail, it only refuses our
/// request rate. Report it as [`Error::ProbeThrottled`](crate::Error::ProbeThrottled):
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
}

#[async_trait]
impl<T: MailProbe + ?Sized> MailProbe for std::sync::Arc<T> {
    async fn dispatch(&self, request: &ProbeRequest) -> Result<ProbeTicket> {
        (**self).dispatch(request).await
    }
    async fn check(&self, request: &ProbeRequest, ticket: &ProbeTicket) -> Result<ProbeStatus> {
        (**self).check(request, ticket).await
    }
}
