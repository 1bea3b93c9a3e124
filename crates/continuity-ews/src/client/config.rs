//! The client's settings: authentication, retries, endpoint and timeouts.

use std::{fmt, time::Duration};

use continuity_core::{
    Clock, SystemClock, access_token::AccessTokenSource, duration::serde_duration,
};
use reqwest::Url;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

use crate::{
    error::{EwsError, Result},
    request::ServerVersion,
    response::MAX_BODY_BYTES,
    throttle::EXCHANGE_MAX_CONCURRENCY,
};

/// How the client authenticates.
#[derive(Clone)]
#[non_exhaustive]
pub enum Auth {
    /// HTTP Basic with a service account (on-premises, HTTPS only).
    Basic {
        /// User name (`DOMAIN\user` or UPN).
        username: String,
        /// Password.
        password: SecretString,
    },
    /// `Authorization: Bearer` from a token source (Exchange Online, hybrid).
    Bearer(Arc<dyn AccessTokenSource>),
    /// NTLMv2 (on-premises): the handshake runs once per kept-alive
    /// connection, which then stays authenticated.
    #[cfg(feature = "ntlm")]
    Ntlm {
        /// NetBIOS domain (e.g. `CONTOSO`).
        domain: String,
        /// User name without the domain.
        username: String,
        /// Password.
        password: SecretString,
        /// Workstation name sent in the messages.
        workstation: String,
    },
}

impl Auth {
    /// Basic authentication.
    pub fn basic(username: impl Into<String>, password: impl Into<String>) -> Self {
        Auth::Basic {
            username: username.into(),
            password: SecretString::from(password.into()),
        }
    }

    /// NTLM authentication as `domain\\username`.
    #[cfg(feature = "ntlm")]
    pub fn ntlm(
        domain: impl Into<String>,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        Auth::Ntlm {
            domain: domain.into(),
            username: username.into(),
            password: SecretString::from(password.into()),
            workstation: DEFAULT_NTLM_WORKSTATION.into(),
        }
    }

    pub(super) fn scheme(&self) -> &'static str {
        match self {
            Auth::Basic { .. } => "Basic",
            Auth::Bearer(_) => "Bearer",
            #[cfg(feature = "ntlm")]
            Auth::Ntlm { .. } => "NTLM",
        }
    }
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            Auth::Bearer(source) => f.debug_tuple("Bearer").field(source).finish(),
            #[cfg(feature = "ntlm")]
            Auth::Ntlm {
                domain,
                username,
                workstation,
                ..
            } => f
                .debug_struct("Ntlm")
                .field("domain", domain)
                .field("username", username)
                .field("password", &"<redacted>")
                .field("workstation", workstation)
                .finish(),
        }
    }
}

/// Retry settings. In configuration every field is optional, with the
/// defaults below; durations are written `"500ms"`, `"10s"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EwsRetryPolicy {
    /// Attempts in all, the first included (default 3).
    pub max_attempts: u32,
    /// First back-off (default 500 ms); doubles per retry, with jitter.
    #[serde(with = "serde_duration")]
    pub base_delay: Duration,
    /// Largest back-off between two attempts (default 10 s).
    #[serde(with = "serde_duration")]
    pub max_delay: Duration,
    /// Longest wait the client accepts from the server (`BackOffMilliseconds`,
    /// `Retry-After`) before giving up and returning the error (default 30 s):
    /// a probe must not hang for minutes.
    #[serde(with = "serde_duration")]
    pub max_server_wait: Duration,
}

impl Default for EwsRetryPolicy {
    fn default() -> Self {
        EwsRetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(10),
            max_server_wait: Duration::from_secs(30),
        }
    }
}

/// Whole-request timeout when none is configured: 30 s.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Connect timeout when none is configured: 10 s.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Concurrent requests of one account when not configured: 8.
pub const DEFAULT_MAX_CONCURRENCY: usize = 8;
/// Largest response body read when not configured: 4 MiB.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 4 << 20;
/// Minimum time between two sends from one mailbox when not configured: 6 s.
pub const DEFAULT_MIN_SEND_INTERVAL: Duration = Duration::from_secs(6);
/// The `User-Agent` sent when none is configured.
pub const DEFAULT_USER_AGENT: &str = concat!("continuity-ews/", env!("CARGO_PKG_VERSION"));
/// The workstation name NTLM messages carry when none is configured.
pub const DEFAULT_NTLM_WORKSTATION: &str = "CONTINUITY";

