//! The engine of `continuity`: domain types, the traits adapters implement,
//! sliding windows, threshold policies, the tenant state machine, portal
//! links, the in-memory store, the clock and the [`Monitor`].
//!
//! It depends on no network, TLS or runtime crate; the adapters
//! (`continuity-ews`, `continuity-graph`, `continuity-notify`,
//! `continuity-store`, `continuity-portal`) bring those.
//!
//! ```
//! use std::{sync::Arc, time::Duration};
//! use chrono::TimeDelta;
//! use continuity_core::{
//!     config::{ChannelKind, Recipient, TenantConfig},
//!     link::{LinkKey, LinkSigner},
//!     machine::AlertKind,
//!     portal::{self, PortalAction, PortalOutcome, Until},
//!     sim::{SimulatedFlow, SimulatedMailSystem},
//!     testing::RecordingNotifier,
//!     Clock, Direction, ManualClock, Monitor, TenantId,
//! };
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> continuity_core::Result<()> {
//! let clock = ManualClock::new("2026-03-02T08:00:00Z".parse().unwrap());
//! // A simulated mail system answers the probes; a recording notifier stands in for SMS.
//! let mail = Arc::new(SimulatedMailSystem::new(Arc::new(clock.clone()), Duration::from_secs(20)));
//! let sms = Arc::new(RecordingNotifier::new(ChannelKind::Sms));
//! let monitor = Monitor::builder()
//!     .in_memory_store()
//!     .clock(Arc::new(clock.clone()))
//!     .probe(Direction::Outbound, mail.clone())
//!     .notifier(sms.clone())
//!     .link_signer(LinkSigner::new(LinkKey::new("k1", [1u8; 32])?))
//!     .portal_url("https://continuity.example.net/c/")
//!     .build()?;
//! let acme = TenantId::new("acme")?;
//! monitor
//!     .register_tenant(TenantConfig::new(acme.clone(), vec![Recipient::new("ops", ChannelKind::Sms, "+15550100")]))
//!     .await?;
//!
//! // The organisation's server stops sending: probes are lost after 30 minutes.
//! mail.set_flow(&acme, Direction::Outbound, SimulatedFlow::Blackhole);
//! for _ in 0..60 {
//!     monitor.tick(clock.advance(TimeDelta::minutes(1))).await?;
//! }
//! let alert = sms.messages().pop().expect("an alert went out");
//! assert_eq!(alert.kind, AlertKind::Raised);
//!
//! // The administrator follows the link and starts a continuity event.
//! let link = alert.link.trim_start_matches("https://continuity.example.net/c/");
//! let action = PortalAction::StartEvent(Until::For(Duration::from_secs(4 * 3600)));
//! let outcome = portal::act(&monitor, link, action, None, clock.now()).await?;
//! assert!(matches!(outcome, PortalOutcome::Done(view) if view.active_event.is_some()));
//! # Ok(()) }
//! ```
//!
//! # Map
//!
//! | module | holds |
//! |---|---|
//! | [`domain`] | tenant ids, directions, observations and outcomes |
//! | [`clock`] | the [`Clock`] trait, the system clock and a manual clock |
//! | [`cluster`] | shards and their ownership, for several instances sharing a store |
//! | [`window`] | time-bucketed sliding windows with a latency sketch |
//! | [`policy`] | the [`ThresholdPolicy`](policy::ThresholdPolicy) trait, the default flow policy (against a learned baseline) and the absolute latency, failure and leaky-counter policies |
//! | [`machine`] | the tenant state machine: hysteresis, alert schedule, suspension, continuity events |
//! | [`link`] | signed, expiring portal links; their keys and ttl in configuration ([`LinkSettings`](link::LinkSettings)) |
//! | [`portal`] | the portal API: views of a tenant and actions through a link, as typed outcomes |
//! | [`config`] | tenant configuration (serde) and its validation |
//! | [`secret`] | [`SecretRef`](secret::SecretRef): a secret in configuration as `{ env = "NAME" }` or `{ file = "path" }`, read when settings are built, never printed |
//! | [`files`] | files configuration names (certificates), read with an error naming the file |
//! | [`time_zone`] | [`TimeZone`](time_zone::TimeZone): the IANA zone administrators read times in, and wall-clock times typed into the portal |
//! | [`duration`] | durations in configuration (`"5m"`, `"1h30m"`) and in messages (`1 h 5 min`) |
//! | [`store`], [`memory`] | the [`EventStore`](store::EventStore) trait and the in-memory store |
//! | [`probe`], [`notify`], [`hook`] | the [`MailProbe`](probe::MailProbe), [`Notifier`](notify::Notifier) and [`ContinuityHook`](hook::ContinuityHook) traits; the [`ProbeSender`](probe::ProbeSender) mail adapters hand inbound probes to |
//! | [`arrival`] | probe tokens on the wire and the [`ArrivalRegistry`](arrival::ArrivalRegistry) the gateway feeds |
//! | [`monitor`] | the [`Monitor`] engine, one file per tick phase (its module docs walk through a tick); its [`Health`](monitor::Health) |
//! | [`metrics`] | the metrics the engine records through the `metrics` facade: their names, kinds, labels and meaning |
//! | [`access_token`] | the [`AccessTokenSource`](access_token::AccessTokenSource) seam: bearer tokens for adapters |
//! | [`sim`] | simulation parts: a simulated mail system answering probes |
//! | [`error`] | the crate's [`Error`] and [`Result`] |
//! | `testing` | the store conformance suite, a store that can be taken down, the recording notifier and hook, the engine test rig, and a monitor harness for mail adapters' probes (feature `testing`) |
//!
//! `ARCHITECTURE.md` at the repository's root is the map of the whole
//! workspace: the crates, the traits, one tick step by step, the outbox, the
//! shards and the store-outage journal.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod access_token;
pub mod arrival;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod domain;
pub mod duration;
pub mod error;
pub mod files;
mod fxhash;
pub mod hook;
pub mod link;
pub mod machine;
pub mod memory;
pub mod metrics;
pub mod monitor;
pub mod notify;
pub mod policy;
pub mod portal;
pub mod probe;
pub mod secret;
pub mod sim;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
pub mod time_zone;
pub mod window;

/// The attribute that implements this crate's async traits
/// ([`ContinuityHook`](hook::ContinuityHook), [`Notifier`](notify::Notifier),
/// [`MailProbe`](probe::MailProbe), [`EventStore`](store::EventStore), ...),
/// re-exported so that an implementor need not depend on `async-trait`:
///
/// ```
/// use continuity_core::{async_trait, hook::ContinuityHook, machine::ContinuityEvent, Result, TenantId};
///
/// #[derive(Debug)]
/// struct HoldInbound;
///
/// #[async_trait]
/// impl ContinuityHook for HoldInbound {
///     async fn event_started(&self, tenant: &TenantId, _event: &ContinuityEvent) -> Result<()> {
///         println!("holding {tenant}'s inbound mail");
///         Ok(())
///     }
///     async fn event_ended(&self, tenant: &TenantId, _event: &ContinuityEvent) -> Result<()> {
///         println!("releasing {tenant}'s inbound mail");
///         Ok(())
///     }
/// }
/// ```
pub use async_trait::async_trait;
pub use clock::{Clock, ManualClock, SystemClock};
pub use domain::{Direction, FailureKind, Observation, Outcome, RemoteReply, TenantId};
pub use error::{Error, Result};
pub use monitor::{Monitor, MonitorBuilder, TickReport};
