//! Test doubles that record what the engine sends: a notifier that keeps
//! the messages instead of delivering them, and a hook that keeps its calls.
//! Both can be told to fail.

use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use crate::{
    config::ChannelKind,
    domain::TenantId,
    error::{Error, Result},
    hook::ContinuityHook,
    machine::ContinuityEvent,
    notify::{AlertMessage, Notifier, Receipt},
};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A notifier that records every message instead of sending it, and can be
/// told to fail.
///
/// ```
/// use continuity_core::{config::ChannelKind, testing::RecordingNotifier};
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
                let e = if f.1 {
                    Error::notify_transient(self.channel.to_string(), "simulated delivery failure")
                } else {
                    Error::notify_permanent(self.channel.to_string(), "simulated delivery failure")
                };
                return Err(e.with_code("simulated"));
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
                return Err(Error::hook_transient("simulated hook failure"));
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
