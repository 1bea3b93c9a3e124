//! Office 365 for `continuity`: Entra ID (Azure AD) app-only credentials
//! trusted through a certificate, a token cache that implements core's
//! [`AccessTokenSource`](continuity_core::access_token::AccessTokenSource) (so that
//! `continuity-ews` can talk to Exchange Online with a bearer token too), and
//! a Microsoft Graph [`MailProbe`](continuity_core::probe::MailProbe),
//! [`GraphProbe`], with a connection check and a limiter that keeps Graph's
//! mailbox limits.
//!
//! ```
//! use std::sync::Arc;
//! use continuity_core::{arrival::ArrivalRegistry, ManualClock, TenantId};
//! use continuity_graph::{
//!     AppRegistration, AssertionAlgorithm, Authority, CertificateCredential, GraphClient,
//!     GraphConfig, GraphProbe, GraphTenantProbe, TokenCache, TokenClient,
//! };
//!
//! // A certificate as an administrator would upload it to the app registration.
//! let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
//! let cert = rcgen::CertificateParams::new(vec!["continuity-monitor".into()])
//!     .unwrap()
//!     .self_signed(&key)
//!     .unwrap();
//! let now: chrono::DateTime<chrono::Utc> = "2026-03-02T08:00:00Z".parse().unwrap();
//! let clock = ManualClock::new(now);
//! let credential = CertificateCredential::from_pem(
//!     cert.pem().as_bytes(),
//!     key.serialize_pem().as_bytes(),
//!     &clock,
//! )
//! .unwrap();
//!
//! let app = AppRegistration::new("contoso.onmicrosoft.com", "11111111-2222-3333-4444-555555555555", Arc::new(credential))
//!     .unwrap()
//!     .with_authority(Authority::UsGovernment)
//!     .with_algorithm(AssertionAlgorithm::Ps256);
//! assert_eq!(
//!     app.token_endpoint(),
//!     "https://login.microsoftonline.us/contoso.onmicrosoft.com/oauth2/v2.0/token"
//! );
//! let jwt = app.client_assertion(now).unwrap();
//! let header = jsonwebtoken::decode_header(&jwt).unwrap();
//! assert_eq!(header.alg, jsonwebtoken::Algorithm::PS256);
//! assert_eq!(header.x5t_s256.as_deref(), Some(app.credential().x5t_s256()));
//!
//! // Graph of the same cloud, with tokens from a shared cache.
//! let clock = Arc::new(clock);
//! let cache = TokenCache::new(TokenClient::new(clock.clone()).unwrap());
//! let scope = app.authority().graph_scope().unwrap();
//! assert_eq!(scope, "https://graph.microsoft.us/.default");
//! let config = GraphConfig::for_authority(app.authority()).unwrap();
//! assert_eq!(config.endpoint, "https://graph.microsoft.us/v1.0");
//! let client = GraphClient::new(config, Arc::new(cache.source(Arc::new(app), scope)), clock).unwrap();
//!
//! // One probe for both directions; the gateway reports outbound arrivals.
//! let arrivals = Arc::new(ArrivalRegistry::default());
//! let probe = GraphProbe::new("probe@gateway.example", arrivals, None);
//! probe.set_tenant(TenantId::new("contoso").unwrap(), GraphTenantProbe {
//!     client,
//!     outbound_from: Some("probe-out@contoso.com".into()),
//!     inbound_mailbox: Some("probe-in@contoso.com".into()),
//! });
//! ```
//!
//! # Access tokens
//!
//! Access tokens come from a [`TokenCache`]: `cache.source(app, "https://graph.microsoft.com/.default")`
//! is an `AccessTokenSource` that reuses an access token until 5 minutes before it
//! expires and sends one request per key however many callers wait.
//!
//! # Graph
//!
//! The application needs the **application** permissions `Mail.Send`
//! (outbound probes) and `Mail.ReadWrite` (finding and deleting inbound
//! probes) with admin consent; an application access policy should scope it
//! to the probe mailboxes. [`GraphClient::check_connection`] (or
//! [`GraphProbe::check_tenant`]) names what is missing: the tenant or the
//! application unknown, the certificate not registered, consent or a
//! permission missing, the mailbox out of the application's scope or not
//! found. It sends nothing, so a scope limited to `Mail.Send` shows only at
//! the first outbound probe.
//!
//! Outbound probes go out with `sendMail` (`saveToSentItems: false`), the
//! token in the subject and in the header `X-Continuity-Probe-Id`. Inbound
//! probes are found in the Inbox, then Junk Email, by that header's named
//! property or by the subject token, without `$orderby` (see [`odata`]),
//! following `@odata.nextLink`, and are then deleted (`permanentDelete`; in
//! the national clouds, which lack it, moved to Deleted Items).
//!
//! A fleet builds one [`GraphClient`] and derives each further tenant's with
//! [`GraphClient::for_app`]: its own tokens and limiter over the first
//! client's HTTP connection pool (a client of its own costs milliseconds and
//! about 100 KB).
//!
//! Every request passes the client's [`Limiter`]: at most 4 concurrent
//! requests per mailbox and per application, at most 10,000 per mailbox in
//! any 10 minutes, and none to a mailbox while Graph's `Retry-After` runs. A
//! request over a limit is not sent; it fails at once with
//! [`GraphError::Throttled`] and the time it may go. That, Graph's 429, and
//! a 503/504 with `Retry-After` reach the monitor as core's
//! `Error::ProbeThrottled`, which delays the next round instead of counting
//! a failure. A 401 drops the token and retries once with a fresh one.
//!
//! # Map
//!
//! | module | holds |
//! |---|---|
//! | `credential`, `app_registration` | [`CertificateCredential`], [`AppRegistration`], [`Authority`] (token endpoint, Graph endpoint and scope per cloud) |
//! | `token_client`, `token_cache` | [`TokenClient`], [`TokenCache`] and its [`CachedTokenSource`] |
//! | `graph_client` | [`GraphClient`]: sendMail, finding and deleting probes, Graph's JSON errors |
//! | [`odata`] | the `$filter` and query strings sent |
//! | `limiter` | [`Limiter`], Graph's mailbox limits on core's `Clock` |
//! | `connection_check` | the connection check: [`GraphConnectionInfo`], [`GraphConnectionProblem`] |
//! | `probe` | [`GraphProbe`], the `MailProbe` for both directions |
//! | `settings` | the app registration ([`AppRegistrationSettings`]: tenant, client id, cloud, certificate files) and the client ([`GraphSettings`]) as configured (serde) |
//! | `error` | [`GraphError`], the crate's one error type |

