//! The crate's one error type, and its mapping into core's
//! [`Error::Notify`](continuity_core::Error::Notify).

use std::time::Duration;

use continuity_core::config::ChannelKind;

/// Result alias used across `continuity-notify`.
pub type Result<T, E = NotifyError> = std::result::Result<T, E>;

/// What can go wrong when a notifier is built or delivers an alert.
///
/// Each variant says what a caller can do about it; [`is_retryable`](Self::is_retryable)
/// answers the retry logic's question without matching on strings, and every
/// remote failure keeps the remote's own code and message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NotifyError {
    /// The notifier's configuration is invalid; the message names the field. Fix the configuration.
    #[error("invalid {channel} notifier configuration: {field}: {reason}")]
    Config {
        /// The channel.
        channel: ChannelKind,
        /// The offending setting, e.g. `base_url`.
        field: String,
        /// What is wrong and what is expected.
        reason: String,
    },

    /// The provider refused the credentials or the account lacks a permission. Fix the configuration.
    #[error(
        "{channel} provider refused the credentials{}: {message}",
        code_suffix(code)
    )]
    Auth {
        /// The channel.
        channel: ChannelKind,
        /// The provider's code (Twilio error number, SMTP reply, HTTP status).
        code: Option<String>,
        /// The provider's message.
        message: String,
    },

    /// The provider refused this message or recipient (invalid number, unknown
    /// mailbox, a 4xx a retry cannot fix). Fix the recipient or the message.
    #[error(
        "{channel} provider rejected the message{}: {message}",
        code_suffix(code)
    )]
    Rejected {
        /// The channel.
        channel: ChannelKind,
        /// The provider's code.
        code: Option<String>,
        /// The provider's message.
        message: String,
    },

    /// The provider asks us to slow down. Retry after `retry_after` if given.
    #[error("{channel} provider is rate limiting{}: {message}", code_suffix(code))]
    RateLimited {
        /// The channel.
        channel: ChannelKind,
        /// The provider's code.
        code: Option<String>,
        /// The provider's message.
        message: String,
        /// How long the provider asked us to wait, if it said.
        retry_after: Option<Duration>,
    },

    /// The provider or the network failed in a way a later retry can fix
    /// (connection refused, timeout, 5xx, SMTP 4xx).
    #[error("{channel} provider unavailable{}: {message}", code_suffix(code))]
    Unavailable {
        /// The channel.
        channel: ChannelKind,
        /// The provider's code, if it answered.
        code: Option<String>,
        /// What happened.
        message: String,
        /// How long the provider asked us to wait, if it said.
        retry_after: Option<Duration>,
    },

    /// The channel's circuit breaker is open: recent deliveries failed, so no
    /// request is made until `retry_after` has passed.
    #[error("{channel} circuit open after repeated failures; next try in {retry_after:?}")]
    CircuitOpen {
        /// The channel.
        channel: ChannelKind,
        /// When the breaker lets a trial request through.
        retry_after: Duration,
    },

    /// No notifier for the channel a recipient or fallback names is installed.
    #[error("no {channel} notifier is installed")]
    NoChannel {
        /// The channel asked for.
        channel: ChannelKind,
    },

    /// The message could not be rendered or built (for example a template failed).
    #[error("{channel} message could not be built: {message}")]
    Render {
        /// The channel.
        channel: ChannelKind,
        /// What went wrong.
        message: String,
    },
}

fn code_suffix(code: &Option<String>) -> String {
    code.as_ref().map(|c| format!(" ({c})")).unwrap_or_default()
}

