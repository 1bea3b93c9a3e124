//! The crate's one error type, and the open set of EWS response codes.

use std::{fmt, time::Duration};

/// Result alias of this crate.
pub type Result<T, E = EwsError> = std::result::Result<T, E>;

/// An EWS `ResponseCode` (or a fault's code), kept as the server sent it.
///
/// The V2018 schema knows 528 `Error*` codes and servers add more, so this is
/// an open set: any text is kept; the classification methods know the codes
/// that matter to a probe (PROTOCOLS.md §4.3).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ResponseCode(Box<str>);

impl ResponseCode {
    /// A code from its text.
    pub fn new(code: impl Into<Box<str>>) -> Self {
        ResponseCode(code.into())
    }

    /// The code's text, e.g. `ErrorServerBusy`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `NoError`.
    pub fn is_no_error(&self) -> bool {
        &*self.0 == "NoError"
    }

    /// Codes that can succeed when the same request is sent again later.
    pub fn is_transient(&self) -> bool {
        matches!(
            &*self.0,
            "ErrorServerBusy"
                | "ErrorExceededConnectionCount"
                | "ErrorExceededFindCountLimit"
                | "ErrorInternalServerTransientError"
                | "ErrorMailboxStoreUnavailable"
                | "ErrorMailboxMoveInProgress"
                | "ErrorConnectionFailed"
                | "ErrorTimeoutExpired"
                | "ErrorTooManyObjectsOpened"
                | "ErrorImpersonationFailed"
                | "ErrorInternalServerError"
                | "ErrorBatchProcessingStopped"
        )
    }

    /// Codes that say the service account lacks a right (impersonation, access).
    pub fn is_permission(&self) -> bool {
        matches!(
            &*self.0,
            "ErrorImpersonateUserDenied"
                | "ErrorImpersonationDenied"
                | "ErrorAccessDenied"
                | "ErrorSendAsDenied"
        )
    }

    /// Codes that name a configuration problem on our side (mailbox address,
    /// request version, headers).
    pub fn is_configuration(&self) -> bool {
        matches!(
            &*self.0,
            "ErrorNonExistentMailbox"
                | "ErrorInvalidServerVersion"
                | "ErrorInvalidSchemaVersionForMailboxVersion"
                | "ErrorInvalidExchangeImpersonationHeaderData"
                | "ErrorInvalidSmtpAddress"
                | "ErrorMailRecipientNotFound"
        )
    }
}

impl fmt::Debug for ResponseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for ResponseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for ResponseCode {
    fn from(s: &str) -> Self {
        ResponseCode::new(s)
    }
}

/// How many characters of an unexpected body an error keeps.
pub(crate) const EXCERPT_CHARS: usize = 200;

/// A short, single-line excerpt of a body, for error messages.
pub(crate) fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out = String::with_capacity(EXCERPT_CHARS.min(text.len()) + 3);
    let mut last_space = false;
    for (n, c) in text
        .chars()
        .filter(|c| !c.is_control() || *c == ' ' || *c == '\n')
        .enumerate()
    {
        if n >= EXCERPT_CHARS {
            out.push('…');
            break;
        }
        let space = c.is_whitespace();
        if !(space && last_space) {
            out.push(if space { ' ' } else { c });
        }
        last_space = space;
    }
    out.trim().to_owned()
}

