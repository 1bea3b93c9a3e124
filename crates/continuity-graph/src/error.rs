//! The crate's one error type.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};

/// Result alias of this crate.
pub type Result<T, E = GraphError> = std::result::Result<T, E>;

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

    /// The private key is encrypted (protected by a password); PEM keys are
    /// read only in the clear. Decrypt it once, or use a PKCS#12 file with
    /// its password.
    #[error(
        "the private key is encrypted ({format}); decrypt it first, e.g. `{command}` (asks for its password), or load a PKCS#12 file with its password"
    )]
    PrivateKeyEncrypted {
        /// How it is encrypted: `PKCS#8` (`ENCRYPTED PRIVATE KEY`) or
        /// `OpenSSL legacy PEM` (`Proc-Type: 4,ENCRYPTED`).
        format: &'static str,
        /// The OpenSSL command that writes it out in the clear.
        command: &'static str,
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

    /// The access-token source failed (for a [`CachedTokenSource`](crate::CachedTokenSource):
    /// an Entra ID refusal, whose `AADSTS` code is kept in `code` and classified in `kind`).
    #[error("no access token for Graph: {message}")]
    AccessToken {
        /// What the `AADSTS` code means for the administrator, if the source sent one.
        kind: Option<AadstsKind>,
        /// The source's code (`AADSTS700016`, …), if any.
        code: Option<String>,
        /// Whether asking again later can succeed.
        retryable: bool,
        /// The source's message.
        message: String,
    },

    /// Microsoft Graph refused a request and said why in its JSON error body.
    #[error("Graph refused {operation} (HTTP {status}, {code}): {message}{}{}",
        retry_after.map(|r| format!(" [Retry-After {} s]", r.as_secs())).unwrap_or_default(),
        inner.request_id.as_ref().map(|r| format!(" [request-id {r}]")).unwrap_or_default())]
    Graph {
        /// What was being done.
        operation: GraphOperation,
        /// HTTP status.
        status: u16,
        /// Graph's `error.code` (`ErrorAccessDenied`, `ErrorInvalidUser`, …).
        code: String,
        /// Graph's `error.message`, unchanged.
        message: String,
        /// `error.innerError`: the ids Microsoft support asks for.
        inner: Box<GraphInnerError>,
        /// The answer's `Retry-After`.
        retry_after: Option<Duration>,
    },

    /// Graph (or a gateway before it) answered an error without Graph's JSON error body.
    #[error("Graph {operation}: HTTP {status}{}{}: {excerpt}",
        content_type.as_ref().map(|c| format!(" ({c})")).unwrap_or_default(),
        retry_after.map(|r| format!(" [Retry-After {} s]", r.as_secs())).unwrap_or_default())]
    GraphHttp {
        /// What was being done.
        operation: GraphOperation,
        /// HTTP status.
        status: u16,
        /// The answer's `Retry-After`.
        retry_after: Option<Duration>,
        /// The answer's `Content-Type`.
        content_type: Option<String>,
        /// The start of the body, on one line.
        excerpt: String,
    },

    /// Graph could not be reached, did not answer in time, or its answer was cut off.
    #[error("Graph unreachable during {operation}: {reason}")]
    GraphUnreachable {
        /// What was being done.
        operation: GraphOperation,
        /// The transport error.
        reason: String,
    },

    /// Graph answered success with something this client cannot read.
    #[error("unexpected Graph answer to {operation} (HTTP {status}): {reason}")]
    GraphResponse {
        /// What was being done.
        operation: GraphOperation,
        /// HTTP status.
        status: u16,
        /// What was wrong with it.
        reason: String,
    },

    /// Not sent: the client's limiter holds requests to this mailbox back, so
    /// that Graph's mailbox limits are never exceeded (nothing reached Graph).
    #[error("not sent to Graph for mailbox {mailbox}: {reason}; retry in {} s", retry_after.as_secs().max(1))]
    Throttled {
        /// The mailbox.
        mailbox: String,
        /// Which limit holds it back.
        reason: ThrottleReason,
        /// When the mailbox may be asked again.
        retry_after: Duration,
    },

    /// The access token does not carry an application permission the probe needs.
    #[error("the access token does not grant the application permission {permission} (granted: {})",
        if granted.is_empty() { "none".to_owned() } else { granted.join(", ") })]
    PermissionNotGranted {
        /// The permission (`Mail.Send`, `Mail.ReadWrite`).
        permission: &'static str,
        /// The token's `roles`.
        granted: Vec<String>,
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

/// Graph's `error.innerError`, with the answer's `request-id` header when the body has none.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GraphInnerError {
    /// `innerError.code`, when Graph nests a more specific one.
    pub code: Option<String>,
    /// `innerError.request-id` (or the `request-id` header).
    pub request_id: Option<String>,
    /// `innerError.client-request-id`: the id this client sent.
    pub client_request_id: Option<String>,
    /// `innerError.date`, as Graph wrote it.
    pub date: Option<String>,
}

