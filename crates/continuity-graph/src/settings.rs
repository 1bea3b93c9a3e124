//! The app registration and the Graph client as written in configuration:
//! the certificate as file paths, a PKCS#12 password as a [`SecretRef`],
//! durations as `"30s"`.
//!
//! ```toml
//! [app]                                            # AppRegistrationSettings
//! tenant = "contoso.onmicrosoft.com"
//! client_id = "11111111-2222-3333-4444-555555555555"
//! authority = "public"                             # "us_government", "china", { custom = "https://.." }
//! certificate = { pem = "/etc/continuity/app.crt", key = "/etc/continuity/app.key" }
//! # or: certificate = { pkcs12 = "/etc/continuity/app.pfx", password = { env = "APP_PFX_PASSWORD" } }
//!
//! [graph]                                          # GraphSettings
//! request_timeout = "20s"
//! limits = { requests_per_window = 5000 }
//! ```
//!
//! The same app registration gives EWS its bearer tokens: a
//! [`TokenCache`](crate::TokenCache) source for it with the scope
//! `https://outlook.office365.com/.default`.

use std::{path::PathBuf, sync::Arc, time::Duration};

use chrono::TimeDelta;
use continuity_core::{Clock, duration::serde_duration, secret::SecretRef};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::{
    app_registration::{
        AppRegistration, AssertionAlgorithm, Authority, DEFAULT_ASSERTION_LIFETIME,
    },
    credential::CertificateCredential,
    error::GraphError,
    graph_client::{
        DEFAULT_GRAPH_CONNECT_TIMEOUT, DEFAULT_GRAPH_MAX_RESPONSE_BYTES, DEFAULT_GRAPH_TIMEOUT,
        DEFAULT_GRAPH_USER_AGENT, DEFAULT_MAX_PAGES, DEFAULT_PAGE_SIZE, DeleteMode, GraphConfig,
    },
    limiter::MailboxLimits,
};

/// An Entra ID app registration as configured; the defaults are those of
/// [`AppRegistration::new`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppRegistrationSettings {
    /// The tenant: its GUID or a verified domain.
    pub tenant: String,
    /// The application (client) id.
    pub client_id: String,
    /// The cloud (default public).
    #[serde(default)]
    pub authority: Authority,
    /// The assertion's signature (default PS256).
    #[serde(default)]
    pub algorithm: AssertionAlgorithm,
    /// How long an assertion is valid, 5 to 10 minutes (default
    /// [`DEFAULT_ASSERTION_LIFETIME`], 10 minutes).
    #[serde(default = "assertion_lifetime", with = "serde_duration")]
    pub assertion_lifetime: Duration,
    /// The certificate and key registered on the application.
    pub certificate: CertificateSettings,
}

/// Where the app's certificate and key are: PEM files
/// (`{ pem = "app.crt", key = "app.key" }`, `key` left out when `pem` holds
/// both) or a PKCS#12 file (`{ pkcs12 = "app.pfx", password = { env = ".." } }`,
/// no password for an unprotected file).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateSettings {
    /// A PEM file with the certificate (and the key, unless `key` is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pem: Option<PathBuf>,
    /// A PEM file with the private key (PKCS#8 or PKCS#1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    /// A PKCS#12 (`.pfx`) file with both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pkcs12: Option<PathBuf>,
    /// Where the PKCS#12 file's password is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<SecretRef>,
}

fn assertion_lifetime() -> Duration {
    Duration::from_secs(DEFAULT_ASSERTION_LIFETIME.num_seconds().unsigned_abs())
}

impl CertificateSettings {
    /// Loads and checks the credential (see [`CertificateCredential`]):
    /// the key must match the certificate, valid at `clock`'s time.
    pub fn load(&self, clock: &dyn Clock) -> Result<CertificateCredential, GraphError> {
        match (&self.pem, &self.key, &self.pkcs12, &self.password) {
            (Some(pem), key, None, None) => {
                CertificateCredential::from_pem_files(pem, key.as_deref().unwrap_or(pem), clock)
            }
            (None, None, Some(pkcs12), password) => {
                let password = match password {
                    Some(p) => p.resolve().map_err(|e| GraphError::InvalidConfig {
                        field: "certificate.password",
                        reason: e.to_string(),
                    })?,
                    None => SecretString::from(""),
                };
                CertificateCredential::from_pkcs12_file(pkcs12, &password, clock)
            }
            _ => Err(GraphError::InvalidConfig {
                field: "certificate",
                reason: "either { pem = \"app.crt\", key = \"app.key\" } (key optional) \
                         or { pkcs12 = \"app.pfx\", password = { env = \"NAME\" } } (password optional)"
                    .into(),
            }),
        }
    }
}

