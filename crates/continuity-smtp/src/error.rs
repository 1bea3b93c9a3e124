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
/// connection, by the step that failed. [`SmtpConnectionProblem`](crate::SmtpConnectionProblem)
/// says what it means for an administrator and whether retrying can help.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConnectError {
    /// The name was not resolved or the TCP connection was not established
    /// within the timeout.
    Timeout,
    /// The relay's host name does not exist (the resolver answered "no such
    /// name"): the configuration names a host that is not there.
    UnknownHost {
        /// The host name looked up.
        host: String,
        /// The resolver's error.
        source: io::Error,
    },
    /// The TCP connection failed (refused, unreachable), or the name could
    /// not be looked up for now (the resolver is down or timed out).
    Connect(io::Error),
    /// The socket refused `TCP_NODELAY`.
    Socket(io::Error),
    /// The relay does not offer STARTTLS, which the security mode requires.
    StartTlsNotOffered,
    /// The TLS handshake failed (certificate not trusted, expired or for
    /// another name; no common protocol).
    Tls(lettre::transport::smtp::Error),
    /// AUTH failed: the credentials were refused, or the relay offers no
    /// mechanism this client has (PLAIN, LOGIN). lettre's error keeps the
    /// reply code.
    Auth(lettre::transport::smtp::Error),
    /// The connection, greeting, EHLO or STARTTLS command failed; lettre's
    /// error keeps the reply code.
    Smtp(lettre::transport::smtp::Error),
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::Timeout => f.write_str("connecting timed out"),
            ConnectError::UnknownHost { host, source } => {
                write!(f, "the host name {host:?} does not resolve: {source}")
            }
            ConnectError::Connect(e) => write!(f, "could not connect: {e}"),
            ConnectError::Socket(e) => write!(f, "{e}"),
            ConnectError::StartTlsNotOffered => {
                f.write_str("the relay does not offer STARTTLS, which is required")
            }
            ConnectError::Tls(e) => write!(f, "TLS failed: {e}"),
            ConnectError::Auth(e) => write!(f, "AUTH failed: {e}"),
            ConnectError::Smtp(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConnectError::UnknownHost { source: e, .. }
            | ConnectError::Connect(e)
            | ConnectError::Socket(e) => Some(e),
            ConnectError::Tls(e) | ConnectError::Auth(e) | ConnectError::Smtp(e) => Some(e),
            ConnectError::Timeout | ConnectError::StartTlsNotOffered => None,
        }
    }
}

impl From<lettre::transport::smtp::Error> for ConnectError {
    fn from(e: lettre::transport::smtp::Error) -> Self {
        ConnectError::Smtp(e)
    }
}

/// Whether a failed name lookup says the name does not exist, as opposed
/// to a resolver that cannot answer for now.
///
/// The standard library reports `getaddrinfo` failures with the C
/// library's text only (no error kind or code to match), so the texts of
/// "no such name" in glibc, musl and the BSDs/macOS are recognised here;
/// Windows reports `WSAHOST_NOT_FOUND` as an OS error code. Anything else,
/// "Temporary failure in name resolution" included, is left to retry: a
/// resolver outage must not turn alerts into permanent failures.
pub(crate) fn is_unknown_host(e: &io::Error) -> bool {
    const WSAHOST_NOT_FOUND: i32 = 11001;
    const NO_SUCH_NAME: [&str; 4] = [
        "name or service not known",
        "no address associated with hostname",
        "name does not resolve",
        "nodename nor servname provided",
    ];
    if cfg!(windows) && e.raw_os_error() == Some(WSAHOST_NOT_FOUND) {
        return true;
    }
    let text = e.to_string().to_ascii_lowercase();
    NO_SUCH_NAME.iter().any(|t| text.contains(t))
}

/// Whether lettre's error is a name lookup that found no such host (see
/// [`SmtpRelay::connect`](crate::SmtpRelay::connect), which reports it as
/// [`ConnectError::UnknownHost`]): for a sender using lettre's transport,
/// which resolves the name itself.
pub fn is_unknown_host_error(e: &lettre::transport::smtp::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<io::Error>() {
            return is_unknown_host(io);
        }
        source = s.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup_failed(detail: &str) -> io::Error {
        // What the standard library builds from getaddrinfo's answer.
        io::Error::other(format!("failed to lookup address information: {detail}"))
    }

    #[test]
    fn a_name_that_does_not_exist_is_told_from_a_resolver_that_cannot_answer() {
        for missing in [
            "Name or service not known",
            "No address associated with hostname",
            "Name does not resolve",
            "nodename nor servname provided, or not known",
        ] {
            assert!(is_unknown_host(&lookup_failed(missing)), "{missing}");
        }
        for later in [
            "Temporary failure in name resolution",
            "Try again",
            "Non-recoverable failure in name resolution",
        ] {
            assert!(!is_unknown_host(&lookup_failed(later)), "{later}");
        }
        assert!(!is_unknown_host(&io::Error::from(
            io::ErrorKind::ConnectionRefused
        )));
    }
}