mod app_registration;
mod connection_check;
mod credential;
mod error;
mod graph_client;
mod limiter;
pub mod odata;
mod probe;
mod settings;
mod token_cache;
mod token_client;

pub use app_registration::{
    AppRegistration, AssertionAlgorithm, Authority, DEFAULT_ASSERTION_LIFETIME,
};
pub use connection_check::{GraphConnectionInfo, GraphConnectionProblem, MailboxUse, SendCheck};
pub use credential::CertificateCredential;
pub use error::{AadstsKind, GraphError, GraphInnerError, GraphOperation, Result, ThrottleReason};
pub use graph_client::{
    DEFAULT_GRAPH_CONNECT_TIMEOUT, DEFAULT_GRAPH_MAX_RESPONSE_BYTES, DEFAULT_GRAPH_TIMEOUT,
    DEFAULT_GRAPH_USER_AGENT, DEFAULT_MAX_PAGES, DEFAULT_PAGE_SIZE, DeleteMode, FoundMessage,
    GraphClient, GraphConfig, MailMessage,
};
pub use limiter::{
    GRAPH_MAILBOX_CONCURRENCY, GRAPH_MAILBOX_REQUESTS, GRAPH_MAILBOX_WINDOW, Limiter, MailboxLimits,
};
pub use probe::{GraphProbe, GraphTenantProbe};
pub use settings::{AppRegistrationSettings, CertificateSettings, GraphSettings};
pub use token_cache::{CachedTokenSource, DEFAULT_REFRESH_AHEAD, TokenCache};
pub use token_client::{DEFAULT_TOKEN_TIMEOUT, TokenClient};
