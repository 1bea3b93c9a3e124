//! A whole service from one configuration file, and the tick loop that
//! runs it (feature `service`, on by default).
//!
//! [`ServiceConfig`] is the file: the store, the engine's settings, the
//! link keys, the portal, the notifiers (each wrapped in one
//! [`Delivery`](continuity_notify::delivery::Delivery)), the mail probes
//! (EWS accounts and Graph app registrations by name, the SMTP sender of
//! inbound probes) and the tenants, each a
//! [`TenantConfig`](continuity_core::config::TenantConfig) plus the probe
//! that watches it. Reading it refuses unknown fields and wrong values
//! with their path (`tenants[2] "acme": outbound.failures: ...`); building
//! it ([`ServiceConfig::service`]) reads the secrets, opens the store and
//! returns a [`Service`]: the [`Monitor`](continuity_core::Monitor) with
//! its tenants registered, the portal router's inputs, the arrival
//! registry the gateway feeds; [`ServiceBuilder::check`] refuses what
//! building would, without opening the store or connecting anywhere (a
//! `--check` mode). A [`Runner`] ticks it on tokio until SIGTERM, ctrl-c
//! or a future of the embedder's.
//!
//! ```
//! use std::sync::Arc;
//! use continuity::{ManualClock, service::ServiceConfig};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = ServiceConfig::from_toml_str(r#"
//!     portal_url = "https://gateway.example/continuity/"
//!
//!     [store]
//!     memory = true                # or sqlite = { path = "..." }, postgres = { url = { env = "..." } }
//!
//!     [runner]
//!     interval = "1m"
//!
//!     [links]
//!     keys = [ { id = "k1", secret = { inline = "0123456789abcdef0123456789abcdef" } } ]
//!
//!     [portal]
//!     csrf_key = { inline = "fedcba9876543210fedcba9876543210" }
//!
//!     [notifiers.webhook]
//!     secret = { inline = "a webhook secret of 32 bytes...." }
//!
//!     [[tenants]]
//!     tenant = "acme"
//!     recipients = [ { id = "ops", channel = "webhook", address = "https://ops.acme.example/hook" } ]
//! "#)?;
//! println!("{}", config.describe());
//!
//! let clock = ManualClock::new("2026-03-02T09:00:00Z".parse()?);
//! let service = config.service().clock(Arc::new(clock)).build().await?;
//! let report = service.monitor().tick_now().await?;
//! assert!(report.errors.is_empty());
//! // Nest `service.portal_router()` under /continuity, then, until SIGTERM or ctrl-c:
//! // service.runner().run().await?;
//! # Ok(()) }
//! ```
//!
//! A complete file, every section (secrets are never written in it, but
//! referenced: `{ env = "NAME" }` or `{ file = "path" }`):
//!
//! ```toml
//! portal_url = "https://gateway.example/continuity/"   # a `/` is added when missing
//!
//! [store]                      # exactly one of sqlite, postgres, memory = true
//! sqlite = { path = "/var/lib/continuity/state.db" }
//! # postgres = { url = { env = "CONTINUITY_DATABASE_URL" }, schema = "continuity" }
//! # cluster = "gw-1"           # this instance's name, with several sharing PostgreSQL
//!
//! [monitor]                    # continuity::monitor::MonitorSettings, every field optional
//! lease = "2m"
//!
//! [runner]                     # RunnerSettings: interval 1m, max_backoff 10m
//! interval = "1m"
//!
//! [links]                      # continuity::link::LinkSettings: the first key signs
//! keys = [ { id = "k1", secret = { file = "/run/secrets/link-k1" } } ]
//!
//! [portal]                     # continuity::web::PortalSettings
//! csrf_key = { file = "/run/secrets/portal-csrf" }
//!
//! [notifiers.sms]              # at least one of sms, email, webhook
//! account_sid = "AC0123456789abcdef0123456789abcdef"
//! auth_token = { env = "TWILIO_AUTH_TOKEN" }
//! sender = { from = "+15550100" }
//!
//! [notifiers.email]
//! from = "Continuity <alerts@gateway.example>"
//! relay = { host = "relay.gateway.example", credentials = { user = "alerts", password = { env = "RELAY_PASSWORD" } } }
//!
//! [notifiers.delivery]         # retries, breakers, fallbacks: every field optional
//! fallback_after = "10m"
//!
//! [probes]
//! gateway_address = "probe@gateway.example"      # outbound probes are sent here
//! smtp_sender = { from = "probe@gateway.example", relay = { host = "relay.gateway.example" } }
//!
//! [probes.ews.onprem]          # an EWS service account
//! client = { endpoint = "https://mail.acme.example/EWS/Exchange.asmx", auth = { method = "ntlm", domain = "ACME", username = "svc-continuity", password = { env = "EWS_PASSWORD" } } }
//!
//! [probes.graph.contoso]       # an Entra ID app registration, for Graph
//! app = { tenant = "contoso.onmicrosoft.com", client_id = "11111111-2222-3333-4444-555555555555", certificate = { pem = "/etc/continuity/contoso.pem" } }
//!
//! [[tenants]]                  # a TenantConfig, plus mail_probe
//! tenant = "acme"
//! recipients = [ { id = "ops", channel = "sms", address = "+15550100" } ]
//! mail_probe = { ews = "onprem", outbound_from = "probe-out@acme.example", inbound_mailbox = "probe-in@acme.example" }
//!
//! [[tenants]]
//! tenant = "contoso"
//! recipients = [ { id = "it", channel = "email", address = "it@contoso.example" } ]
//! mail_probe = { graph = "contoso", outbound_from = "probe-out@contoso.com", inbound_mailbox = "probe-in@contoso.com" }
//! ```
//!
//! An EWS account with `auth = { method = "bearer" }` (Exchange Online)
//! names the app registration its tokens come from:
//! `[probes.ews.online] client = { .., auth = { method = "bearer" } }, app = "contoso"`.
//! A tenant without `mail_probe` is watched passively only.
//!
//! | module | holds |
//! |---|---|
//! | `config` | [`ServiceConfig`] and its sections, reading and checking |
//! | `build` | [`ServiceBuilder`], [`Service`] |
//! | `probes` | [`TenantProbes`]: each tenant's probe, EWS or Graph |
//! | `describe` | [`Summary`]: what would run, without secrets |
//! | `runner` | [`Runner`], [`RunnerSettings`], [`shutdown_signal`] |
//! | [`http`] | `POST /observe`, `GET /healthz`, and the bounded HTTP server |
//! | `error` | [`ServiceError`] |

mod build;
mod config;
mod describe;
mod error;
pub mod http;
mod probes;
mod runner;

pub use build::{Service, ServiceBuilder};
pub use config::{
    EwsAccount, GraphApp, NotifierConfig, ProbesConfig, ServiceConfig, ServiceTenant, StoreConfig,
    TenantMailProbe,
};
pub use describe::Summary;
pub use error::ServiceError;
pub use probes::TenantProbes;
pub use runner::{
    DEFAULT_MAX_BACKOFF, DEFAULT_TICK_INTERVAL, RunSummary, Runner, RunnerSettings,
    TICK_ERRORS_METRIC, shutdown_signal,
};
