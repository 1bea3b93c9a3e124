//! The crate's one error type.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};

/// Everything that can go wrong while loading an app credential or getting a token.
///
/// Variants say what to do: [`is_retryable`](GraphError::is_retryable) (ask again
/// later), [`is_config`](GraphError::is_config) (an administrator must fix the
/// certificate, the app registration or its consent). Remote failures keep the
/// remote's own `AADSTS` code and message.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GraphError {
    /// A certificate or key file does not exist or cannot be read.
    #[error("cannot read {}: {reason}", path.display())]
    FileUnreadable {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        reason: String,
    },

    /// The certificate is missing from the input (no `CERTIFICATE` PEM block, no certificate in the PKCS#12 file).
    #[error("no certificate found in {source_kind}")]
    CertificateMissing {
        /// Where it was looked for (`PEM input`, `PKCS#12 file`).
        source_kind: &'static str,
    },

    /// The private key is missing from the input.
    #[error("no private key found in {source_kind}")]
    PrivateKeyMissing {
        /// Where it was looked for.
        source_kind: &'static str,
    },

    /// The certificate, key or PKCS#12 file cannot be parsed (or the PKCS#12 password is wrong).
    #[error("invalid {what}: {reason}")]
    InvalidCredential {
        /// What was being read (`certificate`, `private key`, `PKCS#12 file`).
        what: &'static str,
        /// Why it was refused.
        reason: String,
    },

    /// The key is not an RSA key (Entra ID client assertions are RS256/PS256 here).
    #[error("unsupported key: {reason}")]
    UnsupportedKey {
        /// Which key type was found.
        reason: String,
    },

    /// The private key does not belong to the certificate.
    #[error("the private key does not match the certificate's public key")]
    KeyMismatch,

    /// The certificate's validity period has ended.
    #[error(
        "certificate expired at {not_after} (now {now}); upload a renewed certificate to the app registration and configure it here"
    )]
    CertificateExpired {
        /// End of validity.
        not_after: DateTime<Utc>,
        /// The clock's time when it was checked.
        now: DateTime<Utc>,
    },

    /// The certificate's validity period has not begun.
    #[error(
        "certificate not valid before {not_before} (now {now}); check the clock or the certificate"
    )]
    CertificateNotYetValid {
        /// Start of validity.
        not_before: DateTime<Utc>,
        /// The clock's time when it was checked.
        now: DateTime<Utc>,
    },

    /// A configuration value is invalid (tenant, client id, scope, authority URL).
    #[error("invalid configuration: {field}: {reason}")]
    InvalidConfig {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },

    /// The client assertion could not be signed.
    #[error("cannot sign the client assertion: {reason}")]
    Signing {
        /// Why.
        reason: String,
    },

    /// The token endpoint could not be reached, or its answer was cut off.
    #[error("token endpoint unreachable: {reason}")]
    Transport {
        /// The transport error.
        reason: String,
    },

    /// The token endpoint answered something that is not a token response.
    #[error("unexpected token response (HTTP {status}): {reason}")]
    UnexpectedResponse {
        /// HTTP status.
        status: u16,
        /// What was wrong with it.
        reason: String,
    },

    /// Entra ID refused the token request; `kind` says what an administrator must fix.
    #[error("Entra ID refused the token request ({}, HTTP {status}): {}: {description}",
        code.map(|c| format!("AADSTS{c}")).unwrap_or_else(|| error.clone()), kind.advice())]
    Aadsts {
        /// What the code means for the administrator.
        kind: AadstsKind,
        /// The first `AADSTS` number from `error_codes`, if any.
        code: Option<u32>,
        /// The OAuth `error` field (`invalid_client`, `unauthorized_client`, …).
        error: String,
        /// The remote's `error_description`, unchanged.
        description: String,
        /// HTTP status.
        status: u16,
        /// The remote's `Retry-After`, if it sent one.
        retry_after: Option<Duration>,
    },
}

