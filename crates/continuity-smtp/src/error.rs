//! What can go wrong configuring a relay or connecting to it.

use std::{fmt, io};

/// A relay setting that cannot be used. Each user of this crate reports it
/// in its own error type, under its own name for the setting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayConfigError {
    /// The setting, as named in [`RelayConfig`](crate::RelayConfig):
    /// `host`, `timeout`, `security`, `root_certificates_pem` or `tls`.
    pub field: &'static str,
    /// Which entry of a list setting (`root_certificates_pem`).
    pub index: Option<usize>,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for RelayConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index {
            Some(i) => write!(f, "{}[{i}]: {}", self.field, self.reason),
            None => write!(f, "{}: {}", self.field, self.reason),
        }
    }
}

impl std::error::Error for RelayConfigError {}

/// Why [`SmtpRelay::connect`](crate::SmtpRelay::connect) found no usable
/// connection.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConnectError {
    /// The TCP connection was not established within the timeout.
    Timeout,
    /// The TCP connection failed (refused, unreachable, name not resolved).
    Connect(io::Error),
    /// The socket refused `TCP_NODELAY`.
    Socket(io::Error),
    /// The relay does not offer STARTTLS, which the security mode requires.
    StartTlsNotOffered,
    /// The relay's greeting, EHLO, TLS or AUTH failed; lettre's error keeps
    /// the reply code.
    Smtp(lettre::transport::smtp::Error),
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::Timeout => f.write_str("connecting timed out"),
            ConnectError::Connect(e) => write!(f, "could not connect: {e}"),
            ConnectError::Socket(e) => write!(f, "{e}"),
            ConnectError::StartTlsNotOffered => {
                f.write_str("the relay does not offer STARTTLS, which is required")
            }
            ConnectError::Smtp(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConnectError::Connect(e) | ConnectError::Socket(e) => Some(e),
            ConnectError::Smtp(e) => Some(e),
            ConnectError::Timeout | ConnectError::StartTlsNotOffered => None,
        }
    }
}

impl From<lettre::transport::smtp::Error> for ConnectError {
    fn from(e: lettre::transport::smtp::Error) -> Self {
        ConnectError::Smtp(e)
    }
}