impl NotifyError {
    /// Whether trying the same delivery again later can succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            NotifyError::RateLimited { .. }
                | NotifyError::Unavailable { .. }
                | NotifyError::CircuitOpen { .. }
        )
    }

    /// How long the provider (or the circuit breaker) asked us to wait, if known.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            NotifyError::RateLimited { retry_after, .. }
            | NotifyError::Unavailable { retry_after, .. } => *retry_after,
            NotifyError::CircuitOpen { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// The provider's own code, if any.
    pub fn code(&self) -> Option<&str> {
        match self {
            NotifyError::Auth { code, .. }
            | NotifyError::Rejected { code, .. }
            | NotifyError::RateLimited { code, .. }
            | NotifyError::Unavailable { code, .. } => code.as_deref(),
            NotifyError::CircuitOpen { .. } => Some("circuit-open"),
            _ => None,
        }
    }

    /// The channel the error belongs to.
    pub fn channel(&self) -> ChannelKind {
        match self {
            NotifyError::Config { channel, .. }
            | NotifyError::Auth { channel, .. }
            | NotifyError::Rejected { channel, .. }
            | NotifyError::RateLimited { channel, .. }
            | NotifyError::Unavailable { channel, .. }
            | NotifyError::CircuitOpen { channel, .. }
            | NotifyError::NoChannel { channel }
            | NotifyError::Render { channel, .. } => *channel,
        }
    }

    /// Whether the error is about the channel as a whole (provider down,
    /// credentials refused) rather than this one message; only those count
    /// against a circuit breaker.
    pub fn is_channel_failure(&self) -> bool {
        matches!(
            self,
            NotifyError::Unavailable { .. } | NotifyError::RateLimited { .. }
        )
    }

    pub(crate) fn config(
        channel: ChannelKind,
        field: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        NotifyError::Config {
            channel,
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn unavailable(channel: ChannelKind, message: impl Into<String>) -> Self {
        NotifyError::Unavailable {
            channel,
            code: None,
            message: message.into(),
            retry_after: None,
        }
    }
}

/// The `NotifyError` is kept as the core error's `source()`, for
/// [`source_as`](continuity_core::Error::source_as).
impl From<NotifyError> for continuity_core::Error {
    fn from(e: NotifyError) -> Self {
        continuity_core::Error::Notify {
            channel: e.channel().to_string(),
            retryable: e.is_retryable(),
            retry_after: e.retry_after(),
            code: e.code().map(str::to_string),
            message: e.to_string(),
            source: Some(Box::new(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_into_core_with_retry_facts() {
        let e = NotifyError::RateLimited {
            channel: ChannelKind::Sms,
            code: Some("20429".into()),
            message: "Too Many Requests".into(),
            retry_after: Some(Duration::from_secs(7)),
        };
        match continuity_core::Error::from(e) {
            continuity_core::Error::Notify {
                channel,
                retryable,
                retry_after,
                code,
                message,
                ..
            } => {
                assert_eq!(channel, "sms");
                assert!(retryable);
                assert_eq!(retry_after, Some(Duration::from_secs(7)));
                assert_eq!(code.as_deref(), Some("20429"));
                assert!(message.contains("Too Many Requests"), "{message}");
            }
            other => panic!("unexpected {other:?}"),
        }
        let e = NotifyError::Rejected {
            channel: ChannelKind::Sms,
            code: Some("21211".into()),
            message: "invalid 'To' number".into(),
        };
        assert!(!e.is_retryable());
        assert!(!continuity_core::Error::from(e).is_retryable());
    }

    #[test]
    fn core_error_keeps_the_notify_error_as_its_source() {
        use std::error::Error as _;

        let e = NotifyError::Auth {
            channel: ChannelKind::Sms,
            code: Some("20003".into()),
            message: "Authenticate".into(),
        };
        let text = e.to_string();
        let core = continuity_core::Error::from(e);
        assert_eq!(
            core.to_string(),
            format!("sms notification failed (20003): {text}")
        );
        let notify = core
            .source()
            .and_then(|s| s.downcast_ref::<NotifyError>())
            .expect("the notifier's error is the source");
        assert!(matches!(notify, NotifyError::Auth { .. }), "{notify:?}");
        assert_eq!(
            core.source_as::<NotifyError>().and_then(NotifyError::code),
            Some("20003")
        );
    }
}
