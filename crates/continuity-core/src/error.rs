//! The crate's one error type.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// Result alias used across `continuity-core`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An adapter's own error, kept as the [`source`](std::error::Error::source)
/// of core's [`Error::Probe`], [`Error::ProbeThrottled`], [`Error::Notify`],
/// [`Error::Hook`] and [`Error::Store`].
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
    ///
    /// `message` is the notifier's description of the failure (what the
    /// text of this error shows); `source` is the notifier's own error,
    /// typed (`continuity_notify::NotifyError`), for [`Error::source_as`].
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
        /// The notifier's own error, if it has one.
        #[source]
        source: Option<BoxError>,
    },

    /// A mail probe could not be dispatched or checked.
    ///
    /// `message` is the adapter's description of the failure (what the text
    /// of this error shows); `source` is the adapter's own error, typed
    /// (`continuity_ews::EwsError`, `continuity_graph::GraphError`, lettre's
    /// SMTP error), for [`Error::source_as`].
    #[error("probe failed{}: {message}", code.as_ref().map(|c| format!(" ({c})")).unwrap_or_default())]
    Probe {
        /// Whether retrying later can succeed.
        retryable: bool,
        /// The remote's own error code (an EWS `ResponseCode`, an `AADSTS` number), if any.
        code: Option<String>,
        /// Human-readable description, with the remote's message.
        message: String,
        /// The adapter's own error, if it has one.
        #[source]
        source: Option<BoxError>,
    },

    /// A mail probe could not be dispatched because the remote is throttling
    /// the prober (EWS `ErrorServerBusy`, HTTP 429, a 503 with
    /// `Retry-After`). This says nothing about mail flow: the monitor reports
    /// it but does not count it as a failure of the direction
    /// (see [`MailProbe`](crate::probe::MailProbe)).
    ///
    /// `message` is the adapter's description (what the text of this error
    /// shows); `source` is the adapter's own error, typed, for
    /// [`Error::source_as`].
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
        /// The adapter's own error, if it has one.
        #[source]
        source: Option<BoxError>,
    },

    /// The embedder's continuity hook failed. Hooks return it
    /// ([`Error::hook_transient`], [`Error::hook_permanent`]).
    ///
    /// `message` is what the hook reported (what the text of this error
    /// shows); `source` is the hook's own error, typed, if it gave one
    /// ([`Error::with_source`]).
    #[error("continuity hook failed: {message}")]
    Hook {
        /// Whether the hook asks to be called again.
        retryable: bool,
        /// What the hook reported.
        message: String,
        /// The hook's own error, if it gave one.
        #[source]
        source: Option<BoxError>,
    },

    /// The event store failed.
    ///
    /// `message` is the store's description (what the text of this error
    /// shows); `source` is the store's own error, typed
    /// (`continuity_store::StoreError`), for [`Error::source_as`].
    #[error("{backend} store error: {message}")]
    Store {
        /// Which store (`memory`, `sqlite`, `postgres`).
        backend: &'static str,
        /// Whether retrying the operation later can succeed.
        retryable: bool,
        /// What went wrong.
        message: String,
        /// The store's own error, if it has one.
        #[source]
        source: Option<BoxError>,
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

    /// What the remote answered, as an alert quotes it: for a probe error
    /// its code and message (`ErrorMailboxStoreUnavailable: the mailbox
    /// database is offline`), for any other error its text; cleaned and
    /// bounded by [`RemoteReply::new`](crate::RemoteReply::new).
    pub fn remote_reply(&self) -> Option<crate::RemoteReply> {
        match self {
            Error::Probe {
                code: Some(code),
                message,
                ..
            } => crate::RemoteReply::new(format!("{code}: {message}")),
            Error::Probe {
                code: None,
                message,
                ..
            } => crate::RemoteReply::new(message),
            e => crate::RemoteReply::new(e.to_string()),
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
        Self::notify(channel.into(), true, message.into())
    }

    /// A notifier error that retrying cannot fix (invalid number, authentication).
    pub fn notify_permanent(channel: impl Into<String>, message: impl Into<String>) -> Self {
        Self::notify(channel.into(), false, message.into())
    }

    fn notify(channel: String, retryable: bool, message: String) -> Self {
        Error::Notify {
            channel,
            retryable,
            retry_after: None,
            code: None,
            message,
            source: None,
        }
    }

    /// A probe error that retrying can fix (a connection refused, an answer
    /// that lacked a field this time).
    pub fn probe_transient(message: impl Into<String>) -> Self {
        Self::probe(true, message.into())
    }

    /// A probe error that retrying cannot fix (a configuration, a message
    /// that cannot be built).
    pub fn probe_permanent(message: impl Into<String>) -> Self {
        Self::probe(false, message.into())
    }

    fn probe(retryable: bool, message: String) -> Self {
        Error::Probe {
            retryable,
            code: None,
            message,
            source: None,
        }
    }

    /// The remote throttles the prober; `retry_after` is how long it asked
    /// to wait, if it said.
    pub fn probe_throttled(retry_after: Option<Duration>, message: impl Into<String>) -> Self {
        Error::ProbeThrottled {
            retry_after,
            code: None,
            message: message.into(),
            source: None,
        }
    }

    /// A hook failure after which the hook asks to be called again.
    pub fn hook_transient(message: impl Into<String>) -> Self {
        Self::hook(true, message.into())
    }

    /// A hook failure that calling again cannot fix.
    pub fn hook_permanent(message: impl Into<String>) -> Self {
        Self::hook(false, message.into())
    }

    fn hook(retryable: bool, message: String) -> Self {
        Error::Hook {
            retryable,
            message,
            source: None,
        }
    }

    /// A store error that retrying can fix (connection lost, timeout);
    /// `backend` names the store (`memory`, `sqlite`, `postgres`).
    pub fn store_transient(backend: &'static str, message: impl Into<String>) -> Self {
        Self::store(backend, true, message.into())
    }

    /// A store error that retrying cannot fix (a limit reached, a value that
    /// cannot be decoded).
    pub fn store_permanent(backend: &'static str, message: impl Into<String>) -> Self {
        Self::store(backend, false, message.into())
    }

    fn store(backend: &'static str, retryable: bool, message: String) -> Self {
        Error::Store {
            backend,
            retryable,
            message,
            source: None,
        }
    }

    /// This error with the remote's own code (an SMTP reply, an EWS
    /// `ResponseCode`); only [`Error::Probe`], [`Error::ProbeThrottled`] and
    /// [`Error::Notify`] carry one, other variants are returned unchanged.
    #[must_use]
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        if let Error::Probe { code: c, .. }
        | Error::ProbeThrottled { code: c, .. }
        | Error::Notify { code: c, .. } = &mut self
        {
            *c = Some(code.into());
        }
        self
    }

    /// This error with `source`, the adapter's or hook's own error, as its
    /// [`source`](std::error::Error::source); only [`Error::Probe`],
    /// [`Error::ProbeThrottled`], [`Error::Notify`], [`Error::Hook`] and
    /// [`Error::Store`] carry one, other variants are returned unchanged.
    ///
    /// ```
    /// use continuity_core::Error;
    ///
    /// let io = std::io::Error::other("gateway API refused the route change");
    /// let e = Error::hook_transient("cannot hold inbound mail").with_source(io);
    /// assert_eq!(e.to_string(), "continuity hook failed: cannot hold inbound mail");
    /// assert!(e.source_as::<std::io::Error>().is_some());
    /// ```
    #[must_use]
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        if let Error::Probe { source: s, .. }
        | Error::ProbeThrottled { source: s, .. }
        | Error::Notify { source: s, .. }
        | Error::Hook { source: s, .. }
        | Error::Store { source: s, .. } = &mut self
        {
            *s = Some(source.into());
        }
        self
    }

    /// The first error of type `E` among this error's causes (its
    /// [`source`](std::error::Error::source) chain), so that an embedder can
    /// ask an adapter's own error what it knows: whether an EWS refusal is a
    /// missing permission, which AADSTS code Entra ID sent, whether the store
    /// was unreachable.
    ///
    /// ```
    /// use continuity_core::Error;
    ///
    /// #[derive(Debug)]
    /// struct Refused { permission: bool }
    /// impl std::fmt::Display for Refused {
    ///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    ///         f.write_str("access denied")
    ///     }
    /// }
    /// impl std::error::Error for Refused {}
    ///
    /// // What an adapter's `From<ItsError> for Error` does.
    /// let e = Error::probe_permanent("access denied").with_source(Refused { permission: true });
    /// assert!(e.source_as::<Refused>().is_some_and(|r| r.permission));
    /// assert!(e.source_as::<std::io::Error>().is_none());
    /// ```
    ///
    /// The adapters keep their errors so: `error.source_as::<EwsError>()`
    /// (then `is_permission()`), `source_as::<GraphError>()`,
    /// `source_as::<NotifyError>()`, `source_as::<StoreError>()`.
    pub fn source_as<E: std::error::Error + 'static>(&self) -> Option<&E> {
        let mut cause = std::error::Error::source(self);
        while let Some(e) = cause {
            if let Some(found) = e.downcast_ref::<E>() {
                return Some(found);
            }
            cause = e.source();
        }
        None
    }
}
