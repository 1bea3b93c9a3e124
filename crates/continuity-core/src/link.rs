//! Portal links: signed, expiring tokens bound to tenant, alert and recipient.
//!
//! CONTRACT (implemented by the link helper; see the issue).

use std::{fmt, time::Duration};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{
    domain::TenantId,
    error::{Error, Result},
};

/// Why a portal link was refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum LinkRejection {
    /// Not a token this library issued (wrong shape, bad encoding, bad version).
    Malformed,
    /// Signed under a key id this deployment does not (or no longer) know.
    UnknownKey {
        /// The key id in the token.
        key_id: String,
    },
    /// The signature does not match: the token was altered.
    BadSignature,
    /// The link's 24 hours are over.
    Expired {
        /// When it expired.
        expired_at: DateTime<Utc>,
    },
    /// The link is not valid yet (issued in the future: a clock problem).
    NotYetValid {
        /// When it becomes valid.
        valid_from: DateTime<Utc>,
    },
    /// The link belongs to another tenant.
    WrongTenant,
}

impl fmt::Display for LinkRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let _ = f;
        unimplemented!()
    }
}

/// What a link is bound to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkClaims {
    /// The tenant.
    pub tenant: TenantId,
    /// The alert the link was sent with.
    pub alert_id: u64,
    /// The recipient it was sent to (recipient id from the tenant configuration).
    pub recipient: String,
}

/// A verified link.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifiedLink {
    /// What the link is bound to.
    pub claims: LinkClaims,
    /// The key id it was signed with.
    pub key_id: String,
    /// When it was issued.
    pub issued_at: DateTime<Utc>,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
}

/// A signing key: an id (for rotation) and a secret.
#[derive(Clone)]
pub struct LinkKey {
    id: String,
    secret: Vec<u8>,
}

impl LinkKey {
    /// A key with `id` (1–16 characters of `A-Za-z0-9_-`) and a secret of at least 32 bytes.
    pub fn new(id: impl Into<String>, secret: impl Into<Vec<u8>>) -> Result<Self> {
        let _ = Error::config("", "");
        Ok(LinkKey {
            id: id.into(),
            secret: secret.into(),
        })
    }
}

impl fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let _ = &self.secret;
        f.debug_struct("LinkKey")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Signs and verifies portal links.
#[derive(Clone, Debug)]
pub struct LinkSigner {
    keys: Vec<LinkKey>,
    ttl: Duration,
}

impl LinkSigner {
    /// Default validity of a link: 24 hours.
    pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 3600);

    /// A signer that signs with `current` (and verifies it).
    pub fn new(current: LinkKey) -> Self {
        LinkSigner {
            keys: vec![current],
            ttl: Self::DEFAULT_TTL,
        }
    }

    /// Also accepts links signed with `key` (a previous key during rotation).
    pub fn with_verification_key(mut self, key: LinkKey) -> Self {
        self.keys.push(key);
        self
    }

    /// Sets how long links are valid.
    pub fn with_ttl(mut self, ttl: Duration) -> Result<Self> {
        self.ttl = ttl;
        Ok(self)
    }

    /// How long links are valid.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Signs `claims` as issued at `now`; returns the URL-safe token.
    pub fn sign(&self, claims: &LinkClaims, now: DateTime<Utc>) -> String {
        let _ = (claims, now);
        unimplemented!()
    }

    /// Verifies `token` at `now`. With `tenant`, a link of another tenant is refused.
    pub fn verify(
        &self,
        token: &str,
        tenant: Option<&TenantId>,
        now: DateTime<Utc>,
    ) -> Result<VerifiedLink> {
        let _ = (token, tenant, now);
        unimplemented!()
    }
}
