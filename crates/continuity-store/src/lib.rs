//! Durable [`EventStore`](continuity_core::store::EventStore)s for
//! `continuity`: [`SqliteStore`], the embedded default (one file), and
//! [`PostgresStore`], for several instances of the embedding service sharing
//! their state.
//!
//! Both keep tenant state with compare-and-swap on a version, append audit
//! entries and outbox items in the same transaction as the state change, and
//! hand outbox entries and pending probes out under leases, so that of
//! several instances exactly one sends a due alert or checks a probe, and
//! another takes over when the holder dies. They also keep what the
//! policies learned (one row per tenant, direction and condition, replaced
//! by each hourly save), so that a restart or a take-over does not forget it. Both pass the conformance suite
//! of `continuity_core::testing::conformance`, as the in-memory store does.
//! The schema is created and migrated when a store opens; a database written
//! by a newer build is refused ([`StoreError::SchemaTooNew`]).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::{sync::Arc, time::Duration};
//! use continuity_core::{
//!     config::{ChannelKind, Recipient, TenantConfig},
//!     link::{LinkKey, LinkSigner},
//!     policy::{LatencyStatistic, LatencyThreshold},
//!     testing::RecordingNotifier,
//!     store::EventStore,
//!     Clock, Direction, ManualClock, Monitor, Observation, TenantId,
//! };
//! use continuity_store::SqliteStore;
//!
//! let dir = std::env::temp_dir().join(format!("continuity-store-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let store = Arc::new(SqliteStore::open(dir.join("continuity.db")).await?);
//! let clock = ManualClock::new("2026-03-02T08:00:00Z".parse()?);
//! let sms = Arc::new(RecordingNotifier::new(ChannelKind::Sms));
//! let monitor = Monitor::builder()
//!     .store(store.clone())
//!     .clock(Arc::new(clock.clone()))
//!     .notifier(sms.clone())
//!     .link_signer(LinkSigner::new(LinkKey::new("k1", [1u8; 32])?))
//!     .portal_url("https://continuity.example.net/c/")
//!     .build()?;
//! let acme = TenantId::new("acme")?;
//! let mut config = TenantConfig::new(acme.clone(), vec![Recipient::new("ops", ChannelKind::Sms, "+15550100")]);
//! // An absolute limit (none is on by default): p95 latency over 30 minutes.
//! config.outbound.latency = Some(LatencyThreshold::new(LatencyStatistic::P95, Duration::from_secs(30 * 60)));
//! config.outbound.raise_after = 1;
//! monitor.register_tenant(config).await?;
//! for _ in 0..3 {
//!     monitor.observe(Observation::delivered(acme.clone(), Direction::Outbound, clock.now(), Duration::from_secs(45 * 60)))?;
//! }
//! monitor.tick(clock.now()).await?;
//! assert_eq!(sms.messages().len(), 1);
//! // The raised condition and the alert's bookkeeping are in the file.
//! let stored = store.load(&acme).await?.expect("committed");
//! assert!(stored.state.any_active());
//! # drop(monitor); drop(store); std::fs::remove_dir_all(&dir)?; Ok(()) }
//! ```
//!
//! | module | holds |
//! |---|---|
//! | [`sqlite`] | [`SqliteStore`], its [`Durability`] and [`SqliteOptions`] |
//! | [`postgres`] | [`PostgresStore`], its [`PostgresOptions`] and [`PostgresTls`] |
//! | [`settings`] | the stores as configured (serde): [`SqliteSettings`], [`PostgresSettings`] with the connection string a secret reference |
//! | [`error`] | [`StoreError`] |
//!
//! Each store is a feature, both on by default: `sqlite` (rusqlite, SQLite
//! bundled) and `postgres` (tokio-postgres, deadpool, rustls). With
//! `default-features = false, features = ["sqlite"]` no PostgreSQL crate is
//! compiled, and the other way round.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod codec;
pub mod error;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod settings;
#[cfg(feature = "sqlite")]
pub mod sqlite;

pub use error::{Result, StoreError};
#[cfg(feature = "postgres")]
pub use postgres::{PostgresOptions, PostgresStore, PostgresTls};
#[cfg(feature = "sqlite")]
pub use settings::SqliteSettings;
#[cfg(feature = "postgres")]
pub use settings::{PostgresSettings, PostgresTlsSettings};
#[cfg(feature = "sqlite")]
pub use sqlite::{Durability, SqliteOptions, SqliteStore};