/// Configuration of one [`EwsClient`](super::EwsClient) (one service account on one server).
#[derive(Clone, Debug)]
pub struct EwsConfig {
    /// `https://<host>/EWS/Exchange.asmx`.
    pub endpoint: String,
    /// Credentials.
    pub auth: Auth,
    /// `RequestServerVersion` (default `Exchange2013_SP1`).
    pub server_version: ServerVersion,
    /// Allow `http://` (tests only; default false: credentials never travel in clear).
    pub allow_plain_http: bool,
    /// Whole-request timeout (default 30 s).
    pub request_timeout: Duration,
    /// Connect timeout (default 10 s).
    pub connect_timeout: Duration,
    /// Concurrent requests of this account (default 8; at most 27, Exchange's limit per user).
    pub max_concurrency: usize,
    /// Largest response body read (default 4 MiB; at most
    /// [`MAX_BODY_BYTES`](crate::response::MAX_BODY_BYTES)).
    pub max_response_bytes: usize,
    /// Minimum time between two sends from one mailbox (default 6 s, i.e.
    /// at most 10 a minute, a third of Exchange Online's MessageRateLimit).
    pub min_send_interval: Duration,
    /// Retries.
    pub retry: EwsRetryPolicy,
    /// Exchange Online (legacy EWS mode): an HTTP 403 means EWS is disabled
    /// for the tenant. `None` (the default): Exchange Online exactly when
    /// the auth is Bearer.
    pub exchange_online: Option<bool>,
    /// `User-Agent` (fixed per application, for the server's logs).
    pub user_agent: String,
    /// The time source (NTLM timestamps when the server sends none).
    pub clock: Arc<dyn Clock>,
}

impl EwsConfig {
    /// Defaults for `endpoint` and `auth`.
    pub fn new(endpoint: impl Into<String>, auth: Auth) -> Self {
        EwsConfig {
            endpoint: endpoint.into(),
            auth,
            server_version: ServerVersion::default(),
            allow_plain_http: false,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            min_send_interval: DEFAULT_MIN_SEND_INTERVAL,
            retry: EwsRetryPolicy::default(),
            exchange_online: None,
            user_agent: DEFAULT_USER_AGENT.into(),
            clock: Arc::new(SystemClock),
        }
    }

    /// Whether the client talks to Exchange Online (see [`EwsConfig::exchange_online`]).
    pub fn is_exchange_online(&self) -> bool {
        self.exchange_online
            .unwrap_or(matches!(self.auth, Auth::Bearer(_)))
    }

    pub(super) fn validate(&self) -> Result<Url> {
        let bad = |field, reason: String| EwsError::InvalidConfig { field, reason };
        let url = Url::parse(&self.endpoint)
            .map_err(|e| bad("endpoint", format!("{:?} is not a URL: {e}", self.endpoint)))?;
        match url.scheme() {
            "https" => {}
            "http" if self.allow_plain_http => {}
            "http" => {
                return Err(bad(
                    "endpoint",
                    "plain http is refused (credentials would travel in clear); use https".into(),
                ));
            }
            s => return Err(bad("endpoint", format!("scheme {s:?}; use https"))),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad(
                "endpoint",
                "credentials belong in `auth`, not in the URL".into(),
            ));
        }
        if self.max_concurrency == 0 || self.max_concurrency > EXCHANGE_MAX_CONCURRENCY {
            return Err(bad(
                "max_concurrency",
                format!(
                    "{} not in 1..={EXCHANGE_MAX_CONCURRENCY} (Exchange's limit per user)",
                    self.max_concurrency
                ),
            ));
        }
        if self.retry.max_attempts == 0 {
            return Err(bad("retry.max_attempts", "must be at least 1".into()));
        }
        if self.request_timeout.is_zero() || self.connect_timeout.is_zero() {
            return Err(bad("request_timeout", "timeouts must be positive".into()));
        }
        if self.max_response_bytes < 1024 || self.max_response_bytes > MAX_BODY_BYTES {
            return Err(bad(
                "max_response_bytes",
                format!("must be from 1024 to {MAX_BODY_BYTES} (the parser's limit)"),
            ));
        }
        if let Auth::Basic { username, .. } = &self.auth
            && username.is_empty()
        {
            return Err(bad("auth.username", "empty".into()));
        }
        Ok(url)
    }
}

impl Auth {
    /// The scheme name (`Basic`, `Bearer`), for logs.
    pub fn scheme_name(&self) -> &'static str {
        self.scheme()
    }
}
