//! Exchange Web Services (EWS) for `continuity`: a SOAP client that sends and
//! finds probe messages in impersonated mailboxes, and a
//! [`MailProbe`](continuity_core::probe::MailProbe) built on it.
//!
//! This is the on-premises path (Basic auth over HTTPS; Bearer tokens from a
//! [`continuity_core::access_token::AccessTokenSource`] for the legacy Exchange
//! Online mode, which reports [`EwsError::EwsDisabled`] once Microsoft has
//! switched EWS off for the tenant).
//!
//! ```
//! use std::sync::Arc;
//! use continuity_core::TenantId;
//! use continuity_ews::{
//!     arrival::wire_id,
//!     request::{self, Envelope, Disposition, ProbeMessage, ServerVersion},
//!     response::{parse_http, HttpMeta},
//!     ArrivalRegistry, Auth, EwsClient, EwsConfig, EwsError, EwsProbe, EwsTenantProbe,
//! };
//!
//! // One client per service account; its tenants share it (pool, concurrency cap, back-off).
//! let client = EwsClient::new(EwsConfig::new(
//!     "https://mail.acme.example/EWS/Exchange.asmx",
//!     Auth::basic("ACME\\svc-continuity", "s3cret"),
//! ))?;
//! assert!(!format!("{client:?}").contains("s3cret"));
//!
//! // The probe serves both directions; the gateway feeds outbound arrivals in.
//! let arrivals = Arc::new(ArrivalRegistry::default());
//! let probe = EwsProbe::new("probe@gateway.example", arrivals.clone(), None);
//! let acme = TenantId::new("acme").unwrap();
//! probe.set_tenant(acme.clone(), EwsTenantProbe {
//!     client,
//!     outbound_from: Some("probe-out@acme.example".into()),
//!     inbound_mailbox: Some("probe-in@acme.example".into()),
//!     save_sent_copy: false,
//! });
//!
//! // What goes on the wire: a CreateItem carrying the token in the subject and an X-header.
//! let probe_token = wire_id(&acme, "ou-19a8b");
//! let env = Envelope::impersonating(ServerVersion::Exchange2013Sp1, "probe-out@acme.example");
//! let body = request::create_item(&env, &ProbeMessage {
//!     probe_id: &probe_token, to: "probe@gateway.example", disposition: Disposition::SendOnly,
//! });
//! assert!(body.contains("<t:PrimarySmtpAddress>probe-out@acme.example</t:PrimarySmtpAddress>"));
//! assert!(body.contains(r#"PropertyName="X-Continuity-Probe-Id""#));
//!
//! // The gateway reports the probe when it arrives there.
//! let at = "2026-03-02T08:00:41Z".parse().unwrap();
//! assert_eq!(arrivals.report_message(Some(&request::probe_subject(&probe_token)), None, at).unwrap().0, acme);
//!
//! // Answers parse whatever the prefixes; throttling keeps its back-off.
//! let busy = br#"<Envelope xmlns="http://schemas.xmlsoap.org/soap/envelope/"><Body><Fault>
//!   <faultcode xmlns:a="http://schemas.microsoft.com/exchange/services/2006/types">a:ErrorServerBusy</faultcode>
//!   <faultstring>The server cannot service this request right now.</faultstring><detail>
//!   <MessageXml xmlns="http://schemas.microsoft.com/exchange/services/2006/types">
//!   <Value Name="BackOffMilliseconds">5000</Value></MessageXml></detail></Fault></Body></Envelope>"#;
//! let err = parse_http("FindItem", &HttpMeta { status: 500, ..Default::default() }, busy).unwrap_err();
//! assert!(matches!(err, EwsError::ServerBusy { .. }) && err.is_retryable());
//! assert_eq!(err.retry_after(), Some(std::time::Duration::from_millis(5000)));
//! # Ok::<(), EwsError>(())
//! ```
//!
//! # Map
//!
//! | module | holds |
//! |---|---|
//! | [`error`] | [`EwsError`] and the open set of EWS [`ResponseCode`]s |
//! | [`request`] | SOAP request bodies: CreateItem, FindItem, GetItem, DeleteItem, GetFolder |
//! | [`response`] | namespace-aware response parsing |
//! | [`probe`] | [`EwsProbe`], the [`MailProbe`](continuity_core::probe::MailProbe) for both directions |
//! | [`arrival`] | probe tokens on the wire and the [`ArrivalRegistry`] the gateway feeds |
//! | [`client`] | the HTTP client: auth, impersonation, retries, throttling, the connection check |
//! | `smtp_sender` | (feature `smtp`) [`SmtpProbeSender`], sending inbound probes through an SMTP relay |
//! | [`settings`] | the client ([`EwsSettings`](settings::EwsSettings): Basic, NTLM or bearer, passwords as secret references) and the SMTP sender as configured (serde) |
#![forbid(unsafe_code)]

pub mod arrival;
pub mod client;
pub mod error;
#[cfg(feature = "ntlm")]
mod ntlm;
#[cfg(feature = "ntlm")]
mod ntlm_conn;
pub mod probe;
pub mod request;
pub mod response;
pub mod settings;
#[cfg(feature = "smtp")]
pub mod smtp_sender;
mod throttle;

pub use arrival::ArrivalRegistry;
pub use client::{
    Auth, EwsClient, EwsConfig, EwsConnectionInfo, EwsConnectionProblem, EwsRetryPolicy,
};
pub use error::{EwsError, ResponseCode, Result};
pub use probe::{EwsProbe, EwsTenantProbe, OutgoingProbe, ProbeSender};
#[cfg(feature = "smtp")]
pub use smtp_sender::{
    RelayConfig, SmtpCredentials, SmtpProbeSender, SmtpSecurity, SmtpSenderConfig,
};
