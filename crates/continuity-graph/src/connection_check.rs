//! The connection check: tells an administrator exactly what is missing
//! before the first probe, like `continuity-ews`'s.
//!
//! In order: a token (the tenant, the application, its certificate, admin
//! consent), the token's application permissions (its `roles`), and one
//! read of the mailbox's Inbox (`$top=1`), which shows whether the mailbox
//! exists and is inside the application's scope. Nothing is sent: whether
//! Exchange lets the application send *as this mailbox* shows only when it
//! sends (an RBAC for Applications scope can cover `Mail.Send` alone), so
//! the first outbound probe reports that; [`SendCheck`] says what was seen.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use continuity_core::access_token::AccessToken;

use crate::error::{AadstsKind, GraphError, Refusal};
use crate::graph_client::GraphClient;

/// What the probe does with a mailbox, hence which permission it needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MailboxUse {
    /// Sends outbound probes (`Mail.Send`).
    SendsProbes,
    /// Receives inbound probes, which are found and deleted (`Mail.ReadWrite`).
    ReceivesProbes,
    /// Both.
    SendsAndReceivesProbes,
}

impl MailboxUse {
    fn permissions(self) -> &'static [&'static str] {
        match self {
            MailboxUse::SendsProbes => &["Mail.Send"],
            MailboxUse::ReceivesProbes => &["Mail.ReadWrite"],
            MailboxUse::SendsAndReceivesProbes => &["Mail.ReadWrite", "Mail.Send"],
        }
    }

    fn sends(self) -> bool {
        self != MailboxUse::ReceivesProbes
    }
}

/// How far sending was verified without sending.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendCheck {
    /// The mailbox does not send probes.
    NotNeeded,
    /// The token grants `Mail.Send`, and the mailbox is in the application's
    /// scope for reading; a send-only scope shows at the first send.
    GrantedInToken,
    /// The token is not readable here (not a JWT), so `Mail.Send` was not
    /// verified; the first outbound probe will tell.
    NotVerifiable,
}

/// What a successful check learnt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GraphConnectionInfo {
    /// The mailbox checked.
    pub mailbox: String,
    /// The application permissions in the token (`roles`), when readable.
    pub roles: Option<Vec<String>>,
    /// Whether the read showed the mailbox exists and is in the application's
    /// scope. `false` only for a sending mailbox when the application has
    /// `Mail.Send` without any read permission: then the first send tells.
    pub mailbox_verified: bool,
    /// How far sending was verified.
    pub send: SendCheck,
}

/// What is missing, for an administrator. [`fmt::Display`] says what to do.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum GraphConnectionProblem {
    /// This side's configuration is incomplete (no settings or no mailbox for the tenant).
    NotConfigured(GraphError),
    /// The tenant does not exist (wrong id or domain, or another cloud).
    UnknownTenant(GraphError),
    /// The application (client id) is unknown in the tenant.
    UnknownApplication(GraphError),
    /// The certificate is not registered on the app registration.
    CertificateNotRegistered(GraphError),
    /// The registered certificate is revoked or outside its validity.
    CertificateRevokedOrExpired(GraphError),
    /// Admin consent for the application is missing.
    ConsentMissing(GraphError),
    /// This host's clock is too far off for Entra ID.
    ClockSkew(GraphError),
    /// No token for another reason (Conditional Access, scope, Entra ID unavailable).
    AccessTokenUnavailable(GraphError),
    /// An application permission is missing or not consented.
    PermissionMissing {
        /// The permission (`Mail.Send`, `Mail.ReadWrite`).
        permission: &'static str,
        /// What showed it.
        error: GraphError,
    },
    /// The mailbox is outside the application's scope (application access policy).
    MailboxOutOfScope(GraphError),
    /// The mailbox does not exist in Exchange Online.
    MailboxNotFound(GraphError),
    /// Graph refused the token itself.
    TokenRejected(GraphError),
    /// Graph cannot be reached.
    Unreachable(GraphError),
    /// Graph is busy, throttling or failing: try again later.
    Unavailable(GraphError),
    /// Anything else.
    Other(GraphError),
}

