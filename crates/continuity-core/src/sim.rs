//! Simulation parts: a simulated mail system that answers probes, with a
//! latency, a black hole or a refusal per tenant and direction.
//!
//! They are clearly simulations: the quickstart, the fleet simulation and
//! the tests use them; production embedders plug in the EWS or Graph probe.
//! The test doubles that record what the engine sends (a notifier, a hook)
//! are in `testing` (feature `testing`).

use std::{
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::{
    clock::Clock,
    domain::{Direction, TenantId},
    duration::{after, hex_id},
    error::{Error, Result},
    fxhash::FxHashMap,
    probe::{MailProbe, ProbeRequest, ProbeStatus, ProbeTicket},
};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// How the simulated mail system treats one (tenant, direction).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimulatedFlow {
    /// Messages arrive after this latency.
    Latency(Duration),
    /// Messages never arrive.
    Blackhole,
    /// The server refuses to take the message (a retryable dispatch error).
    Refusing,
}

/// A simulated mail system answering [`MailProbe`] calls: a message sent at
/// `t` arrives at `t + latency` of the flow set for its tenant and direction
/// when it was sent. Time comes from the given clock.
///
/// ```
/// use std::{sync::Arc, time::Duration};
/// use continuity_core::{sim::{SimulatedFlow, SimulatedMailSystem}, Direction, ManualClock, TenantId};
///
/// let clock = ManualClock::new("2026-01-01T00:00:00Z".parse().unwrap());
/// let mail = SimulatedMailSystem::new(Arc::new(clock), Duration::from_secs(20));
/// let acme = TenantId::new("acme").unwrap();
/// mail.set_flow(&acme, Direction::Outbound, SimulatedFlow::Latency(Duration::from_secs(45 * 60)));
/// ```
#[derive(Debug)]
pub struct SimulatedMailSystem {
    clock: Arc<dyn Clock>,
    default_latency: Duration,
    flows: Mutex<FxHashMap<(TenantId, Direction), SimulatedFlow>>,
}

impl SimulatedMailSystem {
    /// Every flow healthy, delivering after `default_latency`.
    pub fn new(clock: Arc<dyn Clock>, default_latency: Duration) -> Self {
        SimulatedMailSystem {
            clock,
            default_latency,
            flows: Mutex::new(FxHashMap::default()),
        }
    }

    /// Sets how `tenant`'s `direction` behaves from now on.
    pub fn set_flow(&self, tenant: &TenantId, direction: Direction, flow: SimulatedFlow) {
        lock(&self.flows).insert((tenant.clone(), direction), flow);
    }

    /// How `tenant`'s `direction` behaves now.
    pub fn flow(&self, tenant: &TenantId, direction: Direction) -> SimulatedFlow {
        let flows = lock(&self.flows);
        // Most flows are healthy: skip the lookup (and the key's clone) when none is set.
        if flows.is_empty() {
            return SimulatedFlow::Latency(self.default_latency);
        }
        flows
            .get(&(tenant.clone(), direction))
            .copied()
            .unwrap_or(SimulatedFlow::Latency(self.default_latency))
    }
}

#[async_trait]
impl MailProbe for SimulatedMailSystem {
    async fn dispatch(&self, request: &ProbeRequest) -> Result<ProbeTicket> {
        match self.flow(&request.tenant, request.direction) {
            SimulatedFlow::Latency(l) => {
                let at = after(request.sent_at, l);
                Ok(ProbeTicket(hex_id("", at.timestamp_millis() as u64)))
            }
            SimulatedFlow::Blackhole => Ok(ProbeTicket("never".into())),
            SimulatedFlow::Refusing => {
                Err(Error::probe_transient("simulated server refuses connections").with_code("421"))
            }
        }
    }

    async fn check(&self, _request: &ProbeRequest, ticket: &ProbeTicket) -> Result<ProbeStatus> {
        let Ok(ms) = u64::from_str_radix(&ticket.0, 16).map(|ms| ms as i64) else {
            return Ok(ProbeStatus::Pending);
        };
        let at = DateTime::<Utc>::from_timestamp_millis(ms).ok_or_else(|| {
            Error::probe_permanent(format!("bad simulated ticket {:?}", ticket.0))
        })?;
        Ok(if at <= self.clock.now() {
            ProbeStatus::Arrived { at }
        } else {
            ProbeStatus::Pending
        })
    }
}
