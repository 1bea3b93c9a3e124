//! Notifiers that get `continuity`'s alerts out of band, when the
//! organisation's own mail is down: SMS through a Twilio-compatible REST API,
//! e-mail through an external SMTP relay, and a signed HTTPS webhook; each
//! implements core's [`Notifier`](continuity_core::notify::Notifier). Around
//! them, [`Delivery`](delivery::Delivery) adds retries with jittered
//! back-off, a circuit breaker per channel, fallback channels, duplicate
//! suppression by idempotency key and a receipt per delivery.
//!
//! ```
//! use std::{sync::Arc, time::Duration};
//! use continuity_core::{
//!     config::{ChannelKind, Recipient}, machine::AlertKind, notify::{AlertMessage, Notifier},
//!     testing::RecordingNotifier, Clock, ManualClock, TenantId,
//! };
//! use continuity_notify::{delivery::{AdvanceClock, Delivery, RetryPolicy}, render::SmsRenderer};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let clock = ManualClock::new("2026-03-02T08:00:00Z".parse()?);
//! // A recording notifier stands in for the SMS provider here; in production
//! // it is a `sms::TwilioSms`, an `smtp::SmtpNotifier`, a `webhook::WebhookNotifier`.
//! let sms = Arc::new(RecordingNotifier::new(ChannelKind::Sms));
//! let delivery = Delivery::builder(Arc::new(clock.clone()))
//!     .channel(sms.clone())
//!     .retry(RetryPolicy::default())
//!     .sleep(Arc::new(AdvanceClock(clock.clone()))) // back-off in no real time
//!     .build()?;
//!
//! let message = AlertMessage {
//!     tenant: TenantId::new("acme")?,
//!     tenant_name: "ACME Corp".into(),
//!     alert_id: 1,
//!     kind: AlertKind::Raised,
//!     recipient: Recipient::new("ops", ChannelKind::Sms, "+15550100"),
//!     idempotency_key: "acme/1/ops".into(),
//!     created_at: clock.now(),
//!     link: "https://continuity.example.net/c/AbCdEf0123".into(),
//!     link_expires_at: clock.now() + chrono::TimeDelta::hours(24),
//!     conditions: vec![],
//!     event: None,
//!     failing: Vec::new(),
//!     time_zone: Default::default(),
//! };
//! let text = SmsRenderer::default().render(&message);
//! assert_eq!(text.segments, 1);
//!
//! sms.fail_next(2, true); // the provider fails twice, then accepts
//! let handles = delivery.notifiers(); // one per channel, for MonitorBuilder::notifier
//! handles[0].deliver(&message).await?;
//! assert_eq!(sms.attempts(), 3);
//! // A second delivery of the same alert and recipient is recognised and not sent.
//! handles[0].deliver(&message).await?;
//! assert_eq!(sms.messages().len(), 1);
//! assert_eq!(delivery.records()[0].provider_calls, 3);
//! # Ok(()) }
//! ```
//!
//! # Map
//!
//! | module | holds |
//! |---|---|
//! | [`sms`] | [`TwilioSms`](sms::TwilioSms): Twilio-compatible REST, typed provider errors |
//! | [`smtp`] | [`SmtpNotifier`](smtp::SmtpNotifier): e-mail through a relay of `continuity-smtp` (lettre over rustls), pooled connections |
//! | [`webhook`] | [`WebhookNotifier`](webhook::WebhookNotifier) and the receiver's [`WebhookVerifier`](webhook::WebhookVerifier) |
//! | [`render`] | SMS segment fitting (GSM-7 / UCS-2), e-mail templates |
//! | [`delivery`] | retries, circuit breakers, fallbacks, idempotency, receipts |
//! | [`settings`] | the notifiers and the delivery as configured (serde): [`TwilioSettings`](settings::TwilioSettings), [`SmtpSettings`](settings::SmtpSettings), [`WebhookSettings`](settings::WebhookSettings), [`DeliverySettings`](settings::DeliverySettings) |
//! | [`error`] | [`NotifyError`] and its mapping into core's error |
#![forbid(unsafe_code)]

pub mod delivery;
pub mod error;
mod http;
pub mod render;
pub mod settings;
pub mod sms;
pub mod smtp;
pub mod webhook;

pub use error::{NotifyError, Result};
