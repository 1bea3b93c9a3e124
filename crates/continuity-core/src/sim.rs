//! Simulation parts and test doubles: a simulated mail system that answers
//! probes, a notifier that records what it would send, and a hook that
//! records its calls.
//!
//! They are clearly simulations: the quickstart, the fleet simulation and
//! the tests use them; production embedders plug in the EWS or Graph probe,
//! the SMS/e-mail notifiers and their own hook.

use std::{
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::{
    clock::Clock,
    config::ChannelKind,
    domain::{Direction, TenantId},
    duration::{after, hex_id},
    error::{Error, Result},
    fxhash::FxHashMap,
    hook::ContinuityHook,
    machine::ContinuityEvent,
    notify::{AlertMessage, Notifier, Receipt},
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
            SimulatedFlow::Refusing => Err(Error::Probe {
                retryable: true,
                code: Some("421".into()),
                message: "simulated server refuses connections".into(),
            }),
        }
    }

    async fn check(&self, _request: &ProbeRequest, ticket: &ProbeTicket) -> Result<ProbeStatus> {
        let Ok(ms) = u64::from_str_radix(&ticket.0, 16).map(|ms| ms as i64) else {
            return Ok(ProbeStatus::Pending);
        };
        let at = DateTime::<Utc>::from_timestamp_millis(ms).ok_or_else(|| Error::Probe {
            retryable: false,
            code: None,
            message: format!("bad simulated ticket {:?}", ticket.0),
        })?;
        Ok(if at <= self.clock.now() {
            ProbeStatus::Arrived { at }
        } else {
            ProbeStatus::Pending
        })
    }
}

/// A notifier that records every message instead of sending it, and can be
/// told to fail.
///
/// ```
/// use continuity_core::{config::ChannelKind, sim::RecordingNotifier};
/// let sms = RecordingNotifier::new(ChannelKind::Sms);
/// sms.fail_next(2, true); // the next two deliveries fail with a retryable error
/// assert!(sms.messages().is_empty());
/// ```
#[derive(Debug)]
pub struct RecordingNotifier {
    channel: ChannelKind,
    sent: Mutex<Vec<AlertMessage>>,
    failures: Mutex<(u32, bool)>,
    attempts: Mutex<u64>,
}

impl RecordingNotifier {
    /// A notifier for `channel` that succeeds.
    pub fn new(channel: ChannelKind) -> Self {
        RecordingNotifier {
            channel,
            sent: Mutex::new(Vec::new()),
            failures: Mutex::new((0, true)),
            attempts: Mutex::new(0),
        }
    }

    /// The next `n` deliveries fail, with a retryable error or not.
    pub fn fail_next(&self, n: u32, retryable: bool) {
        *lock(&self.failures) = (n, retryable);
    }

    /// Messages delivered so far, in order.
    pub fn messages(&self) -> Vec<AlertMessage> {
        lock(&self.sent).clone()
    }

    /// Removes and returns the messages delivered so far.
    pub fn take(&self) -> Vec<AlertMessage> {
        std::mem::take(&mut *lock(&self.sent))
    }

    /// Delivery attempts, failed ones included.
    pub fn attempts(&self) -> u64 {
        *lock(&self.attempts)
    }
}

#[async_trait]
impl Notifier for RecordingNotifier {
    fn channel(&self) -> ChannelKind {
        self.channel
    }

    async fn deliver(&self, message: &AlertMessage) -> Result<Receipt> {
        *lock(&self.attempts) += 1;
        {
            let mut f = lock(&self.failures);
            if f.0 > 0 {
                f.0 -= 1;
                return Err(Error::Notify {
                    channel: self.channel.to_string(),
                    retryable: f.1,
                    retry_after: None,
                    code: Some("simulated".into()),
                    message: "simulated delivery failure".into(),
                });
            }
        }
        let mut sent = lock(&self.sent);
        sent.push(message.clone());
        Ok(Receipt {
            provider_id: Some(format!("rec-{}", sent.len())),
        })
    }
}

/// One recorded hook call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookCall {
    /// The tenant.
    pub tenant: TenantId,
    /// `true` for start, `false` for end.
    pub started: bool,
    /// The event.
    pub event: ContinuityEvent,
}

/// A continuity hook that records its calls, and can be told to fail.
#[derive(Debug, Default)]
pub struct RecordingHook {
    calls: Mutex<Vec<HookCall>>,
    failures: Mutex<u32>,
}

impl RecordingHook {
    /// A hook that succeeds.
    pub fn new() -> Self {
        Self::default()
    }

    /// The next `n` calls fail (retryably).
    pub fn fail_next(&self, n: u32) {
        *lock(&self.failures) = n;
    }

    /// Calls so far, in order.
    pub fn calls(&self) -> Vec<HookCall> {
        lock(&self.calls).clone()
    }

    fn call(&self, tenant: &TenantId, event: &ContinuityEvent, started: bool) -> Result<()> {
        {
            let mut f = lock(&self.failures);
            if *f > 0 {
                *f -= 1;
                return Err(Error::Hook {
                    retryable: true,
                    message: "simulated hook failure".into(),
                });
            }
        }
        lock(&self.calls).push(HookCall {
            tenant: tenant.clone(),
            started,
            event: event.clone(),
        });
        Ok(())
    }
}

#[async_trait]
impl ContinuityHook for RecordingHook {
    async fn event_started(&self, tenant: &TenantId, event: &ContinuityEvent) -> Result<()> {
        self.call(tenant, event, true)
    }
    async fn event_ended(&self, tenant: &TenantId, event: &ContinuityEvent) -> Result<()> {
        self.call(tenant, event, false)
    }
}
