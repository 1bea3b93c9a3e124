//! The crate's one error type.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// Result alias used across `continuity-core`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Boxed error source kept by [`Error::Store`] and [`Error::Generic`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The text of `e`'s causes (its `source()` chain), joined by `": "`, or
/// `e`'s own text when it has none. HTTP clients put the request's URL in
/// their top-level message and the useful part (refused, reset, TLS) in the
/// causes; adapters report this instead of the URL.
///
/// ```
/// use std::io::{Error, ErrorKind};
/// let refused = Error::new(ErrorKind::ConnectionRefused, "connection refused");
/// let top = Error::other(refused);
/// assert_eq!(continuity_core::error::error_causes(&top), "connection refused");
/// assert_eq!(continuity_core::error::error_causes(&Error::other("alone")), "alone");
/// ```
pub fn error_causes(e: &dyn std::error::Error) -> String {
    let mut out = String::new();
    let mut source = e.source();
    while let Some(s) = source {
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&s.to_string());
        source = s.source();
    }
    if out.is_empty() {
        out = e.to_string();
    }
    out
}

/// Everything that can go wrong in `continuity-core` and in the adapters that
/// implement its traits.
///
/// Variants say what a caller can do: fix the configuration, retry later, give
/// the user a reason. [`Error::is_retryable`] answers the question the retry
/// logic asks without matching on strings.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is invalid; the message names the field.
    #[error("invalid configuration: {field}: {reason}")]
    InvalidConfig {
        /// Dotted path of the offending field, e.g. `outbound.latency.limit`.
        field: String,
        /// What is wrong and what is expected.
        reason: String,
    },

    /// A tenant id is empty, too long or contains characters that are not allowed.
    #[error("invalid tenant id: {reason}")]
    InvalidTenantId {
        /// Why the id was refused.
        reason: String,
    },

    /// The tenant is not registered with this monitor.
    #[error("unknown tenant {tenant:?}")]
    UnknownTenant {
        /// The tenant id asked for.
        tenant: String,
    },

    /// `tick` was called with a time earlier than the previous tick.
    #[error("clock went backwards: previous tick at {previous}, now {now}")]
    ClockWentBackwards {
        /// Time of the previous tick.
        previous: DateTime<Utc>,
        /// The earlier time passed now.
        now: DateTime<Utc>,
    },

    /// A continuity-event or suspension action is not allowed in the current state.
    #[error("action refused: {reason}")]
    InvalidTransition {
        /// Why the action was refused.
        reason: crate::machine::Rejection,
    },

    /// The tenant's state changed since it was loaded (compare-and-swap failed).
    #[error("tenant {tenant:?} changed concurrently: expected version {expected}, found {actual}")]
    Conflict {
        /// The tenant whose state changed.
        tenant: String,
        /// The version the writer based its change on.
        expected: u64,
        /// The version found in the store.
        actual: u64,
    },

    /// A lease on an outbox entry or a pending probe was lost: it ran out and
    /// another claimer took the item over, or the item was completed already.
    #[error("lease lost on {what}: it expired or was taken over")]
    LeaseLost {
        /// What the lease was on, e.g. `outbox entry 17` or `probe acme/ou-1767225600000`.
        what: String,
    },

    /// Another `tick` of the same monitor is still running.
    #[error("another tick of this monitor is still running")]
    TickInProgress,

    /// An observation was refused (for example a timestamp too far in the future).
    #[error("observation refused: {reason}")]
    InvalidObservation {
        /// Why.
        reason: String,
    },

    /// A portal link was refused.
    #[error("portal link refused: {reason}")]
    Link {
        /// Why the link was refused.
        reason: crate::link::LinkRejection,
    },

    /// A notifier could not deliver an alert.
    #[error("{channel} notification failed{}: {message}", code.as_ref().map(|c| format!(" ({c})")).unwrap_or_default())]
    Notify {
        /// The channel kind (`sms`, `email`, `webhook`, …).
        channel: String,
        /// Whether retrying the same delivery later can succeed.
        retryable: bool,
        /// How long the remote asked us to wait, if it said.
        retry_after: Option<Duration>,
        /// The remote's own error code (SMTP reply, provider error number), if any.
        code: Option<String>,
        /// Human-readable description, with the remote's message.
        message: String,
    },

    /// A mail probe could not be dispatched or checked.
    #[error("probe failed{}: {message}", code.as_ref().map(|c| format!(" ({c})")).unwrap_or_default())]
    Probe {
        /// Whether retrying later can succeed.
        retryable: bool,
        /// The remote's own error code (an EWS `ResponseCode`, an `AADSTS` number), if any.
        code: Option<String>,
        /// Human-readable description, with the remote's message.
        message: String,
    },

    /// A mail probe could not be dispatched because the remote is throttling
    /// the prober (EWS `ErrorServerBusy`, HTTP 429, a 503 with
    /// `Retry-After`). This says nothing about mail flow: the monitor reports
    /// it but does not count it as a failure of the direction
    /// (see [`MailProbe`](crate::probe::MailProbe)).
    #[error("probe throttled{}{}: {message}",
        code.as_ref().map(|c| format!(" ({c})")).unwrap_or_default(),
        retry_after.map(|r| format!(", retry after {} ms", r.as_millis())).unwrap_or_default())]
    ProbeThrottled {
        /// How long the remote asked us to wait, if it said.
        retry_after: Option<Duration>,
        /// The remote's own code (`ErrorServerBusy`, `HTTP 429`), if any.
        code: Option<String>,
        /// Human-readable description, with the remote's message.
        message: String,
    },

    /// The embedder's continuity hook failed.
    #[error("continuity hook failed: {message}")]
    Hook {
        /// Whether the hook asks to be called again.
        retryable: bool,
        /// What the hook reported.
        message: String,
    },

    /// The event store failed.
    #[error("{backend} store error: {message}")]
    Store {
        /// Which store (`memory`, `sqlite`, `postgres`).
        backend: &'static str,
        /// Whether retrying the operation later can succeed.
        retryable: bool,
        /// What went wrong.
        message: String,
        /// The underlying error, if any.
        #[source]
        source: Option<BoxError>,
    },

    /// Anything else, from an adapter.
    #[error("{context}: {source}")]
    Generic {
        /// Where it happened.
        context: String,
        /// The underlying error.
        #[source]
        source: BoxError,
    },
}

impl Error {
    /// Whether retrying the same operation later can succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Notify { retryable, .. }
            | Error::Probe { retryable, .. }
            | Error::Hook { retryable, .. }
            | Error::Store { retryable, .. } => *retryable,
            Error::Conflict { .. } | Error::TickInProgress | Error::ProbeThrottled { .. } => true,
            _ => false,
        }
    }

    /// Shorthand for an [`Error::InvalidConfig`].
    pub fn config(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidConfig {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// A notifier error that retrying can fix (timeout, rate limit, 5xx).
    pub fn notify_transient(channel: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Notify {
            channel: channel.into(),
            retryable: true,
            retry_after: None,
            code: None,
            message: message.into(),
        }
    }

    /// A notifier error that retrying cannot fix (invalid number, authentication).
    pub fn notify_permanent(channel: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Notify {
            channel: channel.into(),
            retryable: false,
            retry_after: None,
            code: None,
            message: message.into(),
        }
    }
}
