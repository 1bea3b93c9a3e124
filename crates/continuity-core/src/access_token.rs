//! The access-token seam between adapters: a source of short-lived bearer
//! tokens (an Entra ID app-only credential, a hybrid OAuth setup) that an
//! adapter needing `Authorization: Bearer` asks before each request.
//!
//! `continuity-graph` implements it; `continuity-ews` consumes it. Neither
//! depends on the other; both depend on this trait.
//!
//! ```
//! use chrono::{DateTime, TimeDelta, Utc};
//! use continuity_core::access_token::{AccessToken, AccessTokenSource};
//!
//! #[derive(Debug)]
//! struct Fixed(DateTime<Utc>);
//!
//! #[async_trait::async_trait]
//! impl AccessTokenSource for Fixed {
//!     async fn access_token(&self) -> continuity_core::Result<AccessToken> {
//!         Ok(AccessToken::new("eyJ0eXAi-secret", self.0 + TimeDelta::minutes(60)))
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let now: DateTime<Utc> = "2026-03-02T08:00:00Z".parse().unwrap();
//! let token = Fixed(now).access_token().await.unwrap();
//! assert_eq!(token.secret().expose(), "eyJ0eXAi-secret");
//! assert!(!format!("{token:?}").contains("eyJ0eXAi"));
//! assert!(!token.expires_within(now, TimeDelta::minutes(5)));
//! # }
//! ```

use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};

use crate::error::Result;

/// A secret string (a bearer token) that never shows in `Debug` and has no
/// `Display`; read it with [`AccessTokenSecret::expose`] where it goes on the wire.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessTokenSecret(String);

impl AccessTokenSecret {
    /// Wraps `token`.
    pub fn new(token: impl Into<String>) -> Self {
        AccessTokenSecret(token.into())
    }

    /// The token itself, for the `Authorization` header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AccessTokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessTokenSecret(<redacted>)")
    }
}

/// A bearer token and when it stops being valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessToken {
    secret: AccessTokenSecret,
    expires_at: DateTime<Utc>,
}

impl AccessToken {
    /// A token valid until `expires_at`.
    pub fn new(secret: impl Into<String>, expires_at: DateTime<Utc>) -> Self {
        AccessToken {
            secret: AccessTokenSecret::new(secret),
            expires_at,
        }
    }

    /// The secret.
    pub fn secret(&self) -> &AccessTokenSecret {
        &self.secret
    }

    /// When the token expires.
    pub fn expires_at(&self) -> DateTime<Utc> {
        self.expires_at
    }

    /// Whether the token expires before `now + margin` (time to refresh).
    pub fn expires_within(&self, now: DateTime<Utc>, margin: TimeDelta) -> bool {
        now.checked_add_signed(margin)
            .is_none_or(|limit| self.expires_at <= limit)
    }
}

/// Supplies bearer tokens for one resource (e.g. `https://outlook.office365.com/.default`).
///
/// # Contract
/// - `access_token` returns a token valid for a while yet; sources cache and refresh
///   ahead of expiry themselves (tokens live 60–90 minutes, never assume one hour).
/// - Errors are [`Error::Probe`](crate::Error::Probe) (or
///   [`Error::ProbeThrottled`](crate::Error::ProbeThrottled)), with the
///   source's own error as their `source()`; `is_retryable` tells whether
///   asking again later can help (a throttled token endpoint) or not (a
///   revoked certificate, a missing consent).
/// - After the resource refused a token (HTTP 401, token expired or invalid),
///   the consumer calls [`invalidate`](AccessTokenSource::invalidate) once and
///   asks again; a caching source must then fetch a new token.
#[async_trait]
pub trait AccessTokenSource: Send + Sync + fmt::Debug {
    /// A currently valid token.
    async fn access_token(&self) -> Result<AccessToken>;

    /// The resource refused `token`: drop it from any cache. Default: nothing.
    fn invalidate(&self, token: &AccessToken) {
        let _ = token;
    }
}

#[async_trait]
impl<T: AccessTokenSource + ?Sized> AccessTokenSource for std::sync::Arc<T> {
    async fn access_token(&self) -> Result<AccessToken> {
        (**self).access_token().await
    }
    fn invalidate(&self, token: &AccessToken) {
        (**self).invalidate(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_margin() {
        let now: DateTime<Utc> = "2026-03-02T08:00:00Z".parse().unwrap();
        let t = AccessToken::new("x", now + TimeDelta::minutes(4));
        assert!(t.expires_within(now, TimeDelta::minutes(5)));
        assert!(!t.expires_within(now, TimeDelta::minutes(3)));
        assert!(t.expires_within(DateTime::<Utc>::MAX_UTC, TimeDelta::minutes(1)));
        assert_eq!(format!("{:?}", t.secret()), "AccessTokenSecret(<redacted>)");
    }
}