impl GraphConnectionProblem {
    fn diagnose(e: GraphError) -> Self {
        if let GraphError::AccessToken {
            kind: Some(kind), ..
        } = &e
        {
            return match kind {
                AadstsKind::UnknownTenant => GraphConnectionProblem::UnknownTenant(e),
                AadstsKind::UnknownApplication => GraphConnectionProblem::UnknownApplication(e),
                AadstsKind::CertificateNotRegistered => {
                    GraphConnectionProblem::CertificateNotRegistered(e)
                }
                AadstsKind::CertificateRevokedOrExpired => {
                    GraphConnectionProblem::CertificateRevokedOrExpired(e)
                }
                AadstsKind::ConsentMissing => GraphConnectionProblem::ConsentMissing(e),
                AadstsKind::ClockSkew => GraphConnectionProblem::ClockSkew(e),
                _ => GraphConnectionProblem::AccessTokenUnavailable(e),
            };
        }
        match e.refusal() {
            Some(Refusal::PermissionMissing(permission)) => {
                GraphConnectionProblem::PermissionMissing {
                    permission,
                    error: e,
                }
            }
            Some(Refusal::OutOfScope) => GraphConnectionProblem::MailboxOutOfScope(e),
            Some(Refusal::MailboxNotFound) => GraphConnectionProblem::MailboxNotFound(e),
            Some(Refusal::TokenRejected) => GraphConnectionProblem::TokenRejected(e),
            None => match &e {
                GraphError::AccessToken { .. } => GraphConnectionProblem::AccessTokenUnavailable(e),
                GraphError::GraphUnreachable { .. } => GraphConnectionProblem::Unreachable(e),
                _ if e.is_retryable() => GraphConnectionProblem::Unavailable(e),
                _ => GraphConnectionProblem::Other(e),
            },
        }
    }

    /// The underlying error.
    pub fn error(&self) -> &GraphError {
        match self {
            GraphConnectionProblem::NotConfigured(e)
            | GraphConnectionProblem::UnknownTenant(e)
            | GraphConnectionProblem::UnknownApplication(e)
            | GraphConnectionProblem::CertificateNotRegistered(e)
            | GraphConnectionProblem::CertificateRevokedOrExpired(e)
            | GraphConnectionProblem::ConsentMissing(e)
            | GraphConnectionProblem::ClockSkew(e)
            | GraphConnectionProblem::AccessTokenUnavailable(e)
            | GraphConnectionProblem::PermissionMissing { error: e, .. }
            | GraphConnectionProblem::MailboxOutOfScope(e)
            | GraphConnectionProblem::MailboxNotFound(e)
            | GraphConnectionProblem::TokenRejected(e)
            | GraphConnectionProblem::Unreachable(e)
            | GraphConnectionProblem::Unavailable(e)
            | GraphConnectionProblem::Other(e) => e,
        }
    }
}

impl fmt::Display for GraphConnectionProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let advice = match self {
            GraphConnectionProblem::NotConfigured(_) => "the probe is not configured for this".into(),
            GraphConnectionProblem::UnknownTenant(_) => AadstsKind::UnknownTenant.advice().into(),
            GraphConnectionProblem::UnknownApplication(_) => {
                AadstsKind::UnknownApplication.advice().into()
            }
            GraphConnectionProblem::CertificateNotRegistered(_) => {
                AadstsKind::CertificateNotRegistered.advice().into()
            }
            GraphConnectionProblem::CertificateRevokedOrExpired(_) => {
                AadstsKind::CertificateRevokedOrExpired.advice().into()
            }
            GraphConnectionProblem::ConsentMissing(_) => AadstsKind::ConsentMissing.advice().into(),
            GraphConnectionProblem::ClockSkew(_) => AadstsKind::ClockSkew.advice().into(),
            GraphConnectionProblem::AccessTokenUnavailable(_) => "no access token could be had".into(),
            GraphConnectionProblem::PermissionMissing { permission, .. } => {
                Refusal::PermissionMissing(permission).advice()
            }
            GraphConnectionProblem::MailboxOutOfScope(_) => Refusal::OutOfScope.advice(),
            GraphConnectionProblem::MailboxNotFound(_) => Refusal::MailboxNotFound.advice(),
            GraphConnectionProblem::TokenRejected(_) => Refusal::TokenRejected.advice(),
            GraphConnectionProblem::Unreachable(_) => {
                "Microsoft Graph cannot be reached: check DNS, the firewall or proxy, and the endpoint".into()
            }
            GraphConnectionProblem::Unavailable(_) => {
                "Microsoft Graph is busy or failing: try again later".into()
            }
            GraphConnectionProblem::Other(_) => "unexpected answer".to_string(),
        };
        write!(f, "{advice} ({})", self.error())
    }
}

