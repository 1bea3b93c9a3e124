//! Exchange Web Services (EWS) for `continuity`: a SOAP client that sends and
//! finds probe messages in impersonated mailboxes, and a
//! [`MailProbe`](continuity_core::probe::MailProbe) built on it.
//!
//! # Map
//!
//! | module | holds |
//! |---|---|
//! | [`error`] | [`EwsError`] and the open set of EWS [`ResponseCode`]s |
//! | [`request`] | SOAP request bodies: CreateItem, FindItem, GetItem, DeleteItem, GetFolder |
//! | [`response`] | namespace-aware response parsing |
//! | [`client`] | the HTTP client: auth, impersonation, retries, throttling, the connection check |
#![forbid(unsafe_code)]

pub mod client;
pub mod error;
pub mod request;
pub mod response;
mod throttle;

pub use client::{Auth, ConnectionInfo, ConnectionProblem, EwsClient, EwsConfig, RetryPolicy};
pub use error::{EwsError, ResponseCode, Result};
