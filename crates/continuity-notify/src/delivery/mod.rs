//! Delivery around the channel notifiers: retries with jittered back-off, a
//! circuit breaker per channel, fallback channels, duplicate suppression by
//! idempotency key, and a receipt per delivery.
//!
//! [`Delivery`] holds one notifier per channel and hands the
//! [`Monitor`](continuity_core::Monitor) one [`Notifier`] per channel
//! ([`Delivery::notifiers`]); each routes through the shared machinery:
//!
//! 1. **Duplicates.** An alert whose idempotency key was delivered already
//!    (within [`DeliveryBuilder::remember_for`]) is not sent again; the
//!    earlier receipt is returned. That covers a Monitor retrying an entry
//!    whose success it could not record.
//! 2. **Breaker.** While a channel's breaker is open the call fails at once
//!    with [`NotifyError::CircuitOpen`] (retryable) instead of calling a
//!    provider that is down.
//! 3. **Retries.** A retryable failure is retried per [`RetryPolicy`]; one a
//!    retry cannot fix is not.
//! 4. **Fallbacks.** When the recipient's channel has failed *for good* — a
//!    failure a retry cannot fix, or a retryable one on an alert older than
//!    [`DeliveryBuilder::fallback_after`] — the recipient's
//!    [`fallback`](continuity_core::config::Recipient::fallback) channels are
//!    tried in order, with the same alert, link and idempotency key.
//! 5. **Back to the outbox.** What still fails is returned to the Monitor,
//!    retryable if any channel's failure was: it stays in the outbox and is
//!    tried again on a later tick.
//!
//! Every success leaves a [`DeliveryRecord`] (which channel and address,
//! whether a fallback, provider calls made, the provider's receipt) in
//! [`Delivery::records`] and in the [`ReceiptSink`] if one is set; the Monitor
//! lists the receipt in its [`TickReport::receipts`](continuity_core::TickReport::receipts).

mod breaker;
mod retry;

use std::{
    collections::{HashMap, VecDeque},
    fmt,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use continuity_core::{
    Clock, Error, TenantId,
    config::ChannelKind,
    duration::after,
    error::BoxError,
    notify::{AlertMessage, Notifier, Receipt},
};
use tracing::{debug, info, warn};

pub use breaker::{BreakerPolicy, BreakerState};
pub use retry::{AdvanceClock, RetryPolicy, Sleep, TokioSleep};

use crate::error::NotifyError;
use breaker::Breaker;

/// How old an alert must be before a retryable failure sends it to the
/// fallbacks, when not configured: 10 minutes.
pub const DEFAULT_FALLBACK_AFTER: Duration = Duration::from_secs(600);
/// How long a delivered key is remembered, when not configured: 48 hours.
pub const DEFAULT_REMEMBER_FOR: Duration = Duration::from_secs(48 * 3600);
/// Most delivered keys remembered, when not configured: 100,000.
pub const DEFAULT_REMEMBER_MAX: usize = 100_000;

/// One successful delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryRecord {
    /// The alert's idempotency key (`tenant/alert/recipient`).
    pub idempotency_key: String,
    /// The tenant.
    pub tenant: TenantId,
    /// Per-tenant alert id.
    pub alert_id: u64,
    /// The recipient's id.
    pub recipient: String,
    /// The channel that delivered it.
    pub channel: ChannelKind,
    /// The address it went to.
    pub address: String,
    /// Whether a fallback channel delivered it.
    pub fallback: bool,
    /// Provider calls this delivery made, over all channels tried.
    pub provider_calls: u32,
    /// When it was delivered (the delivery's clock).
    pub delivered_at: DateTime<Utc>,
    /// What the provider returned.
    pub receipt: Receipt,
}

/// Where receipts are recorded beyond [`Delivery::records`], e.g. the
/// embedder's database.
pub trait ReceiptSink: Send + Sync + fmt::Debug {
    /// Called once per successful delivery.
    fn record(&self, record: &DeliveryRecord);
}

struct Channel {
    notifier: Arc<dyn Notifier>,
    breaker: Breaker,
}

struct Inner {
    channels: HashMap<ChannelKind, Channel>,
    clock: Arc<dyn Clock>,
    sleep: Arc<dyn Sleep>,
    retry: RetryPolicy,
    fallback_after: Duration,
    remember_for: Duration,
    remember_max: usize,
    sink: Option<Arc<dyn ReceiptSink>>,
    delivered: Mutex<Delivered>,
}