impl std::error::Error for GraphConnectionProblem {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.error())
    }
}

/// The application permissions (`roles`) of a JWT access token; `None` if
/// the token is not a readable JWT. Only read, never trusted: Graph checks
/// the token; this tells the administrator what it will find.
pub(crate) fn access_token_roles(token: &AccessToken) -> Option<Vec<String>> {
    let mut parts = token.secret().expose().split('.');
    let (_, payload, _) = (parts.next()?, parts.next()?, parts.next()?);
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let claims = claims.as_object()?;
    Some(match claims.get("roles") {
        Some(serde_json::Value::Array(roles)) => roles
            .iter()
            .filter_map(|r| r.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    })
}

impl GraphClient {
    /// Checks that this client can serve `mailbox` for `usage`: token,
    /// application permissions, mailbox existence and scope. Reads one
    /// message id at most; sends nothing.
    pub async fn check_connection(
        &self,
        mailbox: &str,
        usage: MailboxUse,
    ) -> Result<GraphConnectionInfo, GraphConnectionProblem> {
        let access_token = self
            .access_token()
            .await
            .map_err(GraphConnectionProblem::diagnose)?;
        let roles = access_token_roles(&access_token);
        let may_read = roles
            .as_ref()
            .is_none_or(|r| r.iter().any(|g| g.starts_with("Mail.Read")));
        let mailbox_verified = match self.peek_inbox(mailbox).await {
            Ok(()) => true,
            // A send-only application cannot read: nothing to verify the mailbox with.
            Err(e)
                if usage == MailboxUse::SendsProbes
                    && !may_read
                    && matches!(e.refusal(), Some(Refusal::PermissionMissing(_))) =>
            {
                false
            }
            Err(e) => return Err(GraphConnectionProblem::diagnose(e)),
        };
        if let Some(granted) = &roles {
            // Mail.ReadWrite includes reading; Mail.Send is separate.
            if let Some(missing) = usage
                .permissions()
                .iter()
                .find(|p| !granted.iter().any(|g| g == *p))
            {
                return Err(GraphConnectionProblem::PermissionMissing {
                    permission: missing,
                    error: GraphError::PermissionNotGranted {
                        permission: missing,
                        granted: granted.clone(),
                    },
                });
            }
        }
        let send = match (usage.sends(), &roles) {
            (false, _) => SendCheck::NotNeeded,
            (true, Some(_)) => SendCheck::GrantedInToken,
            (true, None) => SendCheck::NotVerifiable,
        };
        Ok(GraphConnectionInfo {
            mailbox: mailbox.to_owned(),
            roles,
            mailbox_verified,
            send,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(payload: &str) -> AccessToken {
        let now = "2026-03-02T08:00:00Z".parse().unwrap();
        AccessToken::new(
            format!(
                "eyJhbGciOiJub25lIn0.{}.sig",
                URL_SAFE_NO_PAD.encode(payload)
            ),
            now,
        )
    }

    #[test]
    fn roles_are_read_from_a_jwt_when_there_is_one() {
        assert_eq!(
            access_token_roles(&jwt(
                r#"{"aud":"https://graph.microsoft.com","roles":["Mail.Send","Mail.ReadWrite"]}"#
            )),
            Some(vec!["Mail.Send".to_owned(), "Mail.ReadWrite".to_owned()])
        );
        assert_eq!(
            access_token_roles(&jwt(r#"{"aud":"x"}"#)),
            Some(vec![]),
            "no roles: none granted"
        );
        let now = "2026-03-02T08:00:00Z".parse().unwrap();
        assert_eq!(
            access_token_roles(&AccessToken::new("opaque-token", now)),
            None
        );
        assert_eq!(access_token_roles(&AccessToken::new("a.!!!.c", now)), None);
        assert_eq!(access_token_roles(&jwt("[1,2]")), None);
    }
}