/// A Graph operation of the probe cycle, named in errors; each needs one
/// application permission.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GraphOperation {
    /// `POST /users/{id}/sendMail`.
    SendMail,
    /// `GET /users/{id}/mailFolders/{folder}/messages`.
    ListMessages,
    /// `DELETE /users/{id}/messages/{id}` or `POST …/permanentDelete`.
    DeleteMessage,
}

impl GraphOperation {
    /// The application permission the operation needs (Mail.ReadWrite for
    /// listing too: Mail.Read would list, but the probe deletes what it finds).
    pub fn permission(self) -> &'static str {
        match self {
            GraphOperation::SendMail => "Mail.Send",
            GraphOperation::ListMessages | GraphOperation::DeleteMessage => "Mail.ReadWrite",
        }
    }
}

impl fmt::Display for GraphOperation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GraphOperation::SendMail => "sendMail",
            GraphOperation::ListMessages => "list messages",
            GraphOperation::DeleteMessage => "delete message",
        })
    }
}

/// Which client-side limit holds a request back ([`GraphError::Throttled`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ThrottleReason {
    /// The mailbox had `limit` requests within the last `window`.
    Window {
        /// Requests allowed per window.
        limit: u32,
        /// The window.
        window: Duration,
    },
    /// Graph answered 429/503/504 with `Retry-After` for this mailbox; its time has not passed.
    RetryAfter,
}

impl fmt::Display for ThrottleReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ThrottleReason::Window { limit, window } => write!(
                f,
                "{limit} requests in {} s already (Graph's mailbox limit)",
                window.as_secs()
            ),
            ThrottleReason::RetryAfter => f.write_str("Graph asked to wait (Retry-After)"),
        }
    }
}

/// What a refusal by Graph means for the administrator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The application permission is not granted (or not consented).
    PermissionMissing(&'static str),
    /// An application access policy (or RBAC for Applications scope) leaves the mailbox out.
    OutOfScope,
    /// The mailbox does not exist, or is not an Exchange Online mailbox.
    MailboxNotFound,
    /// Graph refused the token itself (wrong cloud or audience, expired).
    TokenRejected,
}

impl Refusal {
    pub(crate) fn advice(self) -> String {
        match self {
            Refusal::PermissionMissing(p) => format!(
                "the application permission {p} is missing: add it under API permissions (Microsoft Graph, Application permissions) and grant admin consent"
            ),
            Refusal::OutOfScope => "the mailbox is outside the application's scope: add it to the mail-enabled security group of the application access policy (Test-ApplicationAccessPolicy shows the result; changes take up to an hour)".into(),
            Refusal::MailboxNotFound => "the mailbox does not exist in Exchange Online: check its address (user principal name or id)".into(),
            Refusal::TokenRejected => "Graph refused the access token: check that the authority (cloud) matches the Graph endpoint".into(),
        }
    }
}