#[derive(Default)]
struct Delivered {
    by_key: HashMap<String, DeliveryRecord>,
    order: VecDeque<(DateTime<Utc>, String)>,
}

/// The delivery machinery. See the [module docs](self).
///
/// Cloning is cheap and shares everything.
#[derive(Clone)]
pub struct Delivery {
    inner: Arc<Inner>,
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut channels: Vec<_> = self.inner.channels.keys().collect();
        channels.sort_by_key(|c| c.as_str());
        f.debug_struct("Delivery")
            .field("channels", &channels)
            .field("retry", &self.inner.retry)
            .field("fallback_after", &self.inner.fallback_after)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Delivery`].
pub struct DeliveryBuilder {
    clock: Arc<dyn Clock>,
    sleep: Arc<dyn Sleep>,
    retry: RetryPolicy,
    breaker: BreakerPolicy,
    fallback_after: Duration,
    remember_for: Duration,
    remember_max: usize,
    sink: Option<Arc<dyn ReceiptSink>>,
    notifiers: Vec<Arc<dyn Notifier>>,
}

impl fmt::Debug for DeliveryBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeliveryBuilder")
            .field("retry", &self.retry)
            .field("breaker", &self.breaker)
            .field("notifiers", &self.notifiers)
            .finish_non_exhaustive()
    }
}

impl DeliveryBuilder {
    /// Adds the notifier for its channel (replacing an earlier one for the same channel).
    pub fn channel(mut self, notifier: Arc<dyn Notifier>) -> Self {
        self.notifiers.retain(|n| n.channel() != notifier.channel());
        self.notifiers.push(notifier);
        self
    }

    /// The retry policy of every channel (default [`RetryPolicy::default`]).
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The breaker policy of every channel (default [`BreakerPolicy::default`]).
    pub fn breaker(mut self, breaker: BreakerPolicy) -> Self {
        self.breaker = breaker;
        self
    }

    /// How old an alert must be before a retryable failure of its channel
    /// counts as failed for good and the fallbacks are tried (default 10 min).
    pub fn fallback_after(mut self, after: Duration) -> Self {
        self.fallback_after = after;
        self
    }

    /// How long a delivered key is remembered to suppress duplicates (default 48 h).
    pub fn remember_for(mut self, remember: Duration) -> Self {
        self.remember_for = remember;
        self
    }

    /// Most delivered keys remembered at once, oldest forgotten first (default 100,000).
    pub fn remember_max(mut self, max: usize) -> Self {
        self.remember_max = max.max(1);
        self
    }

    /// How retries wait (default [`TokioSleep`]).
    pub fn sleep(mut self, sleep: Arc<dyn Sleep>) -> Self {
        self.sleep = sleep;
        self
    }

    /// The retry and breaker policies, fallback time and duplicate memory
    /// of `settings` (a [`DeliverySettings`](crate::settings::DeliverySettings) from configuration).
    pub fn settings(self, settings: &crate::settings::DeliverySettings) -> Self {
        self.retry(settings.retry.clone())
            .breaker(settings.breaker.clone())
            .fallback_after(settings.fallback_after)
            .remember_for(settings.remember_for)
            .remember_max(settings.remember_max)
    }

    /// Where receipts are recorded too.
    pub fn receipt_sink(mut self, sink: Arc<dyn ReceiptSink>) -> Self {
        self.sink = Some(sink);
        self
    }

    /// Builds the delivery; at least one channel is needed.
    pub fn build(self) -> Result<Delivery, NotifyError> {
        let Some(first) = self.notifiers.first() else {
            return Err(NotifyError::config(
                ChannelKind::Sms,
                "channels",
                "at least one channel notifier is needed",
            ));
        };
        if self.retry.max_attempts == 0 {
            return Err(NotifyError::config(
                first.channel(),
                "retry.max_attempts",
                "must be at least 1",
            ));
        }
        if self.breaker.failure_threshold == 0 {
            return Err(NotifyError::config(
                first.channel(),
                "breaker.failure_threshold",
                "must be at least 1",
            ));
        }
        let channels = self
            .notifiers
            .into_iter()
            .map(|n| {
                (
                    n.channel(),
                    Channel {
                        notifier: n,
                        breaker: Breaker::new(self.breaker.clone()),
                    },
                )
            })
            .collect();
        Ok(Delivery {
            inner: Arc::new(Inner {
                channels,
                clock: self.clock,
                sleep: self.sleep,
                retry: self.retry,
                fallback_after: self.fallback_after,
                remember_for: self.remember_for,
                remember_max: self.remember_max,
                sink: self.sink,
                delivered: Mutex::new(Delivered::default()),
            }),
        })
    }
}

/// Routes one channel of a [`Delivery`]; what [`Delivery::notifiers`] returns.
#[derive(Debug, Clone)]
pub struct ChannelHandle {
    kind: ChannelKind,
    delivery: Delivery,
}

#[async_trait]
impl Notifier for ChannelHandle {
    fn channel(&self) -> ChannelKind {
        self.kind
    }

    async fn deliver(&self, message: &AlertMessage) -> continuity_core::Result<Receipt> {
        self.delivery.deliver(message).await
    }
}

impl Delivery {
    /// A builder; time (back-off budget, breaker, alert age) comes from `clock`.
    pub fn builder(clock: Arc<dyn Clock>) -> DeliveryBuilder {
        DeliveryBuilder {
            clock,
            sleep: Arc::new(TokioSleep),
            retry: RetryPolicy::default(),
            breaker: BreakerPolicy::default(),
            fallback_after: DEFAULT_FALLBACK_AFTER,
            remember_for: DEFAULT_REMEMBER_FOR,
            remember_max: DEFAULT_REMEMBER_MAX,
            sink: None,
            notifiers: Vec::new(),
        }
    }

    /// One notifier per installed channel, for [`MonitorBuilder::notifier`](continuity_core::MonitorBuilder::notifier).
    pub fn notifiers(&self) -> Vec<Arc<dyn Notifier>> {
        let mut kinds: Vec<ChannelKind> = self.inner.channels.keys().copied().collect();
        kinds.sort_by_key(|c| c.as_str());
        kinds
            .into_iter()
            .map(|kind| {
                Arc::new(ChannelHandle {
                    kind,
                    delivery: self.clone(),
                }) as Arc<dyn Notifier>
            })
            .collect()
    }

    /// The state of `channel`'s breaker, if the channel is installed.
    pub fn breaker_state(&self, channel: ChannelKind) -> Option<BreakerState> {
        self.inner.channels.get(&channel).map(|c| c.breaker.state())
    }

    /// Receipts of the deliveries remembered (see [`DeliveryBuilder::remember_for`]), oldest first.
    pub fn records(&self) -> Vec<DeliveryRecord> {
        let d = self.delivered();
        d.order
            .iter()
            .filter_map(|(_, k)| d.by_key.get(k).cloned())
            .collect()
    }

    fn delivered(&self) -> MutexGuard<'_, Delivered> {
        self.inner
            .delivered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Delivers `message` to its recipient as described in the [module docs](self).
    pub async fn deliver(&self, message: &AlertMessage) -> continuity_core::Result<Receipt> {
        let key = &message.idempotency_key;
        let now = self.inner.clock.now();
        if let Some(done) = self.delivered().by_key.get(key)
            && after(done.delivered_at, self.inner.remember_for) > now
        {
            info!(%key, channel = %done.channel, "already delivered; not sending again");
            return Ok(done.receipt.clone());
        }
        let recipient = &message.recipient;
        let mut calls = 0;
        let primary = self
            .try_channel(recipient.channel, message, &mut calls)
            .await;
        let error = match primary {
            Ok(receipt) => {
                return Ok(self.record(
                    message,
                    recipient.channel,
                    &recipient.address,
                    false,
                    calls,
                    receipt,
                ));
            }
            Err(e) => e,
        };
        let age = (self.inner.clock.now() - message.created_at)
            .to_std()
            .unwrap_or(Duration::ZERO);
        let for_good = !error.is_retryable() || age >= self.inner.fallback_after;
        if !for_good || recipient.fallback.is_empty() {
            return Err(error);
        }
        warn!(%key, channel = %recipient.channel, error = %error, "channel failed for good; trying fallbacks");
        let mut retryable = error.is_retryable();
        let mut retry_after = retry_after_of(&error);
        let mut failures = vec![format!("{}: {error}", recipient.channel)];
        for fallback in &recipient.fallback {
            let mut m = message.clone();
            m.recipient.channel = fallback.channel;
            m.recipient.address = fallback.address.clone();
            m.recipient.fallback.clear();
            match self.try_channel(fallback.channel, &m, &mut calls).await {
                Ok(receipt) => {
                    return Ok(self.record(
                        message,
                        fallback.channel,
                        &fallback.address,
                        true,
                        calls,
                        receipt,
                    ));
                }
                Err(e) => {
                    retryable |= e.is_retryable();
                    retry_after = match (retry_after, retry_after_of(&e)) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                    failures.push(format!("fallback {}: {e}", fallback.channel));
                }
            }
        }
        let code = match &error {
            Error::Notify { code, .. } => code.clone(),
            _ => None,
        };
        // The channel and code are the first channel's, so is the source:
        // its notifier's own error when it gave one.
        let source: BoxError = match error {
            Error::Notify {
                source: Some(source),
                ..
            } => source,
            other => Box::new(other),
        };
        Err(Error::Notify {
            channel: recipient.channel.to_string(),
            retryable,
            retry_after,
            code,
            message: failures.join("; "),
            source: Some(source),
        })
    }

    /// One channel with its breaker and retries.
    async fn try_channel(
        &self,
        kind: ChannelKind,
        message: &AlertMessage,
        calls: &mut u32,
    ) -> continuity_core::Result<Receipt> {
        let Some(channel) = self.inner.channels.get(&kind) else {
            return Err(NotifyError::NoChannel { channel: kind }.into());
        };
        let policy = &self.inner.retry;
        let clock = &self.inner.clock;
        let start = clock.now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            if let Err(wait) = channel.breaker.admit(clock.now()) {
                debug!(key = %message.idempotency_key, channel = %kind, "circuit open; not calling the provider");
                return Err(NotifyError::CircuitOpen {
                    channel: kind,
                    retry_after: wait,
                }
                .into());
            }
            *calls += 1;
            let e = match channel.notifier.deliver(message).await {
                Ok(receipt) => {
                    channel.breaker.success();
                    return Ok(receipt);
                }
                Err(e) => e,
            };
            if !e.is_retryable() {
                channel.breaker.neutral();
                return Err(e);
            }
            channel.breaker.failure(clock.now());
            if attempt >= policy.max_attempts {
                return Err(e);
            }
            let delay = policy.delay(attempt, rand::random::<f64>(), retry_after_of(&e));
            let elapsed = (clock.now() - start).to_std().unwrap_or(Duration::ZERO);
            if elapsed + delay > policy.max_total {
                debug!(key = %message.idempotency_key, channel = %kind, ?delay, "retry budget spent; back to the outbox");
                return Err(e);
            }
            warn!(key = %message.idempotency_key, channel = %kind, error = %e, ?delay, attempt, "delivery failed; retrying");
            self.inner.sleep.sleep(delay).await;
        }
    }

    fn record(
        &self,
        message: &AlertMessage,
        channel: ChannelKind,
        address: &str,
        fallback: bool,
        provider_calls: u32,
        receipt: Receipt,
    ) -> Receipt {
        let now = self.inner.clock.now();
        let record = DeliveryRecord {
            idempotency_key: message.idempotency_key.clone(),
            tenant: message.tenant.clone(),
            alert_id: message.alert_id,
            recipient: message.recipient.id.clone(),
            channel,
            address: address.to_string(),
            fallback,
            provider_calls,
            delivered_at: now,
            receipt: receipt.clone(),
        };
        if let Some(sink) = &self.inner.sink {
            sink.record(&record);
        }
        let mut d = self.delivered();
        while let Some((at, _)) = d.order.front() {
            let expired = after(*at, self.inner.remember_for) <= now;
            if !expired && d.order.len() < self.inner.remember_max {
                break;
            }
            if let Some((_, k)) = d.order.pop_front() {
                d.by_key.remove(&k);
            }
        }
        if d.by_key
            .insert(record.idempotency_key.clone(), record)
            .is_none()
        {
            d.order.push_back((now, message.idempotency_key.clone()));
        }
        receipt
    }
}

fn retry_after_of(e: &Error) -> Option<Duration> {
    match e {
        Error::Notify { retry_after, .. } => *retry_after,
        _ => None,
    }
}