impl AppRegistrationSettings {
    /// Loads the certificate (checked at `clock`'s time) and builds the
    /// app registration.
    ///
    /// # Errors
    ///
    /// The credential's errors (file unreadable, key not matching,
    /// certificate expired) and [`GraphError::InvalidConfig`] for `tenant`,
    /// `client_id`, `assertion_lifetime`, `certificate` or
    /// `certificate.password`.
    pub fn build(&self, clock: &dyn Clock) -> Result<AppRegistration, GraphError> {
        let credential = self.certificate.load(clock)?;
        let lifetime = TimeDelta::from_std(self.assertion_lifetime).map_err(|_| {
            GraphError::InvalidConfig {
                field: "assertion_lifetime",
                reason: "must be 300 to 600 s".into(),
            }
        })?;
        AppRegistration::new(
            self.tenant.clone(),
            self.client_id.clone(),
            Arc::new(credential),
        )?
        .with_authority(self.authority.clone())
        .with_algorithm(self.algorithm)
        .with_assertion_lifetime(lifetime)
    }
}

/// A [`GraphClient`](crate::GraphClient) as configured. Every field is
/// optional, with the defaults of [`GraphConfig::for_authority`] for the
/// app registration's cloud.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GraphSettings {
    /// Graph's service root (default: the cloud's, e.g.
    /// `https://graph.microsoft.com/v1.0`; required for a custom authority).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Timeout of one request (default [`DEFAULT_GRAPH_TIMEOUT`], 30 s).
    #[serde(with = "serde_duration")]
    pub request_timeout: Duration,
    /// Timeout of connecting (default [`DEFAULT_GRAPH_CONNECT_TIMEOUT`], 10 s).
    #[serde(with = "serde_duration")]
    pub connect_timeout: Duration,
    /// The mailbox limits kept (default: Graph's own, [`MailboxLimits::default`]).
    pub limits: MailboxLimits,
    /// `$top` of a message listing, 1 to 1000 (default [`DEFAULT_PAGE_SIZE`], 50).
    pub page_size: u32,
    /// Pages followed per listing at most (default [`DEFAULT_MAX_PAGES`], 20).
    pub max_pages: u32,
    /// How found probes are removed (default: `"permanent"` in the public
    /// cloud, `"move_to_deleted_items"` in the others).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delete_mode: Option<DeleteMode>,
    /// Largest answer read, in bytes (default [`DEFAULT_GRAPH_MAX_RESPONSE_BYTES`], 4 MiB).
    pub max_response_bytes: usize,
    /// Allows `http://` endpoints (local tests only; default false).
    pub allow_plain_http: bool,
    /// The `User-Agent` sent (default [`DEFAULT_GRAPH_USER_AGENT`]).
    pub user_agent: String,
}

impl Default for GraphSettings {
    fn default() -> Self {
        GraphSettings {
            endpoint: None,
            request_timeout: DEFAULT_GRAPH_TIMEOUT,
            connect_timeout: DEFAULT_GRAPH_CONNECT_TIMEOUT,
            limits: MailboxLimits::default(),
            page_size: DEFAULT_PAGE_SIZE,
            max_pages: DEFAULT_MAX_PAGES,
            delete_mode: None,
            max_response_bytes: DEFAULT_GRAPH_MAX_RESPONSE_BYTES,
            allow_plain_http: false,
            user_agent: DEFAULT_GRAPH_USER_AGENT.into(),
        }
    }
}

impl GraphSettings {
    /// The client's config for the Graph of `authority`'s cloud (checked
    /// when the client is built, [`GraphClient::new`](crate::GraphClient::new)).
    ///
    /// # Errors
    ///
    /// [`GraphError::InvalidConfig`] for `endpoint` when a custom authority
    /// has none configured.
    pub fn config(&self, authority: &Authority) -> Result<GraphConfig, GraphError> {
        let mut config = match &self.endpoint {
            Some(endpoint) => {
                let mut config = GraphConfig::new(endpoint.clone());
                // The cloud still decides how probes are deleted.
                if let Ok(cloud) = GraphConfig::for_authority(authority) {
                    config.delete_mode = cloud.delete_mode;
                }
                config
            }
            None => GraphConfig::for_authority(authority)?,
        };
        config.request_timeout = self.request_timeout;
        config.connect_timeout = self.connect_timeout;
        config.limits = self.limits;
        config.page_size = self.page_size;
        config.max_pages = self.max_pages;
        if let Some(mode) = self.delete_mode {
            config.delete_mode = mode;
        }
        config.max_response_bytes = self.max_response_bytes;
        config.allow_plain_http = self.allow_plain_http;
        config.user_agent = self.user_agent.clone();
        Ok(config)
    }
}