/// Everything that can go wrong talking to EWS.
///
/// Every remote failure keeps what the remote said (HTTP status, EWS
/// `ResponseCode`, `MessageText`). Secrets never appear here: credentials
/// and tokens are not part of any variant.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum EwsError {
    /// A configuration value is invalid; `field` names it.
    #[error("invalid EWS configuration: {field}: {reason}")]
    InvalidConfig {
        /// The offending setting, e.g. `endpoint`.
        field: &'static str,
        /// What is wrong and what is expected.
        reason: String,
    },

    /// The server could not be reached (DNS, connection refused, reset).
    #[error("EWS endpoint {endpoint} unreachable: {message}")]
    Unreachable {
        /// The endpoint (no credentials).
        endpoint: String,
        /// The transport's description.
        message: String,
    },

    /// The TLS handshake failed (certificate untrusted, expired, wrong name).
    #[error("TLS with {endpoint} failed: {message}")]
    Tls {
        /// The endpoint.
        endpoint: String,
        /// The TLS library's description.
        message: String,
    },

    /// No complete answer within the timeout.
    #[error("EWS {operation} timed out after {after:?}")]
    Timeout {
        /// The operation (`CreateItem`, …).
        operation: &'static str,
        /// The timeout that ran out.
        after: Duration,
    },

    /// HTTP 401: the credentials or the token were refused.
    #[error("EWS refused the credentials (HTTP 401){}{}",
        diagnostics.as_ref().map(|d| format!("; x-ms-diagnostics: {d}")).unwrap_or_default(),
        challenge.as_ref().map(|c| format!("; server offers: {c}")).unwrap_or_default())]
    Unauthorized {
        /// The `WWW-Authenticate` schemes offered (scheme names only).
        challenge: Option<String>,
        /// Exchange Online's `x-ms-diagnostics` header, if sent.
        diagnostics: Option<String>,
    },

    /// HTTP 403 without an EWS answer: the account may not use EWS.
    #[error("EWS forbids access (HTTP 403): {excerpt}")]
    Forbidden {
        /// A short excerpt of the body.
        excerpt: String,
    },

    /// Exchange Online answered that EWS is switched off for this tenant or
    /// application (EWS retirement, PROTOCOLS.md §8). Use the Graph adapter.
    #[error("EWS disabled for this tenant (HTTP {status}): {message}")]
    EwsDisabled {
        /// HTTP status of the answer.
        status: u16,
        /// What the server said.
        message: String,
    },

    /// The server is throttling us (`ErrorServerBusy`, as a fault or a
    /// response message). Wait `back_off` (when the server said) before any
    /// further request with this account.
    #[error("EWS server busy{}: {message}", back_off.map(|b| format!(" (back off {} ms)", b.as_millis())).unwrap_or_default())]
    ServerBusy {
        /// `BackOffMilliseconds` from `MessageXml`, when present.
        back_off: Option<Duration>,
        /// The `MessageText` / faultstring.
        message: String,
    },

    /// A SOAP fault other than throttling (usually with HTTP 500).
    #[error("EWS fault {code} (HTTP {status}): {message}")]
    Fault {
        /// `detail/ResponseCode`, else the local part of `faultcode`.
        code: ResponseCode,
        /// The faultstring (or `detail/Message`).
        message: String,
        /// HTTP status.
        status: u16,
        /// `MessageXml` name/value pairs (e.g. `LineNumber`, `Violation`).
        details: Vec<(String, String)>,
    },

    /// A response message with `ResponseClass="Error"` (or `Warning`).
    #[error("EWS {operation} answered {code}{}: {message}", if *warning { " (warning)" } else { "" })]
    Response {
        /// The operation.
        operation: &'static str,
        /// The `ResponseCode`.
        code: ResponseCode,
        /// The `MessageText`.
        message: String,
        /// `ResponseClass="Warning"`: the batch stopped part-way; retry.
        warning: bool,
        /// `MessageXml` name/value pairs.
        details: Vec<(String, String)>,
    },

    /// An HTTP error status without a SOAP answer we could read
    /// (a proxy's or IIS's error page, an empty body, a redirect to
    /// `genericerrorpage.htm`).
    #[error("EWS answered HTTP {status} without a SOAP response{}{}: {}",
        content_type.as_ref().map(|c| format!(" ({c})")).unwrap_or_default(),
        retry_after.map(|r| format!(", Retry-After {}s", r.as_secs())).unwrap_or_default(),
        if excerpt.is_empty() { "empty body" } else { excerpt.as_str() })]
    Http {
        /// HTTP status.
        status: u16,
        /// `Retry-After`, when sent (seconds form).
        retry_after: Option<Duration>,
        /// The body's content type.
        content_type: Option<String>,
        /// A short excerpt of the body (or the redirect target).
        excerpt: String,
    },

    /// The answer is XML but not the EWS response we expected.
    #[error("malformed EWS response{}: {reason}", if *status == 200 { String::new() } else { format!(" (HTTP {status})") })]
    Malformed {
        /// HTTP status.
        status: u16,
        /// What was wrong.
        reason: String,
    },

    /// The response was larger than the configured limit.
    #[error("EWS response larger than the limit of {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },

    /// Any other transport failure.
    #[error("HTTP request to EWS failed: {message}")]
    Transport {
        /// The description.
        message: String,
    },

    /// The access-token source failed (Bearer mode).
    #[error("access token unavailable: {message}")]
    AccessToken {
        /// Whether asking the source again later can help.
        retryable: bool,
        /// The source's error.
        message: String,
    },
}

