//! The connection check: what it learnt, or what an administrator must fix.

use std::fmt;

use super::{EwsClient, EwsConfig};
use crate::{
    error::EwsError,
    request::{self, Folder},
    response::{FolderInfo, ServerVersionInfo},
};

impl EwsClient {
    /// Checks that the client can work with `mailbox`: reachable, TLS,
    /// credentials, impersonation, mailbox, request version. Read-only
    /// (`GetFolder` of the Inbox).
    pub async fn check_connection(
        &self,
        mailbox: &str,
    ) -> std::result::Result<EwsConnectionInfo, EwsConnectionProblem> {
        let body = request::get_folder(&self.envelope(mailbox), Folder::Inbox);
        let outcome = match self.call("GetFolder", mailbox, body).await {
            Ok(r) => {
                let server = r.server.clone();
                r.first("GetFolder").map(|m| EwsConnectionInfo {
                    server,
                    inbox: m.folders.into_iter().next(),
                })
            }
            Err(e) => Err(e),
        };
        outcome.map_err(|e| EwsConnectionProblem::diagnose(e, &self.inner.cfg, mailbox))
    }
}

/// What a successful connection check learnt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EwsConnectionInfo {
    /// The server's `ServerVersionInfo`, when sent.
    pub server: Option<ServerVersionInfo>,
    /// The impersonated mailbox's Inbox.
    pub inbox: Option<FolderInfo>,
}

/// What is wrong, for an administrator. [`fmt::Display`] says what to do.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum EwsConnectionProblem {
    /// The endpoint cannot be reached (DNS, firewall, server down).
    Unreachable(EwsError),
    /// TLS failed: certificate untrusted, expired or for another name.
    Tls(EwsError),
    /// The service account's credentials (or token) were refused.
    BadCredentials(EwsError),
    /// The account may not impersonate the mailbox: the ApplicationImpersonation role is missing.
    ImpersonationDenied(EwsError),
    /// The mailbox does not exist.
    MailboxNotFound(EwsError),
    /// The server refuses the configured `RequestServerVersion`.
    ServerVersionUnsupported(EwsError),
    /// Exchange Online has EWS switched off for the tenant.
    EwsDisabled(EwsError),
    /// The server is busy or failing; try again later.
    Unavailable(EwsError),
    /// Anything else.
    Other(EwsError),
}

impl EwsConnectionProblem {
    fn diagnose(e: EwsError, cfg: &EwsConfig, mailbox: &str) -> Self {
        let code = e.response_code().map(|c| c.as_str().to_owned());
        let message = match &e {
            EwsError::Fault { message, .. } | EwsError::Response { message, .. } => {
                message.to_ascii_lowercase()
            }
            _ => String::new(),
        };
        let _ = (cfg, mailbox);
        match (&e, code.as_deref()) {
            (EwsError::Unreachable { .. } | EwsError::Timeout { .. }, _) => {
                EwsConnectionProblem::Unreachable(e)
            }
            (EwsError::Tls { .. }, _) => EwsConnectionProblem::Tls(e),
            (EwsError::Unauthorized { .. }, _) => EwsConnectionProblem::BadCredentials(e),
            (EwsError::EwsDisabled { .. }, _) => EwsConnectionProblem::EwsDisabled(e),
            (_, Some("ErrorImpersonateUserDenied" | "ErrorImpersonationDenied")) => {
                EwsConnectionProblem::ImpersonationDenied(e)
            }
            (
                _,
                Some(
                    "ErrorNonExistentMailbox"
                    | "ErrorInvalidSmtpAddress"
                    | "ErrorMailRecipientNotFound",
                ),
            ) => EwsConnectionProblem::MailboxNotFound(e),
            (
                _,
                Some(
                    "ErrorInvalidServerVersion"
                    | "ErrorInvalidSchemaVersionForMailboxVersion"
                    | "ErrorIncorrectSchemaVersion",
                ),
            ) => EwsConnectionProblem::ServerVersionUnsupported(e),
            (
                EwsError::Http {
                    status: 500,
                    excerpt,
                    ..
                },
                _,
            ) if excerpt
                .to_ascii_lowercase()
                .contains("server version is invalid") =>
            {
                EwsConnectionProblem::ServerVersionUnsupported(e)
            }
            (_, Some("ErrorSchemaValidation")) if message.contains("requestserverversion") => {
                EwsConnectionProblem::ServerVersionUnsupported(e)
            }
            _ if e.is_retryable() => EwsConnectionProblem::Unavailable(e),
            _ => EwsConnectionProblem::Other(e),
        }
    }

    /// The underlying error.
    pub fn error(&self) -> &EwsError {
        match self {
            EwsConnectionProblem::Unreachable(e)
            | EwsConnectionProblem::Tls(e)
            | EwsConnectionProblem::BadCredentials(e)
            | EwsConnectionProblem::ImpersonationDenied(e)
            | EwsConnectionProblem::MailboxNotFound(e)
            | EwsConnectionProblem::ServerVersionUnsupported(e)
            | EwsConnectionProblem::EwsDisabled(e)
            | EwsConnectionProblem::Unavailable(e)
            | EwsConnectionProblem::Other(e) => e,
        }
    }
}

impl fmt::Display for EwsConnectionProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let advice = match self {
            EwsConnectionProblem::Unreachable(_) => {
                "the EWS endpoint cannot be reached: check the host name, DNS, the firewall and that IIS/EWS runs"
            }
            EwsConnectionProblem::Tls(_) => {
                "the TLS connection failed: the server's certificate is not trusted, expired, or issued for another name"
            }
            EwsConnectionProblem::BadCredentials(_) => {
                "the service account's credentials were refused: check user name and password (or the token's app registration)"
            }
            EwsConnectionProblem::ImpersonationDenied(_) => {
                "the service account may not impersonate this mailbox: grant it the ApplicationImpersonation role (New-ManagementRoleAssignment -Role ApplicationImpersonation -User <account>) with a scope covering the mailbox"
            }
            EwsConnectionProblem::MailboxNotFound(_) => {
                "the mailbox does not exist: check its primary SMTP address"
            }
            EwsConnectionProblem::ServerVersionUnsupported(_) => {
                "the server refuses the configured RequestServerVersion: configure an older version (e.g. Exchange2010_SP2)"
            }
            EwsConnectionProblem::EwsDisabled(_) => {
                "EWS is disabled for this tenant (Exchange Online retires EWS): use the Microsoft Graph adapter"
            }
            EwsConnectionProblem::Unavailable(_) => {
                "the server is busy or failing: try again later"
            }
            EwsConnectionProblem::Other(_) => "unexpected answer",
        };
        write!(f, "{advice} ({})", self.error())
    }
}

impl std::error::Error for EwsConnectionProblem {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.error())
    }
}
