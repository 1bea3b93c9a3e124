//! Office 365 for `continuity`: Entra ID (Azure AD) app-only credentials
//! trusted through a certificate, and a token cache that implements core's
//! [`AccessTokenSource`](continuity_core::token::AccessTokenSource), so that
//! `continuity-ews` can talk to Exchange Online with a bearer token.
//!
//! A Microsoft Graph `MailProbe` is to come.
//!
//! ```
//! use std::sync::Arc;
//! use continuity_core::ManualClock;
//! use continuity_graph::{AppRegistration, AssertionAlgorithm, Authority, CertificateCredential};
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
//! ```
//!
//! Tokens come from a [`TokenCache`]: `cache.source(app, "https://graph.microsoft.com/.default")`
//! is an `AccessTokenSource` that reuses a token until 5 minutes before it
//! expires and sends one request per key however many callers wait.

mod assertion;
mod cache;
mod client;
mod credential;
mod error;

pub use assertion::{AppRegistration, AssertionAlgorithm, Authority, DEFAULT_ASSERTION_LIFETIME};
pub use cache::{CachedTokenSource, DEFAULT_REFRESH_AHEAD, TokenCache};
pub use client::{DEFAULT_TIMEOUT, TokenClient};
pub use credential::CertificateCredential;
pub use error::{AadstsKind, GraphError};