/// What an `AADSTS` error means for whoever must fix it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AadstsKind {
    /// 90002: the tenant does not exist (wrong tenant id or domain, or wrong cloud).
    UnknownTenant,
    /// 700016: the application (client id) is not found in the tenant.
    UnknownApplication,
    /// 700027, 7000274, 50012: the certificate is not registered on the app, or the signature is invalid.
    CertificateNotRegistered,
    /// 7000214, 7000277, 1000502: the registered certificate is revoked or outside its validity.
    CertificateRevokedOrExpired,
    /// 65001, 650056, 650057, 90094: admin consent or an application permission is missing.
    ConsentMissing,
    /// 700024: the assertion's time window does not contain Entra ID's time (clock skew).
    ClockSkew,
    /// 500011, 70011, 700022, 700023: the scope or its resource is wrong for this tenant.
    InvalidScope,
    /// 53003: blocked by Conditional Access.
    ConditionalAccess,
    /// 90055, 50196, 50033, 90006, 90024 or `temporarily_unavailable`: try again later.
    Transient,
    /// Any other code: kept with its number and message.
    Other,
}

impl AadstsKind {
    /// Classifies an `AADSTS` number (or, without one, the OAuth `error` string).
    pub fn classify(code: Option<u32>, error: &str) -> Self {
        match code {
            Some(90002) => AadstsKind::UnknownTenant,
            Some(700016) => AadstsKind::UnknownApplication,
            Some(700027 | 7000274 | 50012) => AadstsKind::CertificateNotRegistered,
            Some(7000214 | 7000277 | 1000502) => AadstsKind::CertificateRevokedOrExpired,
            Some(65001 | 650056 | 650057 | 90094) => AadstsKind::ConsentMissing,
            Some(700024) => AadstsKind::ClockSkew,
            Some(500011 | 70011 | 700022 | 700023) => AadstsKind::InvalidScope,
            Some(53003) => AadstsKind::ConditionalAccess,
            Some(90055 | 50196 | 50033 | 90006 | 90024) => AadstsKind::Transient,
            None if error == "temporarily_unavailable" => AadstsKind::Transient,
            _ => AadstsKind::Other,
        }
    }

    /// What the administrator must do, in one sentence.
    pub fn advice(self) -> &'static str {
        match self {
            AadstsKind::UnknownTenant => {
                "the tenant is unknown: check the tenant id or domain and the cloud (authority)"
            }
            AadstsKind::UnknownApplication => {
                "the application is unknown in this tenant: check the client id, or register or consent the app in this tenant"
            }
            AadstsKind::CertificateNotRegistered => {
                "the certificate is not registered on the app registration (or the signature is invalid): upload this certificate under Certificates & secrets"
            }
            AadstsKind::CertificateRevokedOrExpired => {
                "the certificate is revoked or outside its validity: upload and configure a renewed certificate"
            }
            AadstsKind::ConsentMissing => {
                "admin consent or an application permission is missing: grant admin consent for the required application permissions"
            }
            AadstsKind::ClockSkew => {
                "the assertion is outside its valid time range: synchronise this host's clock"
            }
            AadstsKind::InvalidScope => {
                "the scope or its resource is wrong for this tenant: check the configured scope"
            }
            AadstsKind::ConditionalAccess => {
                "blocked by a Conditional Access policy: exclude this workload identity or adjust the policy"
            }
            AadstsKind::Transient => "Entra ID is busy or temporarily unavailable: retry later",
            AadstsKind::Other => "see the code and message",
        }
    }
}

impl GraphError {
    /// Whether asking again later can succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            GraphError::Transport { .. } => true,
            GraphError::UnexpectedResponse { status, .. } => *status == 429 || *status >= 500,
            GraphError::Aadsts { kind, status, .. } => {
                *kind == AadstsKind::Transient || *status == 429 || *status >= 500
            }
            _ => false,
        }
    }

    /// Whether an administrator must change the certificate, the configuration or the app registration.
    pub fn is_config(&self) -> bool {
        !self.is_retryable()
            && !matches!(
                self,
                GraphError::Signing { .. } | GraphError::UnexpectedResponse { .. }
            )
    }

    /// The remote's `AADSTS` code, if Entra ID sent one.
    pub fn aadsts_code(&self) -> Option<u32> {
        match self {
            GraphError::Aadsts { code, .. } => *code,
            _ => None,
        }
    }

    /// How long the remote asked to wait, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            GraphError::Aadsts { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

impl From<GraphError> for continuity_core::Error {
    fn from(e: GraphError) -> Self {
        let code = match &e {
            GraphError::Aadsts { code: Some(c), .. } => Some(format!("AADSTS{c}")),
            GraphError::Aadsts { error, .. } => Some(error.clone()),
            GraphError::UnexpectedResponse { status, .. } => Some(format!("HTTP {status}")),
            _ => None,
        };
        continuity_core::Error::Probe {
            retryable: e.is_retryable(),
            code,
            message: e.to_string(),
        }
    }
}