impl EwsError {
    /// Whether sending the same request again later can succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            EwsError::Unreachable { .. }
            | EwsError::Timeout { .. }
            | EwsError::ServerBusy { .. }
            | EwsError::Transport { .. } => true,
            EwsError::Fault { code, .. } => code.is_transient(),
            EwsError::Response { code, warning, .. } => *warning || code.is_transient(),
            EwsError::Http { status, .. } => {
                matches!(status, 302 | 408 | 429) || (500..=599).contains(status)
            }
            EwsError::AccessToken { retryable, .. } => *retryable,
            EwsError::InvalidConfig { .. }
            | EwsError::Tls { .. }
            | EwsError::Unauthorized { .. }
            | EwsError::Forbidden { .. }
            | EwsError::EwsDisabled { .. }
            | EwsError::Malformed { .. }
            | EwsError::TooLarge { .. } => false,
        }
    }

    /// Whether the administrator must grant a right (impersonation, access).
    pub fn is_permission(&self) -> bool {
        match self {
            EwsError::Forbidden { .. } => true,
            EwsError::Fault { code, .. } | EwsError::Response { code, .. } => code.is_permission(),
            _ => false,
        }
    }

    /// Whether the configuration must change (endpoint, credentials,
    /// mailbox, server version, TLS trust, EWS switched off).
    pub fn is_configuration(&self) -> bool {
        match self {
            EwsError::InvalidConfig { .. }
            | EwsError::Tls { .. }
            | EwsError::Unauthorized { .. }
            | EwsError::EwsDisabled { .. } => true,
            EwsError::Fault { code, .. } | EwsError::Response { code, .. } => {
                code.is_configuration()
            }
            _ => false,
        }
    }

    /// How long the server asked us to wait, if it said
    /// (`BackOffMilliseconds`, `Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            EwsError::ServerBusy { back_off, .. } => *back_off,
            EwsError::Http { retry_after, .. } => *retry_after,
            EwsError::Fault { details, .. } | EwsError::Response { details, .. } => {
                back_off_of(details)
            }
            _ => None,
        }
    }

    /// The EWS response code, if the server gave one.
    pub fn response_code(&self) -> Option<&ResponseCode> {
        match self {
            EwsError::Fault { code, .. } | EwsError::Response { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The remote's own code as text: the EWS `ResponseCode`, `ErrorServerBusy`,
    /// or the HTTP status.
    pub fn remote_code(&self) -> Option<String> {
        match self {
            EwsError::Fault { code, .. } | EwsError::Response { code, .. } => {
                Some(code.to_string())
            }
            EwsError::ServerBusy { .. } => Some("ErrorServerBusy".into()),
            EwsError::Http { status, .. } | EwsError::EwsDisabled { status, .. } => {
                Some(format!("HTTP {status}"))
            }
            EwsError::Unauthorized { .. } => Some("HTTP 401".into()),
            EwsError::Forbidden { .. } => Some("HTTP 403".into()),
            _ => None,
        }
    }
}

/// `BackOffMilliseconds` among `MessageXml` pairs.
pub(crate) fn back_off_of(details: &[(String, String)]) -> Option<Duration> {
    details
        .iter()
        .find(|(k, _)| k == "BackOffMilliseconds")
        .and_then(|(_, v)| v.trim().parse::<u64>().ok())
        .map(Duration::from_millis)
}

impl EwsError {
    /// Whether the server is throttling us rather than failing: it is up and
    /// moving mail, it refuses our request rate (`ErrorServerBusy`, HTTP
    /// 429, HTTP 503 with `Retry-After`). A monitor must not count this as a
    /// mail-flow failure (PROTOCOLS.md §5).
    pub fn is_throttling(&self) -> bool {
        match self {
            EwsError::ServerBusy { .. } => true,
            EwsError::Http {
                status,
                retry_after,
                ..
            } => *status == 429 || (*status == 503 && retry_after.is_some()),
            _ => false,
        }
    }
}

/// Throttling becomes [`continuity_core::Error::ProbeThrottled`] (not a
/// failure of the direction); everything else [`continuity_core::Error::Probe`].
/// The `EwsError` itself is kept as the core error's `source()`:
///
/// ```
/// use continuity_ews::{EwsError, ResponseCode};
///
/// let denied = EwsError::Response {
///     operation: "CreateItem",
///     code: ResponseCode::new("ErrorImpersonateUserDenied"),
///     message: "The account does not have permission to impersonate the requested user.".into(),
///     warning: false,
///     details: Vec::new(),
/// };
/// let e = continuity_core::Error::from(denied);
/// assert!(e.source_as::<EwsError>().is_some_and(EwsError::is_permission));
/// ```
impl From<EwsError> for continuity_core::Error {
    fn from(e: EwsError) -> Self {
        if e.is_throttling() {
            return continuity_core::Error::ProbeThrottled {
                retry_after: e.retry_after(),
                code: e.remote_code(),
                message: e.to_string(),
                source: Some(Box::new(e)),
            };
        }
        continuity_core::Error::Probe {
            retryable: e.is_retryable(),
            code: e.remote_code(),
            message: e.to_string(),
            source: Some(Box::new(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        let busy = EwsError::ServerBusy {
            back_off: Some(Duration::from_millis(5000)),
            message: "busy".into(),
        };
        assert!(busy.is_retryable());
        assert_eq!(busy.retry_after(), Some(Duration::from_secs(5)));
        let denied = EwsError::Fault {
            code: "ErrorImpersonateUserDenied".into(),
            message: "The account does not have permission to impersonate the requested user."
                .into(),
            status: 500,
            details: vec![],
        };
        assert!(!denied.is_retryable());
        assert!(denied.is_permission());
        assert_eq!(
            denied.remote_code().as_deref(),
            Some("ErrorImpersonateUserDenied")
        );
        let html = EwsError::Http {
            status: 503,
            retry_after: Some(Duration::from_secs(7)),
            content_type: Some("text/html".into()),
            excerpt: excerpt(b"<html>\n\n  <body>Service   Unavailable</body></html>"),
        };
        assert!(html.is_retryable());
        assert_eq!(html.retry_after(), Some(Duration::from_secs(7)));
        let text = html.to_string();
        assert!(
            text.contains("HTTP 503") && text.contains("Retry-After 7s"),
            "{text}"
        );
        assert!(
            text.contains("<html> <body>Service Unavailable</body></html>"),
            "{text}"
        );
        assert!(
            !EwsError::Unauthorized {
                challenge: None,
                diagnostics: None
            }
            .is_retryable()
        );
        let warning = EwsError::Response {
            operation: "GetItem",
            code: "ErrorBatchProcessingStopped".into(),
            message: "stopped".into(),
            warning: true,
            details: vec![],
        };
        assert!(warning.is_retryable());
        let core: continuity_core::Error = denied.into();
        assert!(!core.is_retryable());
        assert!(core.to_string().contains("ErrorImpersonateUserDenied"));
    }

    #[test]
    fn throttling_maps_to_probe_throttled() {
        let busy: continuity_core::Error = EwsError::ServerBusy {
            back_off: Some(Duration::from_millis(5000)),
            message: "The server cannot service this request right now.".into(),
        }
        .into();
        match &busy {
            continuity_core::Error::ProbeThrottled {
                retry_after,
                code,
                message,
                ..
            } => {
                assert_eq!(*retry_after, Some(Duration::from_secs(5)));
                assert_eq!(code.as_deref(), Some("ErrorServerBusy"));
                assert!(message.contains("cannot service"), "{message}");
            }
            other => panic!("not throttled: {other:?}"),
        }
        assert!(busy.is_retryable());
        let http = |status, retry_after| EwsError::Http {
            status,
            retry_after,
            content_type: None,
            excerpt: String::new(),
        };
        for (e, throttled) in [
            (http(429, None), true),
            (http(429, Some(Duration::from_secs(3))), true),
            (http(503, Some(Duration::from_secs(7))), true),
            // A 503 without Retry-After is a server in trouble: a failure.
            (http(503, None), false),
            (http(500, None), false),
        ] {
            let status = match &e {
                EwsError::Http { status, .. } => *status,
                _ => unreachable!(),
            };
            let retry_after = e.retry_after();
            let core: continuity_core::Error = e.into();
            match core {
                continuity_core::Error::ProbeThrottled {
                    retry_after: r,
                    code,
                    ..
                } => {
                    assert!(throttled, "HTTP {status} must count");
                    assert_eq!(r, retry_after);
                    assert_eq!(code, Some(format!("HTTP {status}")));
                }
                continuity_core::Error::Probe { retryable, .. } => {
                    assert!(!throttled, "HTTP {status} is throttling");
                    assert!(retryable);
                }
                other => panic!("{other:?}"),
            }
        }
        let timeout: continuity_core::Error = EwsError::Timeout {
            operation: "CreateItem",
            after: Duration::from_secs(30),
        }
        .into();
        assert!(matches!(
            timeout,
            continuity_core::Error::Probe {
                retryable: true,
                ..
            }
        ));
    }

    #[test]
    fn excerpts_are_short_and_single_line() {
        let long = "x".repeat(5000);
        let e = excerpt(long.as_bytes());
        assert_eq!(e.chars().count(), EXCERPT_CHARS + 1);
        assert_eq!(excerpt(b""), "");
        assert_eq!(excerpt(b"a\r\n\tb"), "a b");
    }

    #[test]
    fn core_error_keeps_the_ews_error_as_its_source() {
        use std::error::Error as _;

        let denied = EwsError::Fault {
            code: "ErrorImpersonateUserDenied".into(),
            message: "The account does not have permission to impersonate the requested user."
                .into(),
            status: 500,
            details: vec![],
        };
        let text = denied.to_string();
        let core = continuity_core::Error::from(denied);
        assert!(
            matches!(core, continuity_core::Error::Probe { .. }),
            "{core:?}"
        );
        assert_eq!(
            core.to_string(),
            format!("probe failed (ErrorImpersonateUserDenied): {text}")
        );
        let ews = core
            .source()
            .and_then(|s| s.downcast_ref::<EwsError>())
            .expect("the EWS error is the source");
        assert!(ews.is_permission());
        assert!(
            core.source_as::<EwsError>()
                .is_some_and(EwsError::is_permission)
        );

        let busy = continuity_core::Error::from(EwsError::ServerBusy {
            back_off: Some(Duration::from_millis(5000)),
            message: "busy".into(),
        });
        assert!(
            matches!(busy, continuity_core::Error::ProbeThrottled { .. }),
            "{busy:?}"
        );
        assert!(matches!(
            busy.source_as::<EwsError>(),
            Some(EwsError::ServerBusy { back_off: Some(b), .. }) if *b == Duration::from_secs(5)
        ));
    }
}