/// Graph codes meaning "this mailbox does not exist here".
const NOT_FOUND_CODES: [&str; 5] = [
    "ErrorInvalidUser",
    "ResourceNotFound",
    "Request_ResourceNotFound",
    "MailboxNotEnabledForRESTAPI",
    "ErrorNonExistentMailbox",
];

impl GraphError {
    /// Whether asking again later can succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            GraphError::Transport { .. }
            | GraphError::GraphUnreachable { .. }
            | GraphError::Throttled { .. } => true,
            GraphError::UnexpectedResponse { status, .. }
            | GraphError::Graph { status, .. }
            | GraphError::GraphHttp { status, .. } => *status == 429 || *status >= 500,
            GraphError::Aadsts { kind, status, .. } => {
                *kind == AadstsKind::Transient || *status == 429 || *status >= 500
            }
            GraphError::AccessToken { retryable, .. } => *retryable,
            _ => false,
        }
    }

    /// Whether the remote (or this client's limiter, on its behalf) is
    /// throttling rather than failing: HTTP 429, or 503/504 with
    /// `Retry-After`. Such a probe says nothing about mail flow.
    pub fn is_throttling(&self) -> bool {
        match self {
            GraphError::Throttled { .. } => true,
            GraphError::Graph {
                status,
                retry_after,
                ..
            }
            | GraphError::GraphHttp {
                status,
                retry_after,
                ..
            } => *status == 429 || (matches!(*status, 503 | 504) && retry_after.is_some()),
            _ => false,
        }
    }

    /// Whether an administrator must change the certificate, the configuration,
    /// the app registration, its permissions or the mailbox scope.
    pub fn is_config(&self) -> bool {
        match self {
            GraphError::Signing { .. }
            | GraphError::UnexpectedResponse { .. }
            | GraphError::GraphResponse { .. } => false,
            GraphError::Graph { status: 400, .. } | GraphError::GraphHttp { .. } => false,
            _ => !self.is_retryable(),
        }
    }

    /// The remote's `AADSTS` code, if Entra ID sent one.
    pub fn aadsts_code(&self) -> Option<u32> {
        match self {
            GraphError::Aadsts { code, .. } => *code,
            _ => None,
        }
    }

    /// Graph's `error.code`, if Graph sent one.
    pub fn graph_code(&self) -> Option<&str> {
        match self {
            GraphError::Graph { code, .. } => Some(code),
            _ => None,
        }
    }

    /// How long the remote (or the limiter) asked to wait, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            GraphError::Aadsts { retry_after, .. }
            | GraphError::Graph { retry_after, .. }
            | GraphError::GraphHttp { retry_after, .. } => *retry_after,
            GraphError::Throttled { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// The error of a token source, typed again: the `AADSTS` code that
    /// [`CachedTokenSource`](crate::CachedTokenSource) puts in core's error is classified.
    pub(crate) fn from_token_source(e: continuity_core::Error) -> Self {
        let retryable = e.is_retryable();
        let (code, message) = match e {
            continuity_core::Error::Probe { code, message, .. }
            | continuity_core::Error::ProbeThrottled { code, message, .. } => (code, message),
            other => (None, other.to_string()),
        };
        let number = code
            .as_deref()
            .and_then(|c| c.strip_prefix("AADSTS"))
            .and_then(|n| n.parse::<u32>().ok());
        let kind = code
            .as_deref()
            .map(|c| AadstsKind::classify(number, c))
            .filter(|k| *k != AadstsKind::Other);
        GraphError::AccessToken {
            kind,
            code,
            retryable,
            message,
        }
    }

    /// What a refusal means for the administrator, when it is one.
    pub(crate) fn refusal(&self) -> Option<Refusal> {
        let GraphError::Graph {
            operation,
            status,
            code,
            message,
            ..
        } = self
        else {
            return match self {
                GraphError::PermissionNotGranted { permission, .. } => {
                    Some(Refusal::PermissionMissing(permission))
                }
                _ => None,
            };
        };
        match (*status, code.as_str()) {
            (403, "ErrorAccessDenied") if message.contains("Access to OData is disabled") => {
                Some(Refusal::OutOfScope)
            }
            (
                401 | 403,
                "ErrorAccessDenied" | "Authorization_RequestDenied" | "NoPermissionsInAccessToken",
            ) => Some(Refusal::PermissionMissing(operation.permission())),
            (401, _) => Some(Refusal::TokenRejected),
            (404, c) if NOT_FOUND_CODES.contains(&c) => Some(Refusal::MailboxNotFound),
            _ => None,
        }
    }
}

