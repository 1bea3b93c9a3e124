//! What a link is bound to ([`LinkClaims`]), what verifying one yields
//! ([`VerifiedLink`]) and why one is refused ([`LinkRejection`]).
//!
//! Plain data for the portal and the monitor: no key and no wire format here.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{domain::TenantId, time_zone::TimeZone};
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
    /// The link's validity (24 hours unless configured otherwise) is over.
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
    /// The link's recipient is no longer configured for the tenant.
    UnknownRecipient,
}

impl fmt::Display for LinkRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, TimeZone::UTC)
    }
}

impl LinkRejection {
    /// The reason as an administrator reads it, with its time in `zone`
    /// (the `Display` form writes it in UTC).
    pub fn describe(&self, zone: TimeZone) -> String {
        crate::time_zone::in_zone(zone, |f, zone| self.write(f, zone))
    }

    fn write(&self, f: &mut fmt::Formatter<'_>, zone: TimeZone) -> fmt::Result {
        match self {
            LinkRejection::Malformed => f.write_str("This is not a valid continuity portal link."),
            LinkRejection::UnknownKey { .. } => f.write_str(
                "This link was signed with a key that is no longer accepted (retired). \
                 A fresh link comes with the next alert.",
            ),
            LinkRejection::BadSignature => {
                f.write_str("This link is not valid: it was altered or mistyped.")
            }
            LinkRejection::Expired { expired_at } => write!(
                f,
                "This link expired at {}. A fresh link comes with the next alert.",
                zone.format(*expired_at)
            ),
            LinkRejection::NotYetValid { .. } => {
                f.write_str("This link is not valid yet (is a clock wrong?).")
            }
            LinkRejection::WrongTenant => f.write_str("This link belongs to another organisation."),
            LinkRejection::UnknownRecipient => {
                f.write_str("This link was sent to a recipient who no longer receives this organisation's alerts.")
            }
        }
    }
}

/// What a link is bound to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkClaims {
    /// The tenant.
    pub tenant: TenantId,
    /// The alert the link was sent with; 0 for a standing link, which has
    /// none ([`VerifiedLink::origin`] tells the two apart: a tenant's first
    /// alert has id 0 as well).
    pub alert_id: u64,
    /// The recipient it was sent to (recipient id from the tenant
    /// configuration); for a standing link, who the embedder issued it to.
    pub recipient: String,
}

/// Where a link came from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkOrigin {
    /// Sent with an alert to a configured recipient ([`LinkSigner::sign`](super::LinkSigner::sign)).
    #[default]
    Alert,
    /// Issued without an alert by the embedder's admin console, for planned
    /// maintenance ([`LinkSigner::sign_standing`](super::LinkSigner::sign_standing),
    /// [`Monitor::standing_link`](crate::Monitor::standing_link)).
    Standing,
}

/// A standing link as [`Monitor::standing_link`](crate::Monitor::standing_link)
/// issues it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StandingLink {
    /// The portal URL to hand to the administrator (the portal URL followed
    /// by the token).
    pub url: String,
    /// The signed token alone (what follows the portal URL).
    pub token: String,
    /// When it stops opening the portal.
    pub expires_at: DateTime<Utc>,
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
    /// Whether it came with an alert or is a standing link (absent in
    /// values serialised before standing links existed: an alert's).
    #[serde(default)]
    pub origin: LinkOrigin,
}
