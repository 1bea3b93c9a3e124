//! `continuity` keeps an organisation's e-mail flowing through mail-server
//! outages.
//!
//! It watches the mail flow between an e-mail gateway and each organisation's
//! Exchange server, raises alerts by SMS and external e-mail when latency or
//! failed deliveries cross the administrators' thresholds, repeats them hourly
//! while the trouble lasts, and hands the administrators a signed link, valid
//! 24 hours, to a portal where they start, extend or end a continuity event or
//! suspend the alerts.
//!
//! This crate is the facade: it re-exports the member crates behind features
//! (all on by default): [`stores`] (`store`), [`notifiers`] (`notify`),
//! [`ews`] (`ews`), [`graph`] (`graph`, Exchange Online) and [`web`] (`web`,
//! the portal's pages), and [`service`] (`service`: a whole service from a
//! configuration file, and its tick loop). The stores are two features,
//! `sqlite` and `postgres` (`store` turns both on). The engine
//! ([`Monitor`], the traits, the state machines, the in-memory store, the
//! [`portal`] API) comes from `continuity-core` and is always present.
//!
//! ```
//! use std::{sync::Arc, time::Duration};
//! use continuity::{
//!     config::{ChannelKind, Recipient, TenantConfig},
//!     link::{LinkKey, LinkSigner},
//!     testing::RecordingNotifier,
//!     Clock, Direction, ManualClock, Monitor, Observation, TenantId,
//! };
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> continuity::Result<()> {
//! let clock = ManualClock::new("2026-03-02T09:00:00Z".parse().unwrap());
//! let sms = Arc::new(RecordingNotifier::new(ChannelKind::Sms));
//! let monitor = Monitor::builder()
//!     .in_memory_store()
//!     .clock(Arc::new(clock.clone()))
//!     .notifier(sms.clone())
//!     .link_signer(LinkSigner::new(LinkKey::new("2026-03", [7u8; 32])?))
//!     .portal_url("https://continuity.example.net/c/")
//!     .build()?;
//! let acme = TenantId::new("acme")?;
//! monitor
//!     .register_tenant(TenantConfig::new(acme.clone(), vec![Recipient::new("ops", ChannelKind::Sms, "+15550100")]))
//!     .await?;
//! monitor.observe(Observation::delivered(acme, Direction::Inbound, clock.now(), Duration::from_secs(12)))?;
//! let report = monitor.tick(clock.now()).await?;
//! assert_eq!(report.alerts, 0);
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub use continuity_core::*;

/// The durable event stores: SQLite (the embedded default, feature
/// `sqlite`) and PostgreSQL (several instances sharing their state,
/// feature `postgres`); `store` (default) turns both on.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use continuity_store as stores;

/// The out-of-band notifiers: SMS (Twilio-compatible), e-mail (SMTP) and
/// signed webhooks, with delivery retries, breakers and fallbacks. Feature
/// `notify` (default).
#[cfg(feature = "notify")]
pub use continuity_notify as notifiers;

/// The Exchange Web Services client and probe (on-premises Exchange with
/// impersonation). Feature `ews` (default).
#[cfg(feature = "ews")]
pub use continuity_ews as ews;

/// Exchange Online: Entra ID (Azure AD) app credentials trusted through a
/// certificate, a token cache that also serves [`ews`] in Exchange Online's
/// legacy EWS mode, and the Microsoft Graph probe with its connection check
/// and mailbox limiter. Feature `graph` (default).
#[cfg(feature = "graph")]
pub use continuity_graph as graph;

/// The continuity portal: the pages an administrator opens from an alert's
/// link and a JSON API, as an axum router to nest in the embedder's service
/// (`web::router`); the engine's side of it is [`portal`]. Feature `web`
/// (default).
#[cfg(feature = "web")]
pub use continuity_portal as web;

#[cfg(feature = "service")]
pub mod service;

/// The README's examples, compiled as doc tests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