impl From<GraphError> for continuity_core::Error {
    /// Throttling becomes [`ProbeThrottled`](continuity_core::Error::ProbeThrottled)
    /// (not a failure of the direction); everything else
    /// [`Probe`](continuity_core::Error::Probe), with what to fix first when
    /// Graph's refusal says it. The `GraphError` itself is kept as the core
    /// error's `source()`, for
    /// [`source_as`](continuity_core::Error::source_as).
    fn from(e: GraphError) -> Self {
        let code = match &e {
            GraphError::Aadsts { code: Some(c), .. } => Some(format!("AADSTS{c}")),
            GraphError::Aadsts { error, .. } => Some(error.clone()),
            GraphError::AccessToken { code, .. } => code.clone(),
            GraphError::Graph { code, .. } => Some(code.clone()),
            GraphError::UnexpectedResponse { status, .. }
            | GraphError::GraphHttp { status, .. }
            | GraphError::GraphResponse { status, .. } => Some(format!("HTTP {status}")),
            _ => None,
        };
        if e.is_throttling() {
            return continuity_core::Error::ProbeThrottled {
                retry_after: e.retry_after(),
                code,
                message: e.to_string(),
                source: Some(Box::new(e)),
            };
        }
        let message = match e.refusal() {
            Some(r) => format!("{}: {e}", r.advice()),
            None => e.to_string(),
        };
        continuity_core::Error::Probe {
            retryable: e.is_retryable(),
            code,
            message,
            source: Some(Box::new(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_error_keeps_the_graph_error_as_its_source() {
        use std::error::Error as _;

        let held_back = GraphError::Throttled {
            mailbox: "probe-out@contoso.com".into(),
            reason: ThrottleReason::RetryAfter,
            retry_after: Duration::from_secs(7),
        };
        let text = held_back.to_string();
        let core = continuity_core::Error::from(held_back);
        match &core {
            continuity_core::Error::ProbeThrottled {
                retry_after,
                message,
                ..
            } => {
                assert_eq!(*retry_after, Some(Duration::from_secs(7)));
                assert_eq!(*message, text);
            }
            other => panic!("throttling must map to ProbeThrottled: {other:?}"),
        }
        let graph = core
            .source()
            .and_then(|s| s.downcast_ref::<GraphError>())
            .expect("the Graph error is the source");
        assert!(graph.is_throttling());
        assert!(matches!(
            core.source_as::<GraphError>(),
            Some(GraphError::Throttled {
                reason: ThrottleReason::RetryAfter,
                ..
            })
        ));

        let refused = GraphError::Graph {
            operation: GraphOperation::SendMail,
            status: 403,
            code: "ErrorAccessDenied".into(),
            message: "Access is denied. Check credentials and try again.".into(),
            inner: Box::default(),
            retry_after: None,
        };
        let core = continuity_core::Error::from(refused);
        assert!(
            matches!(
                core,
                continuity_core::Error::Probe {
                    retryable: false,
                    ..
                }
            ),
            "{core:?}"
        );
        assert_eq!(
            core.source_as::<GraphError>()
                .and_then(GraphError::graph_code),
            Some("ErrorAccessDenied")
        );
    }
}
