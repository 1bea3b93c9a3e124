//! The connection check: what a relay offered, or what an administrator
//! must fix.

use std::fmt;

use crate::{error::ConnectError, relay::SmtpRelay, security::SmtpSecurity, tls};

impl SmtpRelay {
    /// Checks that mail can be handed to the relay, without sending any:
    /// resolves the host, connects, says EHLO, secures the connection as
    /// configured (STARTTLS or implicit TLS, the certificate checked),
    /// authenticates if credentials are set, and says QUIT. Meant for
    /// start-up and for an administrator's "test the settings" button.
    ///
    /// A [`SmtpConnectionProblem`] names the step that failed, says what to
    /// fix and whether trying again later can help.
    pub async fn check_connection(&self) -> Result<SmtpConnectionInfo, SmtpConnectionProblem> {
        let mut conn = self.connect().await.map_err(SmtpConnectionProblem::from)?;
        let info = SmtpConnectionInfo {
            server_name: conn.server_info().name().to_owned(),
            security: self.security(),
            encrypted: conn.is_encrypted(),
            authenticated: self.is_authenticated(),
        };
        // Everything asked for worked; a relay that drops QUIT changes nothing.
        let _ = conn.quit().await;
        Ok(info)
    }
}

/// What a successful [`SmtpRelay::check_connection`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SmtpConnectionInfo {
    /// The name the relay gave in its EHLO answer.
    pub server_name: String,
    /// The security mode used.
    pub security: SmtpSecurity,
    /// Whether the connection was encrypted (STARTTLS or implicit TLS).
    pub encrypted: bool,
    /// Whether AUTH was sent and accepted.
    pub authenticated: bool,
}

/// What is wrong with a relay, for an administrator: [`kind`](Self::kind)
/// names the step that failed, [`fmt::Display`] says what to check,
/// [`is_permanent`](Self::is_permanent) whether retrying without changing
/// the configuration is pointless; the step's error is the `source()`.
#[derive(Debug)]
pub struct SmtpConnectionProblem {
    kind: SmtpProblemKind,
    error: ConnectError,
}

/// What failed on the way to a relay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SmtpProblemKind {
    /// The host name does not exist. Permanent.
    UnknownHost,
    /// No connection: refused, unreachable, timed out, or the resolver
    /// could not answer for now.
    Unreachable,
    /// The relay does not offer STARTTLS, which the security mode
    /// requires. Permanent.
    StartTlsNotOffered,
    /// TLS failed: the relay's certificate is not trusted, has expired or
    /// is for another name, or the handshake failed. Not permanent: the
    /// relay's administrator can renew a certificate without this side
    /// changing anything.
    Tls,
    /// The relay refused the credentials (`535` and other `5xx` to AUTH).
    /// Permanent.
    BadCredentials,
    /// Credentials are configured, but the relay offers no AUTH mechanism
    /// this client has (PLAIN, LOGIN) on this connection. Permanent.
    AuthNotOffered,
    /// The relay refused the session with a `5xx` to the greeting, EHLO or
    /// STARTTLS (this client's address or name is not allowed). Permanent.
    Refused,
    /// The relay answered `4xx` or broke off: busy or failing for now.
    Unavailable,
}

impl SmtpProblemKind {
    /// Whether only a change of configuration (this side's or the relay's)
    /// can help: retrying the same thing later fails the same way.
    pub fn is_permanent(self) -> bool {
        matches!(
            self,
            SmtpProblemKind::UnknownHost
                | SmtpProblemKind::StartTlsNotOffered
                | SmtpProblemKind::BadCredentials
                | SmtpProblemKind::AuthNotOffered
                | SmtpProblemKind::Refused
        )
    }

    /// What failed, for an administrator.
    fn of(e: &ConnectError) -> Self {
        match e {
            ConnectError::UnknownHost { .. } => SmtpProblemKind::UnknownHost,
            ConnectError::Timeout | ConnectError::Connect(_) | ConnectError::Socket(_) => {
                SmtpProblemKind::Unreachable
            }
            ConnectError::StartTlsNotOffered => SmtpProblemKind::StartTlsNotOffered,
            ConnectError::Tls(_) => SmtpProblemKind::Tls,
            ConnectError::Auth(l) if l.is_permanent() => SmtpProblemKind::BadCredentials,
            // lettre's only client-side AUTH failure: no mechanism in common.
            ConnectError::Auth(l) if l.is_client() => SmtpProblemKind::AuthNotOffered,
            ConnectError::Auth(l) | ConnectError::Smtp(l) if l.is_transient() => {
                SmtpProblemKind::Unavailable
            }
            ConnectError::Smtp(l) if l.is_permanent() => SmtpProblemKind::Refused,
            // Implicit TLS: lettre reports the handshake as a connection error.
            ConnectError::Smtp(l) if tls::is_certificate_error(l) => SmtpProblemKind::Tls,
            // No reply at all: the connection failed or was dropped.
            ConnectError::Smtp(l) if l.status().is_none() && !l.is_response() => {
                SmtpProblemKind::Unreachable
            }
            _ => SmtpProblemKind::Unavailable,
        }
    }

    /// What to say before the step's error, and what to check after it.
    fn advice(self) -> (&'static str, &'static str) {
        match self {
            SmtpProblemKind::UnknownHost => (
                "",
                "check the relay's host name (a typo, or a name only an internal resolver knows)",
            ),
            SmtpProblemKind::Unreachable => (
                "cannot reach the relay: ",
                "check the host, the port and the firewall, or try again later",
            ),
            SmtpProblemKind::StartTlsNotOffered => (
                "",
                "use implicit TLS (usually port 465) if the relay offers it, or a relay that offers STARTTLS",
            ),
            SmtpProblemKind::Tls => (
                "",
                "check the relay's certificate, the name it must carry (tls_domain) and the trusted roots (root_certificates_pem)",
            ),
            SmtpProblemKind::BadCredentials => (
                "the relay refused the credentials: ",
                "check the user name and the password",
            ),
            SmtpProblemKind::AuthNotOffered => (
                "the relay offers no AUTH mechanism this client has (PLAIN, LOGIN) on this connection: ",
                "many relays offer AUTH only over TLS, others need none (remove the credentials)",
            ),
            SmtpProblemKind::Refused => (
                "the relay refused the session: ",
                "ask its administrator to allow this client",
            ),
            SmtpProblemKind::Unavailable => {
                ("the relay is unavailable for now: ", "try again later")
            }
        }
    }
}

impl SmtpConnectionProblem {
    /// What failed.
    pub fn kind(&self) -> SmtpProblemKind {
        self.kind
    }

    /// Whether only a change of configuration (this side's or the relay's)
    /// can help: retrying the same thing later fails the same way.
    pub fn is_permanent(&self) -> bool {
        self.kind.is_permanent()
    }

    /// The error of the step that failed.
    pub fn error(&self) -> &ConnectError {
        &self.error
    }

    /// The error of the step that failed, owned.
    pub fn into_error(self) -> ConnectError {
        self.error
    }
}

/// Sorts a failed connection by what an administrator has to do about it.
impl From<ConnectError> for SmtpConnectionProblem {
    fn from(error: ConnectError) -> Self {
        SmtpConnectionProblem {
            kind: SmtpProblemKind::of(&error),
            error,
        }
    }
}

impl fmt::Display for SmtpConnectionProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (before, check) = self.kind.advice();
        write!(f, "{before}{}; {check}", self.error)
    }
}

impl std::error::Error for SmtpConnectionProblem {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}
